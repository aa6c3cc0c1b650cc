package tarsplit

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/vbatts/tar-split/tar/storage"
)

// readAll decodes a whole tar-split.
func readAll(t *testing.T, ts []byte) ([]*Entry, error) {
	t.Helper()
	r, err := Open(bytes.NewReader(ts))
	if err != nil {
		return nil, err
	}
	return entriesOf(r)
}

// entriesOf reads r to its end.
func entriesOf(r *Reader) ([]*Entry, error) {
	var out []*Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}

// TestDecodeMatchesTarSplitUnpacker decodes a real tar-split with both readers.
func TestDecodeMatchesTarSplitUnpacker(t *testing.T) {
	_, ts, _ := roundTrip(t)
	ours, err := readAll(t, ts)
	if err != nil {
		t.Fatal(err)
	}
	gz := gunzipLines(t, ts)
	up := storage.NewJSONUnpacker(strings.NewReader(strings.Join(gz, "\n") + "\n"))
	i := 0
	for ; ; i++ {
		want, err := up.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(ours) {
			t.Fatalf("we decoded %d entries, tar-split has more", len(ours))
		}
		got := ours[i]
		if int(got.Type) != int(want.Type) || !bytes.Equal(got.Name, want.GetNameBytes()) || got.Position != want.Position || got.Line != i+1 {
			t.Errorf("entry %d: got type %v name %q pos %d line %d, want type %v name %q pos %d", i, got.Type, got.Name, got.Position, got.Line, want.Type, want.GetNameBytes(), want.Position)
		}
		if !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("entry %d (%q): payload differs", i, got.Name)
		}
		if want.Type == storage.FileType && got.Size != want.Size {
			t.Errorf("entry %d: size %d, want %d", i, got.Size, want.Size)
		}
		if want.Type == storage.SegmentType && got.Size != int64(len(want.Payload)) {
			t.Errorf("segment %d: Size %d, want the payload length %d", i, got.Size, len(want.Payload))
		}
	}
	if i != len(ours) {
		t.Fatalf("decoded %d entries, tar-split %d", len(ours), i)
	}
}

// TestDecodeFlags checks names, type flags and the absence of false flags on a real layer.
func TestDecodeFlags(t *testing.T) {
	_, ts, _ := roundTrip(t)
	entries, err := readAll(t, ts)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Entry{}
	for _, e := range entries {
		if e.Type != FileEntry {
			continue
		}
		if e.Duplicate || e.Unsafe || e.Sparse {
			t.Errorf("%q: unexpected flags dup=%v unsafe=%v sparse=%v", e.Name, e.Duplicate, e.Unsafe, e.Sparse)
		}
		byName[string(e.Name)] = e
	}
	want := map[string]byte{
		"pax_global_header": 'g', "etc/": '5', "etc/hello": '0', "etc/link": '2', "etc/hard": '1',
		"etc/xattr": '0', "raw-\xff-name": '0', "gnu/" + strings.Repeat("g", 130): '0', "etc/fifo": '6',
		"opq/.wh..wh..opq": '0',
	}
	for name, tf := range want {
		e, ok := byName[name]
		if !ok {
			t.Errorf("no entry %q", name)
			continue
		}
		if e.Typeflag != tf {
			t.Errorf("%q: typeflag %q, want %q", name, e.Typeflag, tf)
		}
	}
	// The non-UTF-8 name travels as name_raw.
	var rawLine string
	for _, l := range gunzipLines(t, ts) {
		if strings.Contains(l, `"name_raw"`) {
			rawLine = l
		}
	}
	if !strings.Contains(rawLine, `"name_raw":"cmF3Lf8tbmFtZQ=="`) {
		t.Errorf("name_raw line = %q", rawLine)
	}
	if e := byName["raw-\xff-name"]; e == nil || e.Size != 14 || !bytes.Equal(e.Payload, crcOf([]byte("not utf-8 name"))) {
		t.Errorf("raw name entry = %+v", e)
	}
}

func TestDecodeUnsafeAndDuplicateNames(t *testing.T) {
	names := []struct {
		name      string
		unsafe    bool
		duplicate bool
	}{
		{"a/b", false, false},
		{"./a/b", false, true}, // cleans to a/b
		{"a//b/", false, true}, // cleans to a/b
		{"/etc/passwd", false, false},
		{"x/../y", false, false},
		{"../../etc/passwd", true, false},
		{"/../etc/shadow", true, false},
		{"a/../../b", true, false},
		{"..", true, false},
		{"nul\x00byte", true, false},
		{"..data", false, false}, // a dot-dot prefix is not a parent
	}
	var lines []string
	for i, n := range names {
		lines = append(lines, record(t, storage.Entry{Type: storage.FileType, Name: n.name, Position: i}))
	}
	entries, err := readAll(t, gzLines(t, lines...))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		e := entries[i]
		if e.Unsafe != n.unsafe || e.Duplicate != n.duplicate {
			t.Errorf("%q: unsafe=%v (%s) duplicate=%v, want %v %v", n.name, e.Unsafe, e.UnsafeReason, e.Duplicate, n.unsafe, n.duplicate)
		}
	}
}

