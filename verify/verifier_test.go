package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// memSource is a content-addressed source held in memory.
type memSource struct {
	blobs   map[digest.Digest][]byte
	targets []source.Target
	mu      sync.Mutex
	opened  map[digest.Digest]int
}

func newMem() *memSource {
	return &memSource{blobs: map[digest.Digest][]byte{}, opened: map[digest.Digest]int{}}
}

func (m *memSource) String() string { return "mem" }
func (m *memSource) Close() error   { return nil }
func (m *memSource) Targets(context.Context) ([]source.Target, error) {
	return m.targets, nil
}

type countingBlob struct {
	source.BytesBlob
	m *memSource
	d digest.Digest
}

func (c *countingBlob) Open(ctx context.Context) (io.ReadCloser, error) {
	c.m.mu.Lock()
	c.m.opened[c.d]++
	c.m.mu.Unlock()
	return c.BytesBlob.Open(ctx)
}

func (m *memSource) Blob(_ context.Context, d ocispec.Descriptor) (source.Blob, error) {
	b, ok := m.blobs[d.Digest]
	if !ok {
		return nil, source.NotFoundf("blob %s", d.Digest)
	}
	return &countingBlob{BytesBlob: source.BytesBlob{K: d.Digest.String(), Loc: "blobs/" + d.Digest.Encoded()[:12], Data: b}, m: m, d: d.Digest}, nil
}

func (m *memSource) put(b []byte) ocispec.Descriptor {
	d := digest.FromBytes(b)
	m.blobs[d] = b
	return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
}

// image adds a one-platform image and returns its manifest descriptor.
func (m *memSource) image(t *testing.T, layers [][]byte, mutateCfg func(map[string]any), mutateMan func(*ocispec.Manifest)) ocispec.Descriptor {
	t.Helper()
	var diffIDs []string
	var descs []ocispec.Descriptor
	var hist []map[string]any
	for _, l := range layers {
		res, err := Pass(context.Background(), strings.NewReader(string(l)), PassOptions{})
		if err != nil {
			t.Fatal(err)
		}
		diffIDs = append(diffIDs, res.DiffID.String())
		d := m.put(l)
		d.MediaType = map[Compression]string{CompressionGzip: ocispec.MediaTypeImageLayerGzip, CompressionZstd: ocispec.MediaTypeImageLayerZstd, CompressionNone: ocispec.MediaTypeImageLayer}[res.Compression]
		descs = append(descs, d)
		hist = append(hist, map[string]any{"created_by": "ADD"})
	}
	cfg := map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}, "history": hist}
	if mutateCfg != nil {
		mutateCfg(cfg)
	}
	cb, _ := json.Marshal(cfg)
	cd := m.put(cb)
	cd.MediaType = ocispec.MediaTypeImageConfig
	man := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: descs}
	man.SchemaVersion = 2
	if mutateMan != nil {
		mutateMan(&man)
	}
	mb, _ := json.Marshal(man)
	md := m.put(mb)
	md.MediaType = ocispec.MediaTypeImageManifest
	return md
}

func verifyMem(t *testing.T, m *memSource, opts Options) *report.Report {
	t.Helper()
	b := &report.Builder{}
	if err := New(opts).Verify(context.Background(), m, b); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return b.Finish("test", "mem", "test")
}

func checks(r *report.Report, min report.Severity) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Severity >= min {
			out = append(out, string(f.Check))
		}
	}
	sort.Strings(out)
	return out
}

func TestVerifierCleanImage(t *testing.T) {
	m := newMem()
	l1 := gz(t, makeTar(t, entry{name: "a", data: "1"}))
	l2 := zst(t, makeTar(t, entry{name: "b", data: "2"}))
	l3 := makeTar(t, entry{name: "c", data: "3"})
	md := m.image(t, [][]byte{l1, l2, l3}, nil, nil)
	m.targets = []source.Target{{Name: "app:1", Descriptor: &md}}
	r := verifyMem(t, m, Options{Jobs: 2})
	if got := checks(r, report.Warning); len(got) != 0 {
		t.Fatalf("clean image gave findings %v: %+v", got, r.Findings)
	}
	if len(r.Images) != 1 || len(r.Images[0].Layers) != 3 || r.Images[0].Platform != "linux/amd64" {
		t.Fatalf("images = %+v", r.Images)
	}
	img := r.Images[0]
	var diffs []digest.Digest
	for _, l := range img.Layers {
		diffs = append(diffs, digest.Digest(l.DiffID))
	}
	chain := ChainIDs(diffs)
	for i, l := range img.Layers {
		if l.ChainID != chain[i].String() {
			t.Errorf("layer %d chainID = %s, want %s", i, l.ChainID, chain[i])
		}
	}
	if img.Layers[0].Compression != "gzip" || img.Layers[1].Compression != "zstd" || img.Layers[2].Compression != "none" {
		t.Errorf("compressions = %s %s %s", img.Layers[0].Compression, img.Layers[1].Compression, img.Layers[2].Compression)
	}
}

