package containerd

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// testRoot builds a containerd root in the on-disk format of FORMATS.md
// section 4, by hand: blob files, meta.db written with bbolt in exactly
// containerd's schema, an overlayfs snapshotter metadata.db and snapshot
// directories. It is the test's own writer, independent of the reader.
type testRoot struct {
	files   map[digest.Digest][]byte
	ns      map[string]*testNS
	backend map[string]*testBackend // snapshotter -> records
	seq     int                     // meta.db sequence used in backend names
	stamp   time.Time
	// metaHook and backendHook edit the databases raw, after they are written.
	metaHook, backendHook func(tx *bolt.Tx) error
}

type testNS struct {
	images map[string]ocispec.Descriptor
	blobs  map[digest.Digest]*testBlob
	snaps  map[string]map[string]*testSnap // snapshotter -> key -> record
	leases map[string]*testLease
	ctrs   map[string][2]string // container id -> snapshotter, key
}

type testBlob struct {
	size   int64
	labels map[string]string
}

type testSnap struct {
	name, parent string
	labels       map[string]string
}

type testLease struct {
	content []string
	snaps   map[string][]string
}

type testBackend struct {
	next  uint64
	snaps map[string]*testBackendSnap // by backend name
}

type testBackendSnap struct {
	id     uint64
	kind   byte
	parent string
	files  map[string]string // written into the snapshot's files
	// tars is the chain's layer tars, base first: an overlayfs snapshot
	// unpacks the last (its own changes), a native one all of them.
	tars [][]byte
}

// canUnpack: whiteout devices, owners and trusted xattrs need root. Without
// it the builder leaves snapshot directories empty and the audits skip
// the snapshot file checks (noFiles).
var canUnpack = os.Geteuid() == 0

// noFiles turns the snapshot file checks off when the builder could not
// unpack the layers.
func noFiles(o Options) Options {
	o.NoSnapshotFiles = o.NoSnapshotFiles || !canUnpack
	return o
}

