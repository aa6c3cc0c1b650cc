package tarsplit

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

// tarEntry is one member of a test layer.
type tarEntry struct {
	hdr  tar.Header
	body []byte
}

var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func reg(name string, body []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: epoch}, body: body}
}

func dir(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch}}
}

// pattern returns n deterministic, non-repeating-looking bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// layerEntries is a layer with every kind of entry the round trip must survive.
func layerEntries() []tarEntry {
	long := "deep/" + strings.Repeat("d", 120) + "/" + strings.Repeat("f", 90) + ".txt"
	gnuLong := "gnu/" + strings.Repeat("g", 130)
	xattr := reg("etc/xattr", []byte("with xattrs\n"))
	xattr.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.spec": "v1", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
	gnu := reg(gnuLong, []byte("gnu long name body"))
	gnu.hdr.Format = tar.FormatGNU
	raw := reg("raw-\xff-name", []byte("not utf-8 name"))
	raw.hdr.Format = tar.FormatGNU
	return []tarEntry{
		{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "layercheck test"}}},
		dir("etc/"),
		reg("etc/hello", []byte("hello world\n")),
		reg("etc/empty", nil),
		reg("etc/exact512", pattern(512, 1)),
		reg("etc/odd513", pattern(513, 2)),
		reg("etc/big", pattern(100<<10+7, 3)),
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "etc/link", Linkname: "hello", ModTime: epoch}},
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "etc/hard", Linkname: "etc/hello", ModTime: epoch}},
		xattr,
		dir("deep/"),
		reg(long, []byte("long name via PAX path")),
		dir("gnu/"),
		gnu,
		raw,
		reg("./dotslash", []byte("leading dot slash")),
		reg("etc/.wh.gone", nil),
		dir("opq/"),
		reg("opq/.wh..wh..opq", nil),
		reg("opq/z", []byte("z")),
		{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "etc/fifo", Mode: 0o600, ModTime: epoch}},
	}
}

// buildTar writes entries with archive/tar.
func buildTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	b, err := writeTar(entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildTarNoT is buildTar for fuzz seeds; it panics on error.
func buildTarNoT(entries []tarEntry) []byte {
	b, err := writeTar(entries)
	if err != nil {
		panic(err)
	}
	return b
}

func writeTar(entries []tarEntry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("tar header %q: %w", h.Name, err)
		}
		if len(e.body) > 0 {
			if _, err := tw.Write(e.body); err != nil {
				return nil, fmt.Errorf("tar body %q: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarSplitOf disassembles a tar with tar-split's own packer, as Docker's
// layer store does, and returns the tar-split.json.gz bytes.
func tarSplitOf(t testing.TB, tarball []byte) []byte {
	t.Helper()
	var gzbuf bytes.Buffer
	gz := gzip.NewWriter(&gzbuf)
	out, done, err := asm.NewInputTarStreamWithDone(bytes.NewReader(tarball), storage.NewJSONPacker(gz), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, out); err != nil {
		t.Fatalf("tar-split disassembly: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("tar-split disassembly: %v", err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return gzbuf.Bytes()
}

// gzLines gzips JSON lines into a tar-split.json.gz.
func gzLines(t *testing.T, lines ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	for _, l := range lines {
		io.WriteString(gz, l+"\n")
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gunzip returns the JSON lines of a tar-split.json.gz.
func gunzipLines(t testing.TB, b []byte) []string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

// record renders one tar-split JSON record as tar-split's packer would.
func record(t *testing.T, e storage.Entry) string {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func crcOf(b []byte) []byte {
	c := crc64.New(crc64.MakeTable(crc64.ISO))
	c.Write(b)
	return c.Sum(nil)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// extract unpacks the regular files, dirs, symlinks and hardlinks of a tar into
// dir, the way a layer's diff dir holds them.
func extract(t *testing.T, tarball []byte, dir string) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tr := tar.NewReader(bytes.NewReader(tarball))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("extract: %v", err)
		}
		name := path.Clean(strings.TrimLeft(h.Name, "/"))
		if name == "." {
			continue
		}
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			t.Fatalf("extract %q: %v", name, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			body, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := root.WriteFile(name, body, 0o644); err != nil {
				t.Fatalf("extract %q: %v", name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(h.Linkname, name); err != nil {
				t.Fatal(err)
			}
		case tar.TypeLink:
			if err := root.Link(path.Clean(h.Linkname), name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// roundTrip builds the standard layer, its tar-split and its unpacked directory.
func roundTrip(t *testing.T) (tarball, ts []byte, dir string) {
	t.Helper()
	tarball = buildTar(t, layerEntries())
	ts = tarSplitOf(t, tarball)
	dir = t.TempDir()
	extract(t, tarball, dir)
	return tarball, ts, dir
}

func openRoot(t *testing.T, dir string) *Root {
	t.Helper()
	r, err := RootOpener(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// assemble runs Assemble into a buffer.
func assemble(t *testing.T, ts []byte, root FileOpener) ([]byte, AssembleStats) {
	t.Helper()
	var out bytes.Buffer
	st, err := Assemble(context.Background(), bytes.NewReader(ts), root, &out)
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	if st.BytesWritten != int64(out.Len()) {
		t.Fatalf("BytesWritten = %d, wrote %d", st.BytesWritten, out.Len())
	}
	return out.Bytes(), st
}

// problemsOf returns the problems of type T.
func problemsOf[T error](st AssembleStats) []T {
	var out []T
	for _, p := range st.Problems {
		var x T
		if errors.As(p, &x) {
			out = append(out, x)
		}
	}
	return out
}

// spyOpener records the names it is asked to open.
type spyOpener struct {
	inner FileOpener
	names []string
}

func (s *spyOpener) Open(name string) (io.ReadCloser, error) {
	s.names = append(s.names, name)
	return s.inner.Open(name)
}

// missingOpener finds nothing.
type missingOpener struct{}

func (missingOpener) Open(name string) (io.ReadCloser, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func gzipWriter(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }
