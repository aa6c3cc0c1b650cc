//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/layercheck/layercheck/e2e/harness"
	"github.com/layercheck/layercheck/report"
)

// These tests run layercheck on what the real tools wrote (docker save
// tarballs, skopeo OCI layouts and oci-archives) and compare its JSON report
// with the tools' own answers: a clean archive gives exit 0 and no error
// finding, and the config digests, layer digests, diffIDs and chainIDs
// layercheck prints are the daemon's (and skopeo's).

// layercheckRun is one run of the layercheck binary.
type layercheckRun struct {
	Report *report.Report
	Code   int
	Stdout string
	Stderr string
}

// layercheck runs the binary built by TestMain. It skips the test when the CLI
// or the command does not exist yet, and fails it when the CLI does not build.
func layercheck(t *testing.T, s *Suite, args ...string) layercheckRun {
	t.Helper()
	if errors.Is(s.LayercheckErr, errNoCLI) {
		t.Skip("cmd/layercheck does not exist yet: nothing to compare with the daemons")
	}
	if s.LayercheckErr != nil {
		t.Fatalf("building cmd/layercheck: %v", s.LayercheckErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Layercheck, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	run := layercheckRun{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		run.Code = ee.ExitCode()
	default:
		t.Fatalf("running layercheck %s: %v", strings.Join(args, " "), err)
	}
	if run.Code == 80 {
		// Usage error: the command (or flag) is not there yet.
		t.Skipf("layercheck %s: usage error (exit 80), the command is not implemented yet: %s", strings.Join(args, " "), strings.TrimSpace(run.Stderr))
	}
	for _, a := range args {
		if a == "json" {
			var r report.Report
			if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
				t.Fatalf("layercheck %s: exit %d, stdout is not a JSON report: %v\nstdout: %.2000s\nstderr: %.2000s",
					strings.Join(args, " "), run.Code, err, run.Stdout, run.Stderr)
			}
			run.Report = &r
		}
	}
	return run
}

// requireClean fails the test unless the run exited 0 with no error finding
// and no problem.
func requireClean(t *testing.T, what string, run layercheckRun) {
	t.Helper()
	if run.Code != 0 || run.Report == nil || run.Report.Summary.Errors != 0 || run.Report.Summary.Problems != 0 {
		var findings []string
		if run.Report != nil {
			for _, f := range run.Report.Findings {
				findings = append(findings, string(f.Check)+" "+f.Subject.String()+": "+f.Message)
			}
			for _, p := range run.Report.Problems {
				findings = append(findings, "problem "+p.Subject.String()+": "+p.Message)
			}
		}
		t.Fatalf("%s: exit %d, want 0 on a clean input; findings:\n%s\nstderr: %.2000s", what, run.Code, strings.Join(findings, "\n"), run.Stderr)
	}
}

// findImage returns the report's image with the config digest, or nil.
func findImage(r *report.Report, config string) *report.Image {
	for i := range r.Images {
		if r.Images[i].ConfigDigest == config {
			return &r.Images[i]
		}
	}
	return nil
}

// want is the ground truth for one image of a report.
type want struct {
	config  string
	diffIDs []string
	chain   []string
	digests []string // stored layer digests; nil: the diffIDs (uncompressed layers)
}

func checkImage(t *testing.T, what string, r *report.Report, w want) {
	t.Helper()
	img := findImage(r, w.config)
	if img == nil {
		var got []string
		for _, im := range r.Images {
			got = append(got, im.Name+"="+im.ConfigDigest)
		}
		t.Errorf("%s: no image with config %s in the report (images: %v)", what, w.config, got)
		return
	}
	if len(img.Layers) != len(w.diffIDs) {
		t.Errorf("%s: %d layers in the report, the daemon has %d", what, len(img.Layers), len(w.diffIDs))
		return
	}
	digests := w.digests
	if digests == nil {
		digests = w.diffIDs
	}
	for i, l := range img.Layers {
		if l.DiffID != w.diffIDs[i] {
			t.Errorf("%s: layer %d diffID %s, the daemon's is %s", what, i, l.DiffID, w.diffIDs[i])
		}
		if l.ChainID != w.chain[i] {
			t.Errorf("%s: layer %d chainID %s, the daemon's layer store has %s", what, i, l.ChainID, w.chain[i])
		}
		if l.Digest != digests[i] {
			t.Errorf("%s: layer %d digest %s, want %s", what, i, l.Digest, digests[i])
		}
	}
}

func truthOf(img *harness.Image) want {
	return want{config: img.Inspect.ID, diffIDs: img.Inspect.RootFS.Layers, chain: img.ChainIDs}
}

// TestTarDockerSave: `layercheck tar` on each `docker save` of one image.
func TestTarDockerSave(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		for _, img := range s.Sets[drv].Images {
			t.Run(drv+"/"+img.Name, func(t *testing.T) {
				run := layercheck(t, s, "tar", img.Save, "--output", "json")
				requireClean(t, "layercheck tar "+img.Save, run)
				if n := len(run.Report.Images); n != 1 {
					t.Errorf("%d images in the report of a one-image save", n)
				}
				checkImage(t, img.Ref, run.Report, truthOf(img))
			})
		}
	}
}

// TestTarDockerSaveAll: `layercheck tar` on a save of every image at once
// (shared layers stored once).
func TestTarDockerSaveAll(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		t.Run(drv, func(t *testing.T) {
			run := layercheck(t, s, "tar", set.SaveAll, "--output", "json")
			requireClean(t, "layercheck tar "+set.SaveAll, run)
			for _, img := range set.Images {
				if strings.HasPrefix(img.Name, "cross-") {
					continue // pulled after the save
				}
				checkImage(t, img.Ref, run.Report, truthOf(img))
			}
		})
	}
}

