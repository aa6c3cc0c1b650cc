package diskcheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/tarsplit"
	"github.com/layercheck/layercheck/verify"
)

// Opener opens a gzip-compressed tar-split (a regular file, read-only).
type Opener func() (io.ReadCloser, error)

// ChainLayer is one layer of a full-rootfs layer's chain.
type ChainLayer struct {
	// Digest names the layer in messages (its chainID or ID).
	Digest string
	// TarSplit opens its tar-split; nil: the layer has none usable.
	TarSplit Opener
}

// Layer is one layer to rebuild and compare with its directory.
type Layer struct {
	// Digest names the layer in every finding's subject (its chainID, or
	// the store's layer ID).
	Digest string
	// Root is the absolute path of the layer's files (overlay: diff/; a
	// full-rootfs driver: the rootfs); RootRel is the same relative to the
	// store's root, for subjects.
	Root, RootRel string
	// TarSplit opens the layer's tar-split; TarSplitRel names it in
	// findings (relative to the store's root).
	TarSplit    Opener
	TarSplitRel string
	// Lowers are the absolute file roots of the layers below, nearest
	// first, tried for a file the layer's own root lacks (an overlay layer
	// is read through its union view); each is opened when first needed.
	Lowers []string
	// Chain is, for a full-rootfs layout, every layer of the chain, base
	// first, this one last; the directory is compared with their replay.
	// Nil: the chain does not resolve, and the directory is not walked.
	Chain []ChainLayer
	// UID and GID map a header's owner to the owner on disk (user
	// namespaces); nil: the same.
	UID, GID func(int) int
	// Analyzer, when set, also observes the pass.
	Analyzer *verify.LayerAnalyzer
	// MaxTarSize bounds the rebuilt stream (verify.PassOptions).
	MaxTarSize int64
}

func (l *Layer) uid(id int) int {
	if l.UID == nil {
		return id
	}
	return l.UID(id)
}

func (l *Layer) gid(id int) int {
	if l.GID == nil {
		return id
	}
	return l.GID(id)
}

// Result is what Check measured.
type Result struct {
	// Pass is the engine's result over the rebuilt stream: DiffID,
	// TarSize, Entries, TarErr…
	Pass *verify.PassResult
	// Stats are the rebuild's per-file records.
	Stats tarsplit.AssembleStats
	// Complete: the rebuild and the pass both ran to the end without an
	// error (the stream's digest and length are those of the whole layer).
	Complete bool
	// Misaligned: a file of the wrong length (or a missing one) shifted
	// the rebuilt stream, so its analysis is meaningless.
	Misaligned bool
	// Walked: the directory was walked for entries the tar lacks; SumSize
	// (Σ header sizes) and DirSize (du of the directory) are then known.
	Walked           bool
	SumSize, DirSize int64
	// Findings are the layer's findings (file problems, header vs disk,
	// extra entries), in a stable order.
	Findings []report.Finding
}

