package containerd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/store/storetest"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

func smallImage(name string, seed int64, plat fixtures.Platform, docker bool) *fixtures.Built {
	return fixtures.MustBuild(fixtures.Image{
		Name: name, Platform: plat, DockerMediaTypes: docker,
		Layers: []fixtures.Layer{
			{Files: []fixtures.File{fixtures.Dir("etc"), fixtures.Reg("etc/hostname", []byte(name+"\n"))}},
			{Files: []fixtures.File{fixtures.Dir("data"), fixtures.Reg("data/blob", fixtures.RandomBytes(seed, 3000))}},
		},
	})
}

// world is the standard root: namespace default holds a three-layer image
// (gzip, zstd, gzip) and a three-platform index of which one platform is
// pulled and unpacked, one has only its manifest and config, and one is
// absent; namespace moby holds a Docker-media-type image with an image
// lease and a container (lease, init and active snapshots).
type world struct {
	r     *testRoot
	app   *fixtures.Built
	multi []*fixtures.Built
	small *fixtures.Built
	ctr   string
}

func newWorld(t *testing.T) *world {
	w := &world{r: newTestRoot(), ctr: "0123456789ab"}
	w.app = fixtures.MustBuild(fixtures.BaseImage())
	w.r.image(t, "default", "example.com/app:1", w.app, true)
	w.multi = []*fixtures.Built{
		smallImage("example.com/multi:1", 11, fixtures.Platform{OS: "linux", Arch: "amd64"}, false),
		smallImage("example.com/multi:1", 12, fixtures.Platform{OS: "linux", Arch: "arm64", Variant: "v8"}, false),
		smallImage("example.com/multi:1", 13, fixtures.Platform{OS: "linux", Arch: "s390x"}, false),
	}
	w.r.index(t, "default", "example.com/multi:1", w.multi, map[int]bool{2: true})
	w.small = smallImage("docker.io/library/small:latest", 21, fixtures.Platform{}, true)
	md := w.r.image(t, "moby", "docker.io/library/small:latest", w.small, true)
	moby := w.r.namespace("moby")
	moby.leases["moby-image-"+w.small.ConfigDigest.Encoded()] = &testLease{content: []string{md.Digest.String()}}
	// A container: committed <id>-init on the image's top chainID, active <id> on it.
	chain := verify.ChainIDs(w.small.DiffIDs())
	top := chain[len(chain)-1].String()
	be := w.r.backend["overlayfs"]
	for _, s := range []struct {
		key, parent string
		kind        byte
	}{{w.ctr + "-init", top, kindCommitted}, {w.ctr, w.ctr + "-init", kindActive}} {
		w.r.seq++
		name := fmt.Sprintf("moby/%d/%s", w.r.seq, s.key)
		moby.snaps["overlayfs"][s.key] = &testSnap{name: name, parent: s.parent}
		be.next++
		be.snaps[name] = &testBackendSnap{id: be.next, kind: s.kind, parent: moby.snaps["overlayfs"][s.parent].name}
	}
	moby.leases[w.ctr] = &testLease{snaps: map[string][]string{"overlayfs": {w.ctr, w.ctr + "-init"}}}
	moby.ctrs[w.ctr] = [2]string{"overlayfs", w.ctr}
	return w
}

func (w *world) write(t *testing.T) string {
	dir := t.TempDir()
	w.r.write(t, dir)
	return dir
}

func audit(t *testing.T, root string, opts Options) *report.Report {
	t.Helper()
	b := &report.Builder{}
	if err := Audit(context.Background(), root, noFiles(opts), b); err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return b.Finish("host", root, "test")
}

func dump(rep *report.Report) string { return storetest.ReportText(rep) }

// clean asserts no error or warning finding and no problem.
func clean(t *testing.T, rep *report.Report) {
	t.Helper()
	if rep.Summary.Errors > 0 || rep.Summary.Warnings > 0 || len(rep.Problems) > 0 {
		t.Fatalf("want no errors, warnings or problems, got:\n%s", dump(rep))
	}
}

func find(rep *report.Report, c report.Check, pred func(report.Finding) bool) []report.Finding {
	var out []report.Finding
	for _, f := range rep.Findings {
		if f.Check == c && (pred == nil || pred(f)) {
			out = append(out, f)
		}
	}
	return out
}

