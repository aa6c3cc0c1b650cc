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
	Position int    // record position (the same in both, as entries are compared in order)
	Name     string // the file entry's name (a's, or b's when a has none); "" for segments
	// Field is what differs: "type", "name", "size", "crc" or "segment" for a
	// segment's bytes; "missing-in-a" / "missing-in-b" when one tar-split ends first.
	Field string
	A, B  string // the two values, rendered for people
}

func (d Difference) String() string {
	subject := fmt.Sprintf("entry %d", d.Position)
	if d.Name != "" {
		subject += fmt.Sprintf(" (%q)", d.Name)
	}
	return fmt.Sprintf("%s: %s differs: %s vs %s", subject, d.Field, d.A, d.B)
}

// Diff is the result of [Compare].
type Diff struct {
	EntriesA, EntriesB int // records read from each source (trailing empty segments included)
	// TrailingEmptyA and TrailingEmptyB report a final empty segment (written by
	// tar-split <= v0.11.3, Docker <= 24). It is not a difference.
	TrailingEmptyA, TrailingEmptyB bool
	Count                          int          // entries that differ
	Differences                    []Difference // the first MaxDifferences of them, in order
	// Err is a failure reading either source; the comparison stopped there and
	// the result is incomplete.
	Err error
}

// Equal reports that both sources were read to the end and no entry differs.
func (d *Diff) Equal() bool { return d.Err == nil && d.Count == 0 }

// First returns the first difference, or nil.
func (d *Diff) First() *Difference {
	if len(d.Differences) == 0 {
		return nil
	}
	return &d.Differences[0]
}

func (d *Diff) String() string {
	switch {
	case d.Err != nil && d.Count == 0:
		return fmt.Sprintf("tar-split comparison incomplete: %v", d.Err)
	case d.Err != nil:
		return fmt.Sprintf("%d differing entries before the comparison stopped (%v); first: %s", d.Count, d.Err, d.Differences[0])
	case d.Count == 0:
		return fmt.Sprintf("tar-splits equal (%d entries)", d.EntriesA)
	}
	return fmt.Sprintf("%d differing entries; first: %s", d.Count, d.Differences[0])
}

func (d *Diff) add(df Difference) {
	d.Count++
	if len(d.Differences) < MaxDifferences {
		d.Differences = append(d.Differences, df)
	}
}

// Compare reads a and b to their ends and compares them entry by entry: the
// type; for file entries the name bytes, size and CRC; for segments the length
// and sha256 of the raw bytes. Empty segments at the end of either side are
// ignored (FORMATS 2.2: tar-split v0.11.4 stopped writing one). Compare never
// returns nil.
func Compare(a, b EntrySource) *Diff {
	d := &Diff{}
	var lastA, lastB *Entry
	for {
		ea, errA := a.Next()
		if errA != nil && errA != io.EOF {
			d.Err = fmt.Errorf("reading first tar-split: %w", errA)
			return d
		}
		eb, errB := b.Next()
		if errB != nil && errB != io.EOF {
			d.Err = fmt.Errorf("reading second tar-split: %w", errB)
			return d
		}
		if ea != nil {
			d.EntriesA++
			lastA = ea
		}
		if eb != nil {
			d.EntriesB++
			lastB = eb
		}
		switch {
		case ea == nil && eb == nil:
			d.TrailingEmptyA = isEmptySegment(lastA)
			d.TrailingEmptyB = isEmptySegment(lastB)
			return d
		case ea == nil:
			d.Err = tail(d, b, eb, &d.EntriesB, &d.TrailingEmptyB, false)
			return d
		case eb == nil:
			d.Err = tail(d, a, ea, &d.EntriesA, &d.TrailingEmptyA, true)
			return d
		}
		compareEntries(d, ea, eb)
	}
}

func isEmptySegment(e *Entry) bool { return e != nil && e.Type == SegmentEntry && e.Size == 0 }

