package dockerarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
)

// fixturesDir is ../shared/fixtures-external relative to the repository
// root; tests using it skip when it is absent.
func fixturesDir(t *testing.T) string { return fixtures.External(t) }

// entry is one member of a test tar.
type entry struct {
	name string
	typ  byte // 0: regular file
	body []byte
	link string
}

func reg(name string, body []byte) entry { return entry{name: name, body: body} }
func regs(name, body string) entry       { return entry{name: name, body: []byte(body)} }
func symlink(name, target string) entry  { return entry{name: name, typ: tar.TypeSymlink, link: target} }
func hardlink(name, target string) entry { return entry{name: name, typ: tar.TypeLink, link: target} }
func dir(name string) entry              { return entry{name: name, typ: tar.TypeDir} }
func jsonEntry(t *testing.T, name string, v any) entry {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return reg(name, data)
}

// buildTar writes entries as a tar archive.
func buildTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Format: tar.FormatPAX}
		if e.typ == 0 {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("header %s: %v", e.name, err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerTar is a small layer: a tar holding one file.
func layerTar(t *testing.T, file, content string) []byte {
	t.Helper()
	return buildTar(t, regs(file, content))
}

func gzipBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func openBytes(t *testing.T, data []byte, opts Options) *Archive {
	t.Helper()
	a, err := Open(writeFile(t, "image.tar", data), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func sha(data []byte) digest.Digest { return digest.FromBytes(data) }

// measured is what a test reads of one blob.
type measured struct {
	digest digest.Digest // of the stored bytes
	size   int64
	diffID digest.Digest // of the bytes after gzip/zstd decompression, else = digest
}

// measure reads r whole (test data is small) and hashes it.
func measure(r io.Reader) (measured, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return measured{}, err
	}
	m := measured{digest: sha(data), size: int64(len(data)), diffID: sha(data)}
	var dec io.Reader
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return m, err
		}
		dec = zr
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			return m, err
		}
		defer zr.Close()
		dec = zr
	}
	if dec != nil {
		h := sha256.New()
		if _, err := io.Copy(h, dec); err != nil {
			return m, err
		}
		m.diffID = digest.NewDigest(digest.SHA256, h)
	}
	return m, nil
}

// scanAll runs Scan, measuring every blob passed to fn, and fails the test
// if a key is passed twice or a passed blob can be opened.
func scanAll(t *testing.T, a *Archive) map[string]measured {
	t.Helper()
	got := map[string]measured{}
	err := a.Scan(context.Background(), func(b source.Blob, r io.Reader) error {
		if _, dup := got[b.Key()]; dup {
			t.Errorf("Scan passed key %s twice", b.Key())
		}
		if _, err := b.Open(context.Background()); !errors.Is(err, source.ErrConsumed) {
			t.Errorf("Open of streamed blob %s = %v, want ErrConsumed", b.Location(), err)
		}
		m, err := measure(r)
		if err != nil {
			return err
		}
		if b.Size() != m.size {
			t.Errorf("blob %s: Size() = %d, streamed %d bytes", b.Location(), b.Size(), m.size)
		}
		got[b.Key()] = m
		return nil
	})
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return got
}

// read measures a blob: by opening it, or from what Scan measured when it
// was streamed past.
func read(t *testing.T, b source.Blob, scanned map[string]measured) measured {
	t.Helper()
	rc, err := b.Open(context.Background())
	if errors.Is(err, source.ErrConsumed) {
		m, ok := scanned[b.Key()]
		if !ok {
			t.Fatalf("blob %s (key %s) is consumed but Scan never passed it", b.Location(), b.Key())
		}
		return m
	}
	if err != nil {
		t.Fatalf("opening %s: %v", b.Location(), err)
	}
	defer rc.Close()
	m, err := measure(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", b.Location(), err)
	}
	if b.Size() >= 0 && b.Size() != m.size {
		t.Errorf("blob %s: Size() = %d, read %d bytes", b.Location(), b.Size(), m.size)
	}
	return m
}

func readBytes(t *testing.T, b source.Blob) []byte {
	t.Helper()
	data, err := source.ReadAll(context.Background(), b, 16<<20)
	if err != nil {
		t.Fatalf("reading %s: %v", b.Location(), err)
	}
	return data
}

func findingsOf(fs []report.Finding, c report.Check) []report.Finding {
	var out []report.Finding
	for _, f := range fs {
		if f.Check == c {
			out = append(out, f)
		}
	}
	return out
}

func targets(t *testing.T, a *Archive) []source.Target {
	t.Helper()
	ts, err := a.Targets(context.Background())
	if err != nil {
		t.Fatalf("Targets: %v", err)
	}
	return ts
}

func names(ts []source.Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}