func want(t *testing.T, rep *report.Report, c report.Check, sev report.Severity, pred func(report.Finding) bool) report.Finding {
	t.Helper()
	fs := find(rep, c, pred)
	for _, f := range fs {
		if f.Severity == sev {
			return f
		}
	}
	t.Fatalf("want a %s %s finding, got:\n%s", sev, c, dump(rep))
	return report.Finding{}
}

// only asserts that every error or warning finding is one of the checks.
func only(t *testing.T, rep *report.Report, cs ...report.Check) {
	t.Helper()
	for _, f := range rep.Findings {
		if f.Severity == report.Info {
			continue
		}
		ok := false
		for _, c := range cs {
			ok = ok || f.Check == c
		}
		if !ok {
			t.Fatalf("unexpected %s %s finding; all:\n%s", f.Severity, f.Check, dump(rep))
		}
	}
	if len(rep.Problems) > 0 {
		t.Fatalf("unexpected problems:\n%s", dump(rep))
	}
}

func TestCleanRoot(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	rep := audit(t, root, Options{Jobs: 2})
	clean(t, rep)
	// Every image and platform that is there was verified, layer by layer.
	names := map[string]int{}
	for _, img := range rep.Images {
		names[img.Name+" "+img.Platform] = len(img.Layers)
	}
	for k, n := range map[string]int{
		"default/example.com/app:1 linux/amd64":           3,
		"default/example.com/multi:1 linux/amd64":         2,
		"default/example.com/multi:1 linux/arm64/v8":      2,
		"moby/docker.io/library/small:latest linux/amd64": 2,
	} {
		if names[k] != n {
			t.Errorf("image %q: %d layers in the report, want %d (images: %v)", k, names[k], n, names)
		}
	}
	if _, ok := names["default/example.com/multi:1 linux/s390x"]; ok {
		t.Errorf("the absent platform is listed as an image: %v", names)
	}
	for _, img := range rep.Images {
		if img.Name == "default/example.com/app:1" {
			for i, l := range img.Layers {
				if l.DiffID != w.app.Layers[i].DiffID.String() {
					t.Errorf("app layer %d diffID %s, want %s", i, l.DiffID, w.app.Layers[i].DiffID)
				}
			}
		}
	}
	// What containerd did not fetch is information, not an error.
	want(t, rep, CheckNotPulled, report.Info, func(f report.Finding) bool {
		return f.Subject.Image == "default/example.com/multi:1" && strings.Contains(f.Message, "linux/s390x")
	})
	want(t, rep, CheckNotPulled, report.Info, func(f report.Finding) bool {
		return f.Subject.Platform == "linux/arm64/v8" && strings.Contains(f.Message, "1 of the 2 layers")
	})
	if fs := find(rep, CheckUnreferenced, nil); len(fs) > 0 {
		t.Errorf("a clean root has unreferenced content:\n%s", dump(rep))
	}
}

// treeHash hashes every path, mode, size, mtime and content under dir.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d %d\n", strings.TrimPrefix(p, dir), fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	}))
	return hex.EncodeToString(h.Sum(nil))
}

func TestReadOnly(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	// Leave something for every store-wide check to look at.
	must(t, os.MkdirAll(filepath.Join(root, ContentDir, "ingest", "abc"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, ContentDir, "ingest", "abc", "data"), []byte("partial"), 0o644))
	before := treeHash(t, root)
	audit(t, root, Options{Jobs: 2})
	if after := treeHash(t, root); after != before {
		t.Fatal("the audit changed the containerd root")
	}
}

func blobFilePath(root string, d digest.Digest) string {
	return filepath.Join(root, ContentDir, "blobs", d.Algorithm().String(), d.Encoded())
}

func flipByte(t *testing.T, p string, off int64) {
	t.Helper()
	must(t, os.Chmod(p, 0o644))
	data, err := os.ReadFile(p)
	must(t, err)
	if off < 0 {
		off = int64(len(data)) + off
	}
	data[off] ^= 0x01
	must(t, os.WriteFile(p, data, 0o444))
}

func TestFlippedLayerByte(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	l := w.app.Layers[2]
	flipByte(t, blobFilePath(root, l.Digest), -5) // in the gzip trailer (CRC/size)
	rep := audit(t, root, Options{})
	f := want(t, rep, report.LayerDigest, report.Error, func(f report.Finding) bool {
		return f.Subject.Image == "default/example.com/app:1" && f.Subject.Layer != nil && *f.Subject.Layer == 2
	})
	if f.Expected != l.Digest.String() {
		t.Errorf("expected %s, got %s", f.Expected, l.Digest)
	}
	if len(find(rep, CheckBlobDigest, nil)) != 0 {
		t.Errorf("the verifier's layer-digest finding is repeated as ctrd-blob-digest:\n%s", dump(rep))
	}
	only(t, rep, report.LayerDigest, report.LayerDecompress, report.LayerDiffID, report.LayerTrailing)
}

