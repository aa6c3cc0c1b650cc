package docker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"golang.org/x/sys/unix"
)

// TestFuseOverlayfsContainerWhiteouts: a container's read-write and -init
// layers on fuse-overlayfs hold what fuse-overlayfs itself writes through
// the mount, not the AUFS .wh. files of image layers. Running as root it
// makes 0/0 character devices for deleted files and marks an opaque
// directory with both a .wh..wh..opq regular file and a .wh..opq 0/0
// character device [observed, dockerd 20.10.24 + fuse-overlayfs 1.10, the e2e
// suite's store: <mount-id>/diff/bin/ls and <mount-id>/diff/var/.wh..opq are
// c--------- 0,0 beside var/.wh..wh..opq; <mount-id>-init/diff/proc/ and
// dev/ the same]. Those layers have no tar-split to compare with; the store
// stays clean.
func TestFuseOverlayfsContainerWhiteouts(t *testing.T) {
	if !dockertest.IsRoot() {
		t.Skip("needs root: fuse-overlayfs's own whiteouts are 0/0 character devices")
	}
	s := dockertest.Build(t, dockertest.DefaultSpec("fuse-overlayfs", true))
	for _, id := range []string{s.MountID, s.MountID + "-init"} {
		diff := s.Path(s.CacheDir(id) + "/diff")
		for _, dir := range []string{"bin", "var", "proc"} {
			must(t, os.MkdirAll(filepath.Join(diff, dir), 0o755))
		}
		must(t, unix.Mknod(filepath.Join(diff, "bin", "tool"), unix.S_IFCHR, 0))
		must(t, unix.Mknod(filepath.Join(diff, "var", ".wh..opq"), unix.S_IFCHR, 0))
		dockertest.WriteFile(t, filepath.Join(diff, "var", ".wh..wh..opq"), nil, 0o700)
		must(t, unix.Mknod(filepath.Join(diff, "proc", ".wh..opq"), unix.S_IFCHR, 0))
		dockertest.WriteFile(t, filepath.Join(diff, "proc", ".wh..wh..opq"), nil, 0o700)
	}
	r := runAudit(t, s.Root, Options{Jobs: 2})
	requireClean(t, r)
}
