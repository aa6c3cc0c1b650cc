package storetar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// buildTree makes a tree with every kind of entry Capture handles. As root it
// also makes a 0/0 character device with an owner and a trusted.* xattr, as
// overlay2 stores a whiteout and an opaque directory.
func buildTree(t *testing.T, dir string, root bool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a", "file"), []byte("content\n"), 0o644))
	must(os.Link(filepath.Join(dir, "a", "file"), filepath.Join(dir, "a", "b", "hardlink")))
	must(os.Symlink("../file", filepath.Join(dir, "a", "b", "rel")))
	must(os.Symlink("/nowhere", filepath.Join(dir, "a", "dangling")))
	must(unix.Mkfifo(filepath.Join(dir, "a", "fifo"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "a", "setuid"), []byte("#!/bin/sh\n"), 0o755))
	must(unix.Chmod(filepath.Join(dir, "a", "setuid"), 0o4755)) // os.Chmod would drop the bit
	must(os.WriteFile(filepath.Join(dir, "a", "with\nnewline \xff"), nil, 0o600))
	must(os.Mkdir(filepath.Join(dir, "locked"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "locked", "inside"), []byte("x"), 0o644))
	must(os.Chmod(filepath.Join(dir, "locked"), 0o000))
	if err := unix.Lsetxattr(filepath.Join(dir, "a", "file"), "user.layercheck", []byte("v"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	mt := time.Unix(1700000000, 123456789)
	must(os.Chtimes(filepath.Join(dir, "a", "file"), mt, mt))
	if root {
		dev := filepath.Join(dir, "a", "whiteout")
		must(unix.Mknod(dev, unix.S_IFCHR, 0))
		must(os.Lchown(dev, 1000, 1000))
		must(unix.Lsetxattr(filepath.Join(dir, "a", "b"), "trusted.overlay.opaque", []byte("y"), 0))
	}
}

type node struct {
	mode   uint32
	uid    uint32
	rdev   uint64
	size   int64
	mtime  int64
	nlink  uint64
	link   string
	body   string
	xattrs string
}

func snapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{mode: st.Mode, uid: st.Uid, rdev: st.Rdev, nlink: st.Nlink}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			n.mtime = st.Mtim.Nano()
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.body, n.size = string(b), st.Size
		case unix.S_IFLNK:
			n.link, _ = os.Readlink(p)
		}
		x, err := listXattrs(p)
		if err != nil {
			return err
		}
		for k, v := range x {
			n.xattrs += k + "=" + v + ";"
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCaptureExtractRoundTrip: a tree captured and extracted again is the same
// tree: types, modes (setuid, mode 000), owners, device numbers, hardlinks,
// symlink targets, contents, xattrs, nanosecond mtimes, odd names.
func TestCaptureExtractRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extracting needs root (mode-000 directories, owners); the Walk test covers non-root")
	}
	src, dst := t.TempDir(), t.TempDir()
	buildTree(t, src, true)
	defer os.Chmod(filepath.Join(src, "locked"), 0o755)
	var buf bytes.Buffer
	if err := Capture(&buf, src, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Extract(bytes.NewReader(buf.Bytes()), dst); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(dst, "locked"), 0o755)
	a, b := snapshot(t, src), snapshot(t, dst)
	delete(a, ".")
	delete(b, ".")
	for name, want := range a {
		got, ok := b[name]
		if !ok {
			t.Errorf("%q missing after extraction", name)
			continue
		}
		if got != want {
			t.Errorf("%q: extracted %+v, want %+v", name, got, want)
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			t.Errorf("%q appeared after extraction", name)
		}
	}
	// Capturing twice gives the same bytes.
	var again bytes.Buffer
	if err := Capture(&again, src, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("two captures of the same tree differ")
	}
}