func TestFlippedByteInUnimagedBlob(t *testing.T) {
	w := newWorld(t)
	// Content held only by a lease: no image reads it, the store-wide hash does.
	d := w.r.blob("default", []byte(`{"held":"by a lease"}`), nil)
	w.r.namespace("default").leases["build"] = &testLease{content: []string{d.String()}}
	root := w.write(t)
	flipByte(t, blobFilePath(root, d), 3)
	rep := audit(t, root, Options{})
	f := want(t, rep, CheckBlobDigest, report.Error, func(f report.Finding) bool { return f.Subject.Digest == d.String() })
	if f.Actual == d.String() || !strings.HasPrefix(f.Actual, "sha256:") {
		t.Errorf("actual digest %q", f.Actual)
	}
	only(t, rep, CheckBlobDigest)
}

func TestDeletedBlob(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	l := w.app.Layers[1]
	must(t, os.Remove(blobFilePath(root, l.Digest)))
	rep := audit(t, root, Options{})
	want(t, rep, report.LayerMissing, report.Error, func(f report.Finding) bool {
		return f.Subject.Image == "default/example.com/app:1" && f.Subject.Layer != nil && *f.Subject.Layer == 1
	})
	want(t, rep, CheckBlobMissing, report.Error, func(f report.Finding) bool { return f.Subject.Digest == l.Digest.String() })
	only(t, rep, report.LayerMissing, CheckBlobMissing)
}

func TestDeletedManifestOfSinglePlatformImage(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	_, md, _ := w.small.Manifest()
	must(t, os.Remove(blobFilePath(root, md)))
	rep := audit(t, root, Options{})
	want(t, rep, report.ManifestMissing, report.Error, func(f report.Finding) bool { return f.Subject.Image == "moby/docker.io/library/small:latest" })
	want(t, rep, CheckBlobMissing, report.Error, func(f report.Finding) bool { return f.Subject.Digest == md.String() })
}

func TestWrongUncompressedLabel(t *testing.T) {
	w := newWorld(t)
	l := w.app.Layers[0]
	bogus := digest.FromString("not the diffID")
	w.r.namespace("default").blobs[l.Digest].labels[labelUncompressed] = bogus.String()
	root := w.write(t)
	rep := audit(t, root, Options{})
	f := want(t, rep, CheckUncompressedLabel, report.Error, func(f report.Finding) bool { return f.Subject.Digest == l.Digest.String() })
	if f.Expected != l.DiffID.String() || f.Actual != bogus.String() {
		t.Errorf("expected %s actual %s, want %s / %s", f.Expected, f.Actual, l.DiffID, bogus)
	}
	only(t, rep, CheckUncompressedLabel)
}

func TestDeletedSnapshotDirectory(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	chain := verify.ChainIDs(w.app.DiffIDs())
	name := w.r.ns["default"].snaps["overlayfs"][chain[1].String()].name
	id := w.r.backend["overlayfs"].snaps[name].id
	dir := filepath.Join(root, SnapshotterPrefix+"overlayfs", "snapshots", strconv.FormatUint(id, 10))
	must(t, os.RemoveAll(dir))
	rep := audit(t, root, Options{})
	want(t, rep, CheckSnapshotMissing, report.Error, func(f report.Finding) bool {
		return f.Subject.Image == "default/example.com/app:1" && f.Subject.Layer != nil && *f.Subject.Layer == 1 && f.Subject.Path == filepath.Join(dir, "fs")
	})
	only(t, rep, CheckSnapshotMissing)
}

