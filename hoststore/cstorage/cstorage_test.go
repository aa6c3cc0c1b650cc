package cstorage_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore"
	"github.com/layercheck/layercheck/hoststore/cstorage"
	"github.com/layercheck/layercheck/hoststore/cstorage/cstoragetest"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/store/storetest"
	digest "github.com/opencontainers/go-digest"
)

var drivers = []string{"overlay", "vfs"}

func open(t *testing.T, root string, opts store.Options) store.Store {
	t.Helper()
	s, err := hoststore.Open(root, opts)
	if err != nil {
		t.Fatalf("hoststore.Open: %v", err)
	}
	return s
}

func wantImages(s *cstoragetest.Store) []store.Image {
	var out []store.Image
	for _, k := range []string{"base", "app", "legacy", "mapped"} {
		im := s.Images[k]
		if im == nil {
			continue
		}
		si := store.Image{ID: digest.NewDigestFromEncoded(digest.SHA256, im.ID), Names: im.Names}
		for _, l := range im.Layers {
			si.Layers = append(si.Layers, store.Layer{DiffID: l.DiffID, Digest: l.Digest})
		}
		out = append(out, si)
	}
	return out
}

func TestConformance(t *testing.T) {
	for _, drv := range drivers {
		s := cstoragetest.Build(t, drv)
		storetest.Run(t, storetest.Case{
			Name:   drv,
			Kind:   store.ContainersStorage,
			Root:   s.Root,
			Open:   func(t *testing.T, opts store.Options) store.Store { return open(t, s.Root, opts) },
			Images: wantImages(s),
		})
	}
}

func audit(t *testing.T, root string, opts store.Options) *report.Report {
	t.Helper()
	s := open(t, root, opts)
	defer s.Close()
	b := &report.Builder{}
	if err := s.Audit(context.Background(), b); err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return b.Finish("host", s.String(), "test")
}

