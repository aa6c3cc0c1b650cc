package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source/dockerarchive"
	"github.com/layercheck/layercheck/verify"
)

// analysisSpec is a store whose "app" image has an upper layer that
// overwrites one file of the shared base layer, deletes another, and
// deletes a whole directory; "base" is the base layer alone.
func analysisSpec(driver string) dockertest.StoreSpec {
	uid, gid := 0, 0
	if !dockertest.IsRoot() {
		uid, gid = os.Getuid(), os.Getgid()
	}
	data := func(n int) string { return strings.Repeat("x", n) }
	l0 := []dockertest.Entry{
		dockertest.Dir("bin/", 0o755),
		dockertest.Reg("bin/tool", data(1000), 0o755),
		dockertest.Dir("etc/", 0o755),
		dockertest.Reg("etc/a", data(100), 0o644),
		dockertest.Reg("etc/b", data(200), 0o644),
		dockertest.Dir("var/", 0o755),
		dockertest.Dir("var/log/", 0o755),
		dockertest.Reg("var/log/x", data(300), 0o644),
	}
	l1 := []dockertest.Entry{
		dockertest.Dir("etc/", 0o755),
		dockertest.Reg("etc/a", data(150), 0o644), // overwrites 100 bytes
		dockertest.Whiteout("etc/.wh.b"),          // deletes 200 bytes
		dockertest.Dir("var/", 0o755),
		dockertest.Whiteout("var/.wh.log"), // deletes var/log and its 300 bytes
	}
	for _, l := range [][]dockertest.Entry{l0, l1} {
		for i := range l {
			l[i].UID, l[i].GID = uid, gid
		}
	}
	return dockertest.StoreSpec{
		Driver: driver,
		Layers: []dockertest.LayerSpec{{Key: "L0", Entries: l0}, {Key: "L1", Parent: "L0", Entries: l1}},
		Images: []dockertest.ImageSpec{
			{Key: "base", Refs: []string{"example.com/base:1"}, Layers: []string{"L0"}},
			{Key: "app", Refs: []string{"example.com/app:1"}, Layers: []string{"L0", "L1"}},
		},
	}
}

// analysisDrivers: vfs always; overlay2 keeps whiteouts as 0/0 character
// devices, which only root can make.
func analysisDrivers() []string {
	if dockertest.IsRoot() {
		return []string{"overlay2", "vfs"}
	}
	return []string{"vfs"}
}

// TestAnalysisMatchesDockerSave: with the analysis on, the audit of a
// graph-driver store gives each image the analysis the verifier computes
// for a docker save of the same image (the same layer tars): the same
// per-layer statistics, hidden files, wasted bytes and efficiency. The
// figures of app are also checked by hand, and the base layer both images
// share is rebuilt (and analysed) once.
func TestAnalysisMatchesDockerSave(t *testing.T) {
	for _, drv := range analysisDrivers() {
		t.Run(drv, func(t *testing.T) {
			s := dockertest.Build(t, analysisSpec(drv))
			var mu sync.Mutex
			passes := map[string]int{}
			r := runAudit(t, s.Root, Options{Jobs: 2, Analysis: &verify.AnalysisOptions{},
				Progress: func(loc string, _ int64) {
					mu.Lock()
					passes[loc]++
					mu.Unlock()
				}})
			requireClean(t, r)
			if len(passes) != 2 {
				t.Errorf("layers rebuilt: %v, want the 2 layers once each", passes)
			}
			for loc, n := range passes {
				if n != 1 {
					t.Errorf("layer %s rebuilt %d times, want once", loc, n)
				}
			}
			if len(r.Images) != 2 {
				t.Fatalf("images = %d, want 2", len(r.Images))
			}
			for _, img := range r.Images {
				if img.Analysis == nil {
					t.Fatalf("image %s has no analysis", img.Name)
				}
				key := "base"
				if img.Name == "example.com/app:1" {
					key = "app"
				}
				saved := verifySave(t, s, s.Images[key])
				if saved.Analysis == nil {
					t.Fatalf("the verifier gave the docker save of %s no analysis", key)
				}
				if !reflect.DeepEqual(img.Analysis, saved.Analysis) {
					t.Errorf("image %s: host analysis differs from the docker save's:\nhost: %s\nsave: %s", img.Name, asJSON(img.Analysis), asJSON(saved.Analysis))
				}
			}
			app := imageNamed(t, r, "example.com/app:1").Analysis
			// dive: etc/a twice (100+150), etc/b twice (200, then its
			// whiteout 0); var/log is a leaf only as the whiteout.
			if app.WastedBytes != 450 {
				t.Errorf("app wasted bytes = %d, want 450", app.WastedBytes)
			}
			if want := 1700.0 / 2050.0; app.Efficiency != want {
				t.Errorf("app efficiency = %v, want %v", app.Efficiency, want)
			}
			if app.HiddenFiles != 3 || app.HiddenBytes != 600 || app.Layers[0].HiddenBytes != 600 {
				t.Errorf("app hidden = %d files, %d bytes (layer 0: %d), want 3 files, 600 bytes in layer 0", app.HiddenFiles, app.HiddenBytes, app.Layers[0].HiddenBytes)
			}
			if app.Partial || app.Truncated {
				t.Errorf("app analysis partial=%v truncated=%v, want neither", app.Partial, app.Truncated)
			}
			if base := imageNamed(t, r, "example.com/base:1").Analysis; base.WastedBytes != 0 || base.Efficiency != 1 || base.Layers[0].Bytes != 1600 {
				t.Errorf("base analysis = %s, want no waste, efficiency 1, 1600 bytes", asJSON(base))
			}
		})
	}
}

