package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	digest "github.com/opencontainers/go-digest"
)

type entry struct {
	name string
	data string
	typ  byte
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: typ}
		if typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := pgzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, _ := zstd.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func sum(b []byte) digest.Digest { return digest.FromBytes(b) }

func TestPassCompressions(t *testing.T) {
	tarb := makeTar(t, entry{name: "a", data: "hello"}, entry{name: "dir/", typ: tar.TypeDir}, entry{name: "dir/b", data: strings.Repeat("x", 70000)})
	for _, tc := range []struct {
		name   string
		stored []byte
		comp   Compression
	}{
		{"plain", tarb, CompressionNone},
		{"gzip", gz(t, tarb), CompressionGzip},
		{"zstd", zst(t, tarb), CompressionZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Pass(context.Background(), bytes.NewReader(tc.stored), PassOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Compression != tc.comp {
				t.Errorf("Compression = %s, want %s", res.Compression, tc.comp)
			}
			if res.StoredDigest != sum(tc.stored) || res.StoredSize != int64(len(tc.stored)) {
				t.Errorf("stored = %s/%d, want %s/%d", res.StoredDigest, res.StoredSize, sum(tc.stored), len(tc.stored))
			}
			if res.DiffID != sum(tarb) || res.TarSize != int64(len(tarb)) {
				t.Errorf("diffID = %s/%d, want %s/%d", res.DiffID, res.TarSize, sum(tarb), len(tarb))
			}
			if res.Entries != 3 || !res.TarEnd || res.TarErr != nil || res.DecompressErr != nil {
				t.Errorf("entries=%d end=%v tarErr=%v decErr=%v", res.Entries, res.TarEnd, res.TarErr, res.DecompressErr)
			}
			if res.TrailingTar != 0 || res.TrailingTarNonZero {
				t.Errorf("trailing = %d nonzero=%v, want none (Go's tar writer adds no record padding)", res.TrailingTar, res.TrailingTarNonZero)
			}
		})
	}
}

