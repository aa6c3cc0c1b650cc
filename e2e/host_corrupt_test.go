//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/e2e/harness"
	dockerstore "github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// hostTargets are the objects of one real data root the corruption table
// damages, read from the live store (never written) and the suite's ground
// truth.
type hostTargets struct {
	drv     string
	layers  []harness.LayerDB // the layers image's layers, base first
	busybox harness.LayerDB   // the busybox image's base layer
	imageID string            // the layers image's config digest
	ctrID   string            // the created container (its mount is not mounted)
}

// dir is the driver directory holding the files of layer i of the layers
// image, relative to the data root.
func (tg *hostTargets) dir(t *testing.T, i int) string {
	return hostLayerDir(t, tg.drv, tg.layers[i].CacheID)
}

// layerdb is layer i's layerdb directory, relative to the data root.
func (tg *hostTargets) layerdb(i int) string {
	return layerdbDir(tg.drv, tg.layers[i].ChainID)
}

func layerdbDir(drv, chainID string) string {
	return filepath.Join("image", drv, "layerdb", "sha256", strings.TrimPrefix(chainID, "sha256:"))
}

// cacheDir is the driver directory of a cache-id or mount-id, relative to
// the data root, as the audit names it in its subjects.
func cacheDir(drv, id string) string {
	switch drv {
	case "vfs":
		return filepath.Join("vfs", "dir", id)
	case "btrfs":
		return filepath.Join("btrfs", "subvolumes", id)
	}
	return filepath.Join(drv, id) // overlay2, fuse-overlayfs
}

// expect matches a finding: the check, and each non-empty subject field
// (entry compared without a leading "./" or a trailing "/", path as a
// substring, digest exactly).
type expect struct {
	check  report.Check
	entry  string
	path   string
	digest string
	// warning: the finding must be a warning (not an error).
	warning bool
}

func (e expect) String() string {
	return fmt.Sprintf("%s entry=%q path~%q digest=%s", e.check, e.entry, e.path, e.digest)
}

func (e expect) match(f report.Finding) bool {
	entry := strings.TrimSuffix(strings.TrimPrefix(f.Subject.Entry, "./"), "/")
	return f.Check == e.check && (e.entry == "" || entry == e.entry) &&
		(e.path == "" || strings.Contains(f.Subject.Path, e.path)) &&
		(e.digest == "" || f.Subject.Digest == e.digest) && (!e.warning || f.Severity == report.Warning)
}

// hostCase is one row of the issue #5 corruption table, applied to a copy of
// a real data root.
type hostCase struct {
	name    string
	drivers []string // nil: every driver
	// warning: the damage gives warnings only, so the run exits 0 (1 only
	// under --fail-on warning); otherwise it must exit 1.
	warning bool
	// apply damages the copy and returns the findings the audit must give.
	apply func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect
}

// hostMust ends the test on an error.
func hostMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rewriteTarSplitName renames the file record from of a tar-split.json.gz in
// the copy to to (only the record: the header bytes in the raw segments keep
// the old name, as in hoststore/docker's TestTarSplitNameClimbsOut).
func rewriteTarSplitName(t *testing.T, c *harness.Copy, rel, from, to string) {
	t.Helper()
	hostMust(t, c.Rewrite(rel, func(b []byte) []byte {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		hostMust(t, err)
		plain, err := io.ReadAll(zr)
		hostMust(t, err)
		old := `"name":"` + from + `"`
		if !bytes.Contains(plain, []byte(old)) {
			t.Fatalf("%s has no record named %q", rel, from)
		}
		plain = bytes.Replace(plain, []byte(old), []byte(`"name":"`+to+`"`), 1)
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		_, err = zw.Write(plain)
		hostMust(t, err)
		hostMust(t, zw.Close())
		return out.Bytes()
	}))
}

