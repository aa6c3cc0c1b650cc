package containerd

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// snapDir is where snapshotter sn keeps the files of the snapshot of the
// app image's layer i (namespace default).
func (w *world) snapDir(root, sn string, i int) string {
	chain := verify.ChainIDs(w.app.DiffIDs())
	name := w.r.ns["default"].snaps[sn][chain[i].String()].name
	id := strconv.FormatUint(w.r.backend[sn].snaps[name].id, 10)
	if sn == "overlayfs" {
		return filepath.Join(root, SnapshotterPrefix+sn, "snapshots", id, "fs")
	}
	return filepath.Join(root, SnapshotterPrefix+sn, "snapshots", id)
}

// nativeWorld adds the app image's chain to the native snapshotter too.
func nativeWorld(t *testing.T) *world {
	w := newWorld(t)
	chain := verify.ChainIDs(w.app.DiffIDs())
	w.r.unpack("default", "native", chain, layerTars(w.app))
	w.r.namespace("default").blobs[w.app.ConfigDigest].labels[gcRefSnapshot+"native"] = chain[len(chain)-1].String()
	return w
}

func needUnpack(t *testing.T) {
	t.Helper()
	if !canUnpack {
		t.Skip("unpacking snapshots (whiteout devices, owners, trusted xattrs) needs root")
	}
}

func TestSnapshotFilesClean(t *testing.T) {
	needUnpack(t)
	w := nativeWorld(t)
	root := w.write(t)
	before := treeHash(t, root)
	rep := audit(t, root, Options{Jobs: 2})
	clean(t, rep)
	if fs := find(rep, CheckSnapshotFileUnchecked, nil); len(fs) > 0 {
		t.Errorf("unchecked snapshots in a clean root:\n%s", dump(rep))
	}
	// The container's writable snapshot is reported with its size.
	want(t, rep, CheckSnapshotFileActive, report.Info, func(f report.Finding) bool { return f.Subject.Entry == w.ctr })
	if after := treeHash(t, root); after != before {
		t.Fatal("the audit changed the root")
	}
}

// damage is one change to a snapshot's files and the finding it must give.
type damage struct {
	name  string
	layer int    // the app image's layer whose snapshot is damaged
	entry string // the finding's entry
	check report.Check
	do    func(t *testing.T, dir string)
}

func damages() []damage {
	return []damage{
		{"flipped byte", 0, "bin/app", CheckSnapshotFileContent, func(t *testing.T, dir string) { flipFileByte(t, filepath.Join(dir, "bin/app"), 100) }},
		{"truncated", 2, "app/data.bin", CheckSnapshotFileContent, func(t *testing.T, dir string) { must(t, os.Truncate(filepath.Join(dir, "app/data.bin"), 1000)) }},
		{"deleted", 2, "app/config.json", CheckSnapshotFileMissing, func(t *testing.T, dir string) { must(t, os.Remove(filepath.Join(dir, "app/config.json"))) }},
		{"added", 2, "app/added", CheckSnapshotFileExtra, func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, "app/added"), []byte("x"), 0o644))
		}},
		{"chmod", 0, "etc/os-release", CheckSnapshotFileAttr, func(t *testing.T, dir string) { must(t, os.Chmod(filepath.Join(dir, "etc/os-release"), 0o666)) }},
		{"symlink", 2, "app/config.json", CheckSnapshotFileType, func(t *testing.T, dir string) {
			p := filepath.Join(dir, "app/config.json")
			must(t, os.Remove(p))
			must(t, os.Symlink("/etc/passwd", p))
		}},
	}
}

func flipFileByte(t *testing.T, p string, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0x40
	_, err = f.WriteAt(b, off)
	must(t, err)
}

// TestSnapshotFileDamage: each damage, in an overlayfs and in a native
// snapshot, is exactly one finding of its check, naming the image, layer,
// snapshot and file.
func TestSnapshotFileDamage(t *testing.T) {
	needUnpack(t)
	for _, sn := range []string{"overlayfs", "native"} {
		for _, d := range damages() {
			t.Run(sn+"/"+d.name, func(t *testing.T) {
				w := nativeWorld(t)
				root := w.write(t)
				dir := w.snapDir(root, sn, d.layer)
				d.do(t, dir)
				rep := audit(t, root, Options{})
				f := want(t, rep, d.check, report.Error, func(f report.Finding) bool {
					return strings.TrimSuffix(f.Subject.Entry, "/") == d.entry && f.Subject.Path == dir
				})
				if f.Subject.Image != "default/example.com/app:1" || f.Subject.Layer == nil || *f.Subject.Layer != d.layer ||
					!strings.Contains(f.Message, sn+" snapshot default/") {
					t.Errorf("finding does not name the image, layer and snapshot: %+v", f)
				}
				only(t, rep, d.check)
				if n := len(find(rep, d.check, nil)); n != 1 {
					t.Errorf("want one %s finding, got %d:\n%s", d.check, n, dump(rep))
				}
			})
		}
	}
}

