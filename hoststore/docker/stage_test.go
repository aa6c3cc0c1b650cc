package docker

import (
	"archive/tar"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"golang.org/x/sys/unix"
)

// TestManyFindingsStable: a layer's observer and its rebuild run on
// goroutines of their own, a batch of records apart, and both find
// differences (modes by lstat, xattrs listed on the rebuild's descriptors
// or by path for empty files). Past the cap of findings per check, which
// ones are kept must not depend on how they interleave: audits of the same
// damage give the same report. (The rebuild's xattr findings are compared
// after the observer's, so past the cap those are the ones left out.)
func TestManyFindingsStable(t *testing.T) {
	var entries []dockertest.Entry
	entries = append(entries, dockertest.Dir("d/", 0o755))
	for i := 0; i < 400; i++ {
		data := fmt.Sprintf("file %d\n", i)
		if i%3 == 0 {
			data = "" // not opened by the rebuild: its xattrs are listed by path
		}
		entries = append(entries, dockertest.Entry{Name: fmt.Sprintf("d/f%03d", i), Type: tar.TypeReg, Data: []byte(data), Mode: 0o644,
			Xattrs: map[string]string{"user.k": "v"}})
	}
	s := dockertest.Build(t, linkedSpec("overlay2", "S", "stable", [][]dockertest.Entry{entries}))
	dir := s.Path(s.Layers["S0"].Dir)
	for i := 0; i < 400; i++ {
		p := fmt.Sprintf("%s/d/f%03d", dir, i)
		if i%10 == 0 {
			must(t, os.Chmod(p, 0o600))
		}
		must(t, unix.Lremovexattr(p, "user.k"))
	}
	first := findingsText(runAudit(t, s.Root, Options{Jobs: 2}))
	for _, want := range []string{"xattr user.k on disk differs", "mode on disk differs"} {
		if !strings.Contains(first, want) {
			t.Fatalf("no finding %q:\n%s", want, first)
		}
	}
	for i := 0; i < 5; i++ {
		if got := findingsText(runAudit(t, s.Root, Options{Jobs: 2})); got != first {
			t.Fatalf("audit %d differs from the first:\n--- first\n%s--- this\n%s", i+2, first, got)
		}
	}
}
