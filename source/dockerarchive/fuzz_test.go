package dockerarchive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

// fuzzSeedLimit keeps seeds small so that mutation stays fast.
const fuzzSeedLimit = 256 << 10

// seedArchives adds good and damaged tarballs of the fixtures package, plain
// and compressed as a whole, and the small third-party saves when present.
func seedArchives(f *testing.F) {
	add := func(fx *fixtures.Fixture, wrap string) {
		var buf bytes.Buffer
		w, err := fixtures.Compress(&buf, wrap)
		if err != nil {
			f.Fatal(err)
		}
		if err := fx.Archive.WriteTar(w); err != nil {
			f.Fatal(err)
		}
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		if buf.Len() <= fuzzSeedLimit {
			f.Add(buf.Bytes())
		}
	}
	for _, c := range append(fixtures.Samples(), fixtures.Corruptions()...) {
		for _, fm := range c.Formats {
			if fm.IsDir() {
				continue
			}
			fx, err := c.Make(fm)
			if err != nil {
				f.Fatal(err)
			}
			add(fx, fixtures.None)
		}
	}
	if fx, err := fixtures.Samples()[0].Make(fixtures.FormatDockerContainerd); err == nil {
		add(fx, fixtures.Gzip)
		add(fx, fixtures.Zstd)
	}
	ext, _ := fixtures.ExternalDir() // absent: the globs match nothing
	for _, pat := range []string{
		"google+go-containerregistry/pkg/v1/tarball/testdata/*.tar",
		"google+go-containerregistry/pkg/v1/mutate/testdata/*.tar",
		"containers+image/docker/archive/fixtures/*.tar",
		"moby+moby/integration-cli/testdata/*.tar",
		"wagoodman+dive/.data/*.tar",
		"anchore+stereoscope/pkg/image/oci/testdata/*.tar",
	} {
		ms, _ := filepath.Glob(filepath.Join(ext, pat))
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil && fi.Size() <= fuzzSeedLimit {
				if b, err := os.ReadFile(m); err == nil {
					f.Add(b)
				}
			}
		}
	}
}

// FuzzArchive opens arbitrary bytes as a docker save tarball (plain, gzip or
// zstd) and runs the whole verifier over it with small limits. Any outcome
// is fine but a panic, a hang or unbounded memory: bad input is a finding or
// an error.
func FuzzArchive(f *testing.F) {
	seedArchives(f)
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{MaxManifestSize: 64 << 10, MaxMetadataTotal: 1 << 20, MaxMembers: 4096}
		a, err := newArchive("fuzz.tar", bytes.NewReader(data), int64(len(data)), nil, opts)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		defer a.Close()
		v := verify.New(verify.Options{
			Jobs:            2,
			MaxManifestSize: 64 << 10,
			Pass:            verify.PassOptions{MaxTarSize: 8 << 20, MaxRatio: 100},
		})
		b := &report.Builder{}
		err = v.Verify(context.Background(), a, b)
		rep := b.Finish("tar", "fuzz.tar", "fuzz")
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
		for _, fd := range rep.Findings {
			if fd.Check == "" {
				t.Fatalf("finding without a check ID: %+v", fd)
			}
		}
	})
}

// TestTruncatedInsideMemberData: a file that ends inside a member's data
// (found by the bad-input corpus) used to index as a clean end, so the
// error blamed missing metadata instead of the truncation. Now the member
// is named.
func TestTruncatedInsideMemberData(t *testing.T) {
	fx, err := fixtures.Samples()[0].Make(fixtures.FormatDockerLegacy)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := fx.Archive.WriteTar(&buf); err != nil {
		t.Fatal(err)
	}
	layer := fx.Archive.LayerPaths[0][0]
	data := buf.Bytes()
	i := bytes.Index(data, []byte(layer))
	if i < 0 {
		t.Fatalf("no header for %s", layer)
	}
	cut := data[:i+512+100] // 100 bytes into the member's data
	_, err = newArchive("cut.tar", bytes.NewReader(cut), int64(len(cut)), nil, Options{})
	if err == nil || !strings.Contains(err.Error(), `truncated or corrupt after member "`+layer+`"`) {
		t.Fatalf("error %v does not name the truncated member %s", err, layer)
	}
}
