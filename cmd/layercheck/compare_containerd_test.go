package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// ctrdRoot writes a containerd root by hand in containerd's on-disk format
// (FORMATS.md section 4): blob files, meta.db (images, content records with
// the labels a pull sets, snapshots) and an overlayfs snapshotter with its
// metadata.db and snapshot directories. One namespace.
type ctrdRoot struct {
	ns     string
	files  map[digest.Digest][]byte
	labels map[digest.Digest]map[string]string
	images map[string]ocispec.Descriptor
	chains [][]digest.Digest        // unpacked chains, base first
	tars   map[digest.Digest][]byte // each chainID's layer tar, unpacked into its snapshot
}

func newCtrdRoot(ns string) *ctrdRoot {
	return &ctrdRoot{ns: ns, files: map[digest.Digest][]byte{}, labels: map[digest.Digest]map[string]string{}, images: map[string]ocispec.Descriptor{}, tars: map[digest.Digest][]byte{}}
}

func (r *ctrdRoot) blob(data []byte, labels map[string]string) digest.Digest {
	d := digest.FromBytes(data)
	r.files[d] = data
	if r.labels[d] == nil {
		r.labels[d] = map[string]string{}
	}
	for k, v := range labels {
		r.labels[d][k] = v
	}
	return d
}

// platform stores one platform as a pull does: with layers (and unpacked
// into overlayfs snapshots), or manifest and config only.
func (r *ctrdRoot) platform(b *fixtures.Built, layers bool) ocispec.Descriptor {
	mdata, _, _ := b.Manifest()
	ml := map[string]string{"containerd.io/gc.ref.content.config": b.ConfigDigest.String()}
	cl := map[string]string{}
	for i, l := range b.Layers {
		ml["containerd.io/gc.ref.content.l."+strconv.Itoa(i)] = l.Digest.String()
		if layers {
			r.blob(l.Stored, map[string]string{"containerd.io/uncompressed": l.DiffID.String()})
		}
	}
	if layers {
		chain := fixtures.ChainIDs(b.DiffIDs())
		cl["containerd.io/gc.ref.snapshot.overlayfs"] = chain[len(chain)-1].String()
		r.chains = append(r.chains, chain)
		for i, c := range chain {
			r.tars[c] = b.Layers[i].Tar
		}
	}
	r.blob(b.Config, cl)
	r.blob(mdata, ml)
	return b.ManifestDesc()
}

// image records a single-platform image.
func (r *ctrdRoot) image(name string, b *fixtures.Built) ocispec.Descriptor {
	d := r.platform(b, true)
	d.Platform = nil
	r.images[name] = d
	return d
}

// index records a multi-platform image whose first platform was pulled
// and unpacked; the others have their manifest and config only.
func (r *ctrdRoot) index(t *testing.T, name string, bs ...*fixtures.Built) ocispec.Descriptor {
	t.Helper()
	data, descs := indexOf(t, bs...)
	labels := map[string]string{}
	for i, b := range bs {
		r.platform(b, i == 0)
		labels["containerd.io/gc.ref.content.m."+strconv.Itoa(i)] = descs[i].Digest.String()
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: r.blob(data, labels), Size: int64(len(data))}
	r.images[name] = d
	return d
}

func indexOf(t *testing.T, bs ...*fixtures.Built) ([]byte, []ocispec.Descriptor) {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for _, b := range bs {
		idx.Manifests = append(idx.Manifests, b.ManifestDesc())
	}
	data, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	return data, idx.Manifests
}

func ctrdVarint(n int64) []byte {
	b := make([]byte, binary.MaxVarintLen64)
	return b[:binary.PutVarint(b, n)]
}

func ctrdUvarint(n uint64) []byte {
	b := make([]byte, binary.MaxVarintLen64)
	return b[:binary.PutUvarint(b, n)]
}

