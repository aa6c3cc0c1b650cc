//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/layercheck/layercheck/e2e/harness"
)

// These tests check the harness and the daemons' answers against each other,
// without layercheck: the ground truth the other tests compare with must be
// consistent with what is on disk and in the registry.

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestGroundTruthImages: every image ID is the digest of its config in the
// image store, every layer has a layer-store entry, and pushed images have a
// RepoDigest that is the digest of the manifest the registry serves, whose
// config is the image's config.
func TestGroundTruthImages(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		d := set.Docker
		for _, img := range set.Images {
			t.Run(drv+"/"+img.Name, func(t *testing.T) {
				ins := img.Inspect
				if ins.GraphDriver.Name != drv {
					t.Errorf("GraphDriver.Name = %q, want %q", ins.GraphDriver.Name, drv)
				}
				cfg := filepath.Join(d.DataRoot, "image", drv, "imagedb", "content", "sha256", strings.TrimPrefix(ins.ID, "sha256:"))
				if got := sha256File(t, cfg); got != ins.ID {
					t.Errorf("sha256(imagedb content) = %s, want the image ID %s", got, ins.ID)
				}
				if len(img.ChainIDs) != len(ins.RootFS.Layers) || len(img.ChainIDs) == 0 {
					t.Fatalf("%d chainIDs for %d layers", len(img.ChainIDs), len(ins.RootFS.Layers))
				}
				if img.ChainIDs[0] != ins.RootFS.Layers[0] {
					t.Errorf("chainID of the base layer = %s, want its diffID %s", img.ChainIDs[0], ins.RootFS.Layers[0])
				}
				if img.Remote == "" {
					return
				}
				repo := strings.TrimSuffix(strings.TrimPrefix(img.Remote, s.Registry.Addr+"/"), ":1")
				m, err := s.Registry.Manifest(ctx, repo, "1")
				if err != nil {
					t.Fatal(err)
				}
				if m.Digest != m.Computed {
					t.Errorf("registry Docker-Content-Digest %s, sha256 of the body %s", m.Digest, m.Computed)
				}
				want := s.Registry.Addr + "/" + repo + "@" + m.Digest
				found := false
				for _, rd := range ins.RepoDigests {
					found = found || rd == want
				}
				if !found {
					t.Errorf("RepoDigests %v lack %s", ins.RepoDigests, want)
				}
				var man struct {
					Config struct{ Digest string }
					Layers []struct{ Digest, MediaType string }
				}
				if err := json.Unmarshal(m.Body, &man); err != nil {
					t.Fatal(err)
				}
				if man.Config.Digest != ins.ID {
					t.Errorf("manifest config %s, image ID %s", man.Config.Digest, ins.ID)
				}
				if len(man.Layers) != len(ins.RootFS.Layers) {
					t.Errorf("manifest has %d layers, image %d", len(man.Layers), len(ins.RootFS.Layers))
				}
				// The push recorded distribution metadata for every layer.
				for _, diff := range ins.RootFS.Layers {
					p := filepath.Join(d.DataRoot, "image", drv, "distribution", "v2metadata-by-diffid", "sha256", strings.TrimPrefix(diff, "sha256:"))
					if _, err := os.Stat(p); err != nil {
						t.Errorf("no distribution metadata for layer %s: %v", diff, err)
					}
				}
			})
		}
	}
}

// TestGroundTruthSharedLayer: the crafted image's base layer is byte for byte
// the imported rootfs tar, so the daemon stores it once.
func TestGroundTruthSharedLayer(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		rootfs, crafted := set.Image("rootfs"), set.Image("crafted")
		if rootfs.Inspect.RootFS.Layers[0] != crafted.Inspect.RootFS.Layers[0] {
			t.Errorf("%s: rootfs layer %s, crafted base layer %s", drv, rootfs.Inspect.RootFS.Layers[0], crafted.Inspect.RootFS.Layers[0])
		}
		if n := len(crafted.Inspect.RootFS.Layers); n != 3 {
			t.Errorf("%s: crafted has %d layers, want 3", drv, n)
		}
		const emptyTar = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
		if got := crafted.Inspect.RootFS.Layers[2]; got != emptyTar {
			t.Errorf("%s: crafted's empty layer has diffID %s, want %s", drv, got, emptyTar)
		}
	}
}

