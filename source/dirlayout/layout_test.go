package dirlayout

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store/storetest"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// write lays out imgs as a dir: layout in a fresh directory.
func write(t *testing.T, imgs ...*fixtures.Built) string {
	t.Helper()
	a, err := fixtures.DirLayout(imgs...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := a.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// check opens and verifies dir, and returns the report's check IDs (sorted,
// with repeats) and the report. The directory must not change.
func check(t *testing.T, dir string) ([]string, *report.Report) {
	t.Helper()
	before := storetest.TreeHash(t, dir)
	if !Is(dir) {
		t.Fatalf("Is(%s) = false", dir)
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := &report.Builder{}
	if err := verify.New(verify.Options{Jobs: 2}).Verify(context.Background(), l, b); err != nil {
		t.Fatal(err)
	}
	rep := b.Finish("layout", dir, "test")
	var ids []string
	for _, f := range rep.Findings {
		ids = append(ids, string(f.Check))
	}
	sort.Strings(ids)
	if len(rep.Problems) > 0 {
		t.Errorf("problems: %+v", rep.Problems)
	}
	if after := storetest.TreeHash(t, dir); !slices.Equal(before, after) {
		t.Error("the layout changed while it was read")
	}
	return ids, rep
}

func TestClean(t *testing.T) {
	ociImg := fixtures.MustBuild(fixtures.BaseImage())
	dockerBase := fixtures.BaseImage()
	dockerBase.DockerMediaTypes = true
	dockerBase.Layers = dockerBase.Layers[:1] // Docker schema 2 has no zstd
	dockerImg := fixtures.MustBuild(dockerBase)
	arm := fixtures.BaseImage()
	arm.Platform = fixtures.Platform{OS: "linux", Arch: "arm64", Variant: "v8"}
	armImg := fixtures.MustBuild(arm)
	for name, imgs := range map[string][]*fixtures.Built{
		"oci":    {ociImg},
		"docker": {dockerImg},
		"all":    {ociImg, armImg},
	} {
		t.Run(name, func(t *testing.T) {
			dir := write(t, imgs...)
			if err := os.WriteFile(filepath.Join(dir, "signature-1"), []byte("not checked"), 0o644); err != nil {
				t.Fatal(err)
			}
			ids, rep := check(t, dir)
			if len(ids) != 0 {
				t.Fatalf("findings on a clean layout: %v (%+v)", ids, rep.Findings)
			}
			if len(rep.Images) != len(imgs) {
				t.Fatalf("%d images, want %d", len(rep.Images), len(imgs))
			}
			for i, img := range rep.Images {
				if len(img.Layers) == 0 || img.Layers[0].DiffID == "" {
					t.Errorf("image %d: layers not read: %+v", i, img.Layers)
				}
			}
		})
	}
}

func TestDamage(t *testing.T) {
	img := fixtures.MustBuild(fixtures.BaseImage())
	cases := []struct {
		name string
		edit func(t *testing.T, dir string)
		want []string
	}{
		{"flipped layer byte", func(t *testing.T, dir string) {
			p := filepath.Join(dir, img.Layers[2].Digest.Encoded())
			data, _ := os.ReadFile(p)
			data[len(data)/2] ^= 0xff
			writeFile(t, p, data)
		}, []string{"layer-decompress", "layer-digest"}},
		{"layer missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, img.Layers[1].Digest.Encoded()))
		}, []string{"layer-missing"}},
		{"config edited", func(t *testing.T, dir string) {
			p := filepath.Join(dir, img.ConfigDigest.Encoded())
			data, _ := os.ReadFile(p)
			writeFile(t, p, []byte(strings.Replace(string(data), "amd64", "arm64", 1)))
		}, []string{"config-digest"}},
		{"no version", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "version"))
		}, []string{"archive-manifest"}},
		{"unknown version", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "version"), []byte("Directory Transport Version: 7.0\n"))
		}, []string{"archive-manifest"}},
		{"unreferenced blobs", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, digest.FromString("x").Encoded()), []byte("x"))
			writeFile(t, filepath.Join(dir, digest.FromString("y").Encoded()), []byte("not y"))
			writeFile(t, filepath.Join(dir, "dir-put-blob123"), []byte("partial"))
		}, []string{"blob-digest", "blob-unreferenced", "blob-unreferenced", "blob-unreferenced"}},
		{"subdirectory", func(t *testing.T, dir string) {
			os.Mkdir(filepath.Join(dir, "extra"), 0o755)
		}, []string{"archive-member"}},
		{"symlink out", func(t *testing.T, dir string) {
			os.Symlink("/etc/hostname", filepath.Join(dir, digest.FromString("z").Encoded()))
		}, []string{"archive-unsafe-path"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, img)
			tc.edit(t, dir)
			ids, rep := check(t, dir)
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("checks %v, want %v\n%+v", ids, tc.want, rep.Findings)
			}
		})
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSchema1 is a signed schema 1 manifest as skopeo copies one from an old
// registry: the blobs are verified, the schema 1 limits said.
func TestSchema1(t *testing.T) {
	base := fixtures.BaseImage()
	base.Layers[1].Compression = fixtures.Gzip // schema 1 layers are gzip
	img := fixtures.MustBuild(base)
	a, _ := fixtures.DirLayout(img)
	dir := t.TempDir()
	if err := a.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	var fs []map[string]string
	var hist []map[string]string
	for i := len(img.Layers) - 1; i >= 0; i-- {
		fs = append(fs, map[string]string{"blobSum": img.Layers[i].Digest.String()})
		hist = append(hist, map[string]string{"v1Compatibility": fmt.Sprintf(`{"id":"%d"}`, i)})
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 1, "name": "app", "tag": "1", "architecture": "amd64",
		"fsLayers": fs, "history": hist, "signatures": []any{map[string]any{"protected": "x"}}})
	writeFile(t, filepath.Join(dir, "manifest.json"), m)
	os.Remove(filepath.Join(dir, img.ConfigDigest.Encoded()))
	ids, rep := check(t, dir)
	if !slices.Equal(ids, []string{"manifest-schema1"}) {
		t.Fatalf("checks %v\n%+v", ids, rep.Findings)
	}
	if got := len(rep.Images[0].Layers); got != 3 {
		t.Fatalf("%d layers", got)
	}
}

func TestIs(t *testing.T) {
	img := fixtures.MustBuild(fixtures.BaseImage())
	dirLayout := write(t, img)
	noVersion := write(t, img)
	os.Remove(filepath.Join(noVersion, "version"))
	oci := t.TempDir()
	if err := fixtures.WriteOCILayout(oci, fixtures.ImageEntry(img)); err != nil {
		t.Fatal(err)
	}
	save := t.TempDir()
	fx, err := fixtures.NewFixture(fixtures.FormatDockerOCI, img)
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.Archive.WriteDir(save); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]bool{
		dirLayout: true, noVersion: true, oci: false, save: false,
		filepath.Join(dirLayout, "manifest.json"): false, t.TempDir(): false,
	} {
		if got := Is(dir); got != want {
			t.Errorf("Is(%s) = %v, want %v", dir, got, want)
		}
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Error("Open of an empty directory succeeded")
	}
}
