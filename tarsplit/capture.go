package tarsplit

import (
	"errors"
	"fmt"
	"io"

	"github.com/layercheck/layercheck/internal/crc64iso"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

// Capture defaults.
const (
	// DefaultMaxHoleBytes is how far the file payloads read by the disassembler
	// may run ahead of the bytes written to the capture. Only sparse files do
	// that (tar-split reads them expanded, holes included); a small tar can
	// declare terabytes of holes, and checksumming them would take hours.
	DefaultMaxHoleBytes = 256 << 20
	// DefaultMaxKeptRawBytes caps the raw segment bytes a capture keeps.
	DefaultMaxKeptRawBytes = 16 << 20
	// DefaultMaxEntries caps the entries a capture keeps (two per tar header, so
	// about a million files; a few hundred bytes each with the name).
	DefaultMaxEntries = 2 << 20
	// maxKeptSegment is the largest single segment kept raw (header segments are
	// a few KiB; padding chunks after the archive are up to 1 MiB).
	maxKeptSegment = 64 << 10
)

// CaptureOptions tunes a [Capture]. The zero value gives the defaults.
type CaptureOptions struct {
	// JSON, if set, receives tar-split's own JSON records (uncompressed, one per
	// line), the content of a tar-split.json.gz. It is written from the capture's
	// goroutine and must not be used by the caller before Close returns.
	JSON io.Writer
	// MaxHoleBytes bounds sparse-file expansion (see DefaultMaxHoleBytes); past it
	// the capture fails with an error matching ErrLimit. 0 means the default.
	MaxHoleBytes int64
	// MaxKeptRawBytes caps the raw segment bytes kept in memory (segment hashes
	// and lengths are always kept). 0 means the default, < 0 keeps none.
	MaxKeptRawBytes int64
	// MaxEntries caps the number of entries; past it the capture fails with an
	// error matching ErrLimit. 0 means DefaultMaxEntries.
	MaxEntries int
}

// Capture runs tar-split's disassembler (asm.NewInputTarStreamWithDone with
// storage.NewJSONPacker) over the uncompressed tar stream written to it, in a
// goroutine, and keeps the entries as a compact in-memory list: names, sizes,
// CRCs, and the sha256 and length of every segment, with raw segment bytes only
// up to a cap. It streams: memory does not grow with file sizes.
//
// Write never blocks forever and never fails: once the disassembler stops on an
// error (a duplicate path, a malformed tar), later writes are discarded and the
// error is reported by Close. After Close, the capture is an [EntrySource].
// Write and Close must be called from one goroutine.
type Capture struct {
	pw      *io.PipeWriter
	done    chan struct{}
	stopped bool // the disassembler no longer reads; writes are discarded
	closed  bool
	written int64

	// Set by the goroutine, read after done is closed.
	entries []Entry
	err     error

	cursor int
}

// NewCapture starts a capture with the default options.
func NewCapture() *Capture { return NewCaptureWith(CaptureOptions{}) }

// NewCaptureWith starts a capture with options.
func NewCaptureWith(opts CaptureOptions) *Capture {
	if opts.MaxHoleBytes <= 0 {
		opts.MaxHoleBytes = DefaultMaxHoleBytes
	}
	if opts.MaxKeptRawBytes == 0 {
		opts.MaxKeptRawBytes = DefaultMaxKeptRawBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	jsonOut := opts.JSON
	if jsonOut == nil {
		jsonOut = io.Discard
	}
	pr, pw := io.Pipe()
	c := &Capture{pw: pw, done: make(chan struct{})}
	in := &countReader{r: pr}
	p := &capturePacker{
		inner:   storage.NewJSONPacker(jsonOut),
		track:   newTracker(false), // the JSON packer applies the duplicate rule
		rawLeft: opts.MaxKeptRawBytes,
		max:     opts.MaxEntries,
	}
	fp := &crcPutter{in: in, maxHole: opts.MaxHoleBytes}
	go c.run(pr, in, p, fp)
	return c
}

func (c *Capture) run(pr *io.PipeReader, in *countReader, p *capturePacker, fp *crcPutter) {
	defer close(c.done)
	out, done, err := asm.NewInputTarStreamWithDone(in, p, fp)
	if err != nil {
		c.err = fmt.Errorf("starting tar-split disassembler: %w", err)
		pr.CloseWithError(c.err)
		return
	}
	// The disassembler tees the stream to out; nobody needs it.
	_, copyErr := io.Copy(io.Discard, out)
	derr := <-done
	if derr == nil && copyErr != nil {
		derr = copyErr
	}
	// Unblock and stop the writer side for good: from now on Write discards.
	pr.CloseWithError(errCaptureStopped)
	c.entries = p.entries
	if derr != nil {
		var dup *DuplicatePathError
		switch {
		case errors.As(derr, &dup), errors.Is(derr, ErrLimit):
			c.err = fmt.Errorf("capturing tar-split at offset %d: %w", in.n, derr)
		default:
			c.err = fmt.Errorf("capturing tar-split: disassembling the tar stream at offset %d: %w", in.n, derr)
		}
	}
}

var errCaptureStopped = errors.New("tar-split capture stopped")

// Write feeds tar stream bytes to the disassembler. It always consumes all of p
// and returns a nil error; a disassembly failure is reported by Close.
func (c *Capture) Write(p []byte) (int, error) {
	if c.closed {
		return 0, errors.New("tar-split capture: write after close")
	}
	c.written += int64(len(p))
	if c.stopped {
		return len(p), nil
	}
	if _, err := c.pw.Write(p); err != nil {
		c.stopped = true // the disassembler failed; keep draining into nothing
	}
	return len(p), nil
}

// Close ends the stream, waits for the disassembler and returns the captured
// entries and any disassembly error: a [*DuplicatePathError] (errors.Is
// ErrDuplicatePath), a tar format error, a truncated stream, or ErrLimit. The
// entries read before an error are returned with it. Close may be called again;
// it returns the same result.
func (c *Capture) Close() ([]Entry, error) {
	if !c.closed {
		c.closed = true
		c.pw.Close()
	}
	<-c.done
	return c.entries, c.err
}

// Entries returns the captured entries. Valid after Close.
func (c *Capture) Entries() []Entry {
	if !c.closed {
		return nil
	}
	<-c.done
	return c.entries
}

// Written returns the number of bytes written to the capture.
func (c *Capture) Written() int64 { return c.written }

// Next implements [EntrySource] over the captured entries (after Close). After
// the last entry it returns io.EOF, or the capture's error if it failed.
func (c *Capture) Next() (*Entry, error) {
	if !c.closed {
		return nil, errors.New("tar-split capture: Next before Close")
	}
	<-c.done
	if c.cursor < len(c.entries) {
		c.cursor++
		return &c.entries[c.cursor-1], nil
	}
	if c.err != nil {
		return nil, c.err
	}
	return nil, io.EOF
}

// Rewind makes Next start again from the first entry.
func (c *Capture) Rewind() { c.cursor = 0 }

// capturePacker is a storage.Packer that passes every entry to tar-split's JSON
// packer (for its duplicate-path rule, its positions and the optional JSON
// output) and keeps a compact copy.
type capturePacker struct {
	inner   storage.Packer
	track   *tracker
	entries []Entry
	rawLeft int64
	max     int
}

func (p *capturePacker) AddEntry(se storage.Entry) (int, error) {
	if len(p.entries) >= p.max {
		return -1, fmt.Errorf("more than %d tar-split entries: %w", p.max, ErrLimit)
	}
	pos, err := p.inner.AddEntry(se)
	if err != nil {
		if errors.Is(err, storage.ErrDuplicatePath) {
			return -1, &DuplicatePathError{Name: se.GetName(), Position: len(p.entries)}
		}
		return -1, fmt.Errorf("packing tar-split entry: %w", err)
	}
	e := Entry{Type: Type(se.Type), Position: pos}
	switch se.Type {
	case storage.SegmentType:
		// se.Payload aliases the tar reader's buffer: hash it now, copy what is kept.
		p.track.segment(&e, se.Payload)
		if n := int64(len(se.Payload)); n <= maxKeptSegment && n <= p.rawLeft {
			e.Payload = append([]byte(nil), se.Payload...)
			p.rawLeft -= n
		}
	case storage.FileType:
		e.Name = se.GetNameBytes()
		e.Size = se.Size
		if len(se.Payload) > 0 {
			e.Payload = append([]byte(nil), se.Payload...)
		}
		p.track.file(&e)
	}
	p.entries = append(p.entries, e)
	return pos, nil
}

// crcPutter is a storage.FilePutter that checksums file payloads like tar-split's
// discard putter, but refuses to expand a sparse file past the hole budget.
type crcPutter struct {
	in      *countReader // bytes the disassembler has read from the stream
	payload int64        // file payload bytes handed out by the tar reader
	maxHole int64
	buf     [32 << 10]byte
}

func (fp *crcPutter) Put(name string, r io.Reader) (int64, []byte, error) {
	c := crc64iso.New()
	var n int64
	for {
		nr, err := r.Read(fp.buf[:])
		if nr > 0 {
			c.Write(fp.buf[:nr])
			n += int64(nr)
			fp.payload += int64(nr)
			// Without holes the payload read can never exceed the stream read.
			if fp.payload-fp.in.n > fp.maxHole {
				return n, nil, fmt.Errorf("sparse file %q expands past %d bytes of holes: %w", name, fp.maxHole, ErrLimit)
			}
		}
		if err == io.EOF {
			return n, c.Sum(nil), nil
		}
		if err != nil {
			return n, nil, err
		}
	}
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