func TestDecodeErrorsNameTheLine(t *testing.T) {
	seg := record(t, storage.Entry{Type: storage.SegmentType, Payload: []byte("hdr"), Position: 0})
	cases := []struct {
		name  string
		lines []string
		line  int
		want  string
	}{
		{"malformed JSON", []string{seg, `{"type":1,"name":"a","payload":null,"position":1}`, `{"type":2,"payload":`}, 3, "malformed JSON"},
		{"unknown type", []string{seg, `{"type":7,"payload":null,"position":1}`}, 2, "unknown record type 7"},
		{"missing type", []string{seg, `{"payload":null,"position":1}`}, 2, "unknown record type 0"},
		{"position out of order", []string{seg, `{"type":1,"name":"a","payload":null,"position":5}`}, 2, "position 5 out of order, want 1"},
		{"no position", []string{seg, `{"type":1,"name":"a","payload":null}`}, 2, "no position"},
		{"short crc", []string{seg, `{"type":1,"name":"a","size":3,"payload":"AAAA","position":1}`}, 2, "checksum payload is 3 bytes"},
		{"negative size", []string{seg, `{"type":1,"name":"a","size":-3,"payload":null,"position":1}`}, 2, "negative size"},
		{"bad base64", []string{seg, `{"type":2,"payload":"!!!","position":1}`}, 2, "malformed JSON"},
		{"trailing garbage", []string{seg + " x"}, 1, "malformed JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := readAll(t, gzLines(t, c.lines...))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *FormatError", err)
			}
			if fe.Line != c.line || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q (line %d), want line %d and %q", err, fe.Line, c.line, c.want)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}
}

func TestDecodeTruncatedGzip(t *testing.T) {
	_, ts, _ := roundTrip(t)
	for _, cut := range []int{len(ts) - 4, len(ts) / 2, 30} {
		_, err := readAll(t, ts[:cut])
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "truncated gzip") || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut at %d of %d: error %v, want a truncated-gzip FormatError", cut, len(ts), err)
			continue
		}
		if fe.Line < 1 || !strings.Contains(err.Error(), "tar-split line ") {
			t.Errorf("cut at %d: %q does not name the line", cut, err)
		}
	}
	// A flipped byte in the deflate data or the trailer is caught too.
	bad := append([]byte(nil), ts...)
	bad[len(bad)-6] ^= 0xff // inside the CRC-32 trailer
	if _, err := readAll(t, bad); err == nil {
		t.Error("corrupt gzip trailer accepted")
	}
}

func TestOpenNotGzip(t *testing.T) {
	_, err := Open(strings.NewReader(`{"type":2,"payload":"","position":0}` + "\n"))
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("Open(plain JSON) = %v, want a gzip FormatError", err)
	}
	if _, err := Open(strings.NewReader("")); err == nil {
		t.Fatal("Open(empty) succeeded")
	}
}

func TestDecodeRecordLimit(t *testing.T) {
	old := maxSegment
	maxSegment = 4096
	defer func() { maxSegment = old }()

	ok := record(t, storage.Entry{Type: storage.SegmentType, Payload: make([]byte, 4096), Position: 0})
	big := record(t, storage.Entry{Type: storage.SegmentType, Payload: make([]byte, 4097), Position: 1})
	_, err := readAll(t, gzLines(t, ok, big))
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Line != 2 || !errors.Is(err, ErrLimit) {
		t.Fatalf("oversized segment: %v, want ErrLimit on line 2", err)
	}

	// A line without end is refused once it passes the limit, not read whole.
	huge := `{"type":2,"payload":"` + strings.Repeat("A", 10*maxLine(maxSegment))
	_, err = readAll(t, gzLines(t, ok, huge))
	if !errors.As(err, &fe) || fe.Line != 2 || !errors.Is(err, ErrLimit) {
		t.Fatalf("endless line: %v, want ErrLimit on line 2", err)
	}
}

func TestDecodeToleratesMissingFinalNewline(t *testing.T) {
	seg := record(t, storage.Entry{Type: storage.SegmentType, Payload: []byte("x"), Position: 0})
	var buf bytes.Buffer
	gz := gzipWriter(&buf)
	io.WriteString(gz, seg)
	gz.Close()
	entries, err := readAll(t, buf.Bytes())
	if err != nil || len(entries) != 1 || string(entries[0].Payload) != "x" {
		t.Fatalf("entries %v err %v", entries, err)
	}
}
