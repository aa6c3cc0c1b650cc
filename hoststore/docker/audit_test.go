package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store/storetest"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func runAudit(t testing.TB, root string, opts Options) *report.Report {
	t.Helper()
	st, err := Open(root, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", root, err)
	}
	b := &report.Builder{}
	if err := st.Audit(context.Background(), b); err != nil {
		t.Fatalf("Audit = %v", err)
	}
	return b.Finish("host", root, "test")
}

// want matches a finding: the check, and each non-empty subject field.
type want struct {
	check  report.Check
	entry  string
	path   string // substring of Subject.Path
	digest string
	image  string
}

func (w want) String() string {
	return fmt.Sprintf("%s entry=%q path~%q digest=%s image=%q", w.check, w.entry, w.path, report.Short(w.digest), w.image)
}

func (w want) match(f report.Finding) bool {
	return f.Check == w.check && (w.entry == "" || f.Subject.Entry == w.entry) &&
		(w.path == "" || strings.Contains(f.Subject.Path, w.path)) &&
		(w.digest == "" || f.Subject.Digest == w.digest) && (w.image == "" || f.Subject.Image == w.image)
}

func findingsText(r *report.Report) string { return storetest.ReportText(r) }

func requireFinding(t *testing.T, r *report.Report, w want) {
	t.Helper()
	for _, f := range r.Findings {
		if w.match(f) {
			return
		}
	}
	t.Errorf("no finding %s; got:\n%s", w, findingsText(r))
}

// requireClean asserts no error or warning finding and no problem.
func requireClean(t *testing.T, r *report.Report) {
	t.Helper()
	bad := false
	for _, f := range r.Findings {
		if f.Severity >= report.Warning {
			bad = true
		}
	}
	if bad || len(r.Problems) > 0 {
		t.Fatalf("clean store gave findings:\n%s", findingsText(r))
	}
}

// drivers are the graph drivers dockertest lays out: overlay2 and vfs, and
// fuse-overlayfs (overlay2's layout, whiteouts kept as .wh. files) and btrfs
// (vfs's layout in subvolumes), as the e2e suite's real daemons write them.
func drivers(t *testing.T) []string {
	return []string{"overlay2", "fuse-overlayfs", "vfs", "btrfs"}
}

