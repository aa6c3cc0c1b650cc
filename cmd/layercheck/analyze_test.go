package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

var updateAnalyze = flag.Bool("update-analyze", false, "rewrite testdata/analyze.golden")

// wasteImage is an image with known overwritten and deleted files:
//
//	0 gzip: etc/big 10000 bytes, etc/keep 100, opt/tool 3000
//	1 none: etc/big rewritten (12000 bytes), etc/keep deleted (.wh.keep)
//	2 gzip: opt deleted (.wh.opt)
func wasteImage(t *testing.T) *fixtures.Built {
	t.Helper()
	b, err := fixtures.Build(fixtures.Image{
		Name: "example.com/waste:1",
		Layers: []fixtures.Layer{
			{Compression: fixtures.Gzip, Files: []fixtures.File{
				fixtures.Dir("etc"),
				fixtures.Reg("etc/big", bytes.Repeat([]byte("a"), 10000)),
				fixtures.Reg("etc/keep", bytes.Repeat([]byte("k"), 100)),
				fixtures.Dir("opt"),
				fixtures.Reg("opt/tool", fixtures.RandomBytes(7, 3000)),
			}},
			{Compression: fixtures.None, Files: []fixtures.File{
				fixtures.Dir("etc"),
				fixtures.Reg("etc/big", bytes.Repeat([]byte("b"), 12000)),
				fixtures.Whiteout("etc", "keep"),
			}},
			{Compression: fixtures.Gzip, Files: []fixtures.File{
				fixtures.Whiteout("", "opt"),
			}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeWaste(t *testing.T, f fixtures.Format) string {
	t.Helper()
	fx, err := fixtures.NewFixture(f, wasteImage(t))
	if err != nil {
		t.Fatal(err)
	}
	p, err := fx.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAnalyzeFigures checks the analysis of wasteImage in every format:
// the same files, bytes, hidden files and dive's figures whatever the
// packaging, from the verification's single pass.
func TestAnalyzeFigures(t *testing.T) {
	for _, f := range fixtures.Formats() {
		t.Run(string(f), func(t *testing.T) {
			p := writeWaste(t, f)
			cmd := "tar"
			if f.IsDir() {
				cmd = "layout"
			}
			out, errOut, code := runCLI(t, cmd, "--analyze", "--no-progress", "-o", "json", p)
			if code != ExitOK {
				t.Fatalf("exit %d\nstderr: %s\n%s", code, errOut, out)
			}
			rep := jsonReport(t, out)
			if len(rep.Images) != 1 || rep.Images[0].Analysis == nil {
				t.Fatalf("images %+v, want one with an analysis", rep.Images)
			}
			a := rep.Images[0].Analysis
			type counts struct {
				Entries, Regular, Dirs, Whiteouts, HiddenFiles int
				Bytes, HiddenBytes                             int64
			}
			want := []counts{
				{Entries: 5, Regular: 3, Dirs: 2, Bytes: 13100, HiddenFiles: 3, HiddenBytes: 13100},
				{Entries: 3, Regular: 1, Dirs: 1, Whiteouts: 1, Bytes: 12000},
				{Entries: 1, Whiteouts: 1},
			}
			if len(a.Layers) != 3 {
				t.Fatalf("%d layers analysed, want 3", len(a.Layers))
			}
			for i, w := range want {
				l := a.Layers[i]
				got := counts{l.Entries, l.Regular, l.Dirs, l.Whiteouts, l.HiddenFiles, l.Bytes, l.HiddenBytes}
				if got != w {
					t.Errorf("layer %d: %+v, want %+v", i, got, w)
				}
			}
			// dive: etc/big in two layers (10000+12000), etc/keep in two
			// (100, and 0 for the whiteout of a file); opt's whiteout
			// counts the 3000 bytes below it, but opt was no leaf below.
			if a.WastedBytes != 22100 || a.Efficiency != 16000.0/28100.0 || a.Files != 4 || a.Bytes != 25100 ||
				a.HiddenFiles != 3 || a.HiddenBytes != 13100 || a.Truncated || a.Partial {
				t.Errorf("image analysis %+v", a)
			}
			wantWaste := []report.PathWaste{{Path: "etc/big", Layers: 2, Bytes: 22000}, {Path: "etc/keep", Layers: 2, Bytes: 100}}
			if !reflect.DeepEqual(a.Inefficiencies, wantWaste) {
				t.Errorf("inefficiencies %+v, want %+v", a.Inefficiencies, wantWaste)
			}
			if a.Layers[0].Largest[0] != (report.FileSize{Path: "etc/big", Size: 10000}) {
				t.Errorf("largest of layer 0: %+v", a.Layers[0].Largest)
			}
			// The layer kept uncompressed has ratio 1; a gzip layer kept
			// compressed (not in the graphdriver saves) is above 1.
			if a.Layers[1].CompressionRatio != 1 {
				t.Errorf("layer 1 ratio %v, want 1", a.Layers[1].CompressionRatio)
			}
			if f != fixtures.FormatDockerLegacy && f != fixtures.FormatDockerOCI && a.Layers[0].CompressionRatio <= 1 {
				t.Errorf("gzip layer 0 ratio %v, want above 1", a.Layers[0].CompressionRatio)
			}
		})
	}
}

func TestAnalyzeOffByDefault(t *testing.T) {
	out, _, code := runCLI(t, "tar", "--no-progress", "-o", "json", writeWaste(t, fixtures.FormatOCIArchive))
	if rep := jsonReport(t, out); code != ExitOK || rep.Images[0].Analysis != nil {
		t.Errorf("exit %d, analysis %+v; want 0 and none without --analyze", code, rep.Images[0].Analysis)
	}
}

func TestPolicyMaxWastedBytes(t *testing.T) {
	p := writeWaste(t, fixtures.FormatDockerContainerd)
	// Equal to the limit passes, and the flag alone turns the analysis on.
	out, errOut, code := runCLI(t, "tar", "--no-progress", "-o", "json", "--max-wasted-bytes", "22100", p)
	rep := jsonReport(t, out)
	if code != ExitOK || rep.Images[0].Analysis == nil || len(rep.Findings) != 0 {
		t.Fatalf("--max-wasted-bytes 22100: exit %d, analysis %v, findings %s\nstderr: %s", code, rep.Images[0].Analysis != nil, findingsText(rep), errOut)
	}
	out, _, code = runCLI(t, "tar", "--no-progress", "-o", "json", "--max-wasted-bytes", "22099", p)
	rep = jsonReport(t, out)
	if code != ExitFindings || len(rep.Findings) != 1 {
		t.Fatalf("--max-wasted-bytes 22099: exit %d, findings %s; want 1 and one finding", code, findingsText(rep))
	}
	f := rep.Findings[0]
	if f.Check != report.PolicyWasted || f.Severity != report.Error || f.Subject.Image != "example.com/waste:1" ||
		f.Actual != "22100 wasted bytes" || rep.Images[0].Status != report.StatusFailed {
		t.Errorf("finding %+v, image status %s", f, rep.Images[0].Status)
	}
	if _, _, code := runCLI(t, "tar", "--max-wasted-bytes", "-5", p); code != ExitUsage {
		t.Errorf("--max-wasted-bytes -5: exit %d, want %d", code, ExitUsage)
	}
	// merge judges the analysis the shard reports carry; a report without
	// one cannot be judged (exit 3), it does not pass.
	dir := t.TempDir()
	with, without := filepath.Join(dir, "with.json"), filepath.Join(dir, "without.json")
	runCLI(t, "tar", "--no-progress", "-q", "--analyze", "-o", "json="+with, p)
	runCLI(t, "tar", "--no-progress", "-q", "-o", "json="+without, p)
	if _, errOut, code := runCLI(t, "merge", "-q", "--max-wasted-bytes", "1000", with); code != ExitFindings {
		t.Errorf("merge --max-wasted-bytes 1000 of an analysed report: exit %d, want %d\n%s", code, ExitFindings, errOut)
	}
	if _, errOut, code := runCLI(t, "merge", "-q", "--max-wasted-bytes", "1000", without); code != ExitCannotCheck {
		t.Errorf("merge --max-wasted-bytes of a report without analysis: exit %d, want %d\n%s", code, ExitCannotCheck, errOut)
	}
}

// TestAnalyzeCommandGolden pins the table of layercheck analyze.
func TestAnalyzeCommandGolden(t *testing.T) {
	p := writeWaste(t, fixtures.FormatDockerContainerd)
	out, errOut, code := runCLI(t, "analyze", "--no-progress", p)
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s", code, errOut)
	}
	got := strings.ReplaceAll(out, p, "FIXTURE")
	golden := filepath.Join("testdata", "analyze.golden")
	if *updateAnalyze {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("analyze output differs from %s (go test -run AnalyzeCommandGolden -update-analyze rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
	// --analyze adds the summary line to the verification table.
	out, _, _ = runCLI(t, "tar", "--analyze", "--no-progress", p)
	if !strings.Contains(out, "analysis: 24.5 KiB in 4 files, efficiency 56.9%, wasted 21.6 KiB") {
		t.Errorf("tar --analyze table lacks the analysis summary:\n%s", out)
	}
	// A layout directory is dispatched to the layout reader.
	if _, errOut, code := runCLI(t, "analyze", "-q", "--no-progress", writeWaste(t, fixtures.FormatOCILayout)); code != ExitOK {
		t.Errorf("analyze of a layout: exit %d\n%s", code, errOut)
	}
}

// TestAnalyzeRemote: a SOURCE that is no path is a registry reference, read
// through the remote client (go-containerregistry's in-memory registry).
// random.Image layers hold one 3000-byte file each.
func TestAnalyzeRemote(t *testing.T) {
	rr := newRemoteRegistry(t)
	rr.push(t, "app:1")
	out, errOut, code := runCLI(t, "analyze", "--no-progress", "-o", "json", rr.host+"/app:1")
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s", code, errOut)
	}
	rep := jsonReport(t, out)
	if rep.Command != "remote" || len(rep.Images) != 1 || rep.Images[0].Analysis == nil {
		t.Fatalf("command %s, images %+v", rep.Command, rep.Images)
	}
	a := rep.Images[0].Analysis
	if len(a.Layers) != 2 || a.Files != 2 || a.Bytes != 6000 || a.WastedBytes != 0 || a.Efficiency != 1 {
		t.Errorf("analysis %+v, want 2 layers of one 3000-byte file, nothing wasted", a)
	}
	for _, l := range a.Layers {
		if l.CompressionRatio <= 0 {
			t.Errorf("layer %d: ratio %v, want the tar over the stored size", l.Index, l.CompressionRatio)
		}
	}
}