func hostCorruptionCases() []hostCase {
	return []hostCase{
		{name: "flipped byte in a file", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.FlipByte(filepath.Join(tg.dir(t, 0), "etc", "passwd"), 3))
			l := tg.layers[0]
			return []expect{{check: dockerstore.FileCRC, entry: "etc/passwd", digest: l.ChainID}, {check: dockerstore.HostLayerDiffID, digest: l.ChainID}}
		}},
		{name: "truncated file", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.Truncate(filepath.Join(tg.dir(t, 0), "bin", "busybox"), 50000))
			l := tg.layers[0]
			return []expect{{check: dockerstore.FileCRC, entry: "bin/busybox", digest: l.ChainID}, {check: dockerstore.LstatMismatch, entry: "bin/busybox", digest: l.ChainID}, {check: dockerstore.HostLayerDiffID, digest: l.ChainID}}
		}},
		{name: "deleted file", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.Remove(filepath.Join(tg.dir(t, 0), "etc", "group")))
			return []expect{{check: dockerstore.LayerMissingFile, entry: "etc/group", digest: tg.layers[0].ChainID}}
		}},
		{name: "added file", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.WriteFile(filepath.Join(tg.dir(t, 0), "etc", "EVIL"), []byte("evil\n")))
			return []expect{{check: dockerstore.ExtraFile, entry: "etc/EVIL", digest: tg.layers[0].ChainID}}
		}},
		{name: "added empty file", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			// The layer that replaced opq/: an empty file next to opq/new.
			hostMust(t, c.WriteFile(filepath.Join(tg.dir(t, 2), "opq", "EMPTY"), nil))
			return []expect{{check: dockerstore.ExtraFile, entry: "opq/EMPTY", digest: tg.layers[2].ChainID}}
		}},
		{name: "chmod", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			p, err := c.File(filepath.Join(tg.dir(t, 0), "data", "empty"))
			hostMust(t, err)
			hostMust(t, os.Chmod(p, 0o755|os.ModeSetuid))
			return []expect{{check: dockerstore.LstatMismatch, entry: "data/empty", digest: tg.layers[0].ChainID}}
		}},
		{name: "deleted layerdb directory", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.Remove(tg.layerdb(1)))
			l := tg.layers[1]
			return []expect{{check: dockerstore.ImageLayerMissing, digest: l.ChainID}, {check: dockerstore.OrphanDir, path: cacheDir(tg.drv, l.CacheID)}}
		}},
		{name: "edited parent", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			// Another existing layer, not one of the chain's (no cycle).
			hostMust(t, c.WriteFile(filepath.Join(tg.layerdb(1), "parent"), []byte(tg.busybox.ChainID)))
			return []expect{{check: dockerstore.LayerChainID, digest: tg.layers[1].ChainID}}
		}},
		{name: "edited diff", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.WriteFile(filepath.Join(tg.layerdb(1), "diff"), []byte(tg.layers[2].DiffID)))
			l := tg.layers[1]
			return []expect{{check: dockerstore.LayerChainID, digest: l.ChainID}, {check: dockerstore.HostLayerDiffID, digest: l.ChainID}}
		}},
		{name: "truncated tar-split.json.gz", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			rel := filepath.Join(tg.layerdb(0), "tar-split.json.gz")
			p, err := c.File(rel)
			hostMust(t, err)
			fi, err := os.Stat(p)
			hostMust(t, err)
			hostMust(t, c.Truncate(rel, fi.Size()/2))
			return []expect{{check: dockerstore.HostTarSplit, digest: tg.layers[0].ChainID, path: "tar-split.json.gz"}}
		}},
		{name: "swapped cache-ids", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			// The layers image's base (the imported rootfs) and its layer
			// replacing opq/: neither directory holds the other's tar.
			a, b := tg.layers[0], tg.layers[2]
			hostMust(t, c.WriteFile(filepath.Join(layerdbDir(tg.drv, a.ChainID), "cache-id"), []byte(b.CacheID)))
			hostMust(t, c.WriteFile(filepath.Join(layerdbDir(tg.drv, b.ChainID), "cache-id"), []byte(a.CacheID)))
			return []expect{{check: dockerstore.HostLayerDiffID, digest: a.ChainID}, {check: dockerstore.HostLayerDiffID, digest: b.ChainID}}
		}},
		{name: "swapped cache-ids, one directory holding the other's tar", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			// busybox's base layer is bin/busybox alone, and the rootfs's
			// directory holds the same bin/busybox: busybox's tar rebuilds
			// byte for byte from it (Docker's own diffID check passes), so
			// only the entries the tar lacks tell. The rootfs's tar cannot
			// be rebuilt from busybox's directory.
			a, b := tg.layers[0], tg.busybox
			hostMust(t, c.WriteFile(filepath.Join(layerdbDir(tg.drv, a.ChainID), "cache-id"), []byte(b.CacheID)))
			hostMust(t, c.WriteFile(filepath.Join(layerdbDir(tg.drv, b.ChainID), "cache-id"), []byte(a.CacheID)))
			return []expect{{check: dockerstore.HostLayerDiffID, digest: a.ChainID}, {check: dockerstore.ExtraFile, entry: "etc", digest: b.ChainID}}
		}},
		{name: "edited size", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.WriteFile(filepath.Join(tg.layerdb(2), "size"), []byte("12345")))
			return []expect{{check: dockerstore.HostLayerSize, digest: tg.layers[2].ChainID, path: "/size"}}
		}},
		// An orphan directory wastes space but breaks no image: a warning,
		// so the run exits 0 unless --fail-on warning.
		{name: "orphan driver directory", warning: true, apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			id := digest.FromString("orphan").Encoded()
			if _, err := c.File(cacheDir(tg.drv, id)); err != nil {
				t.Fatal(err)
			}
			root := hostLayerDir(t, tg.drv, id)
			hostMust(t, os.MkdirAll(filepath.Join(c.Path, root), 0o755))
			hostMust(t, c.WriteFile(filepath.Join(root, "leaked"), make([]byte, 4096)))
			return []expect{{check: dockerstore.OrphanDir, path: cacheDir(tg.drv, id), warning: true}}
		}},
		{name: "deleted l/ link", drivers: []string{"overlay2", "fuse-overlayfs"}, apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			p, err := c.File(filepath.Join(tg.drv, tg.layers[0].CacheID, "link"))
			hostMust(t, err)
			link, err := os.ReadFile(p)
			hostMust(t, err)
			rel := filepath.Join(tg.drv, "l", strings.TrimSpace(string(link)))
			hostMust(t, c.Remove(rel))
			return []expect{{check: dockerstore.OverlayLink, path: rel, digest: tg.layers[0].ChainID}}
		}},
		{name: "edited imagedb config", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.FlipByte(filepath.Join("image", tg.drv, "imagedb", "content", "sha256", strings.TrimPrefix(tg.imageID, "sha256:")), 0))
			return []expect{{check: dockerstore.ImagedbDigest, digest: tg.imageID}}
		}},
		{name: "repositories.json tag to a missing image", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			hostMust(t, c.Rewrite(filepath.Join("image", tg.drv, "repositories.json"), func(b []byte) []byte {
				var v struct {
					Repositories map[string]map[string]string
				}
				hostMust(t, json.Unmarshal(b, &v))
				v.Repositories["lc/ghost"] = map[string]string{"lc/ghost:1": digest.FromString("ghost").String()}
				out, err := json.Marshal(v)
				hostMust(t, err)
				return out
			}))
			return []expect{{check: dockerstore.RepositoriesDangling, entry: "lc/ghost:1"}}
		}},
		{name: "mount directory gone", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			// The created container: never started, so its directory is no
			// mount point of the live store.
			rel := filepath.Join("image", tg.drv, "layerdb", "mounts", tg.ctrID, "mount-id")
			p, err := c.File(rel)
			hostMust(t, err)
			id, err := os.ReadFile(p)
			hostMust(t, err)
			hostMust(t, c.Remove(cacheDir(tg.drv, strings.TrimSpace(string(id)))))
			return []expect{{check: dockerstore.MountDir, path: "layerdb/mounts/" + tg.ctrID + "/mount-id"}}
		}},
		{name: "tar-split name climbing out", apply: func(t *testing.T, c *harness.Copy, tg *hostTargets) []expect {
			const evil = "../../escape"
			dir := tg.dir(t, 0)
			// The file the name reaches, with the content of the renamed
			// entry: reading it would rebuild the right bytes.
			content, err := os.ReadFile(filepath.Join(c.Path, dir, "etc", "passwd"))
			hostMust(t, err)
			hostMust(t, c.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(dir)), "escape"), content))
			if _, err := os.Stat(filepath.Join(c.Path, dir, evil)); err != nil {
				t.Fatalf("test setup: %s from %s does not reach the planted file: %v", evil, dir, err)
			}
			rewriteTarSplitName(t, c, filepath.Join(tg.layerdb(0), "tar-split.json.gz"), "etc/passwd", evil)
			l := tg.layers[0]
			return []expect{{check: dockerstore.UnsafePath, entry: evil, digest: l.ChainID}, {check: dockerstore.HostLayerDiffID, digest: l.ChainID}}
		}},
	}
}