// tail handles the entries of the source that goes on after the other one
// ended: empty segments only are the old trailing record and no difference;
// anything else makes every remaining entry a difference.
func tail(d *Diff, src EntrySource, first *Entry, count *int, trailingEmpty *bool, isA bool) error {
	rest := []*Entry{first}
	allEmpty := isEmptySegment(first)
	extra := 0
	var err error
	for {
		e, nerr := src.Next()
		if nerr != nil {
			if nerr != io.EOF {
				which := "second"
				if isA {
					which = "first"
				}
				err = fmt.Errorf("reading %s tar-split: %w", which, nerr)
			}
			break
		}
		*count++
		if allEmpty && !isEmptySegment(e) {
			allEmpty = false
		}
		if len(rest) < MaxDifferences {
			rest = append(rest, e)
		} else {
			extra++ // past the cap: counted, not kept
		}
	}
	if allEmpty {
		*trailingEmpty = true
		return err
	}
	d.Count += extra
	for _, e := range rest {
		if isA {
			compareEntries(d, e, nil)
		} else {
			compareEntries(d, nil, e)
		}
	}
	return err
}

func eofNil(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// compareEntries records how a and b differ; either may be nil (one side ended).
func compareEntries(d *Diff, a, b *Entry) {
	switch {
	case a == nil && b == nil:
		return
	case a == nil:
		d.add(Difference{Position: b.Position, Name: string(b.Name), Field: "missing-in-a", A: "(end)", B: describe(b)})
		return
	case b == nil:
		d.add(Difference{Position: a.Position, Name: string(a.Name), Field: "missing-in-b", A: describe(a), B: "(end)"})
		return
	}
	name := string(a.Name)
	if name == "" {
		name = string(b.Name)
	}
	df := Difference{Position: a.Position, Name: name}
	switch {
	case a.Type != b.Type:
		df.Field, df.A, df.B = "type", describe(a), describe(b)
	case a.Type == FileEntry && !bytes.Equal(a.Name, b.Name):
		df.Field, df.A, df.B = "name", fmt.Sprintf("%q", a.Name), fmt.Sprintf("%q", b.Name)
	case a.Type == FileEntry && a.Size != b.Size:
		df.Field, df.A, df.B = "size", fmt.Sprint(a.Size), fmt.Sprint(b.Size)
	case a.Type == FileEntry && !bytes.Equal(a.Payload, b.Payload):
		df.Field, df.A, df.B = "crc", crcString(a.Payload), crcString(b.Payload)
	case a.Type == SegmentEntry && (a.Size != b.Size || a.SegmentSum != b.SegmentSum):
		df.Field = "segment"
		df.A, df.B = segmentString(a), segmentString(b)
		if where := firstByteDiff(a, b); where != "" {
			df.A += where
			df.B += where
		}
	default:
		return
	}
	d.add(df)
}

func describe(e *Entry) string {
	if e.Type == SegmentEntry {
		return segmentString(e)
	}
	if e.Type == FileEntry {
		return fmt.Sprintf("file %q size %d", e.Name, e.Size)
	}
	return e.Type.String()
}

func crcString(p []byte) string {
	if p == nil {
		return "(none)"
	}
	return hex.EncodeToString(p)
}

func segmentString(e *Entry) string {
	return fmt.Sprintf("segment of %d bytes sha256:%s", e.Size, hex.EncodeToString(e.SegmentSum[:])[:16])
}

// firstByteDiff locates the first differing byte of two segments when both kept
// their raw bytes, naming the ustar field when it falls in a header block at the
// end of the segments.
func firstByteDiff(a, b *Entry) string {
	if a.Payload == nil || b.Payload == nil || a.Type != SegmentEntry {
		return ""
	}
	n := min(len(a.Payload), len(b.Payload))
	i := 0
	for i < n && a.Payload[i] == b.Payload[i] {
		i++
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, " (first difference at byte %d", i)
	// Header blocks sit at the end of a segment; count blocks back from the end.
	if len(a.Payload) == len(b.Payload) && len(a.Payload) >= blockSize {
		fromEnd := len(a.Payload) - i
		blockStart := len(a.Payload) - ((fromEnd+blockSize-1)/blockSize)*blockSize
		if blockStart >= 0 && validChecksum(a.Payload[blockStart:blockStart+blockSize]) {
			fmt.Fprintf(&sb, ", header field %s", ustarField(i-blockStart))
		}
	}
	sb.WriteString(")")
	return sb.String()
}
