package diskcheck

import (
	"io"
	"io/fs"
	"os"

	"github.com/layercheck/layercheck/tarsplit"
)

// A layer's check runs on three goroutines, so that one layer of many
// small files (where each file's system calls, not its bytes, are the
// cost) does not leave every core but one idle:
//
//	stage:   tar-split records decoded (lookahead), headers read in step
//	         (splitTap), each compared with lstat of its path (diskObserver)
//	rebuild: each regular file opened (as the observer lstat'ed it), its
//	         xattrs listed on the descriptor, read, CRC-64 compared, the
//	         stream written (tarsplit.AssembleFrom over rebuildSide)
//	pass:    the rebuilt stream hashed and its tar walked (verify.Pass)
//
// The stage hands records to the rebuild in batches, each with what the
// observer found for it (the file it lstat'ed, its pending xattr
// comparison). The observer's findings stay on the stage's goroutine; the
// rebuild keeps the xattrs it listed and they are compared in record order
// once the rebuild is done (replayXattrs), so the report does not depend on
// how the goroutines interleave.

// A batch ends at stageBatch records or stageBytes of file data, and the
// stage keeps at most stageQueue batches ahead of the rebuild: it stays a
// few MiB ahead, so the lookahead's read-ahead (16 MiB ahead of the stage)
// asks for what the rebuild reads soon, not what it reads last.
const (
	stageBatch = 32
	stageBytes = 1 << 20
	stageQueue = 2
)

// staged is one record on its way from the stage to the rebuild.
type staged struct {
	e   *tarsplit.Entry
	err error // the source's error (io.EOF at its end): the last item
	// seen is the regular file the observer lstat'ed for this record
	// (clean: its cleaned name), for the rebuild's open.
	clean string
	seen  fs.FileInfo
	// px is its xattr comparison, done on the rebuild's descriptor (or
	// by path when the rebuild does not open the file).
	px *attrs
}

// stage runs the observer's side: every record of tap, observed, sent to
// ch in batches, until the source's end or error (sent as the last item)
// or stop. It closes ch.
func (o *diskObserver) stage(tap *splitTap, ch chan<- []staged, stop <-chan struct{}) {
	defer close(ch)
	batch := make([]staged, 0, stageBatch)
	var bytes int64
	for {
		e, err := tap.Next()
		it := staged{e: e, err: err}
		if err == nil && e.Type == tarsplit.FileEntry {
			it.clean, it.seen, it.px = o.lastReg, o.lastRegInfo, o.pendingX
			o.lastReg, o.lastRegInfo, o.pendingX = "", nil, nil
			bytes += e.Size
		}
		batch = append(batch, it)
		if err != nil || len(batch) == stageBatch || bytes >= stageBytes {
			bytes = 0
			select {
			case ch <- batch:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
			batch = make([]staged, 0, stageBatch)
		}
	}
}

// xattrResult is an xattr listing the rebuild made, for the observer to
// compare.
type xattrResult struct {
	a   *attrs
	got map[string]string
	err error
}

// rebuildSide is the rebuild's tarsplit.EntrySource (the staged records)
// and tarsplit.FileOpener: a file the observer lstat'ed for the current
// record is opened in its directory (openRegularAt, on the rebuild's own
// directory descriptors), anything else by next.
type rebuildSide struct {
	ch    <-chan []staged
	batch []staged
	i     int
	cur   staged // the record returned last
	err   error
	dirs  RootCache
	next  tarsplit.FileOpener
	probe *cacheProbe
	xs    []xattrResult // listings to compare, in record order
}

func newRebuildSide(ch <-chan []staged, meta *os.Root, next tarsplit.FileOpener, probe *cacheProbe) *rebuildSide {
	return &rebuildSide{ch: ch, dirs: RootCache{Root: meta}, next: next, probe: probe}
}

// Next implements tarsplit.EntrySource.
func (s *rebuildSide) Next() (*tarsplit.Entry, error) {
	s.settle()
	s.cur = staged{}
	if s.err != nil {
		return nil, s.err
	}
	for s.i == len(s.batch) {
		b, ok := <-s.ch
		if !ok {
			s.err = io.ErrUnexpectedEOF // the stage stopped: not reached while the rebuild runs
			return nil, s.err
		}
		s.batch, s.i = b, 0
	}
	it := s.batch[s.i]
	s.batch[s.i] = staged{}
	s.i++
	if it.err != nil {
		s.err = it.err
		return nil, it.err
	}
	s.cur = it
	return it.e, nil
}

// Open implements tarsplit.FileOpener.
func (s *rebuildSide) Open(name string) (io.ReadCloser, error) {
	c := &s.cur
	if fi := c.seen; fi != nil && c.clean == name {
		c.seen = nil
		dir, base := SplitDirBase(name)
		if d, err := s.dirs.dirFile(dir); err == nil {
			if f := openRegularAt(d, base, fi); f != nil {
				if s.probe.probing() {
					f.probe = s.probe
				}
				if a := c.px; a != nil && a.clean == name {
					c.px = nil
					got, err := f.xattrs(name)
					s.keep(a, got, err)
				}
				return f, nil
			}
		}
	}
	return s.next.Open(name)
}

// settle lists by path the xattrs of the current record's file when the
// rebuild did not open it.
func (s *rebuildSide) settle() {
	if a := s.cur.px; a != nil {
		s.cur.px = nil
		got, err := s.dirs.Xattrs(a.clean)
		s.keep(a, got, err)
	}
}

// keep records a listing unless there is nothing to compare (no xattr on
// disk or in the header: most files).
func (s *rebuildSide) keep(a *attrs, got map[string]string, err error) {
	if err == nil && len(got) == 0 && len(a.xattrs) == 0 {
		return
	}
	s.xs = append(s.xs, xattrResult{a, got, err})
}

// close releases the rebuild's directory descriptors.
func (s *rebuildSide) close() { s.dirs.Close() }

// replayXattrs compares, in record order, the xattrs the rebuild listed.
func (o *diskObserver) replayXattrs(s *rebuildSide) {
	for _, r := range s.xs {
		o.compareXattrsGot(r.a, r.got, r.err)
	}
	s.xs = nil
}
