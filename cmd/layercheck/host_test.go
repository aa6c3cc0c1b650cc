package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
)

func hostStore(t *testing.T) *dockertest.Store {
	t.Helper()
	return dockertest.Build(t, dockertest.DefaultSpec("overlay2", dockertest.IsRoot()))
}

func readReport(t *testing.T, path string) *report.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHostCommand(t *testing.T) {
	s := hostStore(t)
	jsonOut := filepath.Join(t.TempDir(), "report.json")
	out, errOut, code := runCLI(t, "host", "--root", s.Root, "-o", "table", "-o", "json="+jsonOut)
	if code != ExitOK {
		t.Fatalf("host on a clean store: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "example.com/app:1") || !strings.Contains(out, "OK: 3 images, 4 layers") {
		t.Errorf("table output lacks the images or the verdict:\n%s", out)
	}
	r := readReport(t, jsonOut)
	if r.Command != "host" || !strings.Contains(r.Source, s.Root) || !strings.Contains(r.Source, "overlay2") {
		t.Errorf("report command %q source %q", r.Command, r.Source)
	}
	app := s.Images["app"]
	var found bool
	for _, img := range r.Images {
		if img.ConfigDigest != app.ID.String() {
			continue
		}
		found = true
		if len(img.Layers) != 2 {
			t.Fatalf("app has %d layers in the report", len(img.Layers))
		}
		for i, l := range img.Layers {
			if l.DiffID != app.Layers[i].DiffID.String() || l.ChainID != app.Layers[i].ChainID.String() {
				t.Errorf("layer %d = %s/%s, want %s/%s", i, l.DiffID, l.ChainID, app.Layers[i].DiffID, app.Layers[i].ChainID)
			}
		}
	}
	if !found {
		t.Fatalf("app image not in the JSON report")
	}

	// Damage a file: exit 1, the finding names it.
	l0 := s.Layers["L0"]
	p := s.Path(l0.Dir + "/etc/hello")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code = runCLI(t, "host", "--root", s.Root, "-o", "json", "example.com/base:1")
	if code != ExitFindings {
		t.Fatalf("host on a damaged store: exit %d, want %d\n%s", code, ExitFindings, out)
	}
	var doc struct {
		Images   []report.Image   `json:"images"`
		Findings []report.Finding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Images) != 1 || doc.Images[0].Name != "example.com/base:1" {
		t.Errorf("selection gave images %+v", doc.Images)
	}
	ok := false
	for _, f := range doc.Findings {
		if f.Check == "host-file-crc" && f.Subject.Entry == "etc/hello" && f.Subject.Image == "example.com/base:1" {
			ok = true
		}
	}
	if !ok {
		t.Errorf("no host-file-crc finding for etc/hello:\n%s", out)
	}
}

func TestHostCommandErrors(t *testing.T) {
	s := hostStore(t)
	if _, errOut, code := runCLI(t, "host", "--root", t.TempDir()); code != ExitCannotCheck || !strings.Contains(errOut, "not a store layercheck knows") || !strings.Contains(errOut, "image/<driver>") {
		t.Errorf("host on an empty directory: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "host", "--root", s.Root, "--driver", "aufs"); code != ExitUsage || !strings.Contains(errOut, "aufs") {
		t.Errorf("host --driver aufs: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := runCLI(t, "host", "--root", s.Root, "nosuch:tag"); code != ExitCannotCheck || !strings.Contains(errOut, "nosuch:tag") {
		t.Errorf("host with an unknown image: exit %d, stderr %q", code, errOut)
	}
}

// TestHostPolicies: the CI policy flags judge host images like any report:
// the platform comes from each image config, layer sizes from the rebuilt
// streams; each violation is a policy-* error finding and exit 1.
func TestHostPolicies(t *testing.T) {
	s := hostStore(t)
	app := s.Images["app"]
	policyFindings := func(r *report.Report, check report.Check) []report.Finding {
		var out []report.Finding
		for _, f := range r.Findings {
			if f.Check == check {
				out = append(out, f)
			}
		}
		return out
	}
	run := func(args ...string) (*report.Report, int) {
		t.Helper()
		jsonOut := filepath.Join(t.TempDir(), "report.json")
		out, errOut, code := runCLI(t, append([]string{"host", "--root", s.Root, "-o", "json=" + jsonOut}, args...)...)
		if code != ExitOK && code != ExitFindings {
			t.Fatalf("host %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return readReport(t, jsonOut), code
	}

	// Passing: the store's images are linux/amd64 and every layer is small.
	r, code := run("--require-platforms", "linux/amd64", "--max-layer-size", "1000000", "--allowed-media-types", "application/vnd.oci.image.layer.v1.tar", "--require-digest")
	if code != ExitOK {
		t.Fatalf("policies that hold: exit %d, findings %+v", code, r.Findings)
	}
	for _, img := range r.Images {
		if img.Platform != "linux/amd64" {
			t.Errorf("image %s has platform %q in the report, want the config's linux/amd64", img.Name, img.Platform)
		}
	}

	// Failing platform: every image name lacks linux/arm64.
	r, code = run("--require-platforms", "linux/arm64", "example.com/app:1")
	fs := policyFindings(r, report.PolicyPlatforms)
	if code != ExitFindings || len(fs) != 1 {
		t.Fatalf("--require-platforms linux/arm64: exit %d, %d policy findings, want 1 and exit 1: %+v", code, len(fs), r.Findings)
	}
	if fs[0].Subject.Image != "example.com/app:1" || fs[0].Actual != "linux/amd64" || fs[0].Severity != report.Error {
		t.Errorf("platform finding = %+v", fs[0])
	}

	// Failing size: the limit just below the app's largest rebuilt layer.
	var largest int64
	var largestIdx int
	for _, img := range r.Images {
		if img.ConfigDigest != app.ID.String() {
			continue
		}
		for _, l := range img.Layers {
			if l.TarSize > largest {
				largest, largestIdx = l.TarSize, l.Index
			}
		}
	}
	if largest == 0 {
		t.Fatalf("the app image's layers have no rebuilt size in the report")
	}
	r, code = run("--max-layer-size", strconv.FormatInt(largest-1, 10), "example.com/app:1")
	fs = policyFindings(r, report.PolicyLayerSize)
	if code != ExitFindings || len(fs) == 0 {
		t.Fatalf("--max-layer-size %d: exit %d, findings %+v", largest-1, code, r.Findings)
	}
	var named bool
	for _, f := range fs {
		if f.Subject.Image == "example.com/app:1" && f.Subject.Layer != nil && *f.Subject.Layer == largestIdx {
			named = true
		}
	}
	if !named {
		t.Errorf("no layer-size finding names app layer %d: %+v", largestIdx, fs)
	}

	// A malformed policy flag is a usage error before anything is read.
	if out, _, code := runCLI(t, "host", "--root", s.Root, "--require-platforms", "linux"); code != ExitUsage {
		t.Errorf("--require-platforms linux: exit %d, want %d\n%s", code, ExitUsage, out)
	}
}

// TestHostMaxWastedBytes: on a graph-driver store, host --analyze adds each
// image's layer analysis (from the rebuild pass), and --max-wasted-bytes
// judges it: the app image's upper layer overwrites and deletes files of
// the base, so a limit at its wasted bytes passes and one byte less fails
// with a policy-wasted finding naming it; no image is left unjudged.
func TestHostMaxWastedBytes(t *testing.T) {
	s := hostStore(t)
	run := func(args ...string) (*report.Report, int) {
		t.Helper()
		jsonOut := filepath.Join(t.TempDir(), "report.json")
		out, errOut, code := runCLI(t, append([]string{"host", "--root", s.Root, "-o", "json=" + jsonOut}, args...)...)
		if code != ExitOK && code != ExitFindings {
			t.Fatalf("host %v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return readReport(t, jsonOut), code
	}
	r, code := run("--analyze")
	if code != ExitOK {
		t.Fatalf("host --analyze on a clean store: exit %d, findings %+v", code, r.Findings)
	}
	var wasted int64 = -1
	for _, img := range r.Images {
		if img.Analysis == nil {
			t.Fatalf("host --analyze: image %s has no analysis", img.Name)
		}
		if len(img.Analysis.Layers) != len(img.Layers) || img.Analysis.Partial {
			t.Errorf("image %s: analysis of %d layers (partial %v), the image has %d", img.Name, len(img.Analysis.Layers), img.Analysis.Partial, len(img.Layers))
		}
		if img.Name == "example.com/app:1" {
			wasted = img.Analysis.WastedBytes
		}
	}
	if wasted <= 0 {
		t.Fatalf("app wasted bytes = %d, want > 0 (its upper layer rewrites etc/hello)", wasted)
	}
	if r, _ := run(); r.Images[0].Analysis != nil {
		t.Errorf("host without --analyze carries an analysis")
	}
	if out, _, code := runCLI(t, "host", "--root", s.Root, "--analyze", "example.com/app:1"); code != ExitOK || !strings.Contains(out, "analysis: ") || !strings.Contains(out, "efficiency ") {
		t.Errorf("host --analyze table: exit %d, no analysis summary line:\n%s", code, out)
	}

	r, code = run("--max-wasted-bytes", strconv.FormatInt(wasted, 10))
	if code != ExitOK || len(r.Problems) != 0 {
		t.Fatalf("--max-wasted-bytes %d (app's own figure): exit %d, findings %+v, problems %+v", wasted, code, r.Findings, r.Problems)
	}

	r, code = run("--max-wasted-bytes", strconv.FormatInt(wasted-1, 10))
	var fs []report.Finding
	for _, f := range r.Findings {
		if f.Check == report.PolicyWasted {
			fs = append(fs, f)
		}
	}
	if code != ExitFindings || len(fs) != 1 || len(r.Problems) != 0 {
		t.Fatalf("--max-wasted-bytes %d: exit %d, %d policy-wasted findings (want 1), problems %+v", wasted-1, code, len(fs), r.Problems)
	}
	if fs[0].Subject.Image != "example.com/app:1" || fs[0].Actual != strconv.FormatInt(wasted, 10)+" wasted bytes" || fs[0].Severity != report.Error {
		t.Errorf("policy-wasted finding = %+v", fs[0])
	}
}
