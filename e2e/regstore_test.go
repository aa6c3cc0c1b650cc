//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/hoststore/regstore"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/store/storetest"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// regPush pushes through the registry's HTTP API (monolithic uploads).
type regPush struct {
	t    *testing.T
	base string
}

func (p regPush) do(method, url, ct string, body []byte) *http.Response {
	p.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		p.t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
	return resp
}

func (p regPush) blob(repo string, data []byte) {
	loc := p.do("POST", p.base+repo+"/blobs/uploads/", "", nil).Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	p.do("PUT", loc+sep+"digest="+digest.FromBytes(data).String(), "application/octet-stream", data)
}

func (p regPush) manifest(repo, ref, mt string, data []byte) digest.Digest {
	d := digest.FromBytes(data)
	if ref == "" {
		ref = d.String()
	}
	p.do("PUT", p.base+repo+"/manifests/"+ref, mt, data)
	return d
}

func (p regPush) image(repo string, b *fixtures.Built, tag string) digest.Digest {
	p.blob(repo, b.Config)
	for _, l := range b.Layers {
		p.blob(repo, l.Stored)
	}
	data, _, mt := b.Manifest()
	return p.manifest(repo, tag, mt, data)
}

func regImage(seed int64, comp string, plat fixtures.Platform) *fixtures.Built {
	return fixtures.MustBuild(fixtures.Image{Platform: plat, Layers: []fixtures.Layer{
		{Compression: comp, Files: []fixtures.File{fixtures.Reg("seed", fixtures.RandomBytes(seed, 3000))}},
		{Compression: comp, Files: []fixtures.File{fixtures.Reg("app", fixtures.RandomBytes(seed+1, 5000))}},
	}})
}

// TestRegistryStorageAudit: images pushed to docker-registry (gzip, zstd,
// a two-platform index, an OCI artifact with a subject), one manifest
// deleted through the API: the storage audits clean but for orphans, the
// orphans are exactly what `docker-registry garbage-collect --dry-run`
// lists, damage on a copy is found, and nothing under the root changes.
func TestRegistryStorageAudit(t *testing.T) {
	s := need(t)
	r := s.Registry
	p := regPush{t: t, base: "http://" + r.Addr + "/v2/"}
	p.image("regstore/a", regImage(101, fixtures.Gzip, fixtures.Platform{}), "1")
	p.image("regstore/copy", regImage(101, fixtures.Gzip, fixtures.Platform{}), "1")
	p.image("regstore/zstd", regImage(103, fixtures.Zstd, fixtures.Platform{}), "1")
	amd := regImage(105, fixtures.Gzip, fixtures.Platform{OS: "linux", Arch: "amd64"})
	arm := regImage(107, fixtures.Gzip, fixtures.Platform{OS: "linux", Arch: "arm64", Variant: "v8"})
	p.image("regstore/multi", amd, "")
	p.image("regstore/multi", arm, "")
	idx, _ := json.Marshal(ocispec.Index{Versioned: struct {
		SchemaVersion int `json:"schemaVersion"`
	}{2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{amd.ManifestDesc(), arm.ManifestDesc()}})
	idxD := p.manifest("regstore/multi", "latest", ocispec.MediaTypeImageIndex, idx)
	empty, sbom := []byte("{}"), []byte(`{"spdxVersion":"SPDX-2.3"}`)
	p.blob("regstore/multi", empty)
	p.blob("regstore/multi", sbom)
	art, _ := json.Marshal(ocispec.Manifest{Versioned: struct {
		SchemaVersion int `json:"schemaVersion"`
	}{2}, MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/spdx+json",
		Config:  ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(empty), Size: 2},
		Layers:  []ocispec.Descriptor{{MediaType: "application/spdx+json", Digest: digest.FromBytes(sbom), Size: int64(len(sbom))}},
		Subject: &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: idxD, Size: int64(len(idx))}})
	p.manifest("regstore/multi", "", ocispec.MediaTypeImageManifest, art)
	gone := regImage(109, fixtures.Gzip, fixtures.Platform{})
	goneD := p.image("regstore/gone", gone, "1")
	p.image("regstore/gone", regImage(111, fixtures.Gzip, fixtures.Platform{}), "")
	p.do("DELETE", p.base+"regstore/gone/manifests/"+goneD.String(), "", nil)
	p.blob("regstore/gone", []byte("uploaded, never referenced"))

	before := storetest.TreeHash(t, r.Storage)
	st, err := regstore.Open(r.Storage, store.Options{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := &report.Builder{}
	if err := st.Audit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	rep := b.Finish("host", st.String(), "e2e")
	for _, f := range rep.Findings {
		if f.Severity == report.Error || (f.Severity == report.Warning && f.Check != regstore.CheckRegBlobOrphan && f.Check != regstore.CheckRegRepoEmpty) {
			t.Errorf("finding on the registry's storage: %s %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
		}
	}
	for _, pr := range rep.Problems {
		t.Errorf("problem: %s: %s", pr.Subject, pr.Message)
	}

	out, err := exec.Command(s.Env.Tools.Registry, "garbage-collect", "--dry-run", r.Config).CombinedOutput()
	if err != nil {
		t.Fatalf("garbage-collect --dry-run: %v\n%s", err, out)
	}
	var gc []digest.Digest
	for _, m := range regexp.MustCompile(`blob eligible for deletion: (\S+)`).FindAllStringSubmatch(string(out), -1) {
		gc = append(gc, digest.Digest(m[1]))
	}
	sort.Slice(gc, func(i, j int) bool { return gc[i] < gc[j] })
	if got := st.Orphans(); !reflect.DeepEqual(got, gc) {
		t.Errorf("orphans %v\ngarbage-collect --dry-run: %v", got, gc)
	}
	if len(gc) < 4 {
		t.Errorf("garbage-collect lists %d blobs; the deleted manifest alone leaves 4", len(gc))
	}
	if d := diffTree(before, storetest.TreeHash(t, r.Storage)); d != "" {
		t.Errorf("the audit changed the registry's storage:\n%s", d)
	}

	// Damage on a copy.
	c := s.Env.Corrupt(t, r.Storage)
	layer := gone.Layers[0].Digest // deleted manifest's layer: an orphan, still hashed
	rel := path.Join(regstore.V2Dir, "blobs", "sha256", layer.Encoded()[:2], layer.Encoded(), "data")
	if err := c.FlipByte(rel, 100); err != nil {
		t.Fatal(err)
	}
	cs, err := regstore.Open(c.Path, store.Options{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	cb := &report.Builder{}
	if err := cs.Audit(context.Background(), cb); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range cb.Finish("host", cs.String(), "e2e").Findings {
		found = found || (f.Check == regstore.CheckRegBlobDigest && f.Subject.Digest == layer.String())
	}
	if !found {
		t.Errorf("no %s finding for the flipped blob %s", regstore.CheckRegBlobDigest, layer)
	}
}

func diffTree(a, b []string) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return strings.Join(a, "\n") + "\n---\n" + strings.Join(b, "\n")
}
