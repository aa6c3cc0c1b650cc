//go:build e2e

package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/e2e/harness"
	"github.com/layercheck/layercheck/report"
)

// hostDrivers are the drivers whose data roots the host tests audit: the
// full-suite ones and the optional ones running here (btrfs, fuse-overlayfs).
// It logs why an optional driver is not among them.
func hostDrivers(t *testing.T, s *Suite) []string {
	t.Helper()
	for _, drv := range harness.OptionalDrivers {
		if why, ok := s.DriversSkipped[drv]; ok {
			t.Logf("storage driver %s does not run on this machine: %s", drv, why)
		}
	}
	return append(append([]string(nil), s.Drivers...), s.HostDrivers...)
}

// hostLayerDir is where a driver keeps the files of the layer with cacheID,
// relative to the data root (FORMATS.md): the layer's own diff for the
// overlay drivers, the whole root filesystem up to it for vfs and btrfs.
func hostLayerDir(t *testing.T, driver, cacheID string) string {
	t.Helper()
	switch driver {
	case "overlay2", "fuse-overlayfs":
		return filepath.Join(driver, cacheID, "diff")
	case "vfs":
		return filepath.Join("vfs", "dir", cacheID)
	case "btrfs":
		return filepath.Join("btrfs", "subvolumes", cacheID)
	}
	t.Fatalf("no layer directory known for storage driver %s", driver)
	return ""
}

// largestFile is the largest regular file under root/dir, as a path
// relative to root, and its size: its middle is file content, so a byte
// flipped there changes the file's CRC-64 and the layer's diffID.
func largestFile(t *testing.T, root, dir string) (string, int64) {
	t.Helper()
	var biggest string
	var size int64
	filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() > size {
				biggest, size = p, fi.Size()
			}
		}
		return nil
	})
	if biggest == "" {
		t.Fatalf("no regular file in %s", filepath.Join(root, dir))
	}
	rel, err := filepath.Rel(root, biggest)
	if err != nil {
		t.Fatal(err)
	}
	return rel, size
}

// TestHostLive audits each running dockerd's data root (overlay2, vfs and
// the optional btrfs and fuse-overlayfs) without stopping it: no error
// finding, and every image's diffIDs and chainIDs equal what the daemon and
// its layer store say.
func TestHostLive(t *testing.T) {
	s := need(t)
	for _, drv := range hostDrivers(t, s) {
		set := s.Sets[drv]
		t.Run(drv, func(t *testing.T) {
			run := layercheck(t, s, "host", "--root", set.Docker.DataRoot, "-o", "json")
			requireClean(t, "layercheck host "+drv, run)
			for _, f := range run.Report.Findings {
				t.Logf("%s finding on a clean store: %s %s %s: %s (expected %q, actual %q)", drv, f.Severity, f.Check, f.Subject.String(), f.Message, f.Expected, f.Actual)
			}
			for _, img := range set.Images {
				var found bool
				for _, ri := range run.Report.Images {
					if ri.ConfigDigest != img.Inspect.ID {
						continue
					}
					found = true
					if len(ri.Layers) != len(img.Inspect.RootFS.Layers) {
						t.Errorf("%s: %d layers, the daemon has %d", img.Name, len(ri.Layers), len(img.Inspect.RootFS.Layers))
						break
					}
					for i, l := range ri.Layers {
						if l.DiffID != img.Inspect.RootFS.Layers[i] || l.ChainID != img.ChainIDs[i] {
							t.Errorf("%s layer %d: diffID %s chainID %s, the daemon's %s %s", img.Name, i, l.DiffID, l.ChainID, img.Inspect.RootFS.Layers[i], img.ChainIDs[i])
						}
					}
				}
				if !found {
					t.Errorf("image %s (%s) is not in the host report", img.Name, img.Inspect.ID)
				}
			}
		})
	}
}

