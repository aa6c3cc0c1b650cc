package hoststore_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/layercheck/layercheck/e2e/storetar"
	"github.com/layercheck/layercheck/hoststore"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/ref"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/store/storetest"
	digest "github.com/opencontainers/go-digest"
)

func opener(root string) func(t *testing.T, opts store.Options) store.Store {
	return func(t *testing.T, opts store.Options) store.Store {
		t.Helper()
		s, err := hoststore.Open(root, opts)
		if err != nil {
			t.Fatalf("hoststore.Open(%s): %v", root, err)
		}
		return s
	}
}

// TestConformanceDockerBuilt runs the store suite on Docker data roots laid
// out by dockertest, one per graph driver.
func TestConformanceDockerBuilt(t *testing.T) {
	for _, driver := range []string{"overlay2", "vfs", "fuse-overlayfs", "btrfs"} {
		st := dockertest.Build(t, dockertest.DefaultSpec(driver, dockertest.IsRoot()))
		var want []store.Image
		for _, im := range st.Images {
			w := store.Image{ID: im.ID}
			for _, r := range im.Refs {
				if p, err := ref.Parse(r); err == nil && p.Digest == "" {
					w.Names = append(w.Names, p.String())
				}
			}
			for _, l := range im.Layers {
				w.Layers = append(w.Layers, store.Layer{DiffID: l.DiffID})
			}
			want = append(want, w)
		}
		storetest.Run(t, storetest.Case{
			Name: "docker-" + driver, Kind: store.Docker, Root: st.Root, Open: opener(st.Root), Images: want,
			AllowFindings: []report.Check{"host-image-dangling"},
		})
	}
}

// extract restores a real store capture of fixtures/testdata/stores.
func extract(t *testing.T, name string) (string, *storetar.Truth) {
	return storetar.ExtractCapture(t, name)
}

// truthImages are a capture's images as the tool that made it listed them:
// ID, names, diffIDs.
func truthImages(truth *storetar.Truth) []store.Image {
	var want []store.Image
	for _, ti := range truth.Images {
		w := store.Image{ID: digest.Digest(ti.ID)}
		for _, tag := range ti.RepoTags {
			w.Names = append(w.Names, ref.Normalize(tag))
		}
		for _, d := range ti.DiffIDs {
			w.Layers = append(w.Layers, store.Layer{DiffID: digest.Digest(d)})
		}
		want = append(want, w)
	}
	return want
}

// TestConformanceDockerCaptures runs the suite on real dockerd data roots,
// with the daemon's own answers as the expected images.
func TestConformanceDockerCaptures(t *testing.T) {
	for _, name := range []string{"docker-overlay2", "docker-vfs"} {
		root, truth := extract(t, name)
		storetest.Run(t, storetest.Case{
			Name: name, Kind: store.Docker, Root: root, Open: opener(root), Images: truthImages(truth),
			AllowFindings: []report.Check{"host-image-dangling", "host-leftover"},
		})
	}
}

// TestConformanceContainerdCapture runs the suite on a real containerd root,
// one namespace at a time (the same name is in several). The expected image
// IDs are read from the content store by hand: the target manifest's config.
func TestConformanceContainerdCapture(t *testing.T) {
	root, truth := extract(t, "containerd")
	byNS := map[string][]store.Image{}
	var order []string
	for _, ci := range truth.CtrImages {
		data, err := os.ReadFile(filepath.Join(root, "io.containerd.content.v1.content", "blobs", "sha256", digest.Digest(ci.Digest).Encoded()))
		if err != nil {
			t.Fatalf("target of %s: %v", ci.Name, err)
		}
		var m struct {
			Config struct{ Digest digest.Digest }
			Layers []struct{ Digest digest.Digest }
		}
		if err := json.Unmarshal(data, &m); err != nil || m.Config.Digest == "" {
			continue // an index: its platforms are covered by the audit
		}
		w := store.Image{ID: m.Config.Digest, Names: []string{ref.Normalize(ci.Name)}}
		for _, l := range m.Layers {
			w.Layers = append(w.Layers, store.Layer{Digest: l.Digest})
		}
		if _, ok := byNS[ci.Namespace]; !ok {
			order = append(order, ci.Namespace)
		}
		byNS[ci.Namespace] = append(byNS[ci.Namespace], w)
	}
	for _, ns := range order {
		open := func(t *testing.T, opts store.Options) store.Store {
			opts.Namespaces = []string{ns}
			return opener(root)(t, opts)
		}
		for i := range byNS[ns] {
			// The layers' diffIDs come from the configs: only the
			// compressed digests are known independently.
			for j := range byNS[ns][i].Layers {
				byNS[ns][i].Layers[j].DiffID = ""
			}
		}
		storetest.Run(t, storetest.Case{
			Name: "containerd-" + ns, Kind: store.Containerd, Root: root, Open: open, Images: byNS[ns],
			AllowFindings: []report.Check{"ctrd-unreferenced", "ctrd-blob-orphan", "ctrd-snapshot-orphan", "ctrd-not-pulled", "ctrd-not-unpacked", "ctrd-ingest-leftover"},
		})
	}
}

// TestConformanceCStorageCapture runs the suite on a real podman graph root
// (overlay where the capture's kernel mounted it, else vfs), with podman's
// own answers as the expected images.
func TestConformanceCStorageCapture(t *testing.T) {
	for _, name := range []string{"podman-overlay", "podman-vfs"} {
		t.Run(name, func(t *testing.T) {
			root, truth := extract(t, name)
			storetest.Run(t, storetest.Case{
				Name: name, Kind: store.ContainersStorage, Root: root, Open: opener(root), Images: truthImages(truth),
			})
		})
	}
}

// TestDetect recognises each kind from the contents alone.
func TestDetect(t *testing.T) {
	st := dockertest.Build(t, dockertest.DefaultSpec("vfs", false))
	if k, err := hoststore.Detect(st.Root); err != nil || k != store.Docker {
		t.Errorf("Detect(docker root) = %q, %v", k, err)
	}
	empty := t.TempDir()
	if _, err := hoststore.Detect(empty); !errors.Is(err, hoststore.ErrUnknownStore) {
		t.Errorf("Detect(empty dir) = %v, want ErrUnknownStore", err)
	}
	if _, err := hoststore.Detect(filepath.Join(empty, "nope")); err == nil {
		t.Error("Detect(missing dir) succeeded")
	}
	if _, err := hoststore.Open(st.Root, store.Options{Namespaces: []string{"moby"}}); err == nil {
		t.Error("a namespace option on a Docker root is accepted")
	}
}