// Check rebuilds the layer's tar stream from its tar-split and its
// directory (tarsplit.Assemble, read in place, never mounted), runs the
// engine's single pass over it with an observer comparing each header with
// lstat of its path, then walks the directory for what the tar lacks. It
// returns an error only on cancellation; what could not be read is a
// problem (Env.Problem). The caller compares Pass.DiffID with the digest it
// records.
func Check(ctx context.Context, env *Env, l *Layer) (*Result, error) {
	out := &Result{Pass: &verify.PassResult{}}
	var fl FindingList
	add := func(f report.Finding) { fl.Add(env.maxPer(), f) }
	subj := func(entry string) report.Subject {
		return report.Subject{Digest: l.Digest, Path: l.RootRel, Entry: entry}
	}
	tsSubj := report.Subject{Digest: l.Digest, Path: l.TarSplitRel}
	defer func() { out.Findings = fl.All() }()

	opener, err := tarsplit.RootOpener(l.Root)
	if err != nil {
		env.problem(subj(""), "%v", err)
		return out, nil
	}
	defer opener.Close()
	var files tarsplit.FileOpener = opener
	if len(l.Lowers) > 0 {
		lowers := &lowerOpener{dirs: l.Lowers}
		defer lowers.close()
		files = tarsplit.ChainOpener(opener, lowers)
	}
	meta, err := os.OpenRoot(l.Root)
	if err != nil {
		env.problem(subj(""), "opening layer directory: %v", err)
		return out, nil
	}
	defer meta.Close()
	ts, err := l.TarSplit()
	if err != nil {
		env.problem(tsSubj, "%v", err)
		return out, nil
	}
	defer ts.Close()

	obs := newDiskObserver(env, l, meta, l.RootRel)
	defer func() { obs.close() }()
	// A full-rootfs layer's replay operations come from this same decode of
	// its tar-split, for its own walk and those of the layers above it.
	var produce func(any, int, error, bool)
	if env.Layout.FullRoot {
		produce, _ = env.chains().claim(deltaKey(l.Digest))
	}
	pr, pw := io.Pipe()
	done := make(chan assembled, 1)
	var tap *splitTap
	ch := make(chan []staged, stageQueue)
	side := newRebuildSide(ch, meta, files, obs.probe)
	defer side.close()
	go func() {
		// The disk observer gets the headers tar-split recorded, read in
		// step with the records from its segments: a file of the wrong
		// length, which shifts the rebuilt stream, cannot shift them. It
		// runs on a goroutine of its own, a batch of records ahead of the
		// rebuild (stage.go).
		var st tarsplit.AssembleStats
		r, err := tarsplit.Open(ts)
		if err == nil {
			la := &lookahead{src: r, probe: obs.probe, root: l.Root}
			tap = newSplitTap(la, obs.Header, produce != nil)
			stop, staged := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(staged)
				obs.stage(tap, ch, stop)
			}()
			// Headers and small files are handed to the pass in large
			// writes, not one pipe round trip each.
			bw := bufio.NewWriterSize(pw, 256<<10)
			st, err = tarsplit.AssembleFrom(ctx, side, side, bw)
			side.settle()
			close(stop)
			<-staged
			la.close()
			if err == nil {
				err = bw.Flush()
			}
		}
		pw.CloseWithError(err)
		done <- assembled{st, err}
	}()
	var observers []verify.Observer
	if l.Analyzer != nil {
		observers = append(observers, l.Analyzer)
	}
	res, perr := verify.Pass(ctx, pr, verify.PassOptions{Observers: observers, MaxTarSize: l.MaxTarSize})
	pr.CloseWithError(errors.New("layer pass ended"))
	as := <-done
	obs.replayXattrs(side)
	var tsErr *tarsplit.FormatError
	if produce != nil {
		switch {
		case as.err == nil && tap.eof:
			produce(tap.ops, len(tap.ops), nil, true)
		case errors.As(as.err, &tsErr):
			produce(nil, 0, as.err, true)
		default: // cancelled, or the rebuild stopped early: decoded on demand
			produce(nil, 0, as.err, false)
		}
	}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	if res != nil {
		out.Pass = res
	}
	out.Stats = as.st
	out.Complete = as.err == nil && perr == nil
	if as.err == nil && perr != nil {
		env.problem(subj(""), "reading the rebuilt stream: %v", perr)
	}

	switch {
	case errors.As(as.err, &tsErr):
		add(finding(env.Checks.TarSplit, tsSubj, "the tar-split is corrupt or truncated; %s cannot save or push this layer: %v", env.product(), tsErr))
	case as.err != nil:
		env.problem(tsSubj, "rebuilding the layer: %v", as.err)
	}

	out.Misaligned = fileProblems(env, add, subj, as.st)
	if out.Complete {
		if res.TarErr != nil && !out.Misaligned {
			add(finding(env.Checks.LayerTar, tsSubj, "the rebuilt stream is not a readable tar: %v", res.TarErr))
		}
		if !out.Misaligned {
			for _, u := range res.UnsafePaths {
				if strings.Contains(u, "(hardlink to ") {
					add(finding(env.Checks.UnsafePath, subj(u), "a hardlink target climbs out of the layer root"))
				}
			}
		}
	}
	commit := func() {
		obs.flush()
		fs := obs.fl.All()
		sortFindings(fs)
		for _, f := range fs {
			add(f)
		}
	}
	if as.err != nil {
		// Without the whole tar-split the expected tree is incomplete:
		// extra-entry and size findings would be noise.
		commit()
		return out, nil
	}
	if tap.hdrErr != nil {
		env.problem(tsSubj, "reading headers from tar-split: %v", tap.hdrErr)
		commit()
		return out, nil
	}
	defer commit()
	var tree *pathTree
	var whited map[string]bool
	self := 0
	if env.Layout.FullRoot {
		if l.Chain == nil {
			return out, ctx.Err()
		}
		tree, whited, self, err = env.chains().replay(ctx, l.Chain)
		if err != nil {
			if ctx.Err() == nil {
				env.problem(subj(""), "not walking the layer directory for extra entries: %v", err)
			}
			return out, ctx.Err()
		}
		obs.self = self
	} else {
		tree = obs.tree
	}
	w := obs.walk(tree, whited)
	if !w.done {
		return out, ctx.Err()
	}
	if env.Layout.FullRoot {
		obs.reportUnseen(tree, self)
	}
	out.Walked, out.SumSize, out.DirSize = true, obs.sumSize, w.dirSize
	return out, ctx.Err()
}