// TestHostCorruptedCopy flips one byte of a file inside the base layer of a
// copy of each data root: the audit names the file. The copy of a btrfs root
// is a plain directory tree (harness.CopyStore copies the subvolumes' files),
// which layercheck reads like the live store. The live stores stay clean
// (TestHostLive).
func TestHostCorruptedCopy(t *testing.T) {
	s := need(t)
	for _, drv := range hostDrivers(t, s) {
		t.Run(drv, func(t *testing.T) {
			hostCorruptedCopy(t, s, drv)
		})
	}
}

func hostCorruptedCopy(t *testing.T, s *Suite, drv string) {
	set := s.Sets[drv]
	img := set.Image("layers")
	c := s.Env.Corrupt(t, set.Docker.DataRoot)
	cacheID, err := os.ReadFile(filepath.Join(c.Path, "image", drv, "layerdb", "sha256", strings.TrimPrefix(img.ChainIDs[0], "sha256:"), "cache-id"))
	if err != nil {
		t.Fatal(err)
	}
	// The copy as it is: a copied btrfs root is plain directories, not
	// subvolumes, and must read like the live store.
	requireClean(t, "layercheck host on an untouched copy of the "+drv+" root", layercheck(t, s, "host", "--root", c.Path, "-o", "json"))
	dir := hostLayerDir(t, drv, strings.TrimSpace(string(cacheID)))
	// The largest regular file of the base layer (busybox): its middle is content.
	rel, size := largestFile(t, c.Path, dir)
	if err := c.FlipByte(rel, size/2); err != nil {
		t.Fatal(err)
	}
	run := layercheck(t, s, "host", "--root", c.Path, "-o", "json")
	if run.Code != 1 {
		t.Fatalf("exit %d on a damaged copy, want 1; stderr: %s", run.Code, run.Stderr)
	}
	named := false
	for _, f := range run.Report.Findings {
		if f.Check == "host-file-crc" && strings.HasSuffix(rel, strings.TrimPrefix(f.Subject.Entry+f.Subject.Path, "./")) {
			named = true
		}
		if f.Check == "host-file-crc" && (strings.Contains(f.Subject.Path, filepath.Base(rel)) || strings.Contains(f.Subject.Entry, filepath.Base(rel))) {
			named = true
		}
	}
	if !named {
		t.Errorf("no host-file-crc finding naming %s: %+v", rel, run.Report.Findings)
	}
}