// TestSnapshotWhiteoutDamage: an undone whiteout and a removed opaque
// marker (overlayfs), and a whited-out file put back (native).
func TestSnapshotWhiteoutDamage(t *testing.T) {
	needUnpack(t)
	t.Run("overlayfs undone whiteout", func(t *testing.T) {
		w := nativeWorld(t)
		root := w.write(t)
		must(t, os.Remove(filepath.Join(w.snapDir(root, "overlayfs", 1), "etc/passwd")))
		rep := audit(t, root, Options{})
		want(t, rep, CheckSnapshotFileWhiteout, report.Error, func(f report.Finding) bool { return f.Subject.Entry == "etc/.wh.passwd" })
		only(t, rep, CheckSnapshotFileWhiteout)
	})
	t.Run("overlayfs removed opaque marker", func(t *testing.T) {
		w := nativeWorld(t)
		root := w.write(t)
		must(t, unix.Removexattr(filepath.Join(w.snapDir(root, "overlayfs", 1), "var/lib"), "trusted.overlay.opaque"))
		rep := audit(t, root, Options{})
		want(t, rep, CheckSnapshotFileWhiteout, report.Error, func(f report.Finding) bool { return f.Subject.Entry == "var/lib/.wh..wh..opq" })
		only(t, rep, CheckSnapshotFileWhiteout)
	})
	t.Run("overlayfs added whiteout", func(t *testing.T) {
		w := nativeWorld(t)
		root := w.write(t)
		must(t, unix.Mknod(filepath.Join(w.snapDir(root, "overlayfs", 2), "app/gone"), unix.S_IFCHR, 0))
		rep := audit(t, root, Options{})
		want(t, rep, CheckSnapshotFileWhiteout, report.Error, func(f report.Finding) bool { return f.Subject.Entry == "app/gone" })
		only(t, rep, CheckSnapshotFileWhiteout)
	})
	t.Run("native undone whiteout", func(t *testing.T) {
		w := nativeWorld(t)
		root := w.write(t)
		must(t, os.WriteFile(filepath.Join(w.snapDir(root, "native", 1), "etc/passwd"), []byte("root::0:0::/:/bin/sh\n"), 0o644))
		rep := audit(t, root, Options{})
		want(t, rep, CheckSnapshotFileWhiteout, report.Error, func(f report.Finding) bool { return f.Subject.Entry == "etc/passwd" })
		only(t, rep, CheckSnapshotFileWhiteout)
	})
	t.Run("native inherited file flipped", func(t *testing.T) {
		w := nativeWorld(t)
		root := w.write(t)
		// bin/app comes from layer 0; flip a byte of the layer 2 snapshot's copy.
		flipFileByte(t, filepath.Join(w.snapDir(root, "native", 2), "bin/app"), 9)
		rep := audit(t, root, Options{})
		f := want(t, rep, CheckSnapshotFileContent, report.Error, func(f report.Finding) bool { return f.Subject.Entry == "bin/app" })
		if *f.Subject.Layer != 2 || !strings.Contains(f.Message, "inherited from layer 0") {
			t.Errorf("finding %+v", f)
		}
		only(t, rep, CheckSnapshotFileContent)
	})
	t.Run("native inherited file deleted", func(t *testing.T) {
		w := nativeWorld(t)
		root := w.write(t)
		// bin/sh comes from layer 0; the layer 2 snapshot lost its copy.
		must(t, os.Remove(filepath.Join(w.snapDir(root, "native", 2), "bin/sh")))
		rep := audit(t, root, Options{})
		f := want(t, rep, CheckSnapshotFileMissing, report.Error, func(f report.Finding) bool { return f.Subject.Entry == "bin/sh" })
		if *f.Subject.Layer != 2 || !strings.Contains(f.Message, "inherited from layer 0") {
			t.Errorf("finding %+v", f)
		}
		only(t, rep, CheckSnapshotFileMissing)
	})
}

