package containerd

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// metaDB is what meta.db holds, read into memory (FORMATS.md 4.2).
type metaDB struct {
	Version    int64 // v1/version, 0 when absent
	Namespaces map[string]*namespace
	// Malformed lists records that could not be decoded, as findings-to-be.
	Malformed []malformed
}

type malformed struct {
	Path, Msg string
}

// namespace is one v1/<namespace> bucket.
type namespace struct {
	Name       string
	Labels     map[string]string
	Images     map[string]*imageRecord
	Blobs      map[digest.Digest]*blobRecord
	Ingests    map[string]string                 // ingest ref -> expected digest
	Snapshots  map[string]map[string]*snapRecord // snapshotter -> key -> record
	Leases     map[string]*leaseRecord
	Containers map[string]*containerRecord
}

type imageRecord struct {
	Name   string
	Target ocispec.Descriptor
	Labels map[string]string
	// Problems says what is wrong with the target (missing field, bad varint).
	Problems []string
}

type blobRecord struct {
	Digest  digest.Digest
	Size    int64
	HasSize bool
	Labels  map[string]string
}

type snapRecord struct {
	Key, Name, Parent string
	Labels            map[string]string
}

type leaseRecord struct {
	ID        string
	Labels    map[string]string
	Content   []string
	Snapshots map[string][]string // snapshotter -> keys
	Ingests   []string
}

type containerRecord struct {
	ID, Image, Snapshotter, SnapshotKey string
}

func newNamespace(name string) *namespace {
	return &namespace{
		Name: name, Labels: map[string]string{}, Images: map[string]*imageRecord{},
		Blobs: map[digest.Digest]*blobRecord{}, Ingests: map[string]string{},
		Snapshots: map[string]map[string]*snapRecord{}, Leases: map[string]*leaseRecord{},
		Containers: map[string]*containerRecord{},
	}
}

// readMetaDB decodes the whole of meta.db in one read transaction.
func readMetaDB(tx *bolt.Tx) (*metaDB, error) {
	m := &metaDB{Namespaces: map[string]*namespace{}}
	v1 := tx.Bucket([]byte("v1"))
	if v1 == nil {
		return nil, fmt.Errorf("no v1 bucket: not a containerd metadata database")
	}
	if v := v1.Get([]byte("version")); v != nil {
		n, k := binary.Varint(v)
		if k <= 0 {
			m.bad("v1/version", "version is not a varint")
		}
		m.Version = n
	}
	err := v1.ForEach(func(k, v []byte) error {
		if v != nil { // "version" and any other plain key
			return nil
		}
		ns := newNamespace(string(k))
		m.Namespaces[ns.Name] = ns
		m.readNamespace(ns, v1.Bucket(k))
		return nil
	})
	return m, err
}