// TestGroundTruthWhiteouts: the stores hold the whiteouts as each driver
// writes them: overlay2 keeps 0/0 character devices and trusted.overlay.opaque
// in the layer's diff directory; vfs keeps full copies where the deleted file
// is simply absent.
func TestGroundTruthWhiteouts(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		db, err := set.Docker.LayerDB()
		if err != nil {
			t.Fatal(err)
		}
		img := set.Image("crafted")
		top := db[img.ChainIDs[1]]
		switch drv {
		case "overlay2":
			diff := filepath.Join(set.Docker.DataRoot, "overlay2", top.CacheID, "diff")
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(diff, "etc", "deleteme"), &st); err != nil {
				t.Fatalf("overlay2 whiteout: %v", err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("etc/deleteme in the top layer: mode %o rdev %d, want a 0/0 character device", st.Mode, st.Rdev)
			}
			buf := make([]byte, 8)
			n, err := unix.Lgetxattr(filepath.Join(diff, "opq"), "trusted.overlay.opaque", buf)
			if err != nil || string(buf[:n]) != "y" {
				t.Errorf("opq/ in the top layer: trusted.overlay.opaque = %q, %v; want y", buf[:n], err)
			}
		case "vfs":
			dir := filepath.Join(set.Docker.DataRoot, "vfs", "dir", top.CacheID)
			if _, err := os.Lstat(filepath.Join(dir, "etc", "deleteme")); !os.IsNotExist(err) {
				t.Errorf("vfs: etc/deleteme still in the layer's copy: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "opq", "a")); !os.IsNotExist(err) {
				t.Errorf("vfs: opq/a survived the opaque directory: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "opq", "new")); err != nil || string(b) != "replaced directory\n" {
				t.Errorf("vfs: opq/new = %q, %v", b, err)
			}
		}
		// The xattr of the base layer reached the store.
		base := db[img.ChainIDs[0]]
		var p string
		if drv == "overlay2" {
			p = filepath.Join(set.Docker.DataRoot, "overlay2", base.CacheID, "diff", "data", "xattr")
		} else {
			p = filepath.Join(set.Docker.DataRoot, "vfs", "dir", base.CacheID, "data", "xattr")
		}
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(p, harness.XattrName, buf)
		if err != nil || string(buf[:n]) != harness.XattrValue {
			t.Errorf("%s: %s of data/xattr = %q, %v; want %q", drv, harness.XattrName, buf[:n], err, harness.XattrValue)
		}
	}
}

// TestGroundTruthContainers: one exited, one created and one running
// container, each with a read-write layer and an -init layer in layerdb/mounts.
func TestGroundTruthContainers(t *testing.T) {
	s := need(t)
	want := map[string]string{"exited": "exited", "created": "created", "running": "running"}
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		for key, status := range want {
			ci, ok := set.Containers[key]
			if !ok {
				t.Errorf("%s: no %s container", drv, key)
				continue
			}
			if ci.State.Status != status {
				t.Errorf("%s: container %s is %q, want %q", drv, ci.Name, ci.State.Status, status)
			}
			mounts := filepath.Join(set.Docker.DataRoot, "image", drv, "layerdb", "mounts", ci.ID)
			for _, f := range []string{"mount-id", "init-id", "parent"} {
				if _, err := os.Stat(filepath.Join(mounts, f)); err != nil {
					t.Errorf("%s: container %s: %v", drv, key, err)
				}
			}
		}
		// The running container's process and its shim are confined to the
		// Env: Close will find them, and knows where the shim's socket is.
		running := set.Containers["running"].ID
		found, shim := false, false
		for _, p := range harness.ProcessesUnder(s.Env.Root) {
			if strings.HasPrefix(p.Cmdline, "sleep 100000") {
				cg, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid), "cgroup"))
				if strings.Contains(string(cg), "/"+set.Docker.CgroupParent+"/"+running) {
					found = true
				}
			}
			if strings.Contains(p.Cmdline, running) {
				sock := harness.ShimSocket(p.Cmdline)
				if st, err := os.Lstat(sock); err != nil || st.Mode()&os.ModeSocket == 0 {
					t.Errorf("%s: shim socket %q of %s: %v", drv, sock, p.Cmdline, err)
				}
				shim = true
			}
		}
		if !found || !shim {
			t.Errorf("%s: the running container's sleep in cgroup %s (found %v) or its shim (found %v) is not under %s", drv, set.Docker.CgroupParent, found, shim, s.Env.Root)
		}
	}
}

