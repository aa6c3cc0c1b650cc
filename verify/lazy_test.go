package verify

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"github.com/layercheck/layercheck/source/dockerarchive"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memImage puts a built image into a memory source as one target.
func memImage(m *memSource, b *fixtures.Built) {
	for _, l := range b.Layers {
		m.put(l.Stored)
	}
	m.put(b.Config)
	d := m.put(b.OCIManifest)
	d.MediaType = ocispec.MediaTypeImageManifest
	m.targets = append(m.targets, source.Target{Name: b.Image.Name, Descriptor: &d})
}

func TestLazyCases(t *testing.T) {
	for _, c := range fixtures.LazyCases() {
		t.Run(c.Name, func(t *testing.T) {
			b, err := c.Make()
			if err != nil {
				t.Fatal(err)
			}
			m := newMem()
			memImage(m, b)
			rep := verifyMem(t, m, Options{})
			got := checks(rep, report.Info)
			want := make([]string, 0, len(c.Want))
			for _, w := range c.Want {
				want = append(want, string(w))
			}
			sort.Strings(want)
			got = slices.Compact(got)
			if !slices.Equal(got, want) {
				t.Fatalf("checks %v, want %v\n%+v", got, want, rep.Findings)
			}
			if len(rep.Problems) > 0 {
				t.Fatalf("problems: %+v", rep.Problems)
			}
		})
	}
}

