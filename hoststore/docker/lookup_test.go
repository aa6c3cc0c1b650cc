package docker

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	digest "github.com/opencontainers/go-digest"
)

// TestLookupImage reads one image of a built store by name, by ID and by ID
// prefix, and checks every field against what the builder wrote.
func TestLookupImage(t *testing.T) {
	s := dockertest.Build(t, dockertest.DefaultSpec("vfs", dockertest.IsRoot()))
	st, err := Open(s.Root, Options{})
	must(t, err)
	want := s.Images["app"]
	before := dockertest.TreeHash(t, s.Root)
	for _, ref := range []string{"example.com/app:1", "example.com/app@sha256:" + dockertest.HexID("app-manifest"), want.ID.String(), want.ID.Encoded()[:12]} {
		img, err := st.LookupImage(ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if img.ID != want.ID || string(img.Config) != string(want.Config) || img.Platform() != "linux/amd64" {
			t.Fatalf("%s: ID %s platform %s", ref, img.ID, img.Platform())
		}
		if strings.Join(img.RepoTags, ",") != "example.com/app:1" || strings.Join(img.RepoDigests, ",") != "example.com/app@sha256:"+dockertest.HexID("app-manifest") {
			t.Errorf("%s: tags %v digests %v", ref, img.RepoTags, img.RepoDigests)
		}
		if len(img.Layers) != len(want.Layers) {
			t.Fatalf("%s: %d layers, want %d", ref, len(img.Layers), len(want.Layers))
		}
		for i, l := range img.Layers {
			wl := want.Layers[i]
			var parent digest.Digest
			if wl.Parent != nil {
				parent = wl.Parent.ChainID
			}
			if !l.Present || l.ChainID != wl.ChainID || l.Diff != wl.DiffID || l.Parent != parent || l.CacheID != wl.CacheID || l.Size < 0 || len(l.Problems) != 0 {
				t.Errorf("%s layer %d: %+v, want chain %s diff %s parent %s cache %s", ref, i, l, wl.ChainID, wl.DiffID, parent, wl.CacheID)
			}
			if img.DiffIDs[i] != wl.DiffID || img.ChainIDs[i] != wl.ChainID {
				t.Errorf("%s layer %d: diffID %s chainID %s", ref, i, img.DiffIDs[i], img.ChainIDs[i])
			}
			if len(l.Distribution) != 1 || l.Distribution[0].Digest != digest.FromString("compressed "+wl.DiffID.String()) {
				t.Errorf("%s layer %d: distribution %+v", ref, i, l.Distribution)
			}
			d, ok, err := st.DiffIDByDigest(l.Distribution[0].Digest)
			if err != nil || !ok || d != wl.DiffID {
				t.Errorf("%s layer %d: diffid-by-digest %s %v %v", ref, i, d, ok, err)
			}
			rc, err := st.OpenFile(l.TarSplit)
			must(t, err)
			b, err := io.ReadAll(rc)
			must(t, err)
			rc.Close()
			if dockertest.Gunzip(t, b) != dockertest.Gunzip(t, dockertest.Disassemble(t, wl.Tar)) {
				t.Errorf("%s layer %d: tar-split bytes differ from the builder's", ref, i)
			}
		}
	}
	if _, err := st.LookupImage("example.com/nope:1"); !errors.Is(err, ErrNoMatch) {
		t.Errorf("absent image: %v, want ErrNoMatch", err)
	}
	if _, ok, err := st.DiffIDByDigest(digest.FromString("nothing")); ok || err != nil {
		t.Errorf("absent distribution entry: ok %v err %v", ok, err)
	}
	if strings.Join(before, "\n") != strings.Join(dockertest.TreeHash(t, s.Root), "\n") {
		t.Fatal("the lookup changed the data root")
	}
	// A missing layer directory is reported, not an error.
	must(t, os.RemoveAll(s.Path(want.Layers[1].LayerDB)))
	img, err := st.LookupImage("example.com/app:1")
	must(t, err)
	if img.Layers[1].Present || !img.Layers[0].Present {
		t.Errorf("present: %v %v", img.Layers[0].Present, img.Layers[1].Present)
	}
}