// TestCaptureWalk: the entries as Walk sees them, for any user: a hardlink is
// a link to the first name, the fifo is a fifo, an excluded directory is left
// out with its content, the xattr is a PAX record.
func TestCaptureWalk(t *testing.T) {
	src := t.TempDir()
	buildTree(t, src, false)
	defer os.Chmod(filepath.Join(src, "locked"), 0o755)
	if err := os.Chmod(filepath.Join(src, "locked"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "skip", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Capture(&buf, src, Options{Exclude: func(rel string) bool { return rel == "skip" }}); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	var xattr map[string]string
	err := Walk(&buf, func(e Entry) error {
		got[e.Header.Name] = e.Header
		if e.Header.Name == "a/b/hardlink" {
			xattr = e.Xattrs()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"skip/", "skip/deep/"} {
		if got[n] != nil {
			t.Errorf("excluded %q was captured", n)
		}
	}
	// Names are walked in lexical order: a/b/hardlink comes before a/file.
	if h := got["a/file"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "a/b/hardlink" {
		t.Errorf("a/file = %+v, want a hardlink to a/b/hardlink", h)
	}
	if h := got["a/fifo"]; h == nil || h.Typeflag != tar.TypeFifo {
		t.Errorf("a/fifo = %+v, want a fifo", h)
	}
	if h := got["a/setuid"]; h == nil || h.Mode != 0o4755 {
		t.Errorf("a/setuid = %+v, want mode 4755", h)
	}
	if h := got["a/with\nnewline \xff"]; h == nil {
		t.Error("the file with a newline and a non-UTF-8 byte is missing")
	}
	if h := got["a/b/hardlink"]; h == nil || h.ModTime.UnixNano() != 1700000000123456789 {
		t.Errorf("a/b/hardlink mtime = %v, want 1700000000.123456789", h.ModTime)
	}
	if len(xattr) > 0 && xattr["user.layercheck"] != "v" {
		t.Errorf("a/b/hardlink xattrs = %v, want user.layercheck=v", xattr)
	}
}

// TestExtractRefusesEscapes: names and hardlinks leaving the target, and
// names through a symlink planted by an earlier entry, are refused.
func TestExtractRefusesEscapes(t *testing.T) {
	cases := map[string][]tar.Header{
		"dotdot":          {{Typeflag: tar.TypeReg, Name: "../evil", Mode: 0o644}},
		"absolute":        {{Typeflag: tar.TypeReg, Name: "/evil", Mode: 0o644}},
		"hardlink out":    {{Typeflag: tar.TypeLink, Name: "l", Linkname: "../../etc/passwd"}},
		"through symlink": {{Typeflag: tar.TypeSymlink, Name: "s", Linkname: "/tmp", Mode: 0o777}, {Typeflag: tar.TypeReg, Name: "s/evil", Mode: 0o644}},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			zw := gzipWriter(&buf)
			tw := tar.NewWriter(zw)
			for _, h := range hdrs {
				h := h
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			zw.Close()
			dir := t.TempDir()
			if err := Extract(&buf, dir); err == nil {
				t.Fatalf("Extract accepted %s", name)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "evil")); err == nil {
				t.Fatal("a file was written outside the target")
			}
		})
	}
}

// storesDir is fixtures/testdata/stores, from this package's directory.
func storesDir() string { return filepath.Join("..", "..", "fixtures", "testdata", "stores") }

// TestCapturedStores: the committed captures agree with the ground truth
// recorded beside them, read by streaming (no root needed): every image ID is
// the digest of its imagedb content, every chain's layerdb entry has the
// recorded diff and parent and a driver directory, containers have their
// mount entries, overlay2 whiteouts are 0/0 character devices and opaque
// directories carry trusted.overlay.opaque; containerd blobs hash to their
// names and every image's target is a blob.
func TestCapturedStores(t *testing.T) {
	truths, _ := filepath.Glob(filepath.Join(storesDir(), "*.json"))
	if len(truths) == 0 {
		t.Skip("no captures under fixtures/testdata/stores (make capture-stores writes them)")
	}
	for _, tp := range truths {
		truth, err := ReadTruth(tp)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(tp), func(t *testing.T) {
			files := map[string][]byte{}
			headers := map[string]*tar.Header{}
			var blobErrs []string
			f, err := os.Open(filepath.Join(storesDir(), truth.Capture))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = Walk(f, func(e Entry) error {
				name := strings.TrimSuffix(e.Header.Name, "/")
				headers[name] = e.Header
				if e.Header.Typeflag != tar.TypeReg {
					return nil
				}
				b, err := io.ReadAll(e.Body)
				if err != nil {
					return err
				}
				if len(b) < 1<<20 {
					files[name] = b
				}
				// containerd content store: blobs are named by their digest.
				if i := strings.Index(name, "io.containerd.content.v1.content/blobs/sha256/"); i >= 0 {
					want := name[strings.LastIndex(name, "/")+1:]
					sum := sha256.Sum256(b)
					if hex.EncodeToString(sum[:]) != want {
						blobErrs = append(blobErrs, name)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(blobErrs) > 0 {
				t.Errorf("blobs that do not hash to their names: %v", blobErrs)
			}
			for _, ex := range truth.Excluded {
				if headers[ex] != nil {
					t.Errorf("excluded %s is in the capture", ex)
				}
			}
			switch truth.Kind {
			case "docker":
				checkDockerCapture(t, truth, files, headers)
			case "containerd":
				checkContainerdCapture(t, truth, headers)
			case "containers-storage":
				checkCStorageCapture(t, truth, files, headers)
			default:
				t.Fatalf("unknown kind %q", truth.Kind)
			}
		})
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func checkDockerCapture(t *testing.T, truth *Truth, files map[string][]byte, headers map[string]*tar.Header) {
	drv := truth.Driver
	img := "image/" + drv
	if len(truth.Images) == 0 {
		t.Fatal("no image in the ground truth")
	}
	for _, im := range truth.Images {
		hexID := strings.TrimPrefix(im.ID, "sha256:")
		cfg, ok := files[img+"/imagedb/content/sha256/"+hexID]
		if !ok {
			t.Errorf("%s: no imagedb content for %s", im.Ref, im.ID)
		} else if got := digestOf(cfg); got != im.ID {
			t.Errorf("%s: imagedb content hashes to %s, ID %s", im.Ref, got, im.ID)
		}
		if len(im.ChainIDs) != len(im.DiffIDs) || len(im.CacheIDs) != len(im.DiffIDs) {
			t.Fatalf("%s: %d diffIDs, %d chainIDs, %d cacheIDs", im.Ref, len(im.DiffIDs), len(im.ChainIDs), len(im.CacheIDs))
		}
		for i, chain := range im.ChainIDs {
			l := img + "/layerdb/sha256/" + strings.TrimPrefix(chain, "sha256:")
			if got := strings.TrimSpace(string(files[l+"/diff"])); got != im.DiffIDs[i] {
				t.Errorf("%s layer %d: layerdb diff %q, want %s", im.Ref, i, got, im.DiffIDs[i])
			}
			wantParent := ""
			if i > 0 {
				wantParent = im.ChainIDs[i-1]
			}
			if got := strings.TrimSpace(string(files[l+"/parent"])); got != wantParent {
				t.Errorf("%s layer %d: layerdb parent %q, want %q", im.Ref, i, got, wantParent)
			}
			if got := strings.TrimSpace(string(files[l+"/cache-id"])); got != im.CacheIDs[i] {
				t.Errorf("%s layer %d: cache-id %q, want %s", im.Ref, i, got, im.CacheIDs[i])
			}
			if headers[l+"/tar-split.json.gz"] == nil {
				t.Errorf("%s layer %d: no tar-split.json.gz", im.Ref, i)
			}
			var driverDir string
			switch drv {
			case "overlay2":
				driverDir = "overlay2/" + im.CacheIDs[i] + "/diff"
			case "vfs":
				driverDir = "vfs/dir/" + im.CacheIDs[i]
			}
			if h := headers[driverDir]; h == nil || h.Typeflag != tar.TypeDir {
				t.Errorf("%s layer %d: no driver directory %s", im.Ref, i, driverDir)
			}
		}
	}
	for _, c := range truth.Containers {
		m := img + "/layerdb/mounts/" + c.ID
		if got := strings.TrimSpace(string(files[m+"/mount-id"])); got != c.MountID {
			t.Errorf("container %s: mount-id %q, want %s", c.Name, got, c.MountID)
		}
		if headers["containers/"+c.ID+"/config.v2.json"] == nil {
			t.Errorf("container %s: no config.v2.json", c.Name)
		}
	}
	// The crafted image's second layer: whiteout and opaque directory.
	for _, im := range truth.Images {
		if im.How != "load" {
			continue
		}
		cache := im.CacheIDs[1]
		switch drv {
		case "overlay2":
			wh := headers["overlay2/"+cache+"/diff/etc/deleteme"]
			if wh == nil || wh.Typeflag != tar.TypeChar || wh.Devmajor != 0 || wh.Devminor != 0 {
				t.Errorf("overlay2 whiteout etc/deleteme = %+v, want a 0/0 character device", wh)
			}
			opq := headers["overlay2/"+cache+"/diff/opq"]
			if opq == nil || opq.PAXRecords[XattrPrefix+"trusted.overlay.opaque"] != "y" {
				t.Errorf("overlay2 opaque directory opq = %+v, want trusted.overlay.opaque=y", opq)
			}
		case "vfs":
			if headers["vfs/dir/"+cache+"/etc/deleteme"] != nil {
				t.Error("vfs: etc/deleteme survived its whiteout")
			}
			if headers["vfs/dir/"+cache+"/opq/a"] != nil {
				t.Error("vfs: opq/a survived the opaque directory")
			}
		}
	}
}

func checkContainerdCapture(t *testing.T, truth *Truth, headers map[string]*tar.Header) {
	if len(truth.CtrImages) == 0 {
		t.Fatal("no image in the ground truth")
	}
	if headers["io.containerd.metadata.v1.bolt/meta.db"] == nil {
		t.Error("no meta.db")
	}
	for _, im := range truth.CtrImages {
		blob := "io.containerd.content.v1.content/blobs/sha256/" + strings.TrimPrefix(im.Digest, "sha256:")
		if headers[blob] == nil {
			t.Errorf("%s/%s: target %s is not in the content store", im.Namespace, im.Name, im.Digest)
		}
	}
}

// checkCStorageCapture: the graph root's image and layer records hold every
// image podman listed, with its layers.
func checkCStorageCapture(t *testing.T, truth *Truth, files map[string][]byte, headers map[string]*tar.Header) {
	if len(truth.Images) == 0 {
		t.Fatal("no image in the ground truth")
	}
	drv := truth.Driver
	var imgs []struct {
		ID    string `json:"id"`
		Layer string `json:"layer"`
	}
	if err := json.Unmarshal(files[drv+"-images/images.json"], &imgs); err != nil {
		t.Fatalf("%s-images/images.json: %v", drv, err)
	}
	var layers []struct {
		ID         string `json:"id"`
		DiffDigest string `json:"diff-digest"`
	}
	if err := json.Unmarshal(files[drv+"-layers/layers.json"], &layers); err != nil {
		t.Fatalf("%s-layers/layers.json: %v", drv, err)
	}
	diffs := map[string]bool{}
	for _, l := range layers {
		diffs[l.DiffDigest] = true
		dir := drv + "/" + l.ID // overlay: <id>/diff, link, lower
		if drv == "vfs" {
			dir = "vfs/dir/" + l.ID
		}
		if headers[dir] == nil {
			t.Errorf("layer %s has no directory %s", l.ID, dir)
		}
	}
	ids := map[string]bool{}
	for _, im := range imgs {
		ids["sha256:"+im.ID] = true
	}
	for _, im := range truth.Images {
		if !ids[im.ID] {
			t.Errorf("%s: image %s is not in images.json", im.Ref, im.ID)
		}
		for _, d := range im.DiffIDs {
			if !diffs[d] {
				t.Errorf("%s: no layer with diff digest %s", im.Ref, d)
			}
		}
	}
}

func gzipWriter(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }

// TestExtractCapturedStores: as root, every committed capture extracts into a
// usable tree: what host-store tests will do with them.
func TestExtractCapturedStores(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extracting store captures needs root (device nodes, trusted.* xattrs, owners)")
	}
	truths, _ := filepath.Glob(filepath.Join(storesDir(), "*.json"))
	if len(truths) == 0 {
		t.Skip("no captures under fixtures/testdata/stores")
	}
	for _, tp := range truths {
		truth, err := ReadTruth(tp)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(truth.Capture, func(t *testing.T) {
			f, err := os.Open(filepath.Join(storesDir(), truth.Capture))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			dir := t.TempDir()
			if err := Extract(f, dir); err != nil {
				t.Fatal(err)
			}
			if truth.Kind == "containers-storage" {
				for _, im := range truth.Images {
					p := filepath.Join(dir, truth.Driver+"-images", strings.TrimPrefix(im.ID, "sha256:"))
					if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
						t.Errorf("%s: extracted image directory: %v", im.Ref, err)
					}
				}
				return
			}
			for _, im := range truth.Images {
				cfg := filepath.Join(dir, "image", truth.Driver, "imagedb", "content", "sha256", strings.TrimPrefix(im.ID, "sha256:"))
				b, err := os.ReadFile(cfg)
				if err != nil || digestOf(b) != im.ID {
					t.Errorf("%s: extracted config: %v", im.Ref, err)
				}
				if truth.Driver != "overlay2" || im.How != "load" {
					continue
				}
				var st unix.Stat_t
				wh := filepath.Join(dir, "overlay2", im.CacheIDs[1], "diff", "etc", "deleteme")
				if err := unix.Lstat(wh, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
					t.Errorf("extracted whiteout: mode %o rdev %d, %v", st.Mode, st.Rdev, err)
				}
				buf := make([]byte, 4)
				n, err := unix.Lgetxattr(filepath.Join(dir, "overlay2", im.CacheIDs[1], "diff", "opq"), "trusted.overlay.opaque", buf)
				if err != nil || string(buf[:n]) != "y" {
					t.Errorf("extracted opaque xattr = %q, %v", buf[:n], err)
				}
			}
		})
	}
}
