package ocilayout

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

// Bounds of what one fuzz input may unpack to, so a run stays fast.
const (
	fuzzSeedLimit   = 256 << 10
	fuzzMaxEntries  = 256
	fuzzMaxUnpacked = 4 << 20
)

// seedLayouts adds the fixtures' OCI layouts (good and damaged) packed as
// tars, and the small third-party layouts (tarred or as directories) when present.
func seedLayouts(f *testing.F) {
	for _, c := range append(fixtures.Samples(), fixtures.Corruptions()...) {
		if !c.AppliesTo(fixtures.FormatOCILayout) {
			continue
		}
		fx, err := c.Make(fixtures.FormatOCILayout)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if err := fx.Archive.WriteTar(&buf); err != nil {
			f.Fatal(err)
		}
		if buf.Len() <= fuzzSeedLimit {
			f.Add(buf.Bytes())
		}
	}
	ext, ok := fixtures.ExternalDir()
	if !ok {
		return
	}
	tars, _ := filepath.Glob(filepath.Join(ext, "wagoodman+dive", ".data", "test-oci-*.tar"))
	more, _ := filepath.Glob(filepath.Join(ext, "anchore+stereoscope", "pkg", "image", "oci", "testdata", "*.tar"))
	for _, m := range append(tars, more...) {
		if fi, err := os.Stat(m); err == nil && fi.Size() <= fuzzSeedLimit {
			if b, err := os.ReadFile(m); err == nil {
				f.Add(b)
			}
		}
	}
	_ = filepath.WalkDir(ext, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && de.Name() == "index.json" {
			if b, err := tarDir(filepath.Dir(p)); err == nil && len(b) <= fuzzSeedLimit {
				f.Add(b)
			}
		}
		return nil
	})
}

// tarDir packs the regular files and directories under dir as a tar.
func tarDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case de.IsDir():
			return tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel) + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		case de.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tw.Close()
	return buf.Bytes(), err
}

// unpack writes the members of a fuzz tar into dir: regular files,
// directories and symlinks (with whatever target they name: the layout
// reader must not follow one out of the layout). Names that leave dir are
// skipped; this is the test's own extractor, not the code under test.
func unpack(data []byte, dir string) {
	tr := tar.NewReader(bytes.NewReader(data))
	var total int64
	for i := 0; i < fuzzMaxEntries; i++ {
		hdr, err := tr.Next()
		if err != nil {
			return
		}
		name := path.Clean("/" + hdr.Name)[1:]
		if name == "" || strings.Contains(name, "\x00") {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		switch hdr.Typeflag {
		case tar.TypeDir:
			_ = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			_ = os.Symlink(hdr.Linkname, p)
		case tar.TypeReg:
			if hdr.Size > fuzzMaxUnpacked-total {
				return
			}
			total += hdr.Size
			w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				continue
			}
			_, _ = io.Copy(w, tr)
			w.Close()
		}
	}
}

// FuzzLayoutTar unpacks arbitrary bytes as a tar into a fresh directory and
// runs the layout reader and the whole verifier over it with small limits:
// any outcome but a panic or a hang is fine.
func FuzzLayoutTar(f *testing.F) {
	seedLayouts(f)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		unpack(data, dir)
		l, err := Open(dir, Options{MaxManifestSize: 64 << 10})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		defer l.Close()
		v := verify.New(verify.Options{
			Jobs:            2,
			MaxManifestSize: 64 << 10,
			Pass:            verify.PassOptions{MaxTarSize: 8 << 20, MaxRatio: 100},
		})
		b := &report.Builder{}
		if err := v.Verify(context.Background(), l, b); err != nil && errors.Is(err, context.Canceled) {
			t.Fatalf("Verify reports a cancellation nobody asked for: %v", err)
		}
		rep := b.Finish("layout", dir, "fuzz")
		for _, fd := range rep.Findings {
			if fd.Check == "" {
				t.Fatalf("finding without a check ID: %+v", fd)
			}
		}
	})
}
