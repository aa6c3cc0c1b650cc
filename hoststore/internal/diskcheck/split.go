package diskcheck

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"

	"github.com/layercheck/layercheck/tarsplit"
)

// splitTap passes a tar-split's records on (to the rebuild) and, from the
// same decode, gives each entry's tar header as tar-split itself recorded it:
// a tar reader runs in step over the records' segments, with zeros standing
// for file data (skipped by Seek, never copied), so every header is where the
// original archive had it, whatever the files on disk hold. One decode of
// the tar-split thus feeds the rebuild, the disk observer and, for
// full-rootfs layouts, the layer's replay operations.
type splitTap struct {
	src    tarsplit.EntrySource
	q      skelQueue
	tr     *tar.Reader
	header func(*tar.Header) // nil: none
	record bool              // keep the replay operations
	ops    []replayOp
	// hdrErr: the headers could not be read from here on (the tar reader's
	// error); the records still pass.
	hdrErr error
	// eof: the source was read to its end without an error.
	eof bool
}

func newSplitTap(src tarsplit.EntrySource, header func(*tar.Header), record bool) *splitTap {
	t := &splitTap{src: src, header: header, record: record}
	t.tr = tar.NewReader(&t.q)
	return t
}

// Next implements tarsplit.EntrySource.
func (t *splitTap) Next() (*tarsplit.Entry, error) {
	e, err := t.src.Next()
	if err == io.EOF {
		t.q.end = true
		if t.hdrErr == nil {
			// What follows the last entry must be the end of the archive.
			if h, herr := t.tr.Next(); herr != io.EOF {
				if herr == nil {
					herr = errFooter(h)
				}
				t.hdrErr = herr
			}
		}
		t.q.reset()
		t.eof = true
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	switch e.Type {
	case tarsplit.SegmentEntry:
		if t.hdrErr == nil && len(e.Payload) > 0 {
			t.q.push(e.Payload, 0)
		}
	case tarsplit.FileEntry:
		var h *tar.Header
		if t.hdrErr == nil {
			if e.Size > 0 && !headerOnly(e.Typeflag, e.Name) {
				t.q.push(nil, e.Size)
			}
			if h, err = t.tr.Next(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				t.hdrErr, h = err, nil
				t.q.reset()
			}
		}
		if h != nil && t.header != nil {
			t.header(h)
		}
		if t.record {
			t.addOp(e, h)
		}
	}
	return e, nil
}

func errFooter(h *tar.Header) error {
	return errors.New("the tar holds an entry past tar-split's last record: " + h.Name)
}

// drain reads the rest of the source (a replay that does not rebuild).
func (t *splitTap) drain() error {
	for {
		if _, err := t.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// replay operations, as go-archive's UnpackLayer applies a layer's entries
// (FORMATS 2.4, 2.5).
const (
	opAdd      = iota // an entry: replaces the path (a non-directory also what was below it)
	opWhiteout        // .wh.<name>: removes the path and all below it
	opOpaque          // .wh..wh..opq: removes the directory's entries of lower layers
)

// replayOp is one entry of a layer, reduced to what the replay of a
// full-rootfs chain needs.
type replayOp struct {
	op   uint8
	kind byte   // opAdd: the tar type flag
	path string // cleaned; opOpaque: the directory
	// hdr (opAdd) is the entry's header, kept for the comparison of the
	// inherited copies in the layers above (nil: tar-split's headers did
	// not parse up to here, so the path's copies are not compared).
	hdr *tar.Header
	// crc is the CRC-64 tar-split records for a regular file's data
	// (size > 0), compared with the inherited copies' bytes.
	crc uint64
}

// addOp records the replay operation of a file record (tar-split's own
// name and type flag; the parsed header only for the inherited copies).
func (t *splitTap) addOp(e *tarsplit.Entry, h *tar.Header) {
	if e.Unsafe {
		return
	}
	clean, ok := CleanEntry(string(e.Name))
	if !ok || clean == "." || isPlnk(clean) {
		return
	}
	dir, base := SplitDirBase(clean)
	if base == WhOpaque {
		t.ops = append(t.ops, replayOp{op: opOpaque, path: dir})
		return
	}
	if name, ok := strings.CutPrefix(base, WhPrefix); ok {
		t.ops = append(t.ops, replayOp{op: opWhiteout, path: joinClean(dir, name)})
		return
	}
	kind := e.Typeflag
	if kind == 0 && bytes.HasSuffix(e.Name, []byte("/")) {
		kind = tar.TypeDir
	}
	op := replayOp{op: opAdd, kind: kind, path: clean}
	if h != nil {
		if hc, ok := CleanEntry(h.Name); ok && hc == clean {
			op.hdr = lowerHeader(h)
		}
	}
	if e.Size > 0 && len(e.Payload) == tarsplit.CRCSize {
		op.crc = binary.BigEndian.Uint64(e.Payload)
	}
	t.ops = append(t.ops, op)
}

// lowerHeader keeps the fields of h the inherited-entry comparison reads.
func lowerHeader(h *tar.Header) *tar.Header {
	return &tar.Header{Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size, Mode: h.Mode,
		Uid: h.Uid, Gid: h.Gid, Devmajor: h.Devmajor, Devminor: h.Devminor}
}

// errDry: the tar reader wanted bytes past the records passed so far, so
// tar-split's records and the headers in its segments disagree.
var errDry = errors.New("a tar header spans tar-split's file records")

// skelQueue is the tar reader's input: the segments passed so far and, for
// each file record, its size in zeros (skipped by Seek).
type skelQueue struct {
	items []skelItem
	head  int
	end   bool // the source is exhausted: an empty queue is the end
	pos   int64
}

type skelItem struct {
	b     []byte
	zeros int64
}

func (q *skelQueue) push(b []byte, zeros int64) {
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	q.items = append(q.items, skelItem{b: b, zeros: zeros})
}

func (q *skelQueue) reset() {
	clear(q.items)
	q.items, q.head = q.items[:0], 0
}

// Read implements io.Reader.
func (q *skelQueue) Read(p []byte) (int, error) {
	for q.head < len(q.items) {
		it := &q.items[q.head]
		switch {
		case len(p) == 0:
			return 0, nil
		case len(it.b) > 0:
			n := copy(p, it.b)
			if it.b = it.b[n:]; len(it.b) == 0 {
				it.b = nil
			}
			q.pos += int64(n)
			return n, nil
		case it.zeros > 0:
			n := min(int64(len(p)), it.zeros)
			clear(p[:n])
			it.zeros -= n
			q.pos += n
			return int(n), nil
		}
		q.head++
	}
	if q.end {
		return 0, io.EOF
	}
	return 0, errDry
}

// Seek implements io.Seeker for the tar reader's skips (io.SeekCurrent
// forward only); it stops early at the end of what is queued.
func (q *skelQueue) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return q.pos, errors.New("skelQueue: only forward seeks from the current position")
	}
	for off > 0 && q.head < len(q.items) {
		it := &q.items[q.head]
		if n := min(off, int64(len(it.b))); n > 0 {
			if it.b = it.b[n:]; len(it.b) == 0 {
				it.b = nil
			}
			off -= n
			q.pos += n
		}
		if n := min(off, it.zeros); n > 0 {
			it.zeros -= n
			off -= n
			q.pos += n
		}
		if len(it.b) == 0 && it.zeros == 0 {
			q.head++
		}
	}
	return q.pos, nil
}