func boltPut(b *bolt.Bucket, kv map[string][]byte) error {
	for k, v := range kv {
		if err := b.Put([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func boltNested(b *bolt.Bucket, names ...string) (*bolt.Bucket, error) {
	var err error
	for _, n := range names {
		if b, err = b.CreateBucketIfNotExists([]byte(n)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// write lays the root out under dir.
func (r *ctrdRoot) write(t *testing.T, dir string) {
	t.Helper()
	if len(r.chains) > 0 && !dockertest.IsRoot() {
		// The audit compares every snapshot's files with its layer; an
		// overlayfs snapshot's whiteouts are 0/0 devices, made as root.
		t.Skip("unpacking overlayfs snapshots as containerd does needs root")
	}
	blobDir := filepath.Join(dir, "io.containerd.content.v1.content", "blobs", "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d, data := range r.files {
		if err := os.WriteFile(filepath.Join(blobDir, d.Encoded()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Snapshots: one per distinct chainID, in meta.db and in overlayfs.
	type snap struct {
		key, name, parentKey, parentName string
		id                               uint64
	}
	var snaps []snap
	byKey := map[string]snap{}
	for _, chain := range r.chains {
		parent := snap{}
		for _, c := range chain {
			s, ok := byKey[c.String()]
			if !ok {
				id := uint64(len(snaps) + 1)
				s = snap{key: c.String(), name: fmt.Sprintf("%s/%d/%s", r.ns, id, c), parentKey: parent.key, parentName: parent.name, id: id}
				snaps = append(snaps, s)
				byKey[s.key] = s
			}
			parent = s
		}
	}
	stamp, _ := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).MarshalBinary()
	metaDir := filepath.Join(dir, "io.containerd.metadata.v1.bolt")
	snDir := filepath.Join(dir, "io.containerd.snapshotter.v1.overlayfs")
	for _, p := range []string{metaDir, filepath.Join(snDir, "snapshots")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	update := func(path string, fn func(tx *bolt.Tx) error) {
		db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Update(fn); err != nil {
			t.Fatal(err)
		}
	}
	update(filepath.Join(metaDir, "meta.db"), func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists([]byte("v1"))
		if err != nil {
			return err
		}
		if err := v1.Put([]byte("version"), ctrdVarint(3)); err != nil {
			return err
		}
		for n, d := range r.images {
			tb, err := boltNested(v1, r.ns, "images", n, "target")
			if err != nil {
				return err
			}
			if err := boltPut(tb, map[string][]byte{"digest": []byte(d.Digest), "mediatype": []byte(d.MediaType), "size": ctrdVarint(d.Size)}); err != nil {
				return err
			}
		}
		for d, data := range r.files {
			bb, err := boltNested(v1, r.ns, "content", "blob", d.String())
			if err != nil {
				return err
			}
			if err := boltPut(bb, map[string][]byte{"size": ctrdVarint(int64(len(data))), "createdat": stamp, "updatedat": stamp}); err != nil {
				return err
			}
			if len(r.labels[d]) > 0 {
				lb, err := boltNested(bb, "labels")
				if err != nil {
					return err
				}
				for k, v := range r.labels[d] {
					if err := lb.Put([]byte(k), []byte(v)); err != nil {
						return err
					}
				}
			}
		}
		for _, s := range snaps {
			sb, err := boltNested(v1, r.ns, "snapshots", "overlayfs", s.key)
			if err != nil {
				return err
			}
			kv := map[string][]byte{"name": []byte(s.name), "createdat": stamp, "updatedat": stamp}
			if s.parentKey != "" {
				kv["parent"] = []byte(s.parentKey)
			}
			if err := boltPut(sb, kv); err != nil {
				return err
			}
		}
		return nil
	})
	update(filepath.Join(snDir, "metadata.db"), func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists([]byte("v1"))
		if err != nil {
			return err
		}
		sb, err := v1.CreateBucketIfNotExists([]byte("snapshots"))
		if err != nil {
			return err
		}
		pb, err := v1.CreateBucketIfNotExists([]byte("parents"))
		if err != nil {
			return err
		}
		for _, s := range snaps {
			b, err := sb.CreateBucket([]byte(s.name))
			if err != nil {
				return err
			}
			kv := map[string][]byte{"id": ctrdUvarint(s.id), "kind": {3}, "createdat": stamp, "updatedat": stamp}
			if s.parentName != "" {
				kv["parent"] = []byte(s.parentName)
				p := byKey[s.parentKey]
				if err := pb.Put(append(append(ctrdUvarint(p.id), 0), ctrdUvarint(s.id)...), []byte(s.name)); err != nil {
					return err
				}
			}
			if err := boltPut(b, kv); err != nil {
				return err
			}
			fsDir := filepath.Join(snDir, "snapshots", strconv.FormatUint(s.id, 10), "fs")
			if err := os.MkdirAll(fsDir, 0o755); err != nil {
				return err
			}
			dockertest.UnpackLayer(t, fsDir, r.tars[digest.Digest(s.key)], true)
		}
		return nil
	})
}

// pushRaw pushes the exact bytes of images to the registry: blobs, each
// manifest by digest, and under tag the manifest (one image) or an OCI
// index of them. It returns the tag's digest.
func pushRaw(t *testing.T, rr *remoteRegistry, repoTag string, bs ...*fixtures.Built) digest.Digest {
	t.Helper()
	tagRef, err := name.ParseReference(rr.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	repo := tagRef.Context()
	for _, b := range bs {
		if err := remote.WriteLayer(repo, static.NewLayer(b.Config, types.MediaType(b.ConfigMediaType()))); err != nil {
			t.Fatal(err)
		}
		for _, l := range b.Layers {
			if err := remote.WriteLayer(repo, static.NewLayer(l.Stored, types.MediaType(l.MediaType))); err != nil {
				t.Fatal(err)
			}
		}
		data, d, mt := b.Manifest()
		if err := remote.Put(repo.Digest(d.String()), rawManifest{data, types.MediaType(mt)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(bs) == 1 {
		data, d, mt := bs[0].Manifest()
		if err := remote.Put(tagRef, rawManifest{data, types.MediaType(mt)}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	data, _ := indexOf(t, bs...)
	if err := remote.Put(tagRef, rawManifest{data, types.OCIImageIndex}); err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(data)
}

// armBuilt is img for linux/arm64/v8, with layers of its own (another
// binary in every layer), as a real multi-platform image has.
func armBuilt(img fixtures.Image) *fixtures.Built {
	img.Platform = fixtures.Platform{OS: "linux", Arch: "arm64", Variant: "v8"}
	for i := range img.Layers {
		l := &img.Layers[i]
		l.Files = append(append([]fixtures.File(nil), l.Files...), fixtures.Reg(fmt.Sprintf("arm64-%d", i), []byte("aarch64\n")))
	}
	return fixtures.MustBuild(img)
}

// ctrdPulled builds a standalone containerd root (namespace default) that
// pulled HOST/app:1 from the registry: a two-platform index whose amd64
// image is pulled and unpacked.
func ctrdPulled(t *testing.T) (dir string, rr *remoteRegistry, r *ctrdRoot, ref string, amd *fixtures.Built) {
	t.Helper()
	rr = newRemoteRegistry(t)
	amd, arm := fixtures.MustBuild(fixtures.BaseImage()), armBuilt(fixtures.BaseImage())
	pushRaw(t, rr, "app:1", amd, arm)
	ref = rr.host + "/app:1"
	r = newCtrdRoot("default")
	r.index(t, ref, amd, arm)
	dir = t.TempDir()
	r.write(t, dir)
	return dir, rr, r, ref, amd
}

func TestCompareContainerdIdentical(t *testing.T) {
	dir, _, r, ref, amd := ctrdPulled(t)
	out, errOut, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %s\n%s", code, errOut, out)
	}
	rep := jsonReport(t, out)
	if rep.Summary.Errors != 0 || rep.Summary.Warnings != 0 || len(rep.Problems) != 0 {
		t.Fatalf("%d errors, %d warnings, problems %+v\n%s", rep.Summary.Errors, rep.Summary.Warnings, rep.Problems, findingsText(rep))
	}
	// Registry side and host side, the pulled platform only.
	var host, reg int
	for _, im := range rep.Images {
		if im.Platform == "linux/arm64/v8" && im.Name == "default/"+ref {
			continue // the host audit lists the platform it holds the manifest and config of
		}
		if im.Platform != "linux/amd64" || im.ConfigDigest != amd.ConfigDigest.String() || im.IndexDigest != r.images[ref].Digest.String() {
			t.Errorf("image %s %s config %s index %s", im.Name, im.Platform, im.ConfigDigest, im.IndexDigest)
		}
		if im.Name == "default/"+ref {
			host++
			for i, l := range im.Layers {
				if l.Digest != amd.Layers[i].Digest.String() || l.DiffID != amd.Layers[i].DiffID.String() {
					t.Errorf("host layer %d measured %s %s", i, l.Digest, l.DiffID)
				}
			}
		} else {
			reg++
		}
	}
	if host != 1 || reg != 1 {
		t.Fatalf("%d host and %d registry images, want 1 and 1", host, reg)
	}
	notes := compareFindings(rep, report.Info)[compare.LayerDigestDiffers]
	if len(notes) != 1 || !strings.Contains(notes[0].Message, "re-hashed") {
		t.Errorf("no note that the comparison is by content digest with local blobs re-hashed: %+v", notes)
	}
	// The other platform (manifest and config only) is information.
	if np := byCheck(rep, report.Info)["ctrd-not-pulled"]; len(np) == 0 {
		t.Errorf("no ctrd-not-pulled note for the arm64 platform:\n%s", findingsText(rep))
	}
	// The same image found by a familiar name with the namespace given.
	if _, errOut, code := runCLI(t, "compare", "host", "--no-progress", "--containerd-root", dir, "--namespace", "default", r.images[ref].Digest.Encoded()[:12]); code != ExitOK {
		t.Fatalf("by target digest prefix: exit %d: %s", code, errOut)
	}
}

func TestCompareContainerdTagMoved(t *testing.T) {
	dir, rr, r, ref, _ := ctrdPulled(t)
	now := pushRaw(t, rr, "app:1", fixtures.MustBuild(fixtures.SampleImage()))
	out, errOut, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stderr %s\n%s", code, ExitFindings, errOut, out)
	}
	rep := jsonReport(t, out)
	got := compareFindings(rep, report.Info)
	moved := got[compare.TagMoved]
	if len(moved) != 1 || moved[0].Expected != now.String() || moved[0].Actual != r.images[ref].Digest.String() {
		t.Fatalf("compare-tag-moved = %+v, want expected %s (registry now) actual %s (pulled)", moved, now, r.images[ref].Digest)
	}
	// The pulled index is still served: the image itself is compared with it and is the same.
	for c, fs := range got {
		if c != compare.TagMoved && c != compare.LayerDigestDiffers {
			t.Errorf("%s: %+v", c, fs)
		}
	}
	if len(rep.Problems) != 0 {
		t.Errorf("problems %+v", rep.Problems)
	}
}

func TestCompareContainerdCorruptBlob(t *testing.T) {
	dir, _, _, ref, amd := ctrdPulled(t)
	// Flip one byte of the top layer's blob (same size).
	l := amd.Layers[len(amd.Layers)-1]
	p := filepath.Join(dir, "io.containerd.content.v1.content", "blobs", "sha256", l.Digest.Encoded())
	data := append([]byte(nil), l.Stored...)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stderr %s\n%s", code, ExitFindings, errOut, out)
	}
	rep := jsonReport(t, out)
	named := false
	for _, f := range rep.Findings {
		if f.Severity == report.Error && (f.Subject.Digest == l.Digest.String() || strings.Contains(f.Subject.Path, l.Digest.Encoded())) {
			named = true
		}
	}
	if !named {
		t.Fatalf("no error finding names the corrupted blob %s:\n%s", l.Digest, findingsText(rep))
	}
}

func TestCompareContainerdMissingBlob(t *testing.T) {
	t.Run("no snapshot", func(t *testing.T) {
		dir, _, _, ref, amd := ctrdPulled(t)
		l := amd.Layers[0]
		if err := os.Remove(filepath.Join(dir, "io.containerd.content.v1.content", "blobs", "sha256", l.Digest.Encoded())); err != nil {
			t.Fatal(err)
		}
		// And the snapshots (the layer is gone altogether).
		if err := os.RemoveAll(filepath.Join(dir, "io.containerd.snapshotter.v1.overlayfs", "snapshots", "1")); err != nil {
			t.Fatal(err)
		}
		out, _, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
		if code != ExitFindings {
			t.Fatalf("exit %d, want %d\n%s", code, ExitFindings, out)
		}
		rep := jsonReport(t, out)
		miss := byCheck(rep, report.Info)[compare.LayerMissingLocal]
		if len(miss) != 1 || miss[0].Subject.Digest != l.Digest.String() || miss[0].Subject.Layer == nil || *miss[0].Subject.Layer != 0 {
			t.Fatalf("compare-layer-missing-local = %+v\n%s", miss, findingsText(rep))
		}
		if len(rep.Problems) != 0 {
			t.Errorf("problems %+v", rep.Problems)
		}
	})
	t.Run("snapshot intact", func(t *testing.T) {
		// The blob is gone but the snapshot of its chainID holds the
		// unpacked layer: a warning, compared by what the host declares.
		dir, _, _, ref, amd := ctrdPulled(t)
		l := amd.Layers[1]
		if err := os.Remove(filepath.Join(dir, "io.containerd.content.v1.content", "blobs", "sha256", l.Digest.Encoded())); err != nil {
			t.Fatal(err)
		}
		out, _, _ := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
		rep := jsonReport(t, out)
		miss := byCheck(rep, report.Info)[compare.LayerMissingLocal]
		if len(miss) != 1 || miss[0].Severity != report.Warning || !strings.Contains(miss[0].Message, "overlayfs snapshot") {
			t.Fatalf("compare-layer-missing-local = %+v", miss)
		}
		if d := compareFindings(rep, report.Error); len(d) != 0 {
			t.Errorf("differences reported for a layer the host declares identically: %+v", d)
		}
	})
	t.Run("deep, blob discarded", func(t *testing.T) {
		// discard_unpacked_layers: the blob is gone, the snapshot holds a
		// damaged file. Only --deep compares it, with the registry's blob.
		dir, _, _, ref, amd := ctrdPulled(t)
		l := amd.Layers[1]
		if err := os.Remove(filepath.Join(dir, "io.containerd.content.v1.content", "blobs", "sha256", l.Digest.Encoded())); err != nil {
			t.Fatal(err)
		}
		var victim string
		root := filepath.Join(dir, "io.containerd.snapshotter.v1.overlayfs", "snapshots", "2", "fs")
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && victim == "" && d.Type().IsRegular() {
				if fi, _ := d.Info(); fi != nil && fi.Size() > 0 {
					victim = p
				}
			}
			return nil
		})
		if victim == "" {
			t.Fatal("no file in the second snapshot")
		}
		data, _ := os.ReadFile(victim)
		data[0] ^= 0xff
		if err := os.WriteFile(victim, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, _, _ := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
		if got := byCheck(jsonReport(t, out), report.Error)["ctrd-snapshot-file-content"]; len(got) != 0 {
			t.Fatalf("without --deep the snapshot of a discarded blob was compared: %+v", got)
		}
		out, _, code := runCLI(t, "compare", "host", "--deep", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
		got := byCheck(jsonReport(t, out), report.Error)["ctrd-snapshot-file-content"]
		if code != ExitFindings || len(got) != 1 || !strings.HasSuffix(victim, got[0].Subject.Entry) {
			t.Fatalf("--deep: exit %d, ctrd-snapshot-file-content %+v (flipped %s)", code, got, victim)
		}
	})
	t.Run("target", func(t *testing.T) {
		// The index itself is gone: nothing to compare, and the audit's
		// finding names the missing target.
		dir, _, r, ref, _ := ctrdPulled(t)
		target := r.images[ref].Digest
		if err := os.Remove(filepath.Join(dir, "io.containerd.content.v1.content", "blobs", "sha256", target.Encoded())); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
		if code != ExitFindings {
			t.Fatalf("exit %d, want %d: %s\n%s", code, ExitFindings, errOut, out)
		}
		rep := jsonReport(t, out)
		named := false
		for _, f := range rep.Findings {
			named = named || (f.Severity == report.Error && f.Subject.Digest == target.String())
		}
		if !named || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Message, "nothing to compare") {
			t.Fatalf("missing target named: %v, problems %+v\n%s", named, rep.Problems, findingsText(rep))
		}
	})
	t.Run("other platform", func(t *testing.T) {
		// The arm64 layers were never pulled: information, exit 0 (TestCompareContainerdIdentical).
		dir, _, _, ref, _ := ctrdPulled(t)
		out, _, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, ref)
		if code != ExitOK || len(byCheck(jsonReport(t, out), report.Info)[compare.LayerMissingLocal]) != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

func TestCompareContainerdSinglePlatformDockerRoot(t *testing.T) {
	rr := newRemoteRegistry(t)
	b := fixtures.MustBuild(fixtures.SampleImage())
	pushRaw(t, rr, "app:2", b)
	ref := rr.host + "/app:2"
	r := newCtrdRoot("moby")
	r.image(ref, b)
	data := t.TempDir()
	r.write(t, filepath.Join(data, "containerd", "daemon"))
	// A Docker data root with the containerd image store: --root is enough.
	out, errOut, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--root", data, ref)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %s\n%s", code, errOut, out)
	}
	rep := jsonReport(t, out)
	if rep.Summary.Errors != 0 || len(rep.Problems) != 0 || len(rep.Images) != 2 {
		t.Fatalf("%d errors, problems %+v, %d images\n%s", rep.Summary.Errors, rep.Problems, len(rep.Images), findingsText(rep))
	}
	// --remote naming another image: a different image, by digest.
	other := pushRaw(t, rr, "other:1", fixtures.MustBuild(fixtures.BaseImage()))
	out, _, code = runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--root", data, "--remote", rr.host+"/other:1", ref)
	if code != ExitFindings {
		t.Fatalf("--remote another image: exit %d\n%s", code, out)
	}
	got := compareFindings(jsonReport(t, out), report.Error)
	if m := got[compare.Manifest]; len(m) != 1 || m[0].Expected != other.String() || m[0].Actual != b.OCIManifestDigest.String() {
		t.Errorf("compare-manifest = %+v", m)
	}
	if len(got[compare.Config]) != 1 {
		t.Errorf("compare-config = %+v", got[compare.Config])
	}
}

func TestCompareContainerdRegistryDown(t *testing.T) {
	dir, _, _, ref, _ := ctrdPulled(t)
	out, errOut, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--retries", "0", "--containerd-root", dir, "--remote", "127.0.0.1:1/app:1", ref)
	if code != ExitCannotCheck {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitCannotCheck, out, errOut)
	}
	if rep := jsonReport(t, out); len(rep.Problems) == 0 || rep.Summary.Errors != 0 {
		t.Errorf("problems %+v, %d errors", rep.Problems, rep.Summary.Errors)
	}
}

func TestCompareContainerdUsage(t *testing.T) {
	dir, _, _, ref, _ := ctrdPulled(t)
	for _, args := range [][]string{
		{"host", "--containerd-root", dir, "--root", dir, ref},
		{"--containerd-root", dir, ref},                                                  // the old form, without "host"
		{"host", "--remote", "localhost:5000/app:1", "--containerd-root", dir, ref, ref}, // --remote with two images
	} {
		if _, _, code := runCLI(t, append([]string{"compare", "--no-progress"}, args...)...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
	// --namespace on a classic store.
	ds := dockertest.Build(t, dockertest.DefaultSpec("vfs", dockertest.IsRoot()))
	if _, _, code := runCLI(t, "compare", "host", "--no-progress", "--root", ds.Root, "--namespace", "default", "legacy:latest"); code != ExitUsage {
		t.Errorf("--namespace with a classic store: exit %d, want %d", code, ExitUsage)
	}
	_, errOut, code := runCLI(t, "compare", "host", "--no-progress", "--containerd-root", dir, "nosuch:1")
	if code != ExitCannotCheck || !strings.Contains(errOut, "nosuch:1") || !strings.Contains(errOut, ref) {
		t.Errorf("unknown image: exit %d, stderr %s", code, errOut)
	}
	// The root was not written: meta.db's bytes are unchanged by a compare.
	before, err := os.ReadFile(filepath.Join(dir, "io.containerd.metadata.v1.bolt", "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	runCLI(t, "compare", "host", "--no-progress", "--containerd-root", dir, ref)
	after, _ := os.ReadFile(filepath.Join(dir, "io.containerd.metadata.v1.bolt", "meta.db"))
	if string(before) != string(after) {
		t.Error("compare changed meta.db")
	}
}

// pushFromContent pushes an image of a containerd content store to the
// registry byte for byte: every blob the target reaches that the store
// holds, each manifest by digest, the target under repoTag.
func pushFromContent(t *testing.T, rr *remoteRegistry, root, repoTag string, desc ocispec.Descriptor) {
	t.Helper()
	tagRef, err := name.ParseReference(rr.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	repo := tagRef.Context()
	read := func(d digest.Digest) ([]byte, bool) {
		b, err := os.ReadFile(filepath.Join(root, "io.containerd.content.v1.content", "blobs", "sha256", d.Encoded()))
		return b, err == nil
	}
	var push func(d ocispec.Descriptor, top bool)
	push = func(d ocispec.Descriptor, top bool) {
		data, ok := read(d.Digest)
		if !ok {
			return
		}
		var m struct {
			Manifests []ocispec.Descriptor `json:"manifests"`
			Config    *ocispec.Descriptor  `json:"config"`
			Layers    []ocispec.Descriptor `json:"layers"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Manifests {
			push(c, false)
		}
		blobs := m.Layers
		if m.Config != nil {
			blobs = append(blobs, *m.Config)
		}
		for _, b := range blobs {
			if bd, ok := read(b.Digest); ok {
				if err := remote.WriteLayer(repo, static.NewLayer(bd, types.MediaType(b.MediaType))); err != nil {
					t.Fatal(err)
				}
			}
		}
		ref := name.Reference(repo.Digest(d.Digest.String()))
		if top {
			ref = tagRef
		}
		if err := remote.Put(ref, rawManifest{data, types.MediaType(d.MediaType)}); err != nil {
			t.Fatal(err)
		}
	}
	push(desc, true)
}

// TestCompareContainerdRealCapture compares every image of a real
// containerd 1.6 root (imports with the overlayfs and native snapshotters,
// a pull) with a registry serving the same bytes: identical, exit 0; then
// with a registry serving another image under that name: differences.
func TestCompareContainerdRealCapture(t *testing.T) {
	root, truth := extractStoreCapture(t, "containerd")
	rr := newRemoteRegistry(t)
	before, err := os.ReadFile(filepath.Join(root, "io.containerd.metadata.v1.bolt", "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	for i, ti := range truth.CtrImages {
		repoTag := "cap" + strconv.Itoa(i) + ":1"
		pushFromContent(t, rr, root, repoTag, ocispec.Descriptor{MediaType: ti.MediaType, Digest: digest.Digest(ti.Digest)})
		t.Run(ti.Namespace+"/"+ti.Name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--containerd-root", root, "--namespace", ti.Namespace, "--remote", rr.host+"/"+repoTag, ti.Name)
			rep := jsonReport(t, out)
			if code != ExitOK || rep.Summary.Errors != 0 || len(rep.Problems) != 0 {
				t.Fatalf("exit %d %s problems %+v\n%s", code, errOut, rep.Problems, findingsText(rep))
			}
			if n := len(compareFindings(rep, report.Info)[compare.LayerDigestDiffers]); n != 1 {
				t.Errorf("%d compare-layer-digest notes, want the one saying the comparison is by content digest", n)
			}
		})
	}
	// Another image under the first one's registry name.
	ti, oi := truth.CtrImages[0], -1
	for i, o := range truth.CtrImages {
		if o.Digest != ti.Digest {
			oi = i
			break
		}
	}
	if oi < 0 {
		t.Fatal("the capture has no second image")
	}
	out, _, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--containerd-root", root, "--namespace", ti.Namespace, "--remote", rr.host+"/cap"+strconv.Itoa(oi)+":1", ti.Name)
	if code != ExitFindings || len(compareFindings(jsonReport(t, out), report.Error)[compare.Manifest]) == 0 {
		t.Fatalf("another image: exit %d\n%s", code, out)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "io.containerd.metadata.v1.bolt", "meta.db")); string(after) != string(before) {
		t.Error("compare changed meta.db")
	}
}

// TestCompareContainerdIndexVersusManifest: the host pulled an index, the
// registry reference serves the same platform manifest alone: the targets
// differ (compare-manifest names both), the platform image is the same.
func TestCompareContainerdIndexVersusManifest(t *testing.T) {
	dir, rr, r, ref, amd := ctrdPulled(t)
	single := pushRaw(t, rr, "single:1", amd)
	out, _, code := runCLI(t, "compare", "host", "-o", "json", "--no-progress", "--containerd-root", dir, "--remote", rr.host+"/single:1", ref)
	if code != ExitFindings {
		t.Fatalf("exit %d\n%s", code, out)
	}
	rep := jsonReport(t, out)
	got := compareFindings(rep, report.Error)
	m := got[compare.Manifest]
	if len(m) != 1 || m[0].Expected != single.String() || m[0].Actual != r.images[ref].Digest.String() || !strings.Contains(m[0].Message, "index") {
		t.Fatalf("compare-manifest = %+v", m)
	}
	if len(got) != 1 || len(rep.Problems) != 0 {
		t.Errorf("findings beyond the target: %+v, problems %+v", got, rep.Problems)
	}
}

// TestCompareStoreContainerd: compare store against a containerd root (any
// store the model opens): the image the root pulled, given as a registry
// source, is found by config digest and identical, with --deep too.
func TestCompareStoreContainerd(t *testing.T) {
	dir, _, _, ref, _ := ctrdPulled(t)
	for _, args := range [][]string{nil, {"--deep"}} {
		cmd := append([]string{"compare", "store", "-o", "json", "--no-progress", "--root", dir}, args...)
		out, errOut, code := runCLI(t, append(cmd, "docker://"+ref)...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d, want %d; stderr %s\n%s", args, code, ExitOK, errOut, out)
		}
		if rep := jsonReport(t, out); rep.Summary.Errors != 0 || len(rep.Problems) != 0 {
			t.Fatalf("%v: %d errors, problems %+v\n%s", args, rep.Summary.Errors, rep.Problems, findingsText(rep))
		}
	}
}