func TestOrphanBlobAndSnapshotDir(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	data := []byte("left behind by an interrupted garbage collection")
	d := digest.FromBytes(data)
	must(t, os.WriteFile(blobFilePath(root, d), data, 0o444))
	orphanDir := filepath.Join(root, SnapshotterPrefix+"overlayfs", "snapshots", "999", "fs")
	must(t, os.MkdirAll(orphanDir, 0o755))
	must(t, os.WriteFile(filepath.Join(orphanDir, "f"), make([]byte, 1234), 0o644))
	rep := audit(t, root, Options{})
	clean(t, rep)
	f := want(t, rep, CheckBlobOrphan, report.Info, func(f report.Finding) bool { return f.Subject.Digest == d.String() })
	if f.Actual != strconv.Itoa(len(data)) {
		t.Errorf("orphan size %q, want %d", f.Actual, len(data))
	}
	f = want(t, rep, CheckSnapshotOrphan, report.Info, func(f report.Finding) bool { return strings.HasSuffix(f.Subject.Path, "/999") })
	if f.Actual != "1234" {
		t.Errorf("orphan dir size %q, want 1234", f.Actual)
	}
	if n, ok := f.OrphanBytes(); !ok || n != 1234 {
		t.Errorf("OrphanBytes() = %d, %v; want 1234, true (report.RegisterOrphan)", n, ok)
	}
}

func TestWrongGCLabels(t *testing.T) {
	w := newWorld(t)
	ns := w.r.namespace("default")
	_, md, _ := w.app.Manifest()
	ns.blobs[md].labels[gcRefContent+"l.1"] = w.app.Layers[2].Digest.String()
	chain := verify.ChainIDs(w.app.DiffIDs())
	ns.blobs[w.app.ConfigDigest].labels[gcRefSnapshot+"overlayfs"] = chain[1].String()
	root := w.write(t)
	rep := audit(t, root, Options{})
	f := want(t, rep, CheckGCLabel, report.Error, func(f report.Finding) bool { return f.Subject.Layer != nil && *f.Subject.Layer == 1 })
	if f.Expected != w.app.Layers[1].Digest.String() || f.Actual != w.app.Layers[2].Digest.String() {
		t.Errorf("gc label finding expected %s actual %s", f.Expected, f.Actual)
	}
	f = want(t, rep, CheckGCLabel, report.Error, func(f report.Finding) bool { return f.Subject.Digest == w.app.ConfigDigest.String() })
	if f.Expected != chain[2].String() || f.Actual != chain[1].String() {
		t.Errorf("snapshot label finding expected %s actual %s", f.Expected, f.Actual)
	}
	only(t, rep, CheckGCLabel)
}

func TestSnapshotChainAndBackend(t *testing.T) {
	w := newWorld(t)
	chain := verify.ChainIDs(w.app.DiffIDs())
	snaps := w.r.namespace("default").snaps["overlayfs"]
	snaps[chain[2].String()].parent = chain[0].String() // skips layer 1
	// The snapshotter lost the base layer's record (meta.db still names it).
	delete(w.r.backend["overlayfs"].snaps, snaps[chain[0].String()].name)
	for _, s := range w.r.backend["overlayfs"].snaps {
		if s.parent == snaps[chain[0].String()].name {
			s.parent = ""
		}
	}
	root := w.write(t)
	rep := audit(t, root, Options{})
	want(t, rep, CheckSnapshotChain, report.Error, func(f report.Finding) bool { return f.Subject.Layer != nil && *f.Subject.Layer == 2 })
	want(t, rep, CheckSnapshotMissing, report.Error, func(f report.Finding) bool {
		return f.Subject.Layer != nil && *f.Subject.Layer == 0 && strings.Contains(f.Message, "snapshotter has no snapshot")
	})
	only(t, rep, CheckSnapshotChain, CheckSnapshotMissing)
}

func TestRecordChecks(t *testing.T) {
	w := newWorld(t)
	ns := w.r.namespace("default")
	ns.blobs[w.app.Layers[0].Digest].size++ // record disagrees with the file
	// The config of small is stored, but the moby namespace loses its record.
	delete(w.r.namespace("moby").blobs, w.small.ConfigDigest)
	root := w.write(t)
	rep := audit(t, root, Options{})
	f := want(t, rep, CheckBlobSize, report.Error, func(f report.Finding) bool { return f.Subject.Digest == w.app.Layers[0].Digest.String() })
	if f.Expected != strconv.FormatInt(w.app.Layers[0].Size+1, 10) || f.Actual != strconv.FormatInt(w.app.Layers[0].Size, 10) {
		t.Errorf("size finding expected %s actual %s", f.Expected, f.Actual)
	}
	want(t, rep, CheckBlobRecord, report.Error, func(f report.Finding) bool {
		return f.Subject.Image == "moby/docker.io/library/small:latest" && f.Subject.Digest == w.small.ConfigDigest.String()
	})
	// Without a record the config's snapshot label is gone too: the image looks not unpacked,
	// but its snapshots are found and checked by chainID.
	only(t, rep, CheckBlobSize, CheckBlobRecord)
}

