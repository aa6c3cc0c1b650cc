//go:build e2e

package e2e

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/layercheck/layercheck/e2e/harness"
	"github.com/layercheck/layercheck/hoststore/containerd"
	"github.com/layercheck/layercheck/report"
	"golang.org/x/sys/unix"
)

// These tests check the files of the snapshots the real containerd unpacked
// (overlayfs and native, from `ctr images import` and `ctr images pull`)
// against their layers: the live root is clean, each damage of a file in a
// copy's committed snapshot is named with its exact check, and a snapshot
// whose blobs are gone is information for `host` and compared with the
// registry's blobs by `compare host --deep`.

// snapFileFindings returns the ctrd-snapshot-file-* findings of r.
func snapFileFindings(r *report.Report) []report.Finding {
	var fl []report.Finding
	for _, f := range r.Findings {
		if strings.HasPrefix(string(f.Check), "ctrd-snapshot-file-") {
			fl = append(fl, f)
		}
	}
	return fl
}

// cleanEntry is a tar or walk entry name as a path relative to the
// snapshot's root.
func cleanEntry(e string) string {
	return strings.TrimPrefix(strings.TrimPrefix(filepath.Clean("/"+e), "/"), "./")
}

// snapFile is a regular file of a snapshot directory of a copy.
type snapFile struct {
	rel   string // relative to the copy
	entry string // relative to the snapshot's root
}

// snapDirFiles lists the regular files of dir (relative to copyPath)
// that are not hardlinked and hold at least 2 bytes, sorted.
func snapDirFiles(t *testing.T, copyPath, dir string) []snapFile {
	t.Helper()
	var files []snapFile
	abs := filepath.Join(copyPath, dir)
	err := filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink != 1 || fi.Size() < 2 {
			return nil
		}
		rel, _ := filepath.Rel(abs, p)
		files = append(files, snapFile{rel: filepath.Join(dir, rel), entry: rel})
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", abs, err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].entry < files[j].entry })
	return files
}

// snapFileIn returns the first (or last) plain regular file of the first
// of the snapshot directories dirs (absolute, inside the copy) holding one.
func snapFileIn(t *testing.T, copyPath string, dirs []string, last bool) snapFile {
	t.Helper()
	for _, d := range dirs {
		rel, err := filepath.Rel(copyPath, d)
		if err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("snapshot %s is not in the copy %s", d, copyPath)
		}
		if fl := snapDirFiles(t, copyPath, rel); len(fl) > 0 {
			if last {
				return fl[len(fl)-1]
			}
			return fl[0]
		}
	}
	t.Fatalf("no plain regular file in the snapshots %v", dirs)
	return snapFile{}
}

// richestSnapshot returns the snapshot directory of snapshotter sn in the
// copy (relative to it) with the most plain regular files, and those files.
func richestSnapshot(t *testing.T, c *harness.Copy, sn string) (string, []snapFile) {
	t.Helper()
	pattern := containerd.SnapshotterPrefix + sn + "/snapshots/*"
	if sn == "overlayfs" {
		pattern += "/fs"
	}
	dirs, err := c.Glob(pattern)
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no %s snapshot directory in the copy (%s): %v", sn, pattern, err)
	}
	sort.Strings(dirs)
	var best string
	var bestFiles []snapFile
	for _, d := range dirs {
		if fl := snapDirFiles(t, c.Path, d); len(fl) > len(bestFiles) {
			best, bestFiles = d, fl
		}
	}
	return best, bestFiles
}

