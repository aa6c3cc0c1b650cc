package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// sampleTar is the bundled sample: layercheck.dev/sample:1, linux/amd64, an
// OCI manifest with two uncompressed layers of 5120 and 3584 bytes.
var sampleTar = filepath.Join("..", "..", "testdata", "sample.tar")

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociLayerTar = "application/vnd.oci.image.layer.v1.tar"
)

// policyRun runs tar over the sample with extra flags and returns the JSON
// report, the findings of check c and the exit code.
func policyRun(t *testing.T, c report.Check, args ...string) (report.Report, []report.Finding, int) {
	t.Helper()
	out, errOut, code := runCLI(t, append([]string{"tar", "-o", "json", "--no-progress", sampleTar}, args...)...)
	rep := jsonReport(t, out)
	if errOut != "" {
		t.Logf("stderr: %s", errOut)
	}
	var fs []report.Finding
	for _, f := range rep.Findings {
		if f.Check == c {
			fs = append(fs, f)
		}
	}
	return rep, fs, code
}

func TestPolicyRequirePlatforms(t *testing.T) {
	for _, ok := range []string{"linux/amd64", "linux/amd64,linux/amd64"} {
		if _, fs, code := policyRun(t, report.PolicyPlatforms, "--require-platforms", ok); code != ExitOK || len(fs) != 0 {
			t.Errorf("--require-platforms %s: exit %d, findings %+v; want 0 and none", ok, code, fs)
		}
	}
	rep, fs, code := policyRun(t, report.PolicyPlatforms, "--require-platforms", "linux/amd64,linux/arm64")
	if code != ExitFindings || rep.Summary.Verdict != report.VerdictFailed {
		t.Fatalf("missing linux/arm64: exit %d, verdict %s; want %d, failed", code, rep.Summary.Verdict, ExitFindings)
	}
	if len(fs) != 1 || fs[0].Severity != report.Error || fs[0].Subject.Image != "layercheck.dev/sample:1" ||
		fs[0].Expected != "linux/arm64" || fs[0].Actual != "linux/amd64" {
		t.Fatalf("findings %+v, want one error for layercheck.dev/sample:1 expecting linux/arm64, actual linux/amd64", fs)
	}
	// A variant must match when it is named.
	if _, fs, code := policyRun(t, report.PolicyPlatforms, "--require-platforms", "linux/amd64/v3"); code != ExitFindings || len(fs) != 1 {
		t.Errorf("linux/amd64/v3 against linux/amd64: exit %d, findings %+v; want 1 and one finding", code, fs)
	}
	if _, errOut, code := runCLI(t, "tar", "--require-platforms", "linux", sampleTar); code != ExitUsage || !strings.Contains(errOut, "os/arch") {
		t.Errorf("--require-platforms linux: exit %d, stderr %q; want a usage error", code, errOut)
	}
}

func TestPolicyMaxLayerSize(t *testing.T) {
	// Layer 0 is 5120 bytes stored and uncompressed: equal to the limit passes.
	if _, fs, code := policyRun(t, report.PolicyLayerSize, "--max-layer-size", "5120"); code != ExitOK || len(fs) != 0 {
		t.Errorf("--max-layer-size 5120: exit %d, findings %+v; want 0 and none", code, fs)
	}
	rep, fs, code := policyRun(t, report.PolicyLayerSize, "--max-layer-size", "5119")
	if code != ExitFindings {
		t.Fatalf("--max-layer-size 5119: exit %d, want %d", code, ExitFindings)
	}
	if len(fs) != 1 || fs[0].Subject.Layer == nil || *fs[0].Subject.Layer != 0 || fs[0].Severity != report.Error ||
		fs[0].Subject.Digest != rep.Images[0].Layers[0].Digest {
		t.Fatalf("findings %+v, want one error on layer 0", fs)
	}
	if rep.Images[0].Layers[0].Status != report.StatusFailed || rep.Images[0].Layers[1].Status != report.StatusOK {
		t.Errorf("layer statuses %s, %s; want failed, ok", rep.Images[0].Layers[0].Status, rep.Images[0].Layers[1].Status)
	}
	if _, _, code := runCLI(t, "tar", "--max-layer-size", "-1", sampleTar); code != ExitUsage {
		t.Errorf("--max-layer-size -1: exit %d, want %d", code, ExitUsage)
	}
}

func TestPolicyAllowedMediaTypes(t *testing.T) {
	if _, fs, code := policyRun(t, report.PolicyMediaType, "--allowed-media-types", ociManifest+","+ociLayerTar); code != ExitOK || len(fs) != 0 {
		t.Errorf("manifest and layer types allowed: exit %d, findings %+v; want 0 and none", code, fs)
	}
	_, fs, code := policyRun(t, report.PolicyMediaType, "--allowed-media-types", ociManifest+",application/vnd.oci.image.layer.v1.tar+gzip")
	if code != ExitFindings {
		t.Fatalf("plain tar layers not allowed: exit %d, want %d", code, ExitFindings)
	}
	if len(fs) != 2 {
		t.Fatalf("findings %+v, want one per layer", fs)
	}
	for i, f := range fs {
		if f.Subject.Layer == nil || *f.Subject.Layer != i || f.Actual != ociLayerTar {
			t.Errorf("finding %d: %+v, want layer %d with actual %s", i, f, i, ociLayerTar)
		}
	}
	_, fs, code = policyRun(t, report.PolicyMediaType, "--allowed-media-types", ociLayerTar)
	if code != ExitFindings || len(fs) != 1 || fs[0].Subject.Layer != nil || fs[0].Actual != ociManifest {
		t.Fatalf("manifest type not allowed: exit %d, findings %+v; want one finding on the manifest", code, fs)
	}
}

