package docker

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/layercheck/layercheck/report"
	bolt "go.etcd.io/bbolt"
)

// buildkitInfo is what BuildKit's snapshots.db (graph-driver mode) owns
// [invariant 29]. Each top-level bucket is a snapshot key; BuildKit creates
// graph-driver directories and RW layers under that key, its "committed"
// value names the graph ID of a committed snapshot and "chainid" a layer.
type buildkitInfo struct {
	present  bool
	keys     map[string]bool // snapshot keys and committed graph IDs
	chainIDs map[string]bool // "sha256:…" layer chainIDs BuildKit holds
	err      error           // the database could not be read
}

// maxBuildKitDB bounds the private copy of snapshots.db.
const maxBuildKitDB = 1 << 30

// loadBuildKit reads DR/buildkit/snapshots.db. The file is never opened in
// place: bbolt takes a shared flock even read-only, and dockerd opens the
// database without a timeout, so holding that lock could stall a restarting
// daemon. The audit copies the file privately and opens the copy.
func (a *audit) loadBuildKit() {
	a.bk = &buildkitInfo{keys: map[string]bool{}, chainIDs: map[string]bool{}}
	rel := "buildkit/snapshots.db"
	f, err := a.openRegular(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	a.bk.present = true
	if err != nil {
		a.bk.err = err
		a.problem(report.Subject{Path: rel}, "reading BuildKit's snapshot database: %v; driver directories it may own are reported as orphans with a caveat", err)
		return
	}
	defer f.Close()
	if err := a.bk.read(f); err != nil {
		a.bk.err = err
		a.problem(report.Subject{Path: rel}, "reading BuildKit's snapshot database: %v; driver directories it may own are reported as orphans with a caveat", err)
	}
}

func (bk *buildkitInfo) read(src io.Reader) error {
	tmp, err := os.CreateTemp("", "layercheck-snapshots-*.db")
	if err != nil {
		return fmt.Errorf("creating a private copy: %w", err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(src, maxBuildKitDB+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying: %w", err)
	}
	if n > maxBuildKitDB {
		return fmt.Errorf("larger than %d bytes", maxBuildKitDB)
	}
	db, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			key := string(name)
			bk.keys[key] = true
			if strings.HasPrefix(key, "sha256:") {
				bk.chainIDs[key] = true
			}
			if v := b.Get([]byte("committed")); len(v) > 0 {
				bk.keys[string(v)] = true
			}
			if v := b.Get([]byte("chainid")); len(v) > 0 {
				bk.chainIDs[string(v)] = true
			}
			return nil
		})
	})
}