func TestVerifierReadsSharedLayerOnce(t *testing.T) {
	m := newMem()
	shared := gz(t, makeTar(t, entry{name: "base", data: "shared"}))
	a := m.image(t, [][]byte{shared, gz(t, makeTar(t, entry{name: "a", data: "a"}))}, nil, nil)
	b := m.image(t, [][]byte{shared, gz(t, makeTar(t, entry{name: "b", data: "b"}))}, nil, nil)
	m.targets = []source.Target{{Name: "a", Descriptor: &a}, {Name: "b", Descriptor: &b}}
	r := verifyMem(t, m, Options{Jobs: 2})
	if got := checks(r, report.Warning); len(got) != 0 {
		t.Fatalf("findings %v", got)
	}
	if n := m.opened[digest.FromBytes(shared)]; n != 1 {
		t.Fatalf("shared layer opened %d times, want 1", n)
	}
}

func TestVerifierFindings(t *testing.T) {
	good := func() [][]byte {
		return [][]byte{gz(t, makeTar(t, entry{name: "a", data: strings.Repeat("data", 1000)})), gz(t, makeTar(t, entry{name: "b", data: "b"}))}
	}
	for _, tc := range []struct {
		name  string
		build func(m *memSource) ocispec.Descriptor
		want  []string
	}{
		{"diff_id wrong", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), func(c map[string]any) {
				c["rootfs"].(map[string]any)["diff_ids"].([]string)[1] = digest.FromString("x").String()
			}, nil)
		}, []string{"layer-diffid"}},
		{"too few diff_ids", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), func(c map[string]any) {
				r := c["rootfs"].(map[string]any)
				r["diff_ids"] = r["diff_ids"].([]string)[:1]
			}, nil)
		}, []string{"layer-count", "layer-count"}},
		{"too many diff_ids", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), func(c map[string]any) {
				r := c["rootfs"].(map[string]any)
				r["diff_ids"] = append(r["diff_ids"].([]string), digest.FromString("x").String())
			}, nil)
		}, []string{"layer-count"}},
		{"rootfs type", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), func(c map[string]any) { c["rootfs"].(map[string]any)["type"] = "nope" }, nil)
		}, []string{"config-rootfs"}},
		{"layer size off", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), nil, func(man *ocispec.Manifest) { man.Layers[0].Size++ })
		}, []string{"layer-size"}},
		{"media type says zstd", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), nil, func(man *ocispec.Manifest) { man.Layers[0].MediaType = ocispec.MediaTypeImageLayerZstd })
		}, []string{"layer-media-type"}},
		// containers/image's dir: copies of a docker save (skopeo copy,
		// podman save --format docker-dir) declare uncompressed blobs with
		// Docker's gzip layer type; Docker and containerd pull them.
		{"docker gzip type on an uncompressed layer", func(m *memSource) ocispec.Descriptor {
			return m.image(t, [][]byte{makeTar(t, entry{name: "a", data: "1"})}, nil, func(man *ocispec.Manifest) {
				man.Layers[0].MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
			})
		}, nil},
		{"docker gzip type on a zstd layer", func(m *memSource) ocispec.Descriptor {
			return m.image(t, [][]byte{zst(t, makeTar(t, entry{name: "a", data: "1"}))}, nil, func(man *ocispec.Manifest) {
				man.Layers[0].MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip"
			})
		}, []string{"layer-media-type"}},
		{"oci gzip type on an uncompressed layer", func(m *memSource) ocispec.Descriptor {
			return m.image(t, [][]byte{makeTar(t, entry{name: "a", data: "1"})}, nil, func(man *ocispec.Manifest) {
				man.Layers[0].MediaType = ocispec.MediaTypeImageLayerGzip
			})
		}, []string{"layer-media-type"}},
		{"layer missing", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), nil, func(man *ocispec.Manifest) { man.Layers[1].Digest = digest.FromString("absent") })
		}, []string{"layer-missing"}},
		{"config digest", func(m *memSource) ocispec.Descriptor {
			return m.image(t, good(), nil, func(man *ocispec.Manifest) {
				m.blobs[man.Config.Digest] = append([]byte(" "), m.blobs[man.Config.Digest]...)
				man.Config.Size++
			})
		}, []string{"config-digest"}},
		{"corrupt gzip", func(m *memSource) ocispec.Descriptor {
			d := m.image(t, good(), nil, nil)
			var man ocispec.Manifest
			json.Unmarshal(m.blobs[d.Digest], &man)
			b := m.blobs[man.Layers[0].Digest]
			b[len(b)/2] ^= 0xff
			return d
		}, []string{"layer-decompress", "layer-digest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMem()
			d := tc.build(m)
			m.targets = []source.Target{{Name: "app", Descriptor: &d}}
			r := verifyMem(t, m, Options{Jobs: 2})
			got := checks(r, report.Error)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("error findings = %v, want %v\n%+v", got, tc.want, r.Findings)
			}
		})
	}
}

