package containerd

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

func TestFindImage(t *testing.T) {
	w := newWorld(t)
	// The same name in a second namespace makes the short name ambiguous.
	w.r.image(t, "other", "example.com/app:1", w.app, false)
	root := w.write(t)
	st, err := Open(root, Options{})
	must(t, err)

	for _, ref := range []string{"small", "library/small", "docker.io/library/small:latest", "small:latest", "moby/docker.io/library/small:latest"} {
		h, err := st.FindImage(ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if h.Namespace != "moby" || h.Name != "docker.io/library/small:latest" || len(h.Platforms) != 1 {
			t.Fatalf("%s: %s/%s, %d platforms", ref, h.Namespace, h.Name, len(h.Platforms))
		}
		p := h.Platforms[0]
		if p.Manifest.Digest != w.small.DockerManifestDigest || p.Config.Digest != w.small.ConfigDigest || !p.ConfigPresent || !p.Unpacked || p.Platform != "linux/amd64" {
			t.Fatalf("%s: platform %+v", ref, p)
		}
		chain := verify.ChainIDs(w.small.DiffIDs())
		for i, l := range p.Layers {
			if l.Desc.Digest != w.small.Layers[i].Digest || l.DiffID != w.small.Layers[i].DiffID || l.ChainID != chain[i] || !l.Blob ||
				len(l.Snapshotters) != 1 || l.Snapshotters[0] != "overlayfs" {
				t.Errorf("%s layer %d: %+v", ref, i, l)
			}
		}
	}

	if _, err := st.FindImage("example.com/app:1"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("a name in two namespaces: %v", err)
	}
	if _, err := st.FindImage("nosuch"); !errors.Is(err, verify.ErrNoMatch) || !strings.Contains(err.Error(), "default/example.com/app:1") {
		t.Errorf("no such image: %v", err)
	}
	// By namespace, and by a target digest prefix.
	h, err := st.FindImage("other/example.com/app:1")
	must(t, err)
	if h.Namespace != "other" || len(h.Platforms) != 1 || h.Platforms[0].Unpacked || len(h.Platforms[0].Layers[0].Snapshotters) != 0 {
		t.Fatalf("other/example.com/app:1 (not unpacked there): %+v", h)
	}

	// The index: one platform pulled and unpacked, one with manifest and
	// config only, one absent.
	idx := w.r.ns["default"].images["example.com/multi:1"]
	h, err = st.FindImage(idx.Digest.Encoded()[:10])
	must(t, err)
	if h.Name != "example.com/multi:1" || h.Target.Digest != idx.Digest || len(h.Platforms) != 2 || len(h.Absent) != 1 || h.Absent[0] != "linux/s390x" {
		t.Fatalf("index: %+v", h)
	}
	if p := h.Platforms[0]; p.Platform != "linux/amd64" || !p.Unpacked || !p.Layers[0].Blob {
		t.Errorf("pulled platform: %+v", p)
	}
	// (Its base layer is the amd64 one's, so that blob is present.)
	if p := h.Platforms[1]; p.Platform != "linux/arm64/v8" || p.Unpacked || p.Layers[1].Blob || !p.ConfigPresent {
		t.Errorf("platform with manifest and config only: %+v", p)
	}
}

// TestFindImageSnapshotGone: a snapshot whose directory is gone does not
// count as holding the layer.
func TestFindImageSnapshotGone(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	chain := verify.ChainIDs(w.app.DiffIDs())
	name := w.r.ns["default"].snaps["overlayfs"][chain[1].String()].name
	id := w.r.backend["overlayfs"].snaps[name].id
	must(t, os.RemoveAll(filepath.Join(root, SnapshotterPrefix+"overlayfs", "snapshots", strconv.FormatUint(id, 10))))
	st, err := Open(root, Options{Namespaces: []string{"default"}})
	must(t, err)
	h, err := st.FindImage("example.com/app:1")
	must(t, err)
	for i, l := range h.Platforms[0].Layers {
		if intact := len(l.Snapshotters) > 0; intact != (i != 1) {
			t.Errorf("layer %d: snapshotters %v", i, l.Snapshotters)
		}
	}
}

// TestSelect: a view restricted to one namespace and image audits that
// image only, without reading the databases again; the store is unchanged.
func TestSelect(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	st, err := Open(root, noFiles(Options{}))
	must(t, err)
	v, err := st.Select([]string{"moby"}, []string{"moby/docker.io/library/small:latest"})
	must(t, err)
	// A view keeps what Open read: removing meta.db does not matter.
	must(t, os.Remove(filepath.Join(root, MetaDBPath)))
	b := &report.Builder{}
	must(t, v.Audit(t.Context(), b))
	rep := b.Finish("host", root, "test")
	if len(rep.Images) != 1 || rep.Images[0].Name != "moby/docker.io/library/small:latest" {
		t.Fatalf("images %+v", rep.Images)
	}
	clean(t, rep)
	if got := strings.Join(st.Namespaces(), ","); got != "default,moby" {
		t.Errorf("the store's namespaces changed to %s", got)
	}
	if _, err := st.Select([]string{"nosuch"}, nil); !errors.Is(err, verify.ErrNoMatch) {
		t.Errorf("unknown namespace: %v", err)
	}
}