func TestLeasesAndUnreferenced(t *testing.T) {
	w := newWorld(t)
	ns := w.r.namespace("default")
	gone := digest.FromString("deleted content")
	ns.leases["stale"] = &testLease{content: []string{gone.String()}, snaps: map[string][]string{"overlayfs": {"no-such-key"}}}
	loose := w.r.blob("default", []byte("nothing references me"), nil)
	root := w.write(t)
	rep := audit(t, root, Options{})
	want(t, rep, CheckLeaseDangling, report.Warning, func(f report.Finding) bool { return f.Subject.Digest == gone.String() })
	want(t, rep, CheckLeaseDangling, report.Warning, func(f report.Finding) bool { return strings.HasSuffix(f.Subject.Path, "/no-such-key") })
	f := want(t, rep, CheckUnreferenced, report.Info, func(f report.Finding) bool { return f.Subject.Digest == loose.String() })
	if f.Actual != "21" {
		t.Errorf("unreferenced size %q", f.Actual)
	}
	only(t, rep, CheckLeaseDangling)
	// The lease-held manifest, the container's snapshots and the other platform's
	// manifest are referenced.
	if fs := find(rep, CheckUnreferenced, nil); len(fs) != 1 {
		t.Errorf("want exactly one unreferenced object:\n%s", dump(rep))
	}
}

func TestIngestLeftover(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	in := filepath.Join(root, ContentDir, "ingest", "3f2a")
	must(t, os.MkdirAll(in, 0o755))
	must(t, os.WriteFile(filepath.Join(in, "data"), make([]byte, 100), 0o644))
	must(t, os.WriteFile(filepath.Join(in, "ref"), []byte("default/1/layer-sha256:abc"), 0o644))
	must(t, os.WriteFile(filepath.Join(in, "total"), []byte("4096"), 0o644))
	rep := audit(t, root, Options{})
	clean(t, rep)
	f := want(t, rep, CheckIngestLeftover, report.Info, nil)
	if !strings.Contains(f.Message, "100 of 4096 bytes") || !strings.Contains(f.Message, "layer-sha256:abc") {
		t.Errorf("ingest message %q", f.Message)
	}
}

// discardLayers removes the app image's layer blobs, their records and the
// manifest's layer labels, as discard_unpacked_layers does.
func (w *world) discardLayers() {
	ns := w.r.namespace("default")
	_, md, _ := w.app.Manifest()
	for i, l := range w.app.Layers {
		delete(ns.blobs, l.Digest)
		delete(w.r.files, l.Digest)
		delete(ns.blobs[md].labels, gcRefContent+"l."+strconv.Itoa(i))
	}
}

func TestDiscardedLayers(t *testing.T) {
	w := newWorld(t)
	w.discardLayers()
	root := w.write(t)
	rep := audit(t, root, Options{})
	clean(t, rep)
	want(t, rep, CheckNotPulled, report.Info, func(f report.Finding) bool {
		return f.Subject.Image == "default/example.com/app:1" && strings.Contains(f.Message, "discarded after unpacking")
	})
}

// TestDiscardedLayersKeptByAnotherNamespace: the layers were discarded in
// this namespace but another namespace records the same blobs, so
// containerd's garbage collector keeps the files: the missing records are
// the discard, not damage (found with the real containerd, e2e
// TestSnapshotFilesDiscardedByContainerd).
func TestDiscardedLayersKeptByAnotherNamespace(t *testing.T) {
	w := newWorld(t)
	files := map[digest.Digest]bool{}
	for _, l := range w.app.Layers {
		files[l.Digest] = w.r.files[l.Digest] != nil
	}
	saved := map[digest.Digest][]byte{}
	for d, b := range w.r.files {
		saved[d] = b
	}
	w.discardLayers()
	for _, l := range w.app.Layers {
		if !files[l.Digest] {
			t.Fatalf("layer %s had no file before the discard", l.Digest)
		}
		w.r.files[l.Digest] = saved[l.Digest]
	}
	root := w.write(t)
	rep := audit(t, root, Options{})
	clean(t, rep)
	if n := len(find(rep, CheckBlobRecord, nil)); n != 0 {
		t.Errorf("want no %s for discarded layers whose files another namespace keeps, got %d:\n%s", CheckBlobRecord, n, dump(rep))
	}
	// With the manifest's layer labels kept, the same missing records are damage.
	w = newWorld(t)
	ns := w.r.namespace("default")
	for _, l := range w.app.Layers {
		delete(ns.blobs, l.Digest)
	}
	rep = audit(t, w.write(t), Options{})
	if n := len(find(rep, CheckBlobRecord, nil)); n != len(w.app.Layers) {
		t.Errorf("want %d %s with the layer labels kept, got %d:\n%s", len(w.app.Layers), CheckBlobRecord, n, dump(rep))
	}
}

