package tarsplit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// MaxSegmentSize bounds the decoded payload of one record. tar-split writes
// header segments of a few KiB and trailing data in 1 MiB chunks; anything larger
// is not tar-split output and would only cost memory.
const MaxSegmentSize = 16 << 20

// maxSegment is MaxSegmentSize, lowered by tests.
var maxSegment int64 = MaxSegmentSize

// maxLine is the longest JSON line accepted for a payload limit.
func maxLine(limit int64) int {
	return base64.StdEncoding.EncodedLen(int(limit)) + 64<<10 // room for the name and the other fields
}

// Reader decodes a tar-split.json.gz stream record by record. It implements
// [EntrySource].
type Reader struct {
	gz      *gzip.Reader
	br      *bufio.Reader
	line    int   // lines read so far
	pos     int   // next expected position
	err     error // sticky
	track   *tracker
	lineBuf []byte
	noFast  bool // decode every record with encoding/json (tests, benchmarks)
}

// Open starts decoding a tar-split.json.gz stream. It fails only when the gzip
// header cannot be read; every later problem is returned by [Reader.Next].
func Open(r io.Reader) (*Reader, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, &FormatError{Err: fmt.Errorf("reading gzip header: %w", describeGzip(err))}
	}
	return &Reader{gz: gz, br: bufio.NewReaderSize(gz, 64<<10), track: newTracker(true)}, nil
}

// OpenJSON starts decoding tar-split records already decompressed (the JSON
// lines zstd:chunked layers carry in a zstd frame of their own).
func OpenJSON(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), track: newTracker(true)}
}

// jsonEntry is a record as tar-split's JSON packer writes it; the fallback
// decoder of [rawRecord.parse].
type jsonEntry struct {
	Type     int    `json:"type"`
	Name     string `json:"name"`
	NameRaw  []byte `json:"name_raw"`
	Size     int64  `json:"size"`
	Payload  []byte `json:"payload"`
	Position *int   `json:"position"`
}

// Next returns the next record, or io.EOF after the last one. Malformed input
// gives a [*FormatError] naming the line; the error is sticky.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
	}
	return e, err
}

// Line returns the number of lines read so far.
func (r *Reader) Line() int { return r.line }

func (r *Reader) next() (*Entry, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue // tolerated, as json.Decoder does
		}
		return r.decode(line)
	}
}

// readLine returns the next line without its newline. At the end of the stream
// it returns io.EOF.
func (r *Reader) readLine() ([]byte, error) {
	limit := maxLine(maxSegment)
	r.lineBuf = r.lineBuf[:0]
	r.line++
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.lineBuf)+len(chunk) > limit {
			return nil, &FormatError{Line: r.line, Err: fmt.Errorf("record longer than %d bytes (payload limit %d bytes): %w", limit, maxSegment, ErrLimit)}
		}
		r.lineBuf = append(r.lineBuf, chunk...)
		switch {
		case err == nil:
			return r.lineBuf[:len(r.lineBuf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(r.lineBuf) == 0 {
				r.line--
				return nil, io.EOF
			}
			return r.lineBuf, nil // last line without a newline
		default:
			return nil, &FormatError{Line: r.line, Err: fmt.Errorf("reading gzip stream: %w", describeGzip(err))}
		}
	}
}

// describeGzip makes the usual gzip failures readable.
func describeGzip(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated gzip stream: %w", err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("empty or truncated gzip stream: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, gzip.ErrChecksum):
		return fmt.Errorf("corrupt gzip stream (checksum): %w", err)
	case errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("not a gzip stream or corrupt gzip header: %w", err)
	}
	return err
}

func (r *Reader) decode(line []byte) (*Entry, error) {
	var rec rawRecord
	if err := rec.parse(line, r.noFast); err != nil {
		return nil, &FormatError{Line: r.line, Err: fmt.Errorf("malformed JSON record: %w", err)}
	}
	bad := func(format string, args ...any) error {
		return &FormatError{Line: r.line, Err: fmt.Errorf(format, args...)}
	}
	if !rec.hasPos {
		return nil, bad("record has no position")
	}
	if rec.pos != r.pos {
		return nil, bad("position %d out of order, want %d", rec.pos, r.pos)
	}
	if int64(len(rec.payload)) > maxSegment {
		return nil, bad("payload of %d bytes over the limit of %d: %w", len(rec.payload), maxSegment, ErrLimit)
	}
	e := &Entry{Type: Type(rec.typ), Position: r.pos, Line: r.line}
	switch e.Type {
	case SegmentEntry:
		if len(rec.name) > 0 || rec.size != 0 {
			return nil, bad("segment record with a name or size")
		}
		e.Payload = rec.payload
		r.track.segment(e, rec.payload)
	case FileEntry:
		e.Name = rec.name
		if rec.size < 0 {
			return nil, bad("file %q has negative size %d", e.Name, rec.size)
		}
		e.Size = rec.size
		if rec.size > 0 {
			if len(rec.payload) != CRCSize {
				return nil, bad("file %q: checksum payload is %d bytes, want %d", e.Name, len(rec.payload), CRCSize)
			}
			e.Payload = rec.payload
		}
		r.track.file(e)
	default:
		return nil, bad("unknown record type %d", rec.typ)
	}
	r.pos++
	return e, nil
}