func TestPassDamage(t *testing.T) {
	tarb := makeTar(t, entry{name: "a", data: strings.Repeat("hello world ", 5000)}, entry{name: "b", data: "b"})
	gzb := gz(t, tarb)
	zsb := zst(t, tarb)
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 0xff; return c }
	for _, tc := range []struct {
		name  string
		in    []byte
		check func(*PassResult) error
	}{
		{"plain truncated mid-entry", tarb[:1000], func(r *PassResult) error {
			if r.TarErr == nil || !strings.Contains(r.TarErr.Error(), "truncated") {
				return fmt.Errorf("TarErr = %v", r.TarErr)
			}
			return nil
		}},
		{"plain truncated at entry boundary", tarb[:len(tarb)-1024], func(r *PassResult) error {
			if r.TarEnd || r.TarErr == nil {
				return fmt.Errorf("end=%v TarErr=%v", r.TarEnd, r.TarErr)
			}
			return nil
		}},
		{"gzip truncated", gzb[:len(gzb)/2], func(r *PassResult) error {
			if r.DecompressErr == nil {
				return fmt.Errorf("DecompressErr = nil, TarErr = %v", r.TarErr)
			}
			return nil
		}},
		{"gzip flipped", flip(gzb, len(gzb)/2), func(r *PassResult) error {
			if r.DecompressErr == nil {
				return fmt.Errorf("DecompressErr = nil")
			}
			return nil
		}},
		{"zstd flipped", flip(zsb, len(zsb)/2), func(r *PassResult) error {
			if r.DecompressErr == nil && r.DiffID == sum(tarb) {
				return fmt.Errorf("damage not seen")
			}
			return nil
		}},
		{"garbage after gzip", append(append([]byte(nil), gzb...), []byte("GARBAGE")...), func(r *PassResult) error {
			if r.DecompressErr == nil && r.TrailingStored == 0 {
				return fmt.Errorf("trailing garbage not seen")
			}
			return nil
		}},
		{"record padding after tar end", append(append([]byte(nil), tarb...), make([]byte, 8192)...), func(r *PassResult) error {
			if r.TrailingTar != 8192 || r.TrailingTarNonZero || r.TarErr != nil {
				return fmt.Errorf("trailing=%d nonzero=%v tarErr=%v", r.TrailingTar, r.TrailingTarNonZero, r.TarErr)
			}
			return nil
		}},
		{"garbage after tar end", append(append([]byte(nil), tarb...), []byte("GARBAGE")...), func(r *PassResult) error {
			if !r.TrailingTarNonZero {
				return fmt.Errorf("non-zero trailing bytes not seen")
			}
			return nil
		}},
		{"not a tar", []byte(strings.Repeat("{json}", 200)), func(r *PassResult) error {
			if r.TarErr == nil {
				return fmt.Errorf("TarErr = nil")
			}
			return nil
		}},
		{"empty", nil, func(r *PassResult) error {
			if r.TarErr == nil {
				return fmt.Errorf("TarErr = nil")
			}
			return nil
		}},
		{"duplicates", makeTar(t, entry{name: "a", data: "1"}, entry{name: "./a", data: "2"}), func(r *PassResult) error {
			if len(r.Duplicates) != 1 || r.Duplicates[0] != "./a" {
				return fmt.Errorf("Duplicates = %q", r.Duplicates)
			}
			return nil
		}},
		{"escape", makeTar(t, entry{name: "../../etc/passwd", data: "1"}), func(r *PassResult) error {
			if len(r.UnsafePaths) != 1 {
				return fmt.Errorf("UnsafePaths = %q", r.UnsafePaths)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Pass(context.Background(), bytes.NewReader(tc.in), PassOptions{})
			if err != nil {
				t.Fatalf("Pass error = %v (data problems must not be errors)", err)
			}
			if res.StoredDigest != sum(tc.in) || res.StoredSize != int64(len(tc.in)) {
				t.Errorf("stored digest must cover every byte: got %s/%d want %s/%d", res.StoredDigest, res.StoredSize, sum(tc.in), len(tc.in))
			}
			if err := tc.check(res); err != nil {
				t.Error(err)
			}
		})
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	for i := range p {
		p[i] = 0
	}
	f.n -= len(p)
	return len(p), nil
}

func TestPassIOErrorIsError(t *testing.T) {
	_, err := Pass(context.Background(), &failingReader{n: 4096}, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v, want the reader's error", err)
	}
}

func TestPassCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Pass(ctx, bytes.NewReader(makeTar(t, entry{name: "a", data: "x"})), PassOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestPassLimits(t *testing.T) {
	tarb := makeTar(t, entry{name: "zeros", data: strings.Repeat("\x00", 1<<20)})
	res, err := Pass(context.Background(), bytes.NewReader(gz(t, tarb)), PassOptions{MaxTarSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.LimitErr == nil {
		t.Fatalf("LimitErr = nil, want the size limit")
	}
}

type countObserver struct{ names []string }

func (c *countObserver) Header(h *tar.Header) { c.names = append(c.names, h.Name) }

func TestPassObserversAndTaps(t *testing.T) {
	tarb := makeTar(t, entry{name: "a", data: "1"}, entry{name: "b", data: "2"})
	obs := &countObserver{}
	h := sha256.New()
	res, err := Pass(context.Background(), bytes.NewReader(gz(t, tarb)), PassOptions{Observers: []Observer{obs}, Taps: []io.Writer{h}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(obs.names, ",") != "a,b" {
		t.Errorf("observer saw %q", obs.names)
	}
	if got := digest.NewDigest(digest.SHA256, h); got != res.DiffID {
		t.Errorf("tap saw %s, diffID %s", got, res.DiffID)
	}
}

// dataObserver records each entry's content as the walk passes it.
type dataObserver struct {
	cur  string
	data map[string]string
	ends []error
}

func (d *dataObserver) End(err error) { d.ends = append(d.ends, err) }

func (d *dataObserver) Header(h *tar.Header) { d.cur = h.Name }
func (d *dataObserver) Data(p []byte)        { d.data[d.cur] += string(p) }

func TestPassDataObservers(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 10000) // several chunks
	layer := gz(t, makeTar(t, entry{name: "a", data: "alpha"}, entry{name: "d/", typ: tar.TypeDir}, entry{name: "empty"}, entry{name: "big", data: big}))
	one, two := &dataObserver{data: map[string]string{}}, &dataObserver{data: map[string]string{}}
	res, err := Pass(context.Background(), bytes.NewReader(layer), PassOptions{Observers: []Observer{one, two, &countObserver{}}})
	if err != nil || res.TarErr != nil || !res.TarEnd {
		t.Fatalf("pass: %v %v", err, res.TarErr)
	}
	for _, o := range []*dataObserver{one, two} {
		if len(o.data) != 2 || o.data["a"] != "alpha" || o.data["big"] != big {
			t.Errorf("data seen: %d entries, a=%q, big %d bytes", len(o.data), o.data["a"], len(o.data["big"]))
		}
		if len(o.ends) != 1 || o.ends[0] != nil {
			t.Errorf("End calls: %v", o.ends)
		}
	}
	// A tar cut short: End says why.
	cut := &dataObserver{data: map[string]string{}}
	tarb := makeTar(t, entry{name: "a", data: "alpha"}, entry{name: "big", data: big})
	if _, err := Pass(context.Background(), bytes.NewReader(tarb[:5000]), PassOptions{Observers: []Observer{cut}}); err != nil {
		t.Fatal(err)
	}
	if len(cut.ends) != 1 || cut.ends[0] == nil || cut.data["a"] != "alpha" {
		t.Errorf("truncated tar: End calls %v, a=%q", cut.ends, cut.data["a"])
	}
	// The digests do not depend on who read the content.
	plain, _ := Pass(context.Background(), bytes.NewReader(layer), PassOptions{})
	if plain.DiffID != res.DiffID || plain.StoredDigest != res.StoredDigest || plain.Entries != res.Entries {
		t.Errorf("with data observers %+v, without %+v", res, plain)
	}
}
