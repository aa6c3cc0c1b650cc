package cstorage_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/layercheck/layercheck/hoststore/cstorage/cstoragetest"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	digest "github.com/opencontainers/go-digest"
)

// addLocalManifest gives image key of s a second manifest, as
// containers/image records one for a `podman load` of a docker-archive: a
// Docker schema 2 manifest whose layer digests are the uncompressed
// diffIDs (no registry served it). With asImageDigest the image's digest is
// the local manifest's (the image was loaded first and pulled later: the
// pull rewrote the "manifest" item but not the digest); otherwise the
// "manifest" item is the local one (pulled first, loaded later).
func addLocalManifest(t *testing.T, s *cstoragetest.Store, key string, asImageDigest bool) digest.Digest {
	t.Helper()
	im := s.Images[key]
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	var layers []desc
	for _, l := range im.Layers {
		layers = append(layers, desc{"application/vnd.docker.image.rootfs.diff.tar.gzip", l.DiffID, len(l.Tar)})
	}
	// The local manifest's digest sorts before the registry's, so that an
	// order by digest would put it first (the padding varies the digest).
	var local []byte
	var ld digest.Digest
	for pad := ""; ; pad += " " {
		b, err := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
			"config": desc{"application/vnd.docker.container.image.v1+json", digest.NewDigestFromEncoded(digest.SHA256, im.ID), len(im.Config)},
			"layers": layers,
		})
		if err != nil {
			t.Fatal(err)
		}
		local = append(b, pad...)
		if ld = digest.FromBytes(local); ld.String() < im.Digest.String() {
			break
		}
	}
	items := map[string][]byte{"manifest-" + ld.String(): local}
	if !asImageDigest {
		items["manifest"] = local
	}
	for k, b := range items {
		writeFile(t, s.Path(s.BigData(im.ID, k)), b)
	}
	editJSON(t, s.Path(s.Driver+"-images/images.json"), func(v []map[string]any) {
		for _, r := range v {
			if r["id"] != im.ID {
				continue
			}
			if asImageDigest {
				r["digest"] = ld.String()
			}
			names := r["big-data-names"].([]any)
			sizes := r["big-data-sizes"].(map[string]any)
			digests := r["big-data-digests"].(map[string]any)
			for k, b := range items {
				if _, ok := sizes[k]; !ok {
					names = append(names, k)
				}
				sizes[k], digests[k] = len(b), digest.FromBytes(b).String()
			}
			r["big-data-names"] = names
		}
	})
	return ld
}

// TestRepoDigestsRegistryFirst: an image podman loaded and pulled (in
// either order) keeps two manifests, and containers-storage does not say
// which one came from the registry. The registry's must come first among
// the repository's digests, since compare checks the first against the
// registry: real podman stores gave compare-tag-moved on an untouched
// image because the loaded manifest's digest sorted first.
func TestRepoDigestsRegistryFirst(t *testing.T) {
	for _, loadedFirst := range []bool{true, false} {
		name := "pulled-then-loaded"
		if loadedFirst {
			name = "loaded-then-pulled"
		}
		t.Run(name, func(t *testing.T) {
			s := cstoragetest.Build(t, "vfs")
			app := s.Images["app"]
			local := addLocalManifest(t, s, "app", loadedFirst)
			st := open(t, s.Root, store.Options{})
			im, err := st.Lookup(context.Background(), "example.com/app:1")
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"example.com/app@" + app.Digest.String(), "example.com/app@" + local.String()}
			if len(im.RepoDigests) != 2 || im.RepoDigests[0] != want[0] || im.RepoDigests[1] != want[1] {
				t.Errorf("repo digests %v, want %v (the registry's manifest first)", im.RepoDigests, want)
			}
			rep := audit(t, s.Root, store.Options{})
			for _, f := range rep.Findings {
				if f.Severity >= report.Warning {
					t.Errorf("finding on a store holding a loaded and a pulled manifest: %s %s: %s (want %s, got %s)", f.Check, f.Subject, f.Message, f.Expected, f.Actual)
				}
			}
			for _, p := range rep.Problems {
				t.Errorf("problem: %s: %s", p.Subject, p.Message)
			}
		})
	}
}