func TestCleanStore(t *testing.T) {
	for _, drv := range drivers(t) {
		t.Run(drv, func(t *testing.T) {
			s := dockertest.Build(t, dockertest.DefaultSpec(drv, dockertest.IsRoot()))
			r := runAudit(t, s.Root, Options{Jobs: 2})
			requireClean(t, r)
			if len(r.Images) != 3 {
				t.Fatalf("images = %d, want 3", len(r.Images))
			}
			for _, img := range r.Images {
				var fi *dockertest.Image
				for _, x := range s.Images {
					if x.Refs[0] == img.Name {
						fi = x
					}
				}
				if fi == nil {
					t.Fatalf("unexpected image %q", img.Name)
				}
				if img.ConfigDigest != fi.ID.String() || len(img.Layers) != len(fi.Layers) {
					t.Fatalf("image %s = %+v, want ID %s with %d layers", img.Name, img, fi.ID, len(fi.Layers))
				}
				if !equalStrings(img.Tags, fi.Refs) {
					t.Errorf("image %s tags = %v, want %v", img.Name, img.Tags, fi.Refs)
				}
				for i, l := range img.Layers {
					fl := fi.Layers[i]
					if l.DiffID != fl.DiffID.String() || l.ChainID != fl.ChainID.String() || l.TarSize != int64(len(fl.Tar)) || l.Entries == 0 || l.Status != report.StatusOK {
						t.Errorf("image %s layer %d = %+v, want diffID %s chainID %s tar %d bytes", img.Name, i, l, fl.DiffID, fl.ChainID, len(fl.Tar))
					}
				}
			}
			// BuildKit's directory is recognised, not an orphan.
			requireFinding(t, r, want{check: BuildKit})
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAuditIsReadOnly hashes the whole tree (contents, modes, owners,
// mtimes, xattrs, devices) before and after an audit, on a clean store and
// on a damaged one, and requires them equal.
func TestAuditIsReadOnly(t *testing.T) {
	for _, drv := range drivers(t) {
		t.Run(drv, func(t *testing.T) {
			s := dockertest.Build(t, dockertest.DefaultSpec(drv, dockertest.IsRoot()))
			// Damage it too, so the error paths run: a changed file, an
			// extra file, a truncated tar-split, a leftover.
			l0 := s.Layers["L0"]
			flipByte(t, s.Path(l0.Dir+"/etc/hello"))
			dockertest.WriteFile(t, s.Path(l0.Dir+"/etc/EVIL"), []byte("x"), 0o644)
			truncate(t, s.Path(s.Layers["L2"].LayerDB+"/tar-split.json.gz"), 40)
			must(t, os.MkdirAll(s.Path(s.ImageRel()+"/layerdb/tmp/write-set-123"), 0o700))
			before := dockertest.TreeHash(t, s.Root)
			r := runAudit(t, s.Root, Options{Jobs: 2})
			if r.Summary.Errors == 0 {
				t.Fatalf("damaged store gave no errors")
			}
			after := dockertest.TreeHash(t, s.Root)
			if strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Fatalf("the audit changed the data root:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
			}
		})
	}
}

func flipByte(t testing.TB, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	b[0] ^= 0xff
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt(b[:1], 0)
	must(t, err)
	must(t, f.Close())
}

func truncate(t testing.TB, p string, n int64) {
	t.Helper()
	must(t, os.Truncate(p, n))
}

func editFile(t testing.TB, p string, data string) {
	t.Helper()
	fi, err := os.Stat(p)
	must(t, err)
	must(t, os.WriteFile(p, []byte(data), fi.Mode()))
}

// corruption is one row of the corruption table.
type corruption struct {
	name    string
	drivers []string // nil: every driver
	root    bool     // needs root (whiteout devices, trusted xattrs)
	apply   func(t *testing.T, s *dockertest.Store)
	want    func(s *dockertest.Store) []want
}

func corruptions() []corruption {
	return []corruption{
		{name: "flipped byte in a file", apply: func(t *testing.T, s *dockertest.Store) {
			flipByte(t, s.Path(s.Layers["L0"].Dir+"/etc/hello"))
		}, want: func(s *dockertest.Store) []want {
			l := s.Layers["L0"]
			return []want{{check: FileCRC, entry: "etc/hello", digest: l.ChainID.String(), path: l.Dir}, {check: HostLayerDiffID, digest: l.ChainID.String()}}
		}},
		{name: "truncated file", apply: func(t *testing.T, s *dockertest.Store) {
			truncate(t, s.Path(s.Layers["L0"].Dir+"/bin/tool"), 50000)
		}, want: func(s *dockertest.Store) []want {
			l := s.Layers["L0"]
			return []want{{check: FileCRC, entry: "bin/tool", digest: l.ChainID.String()}, {check: LstatMismatch, entry: "bin/tool", digest: l.ChainID.String()}, {check: HostLayerDiffID, digest: l.ChainID.String()}}
		}},
		{name: "deleted file", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Remove(s.Path(s.Layers["L0"].Dir+"/etc/hello")))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerMissingFile, entry: "etc/hello", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "added file", apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.Layers["L0"].Dir+"/etc/EVIL"), []byte("evil\n"), 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: ExtraFile, entry: "etc/EVIL", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "added empty file", apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.Layers["L2"].Dir+"/usr/share/EMPTY"), nil, 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: ExtraFile, entry: "usr/share/EMPTY", digest: s.Layers["L2"].ChainID.String()}}
		}},
		{name: "chmod", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Chmod(s.Path(s.Layers["L0"].Dir+"/etc/empty"), 0o4755|os.ModeSetuid))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/empty", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "deleted layerdb directory", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.RemoveAll(s.Path(s.Layers["L1"].LayerDB)))
		}, want: func(s *dockertest.Store) []want {
			l := s.Layers["L1"]
			return []want{
				{check: ImageLayerMissing, image: "example.com/app:1", digest: l.ChainID.String()},
				{check: OrphanDir, path: s.CacheDir(l.CacheID)},
			}
		}},
		{name: "edited parent", apply: func(t *testing.T, s *dockertest.Store) {
			editFile(t, s.Path(s.Layers["L1"].LayerDB+"/parent"), s.Layers["L2"].ChainID.String())
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerChainID, digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "edited diff", apply: func(t *testing.T, s *dockertest.Store) {
			editFile(t, s.Path(s.Layers["L0"].LayerDB+"/diff"), s.Layers["L2"].DiffID.String())
		}, want: func(s *dockertest.Store) []want {
			l := s.Layers["L0"]
			return []want{{check: LayerChainID, digest: l.ChainID.String()}, {check: HostLayerDiffID, digest: l.ChainID.String()}}
		}},
		{name: "truncated tar-split.json.gz", apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L0"].LayerDB + "/tar-split.json.gz")
			fi, err := os.Stat(p)
			must(t, err)
			truncate(t, p, fi.Size()/2)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: HostTarSplit, digest: s.Layers["L0"].ChainID.String(), path: "tar-split.json.gz"}}
		}},
		{name: "swapped cache-ids", apply: func(t *testing.T, s *dockertest.Store) {
			a, b := s.Layers["L0"], s.Layers["L2"]
			editFile(t, s.Path(a.LayerDB+"/cache-id"), b.CacheID)
			editFile(t, s.Path(b.LayerDB+"/cache-id"), a.CacheID)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: HostLayerDiffID, digest: s.Layers["L0"].ChainID.String()}, {check: HostLayerDiffID, digest: s.Layers["L2"].ChainID.String()}}
		}},
		{name: "edited size", apply: func(t *testing.T, s *dockertest.Store) {
			editFile(t, s.Path(s.Layers["L2"].LayerDB+"/size"), "12345")
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: HostLayerSize, digest: s.Layers["L2"].ChainID.String(), path: "/size"}}
		}},
		{name: "orphan driver directory", apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.LayerRoot(dockertest.HexID("orphan"))+"/leaked"), make([]byte, 4096), 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: OrphanDir, path: s.CacheDir(dockertest.HexID("orphan"))}}
		}},
		{name: "deleted l/ link", drivers: []string{"overlay2"}, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Remove(s.Path("overlay2/l/"+s.Layers["L0"].Link)))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: OverlayLink, path: "overlay2/l/" + s.Layers["L0"].Link, digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "edited lower", drivers: []string{"overlay2"}, apply: func(t *testing.T, s *dockertest.Store) {
			editFile(t, s.Path("overlay2/"+s.Layers["L1"].CacheID+"/lower"), "l/"+s.Layers["L2"].Link)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: OverlayLower, digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "edited imagedb config", apply: func(t *testing.T, s *dockertest.Store) {
			flipByte(t, s.Path(s.ImageRel()+"/imagedb/content/sha256/"+s.Images["base"].ID.Encoded()))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: ImagedbDigest, digest: s.Images["base"].ID.String()}}
		}},
		{name: "repositories.json tag to a missing image", apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.ImageRel() + "/repositories.json")
			b, err := os.ReadFile(p)
			must(t, err)
			ghost := `"example.com/ghost":{"example.com/ghost:1":"sha256:` + dockertest.HexID("ghost") + `"},`
			editFile(t, p, strings.Replace(string(b), `{"Repositories":{`, `{"Repositories":{`+ghost, 1))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: RepositoriesDangling, entry: "example.com/ghost:1"}}
		}},
		{name: "mount directory gone", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.RemoveAll(s.Path(s.CacheDir(s.MountID))))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: MountDir, path: "layerdb/mounts/" + s.CtrID + "/mount-id"}}
		}},
		{name: "symlink leading out of the layer", apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L0"].Dir + "/etc/hello")
			must(t, os.Remove(p))
			must(t, os.Symlink(sentinel(t, s), p))
		}, want: func(s *dockertest.Store) []want {
			l := s.Layers["L0"]
			return []want{{check: UnsafePath, entry: "etc/hello", digest: l.ChainID.String()}, {check: LstatMismatch, entry: "etc/hello", digest: l.ChainID.String()}}
		}},
		{name: "changed xattr", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, unix.Lsetxattr(s.Path(s.Layers["L0"].Dir+"/etc/xattr.txt"), "user.spec", []byte("v2"), 0))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/xattr.txt", digest: s.Layers["L0"].ChainID.String()}}
		}},
		// A regular file's xattrs are read through the descriptor the
		// rebuild opens (a file with data) or by path (an empty file).
		{name: "xattr added to a file", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, unix.Lsetxattr(s.Path(s.Layers["L0"].Dir+"/etc/hello"), "user.added", []byte("1"), 0))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/hello", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "xattr added to an empty file", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, unix.Lsetxattr(s.Path(s.Layers["L0"].Dir+"/etc/empty"), "user.added", []byte("1"), 0))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/empty", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "xattr removed", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, unix.Lremovexattr(s.Path(s.Layers["L0"].Dir+"/etc/xattr.txt"), "user.spec"))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/xattr.txt", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "changed symlink target", apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L0"].Dir + "/etc/hello.link")
			must(t, os.Remove(p))
			must(t, os.Symlink("empty", p))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/hello.link", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "hardlink replaced by a copy", apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L0"].Dir + "/etc/hard")
			must(t, os.Remove(p))
			dockertest.WriteFile(t, p, []byte("hello world\n"), 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/hard", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "leftovers", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.MkdirAll(s.Path(s.ImageRel()+"/layerdb/tmp/write-set-123"), 0o700))
			dockertest.WriteFile(t, s.Path(s.ImageRel()+"/imagedb/content/sha256/.tmp-abc"), []byte("{"), 0o600)
			must(t, os.Rename(s.Path(s.Layers["L2"].LayerDB), s.Path(s.Layers["L2"].LayerDB+"-"+dockertest.HexID("r")+"-removing")))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: Leftover, path: "layerdb/tmp/write-set-123"}, {check: Leftover, path: ".tmp-abc"}, {check: Leftover, path: "-removing"}}
		}},
		{name: "malformed distribution entry", apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.ImageRel()+"/distribution/diffid-by-digest/sha256/"+dockertest.HexID("blob")), []byte("sha256:abc\n"), 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: HostDistribution, path: dockertest.HexID("blob")}}
		}},
		{name: "file replaced by a FIFO", apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L0"].Dir + "/etc/hello")
			must(t, os.Remove(p))
			must(t, unix.Mkfifo(p, 0o644))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/hello", digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "config with a bad diff_id", apply: func(t *testing.T, s *dockertest.Store) {
			cfg := []byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:abc"]}}`)
			id := digest.FromBytes(cfg)
			dockertest.WriteFile(t, s.Path(s.ImageRel()+"/imagedb/content/sha256/"+id.Encoded()), cfg, 0o600)
			dockertest.WriteFile(t, s.Path(s.ImageRel()+"/imagedb/content/sha256/"+digest.FromString("x").Encoded()), []byte("not json"), 0o600)
		}, want: func(s *dockertest.Store) []want {
			cfg := digest.FromBytes([]byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:abc"]}}`))
			return []want{{check: ImagedbConfig, digest: cfg.String()}, {check: ImagedbDigest, digest: digest.FromString("x").String()}}
		}},
		{name: "size with a newline", apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L2"].LayerDB + "/size")
			b, err := os.ReadFile(p)
			must(t, err)
			editFile(t, p, string(b)+"\n")
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerdbFile, path: "/size", digest: s.Layers["L2"].ChainID.String()}}
		}},
		{name: "cache-id leading out", apply: func(t *testing.T, s *dockertest.Store) {
			editFile(t, s.Path(s.Layers["L2"].LayerDB+"/cache-id"), "../../../../etc")
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerdbFile, path: "/cache-id", digest: s.Layers["L2"].ChainID.String()}}
		}},
		{name: "parent cycle", apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.Layers["L0"].LayerDB+"/parent"), []byte(s.Layers["L1"].ChainID.String()), 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerParent, digest: s.Layers["L0"].ChainID.String()}, {check: LayerChainID, digest: s.Layers["L0"].ChainID.String()}}
		}},
		{name: "container config gone", apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Remove(s.Path("containers/"+s.CtrID+"/config.v2.json")))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: Container, path: "containers/" + s.CtrID}}
		}},
		{name: "deleted whiteout device", drivers: []string{"overlay2"}, root: true, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Remove(s.Path(s.Layers["L1"].Dir+"/etc/empty")))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: Whiteout, entry: "etc/.wh.empty", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "removed opaque marker", drivers: []string{"overlay2"}, root: true, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, unix.Removexattr(s.Path(s.Layers["L1"].Dir+"/opt/opq"), "trusted.overlay.opaque"))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: Whiteout, entry: "opt/opq/.wh..wh..opq", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "added whiteout device", drivers: []string{"overlay2"}, root: true, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, unix.Mknod(s.Path(s.Layers["L1"].Dir+"/etc/hidden"), unix.S_IFCHR, 0))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: Whiteout, entry: "etc/hidden", digest: s.Layers["L1"].ChainID.String()}}
		}},
		// fuse-overlayfs keeps a layer's whiteouts as the tar's own .wh.
		// regular files in diff/ (AUFS format).
		{name: "deleted .wh. file", drivers: []string{"fuse-overlayfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Remove(s.Path(s.Layers["L1"].Dir+"/etc/.wh.empty")))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerMissingFile, entry: "etc/.wh.empty", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "deleted .wh..wh..opq file", drivers: []string{"fuse-overlayfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Remove(s.Path(s.Layers["L1"].Dir+"/opt/opq/.wh..wh..opq")))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerMissingFile, entry: "opt/opq/.wh..wh..opq", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "added .wh. file", drivers: []string{"fuse-overlayfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.Layers["L1"].Dir+"/etc/.wh.hello"), nil, 0o600)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: ExtraFile, entry: "etc/.wh.hello", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "overlay2 whiteout device in an image layer", drivers: []string{"fuse-overlayfs"}, root: true, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, unix.Mknod(s.Path(s.Layers["L1"].Dir+"/etc/hidden"), unix.S_IFCHR, 0))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: ExtraFile, entry: "etc/hidden", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "whited-out file back", drivers: []string{"vfs", "btrfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.Layers["L1"].Dir+"/var/gone.txt"), []byte("back\n"), 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: Whiteout, entry: "var/gone.txt", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "inherited file deleted", drivers: []string{"vfs", "btrfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Remove(s.Path(s.Layers["L1"].Dir+"/bin/tool")))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LayerMissingFile, entry: "bin/tool", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "inherited file's bytes changed", drivers: []string{"vfs", "btrfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			flipByte(t, s.Path(s.Layers["L1"].Dir+"/bin/tool"))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: FileCRC, entry: "bin/tool", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "inherited file chmod", drivers: []string{"vfs", "btrfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			must(t, os.Chmod(s.Path(s.Layers["L1"].Dir+"/etc/suid"), 0o755))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/suid", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "inherited file replaced by a symlink", drivers: []string{"vfs", "btrfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L1"].Dir + "/bin/tool")
			must(t, os.Remove(p))
			must(t, os.Symlink("/bin/sh", p))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "bin/tool", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "inherited symlink retargeted", drivers: []string{"vfs", "btrfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			p := s.Path(s.Layers["L1"].Dir + "/etc/hello.link")
			must(t, os.Remove(p))
			must(t, os.Symlink("new.txt", p))
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: LstatMismatch, entry: "etc/hello.link", digest: s.Layers["L1"].ChainID.String()}}
		}},
		{name: "opaque directory not applied", drivers: []string{"vfs", "btrfs"}, apply: func(t *testing.T, s *dockertest.Store) {
			dockertest.WriteFile(t, s.Path(s.Layers["L1"].Dir+"/opt/opq/a"), []byte("a"), 0o644)
		}, want: func(s *dockertest.Store) []want {
			return []want{{check: ExtraFile, entry: "opt/opq/a", digest: s.Layers["L1"].ChainID.String()}}
		}},
	}
}