func TestLostLayersOfUnpackedImage(t *testing.T) {
	// The same as above but the manifest still protects its layers: they were lost.
	w := newWorld(t)
	for _, l := range w.app.Layers {
		delete(w.r.files, l.Digest)
	}
	root := w.write(t)
	rep := audit(t, root, Options{})
	if n := len(find(rep, report.LayerMissing, func(f report.Finding) bool { return f.Severity == report.Error })); n != 3 {
		t.Fatalf("want 3 layer-missing errors, got %d:\n%s", n, dump(rep))
	}
	only(t, rep, report.LayerMissing, CheckBlobMissing)
}

func TestNamespaceAndImageSelection(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	rep := audit(t, root, Options{Namespaces: []string{"moby"}})
	clean(t, rep)
	for _, img := range rep.Images {
		if !strings.HasPrefix(img.Name, "moby/") {
			t.Errorf("namespace moby selected, got image %s", img.Name)
		}
	}
	if len(rep.Images) != 1 {
		t.Errorf("want 1 image, got %d", len(rep.Images))
	}
	_, err := Open(root, Options{Namespaces: []string{"k8s.io"}})
	if !errors.Is(err, verify.ErrNoMatch) || !strings.Contains(err.Error(), "default, moby") {
		t.Errorf("unknown namespace: err %v", err)
	}

	// --image with an orphan present: store-wide checks are skipped.
	must(t, os.WriteFile(blobFilePath(root, digest.FromString("x")), []byte("x"), 0o444))
	rep = audit(t, root, Options{Images: []string{"example.com/app:1"}})
	clean(t, rep)
	if len(rep.Images) != 1 || rep.Images[0].Name != "default/example.com/app:1" {
		t.Errorf("--image selected %v", rep.Images)
	}
	if len(find(rep, CheckBlobOrphan, nil)) != 0 {
		t.Errorf("store-wide checks ran under --image:\n%s", dump(rep))
	}
	rep = audit(t, root, Options{Images: []string{"small"}})
	if len(rep.Images) != 1 || rep.Images[0].Name != "moby/docker.io/library/small:latest" {
		t.Errorf("--image small selected %v", rep.Images)
	}
	b := &report.Builder{}
	if err := Audit(context.Background(), root, Options{Images: []string{"nope"}}, b); !errors.Is(err, verify.ErrNoMatch) {
		t.Errorf("--image nope: %v", err)
	}
	// --platform keeps one platform of the index.
	rep = audit(t, root, Options{Platforms: []string{"linux/amd64"}, Namespaces: []string{"default"}})
	clean(t, rep)
	for _, img := range rep.Images {
		if img.Platform != "linux/amd64" {
			t.Errorf("--platform linux/amd64 verified %s %s", img.Name, img.Platform)
		}
	}
}

func TestMalformedRecords(t *testing.T) {
	w := newWorld(t)
	ns := w.r.namespace("default")
	ns.images["broken:1"] = ocispec.Descriptor{Digest: "sha256:nothex", MediaType: "", Size: 3}
	root := w.write(t)
	rep := audit(t, root, Options{})
	f := want(t, rep, CheckImageTarget, report.Error, func(f report.Finding) bool { return f.Subject.Image == "default/broken:1" })
	if !strings.Contains(f.Message, "invalid") || !strings.Contains(f.Message, "no media type") {
		t.Errorf("message %q", f.Message)
	}
	only(t, rep, CheckImageTarget)
}

func TestNotADatabase(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(MetaDBPath)), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, MetaDBPath), []byte(strings.Repeat("garbage!", 2048)), 0o644))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "meta.db") {
		t.Errorf("garbage meta.db: err %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, MetaDBPath), nil, 0o644))
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty meta.db: err %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, MetaDBPath)); err != nil || fi.Size() != 0 {
		t.Errorf("the empty meta.db was written to: %v %v", fi, err)
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Error("a directory without meta.db opened")
	}
}

