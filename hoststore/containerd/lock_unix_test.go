//go:build unix

package containerd

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/layercheck/layercheck/report"
)

// TestLockedMetaDB holds the exclusive flock a running containerd holds on
// meta.db and on the snapshotter's metadata.db: Open waits LockTimeout, reads
// private copies, removes them, and the audit is the same; the root is untouched.
func TestLockedMetaDB(t *testing.T) {
	w := newWorld(t)
	root := w.write(t)
	before := treeHash(t, root)
	lock := func(p string) *os.File {
		f, err := os.Open(p)
		must(t, err)
		// What a running containerd holds: an exclusive flock (bbolt's own lock).
		must(t, syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
		return f
	}
	metaF := lock(filepath.Join(root, MetaDBPath))
	defer metaF.Close()
	snapF := lock(filepath.Join(root, SnapshotterPrefix+"overlayfs", "metadata.db"))
	defer snapF.Close()
	tmp := t.TempDir()
	st, err := Open(root, noFiles(Options{LockTimeout: 50 * time.Millisecond, TempDir: tmp}))
	must(t, err)
	if got := st.Copied(); len(got) != 2 {
		t.Fatalf("want both databases read from private copies, got %v", got)
	}
	left, err := os.ReadDir(tmp)
	must(t, err)
	if len(left) != 0 {
		t.Errorf("private copies left behind: %v", left)
	}
	b := &report.Builder{}
	must(t, st.Audit(context.Background(), b))
	rep := b.Finish("host", root, "test")
	clean(t, rep)
	if len(rep.Images) < 4 {
		t.Errorf("only %d images read from the copy", len(rep.Images))
	}
	if after := treeHash(t, root); after != before {
		t.Fatal("the audit changed the locked root")
	}
}