func (m *metaDB) bad(path, format string, args ...any) {
	m.Malformed = append(m.Malformed, malformed{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// NamespaceNames returns the namespaces, sorted.
func (m *metaDB) NamespaceNames() []string {
	out := make([]string, 0, len(m.Namespaces))
	for n := range m.Namespaces {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (m *metaDB) readNamespace(ns *namespace, b *bolt.Bucket) {
	base := "v1/" + ns.Name
	ns.Labels = readLabels(b.Bucket([]byte("labels")))
	if ib := b.Bucket([]byte("images")); ib != nil {
		_ = ib.ForEach(func(k, v []byte) error {
			if v != nil {
				return nil
			}
			ns.Images[string(k)] = m.readImage(base+"/images/"+string(k), string(k), ib.Bucket(k))
			return nil
		})
	}
	if cb := bucketPath(b, "content", "blob"); cb != nil {
		_ = cb.ForEach(func(k, v []byte) error {
			if v != nil {
				return nil
			}
			p := base + "/content/blob/" + string(k)
			d := digest.Digest(k)
			if err := d.Validate(); err != nil {
				m.bad(p, "content record key %q is not a valid digest: %v", k, err)
				return nil
			}
			rb := cb.Bucket(k)
			rec := &blobRecord{Digest: d, Labels: readLabels(rb.Bucket([]byte("labels")))}
			if sv := rb.Get([]byte("size")); sv != nil {
				n, nb := binary.Varint(sv)
				if nb <= 0 || nb != len(sv) || n < 0 {
					m.bad(p+"/size", "size is not a non-negative varint (% x)", sv)
				} else {
					rec.Size, rec.HasSize = n, true
				}
			} else {
				m.bad(p, "content record has no size")
			}
			ns.Blobs[d] = rec
			return nil
		})
	}
	if ib := bucketPath(b, "content", "ingests"); ib != nil {
		_ = ib.ForEach(func(k, v []byte) error {
			if v == nil {
				ns.Ingests[string(k)] = string(ib.Bucket(k).Get([]byte("expected")))
			}
			return nil
		})
	}
	if sb := b.Bucket([]byte("snapshots")); sb != nil {
		_ = sb.ForEach(func(sn, v []byte) error {
			if v != nil {
				return nil
			}
			keys := map[string]*snapRecord{}
			ns.Snapshots[string(sn)] = keys
			snb := sb.Bucket(sn)
			_ = snb.ForEach(func(k, v []byte) error {
				if v != nil {
					return nil
				}
				kb := snb.Bucket(k)
				r := &snapRecord{Key: string(k), Name: string(kb.Get([]byte("name"))), Parent: string(kb.Get([]byte("parent"))), Labels: readLabels(kb.Bucket([]byte("labels")))}
				if r.Name == "" {
					m.bad(base+"/snapshots/"+string(sn)+"/"+string(k), "snapshot record has no backend name")
				}
				keys[r.Key] = r
				return nil
			})
			return nil
		})
	}
	if lb := b.Bucket([]byte("leases")); lb != nil {
		_ = lb.ForEach(func(k, v []byte) error {
			if v != nil {
				return nil
			}
			l := lb.Bucket(k)
			lr := &leaseRecord{ID: string(k), Labels: readLabels(l.Bucket([]byte("labels"))), Snapshots: map[string][]string{}}
			lr.Content = keysOf(l.Bucket([]byte("content")))
			lr.Ingests = keysOf(l.Bucket([]byte("ingests")))
			if ls := l.Bucket([]byte("snapshots")); ls != nil {
				_ = ls.ForEach(func(sn, v []byte) error {
					if v == nil {
						lr.Snapshots[string(sn)] = keysOf(ls.Bucket(sn))
					}
					return nil
				})
			}
			ns.Leases[lr.ID] = lr
			return nil
		})
	}
	if cb := b.Bucket([]byte("containers")); cb != nil {
		_ = cb.ForEach(func(k, v []byte) error {
			if v != nil {
				return nil
			}
			c := cb.Bucket(k)
			ns.Containers[string(k)] = &containerRecord{
				ID: string(k), Image: string(c.Get([]byte("image"))),
				Snapshotter: string(c.Get([]byte("snapshotter"))), SnapshotKey: string(c.Get([]byte("snapshotKey"))),
			}
			return nil
		})
	}
}

func (m *metaDB) readImage(path, name string, b *bolt.Bucket) *imageRecord {
	img := &imageRecord{Name: name, Labels: readLabels(b.Bucket([]byte("labels")))}
	img.Target.Size = -1
	if ann := readLabels(b.Bucket([]byte("annotations"))); len(ann) > 0 {
		img.Target.Annotations = ann
	}
	t := b.Bucket([]byte("target"))
	if t == nil {
		img.Problems = append(img.Problems, "the image record has no target")
		return img
	}
	if d := t.Get([]byte("digest")); d == nil {
		img.Problems = append(img.Problems, "the target has no digest")
	} else {
		img.Target.Digest = digest.Digest(d)
		if err := img.Target.Digest.Validate(); err != nil {
			img.Problems = append(img.Problems, fmt.Sprintf("the target digest %q is invalid: %v", d, err))
		}
	}
	if mt := t.Get([]byte("mediatype")); len(mt) == 0 {
		img.Problems = append(img.Problems, "the target has no media type")
	} else {
		img.Target.MediaType = string(mt)
	}
	if sv := t.Get([]byte("size")); sv == nil {
		img.Problems = append(img.Problems, "the target has no size")
	} else if n, nb := binary.Varint(sv); nb <= 0 || nb != len(sv) || n < 0 {
		img.Problems = append(img.Problems, fmt.Sprintf("the target size is not a non-negative varint (% x)", sv))
	} else {
		img.Target.Size = n
	}
	return img
}

func bucketPath(b *bolt.Bucket, names ...string) *bolt.Bucket {
	for _, n := range names {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(n))
	}
	return b
}

func readLabels(b *bolt.Bucket) map[string]string {
	out := map[string]string{}
	if b == nil {
		return out
	}
	_ = b.ForEach(func(k, v []byte) error {
		if v != nil {
			out[string(k)] = string(v)
		}
		return nil
	})
	return out
}

func keysOf(b *bolt.Bucket) []string {
	var out []string
	if b == nil {
		return nil
	}
	_ = b.ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out
}

// labelsWithPrefix returns the labels whose key starts with prefix, keyed by the rest.
func labelsWithPrefix(labels map[string]string, prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[rest] = v
		}
	}
	return out
}