// TestAnalysisOff: without the option no image carries an analysis.
func TestAnalysisOff(t *testing.T) {
	s := dockertest.Build(t, analysisSpec("vfs"))
	r := runAudit(t, s.Root, Options{})
	for _, img := range r.Images {
		if img.Analysis != nil {
			t.Errorf("image %s has an analysis with the option off", img.Name)
		}
	}
}

// TestAnalysisPartial: a layer whose tar-split is gone is not rebuilt; the
// images using it get a partial analysis, not figures that look complete.
func TestAnalysisPartial(t *testing.T) {
	s := dockertest.Build(t, analysisSpec("vfs"))
	if err := os.Remove(s.Path(s.Layers["L1"].LayerDB + "/tar-split.json.gz")); err != nil {
		t.Fatal(err)
	}
	st, err := Open(s.Root, Options{Analysis: &verify.AnalysisOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	b := &report.Builder{}
	if err := st.Audit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	r := b.Finish("host", s.Root, "test")
	app := imageNamed(t, r, "example.com/app:1").Analysis
	if app == nil || !app.Partial || !app.Layers[1].Partial || app.Layers[0].Partial {
		t.Fatalf("app analysis = %s, want partial in layer 1 only", asJSON(app))
	}
	if base := imageNamed(t, r, "example.com/base:1").Analysis; base == nil || base.Partial {
		t.Errorf("base analysis = %s, want complete", asJSON(base))
	}
}

func imageNamed(t *testing.T, r *report.Report, name string) *report.Image {
	t.Helper()
	for i := range r.Images {
		if r.Images[i].Name == name {
			return &r.Images[i]
		}
	}
	t.Fatalf("no image %s in the report", name)
	return nil
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// verifySave writes a legacy docker save of img (its config and layer
// tars, as the store holds them) and returns the verifier's image with the
// analysis on.
func verifySave(t *testing.T, s *dockertest.Store, img *dockertest.Image) report.Image {
	t.Helper()
	p := filepath.Join(t.TempDir(), "save.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	cfg := img.ID.Encoded() + ".json"
	var layers []string
	for i := range img.Layers {
		layers = append(layers, fmt.Sprintf("%d/layer.tar", i))
	}
	m, _ := json.Marshal([]map[string]any{{"Config": cfg, "RepoTags": img.Refs[:1], "Layers": layers}})
	add("manifest.json", m)
	add(cfg, img.Config)
	for i, l := range img.Layers {
		add(layers[i], l.Tar)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	src, err := dockerarchive.Open(p, dockerarchive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b := &report.Builder{}
	if err := verify.New(verify.Options{Analysis: &verify.AnalysisOptions{}}).Verify(context.Background(), src, b); err != nil {
		t.Fatal(err)
	}
	r := b.Finish("tar", p, "test")
	if len(r.Images) != 1 {
		t.Fatalf("the save of %s verified as %d images", img.Key, len(r.Images))
	}
	for _, f := range r.Findings {
		if f.Severity >= report.Warning {
			t.Fatalf("the save of %s has findings: %s", img.Key, findingsText(r))
		}
	}
	return r.Images[0]
}

// TestAnalysisMisaligned: a file of the base layer is shorter on disk than
// its header says, so every header after it is misplaced in the rebuilt
// stream: that layer has no analysis (partial), not figures read from
// misplaced bytes, while the file finding names the file.
func TestAnalysisMisaligned(t *testing.T) {
	s := dockertest.Build(t, analysisSpec("vfs"))
	if err := os.Truncate(s.Path(s.Layers["L0"].Dir+"/etc/a"), 10); err != nil {
		t.Fatal(err)
	}
	r := runAudit(t, s.Root, Options{Analysis: &verify.AnalysisOptions{}})
	requireFinding(t, r, want{check: FileCRC, entry: "etc/a"})
	for _, name := range []string{"example.com/base:1", "example.com/app:1"} {
		a := imageNamed(t, r, name).Analysis
		if a == nil || !a.Partial || !a.Layers[0].Partial || a.Layers[0].Entries != 0 {
			t.Errorf("%s analysis = %s, want layer 0 partial with nothing counted", name, asJSON(a))
		}
	}
}