func TestVerifierIndex(t *testing.T) {
	m := newMem()
	amd := m.image(t, [][]byte{gz(t, makeTar(t, entry{name: "a", data: "amd"}))}, nil, nil)
	arm := m.image(t, [][]byte{gz(t, makeTar(t, entry{name: "a", data: "arm"}))}, func(c map[string]any) { c["architecture"] = "arm64"; c["variant"] = "v8" }, nil)
	amd.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	att := m.put([]byte(`{"schemaVersion":2}`))
	att.MediaType = ocispec.MediaTypeImageManifest
	att.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.Digest.String()}
	att.Platform = &ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{amd, arm, att}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	id := m.put(ib)
	id.MediaType = ocispec.MediaTypeImageIndex
	m.targets = []source.Target{{Name: "multi", Descriptor: &id}}

	r := verifyMem(t, m, Options{Jobs: 2})
	if got := checks(r, report.Warning); len(got) != 0 {
		t.Fatalf("findings %v", got)
	}
	var plats []string
	for _, img := range r.Images {
		plats = append(plats, img.Platform)
	}
	if !strings.Contains(strings.Join(plats, ","), "linux/amd64") || !strings.Contains(strings.Join(plats, ","), "linux/arm64/v8") {
		t.Fatalf("platforms = %v", plats)
	}
	if got := checks(r, report.Info); !strings.Contains(strings.Join(got, ","), "artifact") {
		t.Errorf("attestation not reported as info: %v", got)
	}

	r = verifyMem(t, m, Options{Platforms: []string{"linux/arm64"}})
	n := 0
	for _, img := range r.Images {
		if !strings.HasPrefix(img.Platform, "attestation") {
			n++
			if img.Platform != "linux/arm64/v8" {
				t.Errorf("--platform linux/arm64 verified %s", img.Platform)
			}
		}
	}
	if n != 1 {
		t.Errorf("--platform linux/arm64 verified %d images, want 1", n)
	}
}

func TestVerifierClaims(t *testing.T) {
	m := newMem()
	d := m.image(t, [][]byte{gz(t, makeTar(t, entry{name: "a", data: "1"}))}, nil, nil)
	m.targets = []source.Target{{Name: "app", Descriptor: &d, Claims: []source.Claim{{By: "Docker-Content-Digest header", Digest: digest.FromString("other")}}}}
	r := verifyMem(t, m, Options{})
	if got := checks(r, report.Error); fmt.Sprint(got) != "[manifest-digest]" {
		t.Fatalf("findings = %v", got)
	}
}

func TestChainIDPublishedVector(t *testing.T) {
	got := ChainIDs([]digest.Digest{
		"sha256:cb42413394c4059335228c137fe884ff3ab8946a014014309676c25e3ac86864",
		"sha256:1c91bf69a08b515a1f9c36893d01bd3123d896b38b082e7c21b4b7cc7023525a",
	})
	if got[1] != "sha256:a3ee2510dcf02c980d7aff635909612006fd1662084d6225e52e769b984abeb5" {
		t.Fatalf("ChainIDs = %v", got)
	}
}
