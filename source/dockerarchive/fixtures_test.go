package dockerarchive

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type fixtureCase struct {
	file    string
	names   []string // target names, in order
	wantErr error    // from Open (uncompressed) or Scan (compressed)
	// badConfig: configs known not to hash to their file name (the fixture
	// is broken on purpose, see MANIFEST.md).
	badConfig bool
	// findings that must be present.
	findings []report.Check
	// legacyLinks: layer members the image reaches through tar links.
	check func(t *testing.T, ts []source.Target)
}

const (
	ggcrTarball = "google+go-containerregistry/pkg/v1/tarball/testdata/"
	ggcrMutate  = "google+go-containerregistry/pkg/v1/mutate/testdata/"
	dive        = "wagoodman+dive/.data/"
)

var fixtureCases = []fixtureCase{
	{file: ggcrTarball + "hello-world-v25.tar",
		names:    []string{"sha256:ee301c921b8aadc002973b2e0c3da17d701dcd994b606769a7e6eaa100b81d44"},
		findings: []report.Check{report.ArchiveManifest}, // index.json lists no manifests (info)
		check: func(t *testing.T, ts []source.Target) {
			l := ts[0].Image.Layers[0]
			want := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Size: 10752,
				Digest: "sha256:12660636fe55438cc3ae7424da7ac56e845cdb52493ff9cf949c47a7f57f8b43"}
			if l.Desc.MediaType != want.MediaType || l.Desc.Size != want.Size || l.Desc.Digest != want.Digest {
				t.Errorf("layer 0 claims %+v, want LayerSources' %+v", l.Desc, want)
			}
			if len(ts[0].Tags) != 0 {
				t.Errorf("untagged image has tags %q", ts[0].Tags)
			}
		}},
	{file: ggcrTarball + "test_image_1.tar", names: []string{"bazel/v1/tarball:test_image_1"}},
	{file: ggcrTarball + "test_image_2.tar", names: []string{"bazel/v1/tarball:test_image_2"}},
	{file: ggcrTarball + "test_load_manifest.tar", names: []string{"bazel/v1/tarball:test_image_1"}},
	{file: ggcrTarball + "test_bundle.tar", names: []string{"test_image_2", "test_image_1"},
		check: func(t *testing.T, ts []source.Target) {
			// LayerSources describes the compressed registry blob, not the
			// stored tar: it must not become a claim about the member.
			l := ts[0].Image.Layers[0]
			if l.Desc.Digest != "" || l.Desc.Size != -1 || l.Desc.MediaType != "" {
				t.Errorf("legacy layer.tar claims %+v, want nothing (LayerSources of a compressed blob ignored)", l.Desc)
			}
		}},
	{file: ggcrTarball + "test_link.tar", names: []string{"bazel/v1/tarball:test_image_1", "bazel/v1/tarball:test_image_3"},
		check: func(t *testing.T, ts []source.Target) {
			// image 3's first layer is a symlink to image 1's layer: same key.
			k1 := ts[0].Image.Layers[0].Blob.Key()
			k3 := ts[1].Image.Layers[0].Blob.Key()
			if k1 != k3 {
				t.Errorf("linked layer keys differ: %s vs %s", k1, k3)
			}
		}},
	{file: ggcrTarball + "null_manifest.tar", names: nil, findings: []report.Check{report.ArchiveManifest}},
	{file: ggcrTarball + "no_manifest.tar", wantErr: source.ErrUnsupported},
	{file: ggcrTarball + "content.tar", wantErr: source.ErrUnsupported}, // a plain layer, not an image archive
	{file: "google+go-containerregistry/pkg/crane/testdata/content.tar.zst", wantErr: source.ErrUnsupported},
	{file: ggcrMutate + "source_image.tar", names: []string{"bazel/pkg/v1/mutate:source_image"}},
	{file: ggcrMutate + "source_image_with_empty_layer_history.tar", names: []string{"bazel/pkg/v1/mutate:source_image"}, badConfig: true},
	{file: ggcrMutate + "whiteout_image.tar", names: []string{"bazel/pkg/v1/mutate:whiteout_image"}},
	{file: ggcrMutate + "overwritten_file.tar", names: []string{"bazel/pkg/v1/mutate:overwritten_file"}},
	{file: ggcrMutate + "whiteout_dir.tar", names: []string{"localhost:5000/whiteout:latest"},
		check: func(t *testing.T, ts []source.Target) {
			img := ts[0].Image
			if img.Config.Desc.Digest != "sha256:92f1e3d53acdc7e137e73869abc4e87aba6614440a31723423790ca0d5db9111" {
				t.Errorf("config named sha256:<hex> claims %q", img.Config.Desc.Digest)
			}
			for i, l := range img.Layers {
				if l.Desc.Digest == "" {
					t.Errorf("layer %d (<hex>.tar.gz) claims no digest", i)
				}
			}
		}},
	{file: "containers+image/docker/archive/fixtures/almostempty.tar", names: []string{"emptyimage:latest"}},
	{file: "moby+moby/integration-cli/testdata/emptyLayer.tar", wantErr: source.ErrUnsupported},
	{file: dive + "test-docker-image.tar", names: []string{"dive-test:latest"},
		check: func(t *testing.T, ts []source.Target) {
			if n := len(ts[0].Image.Layers); n != 14 {
				t.Errorf("%d layers, want 14", n)
			}
		}},
	{file: dive + "test-kaniko-image.tar", names: []string{"dive-test:kaniko-latest"}},
	{file: dive + "test-oci-gzip-image.tar", names: []string{"index.json[0]"}},
	{file: dive + "test-oci-zstd-image.tar", names: []string{"index.json[0]"}},
	{file: dive + "test-oci-estargz-image.tar", names: []string{"index.json[0]"}},
	{file: dive + "test-oci-uncompressed-image.tar", names: []string{"index.json[0]"}},
	{file: "anchore+stereoscope/pkg/image/oci/testdata/valid-oci.tar", names: []string{"sample:latest"}},
}

