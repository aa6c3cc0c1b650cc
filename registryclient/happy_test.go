package registryclient_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/layercheck/layercheck/report"
)

func TestSingleImage(t *testing.T) {
	tr := newRegistry(t)
	img := randomImage(t, 3, "linux", "amd64")
	tr.push(t, "app:v1", img)
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	mustClean(t, rep, err)
	if len(rep.Images) != 1 {
		t.Fatalf("%d images, want 1", len(rep.Images))
	}
	imageMatches(t, rep.Images[0], img)
	if got := rep.Images[0].ManifestMediaType; got != string(types.DockerManifestSchema2) {
		t.Errorf("manifest media type %q", got)
	}
	if got := rep.Images[0].Platform; got != "linux/amd64" {
		t.Errorf("platform %q", got)
	}
	// One GET of the manifest: Targets' bytes are reused by the verifier.
	if n := tr.count("/manifests/v1"); n != 1 {
		t.Errorf("manifest fetched %d times, want 1", n)
	}
	for _, l := range rep.Images[0].Layers {
		if n := tr.count("/blobs/" + l.Digest); n != 1 {
			t.Errorf("layer %s fetched %d times, want 1", l.Digest, n)
		}
		if !strings.Contains(l.Location, tr.host+"/app@"+l.Digest) {
			t.Errorf("layer location %q", l.Location)
		}
	}
}

func TestDigestReference(t *testing.T) {
	tr := newRegistry(t)
	img := randomImage(t, 2, "linux", "arm64")
	d := tr.push(t, "app:v1", img)
	rep, err := check(t, newClient(t, nil), tr.host+"/app@"+d.String())
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	if n := tr.count("/manifests/" + d.String()); n != 1 {
		t.Errorf("manifest fetched by digest %d times, want 1", n)
	}
}

func TestMultiPlatformIndexWithSharedLayers(t *testing.T) {
	tr := newRegistry(t)
	shared := tarLayer(t, "shared.txt", 50000)
	amd := ociImage(t, shared, tarLayer(t, "amd.txt", 3000))
	arm := ociImage(t, shared, tarLayer(t, "arm.txt", 3000))
	cf, _ := arm.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture, cf.Variant = "arm64", "v8"
	arm, err := mutate.ConfigFile(arm, cf)
	must(t, err)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	idxDigest := tr.pushIndex(t, "multi:latest", idx)

	rep, err := check(t, newClient(t, nil), tr.host+"/multi")
	mustClean(t, rep, err)
	byPlat := map[string]report.Image{}
	for _, im := range rep.Images {
		byPlat[im.Platform] = im
		if im.IndexDigest != idxDigest.String() {
			t.Errorf("%s: index digest %s, want %s", im.Platform, im.IndexDigest, idxDigest)
		}
	}
	imageMatches(t, byPlat["linux/amd64"], amd)
	imageMatches(t, byPlat["linux/arm64/v8"], arm)
	sd, _ := shared.Digest()
	if n := tr.count("/blobs/" + sd.String()); n != 1 {
		t.Errorf("shared layer fetched %d times, want 1", n)
	}
	if n := tr.count("/manifests/latest"); n != 1 {
		t.Errorf("index fetched %d times, want 1", n)
	}
}

func TestZstdLayers(t *testing.T) {
	tr := newRegistry(t)
	img := ociImage(t, zstdLayer(t, "a.txt", 100000), zstdLayer(t, "b.txt", 1000))
	tr.push(t, "zstd:1", img)
	rep, err := check(t, newClient(t, nil), tr.host+"/zstd:1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	for _, l := range rep.Images[0].Layers {
		if l.Compression != "zstd" || l.MediaType != string(types.OCILayerZStd) {
			t.Errorf("layer %d: compression %q media type %q", l.Index, l.Compression, l.MediaType)
		}
	}
}

func TestIndexWithAttestation(t *testing.T) {
	tr := newRegistry(t)
	img := ociImage(t, tarLayer(t, "app.txt", 20000))
	md, _ := img.Digest()
	att := ociImage(t, static.NewLayer([]byte(`{"_type":"https://in-toto.io/Statement/v0.1"}`), "application/vnd.in-toto+json"))
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": md.String()},
		}},
	)
	tr.pushIndex(t, "att:1", idx)
	rep, err := check(t, newClient(t, nil), tr.host+"/att:1")
	mustClean(t, rep, err)
	if len(findings(rep, report.Artifact)) != 1 {
		t.Errorf("artifact findings %+v, want one for the attestation", findings(rep, report.Artifact))
	}
	attLayers, _ := att.Layers()
	ad, _ := attLayers[0].Digest()
	if n := tr.count("/blobs/" + ad.String()); n != 0 {
		t.Errorf("the attestation's layer was fetched %d times; it is listed, not verified", n)
	}
}