func TestCorruptions(t *testing.T) {
	for _, drv := range drivers(t) {
		for _, c := range corruptions() {
			if c.drivers != nil && !contains(c.drivers, drv) {
				continue
			}
			t.Run(drv+"/"+c.name, func(t *testing.T) {
				if c.root && !dockertest.IsRoot() {
					t.Skip("needs root: overlay2 whiteouts are 0/0 character devices and opaque markers trusted.* xattrs")
				}
				s := dockertest.Build(t, dockertest.DefaultSpec(drv, dockertest.IsRoot()))
				c.apply(t, s)
				r := runAudit(t, s.Root, Options{Jobs: 2})
				for _, w := range c.want(s) {
					requireFinding(t, r, w)
				}
				if r.Summary.Errors+r.Summary.Warnings == 0 {
					t.Errorf("no error or warning finding")
				}
				// From a cold page cache (the rebuild reads ahead) the
				// same damage gives the same report.
				if storetest.EvictPageCache(t, s.Root) {
					if cold := runAudit(t, s.Root, Options{Jobs: 2}); findingsText(cold) != findingsText(r) {
						t.Errorf("cold page cache: the report differs:\n--- warm\n%s--- cold\n%s", findingsText(r), findingsText(cold))
					}
				}
			})
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// sentinel creates a file outside every layer directory, at the data root's
// parent, and fails the test if anything opens it before the test ends.
func sentinel(t *testing.T, s *dockertest.Store) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(s.Root), "sentinel")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	dockertest.WriteFile(t, p, []byte("hello world\n"), 0o644) // the content of etc/hello: reading it would hide the damage
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	must(t, err)
	_, err = unix.InotifyAddWatch(fd, p, unix.IN_OPEN|unix.IN_ACCESS)
	must(t, err)
	t.Cleanup(func() {
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		n, err := unix.Read(fd, buf)
		if err == nil && n > 0 {
			t.Errorf("the sentinel file outside the layer was opened or read")
		} else if err != nil && !errors.Is(err, unix.EAGAIN) {
			t.Errorf("reading inotify events: %v", err)
		}
	})
	return p
}

// TestTarSplitNameClimbsOut rewrites a tar-split name to climb out of the
// layer directory to a sentinel with the right content: the audit reports
// the name and never opens the sentinel.
func TestTarSplitNameClimbsOut(t *testing.T) {
	for _, drv := range drivers(t) {
		t.Run(drv, func(t *testing.T) {
			s := dockertest.Build(t, dockertest.DefaultSpec(drv, dockertest.IsRoot()))
			l := s.Layers["L0"]
			depth := strings.Count(l.Dir, "/") + 2 // from the layer root up past the data root
			evil := strings.Repeat("../", depth) + "sentinel"
			if _, err := os.Stat(filepath.Join(s.Path(l.Dir), filepath.FromSlash(evil))); err == nil {
				t.Fatal("test setup: the sentinel already exists")
			}
			sentinel(t, s)
			if _, err := os.Stat(filepath.Join(s.Path(l.Dir), filepath.FromSlash(evil))); err != nil {
				t.Fatalf("test setup: %s does not reach the sentinel: %v", evil, err)
			}
			rewriteTarSplitName(t, s.Path(l.LayerDB+"/tar-split.json.gz"), "etc/hello", evil)
			r := runAudit(t, s.Root, Options{Jobs: 2})
			requireFinding(t, r, want{check: UnsafePath, entry: evil, digest: l.ChainID.String()})
			// Reading the sentinel would have rebuilt the right bytes.
			requireFinding(t, r, want{check: HostLayerDiffID, digest: l.ChainID.String()})
		})
	}
}

// rewriteTarSplitName renames one file record of a tar-split.json.gz (only
// the record: the header bytes in the segments keep the old name).
func rewriteTarSplitName(t *testing.T, p, from, to string) {
	t.Helper()
	data, err := os.ReadFile(p)
	must(t, err)
	plain := dockertest.Gunzip(t, data)
	old := `"name":"` + from + `"`
	if !strings.Contains(plain, old) {
		t.Fatalf("tar-split has no record named %q", from)
	}
	plain = strings.Replace(plain, old, `"name":"`+to+`"`, 1)
	editFile(t, p, string(dockertest.Gzip(t, []byte(plain))))
}

func TestSelection(t *testing.T) {
	s := dockertest.Build(t, dockertest.DefaultSpec("vfs", dockertest.IsRoot()))
	r := runAudit(t, s.Root, Options{Images: []string{"example.com/base:1"}})
	if len(r.Images) != 1 || r.Images[0].Name != "example.com/base:1" {
		t.Fatalf("images = %+v, want only example.com/base:1", r.Images)
	}
	requireClean(t, r)

	// By ID prefix, and a damaged layer of another image stays out of it.
	flipByte(t, s.Path(s.Layers["L2"].Dir+"/Dockerfile"))
	r = runAudit(t, s.Root, Options{Images: []string{s.Images["app"].ID.String()[:19]}})
	if len(r.Images) != 1 || r.Images[0].Name != "example.com/app:1" {
		t.Fatalf("images = %+v, want only example.com/app:1", r.Images)
	}
	requireClean(t, r)
	r = runAudit(t, s.Root, Options{Images: []string{"docker.io/library/legacy"}})
	requireFinding(t, r, want{check: FileCRC, entry: "./Dockerfile", image: "legacy:latest"})

	st, err := Open(s.Root, Options{Images: []string{"nosuch:tag"}})
	must(t, err)
	err = st.Audit(context.Background(), &report.Builder{})
	if !errors.Is(err, verify.ErrNoMatch) || !strings.Contains(err.Error(), "nosuch:tag") {
		t.Fatalf("Audit with an unknown image = %v, want ErrNoMatch naming it", err)
	}
}

func TestOpen(t *testing.T) {
	s := dockertest.Build(t, dockertest.DefaultSpec("overlay2", dockertest.IsRoot()))
	st, err := Open(s.Root, Options{})
	if err != nil || st.Driver() != "overlay2" {
		t.Fatalf("Open = %v, %v; want overlay2", st, err)
	}
	if _, err := Open(t.TempDir(), Options{}); !errors.Is(err, ErrNotDockerRoot) {
		t.Errorf("Open(empty dir) = %v, want ErrNotDockerRoot", err)
	}
	aufs := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(aufs, "image", "aufs"), 0o700))
	if _, err := Open(aufs, Options{}); !errors.Is(err, ErrUnsupportedDriver) || !strings.Contains(err.Error(), "aufs") {
		t.Errorf("Open(aufs root) = %v, want ErrUnsupportedDriver naming aufs", err)
	}
	// Two image stores: the one with a driver directory is live.
	must(t, os.MkdirAll(s.Path("image/vfs/imagedb"), 0o700))
	if st, err := Open(s.Root, Options{}); err != nil || st.Driver() != "overlay2" {
		t.Errorf("Open with a stale image/vfs = %v, %v; want overlay2", st, err)
	}
	must(t, os.MkdirAll(s.Path("vfs/dir"), 0o700))
	if _, err := Open(s.Root, Options{}); err == nil || !strings.Contains(err.Error(), "several graph drivers") {
		t.Errorf("Open with two live drivers = %v, want an error", err)
	}
	if st, err := Open(s.Root, Options{Driver: "vfs"}); err != nil || st.Driver() != "vfs" {
		t.Errorf("Open(Driver: vfs) = %v, %v", st, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestInfos: an untagged image nothing uses is dangling, a layer no image
// uses is unused; both are infos, and the store stays clean.
func TestInfos(t *testing.T) {
	spec := dockertest.DefaultSpec("vfs", dockertest.IsRoot())
	spec.Layers = append(spec.Layers, dockertest.LayerSpec{Key: "L3", Entries: []dockertest.Entry{dockertest.Reg("unused", "x", 0o644)}})
	spec.Images = append(spec.Images, dockertest.ImageSpec{Key: "untagged", Layers: []string{"L2"}, EmptyHistory: 1})
	s := dockertest.Build(t, spec)
	r := runAudit(t, s.Root, Options{})
	requireClean(t, r)
	requireFinding(t, r, want{check: ImageDangling, digest: s.Images["untagged"].ID.String(), image: s.Images["untagged"].ID.String()})
	requireFinding(t, r, want{check: LayerUnused, digest: s.Layers["L3"].ChainID.String()})
	for _, f := range r.Findings {
		if f.Check == ImageDangling && f.Subject.Digest != s.Images["untagged"].ID.String() {
			t.Errorf("tagged or used image reported dangling: %+v", f)
		}
	}
}

// TestSymlinkedDriverDir: administrators move the driver directory to
// another disk and leave a symlink; the audit follows it (and only it).
func TestSymlinkedDriverDir(t *testing.T) {
	for _, drv := range drivers(t) {
		t.Run(drv, func(t *testing.T) {
			s := dockertest.Build(t, dockertest.DefaultSpec(drv, dockertest.IsRoot()))
			top := strings.Split(s.CacheDir("x"), "/")[0] // overlay2 or vfs
			moved := filepath.Join(filepath.Dir(s.Root), "otherdisk-"+top)
			must(t, os.Rename(s.Path(top), moved))
			must(t, os.Symlink(moved, s.Path(top)))
			r := runAudit(t, s.Root, Options{Jobs: 2})
			requireClean(t, r)
			flipByte(t, filepath.Join(moved, strings.TrimPrefix(s.Layers["L0"].Dir, top+"/"), "etc", "hello"))
			r = runAudit(t, s.Root, Options{Jobs: 2})
			requireFinding(t, r, want{check: FileCRC, entry: "etc/hello", digest: s.Layers["L0"].ChainID.String()})
		})
	}
}