// layoutTruth returns the ground truth of image name in a skopeo layout: the
// config and layer digests skopeo wrote, the diffIDs and chainIDs of the
// daemon (skopeo rewrites the config as an OCI config, so the config digest is
// not the image ID, but the layers' content is the same).
func layoutTruth(t *testing.T, layout []harness.LayoutImage, img *harness.Image) want {
	t.Helper()
	for _, li := range layout {
		if li.RefName == img.Name {
			if strings.Join(li.DiffIDs, " ") != strings.Join(img.Inspect.RootFS.Layers, " ") {
				t.Fatalf("skopeo's config of %s has diff_ids %v, the daemon %v", img.Name, li.DiffIDs, img.Inspect.RootFS.Layers)
			}
			return want{config: li.ConfigDigest, diffIDs: img.Inspect.RootFS.Layers, chain: img.ChainIDs, digests: li.LayerDigests}
		}
	}
	t.Fatalf("no %s in the layout", img.Name)
	return want{}
}

// TestLayoutSkopeo: `layercheck layout` on skopeo's OCI layouts with gzip and
// zstd layers (several images per layout, shared blobs).
func TestLayoutSkopeo(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		c := s.Copies[drv]
		for comp, dir := range map[string]string{"gzip": c.LayoutGzip, "zstd": c.LayoutZstd} {
			t.Run(drv+"/"+comp, func(t *testing.T) {
				layout, err := harness.ReadLayout(dir)
				if err != nil {
					t.Fatal(err)
				}
				run := layercheck(t, s, "layout", dir, "--output", "json")
				requireClean(t, "layercheck layout "+dir, run)
				for _, name := range CopiedImages {
					w := layoutTruth(t, layout, s.Sets[drv].Image(name))
					checkImage(t, comp+" layout "+name, run.Report, w)
					img := findImage(run.Report, w.config)
					if img == nil {
						continue
					}
					for i, l := range img.Layers {
						if l.Compression != comp {
							t.Errorf("%s layout %s layer %d: compression %q, want %q", comp, name, i, l.Compression, comp)
						}
					}
				}
			})
		}
	}
}

// TestTarOCIArchive: `layercheck tar` on skopeo's oci-archive files.
func TestTarOCIArchive(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		c := s.Copies[drv]
		layout, err := harness.ReadLayout(c.LayoutGzip)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range CopiedImages {
			t.Run(drv+"/"+name, func(t *testing.T) {
				run := layercheck(t, s, "tar", c.OCIArchives[name], "--output", "json")
				requireClean(t, "layercheck tar "+c.OCIArchives[name], run)
				w := layoutTruth(t, layout, s.Sets[drv].Image(name))
				w.digests = nil // compressed again on its own; only the content must agree
				img := findImage(run.Report, w.config)
				if img == nil {
					t.Fatalf("no image with config %s in the report", w.config)
				}
				for i, l := range img.Layers {
					if i < len(w.diffIDs) && (l.DiffID != w.diffIDs[i] || l.ChainID != w.chain[i]) {
						t.Errorf("layer %d: diffID %s chainID %s, the daemon's %s %s", i, l.DiffID, l.ChainID, w.diffIDs[i], w.chain[i])
					}
				}
				if len(img.Layers) != len(w.diffIDs) {
					t.Errorf("%d layers, the daemon has %d", len(img.Layers), len(w.diffIDs))
				}
			})
		}
	}
}

// TestChainID: `layercheck chainid` prints the chainIDs the daemon's layer
// store uses as directory names.
func TestChainID(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		for _, img := range s.Sets[drv].Images {
			t.Run(drv+"/"+img.Name, func(t *testing.T) {
				run := layercheck(t, s, append([]string{"chainid"}, img.Inspect.RootFS.Layers...)...)
				if run.Code != 0 {
					t.Fatalf("exit %d: %s", run.Code, run.Stderr)
				}
				got := strings.Fields(run.Stdout)
				if strings.Join(got, " ") != strings.Join(img.ChainIDs, " ") {
					t.Errorf("layercheck chainid = %v, the layer store has %v", got, img.ChainIDs)
				}
			})
		}
	}
}

// TestTarCorruptedSaveCopy: one flipped byte in a layer of a copy of a real
// save is reported (exit 1, layer-diffid), and the original save stays clean.
// It shows that the comparisons above can fail, and how later issues use
// Env.Corrupt.
func TestTarCorruptedSaveCopy(t *testing.T) {
	s := need(t)
	drv := s.Drivers[len(s.Drivers)-1]
	img := s.Sets[drv].Image("layers")
	c := s.Env.Corrupt(t, img.Save)
	entries, err := harness.DockerSaveLayers(img.Save)
	if err != nil || len(entries) != 1 {
		t.Fatalf("reading manifest.json of %s: %v (%d entries)", img.Save, err, len(entries))
	}
	// Layer 0 holds busybox: its middle is file content, not a tar header.
	off, size, err := c.TarMember("", entries[0].Layers[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := c.FlipByte("", off+size/2); err != nil {
		t.Fatal(err)
	}
	run := layercheck(t, s, "tar", c.Path, "--output", "json")
	if run.Code != 1 {
		t.Fatalf("exit %d on a corrupted save, want 1; stderr: %s", run.Code, run.Stderr)
	}
	found := false
	for _, f := range run.Report.Findings {
		found = found || f.Check == report.LayerDiffID
	}
	if !found {
		t.Errorf("no %s finding for a flipped byte in layer 0: %+v", report.LayerDiffID, run.Report.Findings)
	}
	requireClean(t, "the original save", layercheck(t, s, "tar", img.Save, "--output", "json"))
}
