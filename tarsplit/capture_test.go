package tarsplit

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// capture writes b to a new capture in chunks of size step.
func capture(t *testing.T, opts CaptureOptions, b []byte, step int) (*Capture, []Entry, error) {
	t.Helper()
	c := NewCaptureWith(opts)
	for len(b) > 0 {
		n := min(step, len(b))
		w, err := c.Write(b[:n])
		if err != nil || w != n {
			t.Fatalf("Write = %d, %v; want %d, nil", w, err, n)
		}
		b = b[n:]
	}
	entries, err := c.Close()
	return c, entries, err
}

func TestCaptureEqualsTarSplitOutput(t *testing.T) {
	tarball, ts, _ := roundTrip(t)
	for _, step := range []int{1, 1000, 4096, 1 << 20} {
		t.Run(fmt.Sprint(step), func(t *testing.T) {
			c, entries, err := capture(t, CaptureOptions{}, tarball, step)
			if err != nil {
				t.Fatal(err)
			}
			if c.Written() != int64(len(tarball)) {
				t.Errorf("Written %d", c.Written())
			}
			r, err := Open(bytes.NewReader(ts))
			if err != nil {
				t.Fatal(err)
			}
			if d := Compare(c, r); !d.Equal() || d.EntriesA != len(entries) || d.EntriesA != d.EntriesB {
				t.Fatalf("capture vs tar-split: %v (entries %d/%d)", d, d.EntriesA, d.EntriesB)
			}
			// Header segments are small enough to be kept raw, and the flags agree.
			decoded, _ := readAll(t, ts)
			for i, e := range entries {
				want := decoded[i]
				if !bytes.Equal(e.Payload, want.Payload) || e.Typeflag != want.Typeflag || e.Unsafe != want.Unsafe || e.Line != 0 {
					t.Errorf("entry %d (%q) differs from the decoded one", i, e.Name)
				}
			}
		})
	}
}

// The JSON a capture writes is a tar-split Docker could use; assembling it
// reproduces the stream.
func TestCaptureJSONAssembles(t *testing.T) {
	tarball, _, dir := roundTrip(t)
	var gzbuf bytes.Buffer
	gz := gzip.NewWriter(&gzbuf)
	_, _, err := capture(t, CaptureOptions{JSON: gz}, tarball, 777)
	if err != nil {
		t.Fatal(err)
	}
	gz.Close()
	out, st := assemble(t, gzbuf.Bytes(), openRoot(t, dir))
	if sha(out) != sha(tarball) || !st.OK() {
		t.Fatalf("sha equal %v, problems %v", sha(out) == sha(tarball), st.Problems)
	}
}

func TestCaptureKeepsOnlyHashesPastTheCap(t *testing.T) {
	tarball, ts, _ := roundTrip(t)
	tarball = append(tarball, make([]byte, 3<<19+5)...) // trailing data after the end blocks
	c, entries, err := capture(t, CaptureOptions{MaxKeptRawBytes: -1}, tarball, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		if e.Type == SegmentEntry {
			if e.Payload != nil {
				t.Fatalf("segment %d kept %d raw bytes with MaxKeptRawBytes -1", e.Position, len(e.Payload))
			}
			total += e.Size
		}
	}
	var payload int64
	for _, e := range layerEntries() {
		payload += int64(len(e.body))
	}
	if total+payload != int64(len(tarball)) {
		t.Errorf("segments %d + payload %d != stream %d", total, payload, len(tarball))
	}
	// The hashes still tell a real difference: the original tar-split lacks the trailing data.
	r, _ := Open(bytes.NewReader(ts))
	d := Compare(c, r)
	if d.Equal() || d.Count != 1 || d.First().Field != "segment" || !strings.Contains(d.First().A, fmt.Sprint(1024+3<<19+5)) || !strings.Contains(d.First().B, "1024 bytes") {
		t.Fatalf("diff %v, want one segment difference at the end", d)
	}
	// Equal trailing data compares equal through hashes alone, although the
	// capture read it in 64 KiB chunks and tar-split's own run in 1 MiB ones.
	ts2 := tarSplitOf(t, tarball)
	c.Rewind()
	r2, _ := Open(bytes.NewReader(ts2))
	if d := Compare(c, r2); !d.Equal() {
		t.Fatalf("diff %v", d)
	}
}