// TestHostCorruptionTable is issue #5's end-to-end corruption table: each
// case damages its own copy of a real dockerd data root (overlay2 and vfs,
// and the optional btrfs and fuse-overlayfs where they run), and
// `layercheck host` on that copy exits 1 with the finding naming the damaged
// object (file and layer chainID, cache-id directory, image ID, mount). An
// untouched copy is clean and has none of the expected findings, so each is
// the corruption's own. The hermetic version of each case is in
// hoststore/docker's TestCorruptions.
func TestHostCorruptionTable(t *testing.T) {
	s := need(t)
	for _, drv := range hostDrivers(t, s) {
		t.Run(drv, func(t *testing.T) {
			set := s.Sets[drv]
			tg := hostCorruptTargets(t, set)
			// The untouched copy is clean and has none of the findings a
			// case expects: each one found is its own corruption's.
			base := layercheck(t, s, "host", "--root", s.Env.Corrupt(t, set.Docker.DataRoot).Path, "-o", "json")
			requireClean(t, "layercheck host on an untouched copy of the "+drv+" root", base)
			for _, hc := range hostCorruptionCases() {
				if hc.drivers != nil && !slices.Contains(hc.drivers, drv) {
					continue
				}
				t.Run(strings.ReplaceAll(hc.name, " ", "_"), func(t *testing.T) {
					t.Parallel()
					c := s.Env.Corrupt(t, set.Docker.DataRoot)
					wants := hc.apply(t, c, tg)
					run := layercheck(t, s, "host", "--root", c.Path, "-o", "json")
					want := 1
					if hc.warning {
						want = 0
					}
					if run.Code != want {
						t.Errorf("exit %d, want %d; stderr: %.2000s", run.Code, want, run.Stderr)
					}
					if run.Report == nil {
						t.Fatal("no JSON report")
					}
					for _, w := range wants {
						for _, f := range base.Report.Findings {
							if w.match(f) {
								t.Errorf("the untouched copy already has a finding %s: %s %s", w, f.Subject, f.Message)
							}
						}
						found := false
						for _, f := range run.Report.Findings {
							if w.match(f) {
								found = true
								break
							}
						}
						if !found {
							t.Errorf("no finding %s; got:\n%s", w, hostFindingsText(run.Report))
						}
					}
				})
			}
		})
	}
}