func newTestRoot() *testRoot {
	return &testRoot{files: map[digest.Digest][]byte{}, ns: map[string]*testNS{}, backend: map[string]*testBackend{},
		stamp: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (r *testRoot) namespace(n string) *testNS {
	ns := r.ns[n]
	if ns == nil {
		ns = &testNS{images: map[string]ocispec.Descriptor{}, blobs: map[digest.Digest]*testBlob{},
			snaps: map[string]map[string]*testSnap{}, leases: map[string]*testLease{}, ctrs: map[string][2]string{}}
		r.ns[n] = ns
	}
	return ns
}

// blob stores data as a file and records it in namespace n with labels.
func (r *testRoot) blob(n string, data []byte, labels map[string]string) digest.Digest {
	d := digest.FromBytes(data)
	r.files[d] = data
	ns := r.namespace(n)
	b := ns.blobs[d]
	if b == nil {
		b = &testBlob{size: int64(len(data)), labels: map[string]string{}}
		ns.blobs[d] = b
	}
	for k, v := range labels {
		b.labels[k] = v
	}
	return d
}

// manifestChildren parses a manifest's config and layers.
func manifestChildren(t *testing.T, data []byte) (ocispec.Descriptor, []ocispec.Descriptor) {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m.Config, m.Layers
}

// platformImage stores one platform of an image in namespace n the way a
// containerd pull does: layers with containerd.io/uncompressed, the config,
// the manifest with gc.ref.content labels. With layers false only the
// manifest and config are stored (another platform of an index). With
// unpack, the overlayfs snapshots of every chainID are created and the
// config gets its gc.ref.snapshot label. It returns the manifest descriptor.
func (r *testRoot) platformImage(t *testing.T, n string, b *fixtures.Built, layers, unpack bool) ocispec.Descriptor {
	t.Helper()
	mdata, _, _ := b.Manifest()
	cfgDesc, layerDescs := manifestChildren(t, mdata)
	mlabels := map[string]string{gcRefContent + "config": cfgDesc.Digest.String()}
	for i, l := range layerDescs {
		mlabels[gcRefContent+"l."+strconv.Itoa(i)] = l.Digest.String()
		if layers {
			r.blob(n, b.Layers[i].Stored, map[string]string{labelUncompressed: b.Layers[i].DiffID.String()})
		}
	}
	cfgLabels := map[string]string{}
	if unpack {
		chain := verify.ChainIDs(b.DiffIDs())
		cfgLabels[gcRefSnapshot+"overlayfs"] = chain[len(chain)-1].String()
		r.unpack(n, "overlayfs", chain, layerTars(b))
	}
	r.blob(n, b.Config, cfgLabels)
	r.blob(n, mdata, mlabels)
	return b.ManifestDesc()
}

func layerTars(b *fixtures.Built) [][]byte {
	var out [][]byte
	for _, l := range b.Layers {
		out = append(out, l.Tar)
	}
	return out
}

// unpack creates the committed snapshots of a chain, base first, in
// meta.db and in the snapshotter (skipping those that exist), their files
// unpacked from the layer tars as the snapshotter does.
func (r *testRoot) unpack(n, sn string, chain []digest.Digest, tars [][]byte) {
	ns := r.namespace(n)
	if ns.snaps[sn] == nil {
		ns.snaps[sn] = map[string]*testSnap{}
	}
	be := r.backend[sn]
	if be == nil {
		be = &testBackend{snaps: map[string]*testBackendSnap{}}
		r.backend[sn] = be
	}
	parentKey, parentName := "", ""
	for i, c := range chain {
		key := c.String()
		if s := ns.snaps[sn][key]; s != nil {
			parentKey, parentName = key, s.name
			continue
		}
		r.seq++
		name := fmt.Sprintf("%s/%d/%s", n, r.seq, key)
		ns.snaps[sn][key] = &testSnap{name: name, parent: parentKey, labels: map[string]string{}}
		be.next++
		be.snaps[name] = &testBackendSnap{id: be.next, kind: kindCommitted, parent: parentName, tars: tars[:i+1]}
		parentKey, parentName = key, name
	}
}

// image stores a single-platform image named name.
func (r *testRoot) image(t *testing.T, n, name string, b *fixtures.Built, unpack bool) ocispec.Descriptor {
	d := r.platformImage(t, n, b, true, unpack)
	d.Platform = nil
	r.namespace(n).images[name] = d
	return d
}

// index stores an OCI index of the platform images; only the first
// platform has its layers and is unpacked, the others have their manifest
// and config only, and those of absent are not stored at all.
func (r *testRoot) index(t *testing.T, n, name string, bs []*fixtures.Built, absent map[int]bool) ocispec.Descriptor {
	t.Helper()
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for i, b := range bs {
		if absent[i] {
			idx.Manifests = append(idx.Manifests, b.ManifestDesc())
			continue
		}
		idx.Manifests = append(idx.Manifests, r.platformImage(t, n, b, i == 0, i == 0))
	}
	data, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for i, m := range idx.Manifests {
		labels[gcRefContent+"m."+strconv.Itoa(i)] = m.Digest.String()
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: r.blob(n, data, labels), Size: int64(len(data))}
	r.namespace(n).images[name] = d
	return d
}

// write lays the root out under dir.
func (r *testRoot) write(t *testing.T, dir string) {
	t.Helper()
	blobDir := filepath.Join(dir, ContentDir, "blobs", "sha256")
	must(t, os.MkdirAll(blobDir, 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, ContentDir, "ingest"), 0o755))
	for d, data := range r.files {
		must(t, os.WriteFile(filepath.Join(blobDir, d.Encoded()), data, 0o444))
	}
	must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(MetaDBPath)), 0o711))
	r.writeMeta(t, filepath.Join(dir, MetaDBPath))
	for sn, be := range r.backend {
		sdir := filepath.Join(dir, SnapshotterPrefix+sn)
		must(t, os.MkdirAll(filepath.Join(sdir, "snapshots"), 0o700))
		r.writeBackend(t, filepath.Join(sdir, "metadata.db"), be)
		for _, s := range be.snaps {
			base := filepath.Join(sdir, "snapshots", strconv.FormatUint(s.id, 10))
			files := base
			if sn == "overlayfs" {
				files = filepath.Join(base, "fs")
				must(t, os.MkdirAll(filepath.Join(base, "work"), 0o700))
			}
			must(t, os.MkdirAll(files, 0o755))
			switch {
			case !canUnpack || len(s.tars) == 0:
			case sn == "overlayfs":
				dockertest.UnpackLayer(t, files, s.tars[len(s.tars)-1], true)
			default:
				for _, tb := range s.tars {
					dockertest.UnpackLayer(t, files, tb, false)
				}
			}
			for name, content := range s.files {
				must(t, os.WriteFile(filepath.Join(files, name), []byte(content), 0o644))
			}
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func varint(n int64) []byte {
	b := make([]byte, binary.MaxVarintLen64)
	return b[:binary.PutVarint(b, n)]
}

func uvarint(n uint64) []byte {
	b := make([]byte, binary.MaxVarintLen64)
	return b[:binary.PutUvarint(b, n)]
}

func (r *testRoot) times(b *bolt.Bucket) error {
	ts, err := r.stamp.MarshalBinary()
	if err != nil {
		return err
	}
	if err := b.Put([]byte("createdat"), ts); err != nil {
		return err
	}
	return b.Put([]byte("updatedat"), ts)
}

func putLabels(b *bolt.Bucket, name string, labels map[string]string) error {
	if len(labels) == 0 {
		return nil
	}
	lb, err := b.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return err
	}
	for k, v := range labels {
		if err := lb.Put([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}

func nested(b *bolt.Bucket, names ...string) (*bolt.Bucket, error) {
	var err error
	for _, n := range names {
		if b, err = b.CreateBucketIfNotExists([]byte(n)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// writeMeta writes meta.db: v1/version and, per namespace, images,
// content/blob, snapshots, leases and containers (FORMATS.md 4.2).
func (r *testRoot) writeMeta(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
	must(t, err)
	defer db.Close()
	must(t, db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists([]byte("v1"))
		if err != nil {
			return err
		}
		if err := v1.Put([]byte("version"), varint(3)); err != nil {
			return err
		}
		for n, ns := range r.ns {
			nb, err := v1.CreateBucketIfNotExists([]byte(n))
			if err != nil {
				return err
			}
			for name, d := range ns.images {
				ib, err := nested(nb, "images", name)
				if err != nil {
					return err
				}
				if err := r.times(ib); err != nil {
					return err
				}
				tb, err := ib.CreateBucket([]byte("target"))
				if err != nil {
					return err
				}
				for k, v := range map[string][]byte{"digest": []byte(d.Digest), "mediatype": []byte(d.MediaType), "size": varint(d.Size)} {
					if err := tb.Put([]byte(k), v); err != nil {
						return err
					}
				}
			}
			for d, b := range ns.blobs {
				bb, err := nested(nb, "content", "blob", d.String())
				if err != nil {
					return err
				}
				if err := r.times(bb); err != nil {
					return err
				}
				if err := bb.Put([]byte("size"), varint(b.size)); err != nil {
					return err
				}
				if err := putLabels(bb, "labels", b.labels); err != nil {
					return err
				}
			}
			for sn, keys := range ns.snaps {
				for key, s := range keys {
					sb, err := nested(nb, "snapshots", sn, key)
					if err != nil {
						return err
					}
					if err := r.times(sb); err != nil {
						return err
					}
					if err := sb.Put([]byte("name"), []byte(s.name)); err != nil {
						return err
					}
					if s.parent != "" {
						if err := sb.Put([]byte("parent"), []byte(s.parent)); err != nil {
							return err
						}
						pb, err := nested(nb, "snapshots", sn, s.parent, "children")
						if err != nil {
							return err
						}
						if err := pb.Put([]byte(key), nil); err != nil {
							return err
						}
					}
					if err := putLabels(sb, "labels", s.labels); err != nil {
						return err
					}
				}
			}
			for id, l := range ns.leases {
				lb, err := nested(nb, "leases", id)
				if err != nil {
					return err
				}
				ts, _ := r.stamp.MarshalBinary()
				if err := lb.Put([]byte("createdat"), ts); err != nil {
					return err
				}
				for _, c := range l.content {
					cb, err := nested(lb, "content")
					if err != nil {
						return err
					}
					if err := cb.Put([]byte(c), nil); err != nil {
						return err
					}
				}
				for sn, keys := range l.snaps {
					sb, err := nested(lb, "snapshots", sn)
					if err != nil {
						return err
					}
					for _, k := range keys {
						if err := sb.Put([]byte(k), nil); err != nil {
							return err
						}
					}
				}
			}
			for id, c := range ns.ctrs {
				cb, err := nested(nb, "containers", id)
				if err != nil {
					return err
				}
				if err := cb.Put([]byte("snapshotter"), []byte(c[0])); err != nil {
					return err
				}
				if err := cb.Put([]byte("snapshotKey"), []byte(c[1])); err != nil {
					return err
				}
			}
		}
		if r.metaHook != nil {
			return r.metaHook(tx)
		}
		return nil
	}))
}

// writeBackend writes a snapshotter metadata.db: v1/snapshots/<name> with
// id (uvarint), kind, parent, usage and times; v1/parents links (FORMATS.md 4.3).
func (r *testRoot) writeBackend(t *testing.T, path string, be *testBackend) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	must(t, err)
	defer db.Close()
	names := make([]string, 0, len(be.snaps))
	for n := range be.snaps {
		names = append(names, n)
	}
	sort.Strings(names)
	must(t, db.Update(func(tx *bolt.Tx) error {
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
		for _, n := range names {
			s := be.snaps[n]
			b, err := sb.CreateBucket([]byte(n))
			if err != nil {
				return err
			}
			if err := r.times(b); err != nil {
				return err
			}
			for k, v := range map[string][]byte{"id": uvarint(s.id), "kind": {s.kind}, "inodes": varint(3), "size": varint(4096)} {
				if err := b.Put([]byte(k), v); err != nil {
					return err
				}
			}
			if s.parent != "" {
				if err := b.Put([]byte("parent"), []byte(s.parent)); err != nil {
					return err
				}
				p := be.snaps[s.parent]
				key := append(append(uvarint(p.id), 0), uvarint(s.id)...)
				if err := pb.Put(key, []byte(n)); err != nil {
					return err
				}
			}
		}
		if r.backendHook != nil {
			return r.backendHook(tx)
		}
		return nil
	}))
}