func TestCaptureDuplicatePathKeepsDraining(t *testing.T) {
	big := pattern(5<<20, 9)
	tarball := buildTar(t, []tarEntry{reg("a/b", []byte("one")), reg("./a/b", []byte("two")), reg("c", big)})
	_, entries, err := capture(t, CaptureOptions{}, tarball, 32<<10)
	var dup *DuplicatePathError
	if !errors.As(err, &dup) || !errors.Is(err, ErrDuplicatePath) || dup.Name != "./a/b" {
		t.Fatalf("Close error %v, want a DuplicatePathError for ./a/b", err)
	}
	if len(entries) != 3 || string(entries[1].Name) != "a/b" { // header, a/b, next header
		t.Errorf("entries before the error: %d", len(entries))
	}
}

func TestCaptureGarbageNeverBlocks(t *testing.T) {
	garbage := pattern(3<<20, 7)
	c, _, err := capture(t, CaptureOptions{}, garbage, 100<<10)
	if err == nil || !strings.Contains(err.Error(), "disassembling") {
		t.Fatalf("Close error %v, want a disassembly error", err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := c.Next(); err == nil || err == io.EOF {
		t.Errorf("Next on a failed capture = %v, want its error", err)
	}
	// Close is idempotent.
	if _, err2 := c.Close(); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Close = %v", err2)
	}
}

func TestCaptureTruncatedStream(t *testing.T) {
	tarball, _, _ := roundTrip(t)
	_, _, err := capture(t, CaptureOptions{}, tarball[:len(tarball)/2+100], 4096)
	if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Close error %v, want unexpected EOF", err)
	}
}

func TestCaptureEmpty(t *testing.T) {
	c := NewCapture()
	entries, err := c.Close()
	if err != nil || len(entries) != 0 {
		t.Fatalf("empty capture: %d entries, %v", len(entries), err)
	}
	if _, err := c.Next(); err != io.EOF {
		t.Fatalf("Next = %v, want EOF", err)
	}
}

func TestCaptureNextBeforeClose(t *testing.T) {
	c := NewCapture()
	defer c.Close()
	if _, err := c.Next(); err == nil {
		t.Fatal("Next before Close succeeded")
	}
	if c.Entries() != nil {
		t.Fatal("Entries before Close returned entries")
	}
}

// sparseTar hand-builds a PAX 0.1 GNU sparse file: 1 byte of data then a hole, logical size logical.
// Go's tar writer drops GNU.sparse records, so they are written under another
// prefix of the same length and renamed in the bytes.
func sparseTar(t *testing.T, logical int64) []byte {
	t.Helper()
	e := reg("sparse", []byte("x"))
	e.hdr.PAXRecords = map[string]string{
		"XYZ.sparse.major": "0", "XYZ.sparse.minor": "1",
		"XYZ.sparse.size": fmt.Sprint(logical), "XYZ.sparse.map": "0,1", "XYZ.sparse.numblocks": "1",
	}
	tarball := buildTar(t, []tarEntry{e, reg("after", []byte("after the sparse file"))})
	return bytes.ReplaceAll(tarball, []byte("XYZ.sparse."), []byte("GNU.sparse."))
}

func TestCaptureSparseFile(t *testing.T) {
	tarball := sparseTar(t, 1<<20+1)
	c, entries, err := capture(t, CaptureOptions{}, tarball, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var sp *Entry
	for i := range entries {
		if string(entries[i].Name) == "sparse" {
			sp = &entries[i]
		}
	}
	if sp == nil || !sp.Sparse || sp.Size != 1<<20+1 {
		t.Fatalf("sparse entry %+v", sp)
	}
	want := append([]byte("x"), make([]byte, 1<<20)...)
	if !bytes.Equal(sp.Payload, crcOf(want)) {
		t.Error("the CRC is not that of the expanded data, as tar-split computes it")
	}
	r, _ := Open(bytes.NewReader(tarSplitOf(t, tarball)))
	if d := Compare(c, r); !d.Equal() {
		t.Fatalf("capture vs tar-split: %v", d)
	}
}

// A tiny tar declaring a 1 TiB sparse file must neither expand in memory nor
// run for hours: the capture stops at the hole budget.
func TestCaptureSparseBudget(t *testing.T) {
	tarball := sparseTar(t, 1<<40)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := capture(t, CaptureOptions{MaxHoleBytes: 32 << 20}, tarball, 4096)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), `"sparse"`) {
		t.Fatalf("Close error %v, want ErrLimit naming the sparse file", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("capture allocated %d bytes while expanding 32 MiB of holes; it must stream", grew)
	}
}

func TestCaptureEntryLimit(t *testing.T) {
	tarball, _, _ := roundTrip(t)
	_, entries, err := capture(t, CaptureOptions{MaxEntries: 10}, tarball, 4096)
	if !errors.Is(err, ErrLimit) || len(entries) != 10 {
		t.Fatalf("Close = %d entries, %v; want 10 and ErrLimit", len(entries), err)
	}
}