// TestHostWhiteoutCopy undoes the whiteout of etc/deleteme in the crafted
// image's top layer, in a copy of each data root, the way each driver stores
// it: overlay2's 0/0 character device and fuse-overlayfs's kept .wh.deleteme
// file are removed; on vfs and btrfs, whose layer directories hold the whole
// root filesystem with the file deleted, etc/deleteme is put back. The audit
// must report an error finding naming deleteme.
func TestHostWhiteoutCopy(t *testing.T) {
	s := need(t)
	for _, drv := range hostDrivers(t, s) {
		t.Run(drv, func(t *testing.T) {
			set := s.Sets[drv]
			img := set.Image("crafted")
			c := s.Env.Corrupt(t, set.Docker.DataRoot)
			var edited string
			for i := len(img.ChainIDs) - 1; i >= 0 && edited == ""; i-- {
				b, err := os.ReadFile(filepath.Join(c.Path, "image", drv, "layerdb", "sha256", strings.TrimPrefix(img.ChainIDs[i], "sha256:"), "cache-id"))
				if err != nil {
					t.Fatal(err)
				}
				dir := hostLayerDir(t, drv, strings.TrimSpace(string(b)))
				switch drv {
				case "overlay2":
					if fi, err := os.Lstat(filepath.Join(c.Path, dir, "etc", "deleteme")); err == nil && fi.Mode()&fs.ModeCharDevice != 0 {
						edited = filepath.Join(dir, "etc", "deleteme")
						if err := c.Remove(edited); err != nil {
							t.Fatal(err)
						}
					}
				case "fuse-overlayfs":
					// fuse-overlayfs unpacks layers in the AUFS format: the
					// whiteout stays a regular .wh. file in diff/.
					if fi, err := os.Lstat(filepath.Join(c.Path, dir, "etc", ".wh.deleteme")); err == nil && fi.Mode().IsRegular() {
						edited = filepath.Join(dir, "etc", ".wh.deleteme")
						if err := c.Remove(edited); err != nil {
							t.Fatal(err)
						}
					}
				default:
					// The top layer is the first, from the top, whose root
					// lacks etc/deleteme while its parent's has it.
					if i == 0 {
						break
					}
					if _, err := os.Lstat(filepath.Join(c.Path, dir, "etc", "deleteme")); !errors.Is(err, fs.ErrNotExist) {
						continue
					}
					edited = filepath.Join(dir, "etc", "deleteme")
					if err := c.WriteFile(edited, []byte("removed by a later layer\n")); err != nil {
						t.Fatal(err)
					}
				}
			}
			if edited == "" {
				t.Fatalf("no layer of %s holds the whiteout of etc/deleteme the way %s stores it", img.Ref, drv)
			}
			run := layercheck(t, s, "host", "--root", c.Path, "-o", "json")
			if run.Code != 1 {
				t.Fatalf("exit %d after editing %s, want 1; stderr: %s", run.Code, edited, run.Stderr)
			}
			var named []string
			for _, f := range run.Report.Findings {
				if f.Severity == report.Error && strings.Contains(f.Subject.Entry+" "+f.Subject.Path, "deleteme") {
					named = append(named, string(f.Check))
				}
			}
			if len(named) == 0 {
				t.Errorf("no error finding names deleteme after editing %s: %+v", edited, run.Report.Findings)
			} else {
				t.Logf("%s: %s → %v", drv, edited, named)
			}
		})
	}
}

// TestHostAnalyzeOptionalDrivers: on the optional drivers' data roots
// (btrfs, fuse-overlayfs), `layercheck host --analyze` gives every image of
// the set the analysis `layercheck tar --analyze` gives its docker save, as
// TestAnalysisHostEqualsSave checks for overlay2 and vfs: the rebuilt layer
// streams carry the same entries whatever the driver stored on disk.
func TestHostAnalyzeOptionalDrivers(t *testing.T) {
	s := need(t)
	if len(s.HostDrivers) == 0 {
		hostDrivers(t, s) // logs why
		t.Skip("no optional storage driver runs on this machine")
	}
	for _, drv := range s.HostDrivers {
		set := s.Sets[drv]
		t.Run(drv, func(t *testing.T) {
			args := []string{"host", "--root", set.Docker.DataRoot, "--analyze", "-o", "json"}
			for _, img := range set.Images {
				args = append(args, img.Ref)
			}
			host := layercheck(t, s, args...)
			requireClean(t, "layercheck host --analyze "+drv, host)
			for _, img := range set.Images {
				hi := findImage(host.Report, img.Inspect.ID)
				if hi == nil || hi.Analysis == nil {
					t.Errorf("%s: the host report has no analysis of %s (%s)", drv, img.Name, img.Inspect.ID)
					continue
				}
				tr := layercheck(t, s, "tar", "--analyze", "-o", "json", img.Save)
				requireClean(t, "layercheck tar --analyze "+img.Save, tr)
				ti := findImage(tr.Report, img.Inspect.ID)
				if ti == nil || ti.Analysis == nil {
					t.Errorf("%s: the report of %s's docker save has no analysis", drv, img.Name)
					continue
				}
				if !equalAnalysis(hi.Analysis, ti.Analysis) {
					t.Errorf("%s %s: host analysis differs from the docker save's\nhost: %s\nsave: %s", drv, img.Name, analysisJSON(hi.Analysis), analysisJSON(ti.Analysis))
				}
			}
		})
	}
}
