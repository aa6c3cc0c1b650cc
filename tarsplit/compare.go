package tarsplit

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// MaxDifferences caps Diff.Differences; Diff.Count keeps counting.
const MaxDifferences = 100

// Difference is one entry that differs between two tar-splits.
type Difference struct {
	Position int    // record position in the first tar-split (in the second when the first has ended)
	Name     string // the file entry's name; for segments, the file entry the segment follows ("" at the start)
	// Field is what differs: "type", "name", "size", "crc", "segment" (the raw
	// bytes of a run of segments), or "missing-in-a" / "missing-in-b" when one
	// tar-split ends first.
	Field string
	A, B  string // the two values, rendered for people
}

// String renders the difference for people.
func (d Difference) String() string {
	subject := fmt.Sprintf("entry %d", d.Position)
	if d.Name != "" {
		if d.Field == "segment" {
			subject += fmt.Sprintf(" (after %q)", d.Name)
		} else {
			subject += fmt.Sprintf(" (%q)", d.Name)
		}
	}
	return fmt.Sprintf("%s: %s differs: %s vs %s", subject, d.Field, d.A, d.B)
}

// Diff is the result of [Compare].
type Diff struct {
	EntriesA, EntriesB int // records read from each source
	// TrailingEmptyA and TrailingEmptyB report a final empty segment (written by
	// tar-split <= v0.11.3, Docker <= 24). It is not a difference.
	TrailingEmptyA, TrailingEmptyB bool
	Count                          int          // differences found
	Differences                    []Difference // the first MaxDifferences of them, in order
	// Err is a failure reading either source; the comparison stopped there and
	// the result is incomplete.
	Err error
}

// Equal reports that both sources were read to the end and nothing differs.
func (d *Diff) Equal() bool { return d.Err == nil && d.Count == 0 }

// First returns the first difference, or nil.
func (d *Diff) First() *Difference {
	if len(d.Differences) == 0 {
		return nil
	}
	return &d.Differences[0]
}

// String summarises the comparison: equal, or the count and the first difference.
func (d *Diff) String() string {
	switch {
	case d.Err != nil && d.Count == 0:
		return fmt.Sprintf("tar-split comparison incomplete: %v", d.Err)
	case d.Err != nil:
		return fmt.Sprintf("%d differences before the comparison stopped (%v); first: %s", d.Count, d.Err, d.Differences[0])
	case d.Count == 0:
		return fmt.Sprintf("tar-splits equal (%d and %d entries)", d.EntriesA, d.EntriesB)
	}
	return fmt.Sprintf("%d differences; first: %s", d.Count, d.Differences[0])
}

func (d *Diff) add(df Difference) {
	d.Count++
	if len(d.Differences) < MaxDifferences {
		d.Differences = append(d.Differences, df)
	}
}

// Compare reads a and b to their ends and compares them: file entries one by
// one (name bytes, size, CRC), and the segments between them as runs (length
// and sha256 of their concatenated raw bytes, [Entry.RunSum]). Comparing runs
// rather than single segments makes the comparison blind to where tar-split cut
// data it read in reader-sized chunks (after the end-of-archive blocks), and to
// empty segments, which add no bytes: the trailing empty segment tar-split
// <= v0.11.3 wrote (FORMATS 2.2) is not a difference. Compare never returns nil.
func Compare(a, b EntrySource) *Diff {
	d := &Diff{}
	ra := &itemReader{src: a, count: &d.EntriesA}
	rb := &itemReader{src: b, count: &d.EntriesB}
	defer func() {
		d.TrailingEmptyA = isEmptySegment(ra.last)
		d.TrailingEmptyB = isEmptySegment(rb.last)
	}()
	for {
		ia, err := ra.next()
		if err != nil {
			d.Err = fmt.Errorf("reading first tar-split: %w", err)
			return d
		}
		ib, err := rb.next()
		if err != nil {
			d.Err = fmt.Errorf("reading second tar-split: %w", err)
			return d
		}
		switch {
		case ia == nil && ib == nil:
			return d
		case ia == nil:
			d.Err = drain(d, rb, ib, false)
			return d
		case ib == nil:
			d.Err = drain(d, ra, ia, true)
			return d
		}
		compareItems(d, ia, ib)
	}
}

// drain records the items of the source that goes on after the other ended.
// An empty run (only empty segments) adds no bytes and is no difference.
func drain(d *Diff, r *itemReader, it *item, isA bool) error {
	for it != nil {
		if !(it.file == nil && it.size == 0) {
			if isA {
				compareItems(d, it, nil)
			} else {
				compareItems(d, nil, it)
			}
		}
		var err error
		if it, err = r.next(); err != nil {
			which := "second"
			if isA {
				which = "first"
			}
			return fmt.Errorf("reading %s tar-split: %w", which, err)
		}
	}
	return nil
}

func isEmptySegment(e *Entry) bool { return e != nil && e.Type == SegmentEntry && e.Size == 0 }

