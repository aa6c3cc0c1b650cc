package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/tarsplit"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
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
	// Largest first, so the long ones do not start last.
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].size > todo[j].size })
	jobs := a.s.opts.Jobs
	if jobs <= 0 {
		jobs = 1
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, l := range todo {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return a.checkContent(gctx, l) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// assembled is the outcome of tarsplit.Assemble on its goroutine.
type assembled struct {
	st  tarsplit.AssembleStats
	err error
}

// checkContent rebuilds a layer's tar stream from tar-split.json.gz and the
// layer directory, runs the engine's pass over it (diffID, tar walk) with a
// disk observer, then walks the directory for extra entries and checks the
// size file [invariants 18-22, 25]. It returns an error only on cancellation.
func (a *audit) checkContent(ctx context.Context, l *layerRec) error {
	rootRel := a.drv.layerRoot(l.cacheID)
	full := filepath.Join(a.s.root, filepath.FromSlash(rootRel))
	if a.drv.name == "zfs" && !a.mountpoint(rootRel) {
		a.problem(l.subject("cache-id"), "zfs dataset of cache-id %s is not mounted at %s; layercheck never mounts, so the layer's content is not checked", l.cacheID, rootRel)
		return nil
	}
	opener, err := tarsplit.RootOpener(full)
	if err != nil {
		a.problem(l.subject(""), "%v", err)
		return nil
	}
	defer opener.Close()
	var files tarsplit.FileOpener = opener
	var lowers *lowerOpener
	if a.drv.overlay && l.parent != nil && l.chainOK && a.hasLowerFile(l.cacheID) {
		// Docker reads an overlay layer through its union mount; the
		// layer's own diff/ comes first, the lowers only as a fallback.
		// Without a lower file Docker's Get does not mount: diff/ alone
		// (FORMATS.md 2.3; the lower file itself is checkLower's).
		lowers = &lowerOpener{a: a, l: l.parent}
		defer lowers.close()
		files = tarsplit.ChainOpener(opener, lowers)
	}
	meta, err := os.OpenRoot(full)
	if err != nil {
		a.problem(l.subject(""), "opening layer directory: %v", err)
		return nil
	}
	defer meta.Close()
	ts, err := a.openRegular(l.rel + "/tar-split.json.gz")
	if err != nil {
		a.problem(l.subject("tar-split.json.gz"), "%v", err)
		return nil
	}
	defer ts.Close()

	obs := newDiskObserver(a, l, meta, rootRel)
	defer func() { obs.close() }()
	pr, pw := io.Pipe()
	done := make(chan assembled, 1)
	go func() {
		st, err := tarsplit.Assemble(ctx, ts, files, pw)
		pw.CloseWithError(err)
		done <- assembled{st, err}
	}()
	observers := []verify.Observer{obs}
	var analyzer *verify.LayerAnalyzer
	if a.s.opts.Analysis != nil {
		// The analysis rides on the same pass: one per layer, however
		// many images share it.
		analyzer = verify.NewLayerAnalyzer(*a.s.opts.Analysis)
		observers = append(observers, analyzer)
	}
	res, perr := verify.Pass(ctx, pr, verify.PassOptions{Observers: observers, MaxTarSize: a.s.opts.Pass.MaxTarSize})
	pr.CloseWithError(errors.New("layer pass ended"))
	out := <-done
	if err := ctx.Err(); err != nil {
		return err
	}
	if a.s.opts.Progress != nil {
		a.s.opts.Progress(rootRel, out.st.BytesWritten)
	}
	complete := out.err == nil && perr == nil
	if out.err == nil && perr != nil {
		a.problem(l.subject(""), "reading the rebuilt stream: %v", perr)
	}
	l.res = &contentResult{diffID: res.DiffID, tarSize: res.TarSize, entries: res.Entries}

	var tsErr *tarsplit.FormatError
	switch {
	case errors.As(out.err, &tsErr):
		a.layerFinding(l, finding(TarSplit, l.subject("tar-split.json.gz"), "tar-split.json.gz is corrupt or truncated; Docker cannot save or push this layer: %v", tsErr))
	case out.err != nil:
		a.problem(l.subject("tar-split.json.gz"), "rebuilding the layer: %v", out.err)
	}

	misaligned := a.fileProblems(l, rootRel, out.st)
	if analyzer != nil && !misaligned {
		// A file of the wrong length shifts the headers after it: such a
		// stream has no analysis (the image's is then partial).
		l.analyzer = analyzer
		l.analyzed = complete && res.TarEnd && res.TarErr == nil && res.LimitErr == nil
	}

	if complete {
		if l.diff != "" && res.DiffID != l.diff {
			msg := "the tar rebuilt from tar-split and the layer directory does not hash to diff; Docker's save and push fail (\"could not verify layer data\")"
			if len(out.st.Problems) > 0 {
				msg += "; the file findings of this layer say why"
			}
			a.layerFinding(l, with(finding(LayerDiffID, l.subject("diff"), "%s", msg), l.diff.String(), res.DiffID.String()))
		}
		if res.LimitErr != nil {
			a.problem(l.subject(""), "the rebuilt layer was not read to its end: %v", res.LimitErr)
		}
		if res.TarErr != nil && !misaligned {
			a.layerFinding(l, finding(LayerTar, l.subject("tar-split.json.gz"), "the rebuilt stream is not a readable tar: %v", res.TarErr))
		}
		if !misaligned {
			for _, u := range res.UnsafePaths {
				if strings.Contains(u, "(hardlink to ") {
					a.layerFinding(l, finding(UnsafePath, report.Subject{Digest: l.chain.String(), Path: rootRel, Entry: u}, "a hardlink target climbs out of the layer root"))
				}
			}
		}
	}
	if out.err != nil {
		// Without the whole tar-split the expected tree is incomplete:
		// extra-entry and size findings would be noise.
		a.commitObserver(l, obs)
		return nil
	}
	if misaligned || (res.TarErr != nil && res.Entries < out.st.Files) {
		// A file of the wrong length shifts every header after it in the
		// rebuilt stream: compare the disk with the tar-split's own headers.
		obs.close()
		obs = newDiskObserver(a, l, meta, rootRel)
		if err := a.skeletonWalk(ctx, l, obs); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.problem(l.subject("tar-split.json.gz"), "reading headers from tar-split: %v", err)
			a.commitObserver(l, obs)
			return nil
		}
	}
	a.finishLayer(ctx, l, obs, rootRel)
	return ctx.Err()
}

// fileProblems turns the rebuild's per-file problems into findings. It
// reports whether any of them changed the length of the rebuilt stream.
func (a *audit) fileProblems(l *layerRec, rootRel string, st tarsplit.AssembleStats) (misaligned bool) {
	subj := func(name string) report.Subject {
		return report.Subject{Digest: l.chain.String(), Path: rootRel, Entry: name}
	}
	for _, p := range st.Problems {
		switch e := p.(type) {
		case *tarsplit.ChecksumError:
			f := finding(FileCRC, subj(e.Name), "file content differs from what the layer recorded; Docker's save and push fail (\"file integrity checksum failed\")")
			want, got := fmt.Sprintf("crc64 %x, %d bytes", e.Want, e.WantSize), fmt.Sprintf("crc64 %x, %d bytes", e.Got, e.GotSize)
			a.layerFinding(l, with(f, want, got))
			if e.WantSize != e.GotSize {
				misaligned = true
			}
		case *tarsplit.MissingError:
			a.layerFinding(l, with(finding(LayerMissingFile, subj(e.Name), "the tar's regular file is not in the layer directory"), "regular file", "absent"))
			misaligned = true
		case *tarsplit.UnsafePathError:
			a.layerFinding(l, finding(UnsafePath, subj(e.Name), "tar-split names a path outside the layer directory (%s); it was not read", e.Reason))
			misaligned = true
		case *tarsplit.DuplicatePathError:
			a.layerFinding(l, finding(TarSplit, subj(e.Name), "the path appears twice in tar-split; Docker never writes such a layer"))
		case *tarsplit.FileError:
			// A path that is not a regular file any more is a type
			// mismatch the disk observer reports for every entry.
			if !errors.Is(e, tarsplit.ErrNotRegular) {
				a.problem(subj(e.Name), "%v", e)
			}
			misaligned = true
		default:
			a.problem(subj(""), "%v", p)
			misaligned = true
		}
	}
	for _, n := range st.Notes {
		a.layerFinding(l, finding(TarSplitNotReproducible, subj(n.Name), "%s", n.Reason))
		if strings.HasPrefix(n.Reason, "sparse") {
			misaligned = true
		}
	}
	if st.Dropped > 0 {
		a.layerFinding(l, finding(FileCRC, subj(""), "%d more file problems were not recorded (the rebuild keeps the first %d)", st.Dropped, tarsplit.MaxProblems))
		misaligned = true
	}
	return misaligned
}

// finishLayer walks the layer directory and checks the size file.
func (a *audit) finishLayer(ctx context.Context, l *layerRec, obs *diskObserver, rootRel string) {
	defer a.commitObserver(l, obs)
	var tree *pathTree
	var whited map[string]bool
	self := 0
	if a.drv.fullRoot {
		if !l.chainOK {
			return
		}
		var err error
		tree, whited, self, err = a.replay(ctx, l)
		if err != nil {
			if ctx.Err() == nil {
				a.problem(l.subject(""), "not walking the layer directory for extra entries: %v", err)
			}
			return
		}
	} else {
		tree = obs.tree
	}
	w := obs.walk(tree, whited)
	if !w.done {
		return
	}
	if a.drv.fullRoot {
		obs.reportUnseen(tree, self)
	}
	if !l.sizeOK {
		return
	}
	switch {
	case a.drv.overlay:
		if l.size != obs.sumSize && l.size != w.dirSize {
			a.layerFinding(l, with(finding(LayerSize, l.subject("size"),
				"size is neither the sum of the tar's entry sizes (naive diff) nor the bytes in diff/ (native overlay diff): the directory grew or shrank, or size was edited"),
				fmt.Sprintf("%d (tar entries) or %d (diff/ on disk)", obs.sumSize, w.dirSize), fmt.Sprint(l.size)))
		}
	default:
		if l.size != obs.sumSize {
			a.layerFinding(l, with(finding(LayerSize, l.subject("size"), "size is not the sum of the tar's entry sizes (the %s driver's rule)", a.drv.name),
				fmt.Sprint(obs.sumSize), fmt.Sprint(l.size)))
		}
	}
}

func (a *audit) commitObserver(l *layerRec, obs *diskObserver) {
	obs.flush()
	fs := obs.fl.all()
	sortFindings(fs)
	for _, f := range fs {
		a.layerFinding(l, f)
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
	s1, ok1 := statOf(fi)
	s2, ok2 := statOf(pfi)
	return ok1 && ok2 && s1.dev != s2.dev
}

// hasLowerFile reports whether the overlay directory of id has a lower
// file, which makes Docker read the layer through a union mount.
func (a *audit) hasLowerFile(id string) bool {
	_, err := a.lstat(a.drv.cacheDir(id) + "/lower")
	return err == nil
}

// lowerOpener opens files from the diff directories of a layer's parents,
// nearest first, opening each directory only when first needed.
type lowerOpener struct {
	a     *audit
	l     *layerRec // the nearest parent
	roots []*tarsplit.Root
	next  *layerRec
	init  bool
}

func (o *lowerOpener) Open(name string) (io.ReadCloser, error) {
	if !o.init {
		o.init, o.next = true, o.l
	}
	for i := 0; ; i++ {
		if i == len(o.roots) {
			if !o.grow() {
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
		}
		f, err := o.roots[i].Open(name)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
	}
}

// grow opens the next lower directory; false when there is none.
func (o *lowerOpener) grow() bool {
	for n := 0; o.next != nil && n <= maxLayerDepth; n++ {
		p := o.next
		o.next = p.parent
		if p.cacheID == "" || !p.cacheDir {
			continue
		}
		r, err := tarsplit.RootOpener(filepath.Join(o.a.s.root, filepath.FromSlash(o.a.drv.layerRoot(p.cacheID))))
		if err != nil {
			continue
		}
		o.roots = append(o.roots, r)
		return true
	}
	return false
}

func (o *lowerOpener) close() {
	for _, r := range o.roots {
		r.Close()
	}
}

// skeletonWalk feeds the observer the headers recorded in tar-split itself:
// its segments with zeros in place of each file's data, so every header is
// where the original archive had it whatever the files on disk hold.
func (a *audit) skeletonWalk(ctx context.Context, l *layerRec, obs *diskObserver) error {
	f, err := a.openRegular(l.rel + "/tar-split.json.gz")
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := tarsplit.Open(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(&skeleton{ctx: ctx, r: r})
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		obs.Header(h)
	}
}

// skeleton is an io.Reader over a tar-split's segments, with zero bytes
// standing for file data.
type skeleton struct {
	ctx   context.Context
	r     *tarsplit.Reader
	buf   []byte
	zeros int64
	err   error
}

var zeroBlock = make([]byte, 32<<10)

func (s *skeleton) Read(p []byte) (int, error) {
	for len(s.buf) == 0 && s.zeros == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if err := s.ctx.Err(); err != nil {
			return 0, err
		}
		e, err := s.r.Next()
		if err != nil {
			s.err = err
			continue
		}
		switch {
		case e.Type == tarsplit.SegmentEntry:
			s.buf = e.Payload
		case e.Size > 0 && !headerOnly(e.Typeflag, e.Name):
			s.zeros = e.Size
		}
	}
	if len(s.buf) > 0 {
		n := copy(p, s.buf)
		s.buf = s.buf[n:]
		return n, nil
	}
	n := int64(len(p))
	if n > s.zeros {
		n = s.zeros
	}
	if n > int64(len(zeroBlock)) {
		n = int64(len(zeroBlock))
	}
	copy(p, zeroBlock[:n])
	s.zeros -= n
	return int(n), nil
}

// headerOnly mirrors tar-split: the tar reader reads no data for these types,
// whatever their Size field says.
func headerOnly(flag byte, name []byte) bool {
	switch flag {
	case '1', '2', '3', '4', '5', '6':
		return true
	case 0:
		return bytes.HasSuffix(name, []byte("/"))
	}
	return false
}

// replay builds the tree a full-rootfs layer directory should hold: the
// entries of every tar of the chain, base first, with whiteouts and opaque
// directories applied as go-archive's UnpackLayer applies them (FORMATS 2.4,
// 2.5). It returns the paths the layer itself whites out and its index.
func (a *audit) replay(ctx context.Context, l *layerRec) (*pathTree, map[string]bool, int, error) {
	var chain []*layerRec
	for p := l; p != nil; p = p.parent {
		chain = append(chain, p)
		if len(chain) > maxLayerDepth+1 {
			return nil, nil, 0, errors.New("layer chain too deep")
		}
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	tree := newPathTree()
	whited := map[string]bool{}
	self := len(chain) - 1
	for i, c := range chain {
		if !c.tarSplit {
			return nil, nil, 0, fmt.Errorf("layer %s below has no usable tar-split", report.Short(c.chain.String()))
		}
		if err := a.replayOne(ctx, c, i, tree, whited, i == self); err != nil {
			return nil, nil, 0, fmt.Errorf("replaying layer %s: %w", report.Short(c.chain.String()), err)
		}
	}
	for i, c := range chain[:self] {
		if err := ctx.Err(); err != nil {
			return nil, nil, 0, err
		}
		a.lowerHeaders(ctx, c, i, tree)
	}
	return tree, whited, self, nil
}

// lowerHeaders records on each path of tree that lower layer idx wrote last
// that layer's tar header, so the walk compares the inherited copy in the
// child's directory with it (FORMATS 2.5: the directory of a full-rootfs
// layer is a copy of its parent's with the layer applied). The headers are
// read from the tar-split's own segments, zeros standing for file data. A
// tar-split that does not parse as a tar (a sparse file, noted where that
// layer is audited) leaves its remaining paths uncompared.
func (a *audit) lowerHeaders(ctx context.Context, l *layerRec, idx int, tree *pathTree) {
	f, err := a.openRegular(l.rel + "/tar-split.json.gz")
	if err != nil {
		return
	}
	defer f.Close()
	r, err := tarsplit.Open(f)
	if err != nil {
		return
	}
	tr := tar.NewReader(&skeleton{ctx: ctx, r: r})
	for {
		h, err := tr.Next()
		if err != nil {
			return
		}
		clean, ok := cleanEntry(h.Name)
		if !ok || clean == "." || isPlnk(clean) {
			continue
		}
		if _, base := splitDirBase(clean); strings.HasPrefix(base, whPrefix) {
			continue
		}
		if n := tree.lookup(clean); n != nil && n.explicit && n.layer == idx {
			n.lower = lowerHeader(h)
		}
	}
}

// lowerHeader keeps the fields of h the inherited-entry comparison reads.
func lowerHeader(h *tar.Header) *tar.Header {
	return &tar.Header{Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size, Mode: h.Mode,
		Uid: h.Uid, Gid: h.Gid, Devmajor: h.Devmajor, Devminor: h.Devminor}
}

func (a *audit) replayOne(ctx context.Context, l *layerRec, idx int, tree *pathTree, whited map[string]bool, self bool) error {
	f, err := a.openRegular(l.rel + "/tar-split.json.gz")
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := tarsplit.Open(f)
	if err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Type != tarsplit.FileEntry || e.Unsafe {
			continue
		}
		clean, ok := cleanEntry(string(e.Name))
		if !ok || clean == "." || isPlnk(clean) {
			continue
		}
		dir, base := splitDirBase(clean)
		if base == whOpaque {
			if n := tree.lookup(dir); n != nil {
				for k, c := range n.kids {
					if c.layer != idx {
						delete(n.kids, k)
					}
				}
			}
			continue
		}
		if name, ok := strings.CutPrefix(base, whPrefix); ok {
			target := joinClean(dir, name)
			tree.remove(target)
			if self {
				whited[target] = true
			}
			continue
		}
		kind := e.Typeflag
		if kind == 0 && bytes.HasSuffix(e.Name, []byte("/")) {
			kind = tar.TypeDir
		}
		if n := tree.lookup(clean); n != nil && n.isDirKind() && kind != tar.TypeDir {
			n.kids = nil // a non-directory replaces a directory and all below it
		}
		tree.add(clean, kind, idx)
		if self {
			delete(whited, clean)
		}
	}
}

func joinClean(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}