// TestLazyPassCounts makes sure the clean fixtures' files, chunks and
// tar-split were compared, not skipped.
func TestLazyPassCounts(t *testing.T) {
	es, err := fixtures.EStargzLayer(fixtures.LazyFiles(), 512<<10)
	if err != nil {
		t.Fatal(err)
	}
	zc, err := fixtures.ZstdChunkedLayer(fixtures.LazyFiles())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*fixtures.LazyLayer{es, zc} {
		kind := LazyOf(l.Annotations)
		res, err := Pass(t.Context(), bytes.NewReader(l.Stored), PassOptions{TOC: &TOCOptions{Kind: kind, Annotations: l.Annotations}})
		if err != nil {
			t.Fatal(err)
		}
		toc := res.TOC
		if toc == nil || len(toc.Findings) > 0 {
			t.Fatalf("%s: %+v", kind, toc)
		}
		if toc.Files < 4 || toc.Chunks < 3 || toc.ChunksUnchecked != 0 || toc.TarSplit != (kind == LazyZstdChunked) {
			t.Errorf("%s: files %d, chunks %d (%d unchecked), tar-split %v", kind, toc.Files, toc.Chunks, toc.ChunksUnchecked, toc.TarSplit)
		}
		want := l.Annotations[AnnotationEStargzTOCDigest]
		if kind == LazyZstdChunked {
			want = l.Annotations[AnnotationZstdChunkedChecksum]
		}
		if toc.Digest.String() != want {
			t.Errorf("%s: TOC digest %s, annotation %s", kind, toc.Digest, want)
		}
		plain, err := Pass(t.Context(), bytes.NewReader(l.Stored), PassOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if plain.DiffID != res.DiffID || plain.StoredDigest != res.StoredDigest || plain.Entries != res.Entries || plain.TrailingStored != res.TrailingStored {
			t.Errorf("%s: the TOC pass measured otherwise than the plain one: %+v vs %+v", kind, res, plain)
		}
	}
}

// TestLazyExternalEStargz verifies dive's eStargz test image (written by
// real tools): every TOC check runs and finds nothing.
func TestLazyExternalEStargz(t *testing.T) {
	p := filepath.Join(fixtures.External(t), "wagoodman+dive", ".data", "test-oci-estargz-image.tar")
	a, err := dockerarchive.Open(p, dockerarchive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := &report.Builder{}
	if err := New(Options{Analysis: &AnalysisOptions{}}).Verify(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	rep := b.Finish("tar", p, "test")
	lazy := 0
	for _, img := range rep.Images {
		for _, l := range img.Layers {
			if l.DiffID == "" {
				t.Errorf("layer %d not read", l.Index)
			}
		}
		for _, l := range img.Analysis.Layers {
			if l.Lazy == string(LazyEStargz) {
				lazy++
			}
		}
	}
	// The TOC of every layer, checked by a pass of its own.
	for _, l := range estargzLayers(t, p) {
		res, err := Pass(t.Context(), bytes.NewReader(l.data), PassOptions{TOC: &TOCOptions{Kind: LazyEStargz, Annotations: l.ann}})
		if err != nil {
			t.Fatal(err)
		}
		if res.TOC == nil || len(res.TOC.Findings) > 0 || res.TOC.Files == 0 || res.TOC.Digest.String() != l.ann[AnnotationEStargzTOCDigest] {
			t.Errorf("TOC check: %+v", res.TOC)
		}
	}
	for _, f := range rep.Findings {
		if f.Severity > report.Info || strings.HasPrefix(string(f.Check), "layer-toc") {
			t.Errorf("finding: %+v", f)
		}
	}
	if lazy == 0 || len(rep.Problems) > 0 {
		t.Fatalf("%d layers, problems %+v", lazy, rep.Problems)
	}
}

type annotatedBlob struct {
	data []byte
	ann  map[string]string
}

// estargzLayers reads an OCI layout tar's layers that carry the eStargz
// annotation (the test's own reader of a small file).
func estargzLayers(t *testing.T, p string) []annotatedBlob {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		b, _ := io.ReadAll(tr)
		files[path.Clean(h.Name)] = b
	}
	blob := func(d string) []byte { return files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] }
	var idx ocispec.Index
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	var out []annotatedBlob
	for _, md := range idx.Manifests {
		var m ocispec.Manifest
		if err := json.Unmarshal(blob(md.Digest.String()), &m); err != nil {
			t.Fatal(err)
		}
		for _, l := range m.Layers {
			if LazyOf(l.Annotations) == LazyEStargz {
				out = append(out, annotatedBlob{blob(l.Digest.String()), l.Annotations})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no eStargz layer in the fixture")
	}
	return out
}

// TestLazyZstdChunkedNonUTF8Names: containers/storage's compressor writes a
// tar name that is not UTF-8 into the TOC with each bad byte as U+FFFD (as
// skopeo 1.9 and podman 4.3 did for the e2e suite's crafted names). The
// layer is clean, and a wrong digest of such a file is still found.
func TestLazyZstdChunkedNonUTF8Names(t *testing.T) {
	files := append(fixtures.LazyFiles(),
		fixtures.Reg("names/latin1-\xe9t\xe9", []byte("latin-1 name\n")),
		fixtures.Reg("names/invalid-\xff\xfe", []byte(strings.Repeat("not UTF-8\n", 100))),
	)
	for _, tc := range []struct {
		name string
		edit func(l *fixtures.LazyLayer) error
		want []string
	}{
		{"clean", nil, []string{}},
		{"file digest wrong", func(l *fixtures.LazyLayer) error {
			return fixtures.EditZstdChunkedTOC(l, func(toc map[string]any) {
				for _, e := range toc["entries"].([]any) {
					if m := e.(map[string]any); m["name"] == "names/invalid-\ufffd\ufffd" {
						m["digest"] = "sha256:" + strings.Repeat("0", 64)
					}
				}
			})
		}, []string{string(report.LayerTOCFileDigest)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := fixtures.ZstdChunkedLayer(files)
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				if err := tc.edit(l); err != nil {
					t.Fatal(err)
				}
			}
			b, err := fixtures.LazyImage("example.com/lazy:names", l)
			if err != nil {
				t.Fatal(err)
			}
			m := newMem()
			memImage(m, b)
			rep := verifyMem(t, m, Options{})
			if got := slices.Compact(checks(rep, report.Info)); !slices.Equal(got, tc.want) {
				t.Fatalf("checks %v, want %v\n%+v", got, tc.want, rep.Findings)
			}
		})
	}
}
