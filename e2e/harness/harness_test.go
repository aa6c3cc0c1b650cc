package harness

import (
	"archive/tar"
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests need no daemon and no root: they cover the harness's own logic.

func TestWriteRootfs(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteRootfs(&buf, []byte("not really busybox")); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	got := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	for _, n := range TrickyNames {
		if got["names/"+n] == nil {
			t.Errorf("name %q did not survive the tar writer", n)
		}
	}
	long := 0
	for n := range got {
		if len(n) > 255 {
			long++
		}
	}
	if long == 0 {
		t.Error("no path longer than 255 bytes")
	}
	checks := []struct {
		name string
		ok   func(h *tar.Header) bool
	}{
		{"data/hardlink", func(h *tar.Header) bool { return h.Typeflag == tar.TypeLink && h.Linkname == "data/file" }},
		{"data/abs-symlink", func(h *tar.Header) bool { return h.Typeflag == tar.TypeSymlink && h.Linkname == "/data/file" }},
		{"data/dangling-symlink", func(h *tar.Header) bool { return h.Typeflag == tar.TypeSymlink }},
		{"data/fifo", func(h *tar.Header) bool { return h.Typeflag == tar.TypeFifo }},
		{"data/setuid", func(h *tar.Header) bool { return h.Mode == 0o4755 }},
		{"data/mode000", func(h *tar.Header) bool { return h.Mode == 0 }},
		{"data/owned", func(h *tar.Header) bool { return h.Uid == 1000 && h.Gid == 1000 }},
		{"data/xattr", func(h *tar.Header) bool { return h.PAXRecords["SCHILY.xattr."+XattrName] == XattrValue }},
		{"data/file", func(h *tar.Header) bool { return h.ModTime.Nanosecond() != 0 }},
		{"tmp/", func(h *tar.Header) bool { return h.Mode == 0o1777 }},
		{"bin/busybox", func(h *tar.Header) bool { return h.Size == int64(len("not really busybox")) }},
		{"names/" + LongName, func(h *tar.Header) bool { return len(LongName) == 255 }},
	}
	for _, c := range checks {
		h := got[c.name]
		if h == nil || !c.ok(h) {
			t.Errorf("%s: %+v", c.name, h)
		}
	}
}

func TestWriteDockerSave(t *testing.T) {
	img, err := CraftedImage("lc/x:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteDockerSave(&buf, []SaveImage{img, {RepoTags: []string{"lc/y:1"}, Layers: [][]byte{EmptyLayer()}, History: []HistoryStep{{CreatedBy: "true"}}}}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "save.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := DockerSaveLayers(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || len(entries[0].Layers) != 3 || entries[0].RepoTags[0] != "lc/x:1" {
		t.Fatalf("manifest.json = %+v", entries)
	}
	// Layer members are named by diffID, and the empty layer is shared.
	if entries[0].Layers[2] != entries[1].Layers[0] || !strings.HasPrefix(entries[1].Layers[0], "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef/") {
		t.Errorf("empty layer members: %s, %s", entries[0].Layers[2], entries[1].Layers[0])
	}
}

func TestParseMountsUnder(t *testing.T) {
	info := `22 1 8:1 / / rw - ext4 /dev/sda1 rw
42 22 8:1 /tmp/lce2e-1/docker/data /tmp/lce2e-1/docker/data rw shared:1 - ext4 /dev/sda1 rw
47 42 0:39 / /tmp/lce2e-1/docker/data/overlay2/abc/merged rw - overlay overlay rw,lowerdir=x
48 22 0:40 / /tmp/lce2e-10/other rw - tmpfs tmpfs rw
49 42 0:41 / /tmp/lce2e-1/with\040space rw - tmpfs tmpfs rw
`
	got, err := parseMountsUnder(bufio.NewScanner(strings.NewReader(info)), "/tmp/lce2e-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/tmp/lce2e-1/docker/data/overlay2/abc/merged", "/tmp/lce2e-1/docker/data", "/tmp/lce2e-1/with space"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("mounts = %q, want %q (deepest first, no sibling prefix)", got, want)
	}
}

func TestParseCtrImages(t *testing.T) {
	out := `REF                     TYPE                                                 DIGEST                                                                  SIZE    PLATFORMS   LABELS 
docker.io/lc/busybox:1  application/vnd.docker.distribution.manifest.v2+json sha256:0123456789012345678901234567890123456789012345678901234567890123 1.1 MiB linux/amd64 -      
`
	imgs := parseCtrImages([]byte(out))
	if len(imgs) != 1 || imgs[0].Name != "docker.io/lc/busybox:1" || imgs[0].Size != "1.1 MiB" || imgs[0].Platforms != "linux/amd64" ||
		imgs[0].Digest != "sha256:0123456789012345678901234567890123456789012345678901234567890123" {
		t.Errorf("parseCtrImages = %+v", imgs)
	}
}

func TestChainIDs(t *testing.T) {
	db := map[string]LayerDB{
		"sha256:a":  {ChainID: "sha256:a", DiffID: "sha256:d1"},
		"sha256:ab": {ChainID: "sha256:ab", DiffID: "sha256:d2", Parent: "sha256:a"},
		"sha256:x":  {ChainID: "sha256:x", DiffID: "sha256:d2"}, // same diff on another base
	}
	got, err := ChainIDs(db, []string{"sha256:d1", "sha256:d2"})
	if err != nil || strings.Join(got, " ") != "sha256:a sha256:ab" {
		t.Errorf("ChainIDs = %v, %v", got, err)
	}
	if _, err := ChainIDs(db, []string{"sha256:d1", "sha256:d3"}); err == nil {
		t.Error("ChainIDs found a layer the store does not have")
	}
}

func TestCopyConfinement(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Copy{Path: dir, dir: dir}
	for _, rel := range []string{"../x", "/etc/passwd", "link/f"} {
		if _, err := c.File(rel); err == nil {
			t.Errorf("Copy.File(%q) accepted a path outside the copy", rel)
		}
	}
	if err := c.Remove("."); err == nil {
		t.Error("Copy.Remove(\".\") removed the whole copy")
	}
	if err := c.FlipByte("f", -1); err != nil {
		t.Fatal(err)
	}
	if err := c.Truncate("f", -1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "ab" {
		t.Errorf("after FlipByte(-1) and Truncate(-1): %q", b)
	}
	if err := c.FlipByte("f", 5); err == nil {
		t.Error("FlipByte past the end succeeded")
	}
}

// TestProcessesUnderAndKill: a process whose working directory is below the
// directory is found and killed by pid; nothing else is.
func TestProcessesUnderAndKill(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sleep", "600")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	track(cmd.Process.Pid, true)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		track(cmd.Process.Pid, false)
	}()
	found := false
	for _, p := range ProcessesUnder(dir) {
		if p.Pid == cmd.Process.Pid {
			found = true
		} else {
			t.Errorf("unrelated process found under %s: %+v", dir, p)
		}
	}
	if !found {
		t.Fatalf("sleep (pid %d, cwd %s) not found", cmd.Process.Pid, dir)
	}
	if len(ProcessesUnder(t.TempDir())) != 0 {
		t.Error("processes found under a fresh empty directory")
	}
	killed, err := killUnder(dir, 10*time.Second)
	if err != nil || len(killed) != 1 {
		t.Fatalf("killUnder = %v, %v", killed, err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("sleep still running after killUnder")
	}
}