func TestClean(t *testing.T) {
	for _, drv := range drivers {
		t.Run(drv, func(t *testing.T) {
			s := cstoragetest.Build(t, drv)
			before := storetest.TreeHash(t, s.Root)
			rep := audit(t, s.Root, store.Options{Jobs: 2})
			for _, f := range rep.Findings {
				t.Errorf("finding on a clean store: %s %s %s: %s (want %s, got %s)", f.Severity, f.Check, f.Subject, f.Message, f.Expected, f.Actual)
			}
			for _, p := range rep.Problems {
				t.Errorf("problem: %s: %s", p.Subject, p.Message)
			}
			if len(rep.Images) != len(s.Images) {
				t.Errorf("%d images reported, want %d", len(rep.Images), len(s.Images))
			}
			for _, im := range rep.Images {
				for _, l := range im.Layers {
					if l.DiffID == "" || l.TarSize == 0 {
						t.Errorf("image %s layer %d was not rebuilt: %+v", im.Name, l.Index, l)
					}
				}
			}
			if d := storetest.Diff(before, storetest.TreeHash(t, s.Root)); d != "" {
				t.Errorf("the audit changed the store:\n%s", d)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	s := cstoragetest.Build(t, "overlay")
	st := open(t, s.Root, store.Options{})
	ctx := context.Background()
	app := s.Images["app"]
	for _, q := range []string{"example.com/app:1", "sha256:" + app.ID, app.ID[:8], "example.com/app@" + app.Digest.String()} {
		im, err := st.Lookup(ctx, q)
		if err != nil {
			t.Errorf("Lookup(%q): %v", q, err)
			continue
		}
		if im.ID.Encoded() != app.ID {
			t.Errorf("Lookup(%q) = %s, want %s", q, im.ID, app.ID)
		}
		if im.Manifest != app.Digest || len(im.RepoDigests) != 1 || im.RepoDigests[0] != "example.com/app@"+app.Digest.String() {
			t.Errorf("Lookup(%q): manifest %s, repo digests %v", q, im.Manifest, im.RepoDigests)
		}
		if im.Platform != "linux/amd64" {
			t.Errorf("platform %q", im.Platform)
		}
	}
	im, err := st.Lookup(ctx, "legacy")
	if err != nil || im.ID.Encoded() != s.Images["legacy"].ID {
		t.Errorf("Lookup(legacy) = %v, %v (docker.io/library/legacy:latest)", im, err)
	}
	if _, err := st.Lookup(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lookup(nope) err = %v", err)
	}
}

func TestDetect(t *testing.T) {
	s := cstoragetest.Build(t, "vfs")
	k, err := hoststore.Detect(s.Root)
	if err != nil || k != store.ContainersStorage {
		t.Fatalf("Detect = %q, %v", k, err)
	}
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(other, "btrfs-layers"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "btrfs-layers", "layers.json"), []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = hoststore.Open(other, store.Options{})
	if !errors.Is(err, cstorage.ErrUnsupportedDriver) || !strings.Contains(err.Error(), "btrfs") {
		t.Errorf("Open of a btrfs graph root: %v, want ErrUnsupportedDriver naming btrfs", err)
	}
}

// corruption is one damage done to a copy of a clean store.
type corruption struct {
	name    string
	drivers []string // nil: both
	root    bool     // needs root
	do      func(t *testing.T, s *cstoragetest.Store)
	want    []report.Check
	// wantOverlay are more findings on overlay (its l/ links).
	wantOverlay []report.Check
}

func layer(s *cstoragetest.Store, key string) *cstoragetest.Layer { return s.Layers[key] }

func editJSON(t *testing.T, p string, fn func([]map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var v []map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	fn(v)
	b, _ = json.Marshal(v)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func editLayer(t *testing.T, s *cstoragetest.Store, id string, fn func(map[string]any)) {
	editJSON(t, s.Path(s.Driver+"-layers/layers.json"), func(v []map[string]any) {
		for _, r := range v {
			if r["id"] == id {
				fn(r)
			}
		}
	})
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptions(t *testing.T) {
	cases := []corruption{
		{name: "flipped file", do: func(t *testing.T, s *cstoragetest.Store) {
			p := s.Path(layer(s, "L0").Dir + "/bin/tool")
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			f.ReadAt(b, 5000)
			b[0] ^= 1
			f.WriteAt(b, 5000)
			f.Close()
		}, want: []report.Check{cstorage.CSFileCRC, cstorage.CSLayerDiffID}},
		{name: "truncated file", drivers: []string{"overlay"}, do: func(t *testing.T, s *cstoragetest.Store) {
			p := s.Path(layer(s, "L0").Dir + "/bin/tool")
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
		}, want: []report.Check{cstorage.CSFileCRC, cstorage.CSLayerDiffID, cstorage.CSLayerDiffSize, cstorage.CSLstatMismatch}},
		{name: "deleted file", drivers: []string{"overlay"}, do: func(t *testing.T, s *cstoragetest.Store) {
			os.Remove(s.Path(layer(s, "L2").Dir + "/Dockerfile"))
		}, want: []report.Check{cstorage.CSLayerMissingFile, cstorage.CSLayerDiffID, cstorage.CSLayerDiffSize}},
		{name: "added file", do: func(t *testing.T, s *cstoragetest.Store) {
			writeFile(t, s.Path(layer(s, "L2").Dir+"/EVIL"), []byte("x"))
		}, want: []report.Check{cstorage.CSExtraFile}},
		{name: "chmod file", do: func(t *testing.T, s *cstoragetest.Store) {
			os.Chmod(s.Path(layer(s, "L2").Dir+"/Dockerfile"), 0o4755)
		}, want: []report.Check{cstorage.CSLstatMismatch}},
		{name: "edited diff-digest", do: func(t *testing.T, s *cstoragetest.Store) {
			editLayer(t, s, layer(s, "L2").ID, func(r map[string]any) { r["diff-digest"] = digest.FromString("x").String() })
		}, want: []report.Check{cstorage.CSLayerDiffID, cstorage.CSImageConfig}},
		{name: "edited diff-size", do: func(t *testing.T, s *cstoragetest.Store) {
			editLayer(t, s, layer(s, "L2").ID, func(r map[string]any) { r["diff-size"] = 12 })
		}, want: []report.Check{cstorage.CSLayerDiffSize}},
		{name: "missing parent", do: func(t *testing.T, s *cstoragetest.Store) {
			editLayer(t, s, layer(s, "L1").ID, func(r map[string]any) { r["parent"] = strings.Repeat("ab", 32) })
		}, want: []report.Check{cstorage.CSLayerParent, cstorage.CSImageLayer}},
		{name: "deleted tar-split", do: func(t *testing.T, s *cstoragetest.Store) {
			os.Remove(s.Path(s.TarSplit(layer(s, "L2").ID)))
		}, want: []report.Check{cstorage.CSTarSplit}},
		{name: "truncated tar-split", do: func(t *testing.T, s *cstoragetest.Store) {
			p := s.Path(s.TarSplit(layer(s, "L0").ID))
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
		}, want: []report.Check{cstorage.CSTarSplit}},
		{name: "deleted layer directory", do: func(t *testing.T, s *cstoragetest.Store) {
			dir := s.Path(layer(s, "L2").Dir)
			if s.Driver == "overlay" {
				dir = filepath.Dir(dir)
			}
			os.RemoveAll(dir)
		}, want: []report.Check{cstorage.CSLayerDir}, wantOverlay: []report.Check{cstorage.CSOverlayLink}},
		{name: "edited config", do: func(t *testing.T, s *cstoragetest.Store) {
			im := s.Images["legacy"]
			writeFile(t, s.Path(s.BigData(im.ID, "sha256:"+im.ID)), append(im.Config, ' '))
		}, want: []report.Check{cstorage.CSImageBigData, cstorage.CSImageConfig}},
		{name: "edited manifest", do: func(t *testing.T, s *cstoragetest.Store) {
			im := s.Images["legacy"]
			writeFile(t, s.Path(s.BigData(im.ID, "manifest")), append(im.Manifest, ' '))
		}, want: []report.Check{cstorage.CSImageBigData}},
		{name: "image top layer missing", do: func(t *testing.T, s *cstoragetest.Store) {
			editJSON(t, s.Path(s.Driver+"-images/images.json"), func(v []map[string]any) {
				for _, r := range v {
					if r["id"] == s.Images["legacy"].ID {
						r["layer"] = strings.Repeat("cd", 32)
					}
				}
			})
		}, want: []report.Check{cstorage.CSImageLayer}},
		{name: "tar-split name climbing out", do: func(t *testing.T, s *cstoragetest.Store) {
			l := layer(s, "L2")
			writeFile(t, s.Path(s.TarSplit(l.ID)), climbing(t, l.Tar))
		}, want: []report.Check{cstorage.CSUnsafePath, cstorage.CSLayerDiffID, cstorage.CSLayerDiffSize}},
		{name: "broken l/ link", drivers: []string{"overlay"}, do: func(t *testing.T, s *cstoragetest.Store) {
			os.Remove(s.Path("overlay/l/" + layer(s, "L0").Link))
		}, want: []report.Check{cstorage.CSOverlayLink}},
		{name: "orphan directory", do: func(t *testing.T, s *cstoragetest.Store) {
			dir := "overlay/" + strings.Repeat("ef", 32) + "/diff"
			if s.Driver == "vfs" {
				dir = "vfs/dir/" + strings.Repeat("ef", 32)
			}
			os.MkdirAll(s.Path(dir), 0o755)
			writeFile(t, s.Path(dir+"/f"), []byte("leftover"))
			writeFile(t, s.Path(s.TarSplit(strings.Repeat("12", 32))), []byte("x"))
		}, want: []report.Check{cstorage.CSOrphanDir, cstorage.CSOrphanTarSplit}},
		{name: "undone whiteout", drivers: []string{"overlay"}, root: true, do: func(t *testing.T, s *cstoragetest.Store) {
			os.Remove(s.Path(layer(s, "L1").Dir + "/etc/empty"))
		}, want: []report.Check{cstorage.CSWhiteout}},
		{name: "container layer missing, a duplicate layer record", do: func(t *testing.T, s *cstoragetest.Store) {
			editJSON(t, s.Path(s.Driver+"-layers/layers.json"), func(v []map[string]any) {
				for i, r := range v {
					if r["id"] == s.CtrLayerID {
						copy(v[i:], v[i+1:])
						v[len(v)-1] = map[string]any{"id": s.Layers["L0"].ID}
					}
				}
			})
		}, want: []report.Check{cstorage.CSContainer, cstorage.CSOrphanDir, cstorage.CSLayerDuplicate}},
		{name: "mapped owner", root: true, do: func(t *testing.T, s *cstoragetest.Store) {
			os.Lchown(s.Path(layer(s, "M0").Dir+"/srv/data"), 0, 0)
		}, want: []report.Check{cstorage.CSLstatMismatch}},
	}
	for _, drv := range drivers {
		clean := cstoragetest.Build(t, drv)
		for _, c := range cases {
			if c.drivers != nil && !contains(c.drivers, drv) {
				continue
			}
			t.Run(drv+"/"+c.name, func(t *testing.T) {
				if c.root && os.Geteuid() != 0 {
					t.Skip("needs root")
				}
				s := copyStore(t, clean)
				c.do(t, s)
				before := storetest.TreeHash(t, s.Root)
				rep := audit(t, s.Root, store.Options{Jobs: 2})
				want := c.want
				if drv == "overlay" {
					want = append(append([]report.Check(nil), want...), c.wantOverlay...)
				}
				got := map[report.Check]bool{}
				for _, f := range rep.Findings {
					got[f.Check] = true
					if f.Expected == "" && f.Actual == "" && f.Severity == report.Error && f.Check != cstorage.CSTarSplit && f.Check != cstorage.CSUnsafePath && f.Check != cstorage.CSLayerParent && f.Check != cstorage.CSImageLayer {
						t.Errorf("finding without expected/actual: %s %s: %s", f.Check, f.Subject, f.Message)
					}
				}
				for _, w := range want {
					if !got[w] {
						t.Errorf("no %s finding; got %v", w, checks(rep))
					}
				}
				for g := range got {
					if !containsCheck(want, g) {
						t.Errorf("unexpected %s finding; got %v", g, findings(rep))
					}
				}
				if d := storetest.Diff(before, storetest.TreeHash(t, s.Root)); d != "" {
					t.Errorf("the audit changed the store:\n%s", d)
				}
			})
		}
	}
}

func checks(rep *report.Report) []string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, string(f.Check))
	}
	sort.Strings(out)
	return out
}

func findings(rep *report.Report) string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, string(f.Check)+" "+f.Subject.String()+": "+f.Message+" (want "+f.Expected+", got "+f.Actual+")")
	}
	return strings.Join(out, "\n")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsCheck(list []report.Check, c report.Check) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}