func TestChildLabelKeys(t *testing.T) {
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("c")}
	l := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("l")}
	other := ocispec.Descriptor{MediaType: "application/vnd.in-toto+json", Digest: digest.FromString("o")}
	m := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m")}
	got := childLabelKeys([]ocispec.Descriptor{cfg, l, l, other, m, other, m})
	wantKeys := []string{"config", "l.0", "l.1", "0", "m.0", "1", "m.1"}
	if strings.Join(got, " ") != strings.Join(wantKeys, " ") {
		t.Errorf("keys %v, want %v", got, wantKeys)
	}
}

func TestDockerRoot(t *testing.T) {
	dr := t.TempDir()
	if _, ok := DockerRoot(dr); ok {
		t.Error("empty data root has a containerd store")
	}
	w := newWorld(t)
	w.r.write(t, filepath.Join(dr, "containerd", "daemon"))
	r, ok := DockerRoot(dr)
	if !ok || r != filepath.Join(dr, "containerd", "daemon") {
		t.Errorf("DockerRoot = %s, %v", r, ok)
	}
	st, err := OpenDocker(dr, noFiles(Options{}))
	must(t, err)
	if got := st.Namespaces(); len(got) != 1 || got[0] != "moby" {
		t.Errorf("OpenDocker audits namespaces %v, want [moby]", got)
	}
	if !strings.Contains(st.String(), "(namespace moby)") {
		t.Errorf("String() = %q", st.String())
	}
	imgs := st.Records("moby")
	_, md, _ := w.small.Manifest()
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/small:latest" || imgs[0].Target.Digest != md {
		t.Errorf("Images(moby) = %+v", imgs)
	}
	content := st.Content("moby")
	if len(content) != 4 { // manifest, config, two layers
		t.Errorf("Content(moby) has %d records, want 4", len(content))
	}
	for _, c := range content {
		if data, ok := w.r.files[c.Digest]; !ok || int64(len(data)) != c.Size {
			t.Errorf("content record %s size %d", c.Digest, c.Size)
		}
	}
	b := &report.Builder{}
	must(t, st.Audit(context.Background(), b))
	clean(t, b.Finish("host", r, "test"))

	// A Docker root whose containerd has no moby namespace yet: every namespace.
	dr2 := t.TempDir()
	w2 := newTestRoot()
	w2.image(t, "default", "a:1", smallImage("a:1", 5, fixtures.Platform{}, false), false)
	w2.write(t, filepath.Join(dr2, "containerd", "daemon"))
	st, err = OpenDocker(dr2, Options{})
	must(t, err)
	if got := st.Namespaces(); len(got) != 1 || got[0] != "default" {
		t.Errorf("OpenDocker without moby audits %v", got)
	}
	if _, err := OpenDocker(t.TempDir(), Options{}); err == nil {
		t.Error("OpenDocker of a root without containerd/daemon succeeded")
	}
}

// TestEachLayerReadOnce: the same image in two namespaces, plus blobs only
// a lease holds; every layer file is opened exactly once, and every blob
// file at least once.
func TestEachLayerReadOnce(t *testing.T) {
	w := newWorld(t)
	w.r.image(t, "other", "example.com/app:1", w.app, true)
	root := w.write(t)
	var mu sync.Mutex
	opens := map[string]int{}
	openHook = func(p string) {
		mu.Lock()
		opens[p]++
		mu.Unlock()
	}
	defer func() { openHook = nil }()
	rep := audit(t, root, Options{Jobs: 2})
	clean(t, rep)
	for _, l := range w.app.Layers {
		if n := opens[blobFilePath(root, l.Digest)]; n != 1 {
			t.Errorf("layer %s opened %d times, want once", l.Digest, n)
		}
	}
	for d := range w.r.files {
		if opens[blobFilePath(root, d)] == 0 {
			t.Errorf("blob %s was never read", d)
		}
	}
}