// TestActiveSnapshotWrites: a container's writes are information.
func TestActiveSnapshotWrites(t *testing.T) {
	needUnpack(t)
	w := newWorld(t)
	root := w.write(t)
	name := w.r.ns["moby"].snaps["overlayfs"][w.ctr].name
	dir := filepath.Join(root, SnapshotterPrefix+"overlayfs", "snapshots", strconv.FormatUint(w.r.backend["overlayfs"].snaps[name].id, 10), "fs")
	must(t, os.WriteFile(filepath.Join(dir, "written"), make([]byte, 777), 0o644))
	rep := audit(t, root, Options{})
	clean(t, rep)
	f := want(t, rep, CheckSnapshotFileActive, report.Info, func(f report.Finding) bool { return f.Subject.Entry == w.ctr })
	if f.Actual != "777" {
		t.Errorf("active snapshot size %q, want 777", f.Actual)
	}
}

// TestSnapshotSharedOnce: two images with the same chain share snapshots;
// each is compared once and its finding names both images.
func TestSnapshotSharedOnce(t *testing.T) {
	needUnpack(t)
	w := newWorld(t)
	_, md, _ := w.app.Manifest()
	w.r.namespace("default").images["example.com/app:alias"] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: md, Size: int64(len(w.r.files[md]))}
	root := w.write(t)
	flipFileByte(t, filepath.Join(w.snapDir(root, "overlayfs", 0), "bin/app"), 7)
	rep := audit(t, root, Options{})
	fs := find(rep, CheckSnapshotFileContent, nil)
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "example.com/app:1") || !strings.Contains(fs[0].Message, "example.com/app:alias") {
		t.Fatalf("want one finding naming both images:\n%s", dump(rep))
	}
}

// TestSnapshotBlobDiscarded: without the layer blobs the snapshots are not
// checked locally (information), and VerifySnapshotFiles checks them with
// the layers from elsewhere.
func TestSnapshotBlobDiscarded(t *testing.T) {
	needUnpack(t)
	w := nativeWorld(t)
	w.discardLayers()
	root := w.write(t)
	flipFileByte(t, filepath.Join(w.snapDir(root, "overlayfs", 2), "app/data.bin"), 5)
	rep := audit(t, root, Options{})
	clean(t, rep)
	if n := len(find(rep, CheckSnapshotFileUnchecked, func(f report.Finding) bool { return f.Subject.Image == "default/example.com/app:1" })); n != 6 {
		t.Errorf("want 6 unchecked snapshots (3 layers, 2 snapshotters), got %d:\n%s", n, dump(rep))
	}

	st, err := Open(root, Options{})
	must(t, err)
	byDigest := map[digest.Digest][]byte{}
	for _, l := range w.app.Layers {
		byDigest[l.Digest] = l.Stored
	}
	opened := map[digest.Digest]int{}
	open := func(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
		opened[d.Digest]++
		data, ok := byDigest[d.Digest]
		if !ok {
			return nil, fmt.Errorf("no blob %s", d.Digest)
		}
		return io.NopCloser(strings.NewReader(string(data))), nil
	}
	b := &report.Builder{}
	must(t, st.VerifySnapshotFiles(context.Background(), "example.com/app:1", open, b))
	rep = b.Finish("compare", root, "test")
	want(t, rep, CheckSnapshotFileContent, report.Error, func(f report.Finding) bool {
		return f.Subject.Entry == "app/data.bin" && *f.Subject.Layer == 2 && strings.Contains(f.Subject.Path, "overlayfs")
	})
	only(t, rep, CheckSnapshotFileContent)
	if len(find(rep, CheckSnapshotFileContent, nil)) != 1 {
		t.Errorf("want the one flipped file:\n%s", dump(rep))
	}
	for _, l := range w.app.Layers {
		if opened[l.Digest] != 1 {
			t.Errorf("layer %s opened %d times, want once", l.Digest, opened[l.Digest])
		}
	}
	// A stream that is not the layer is a problem, not a comparison.
	byDigest[w.app.Layers[1].Digest] = w.app.Layers[2].Stored
	b = &report.Builder{}
	must(t, st.VerifySnapshotFiles(context.Background(), "example.com/app:1", open, b))
	rep = b.Finish("compare", root, "test")
	want(t, rep, CheckSnapshotFileUnchecked, report.Info, func(f report.Finding) bool {
		return *f.Subject.Layer == 1 && strings.Contains(f.Message, "it is not the layer")
	})
}