// item is a file entry, or a run of consecutive segments.
type item struct {
	file  *Entry // the file entry, or nil for a run
	first *Entry // first segment of the run
	n     int    // segments in the run
	size  int64  // run length in bytes
	sum   [32]byte
	after string // name of the file entry before the run
}

func (it *item) position() int {
	if it.file != nil {
		return it.file.Position
	}
	return it.first.Position
}

// itemReader groups an EntrySource into items.
type itemReader struct {
	src      EntrySource
	count    *int
	peek     *Entry
	last     *Entry // last entry read
	lastFile string
	done     bool
}

func (r *itemReader) read() (*Entry, error) {
	if r.peek != nil {
		e := r.peek
		r.peek = nil
		return e, nil
	}
	if r.done {
		return nil, nil
	}
	e, err := r.src.Next()
	if err == io.EOF {
		r.done = true
		return nil, nil
	}
	if err != nil {
		r.done = true
		return nil, err
	}
	*r.count++
	r.last = e
	return e, nil
}

func (r *itemReader) next() (*item, error) {
	e, err := r.read()
	if e == nil || err != nil {
		return nil, err
	}
	if e.Type != SegmentEntry {
		r.lastFile = string(e.Name)
		return &item{file: e}, nil
	}
	it := &item{first: e, n: 1, size: e.RunSize, sum: e.RunSum, after: r.lastFile}
	for {
		e, err := r.read()
		if err != nil {
			return nil, err
		}
		if e == nil {
			return it, nil
		}
		if e.Type != SegmentEntry {
			r.peek = e
			return it, nil
		}
		it.n++
		it.size, it.sum = e.RunSize, e.RunSum
	}
}

// compareItems records how a and b differ; either may be nil (one side ended).
func compareItems(d *Diff, a, b *item) {
	switch {
	case a == nil && b == nil:
		return
	case a == nil:
		d.add(Difference{Position: b.position(), Name: b.name(), Field: "missing-in-a", A: "(end)", B: b.describe()})
		return
	case b == nil:
		d.add(Difference{Position: a.position(), Name: a.name(), Field: "missing-in-b", A: a.describe(), B: "(end)"})
		return
	}
	df := Difference{Position: a.position(), Name: a.name()}
	if df.Name == "" {
		df.Name = b.name()
	}
	fa, fb := a.file, b.file
	switch {
	case (fa == nil) != (fb == nil) || (fa != nil && fa.Type != fb.Type):
		df.Field, df.A, df.B = "type", a.describe(), b.describe()
	case fa != nil && !bytes.Equal(fa.Name, fb.Name):
		df.Field, df.A, df.B = "name", fmt.Sprintf("%q", fa.Name), fmt.Sprintf("%q", fb.Name)
	case fa != nil && fa.Size != fb.Size:
		df.Field, df.A, df.B = "size", fmt.Sprint(fa.Size), fmt.Sprint(fb.Size)
	case fa != nil && !bytes.Equal(fa.Payload, fb.Payload):
		df.Field, df.A, df.B = "crc", crcString(fa.Payload), crcString(fb.Payload)
	case fa == nil && (a.size != b.size || a.sum != b.sum):
		df.Field, df.A, df.B = "segment", a.describe(), b.describe()
		if where := firstByteDiff(a, b); where != "" {
			df.A += where
			df.B += where
		}
	default:
		return
	}
	d.add(df)
}

func (it *item) name() string {
	if it.file != nil {
		return string(it.file.Name)
	}
	return it.after
}

func (it *item) describe() string {
	if it.file != nil {
		if it.file.Type == FileEntry {
			return fmt.Sprintf("file %q size %d", it.file.Name, it.file.Size)
		}
		return fmt.Sprintf("record of type %d", it.file.Type)
	}
	s := fmt.Sprintf("%d bytes sha256:%s", it.size, hex.EncodeToString(it.sum[:])[:16])
	if it.n > 1 {
		s += fmt.Sprintf(" in %d segments", it.n)
	}
	return s
}

func crcString(p []byte) string {
	if p == nil {
		return "(none)"
	}
	return hex.EncodeToString(p)
}

// firstByteDiff locates the first differing byte of two single-segment runs that
// kept their raw bytes, naming the ustar field when it falls in a header block
// at the end of the segments.
func firstByteDiff(a, b *item) string {
	if a.n != 1 || b.n != 1 || a.first.Payload == nil || b.first.Payload == nil {
		return ""
	}
	pa, pb := a.first.Payload, b.first.Payload
	n := min(len(pa), len(pb))
	i := 0
	for i < n && pa[i] == pb[i] {
		i++
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, " (first difference at byte %d", i)
	// Header blocks sit at the end of a segment; count blocks back from the end.
	if len(pa) == len(pb) && i < len(pa) && len(pa) >= blockSize {
		fromEnd := len(pa) - i
		blockStart := len(pa) - ((fromEnd+blockSize-1)/blockSize)*blockSize
		if blockStart >= 0 && validChecksum(pa[blockStart:blockStart+blockSize]) {
			fmt.Fprintf(&sb, ", header field %s", ustarField(i-blockStart))
		}
	}
	sb.WriteString(")")
	return sb.String()
}
