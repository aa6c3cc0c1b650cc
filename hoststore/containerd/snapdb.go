package containerd

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Snapshot kinds as the snapshotter stores them (one byte).
const (
	kindUnknown   = 0
	kindView      = 1
	kindActive    = 2
	kindCommitted = 3
)

func kindName(k byte) string {
	switch k {
	case kindView:
		return "view"
	case kindActive:
		return "active"
	case kindCommitted:
		return "committed"
	case kindUnknown:
		return "unknown"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// snapshotter is one io.containerd.snapshotter.v1.<name> directory and its
// metadata.db (FORMATS.md 4.3).
type snapshotter struct {
	Name string // overlayfs, native, ...
	Dir  string // <root>/io.containerd.snapshotter.v1.<name>
	// Read is false when metadata.db is absent or unreadable (Err says why).
	Read bool
	Err  error
	// Copied is true when the database was locked and read from a private copy.
	Copied    bool
	Snapshots map[string]*backendSnapshot // by backend name "ns/seq/key"
	ByID      map[uint64]*backendSnapshot
	Parents   map[[2]uint64]string // (parent id, child id) -> child name
	Malformed []malformed
}

// backendSnapshot is one v1/snapshots/<name> bucket.
type backendSnapshot struct {
	Name   string
	ID     uint64
	HasID  bool
	Kind   byte
	Parent string
	Labels map[string]string
}

func (s *snapshotter) bad(path, format string, args ...any) {
	s.Malformed = append(s.Malformed, malformed{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// read decodes v1/snapshots and v1/parents.
func (s *snapshotter) read(tx *bolt.Tx) error {
	s.Snapshots = map[string]*backendSnapshot{}
	s.ByID = map[uint64]*backendSnapshot{}
	s.Parents = map[[2]uint64]string{}
	v1 := tx.Bucket([]byte("v1"))
	if v1 == nil {
		return nil // a snapshotter that never stored a snapshot
	}
	if sb := v1.Bucket([]byte("snapshots")); sb != nil {
		_ = sb.ForEach(func(k, v []byte) error {
			if v != nil {
				return nil
			}
			b := sb.Bucket(k)
			bs := &backendSnapshot{Name: string(k), Parent: string(b.Get([]byte("parent"))), Labels: readLabels(b.Bucket([]byte("labels")))}
			p := "v1/snapshots/" + bs.Name
			if idv := b.Get([]byte("id")); idv == nil {
				s.bad(p, "snapshot has no id")
			} else if id, n := binary.Uvarint(idv); n <= 0 || n != len(idv) {
				s.bad(p+"/id", "id is not a uvarint (% x)", idv)
			} else {
				bs.ID, bs.HasID = id, true
				if other, dup := s.ByID[id]; dup {
					s.bad(p+"/id", "id %d is also the id of %s: two snapshots would share one directory", id, other.Name)
				} else {
					s.ByID[id] = bs
				}
			}
			if kv := b.Get([]byte("kind")); len(kv) == 1 {
				bs.Kind = kv[0]
			} else {
				s.bad(p+"/kind", "kind is not one byte (% x)", kv)
			}
			s.Snapshots[bs.Name] = bs
			return nil
		})
	}
	if pb := v1.Bucket([]byte("parents")); pb != nil {
		_ = pb.ForEach(func(k, v []byte) error {
			pid, n := binary.Uvarint(k)
			if n <= 0 || n >= len(k) || k[n] != 0 {
				s.bad("v1/parents", "key % x is not <parent id> 0x00 <child id>", k)
				return nil
			}
			cid, m := binary.Uvarint(k[n+1:])
			if m <= 0 || n+1+m != len(k) {
				s.bad("v1/parents", "key % x is not <parent id> 0x00 <child id>", k)
				return nil
			}
			s.Parents[[2]uint64{pid, cid}] = string(v)
			return nil
		})
	}
	return nil
}

// dataDir is where the snapshot with this id keeps its files, and whether
// the layout of this snapshotter is known.
func (s *snapshotter) dataDir(id uint64) (string, bool) {
	base := filepath.Join(s.Dir, "snapshots", strconv.FormatUint(id, 10))
	switch s.Name {
	case "overlayfs":
		return filepath.Join(base, "fs"), true
	case "native":
		return base, true
	}
	return base, false
}