func TestMalformedVarints(t *testing.T) {
	w := newWorld(t)
	_, md, _ := w.small.Manifest()
	w.r.metaHook = func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("v1")).Bucket([]byte("moby")).Bucket([]byte("content")).Bucket([]byte("blob")).Bucket([]byte(md.String()))
		return b.Put([]byte("size"), []byte{0x80, 0x80}) // a varint that never ends
	}
	w.r.backendHook = func(tx *bolt.Tx) error {
		sb := tx.Bucket([]byte("v1")).Bucket([]byte("snapshots"))
		var first []byte
		c := sb.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v == nil {
				first = k
				break
			}
		}
		return sb.Bucket(first).Put([]byte("id"), []byte{0xff})
	}
	root := w.write(t)
	rep := audit(t, root, Options{})
	want(t, rep, CheckMetadata, report.Error, func(f report.Finding) bool {
		return strings.HasSuffix(f.Subject.Path, md.String()+"/size")
	})
	want(t, rep, CheckMetadata, report.Error, func(f report.Finding) bool {
		return strings.Contains(f.Subject.Path, "metadata.db:v1/snapshots/") && strings.HasSuffix(f.Subject.Path, "/id")
	})
}

// TestUndecompressableLayerLabel: when a layer no longer decompresses, its
// uncompressed label is compared with the config's diff_id instead.
func TestUndecompressableLayerLabel(t *testing.T) {
	w := newWorld(t)
	l := w.app.Layers[2]
	bogus := digest.FromString("bogus")
	w.r.namespace("default").blobs[l.Digest].labels[labelUncompressed] = bogus.String()
	root := w.write(t)
	flipByte(t, blobFilePath(root, l.Digest), 20) // inside the deflate stream
	rep := audit(t, root, Options{})
	want(t, rep, report.LayerDecompress, report.Error, nil)
	f := want(t, rep, CheckUncompressedLabel, report.Error, func(f report.Finding) bool { return f.Subject.Digest == l.Digest.String() })
	if f.Expected != l.DiffID.String() || !strings.Contains(f.Message, "diff_id") {
		t.Errorf("label finding %q expected %s", f.Message, f.Expected)
	}
}

// TestNamespaceScope: with --namespace, blobs only another namespace
// records are not read; orphans still are.
func TestNamespaceScope(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	orphan := []byte("orphan")
	must(t, os.WriteFile(blobFilePath(root, digest.FromBytes(orphan)), orphan, 0o444))
	opens := map[string]int{}
	var mu sync.Mutex
	openHook = func(p string) {
		mu.Lock()
		opens[p]++
		mu.Unlock()
	}
	defer func() { openHook = nil }()
	rep := audit(t, root, Options{Namespaces: []string{"moby"}})
	clean(t, rep)
	if opens[blobFilePath(root, w.app.Layers[0].Digest)] != 0 {
		t.Error("a layer only namespace default records was read under --namespace moby")
	}
	if opens[blobFilePath(root, digest.FromBytes(orphan))] != 1 {
		t.Error("the orphan blob was not hashed")
	}
	if opens[blobFilePath(root, w.small.Layers[0].Digest)] != 1 {
		t.Error("moby's layer was not read once")
	}
}

// TestSource: the store as a plain source.Source for the shared verifier.
func TestSource(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	st, err := Open(root, Options{Namespaces: []string{"default"}})
	must(t, err)
	src := st.Source()
	defer src.Close()
	ts, err := src.Targets(context.Background())
	must(t, err)
	if len(ts) != 2 || ts[0].Name != "default/example.com/app:1" || ts[0].Tags[0] != "example.com/app:1" || ts[1].Descriptor.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("targets %+v", ts)
	}
	b, err := src.Blob(context.Background(), w.app.Layers[0].Desc())
	must(t, err)
	if b.Size() != w.app.Layers[0].Size || b.Key() != blobFilePath(root, w.app.Layers[0].Digest) {
		t.Errorf("blob %s size %d", b.Key(), b.Size())
	}
	if _, err := src.Blob(context.Background(), ocispec.Descriptor{Digest: digest.FromString("absent")}); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("absent blob: %v", err)
	}
	rb := &report.Builder{}
	must(t, verify.New(verify.Options{}).Verify(context.Background(), src, rb))
	rep := rb.Finish("x", src.String(), "test")
	// Without the audit's knowledge of containerd, the platforms it did not
	// pull are missing manifests and layers, and nothing else is wrong.
	only(t, rep, report.ManifestMissing, report.LayerMissing)
	if len(find(rep, report.ManifestMissing, nil)) != 1 {
		t.Errorf("want the absent platform's manifest missing:\n%s", dump(rep))
	}
}