func TestPolicyRequireDigest(t *testing.T) {
	// Archives are addressed by content: nothing to refuse.
	if _, fs, code := policyRun(t, report.PolicyDigestRef, "--require-digest"); code != ExitOK || len(fs) != 0 {
		t.Errorf("tar --require-digest: exit %d, findings %+v; want 0 and none", code, fs)
	}
	rr := newRemoteRegistry(t)
	img := rr.push(t, "app:1")
	d, _ := img.Digest()
	pinned := rr.host + "/app@" + d.String()
	out, errOut, code := runCLI(t, "remote", "-o", "json", "--no-progress", "--require-digest", pinned)
	if rep := jsonReport(t, out); code != ExitOK || rep.Summary.Errors != 0 {
		t.Fatalf("pinned reference: exit %d, %d errors; stderr %s", code, rep.Summary.Errors, errOut)
	}
	tagged := rr.host + "/app:1"
	out, errOut, code = runCLI(t, "remote", "-o", "json", "--no-progress", "--require-digest", pinned, tagged)
	rep := jsonReport(t, out)
	if code != ExitFindings {
		t.Fatalf("tag reference: exit %d, want %d; stderr %s", code, ExitFindings, errOut)
	}
	var fs []report.Finding
	for _, f := range rep.Findings {
		if f.Check == report.PolicyDigestRef {
			fs = append(fs, f)
		}
	}
	if len(fs) != 1 || fs[0].Subject.Image != tagged || fs[0].Actual != tagged || fs[0].Severity != report.Error {
		t.Fatalf("findings %+v, want one error naming %s", fs, tagged)
	}
	// The same run without the policy passes: the finding is the policy's.
	if _, _, code := runCLI(t, "remote", "-q", "--no-progress", pinned, tagged); code != ExitOK {
		t.Errorf("without --require-digest: exit %d, want 0", code)
	}
}

// TestMergeRoundTrip verifies two inputs separately, merges the JSON
// reports, and compares with one run over both.
func TestMergeRoundTrip(t *testing.T) {
	dir := t.TempDir()
	var corrupt *fixtures.Case
	for _, c := range fixtures.Corruptions() {
		if c.Name == "flip-layer-byte" {
			corrupt = &c
			break
		}
	}
	if corrupt == nil {
		t.Fatal("fixtures: no flip-layer-byte case")
	}
	fx, err := corrupt.Make(fixtures.FormatDockerLegacy)
	if err != nil {
		t.Fatal(err)
	}
	broken, err := fx.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(dir, "report-a.json"), filepath.Join(dir, "report-b.json")
	if _, errOut, code := runCLI(t, "tar", "--no-progress", "-o", "json="+a, sampleTar); code != ExitOK {
		t.Fatalf("sample: exit %d, stderr %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, "tar", "--no-progress", "-o", "json="+b, broken); code != ExitFindings {
		t.Fatalf("broken: exit %d, stderr %s", code, errOut)
	}
	out, errOut, code := runCLI(t, "merge", "-o", "json", a, b)
	if code != ExitFindings {
		t.Fatalf("merge: exit %d, want %d; stderr %s", code, ExitFindings, errOut)
	}
	merged := jsonReport(t, out)
	out, _, wantCode := runCLI(t, "tar", "--no-progress", "-o", "json", sampleTar, broken)
	single := jsonReport(t, out)
	if wantCode != code {
		t.Errorf("exit codes: merge %d, single run %d", code, wantCode)
	}
	if len(single.Images) != 2 || single.Summary.Errors == 0 {
		t.Fatalf("single run: %d images, %d errors; want 2 images with errors", len(single.Images), single.Summary.Errors)
	}
	if !reflect.DeepEqual(merged.Images, single.Images) {
		t.Errorf("images differ:\nmerged %+v\nsingle %+v", merged.Images, single.Images)
	}
	if !reflect.DeepEqual(merged.Findings, single.Findings) {
		t.Errorf("findings differ:\nmerged %s\nsingle %s", findingsText(merged), findingsText(single))
	}
	if merged.Summary != single.Summary {
		t.Errorf("summary: merged %+v, single %+v", merged.Summary, single.Summary)
	}
	if merged.Command != "tar" || merged.Source != single.Source {
		t.Errorf("merged command %q source %q; want tar, %q", merged.Command, merged.Source, single.Source)
	}

	// Policies apply to the merged report.
	out, _, code = runCLI(t, "merge", "-o", "json", "--require-platforms", "linux/arm64", a)
	rep := jsonReport(t, out)
	if code != ExitFindings || rep.Summary.Errors != 1 || rep.Findings[len(rep.Findings)-1].Check != report.PolicyPlatforms {
		t.Errorf("merge --require-platforms linux/arm64: exit %d, findings %s", code, findingsText(rep))
	}

	// A file that is not a report cannot be merged.
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"findings": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "merge", a, bad); code != ExitCannotCheck || !strings.Contains(errOut, "bad.json") {
		t.Errorf("merging a non-report: exit %d, stderr %q; want %d naming the file", code, errOut, ExitCannotCheck)
	}
}