// TestSnapshotFilesLive runs `layercheck host --containerd-root` on the
// live standalone root: no ctrd-snapshot-file-* error, and no snapshot left
// unchecked (TestSnapshotFilesDamaged shows they are compared).
func TestSnapshotFilesLive(t *testing.T) {
	s := need(t)
	run := layercheck(t, s, "host", "--containerd-root", s.Containerd.Root, "-o", "json")
	if run.Report == nil {
		t.Fatalf("no report: exit %d, stderr %.2000s", run.Code, run.Stderr)
	}
	for _, f := range snapFileFindings(run.Report) {
		// Every layer blob is kept: every committed snapshot is compared.
		if f.Severity != report.Info || f.Check == containerd.CheckSnapshotFileUnchecked {
			t.Errorf("live root: %s %s %s: %s (want %q got %q)", f.Severity, f.Check, f.Subject, f.Message, f.Expected, f.Actual)
		}
	}
	requireClean(t, "layercheck host --containerd-root on the live root", run)
}

// TestSnapshotFilesDamaged damages files of a committed overlayfs snapshot
// and of a committed native snapshot in a copy of the standalone root; each
// damage is named, file by file, with its exact check.
func TestSnapshotFilesDamaged(t *testing.T) {
	s := need(t)
	sns := []string{"native"}
	if s.Snapshotter == "overlayfs" {
		sns = append([]string{"overlayfs"}, sns...)
	} else {
		t.Logf("the kernel does not mount overlay here: only the native snapshotter is damaged")
	}
	c := s.Env.Corrupt(t, s.Containerd.Root)
	// want: snapshot dir (absolute in the copy) -> entry -> accepted checks
	want := map[string]map[string][]report.Check{}
	for _, sn := range sns {
		dir, files := richestSnapshot(t, c, sn)
		if len(files) < 5 {
			t.Fatalf("%s snapshot %s holds %d plain regular files, want 5", sn, dir, len(files))
		}
		abs := filepath.Join(c.Path, dir)
		w := map[string][]report.Check{}
		want[abs] = w
		flip, trunc, del, chmod, link := files[0], files[1], files[2], files[3], files[4]
		if err := c.FlipByte(flip.rel, -1); err != nil {
			t.Fatal(err)
		}
		w[flip.entry] = []report.Check{containerd.CheckSnapshotFileContent}
		if err := c.Truncate(trunc.rel, -1); err != nil {
			t.Fatal(err)
		}
		w[trunc.entry] = []report.Check{containerd.CheckSnapshotFileContent, containerd.CheckSnapshotFileAttr}
		if err := c.Remove(del.rel); err != nil {
			t.Fatal(err)
		}
		w[del.entry] = []report.Check{containerd.CheckSnapshotFileMissing}
		p := filepath.Join(c.Path, chmod.rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()^0o002); err != nil {
			t.Fatal(err)
		}
		w[chmod.entry] = []report.Check{containerd.CheckSnapshotFileAttr}
		p = filepath.Join(c.Path, link.rel)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("layercheck-elsewhere", p); err != nil {
			t.Fatal(err)
		}
		w[link.entry] = []report.Check{containerd.CheckSnapshotFileType}
		if err := c.WriteFile(filepath.Join(dir, "layercheck-added"), []byte("not in any layer\n")); err != nil {
			t.Fatal(err)
		}
		w["layercheck-added"] = []report.Check{containerd.CheckSnapshotFileExtra}
		t.Logf("%s snapshot %s: flipped %s, truncated %s, removed %s, chmod %s, symlinked %s, added layercheck-added",
			sn, dir, flip.entry, trunc.entry, del.entry, chmod.entry, link.entry)
	}
	run := layercheck(t, s, "host", "--containerd-root", c.Path, "-o", "json")
	if run.Report == nil || run.Code != 1 {
		t.Fatalf("damaged copy: exit %d, want 1; stderr %.2000s", run.Code, run.Stderr)
	}
	got := map[string]map[string][]report.Check{}
	for _, f := range snapFileFindings(run.Report) {
		if got[f.Subject.Path] == nil {
			got[f.Subject.Path] = map[string][]report.Check{}
		}
		e := cleanEntry(f.Subject.Entry)
		got[f.Subject.Path][e] = append(got[f.Subject.Path][e], f.Check)
		if _, ok := want[f.Subject.Path]; !ok && f.Severity != report.Info {
			t.Errorf("finding in an undamaged snapshot: %s %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
		}
	}
	for dir, w := range want {
		for entry, accept := range w {
			checks := got[dir][entry]
			ok := len(checks) > 0
			for _, ch := range checks {
				found := false
				for _, a := range accept {
					found = found || ch == a
				}
				ok = ok && found
			}
			if !ok {
				t.Errorf("%s: %s: checks %v, want one or more of %v", dir, entry, checks, accept)
			}
		}
		for entry, checks := range got[dir] {
			if _, ok := w[entry]; !ok {
				t.Errorf("%s: %s: undamaged entry reported: %v", dir, entry, checks)
			}
		}
	}
	if t.Failed() {
		t.Logf("findings:\n%s", ctrdFindings(run.Report))
	}
}

// TestSnapshotFilesDiscarded removes the layer blobs of the image the
// standalone containerd pulled from the loopback registry (as
// discard_unpacked_layers would) in a copy and flips a byte in one of its
// snapshots: `host` says the snapshots could not be checked locally and
// finds no content difference; `compare host --deep` streams the
// registry's blobs and names the flipped file.
func TestSnapshotFilesDiscarded(t *testing.T) {
	s := need(t)
	drv := s.Drivers[0]
	ns := drv + "-zstd"
	ref := s.Copies[drv].ZstdRemote["layers"]
	c := s.Env.Corrupt(t, s.Containerd.Root)
	st, err := containerd.Open(c.Path, containerd.Options{Namespaces: []string{ns}})
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, rec := range st.Content(ns) {
		if rec.Labels["containerd.io/uncompressed"] == "" {
			continue
		}
		if err := c.Remove(filepath.Join(containerd.ContentDir, "blobs", "sha256", rec.Digest.Encoded())); err != nil {
			t.Fatal(err)
		}
		removed++
	}
	if removed == 0 {
		t.Fatalf("namespace %s has no layer blob", ns)
	}
	run := layercheck(t, s, "host", "--containerd-root", c.Path, "--namespace", ns, "-o", "json")
	if run.Report == nil {
		t.Fatalf("no report: exit %d, stderr %.2000s", run.Code, run.Stderr)
	}
	var dirs []string
	for _, f := range snapFileFindings(run.Report) {
		if f.Check == containerd.CheckSnapshotFileUnchecked && f.Severity == report.Info {
			dirs = append(dirs, f.Subject.Path)
		}
	}
	if len(dirs) == 0 {
		t.Fatalf("%d layer blobs removed: no %s finding:\n%s", removed, containerd.CheckSnapshotFileUnchecked, ctrdFindings(run.Report))
	}
	flipped := snapFileIn(t, c.Path, dirs, false)
	if err := c.FlipByte(flipped.rel, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("removed %d layer blobs, flipped %s", removed, flipped.rel)

	run = layercheck(t, s, "host", "--containerd-root", c.Path, "--namespace", ns, "-o", "json")
	if run.Report == nil {
		t.Fatalf("no report: exit %d, stderr %.2000s", run.Code, run.Stderr)
	}
	unchecked := 0
	for _, f := range snapFileFindings(run.Report) {
		switch {
		case f.Check == containerd.CheckSnapshotFileUnchecked && f.Severity == report.Info:
			unchecked++
		default:
			t.Errorf("host without the blobs: %s %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
		}
	}
	if unchecked != len(dirs) {
		t.Errorf("host without the blobs: %d %s findings, want %d", unchecked, containerd.CheckSnapshotFileUnchecked, len(dirs))
	}

	run = layercheck(t, s, "compare", "host", "--deep", "--containerd-root", c.Path, "--namespace", ns, "-o", "json", ref)
	if run.Report == nil || run.Code != 1 {
		t.Fatalf("compare host --deep: exit %d, want 1; stderr %.2000s", run.Code, run.Stderr)
	}
	named := false
	for _, f := range snapFileFindings(run.Report) {
		if f.Check == containerd.CheckSnapshotFileContent && f.Severity == report.Error && filepath.Join(f.Subject.Path, cleanEntry(f.Subject.Entry)) == filepath.Join(c.Path, flipped.rel) {
			named = true
		} else if f.Severity != report.Info {
			t.Errorf("compare host --deep: unexpected %s %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
		}
	}
	if !named {
		t.Errorf("compare host --deep does not name %s with %s:\n%s", flipped.rel, containerd.CheckSnapshotFileContent, ctrdFindings(run.Report))
	}
}

// TestSnapshotFilesActive creates a container (no task) with ctr, so that
// its image has an active snapshot, then writes into that snapshot in a
// copy: the audit reports the active snapshot's size as information and
// nothing else about its files.
func TestSnapshotFilesActive(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	ns := s.Drivers[0] + "-native"
	imgs, err := s.Containerd.Images(ctx, ns)
	if err != nil || len(imgs) == 0 {
		t.Fatalf("namespace %s: no image (%v)", ns, err)
	}
	const id = "layercheck-snapshots-active"
	if _, err := s.Containerd.Ctr(ctx, ns, "containers", "create", "--snapshotter", "native", imgs[0].Name, id); err != nil {
		t.Fatal(err)
	}
	var liveDir string // the active snapshot in the live root
	t.Cleanup(func() {
		if _, err := s.Containerd.Ctr(context.Background(), ns, "containers", "delete", id); err != nil {
			t.Errorf("removing container %s: %v", id, err)
			return
		}
		// containerd's garbage collector removes the snapshot directory
		// after the container: wait for it, so that later copies of the
		// root do not race with it.
		// The native snapshotter renames it rm-<id> before removing it.
		for i := 0; liveDir != "" && i < 300; i++ {
			rm, _ := filepath.Glob(filepath.Join(filepath.Dir(liveDir), "rm-*"))
			if _, err := os.Lstat(liveDir); os.IsNotExist(err) && len(rm) == 0 {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		if liveDir != "" {
			t.Errorf("the active snapshot %s was not removed 30s after its container", liveDir)
		}
	})
	c := s.Env.Corrupt(t, s.Containerd.Root)
	active := func(what string) string {
		t.Helper()
		run := layercheck(t, s, "host", "--containerd-root", c.Path, "--namespace", ns, "-o", "json")
		requireClean(t, what, run)
		var dirs []string
		for _, f := range snapFileFindings(run.Report) {
			if f.Check == containerd.CheckSnapshotFileActive {
				dirs = append(dirs, f.Subject.Path)
			} else if f.Severity != report.Info || f.Check == containerd.CheckSnapshotFileUnchecked {
				t.Errorf("%s: %s %s %s: %s", what, f.Severity, f.Check, f.Subject, f.Message)
			}
		}
		if len(dirs) != 1 {
			t.Fatalf("%s: %d %s findings, want 1 (the container's):\n%s", what, len(dirs), containerd.CheckSnapshotFileActive, ctrdFindings(run.Report))
		}
		return dirs[0]
	}
	dir := active("a container's active snapshot")
	rel, err := filepath.Rel(c.Path, dir)
	if err != nil || !filepath.IsLocal(rel) {
		t.Fatalf("active snapshot %s is not in the copy %s", dir, c.Path)
	}
	liveDir = filepath.Join(s.Containerd.Root, rel)
	if err := c.WriteFile(filepath.Join(rel, "written-by-the-container"), []byte("a container's write\n")); err != nil {
		t.Fatal(err)
	}
	if fl := snapDirFiles(t, c.Path, rel); len(fl) > 0 {
		if err := c.FlipByte(fl[0].rel, 0); err != nil {
			t.Fatal(err)
		}
	}
	active("writes into the active snapshot")
}

// TestSnapshotFilesWhiteouts undoes deletions of the "layers" image in a
// copy: a removed overlayfs whiteout (a 0/0 character device), a removed
// opaque marker where a snapshot has one, and the deleted /etc/deleteme
// re-created in the native snapshots that lack it; each is named (as the
// layer's tar names it: .wh.<name>, <dir>/.wh..wh..opq). In native
// snapshots the re-created file is a whiteout finding in the snapshot of the
// deleting layer and an extra entry above it.
func TestSnapshotFilesWhiteouts(t *testing.T) {
	s := need(t)
	c := s.Env.Corrupt(t, s.Containerd.Root)
	type damage struct {
		dir, entry string
		accept     []report.Check
	}
	var damages []damage
	if s.Snapshotter == "overlayfs" {
		dirs, err := c.Glob(containerd.SnapshotterPrefix + "overlayfs/snapshots/*/fs")
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(dirs)
		var wh, opq *damage
		for _, d := range dirs {
			abs := filepath.Join(c.Path, d)
			filepath.WalkDir(abs, func(p string, e fs.DirEntry, err error) error {
				if err != nil || p == abs {
					return err
				}
				rel, _ := filepath.Rel(abs, p)
				if e.Type()&fs.ModeCharDevice != 0 && wh == nil {
					if fi, err := e.Info(); err == nil && fi.Sys().(*syscall.Stat_t).Rdev == 0 {
						wh = &damage{dir: abs, entry: rel, accept: []report.Check{containerd.CheckSnapshotFileWhiteout}}
					}
				}
				if e.IsDir() && opq == nil {
					for _, x := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
						buf := make([]byte, 8)
						if n, err := unix.Lgetxattr(p, x, buf); err == nil && string(buf[:n]) == "y" {
							opq = &damage{dir: abs, entry: rel + "\x00" + x, accept: []report.Check{containerd.CheckSnapshotFileWhiteout}}
						}
					}
				}
				return nil
			})
		}
		if wh == nil {
			t.Fatalf("no 0/0 character device in the overlayfs snapshots: the layers image's whiteout is not unpacked as expected")
		}
		if err := os.Remove(filepath.Join(wh.dir, wh.entry)); err != nil {
			t.Fatal(err)
		}
		// Named as the layer's tar names it.
		wh.entry = filepath.Join(filepath.Dir(wh.entry), ".wh."+filepath.Base(wh.entry))
		damages = append(damages, *wh)
		t.Logf("removed the whiteout %s in %s", wh.entry, wh.dir)
		if opq == nil {
			t.Logf("no opaque directory in the overlayfs snapshots (a vfs dockerd writes per-file whiteouts): opaque marker not damaged")
		} else {
			rel, x, _ := strings.Cut(opq.entry, "\x00")
			if err := unix.Lremovexattr(filepath.Join(opq.dir, rel), x); err != nil {
				t.Fatal(err)
			}
			opq.entry = filepath.Join(rel, ".wh..wh..opq")
			damages = append(damages, *opq)
			t.Logf("removed %s of %s in %s", x, rel, opq.dir)
		}
	}
	const deleted = "etc/deleteme"
	dirs, err := c.Glob(containerd.SnapshotterPrefix + "native/snapshots/*")
	if err != nil {
		t.Fatal(err)
	}
	had, recreated := 0, 0
	for _, d := range dirs {
		abs := filepath.Join(c.Path, d)
		if _, err := os.Lstat(filepath.Join(abs, deleted)); err == nil {
			had++
			continue
		}
		if fi, err := os.Stat(filepath.Join(abs, "etc")); err != nil || !fi.IsDir() {
			continue
		}
		if err := c.WriteFile(filepath.Join(d, deleted), []byte("back again\n")); err != nil {
			t.Fatal(err)
		}
		recreated++
		damages = append(damages, damage{dir: abs, entry: deleted, accept: []report.Check{containerd.CheckSnapshotFileWhiteout, containerd.CheckSnapshotFileExtra}})
	}
	if had == 0 || recreated == 0 {
		t.Fatalf("native snapshots: %d hold %s, %d lack it; want some of each", had, deleted, recreated)
	}
	t.Logf("re-created %s in %d native snapshots", deleted, recreated)

	run := layercheck(t, s, "host", "--containerd-root", c.Path, "-o", "json")
	if run.Report == nil || run.Code != 1 {
		t.Fatalf("damaged copy: exit %d, want 1; stderr %.2000s", run.Code, run.Stderr)
	}
	got := map[string][]report.Check{} // dir \x00 entry -> checks
	for _, f := range snapFileFindings(run.Report) {
		if f.Severity == report.Info {
			continue
		}
		k := f.Subject.Path + "\x00" + cleanEntry(f.Subject.Entry)
		got[k] = append(got[k], f.Check)
	}
	nativeWhiteout := false
	for _, d := range damages {
		k := d.dir + "\x00" + d.entry
		checks := got[k]
		ok := len(checks) > 0
		for _, ch := range checks {
			found := false
			for _, a := range d.accept {
				found = found || ch == a
			}
			ok = ok && found
			nativeWhiteout = nativeWhiteout || (d.entry == deleted && ch == containerd.CheckSnapshotFileWhiteout)
		}
		if !ok {
			t.Errorf("%s: %s: checks %v, want one or more of %v", d.dir, d.entry, checks, d.accept)
		}
		delete(got, k)
	}
	for k, checks := range got {
		t.Errorf("undamaged entry reported: %q: %v", k, checks)
	}
	if !nativeWhiteout {
		t.Errorf("no native snapshot above the deletion reports the re-created %s with %s", deleted, containerd.CheckSnapshotFileWhiteout)
	}
	if t.Failed() {
		t.Logf("findings:\n%s", ctrdFindings(run.Report))
	}
}

// TestSnapshotFilesDiscardedByContainerd makes the real containerd discard
// an unpacked image's layers as discard_unpacked_layers does (the CRI
// option; ctr has none): pulled from the loopback registry into a namespace
// of its own, the manifest's layer gc.ref labels dropped with `ctr content
// label`, the layer records deleted with `ctr content rm` and the blobs
// collected by containerd's garbage collector. `host` on the live root finds
// nothing wrong and says the snapshots could not be checked locally; with a
// byte flipped in a snapshot of a copy, `host` still finds nothing and
// `compare host --deep` names the file.
func TestSnapshotFilesDiscardedByContainerd(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	drv := s.Drivers[0]
	ns := "snapshots-discard"
	remote := s.Registry.Ref(drv + "/snapshots-discard:1")
	// Compressed at a level no other push uses, so that no other namespace
	// holds these blobs and the garbage collector takes them.
	if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+s.Sets[drv].Image("layers").Save, "docker://"+remote, "--dest-tls-verify=false",
		"--dest-compress", "--dest-compress-format", "gzip", "--dest-compress-level", "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Containerd.Ctr(ctx, ns, "images", "pull", "--plain-http", "--snapshotter", s.Snapshotter, remote); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Containerd.Ctr(context.Background(), ns, "images", "rm", "--sync", remote) })
	st, err := containerd.Open(s.Containerd.Root, containerd.Options{Namespaces: []string{ns}})
	if err != nil {
		t.Fatal(err)
	}
	var layers []string
	for _, rec := range st.Content(ns) {
		if rec.Labels["containerd.io/uncompressed"] != "" {
			layers = append(layers, rec.Digest.String())
			continue
		}
		var drop []string
		for k := range rec.Labels {
			if strings.HasPrefix(k, "containerd.io/gc.ref.content.l.") {
				drop = append(drop, k+"=")
			}
		}
		if len(drop) > 0 {
			if _, err := s.Containerd.Ctr(ctx, ns, append([]string{"content", "label", rec.Digest.String()}, drop...)...); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(layers) == 0 {
		t.Fatalf("namespace %s: no layer record after the pull", ns)
	}
	if _, err := s.Containerd.Ctr(ctx, ns, append([]string{"content", "rm"}, layers...)...); err != nil {
		t.Fatal(err)
	}
	// Deletions do not start the garbage collector (deletion_threshold 0):
	// removing a tag with --sync runs it and waits.
	if _, err := s.Containerd.Ctr(ctx, ns, "images", "tag", remote, remote+"-gc"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Containerd.Ctr(ctx, ns, "images", "rm", "--sync", remote+"-gc"); err != nil {
		t.Fatal(err)
	}
	// A blob another namespace records stays (the garbage collector keeps
	// it); it is removed from the copy below, as it would be on a node
	// where only this image uses it.
	var kept []string
	deadline := time.Now().Add(5 * time.Second)
	for _, l := range layers {
		p := filepath.Join(containerd.ContentDir, "blobs", "sha256", strings.TrimPrefix(l, "sha256:"))
		for {
			if _, err := os.Lstat(filepath.Join(s.Containerd.Root, p)); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				kept = append(kept, p)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(kept) > 0 {
		all, err := containerd.Open(s.Containerd.Root, containerd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range kept {
			var holders []string
			for _, n := range all.AllNamespaces() {
				for _, rec := range all.Content(n) {
					if rec.Digest.Encoded() == filepath.Base(p) {
						holders = append(holders, n)
					}
				}
			}
			t.Logf("layer blob %s kept by the garbage collector: recorded in namespaces %v", filepath.Base(p), holders)
		}
	}
	t.Logf("namespace %s: %d layers discarded, %d blobs kept for other namespaces", ns, len(layers), len(kept))

	host := func(what, root string, unchecked int) []string {
		t.Helper()
		run := layercheck(t, s, "host", "--containerd-root", root, "--namespace", ns, "-o", "json")
		requireClean(t, what, run)
		var dirs []string
		for _, f := range snapFileFindings(run.Report) {
			if f.Check == containerd.CheckSnapshotFileUnchecked && f.Severity == report.Info {
				dirs = append(dirs, f.Subject.Path)
			} else if f.Severity != report.Info {
				t.Errorf("%s: %s %s %s: %s", what, f.Severity, f.Check, f.Subject, f.Message)
			}
		}
		if len(dirs) != unchecked {
			t.Errorf("%s: %d %s findings, want %d:\n%s", what, len(dirs), containerd.CheckSnapshotFileUnchecked, unchecked, ctrdFindings(run.Report))
		}
		return dirs
	}
	host("host on the live root after the discard", s.Containerd.Root, len(layers)-len(kept))
	c := s.Env.Corrupt(t, s.Containerd.Root)
	for _, p := range kept {
		if err := c.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	dirs := host("host on a copy without the blobs", c.Path, len(layers))
	if len(dirs) == 0 {
		t.FailNow()
	}
	flipped := snapFileIn(t, c.Path, dirs, true)
	if err := c.FlipByte(flipped.rel, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped %s in the copy", flipped.rel)
	host("host on the copy with a flipped byte", c.Path, len(layers))

	run := layercheck(t, s, "compare", "host", "--deep", "--containerd-root", c.Path, "--namespace", ns, "-o", "json", remote)
	if run.Report == nil || run.Code != 1 {
		t.Fatalf("compare host --deep: exit %d, want 1; stderr %.2000s", run.Code, run.Stderr)
	}
	named := false
	for _, f := range run.Report.Findings {
		if f.Check == containerd.CheckSnapshotFileContent && f.Severity == report.Error && filepath.Join(f.Subject.Path, cleanEntry(f.Subject.Entry)) == filepath.Join(c.Path, flipped.rel) {
			named = true
		} else if f.Severity != report.Info && f.Check != "compare-layer-missing-local" {
			// compare warns that each discarded layer was compared by the
			// digests the host's manifest and config declare.
			t.Errorf("compare host --deep: unexpected %s %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
		}
	}
	if !named {
		t.Errorf("compare host --deep does not name %s with %s:\n%s", flipped.rel, containerd.CheckSnapshotFileContent, ctrdFindings(run.Report))
	}
}