func TestFixtures(t *testing.T) {
	root := fixturesDir(t)
	for _, tc := range fixtureCases {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			p := filepath.Join(root, tc.file)
			a, err := Open(p, Options{})
			if tc.wantErr != nil && err == nil && a.Compression() != None {
				err = a.Scan(context.Background(), discardFn)
				a.Close()
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer a.Close()
			checkFixture(t, tc, a, nil)
		})
	}
}

// TestFixturesCompressed wraps every fixture in gzip and in zstd and reads it
// through Scan: same targets, same bytes, each streamed member passed once.
func TestFixturesCompressed(t *testing.T) {
	root := fixturesDir(t)
	for _, tc := range fixtureCases {
		raw, err := os.ReadFile(filepath.Join(root, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			wrap func(*testing.T, []byte) []byte
		}{{"gzip", gzipBytes}, {"zstd", zstdBytes}} {
			t.Run(filepath.Base(tc.file)+"/"+c.name, func(t *testing.T) {
				a, err := Open(writeFile(t, "image.tar."+c.name, c.wrap(t, raw)), Options{})
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer a.Close()
				if string(a.Compression()) != c.name {
					t.Errorf("Compression() = %q, want %q", a.Compression(), c.name)
				}
				if _, err := a.Targets(context.Background()); err == nil || !strings.Contains(err.Error(), "Scan") {
					t.Errorf("Targets before Scan = %v, want an error asking for Scan", err)
				}
				if tc.wantErr != nil {
					err := a.Scan(context.Background(), discardFn)
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("Scan = %v, want %v", err, tc.wantErr)
					}
					return
				}
				scanned := scanAll(t, a)
				// Every member that is not metadata was streamed.
				want := expectedStreamed(t, filepath.Join(root, tc.file))
				var got []string
				for k := range scanned {
					got = append(got, k)
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("Scan passed keys\n%q\nwant\n%q", got, want)
				}
				checkFixture(t, tc, a, scanned)
			})
		}
	}
}

func discardFn(source.Blob, io.Reader) error { return nil }

// expectedStreamed lists the keys Scan must pass for an archive: every
// regular member (not a link) that is neither a named metadata file nor a
// JSON document, read here independently with the uncompressed index.
func expectedStreamed(t *testing.T, p string) []string {
	t.Helper()
	a, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var keys []string
	for _, n := range a.order {
		m := a.members[n]
		if m.kind != kindReg {
			continue
		}
		switch n {
		case "manifest.json", "index.json", "oci-layout", "repositories":
			continue
		}
		data := readBytes(t, a.memberBlob(m))
		if js := strings.TrimLeft(string(data), " \t\r\n"); js != "" && (js[0] == '{' || js[0] == '[') {
			continue
		}
		keys = append(keys, memberKey(n))
	}
	slices.Sort(keys)
	return keys
}