// TestCorruptTouchesOnlyTheCopy: a store copy keeps whiteout devices and
// opaque xattrs, and corrupting it leaves the live store as it was.
func TestCorruptTouchesOnlyTheCopy(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		d := set.Docker
		img := set.Image("crafted")
		rel := filepath.Join("image", drv, "imagedb", "content", "sha256", strings.TrimPrefix(img.Inspect.ID, "sha256:"))
		live := filepath.Join(d.DataRoot, rel)
		before, err := os.ReadFile(live)
		if err != nil {
			t.Fatal(err)
		}
		c := s.Env.Corrupt(t, d.DataRoot)
		if err := c.FlipByte(rel, 10); err != nil {
			t.Fatal(err)
		}
		after, _ := os.ReadFile(live)
		if !bytes.Equal(before, after) {
			t.Fatalf("%s: corrupting the copy changed the live store", drv)
		}
		copied, _ := os.ReadFile(filepath.Join(c.Path, rel))
		if bytes.Equal(copied, before) || len(copied) != len(before) {
			t.Errorf("%s: the copy was not corrupted", drv)
		}
		if _, err := c.File("../escape"); err == nil {
			t.Errorf("%s: Copy.File accepted a path leaving the copy", drv)
		}
		if drv != "overlay2" {
			continue
		}
		db, _ := d.LayerDB()
		top := db[img.ChainIDs[1]]
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(c.Path, "overlay2", top.CacheID, "diff", "etc", "deleteme"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
			t.Errorf("copy lost the whiteout device: mode %o, %v", st.Mode, err)
		}
		buf := make([]byte, 8)
		if n, err := unix.Lgetxattr(filepath.Join(c.Path, "overlay2", top.CacheID, "diff", "opq"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
			t.Errorf("copy lost the opaque xattr: %q, %v", buf[:n], err)
		}
	}
}

// TestGroundTruthContainerd: the standalone containerd holds every imported
// image under its namespaces, and the zstd pull kept zstd layers.
func TestGroundTruthContainerd(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	for _, drv := range s.Drivers {
		for _, ns := range s.CtrNamespaces[drv] {
			imgs, err := s.Containerd.Images(ctx, ns)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) == 0 {
				t.Errorf("namespace %s holds no image", ns)
			}
		}
		// skopeo rewrites a Docker config as an OCI config when it converts
		// the manifest, so the push's config is the layouts' config, and its
		// diff_ids are the daemon's.
		layout, err := harness.ReadLayout(s.Copies[drv].LayoutGzip)
		if err != nil {
			t.Fatal(err)
		}
		var want harness.LayoutImage
		for _, li := range layout {
			if li.RefName == "layers" {
				want = li
			}
		}
		zstd := s.Copies[drv].ZstdRemote["layers"]
		repo := strings.TrimSuffix(strings.TrimPrefix(zstd, s.Registry.Addr+"/"), ":1")
		m, err := s.Registry.Manifest(ctx, repo, "1")
		if err != nil {
			t.Fatal(err)
		}
		var man struct {
			Config struct{ Digest string }
			Layers []struct{ MediaType string }
		}
		if err := json.Unmarshal(m.Body, &man); err != nil {
			t.Fatal(err)
		}
		if man.Config.Digest != want.ConfigDigest {
			t.Errorf("%s: zstd push config %s, gzip layout config %s", drv, man.Config.Digest, want.ConfigDigest)
		}
		cfg, err := s.Registry.Blob(ctx, repo, man.Config.Digest)
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(c.RootFS.DiffIDs, " "), strings.Join(s.Sets[drv].Image("layers").Inspect.RootFS.Layers, " "); got != want {
			t.Errorf("%s: zstd push diff_ids %s, daemon's %s", drv, got, want)
		}
		for i, l := range man.Layers {
			if l.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
				t.Errorf("%s: zstd push layer %d has media type %s", drv, i, l.MediaType)
			}
		}
	}
}
