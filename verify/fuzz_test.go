package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// seedTars adds the tricky tars of the shared fixtures, when present.
func seedTars(f *testing.F) {
	ext, ok := fixtures.ExternalDir()
	if !ok {
		return
	}
	matches, _ := filepath.Glob(filepath.Join(ext, "vbatts+tar-split", "*", "*", "*.tar"))
	more, _ := filepath.Glob(filepath.Join(ext, "vbatts+tar-split", "*", "*", "*", "*.tar"))
	for _, m := range append(matches, more...) {
		if fi, err := os.Stat(m); err == nil && fi.Size() < 1<<20 {
			if b, err := os.ReadFile(m); err == nil {
				f.Add(b)
			}
		}
	}
}

// FuzzPass feeds arbitrary bytes to the layer pass: it must never panic or
// hang, and its digests must always cover every byte.
func FuzzPass(f *testing.F) {
	tarb := makeTar(f, entry{name: "a", data: "hello"}, entry{name: "b/", typ: '5'})
	f.Add(tarb)
	f.Add(gz(f, tarb))
	f.Add(zst(f, tarb))
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	seedTars(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Pass(context.Background(), bytes.NewReader(data), PassOptions{MaxTarSize: 64 << 20, MaxRatio: 200})
		if err != nil {
			t.Fatalf("Pass on in-memory bytes returned an error (data problems must be findings): %v", err)
		}
		if res.StoredDigest != digest.FromBytes(data) || res.StoredSize != int64(len(data)) {
			t.Fatalf("stored digest %s/%d does not cover the input", res.StoredDigest, res.StoredSize)
		}
	})
}

// FuzzManifest feeds arbitrary manifest, index and config bytes to the
// Verifier: every outcome is findings, never a panic.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`), []byte(`{"rootfs":{"type":"layers","diff_ids":["x"]},"history":[{},{}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"mediaType":"application/vnd.oci.image.index.v1+json"}]}`), []byte(`{}`))
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[{"blobSum":"sha256:zz"}],"history":[]}`), []byte(`null`))
	f.Add([]byte(`null`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, manifest, config []byte) {
		m := newMem()
		cd := m.put(config)
		// Let the manifest refer to the config by its real digest half the time.
		var probe map[string]any
		if json.Unmarshal(manifest, &probe) == nil && probe != nil {
			if c, ok := probe["config"].(map[string]any); ok && len(config)%2 == 0 {
				c["digest"] = cd.Digest.String()
				manifest, _ = json.Marshal(probe)
			}
		}
		md := m.put(manifest)
		md.MediaType = ocispec.MediaTypeImageManifest
		m.targets = []source.Target{{Name: "fuzz", Descriptor: &md}}
		b := &report.Builder{}
		if err := New(Options{Jobs: 2}).Verify(context.Background(), m, b); err != nil {
			t.Fatalf("Verify returned an error on in-memory input: %v", err)
		}
		b.Finish("fuzz", "mem", "test")
	})
}

// TestNegativeDescriptorSizes: a manifest declaring negative sizes (found
// by the bad-input corpus) passed silently, since a negative size means
// "unknown" inside the verifier. From JSON it is a finding.
func TestNegativeDescriptorSizes(t *testing.T) {
	m := newMem()
	cfg := m.put([]byte(`{"rootfs":{"type":"layers","diff_ids":[]}}`))
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfg.Digest.String() + `","size":-7},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + digest.FromString("x").String() + `","size":-1}]}`)
	md := m.put(manifest)
	md.MediaType = ocispec.MediaTypeImageManifest
	m.targets = []source.Target{{Name: "neg", Descriptor: &md}}
	b := &report.Builder{}
	if err := New(Options{Jobs: 1}).Verify(context.Background(), m, b); err != nil {
		t.Fatal(err)
	}
	rep := b.Finish("test", "mem", "test")
	got := map[report.Check]bool{}
	for _, f := range rep.Findings {
		got[f.Check] = true
	}
	if !got[report.ConfigSize] || !got[report.LayerSize] {
		t.Fatalf("want config-size and layer-size findings, got %+v", rep.Findings)
	}
}
