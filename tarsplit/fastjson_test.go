package tarsplit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/vbatts/tar-split/tar/storage"
)

// sameAsJSON checks that decoding line gives exactly what encoding/json gives:
// the same record (nil-ness of slices included) or the same error. It reports
// whether the fast path took the line.
func sameAsJSON(t testing.TB, line []byte) (fast bool) {
	t.Helper()
	var f, got, want rawRecord
	fast = f.parseFast(line)
	wantErr := want.parseJSON(line)
	if fast && wantErr != nil {
		t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", line, wantErr)
	}
	if fast && !reflect.DeepEqual(f, want) {
		t.Fatalf("fast path decoded %q as %#v, encoding/json as %#v", line, f, want)
	}
	gotErr := got.parse(line, false)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("decoding %q: error %v, encoding/json %v", line, gotErr, wantErr)
	}
	if gotErr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %q as %#v, encoding/json as %#v", line, got, want)
	}
	return fast
}

// decodeAll decodes plain JSON lines with the fast path or with encoding/json only.
func decodeAll(data []byte, slow bool) ([]*Entry, error) {
	r := OpenJSON(bytes.NewReader(data))
	r.noFast = slow
	return entriesOf(r)
}

// sameStream checks that the Reader gives the same entries and error with and
// without the fast path.
func sameStream(t testing.TB, data []byte) {
	t.Helper()
	got, gotErr := decodeAll(data, false)
	want, wantErr := decodeAll(data, true)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("error %v, with encoding/json %v", gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("entry %d: %#v, with encoding/json %#v", i, got[i], want[i])
			}
		}
		t.Fatalf("%d entries, with encoding/json %d", len(got), len(want))
	}
}

// testNames are names the packer must carry: unicode, characters encoding/json
// escapes, invalid UTF-8 (name_raw), empty and long ones.
var testNames = []string{
	"", "a", "etc/passwd", "./dotslash", "../climb", "dir/",
	"日本語/ファイル", "emoji-😀", "é", "\u2028line-sep\u2029", "\x7fdel",
	"<script>&amp;</script>", "quote\"d", `back\slash`, "tab\tname", "nl\nname", "nul\x00byte",
	"raw-\xff-name", "\xc3\x28", "\xed\xa0\x80surrogate", "\xf4\x90\x80\x80", "trunc\xe2\x82",
	strings.Repeat("long/", 100) + "end",
}