func hostFindingsText(r *report.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  %s %s [%s] entry=%q path=%q digest=%s: %s\n", f.Severity, f.Check, f.Subject, f.Subject.Entry, f.Subject.Path, f.Subject.Digest, f.Message)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM [%s] %s\n", p.Subject, p.Message)
	}
	return b.String()
}

// hostCorruptTargets picks the table's targets in the live data root of set
// from the suite's ground truth.
func hostCorruptTargets(t *testing.T, set *harness.Set) *hostTargets {
	t.Helper()
	db, err := set.Docker.LayerDB()
	if err != nil {
		t.Fatal(err)
	}
	tg := &hostTargets{drv: set.Docker.Driver}
	img := set.Image("layers")
	if img == nil || len(img.ChainIDs) < 3 {
		t.Fatalf("the %s set has no layers image of at least 3 layers", tg.drv)
	}
	tg.imageID = img.Inspect.ID
	for _, id := range img.ChainIDs {
		l, ok := db[id]
		if !ok || l.CacheID == "" {
			t.Fatalf("layer %s of %s is not in the layer store", id, img.Ref)
		}
		tg.layers = append(tg.layers, l)
	}
	bb := set.Image("busybox")
	if bb == nil || len(bb.ChainIDs) == 0 {
		t.Fatalf("the %s set has no busybox image", tg.drv)
	}
	tg.busybox = db[bb.ChainIDs[0]]
	if tg.busybox.ChainID == tg.layers[0].ChainID {
		t.Fatal("busybox and layers share their base layer: the swapped cache-ids case would swap nothing")
	}
	ci, ok := set.Containers["created"]
	if !ok {
		t.Fatalf("the %s set has no created container", tg.drv)
	}
	tg.ctrID = ci.ID
	return tg
}