// checkFixture checks targets and that every referenced blob is reachable
// and holds the bytes its references claim.
func checkFixture(t *testing.T, tc fixtureCase, a *Archive, scanned map[string]measured) {
	t.Helper()
	ts := targets(t, a)
	if got := names(ts); !slices.Equal(got, tc.names) {
		t.Fatalf("target names = %q, want %q", got, tc.names)
	}
	fs := a.Findings()
	for _, c := range tc.findings {
		if len(findingsOf(fs, c)) == 0 {
			t.Errorf("no %s finding; findings: %+v", c, fs)
		}
	}
	for _, f := range fs {
		if f.Severity == report.Error && !slices.Contains(tc.findings, f.Check) {
			t.Errorf("unexpected error finding %+v", f)
		}
	}
	for _, tg := range ts {
		switch {
		case tg.Image != nil:
			checkImage(t, tg, tc.badConfig, scanned)
		case tg.Descriptor != nil:
			checkDescriptor(t, a, *tg.Descriptor, scanned, 0)
		default:
			t.Errorf("target %s has neither Image nor Descriptor", tg.Name)
		}
	}
	if tc.check != nil {
		tc.check(t, ts)
	}
	blobs, err := a.ListBlobs(context.Background())
	if err != nil {
		t.Fatalf("ListBlobs: %v", err)
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.Key()] {
			t.Errorf("ListBlobs lists key %s twice", b.Key())
		}
		seen[b.Key()] = true
		m := read(t, b, scanned)
		if d, err := digest.Parse(b.Key()); err == nil && d != m.digest && !tc.badConfig {
			t.Errorf("blob %s hashes to %s", b.Key(), m.digest)
		}
	}
	// Every referenced blob is listed.
	for _, tg := range ts {
		if tg.Image == nil {
			continue
		}
		for _, r := range append([]source.Ref{tg.Image.Config}, tg.Image.Layers...) {
			if r.Blob != nil && !seen[r.Blob.Key()] {
				t.Errorf("referenced blob %s (key %s) not in ListBlobs", r.Blob.Location(), r.Blob.Key())
			}
		}
	}
}

func checkImage(t *testing.T, tg source.Target, badConfig bool, scanned map[string]measured) {
	t.Helper()
	img := tg.Image
	if img.Config.Blob == nil {
		t.Fatalf("%s: config missing: %s", tg.Name, img.Config.Missing)
	}
	cfg := readBytes(t, img.Config.Blob)
	if d := img.Config.Desc.Digest; d != "" && d != sha(cfg) && !badConfig {
		t.Errorf("%s: config hashes to %s, its name claims %s", tg.Name, sha(cfg), d)
	}
	var c ocispec.Image
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatalf("%s: config: %v", tg.Name, err)
	}
	if len(c.RootFS.DiffIDs) != len(img.Layers) {
		t.Fatalf("%s: %d layers, %d diff_ids", tg.Name, len(img.Layers), len(c.RootFS.DiffIDs))
	}
	for j, l := range img.Layers {
		if l.Blob == nil {
			t.Errorf("%s layer %d missing: %s", tg.Name, j, l.Missing)
			continue
		}
		m := read(t, l.Blob, scanned)
		if l.Desc.Digest != "" && l.Desc.Digest != m.digest {
			t.Errorf("%s layer %d: hashes to %s, claimed %s", tg.Name, j, m.digest, l.Desc.Digest)
		}
		if l.Desc.Size >= 0 && l.Desc.Size != m.size {
			t.Errorf("%s layer %d: %d bytes, claimed %d", tg.Name, j, m.size, l.Desc.Size)
		}
		if m.diffID != c.RootFS.DiffIDs[j] {
			t.Errorf("%s layer %d: diffID %s, config says %s", tg.Name, j, m.diffID, c.RootFS.DiffIDs[j])
		}
	}
}

// checkDescriptor fetches a manifest or index and, recursively, what it names.
func checkDescriptor(t *testing.T, src source.Source, d ocispec.Descriptor, scanned map[string]measured, depth int) {
	t.Helper()
	if depth > 4 {
		t.Fatal("index nesting too deep")
	}
	b, err := src.Blob(context.Background(), d)
	if err != nil {
		t.Fatalf("Blob(%s): %v", d.Digest, err)
	}
	data := readBytes(t, b)
	if sha(data) != d.Digest {
		t.Errorf("manifest %s hashes to %s", d.Digest, sha(data))
	}
	var doc struct {
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("manifest %s: %v", d.Digest, err)
	}
	for _, m := range doc.Manifests {
		checkDescriptor(t, src, m, scanned, depth+1)
	}
	var diffIDs []digest.Digest
	if doc.Config != nil {
		cb, err := src.Blob(context.Background(), *doc.Config)
		if err != nil {
			t.Fatalf("config %s: %v", doc.Config.Digest, err)
		}
		cfg := readBytes(t, cb)
		if sha(cfg) != doc.Config.Digest {
			t.Errorf("config %s hashes to %s", doc.Config.Digest, sha(cfg))
		}
		var c ocispec.Image
		if json.Unmarshal(cfg, &c) == nil {
			diffIDs = c.RootFS.DiffIDs
		}
	}
	for j, l := range doc.Layers {
		lb, err := src.Blob(context.Background(), l)
		if err != nil {
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
		m := read(t, lb, scanned)
		if m.digest != l.Digest || m.size != l.Size {
			t.Errorf("layer %s: read %s, %d bytes; descriptor says %d bytes", l.Digest, m.digest, m.size, l.Size)
		}
		if len(diffIDs) == len(doc.Layers) && m.diffID != diffIDs[j] {
			t.Errorf("layer %d: diffID %s, config says %s", j, m.diffID, diffIDs[j])
		}
	}
}