// randomName mixes ASCII, multi-byte UTF-8, escaped characters and stray bytes.
func randomName(rng *rand.Rand) string {
	pieces := []string{"a", "z", "/", ".", "-", "_", "0", "é", "ß", "中", "😀", "<", ">", "&", "\"", "\\", "\t", "\x01", "\x7f", "\xff", "\x80", "\xe2\x82", "\u2028", " "}
	var b strings.Builder
	for range rng.IntN(40) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

// packerStream writes n entries with tar-split's own JSON packer, as Docker does.
func packerStream(t testing.TB, seed uint64, n int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	sizes := []int64{0, 1, 123, 4096, 1 << 40, math.MaxInt64}
	var buf bytes.Buffer
	p := storage.NewJSONPacker(&buf)
	for i := range n {
		var e storage.Entry
		if rng.IntN(2) == 0 {
			e.Type = storage.SegmentType
			switch rng.IntN(4) {
			case 0: // nil payload: null
			case 1:
				e.Payload = []byte{}
			default:
				e.Payload = pattern(rng.IntN(2048), byte(i))
			}
		} else {
			e.Type = storage.FileType
			name := randomName(rng)
			if i < len(testNames) {
				name = testNames[i]
			}
			e.SetName(fmt.Sprintf("%s#%d", name, i)) // unique: the packer refuses duplicates
			if i%7 == 0 {
				e.SetName(name)
			}
			e.Size = sizes[rng.IntN(len(sizes))]
			if e.Size > 0 {
				e.Payload = pattern(CRCSize, byte(i))
			}
		}
		if _, err := p.AddEntry(e); err != nil && err != storage.ErrDuplicatePath {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestFastDecodeMatchesJSON decodes records written by tar-split's packer, and
// odd ones written by the same encoder, with both paths.
func TestFastDecodeMatchesJSON(t *testing.T) {
	data := packerStream(t, 1, 4000)
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	fast := 0
	for _, l := range lines {
		if sameAsJSON(t, l) {
			fast++
		} else if bytes.IndexByte(l, '\\') < 0 {
			t.Errorf("packer output without escapes took the slow path: %q", l)
		}
	}
	if fast < len(lines)*3/4 {
		t.Errorf("fast path took %d of %d packer lines", fast, len(lines))
	}
	t.Logf("fast path took %d of %d packer lines", fast, len(lines))
	sameStream(t, data)

	// What the packer never writes but the same encoder can: any position,
	// type, size, and both name fields.
	var odd bytes.Buffer
	enc := json.NewEncoder(&odd)
	for _, pos := range []int{0, 1, -1, 5, 999999999999999999, -999999999999999999, math.MaxInt64, math.MinInt64} {
		for _, typ := range []storage.Type{0, 1, 2, 3, -1} {
			for _, size := range []int64{0, -1, 8, math.MaxInt64, math.MinInt64} {
				for _, payload := range [][]byte{nil, {}, {1, 2, 3, 4, 5, 6, 7, 8}, []byte("<>&")} {
					for _, names := range [][2]string{{"", ""}, {"a", ""}, {"", "\xff"}, {"a", "\xfe"}, {"<&>", ""}} {
						e := storage.Entry{Type: typ, Name: names[0], Size: size, Payload: payload, Position: pos}
						if names[1] != "" {
							e.NameRaw = []byte(names[1])
						}
						if err := enc.Encode(e); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
	}
	for _, l := range bytes.Split(bytes.TrimSuffix(odd.Bytes(), []byte("\n")), []byte("\n")) {
		sameAsJSON(t, l)
		sameStream(t, l)
	}
}

// TestFastDecodeRealLayer decodes the tar-split of the test layer both ways.
func TestFastDecodeRealLayer(t *testing.T) {
	_, ts, _ := roundTrip(t)
	lines := gunzipLines(t, ts)
	for _, l := range lines {
		if !sameAsJSON(t, []byte(l)) && !strings.Contains(l, `\`) {
			t.Errorf("took the slow path: %q", l)
		}
	}
	sameStream(t, []byte(strings.Join(lines, "\n")))
}

// oddLines are near misses of the packer's shape; every one must decode (or
// fail) exactly as encoding/json decodes it.
var oddLines = []string{
	`{"type":2,"payload":"aGVsbG8=","position":0}`,
	`{"type":2,"payload":"aGVsbG8=","position":0} `,
	` {"type":2,"payload":"aGVsbG8=","position":0}`,
	`{"type":2, "payload":"aGVsbG8=","position":0}`,
	`{"type" :2,"payload":"aGVsbG8=","position":0}`,
	`{"type":2,"payload":"aGVsbG8=","position":0}` + "\r",
	`{"type":2,"payload":"aGVsbG8=","position":0}x`,
	`{"type":2,"payload":"aGVsbG8=","position":0}}`,
	`{"type":2,"payload":"aGVsbG8=","position":0}{}`,
	`{"type":2,"payload":"aGVsbG8=","position":0,}`,
	`{"type":2,,"payload":"aGVsbG8=","position":0}`,
	`{"type":2"payload":"aGVsbG8=","position":0}`,
	`{"type"2}`, `{"type":}`, `{"type":2`, `{"type`, `{"`, `{`, `}`, `{}`, `[]`, `null`, `""`, `2`, ``,
	`{,}`, `{"type":2}}`, `{"type":2}{`, `{"":2}`, `{"type":2,"":1}`,
	`{"TYPE":2,"payload":"","position":0}`,
	`{"Type":2,"Payload":"aGk=","Position":0}`,
	`{"type":2,"type":1,"payload":"","position":0}`,
	`{"type":2,"payload":"","position":0,"position":1}`,
	`{"payload":"","type":2,"position":0}`,
	`{"position":0,"type":2}`,
	`{"type":2,"payload":"","position":0,"extra":1}`,
	`{"extra":{"a":[1,2]},"type":2,"payload":"","position":0}`,
	`{"na\u006de":"x","type":1,"position":0}`,
	`{"type\u0000":1}`, `{"ty\"pe":1}`,
	`{"type":02,"position":0}`, `{"type":-0,"position":0}`, `{"type":-,"position":0}`, `{"type":--1,"position":0}`,
	`{"type":2.0,"position":0}`, `{"type":2e0,"position":0}`, `{"type":1E1,"position":0}`, `{"type":2.,"position":0}`,
	`{"type":+2,"position":0}`, `{"type":0x2,"position":0}`, `{"type":2,"position":0.5}`,
	`{"type":2,"payload":null,"position":999999999999999999}`,
	`{"type":2,"payload":null,"position":-999999999999999999}`,
	`{"type":2,"payload":null,"position":9223372036854775807}`,
	`{"type":2,"payload":null,"position":9223372036854775808}`,
	`{"type":2,"payload":null,"position":-9223372036854775808}`,
	`{"type":1,"size":99999999999999999999,"payload":null,"position":0}`,
	`{"type":1,"size":1000000000000000000,"payload":"AAAAAAAAAAA=","position":0}`,
	`{"type":"2","position":0}`, `{"type":true,"position":0}`, `{"type":null,"position":0}`, `{"type":[],"position":0}`,
	`{"type":2,"position":null}`, `{"position":0}`, `{"position":"0"}`,
	`{"type":2,"payload":"aGVsbG8","position":0}`,
	`{"type":2,"payload":"aGVsbG9=","position":0}`,
	`{"type":2,"payload":"aGVsbG8==","position":0}`,
	`{"type":2,"payload":"=","position":0}`,
	`{"type":2,"payload":"aGVs` + "\r" + `bG8=","position":0}`,
	`{"type":2,"payload":"aGVs` + "\n" + `bG8=","position":0}`,
	`{"type":2,"payload":"aGVs\r\nbG8=","position":0}`,
	`{"type":2,"payload":"aGVs\u0062G8=","position":0}`,
	`{"type":2,"payload":"aGVs\/bG8=","position":0}`,
	`{"type":2,"payload":"aGVsbG8=` + "\t" + `","position":0}`,
	`{"type":2,"payload":"aGVsbG8=\u0000","position":0}`,
	`{"type":2,"payload":"aGVs bG8=","position":0}`,
	`{"type":2,"payload":"aGVs-_bG8=","position":0}`,
	`{"type":2,"payload":"a\xffVsbG8=","position":0}`,
	`{"type":2,"payload":nul,"position":0}`, `{"type":2,"payload":nullx,"position":0}`,
	`{"type":2,"payload":NULL,"position":0}`, `{"type":2,"payload":null`, `{"type":2,"payload":[],"position":0}`,
	`{"type":2,"payload":[1,2],"position":0}`, `{"type":2,"payload":"`, `{"type":2,"payload":"abc`,
	`{"type":1,"name":"a\"b","position":0}`,
	`{"type":1,"name":"a\\b","position":0}`,
	`{"type":1,"name":"\u003c\u0026","position":0}`,
	`{"type":1,"name":"\ud800","position":0}`,
	`{"type":1,"name":"` + "\xff" + `","position":0}`,
	`{"type":1,"name":"` + "\xed\xa0\x80" + `","position":0}`,
	`{"type":1,"name":"` + "\xe2\x80\xa8" + `","position":0}`,
	`{"type":1,"name":"` + "a\x01" + `","position":0}`,
	`{"type":1,"name":"` + "a\x7f" + `","position":0}`,
	`{"type":1,"name":null,"position":0}`, `{"type":1,"name":5,"position":0}`,
	`{"type":1,"name":"","position":0}`,
	`{"type":1,"name":"x","name_raw":"/w==","position":0}`,
	`{"type":1,"name_raw":"/w==","name":"x","position":0}`,
	`{"type":1,"name":"x","name_raw":"","position":0}`,
	`{"type":1,"name":"x","name_raw":null,"position":0}`,
	`{"type":1,"name_raw":null,"position":0}`,
	`{"type":1,"name_raw":"","position":0}`,
	`{"type":1,"name_raw":"!!","position":0}`,
	`{"type":1,"name_raw":"/w==","size":1,"payload":"AAAAAAAAAAA=","position":0}`,
	`{"type":1,"name":"a","size":-5,"payload":null,"position":0}`,
	`{"type":1,"name":"a","size":3,"payload":"AAAA","position":0}`,
	`{"type":2,"name":"a","payload":"","position":0}`,
	`{"type":2,"size":1,"payload":"","position":0}`,
	`{"type":7,"payload":null,"position":0}`,
	"\xef\xbb\xbf" + `{"type":2,"payload":"","position":0}`,
	`{"type":2,"payload":"","position":0}` + "\x00",
}

func TestFastDecodeOddLines(t *testing.T) {
	for _, l := range oddLines {
		sameAsJSON(t, []byte(l))
		sameStream(t, []byte(l))
	}
	// A segment the fast path takes, then each odd line as the second record.
	seg := `{"type":2,"payload":"aGVsbG8=","position":0}` + "\n"
	for _, l := range oddLines {
		sameStream(t, []byte(seg+strings.Replace(l, `"position":0`, `"position":1`, 1)+"\n"))
	}
}

// TestFastDecodeOwnsItsBytes checks that entries do not share memory with the
// line buffer nor with each other.
func TestFastDecodeOwnsItsBytes(t *testing.T) {
	data := []byte(`{"type":2,"payload":"aGVsbG8=","position":0}` + "\n" +
		`{"type":1,"name":"etc/a","size":3,"payload":"AQIDBAUGBwg=","position":1}` + "\n" +
		`{"type":2,"payload":"d29ybGQ=","position":2}` + "\n")
	entries, err := decodeAll(data, false)
	if err != nil || len(entries) != 3 {
		t.Fatalf("entries %v, err %v", entries, err)
	}
	_ = append(entries[1].Name, 'X') // must not overwrite the CRC
	_ = append(entries[0].Payload, 'X')
	if string(entries[0].Payload) != "hello" || string(entries[1].Name) != "etc/a" || !bytes.Equal(entries[1].Payload, []byte{1, 2, 3, 4, 5, 6, 7, 8}) || string(entries[2].Payload) != "world" {
		t.Fatalf("entries changed: %q %q %x %q", entries[0].Payload, entries[1].Name, entries[1].Payload, entries[2].Payload)
	}
}

// FuzzFastDecode asserts that any line decodes exactly as with encoding/json.
func FuzzFastDecode(f *testing.F) {
	for _, l := range oddLines {
		f.Add([]byte(l))
	}
	for _, l := range bytes.Split(packerStream(f, 2, 40), []byte("\n")) {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		sameAsJSON(t, line)
		sameStream(t, line)
	})
}

// benchLayer is a tar-split of a layer of 4,000 small files in 100 directories.
func benchLayer(b *testing.B) (gz, plain []byte, records int) {
	var entries []tarEntry
	for d := range 100 {
		dn := fmt.Sprintf("usr/share/pkg%03d/", d)
		entries = append(entries, dir(dn))
		for f := range 40 {
			entries = append(entries, reg(fmt.Sprintf("%sfile-%02d.txt", dn, f), pattern(64+(d*40+f)%3000, byte(f))))
		}
	}
	gz = tarSplitOf(b, buildTarNoT(entries))
	lines := gunzipLines(b, gz)
	return gz, []byte(strings.Join(lines, "\n") + "\n"), len(lines)
}

// BenchmarkDecode decodes a realistic tar-split with encoding/json only and with
// the fast path: from the gzip file, from the plain JSON lines, and the JSON
// decoding of each line alone.
func BenchmarkDecode(b *testing.B) {
	gz, plain, records := benchLayer(b)
	lines := bytes.Split(bytes.TrimSuffix(plain, []byte("\n")), []byte("\n"))
	for _, src := range []string{"gz", "plain", "parse"} {
		for _, path := range []string{"json", "fast"} {
			b.Run(src+"/"+path, func(b *testing.B) {
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				b.ResetTimer()
				for range b.N {
					if src == "parse" { // the JSON decoding alone
						for _, l := range lines {
							var rec rawRecord
							if err := rec.parse(l, path == "json"); err != nil {
								b.Fatal(err)
							}
						}
						continue
					}
					var r *Reader
					if src == "gz" {
						var err error
						if r, err = Open(bytes.NewReader(gz)); err != nil {
							b.Fatal(err)
						}
					} else {
						r = OpenJSON(bytes.NewReader(plain))
					}
					r.noFast = path == "json"
					n := 0
					for {
						_, err := r.Next()
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						n++
					}
					if n != records {
						b.Fatalf("%d records, want %d", n, records)
					}
				}
				b.StopTimer()
				runtime.ReadMemStats(&ms1)
				total := float64(b.N) * float64(records)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/record")
				b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/total, "allocs/record")
				b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/total, "B/record")
			})
		}
	}
}
