//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
)

// The analysis image: three layers, the third overwriting one file of the
// second and deleting another. Built with the legacy builder (the harness
// sets DOCKER_BUILDKIT=0) from the static busybox, offline.
const analysisDockerfile = `FROM scratch
ADD busybox /bin/busybox
COPY data/ /data/
RUN ["/bin/busybox", "sh", "-c", "echo new > /data/over && /bin/busybox rm /data/gone"]
LABEL org.layercheck.e2e=analysis
`

// The files of the analysis image's second layer.
var (
	analysisKeep = "keep\n"
	analysisOver = strings.Repeat("o", 100)
	analysisGone = strings.Repeat("g", 50)
)

// TestAnalysisHostEqualsSave: for every image the suite built on each
// daemon, and for an image of this test whose top layer overwrites one file
// and deletes another, `layercheck host --analyze` on the data root gives
// the same layer analysis (wasted bytes, efficiency, hidden bytes, per-layer
// counts and bytes) as `layercheck tar --analyze` on the image's docker
// save; for the test's image both equal the figures computed by hand.
func TestAnalysisHostEqualsSave(t *testing.T) {
	s := need(t)
	busybox, err := s.Env.ReadBusybox()
	if err != nil {
		t.Fatal(err)
	}
	bb := int64(len(busybox))
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		d := set.Docker
		t.Run(drv, func(t *testing.T) {
			ctx := context.Background()
			// The test's image.
			work := t.TempDir()
			bctx := filepath.Join(work, "ctx")
			for name, body := range map[string]string{
				"Dockerfile": analysisDockerfile,
				"data/keep":  analysisKeep,
				"data/over":  analysisOver,
				"data/gone":  analysisGone,
			} {
				p := filepath.Join(bctx, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(bctx, "busybox"), busybox, 0o755); err != nil {
				t.Fatal(err)
			}
			const ref = "lc/analysis:1"
			if err := d.Build(ctx, ref, bctx); err != nil {
				t.Fatalf("building %s: %v", ref, err)
			}
			t.Cleanup(func() { d.CLI(context.Background(), "rmi", ref) })
			ins, err := d.InspectImage(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			save := filepath.Join(work, "save-analysis.tar")
			if _, err := d.CLI(ctx, "save", "--output", save, ref); err != nil {
				t.Fatalf("saving %s: %v", ref, err)
			}

			type subject struct{ name, ref, id, save string }
			subjects := []subject{{"analysis", ref, ins.ID, save}}
			for _, img := range set.Images {
				subjects = append(subjects, subject{img.Name, img.Ref, img.Inspect.ID, img.Save})
			}
			args := []string{"host", "--root", d.DataRoot, "--analyze", "-o", "json"}
			for _, sub := range subjects {
				args = append(args, sub.ref)
			}
			host := layercheck(t, s, args...)
			requireClean(t, "layercheck host --analyze "+drv, host)

			for _, sub := range subjects {
				hi := findImage(host.Report, sub.id)
				if hi == nil || hi.Analysis == nil {
					t.Errorf("%s: the host report has no analysis of %s (%s)", drv, sub.name, sub.id)
					continue
				}
				tr := layercheck(t, s, "tar", "--analyze", "-o", "json", sub.save)
				requireClean(t, "layercheck tar --analyze "+sub.save, tr)
				ti := findImage(tr.Report, sub.id)
				if ti == nil || ti.Analysis == nil {
					t.Errorf("%s: the report of %s's docker save has no analysis of %s", drv, sub.name, sub.id)
					continue
				}
				if !equalAnalysis(hi.Analysis, ti.Analysis) {
					t.Errorf("%s %s: host analysis differs from the docker save's\nhost: %s\nsave: %s", drv, sub.name, analysisJSON(hi.Analysis), analysisJSON(ti.Analysis))
				}
				if sub.name == "analysis" {
					checkHandComputed(t, drv+" host", hi.Analysis, bb)
					checkHandComputed(t, drv+" save", ti.Analysis, bb)
				}
			}
		})
	}
}

// equalAnalysis compares two analyses field by field: the exact JSON
// encodings, the efficiency and ratios to within rounding.
func equalAnalysis(a, b *report.ImageAnalysis) bool {
	if !near(a.Efficiency, b.Efficiency) || len(a.Layers) != len(b.Layers) {
		return false
	}
	ac, bc := *a, *b
	ac.Efficiency, bc.Efficiency = 0, 0
	ac.Layers = append([]report.LayerAnalysis(nil), a.Layers...)
	bc.Layers = append([]report.LayerAnalysis(nil), b.Layers...)
	for i := range ac.Layers {
		if !near(ac.Layers[i].CompressionRatio, bc.Layers[i].CompressionRatio) {
			return false
		}
		ac.Layers[i].CompressionRatio, bc.Layers[i].CompressionRatio = 0, 0
	}
	return analysisJSON(&ac) == analysisJSON(&bc)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func analysisJSON(a *report.ImageAnalysis) string {
	b, err := json.Marshal(a)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// checkHandComputed checks the analysis image's figures, worked out from
// its Dockerfile (bb is the size of the busybox binary):
//
//	layer 0  bin/ bin/busybox                    1 dir, 1 file, bb bytes
//	layer 1  data/ data/keep(5) over(100) gone(50) 1 dir, 3 files, 155 bytes
//	layer 2  data/ data/over(4) data/.wh.gone     1 dir, 1 file, 1 whiteout, 4 bytes
//
// Layer 1's over and gone are hidden (150 bytes). dive's measure: over is in
// two layers (100+4) and gone too (50, plus 0 for the whiteout of a file),
// so 154 bytes are wasted; the efficiency is the smallest size of each path
// (bb, 5, 4, 0) over all sizes (bb+5+100+50+4+0).
func checkHandComputed(t *testing.T, what string, a *report.ImageAnalysis, bb int64) {
	t.Helper()
	type counts struct {
		Entries, Regular, Dirs, Symlinks, Hardlinks, Other, Whiteouts, OpaqueDirs int
		Bytes                                                                     int64
		HiddenFiles                                                               int
		HiddenBytes                                                               int64
	}
	want := []counts{
		{Entries: 2, Regular: 1, Dirs: 1, Bytes: bb},
		{Entries: 4, Regular: 3, Dirs: 1, Bytes: 155, HiddenFiles: 2, HiddenBytes: 150},
		{Entries: 3, Regular: 1, Dirs: 1, Whiteouts: 1, Bytes: 4},
	}
	if len(a.Layers) != len(want) {
		t.Fatalf("%s: %d layers analysed, want %d: %s", what, len(a.Layers), len(want), analysisJSON(a))
	}
	for i, l := range a.Layers {
		got := counts{l.Entries, l.Regular, l.Dirs, l.Symlinks, l.Hardlinks, l.Other, l.Whiteouts, l.OpaqueDirs, l.Bytes, l.HiddenFiles, l.HiddenBytes}
		if got != want[i] {
			t.Errorf("%s layer %d: %+v, want %+v", what, i, got, want[i])
		}
		if l.Partial || l.Truncated || !near(l.CompressionRatio, 1) {
			t.Errorf("%s layer %d: partial %v, truncated %v, ratio %v; want a whole uncompressed layer", what, i, l.Partial, l.Truncated, l.CompressionRatio)
		}
	}
	if a.Files != 5 || a.Bytes != bb+159 || a.HiddenFiles != 2 || a.HiddenBytes != 150 || a.WastedBytes != 154 {
		t.Errorf("%s: files %d bytes %d hidden %d/%d wasted %d; want 5, %d, 2/150, 154", what, a.Files, a.Bytes, a.HiddenFiles, a.HiddenBytes, a.WastedBytes, bb+159)
	}
	if eff := float64(bb+9) / float64(bb+159); !near(a.Efficiency, eff) {
		t.Errorf("%s: efficiency %v, want %v", what, a.Efficiency, eff)
	}
	ineff := map[string][2]int64{}
	for _, pw := range a.Inefficiencies {
		ineff[strings.TrimPrefix(strings.TrimPrefix(pw.Path, "/"), "./")] = [2]int64{int64(pw.Layers), pw.Bytes}
	}
	if len(ineff) != 2 || ineff["data/over"] != [2]int64{2, 104} || ineff["data/gone"] != [2]int64{2, 50} {
		t.Errorf("%s: inefficiencies %+v, want data/over in 2 layers (104 bytes) and data/gone in 2 (50)", what, a.Inefficiencies)
	}
}
