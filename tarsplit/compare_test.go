package tarsplit

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/vbatts/tar-split/tar/storage"
)

// editLines applies f to every record of a tar-split and re-packs it.
func editLines(t *testing.T, ts []byte, f func(e *storage.Entry) (keep bool)) []byte {
	t.Helper()
	var out []string
	for _, l := range gunzipLines(t, ts) {
		var e storage.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if f(&e) {
			e.Position = len(out)
			out = append(out, record(t, e))
		}
	}
	return gzLines(t, out...)
}

func compareBytes(t *testing.T, a, b []byte) *Diff {
	t.Helper()
	ra, err := Open(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Open(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return Compare(ra, rb)
}

func TestCompareIdentical(t *testing.T) {
	_, ts, _ := roundTrip(t)
	d := compareBytes(t, ts, ts)
	if !d.Equal() || d.EntriesA != len(gunzipLines(t, ts)) || d.EntriesA != d.EntriesB || d.First() != nil {
		t.Fatalf("%v", d)
	}
}

func TestCompareTrailingEmptySegmentIsNoDifference(t *testing.T) {
	_, ts, _ := roundTrip(t)
	lines := gunzipLines(t, ts)
	old := gzLines(t, append(lines, fmt.Sprintf(`{"type":2,"payload":"","position":%d}`, len(lines)))...)
	for _, c := range []struct {
		a, b         []byte
		emptyA, empB bool
	}{{old, ts, true, false}, {ts, old, false, true}, {old, old, true, true}} {
		d := compareBytes(t, c.a, c.b)
		if !d.Equal() || d.TrailingEmptyA != c.emptyA || d.TrailingEmptyB != c.empB {
			t.Errorf("%v (trailing empty %v/%v, want %v/%v)", d, d.TrailingEmptyA, d.TrailingEmptyB, c.emptyA, c.empB)
		}
	}
	// An empty segment is no difference against a capture either.
	tarball, _, _ := roundTrip(t)
	c, _, err := capture(t, CaptureOptions{}, tarball, 512)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := Open(bytes.NewReader(old))
	if d := Compare(r, c); !d.Equal() || !d.TrailingEmptyA {
		t.Fatalf("old tar-split vs capture: %v", d)
	}
}

func TestCompareChangedCRC(t *testing.T) {
	_, ts, _ := roundTrip(t)
	fake := crcOf([]byte("tampered"))
	var orig []byte
	changed := editLines(t, ts, func(e *storage.Entry) bool {
		if e.GetName() == "etc/hello" {
			orig = e.Payload
			e.Payload = fake
		}
		return true
	})
	d := compareBytes(t, ts, changed)
	f := d.First()
	if d.Equal() || d.Count != 1 || f == nil {
		t.Fatalf("%v", d)
	}
	if f.Name != "etc/hello" || f.Field != "crc" || f.A != hex.EncodeToString(orig) || f.B != hex.EncodeToString(fake) {
		t.Fatalf("difference %+v", f)
	}
	if !strings.Contains(d.String(), `"etc/hello"`) || !strings.Contains(d.String(), "crc") {
		t.Errorf("String() = %q", d)
	}
	// The position is the record's.
	entries, _ := readAll(t, ts)
	for _, e := range entries {
		if string(e.Name) == "etc/hello" && e.Position != f.Position {
			t.Errorf("position %d, want %d", f.Position, e.Position)
		}
	}
}

func TestCompareFields(t *testing.T) {
	_, ts, _ := roundTrip(t)
	cases := []struct {
		name  string
		edit  func(e *storage.Entry) bool
		field string
		count int
	}{
		{"size", func(e *storage.Entry) bool {
			if e.GetName() == "etc/big" {
				e.Size++
			}
			return true
		}, "size", 1},
		{"name", func(e *storage.Entry) bool {
			if e.GetName() == "etc/odd513" {
				e.SetName("etc/odd514")
			}
			return true
		}, "name", 1},
		{"two crcs", func(e *storage.Entry) bool {
			if n := e.GetName(); n == "etc/hello" || n == "opq/z" {
				e.Payload = make([]byte, 8)
			}
			return true
		}, "crc", 2},
		// Dropping a file entry joins the segments around it into one run.
		{"dropped last file", func(e *storage.Entry) bool { return e.GetName() != "etc/fifo" }, "segment", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := compareBytes(t, ts, editLines(t, ts, c.edit))
			if d.Count != c.count || d.First() == nil || d.First().Field != c.field || d.Err != nil {
				t.Fatalf("%v (count %d), want %d %s differences", d, d.Count, c.count, c.field)
			}
		})
	}
}

func TestCompareHeaderBytes(t *testing.T) {
	_, ts, _ := roundTrip(t)
	// Change the mtime of etc/hello inside its header segment (fixing the checksum).
	entries, _ := readAll(t, ts)
	var hdrPos int
	for i, e := range entries {
		if string(e.Name) == "etc/hello" {
			hdrPos = entries[i-1].Position
		}
	}
	changed := editLines(t, ts, func(e *storage.Entry) bool {
		if e.Type == storage.SegmentType && e.Position == hdrPos {
			p := append([]byte(nil), e.Payload...)
			off := len(p) - 512
			copy(p[off+136:off+148], "14544676446\x00")
			patchSize(t, p, off, 12) // same size, recomputes the checksum
			e.Payload = p
		}
		return true
	})
	d := compareBytes(t, ts, changed)
	f := d.First()
	if d.Count != 1 || f.Field != "segment" || f.Position != hdrPos || f.Name != "etc/" || !strings.Contains(f.A, "header field mtime") {
		t.Fatalf("%v", d)
	}
}

func TestCompareExtraEntries(t *testing.T) {
	base := []string{
		record(t, storage.Entry{Type: storage.SegmentType, Payload: []byte("h1"), Position: 0}),
		record(t, storage.Entry{Type: storage.FileType, Name: "a", Position: 1}),
	}
	more := append(append([]string(nil), base...),
		record(t, storage.Entry{Type: storage.SegmentType, Payload: []byte("h2"), Position: 2}),
		record(t, storage.Entry{Type: storage.FileType, Name: "b", Position: 3}),
	)
	d := compareBytes(t, gzLines(t, base...), gzLines(t, more...))
	if d.Count != 2 || d.First().Field != "missing-in-a" || d.Differences[1].Name != "b" || d.EntriesA != 2 || d.EntriesB != 4 {
		t.Fatalf("%v %+v", d, d.Differences)
	}
	d = compareBytes(t, gzLines(t, more...), gzLines(t, base...))
	if d.Count != 2 || d.First().Field != "missing-in-b" {
		t.Fatalf("%v", d)
	}
}

func TestCompareReadError(t *testing.T) {
	_, ts, _ := roundTrip(t)
	d := compareBytes(t, ts, ts[:len(ts)-10])
	if d.Equal() || d.Err == nil || !strings.Contains(d.Err.Error(), "second tar-split") {
		t.Fatalf("%v", d)
	}
}