// DiffIDMismatch is the one wording of a rebuilt stream that does not hash
// to the digest the store records.
func DiffIDMismatch(r *Result) string {
	msg := "the tar rebuilt from tar-split and the layer directory does not hash to the recorded diffID"
	if len(r.Stats.Problems) > 0 {
		msg += "; the file findings of this layer say why"
	}
	return msg
}

// assembled is the outcome of tarsplit.Assemble on its goroutine.
type assembled struct {
	st  tarsplit.AssembleStats
	err error
}

// fileProblems turns the rebuild's per-file problems into findings. It
// reports whether any of them changed the length of the rebuilt stream.
func fileProblems(env *Env, add func(report.Finding), subj func(string) report.Subject, st tarsplit.AssembleStats) (misaligned bool) {
	for _, p := range st.Problems {
		switch e := p.(type) {
		case *tarsplit.ChecksumError:
			f := finding(env.Checks.FileCRC, subj(e.Name), "file content differs from what the layer recorded; %s's save and push fail (\"file integrity checksum failed\")", env.product())
			want, got := fmt.Sprintf("crc64 %x, %d bytes", e.Want, e.WantSize), fmt.Sprintf("crc64 %x, %d bytes", e.Got, e.GotSize)
			add(with(f, want, got))
			if e.WantSize != e.GotSize {
				misaligned = true
			}
		case *tarsplit.MissingError:
			add(with(finding(env.Checks.MissingFile, subj(e.Name), "the tar's regular file is not in the layer directory"), "regular file", "absent"))
			misaligned = true
		case *tarsplit.UnsafePathError:
			add(finding(env.Checks.UnsafePath, subj(e.Name), "tar-split names a path outside the layer directory (%s); it was not read", e.Reason))
			misaligned = true
		case *tarsplit.DuplicatePathError:
			add(finding(env.Checks.TarSplit, subj(e.Name), "the path appears twice in tar-split; %s never writes such a layer", env.product()))
		case *tarsplit.FileError:
			// A path that is not a regular file any more is a type
			// mismatch the disk observer reports for every entry.
			if !errors.Is(e, tarsplit.ErrNotRegular) {
				env.problem(subj(e.Name), "%v", e)
			}
			misaligned = true
		default:
			env.problem(subj(""), "%v", p)
			misaligned = true
		}
	}
	for _, n := range st.Notes {
		add(finding(env.Checks.NotReproducible, subj(n.Name), "%s", n.Reason))
		if strings.HasPrefix(n.Reason, "sparse") {
			misaligned = true
		}
	}
	if st.Dropped > 0 {
		add(finding(env.Checks.FileCRC, subj(""), "%d more file problems were not recorded (the rebuild keeps the first %d)", st.Dropped, tarsplit.MaxProblems))
		misaligned = true
	}
	return misaligned
}

// lowerOpener opens files from the file roots of a layer's parents,
// nearest first, opening each directory only when first needed.
type lowerOpener struct {
	dirs  []string
	roots []*tarsplit.Root
}

func (o *lowerOpener) Open(name string) (io.ReadCloser, error) {
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
	for len(o.dirs) > 0 {
		d := o.dirs[0]
		o.dirs = o.dirs[1:]
		r, err := tarsplit.RootOpener(d)
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

func joinClean(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}
