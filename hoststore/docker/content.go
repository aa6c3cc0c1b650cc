package docker

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// contentResult is what the rebuild of one layer measured.
type contentResult struct {
	diffID  digest.Digest
	tarSize int64
	entries int
}

// runContent rebuilds every layer in scope once, in parallel.
func (a *audit) runContent(ctx context.Context) error {
	var todo []*layerRec
	for _, k := range sortedKeys(a.layers) {
		l := a.layers[k]
		if (a.full || a.scope[l]) && l.tarSplit && l.cacheID != "" && l.cacheDir {
			todo = append(todo, l)
		}
	}
	// Largest first, so the long ones do not start last. Full-rootfs
	// drivers: parents first, so each layer's tar-split is decoded once,
	// by its own rebuild, before the layers above replay it.
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].size > todo[j].size })
	if a.drv.fullRoot {
		depth := map[*layerRec]int{}
		for _, l := range todo {
			for p := l.parent; p != nil && depth[l] <= maxLayerDepth; p = p.parent {
				depth[l]++
			}
		}
		sort.SliceStable(todo, func(i, j int) bool { return depth[todo[i]] < depth[todo[j]] })
	}
	return diskcheck.Parallel(ctx, a.s.opts.Jobs, todo, a.checkContent)
}

// checkContent rebuilds a layer's tar stream from tar-split.json.gz and the
// layer directory and compares it with the directory (diskcheck.Check: the
// engine's pass, headers vs lstat, extra entries), then checks the diffID
// and the size file [invariants 18-22, 25]. It returns an error only on
// cancellation.
func (a *audit) checkContent(ctx context.Context, l *layerRec) error {
	rootRel := a.drv.layerRoot(l.cacheID)
	if a.drv.name == "zfs" && !a.mountpoint(rootRel) {
		a.problem(l.subject("cache-id"), "zfs dataset of cache-id %s is not mounted at %s; layercheck never mounts, so the layer's content is not checked", l.cacheID, rootRel)
		return nil
	}
	dl := &diskcheck.Layer{
		Digest:      l.chain.String(),
		Root:        filepath.Join(a.s.root, filepath.FromSlash(rootRel)),
		RootRel:     rootRel,
		TarSplit:    a.tarSplitOpener(l),
		TarSplitRel: l.rel + "/tar-split.json.gz",
		MaxTarSize:  a.s.opts.Pass.MaxTarSize,
	}
	if a.uidOff != 0 || a.gidOff != 0 {
		dl.UID = func(u int) int { return u + a.uidOff }
		dl.GID = func(g int) int { return g + a.gidOff }
	}
	if a.drv.overlay && l.parent != nil && l.chainOK && a.hasLowerFile(l.cacheID) {
		// Docker reads an overlay layer through its union mount; the
		// layer's own diff/ comes first, the lowers only as a fallback.
		// Without a lower file Docker's Get does not mount: diff/ alone
		// (FORMATS.md 2.3; the lower file itself is checkLower's).
		for n, p := 0, l.parent; p != nil && n <= maxLayerDepth; n, p = n+1, p.parent {
			if p.cacheID != "" && p.cacheDir {
				dl.Lowers = append(dl.Lowers, filepath.Join(a.s.root, filepath.FromSlash(a.drv.layerRoot(p.cacheID))))
			}
		}
	}
	if a.drv.fullRoot && l.chainOK {
		var chain []diskcheck.ChainLayer
		for p := l; p != nil && len(chain) <= maxLayerDepth+1; p = p.parent {
			c := diskcheck.ChainLayer{Digest: p.chain.String()}
			if p.tarSplit {
				c.TarSplit = a.tarSplitOpener(p)
			}
			chain = append([]diskcheck.ChainLayer{c}, chain...)
		}
		dl.Chain = chain
	}
	var analyzer *verify.LayerAnalyzer
	if a.s.opts.Analysis != nil {
		// The analysis rides on the same pass: one per layer, however
		// many images share it.
		analyzer = verify.NewLayerAnalyzer(*a.s.opts.Analysis)
		dl.Analyzer = analyzer
	}
	r, err := diskcheck.Check(ctx, a.env, dl)
	if err != nil {
		return err
	}
	if a.s.opts.Progress != nil {
		a.s.opts.Progress(rootRel, r.Stats.BytesWritten)
	}
	res := r.Pass
	l.res = &contentResult{diffID: res.DiffID, tarSize: res.TarSize, entries: res.Entries}
	if analyzer != nil && !r.Misaligned {
		// A file of the wrong length shifts the headers after it: such a
		// stream has no analysis (the image's is then partial).
		l.analyzer = analyzer
		l.analyzed = r.Complete && res.TarEnd && res.TarErr == nil && res.LimitErr == nil
	}
	if r.Complete {
		if l.diff != "" && res.DiffID != l.diff {
			msg := diskcheck.DiffIDMismatch(r) + " (diff); Docker's save and push fail (\"could not verify layer data\")"
			a.layerFinding(l, with(finding(HostLayerDiffID, l.subject("diff"), "%s", msg), l.diff.String(), res.DiffID.String()))
		}
		if res.LimitErr != nil {
			a.problem(l.subject(""), "the rebuilt layer was not read to its end: %v", res.LimitErr)
		}
	}
	for _, f := range r.Findings {
		a.layerFinding(l, f)
	}
	if r.Walked && l.sizeOK {
		a.checkSize(l, r)
	}
	return ctx.Err()
}

// tarSplitOpener opens a layer's tar-split.json.gz (a regular file).
func (a *audit) tarSplitOpener(l *layerRec) diskcheck.Opener {
	return func() (io.ReadCloser, error) {
		if tarSplitOpened != nil {
			tarSplitOpened(l.rel)
		}
		return a.openRegular(l.rel + "/tar-split.json.gz")
	}
}

// tarSplitOpened, set by tests, is called with the layerdb directory of
// every tar-split an audit opens.
var tarSplitOpened func(rel string)

// checkSize checks the size file against the driver's rule.
func (a *audit) checkSize(l *layerRec, r *diskcheck.Result) {
	switch {
	case a.drv.overlay:
		if l.size != r.SumSize && l.size != r.DirSize {
			a.layerFinding(l, with(finding(HostLayerSize, l.subject("size"),
				"size is neither the sum of the tar's entry sizes (naive diff) nor the bytes in diff/ (native overlay diff): the directory grew or shrank, or size was edited"),
				fmt.Sprintf("%d (tar entries) or %d (diff/ on disk)", r.SumSize, r.DirSize), fmt.Sprint(l.size)))
		}
	default:
		if l.size != r.SumSize {
			a.layerFinding(l, with(finding(HostLayerSize, l.subject("size"), "size is not the sum of the tar's entry sizes (the %s driver's rule)", a.drv.name),
				fmt.Sprint(r.SumSize), fmt.Sprint(l.size)))
		}
	}
}

// mountpoint reports whether rel is the root of a mounted filesystem.
func (a *audit) mountpoint(rel string) bool {
	fi, err := a.lstat(rel)
	if err != nil {
		return false
	}
	pfi, err := a.lstat(filepath.Dir(rel))
	if err != nil {
		return false
	}
	s1, ok1 := diskcheck.StatOf(fi)
	s2, ok2 := diskcheck.StatOf(pfi)
	return ok1 && ok2 && s1.Dev != s2.Dev
}

// hasLowerFile reports whether the overlay directory of id has a lower
// file, which makes Docker read the layer through a union mount.
func (a *audit) hasLowerFile(id string) bool {
	_, err := a.lstat(a.drv.cacheDir(id) + "/lower")
	return err == nil
}
