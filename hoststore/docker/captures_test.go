package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/e2e/storetar"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
)

// extractCapture restores a real store capture of fixtures/testdata/stores
// (written by the e2e harness from a real dockerd) into a temporary
// directory and returns it with the daemon's own answers about it.
func extractCapture(t *testing.T, name string) (string, *storetar.Truth) {
	return storetar.ExtractCapture(t, name)
}

// emptyTar is the diffID of a layer of 1024 zero bytes (layer/empty.go).
const emptyTar = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

// TestRealStoreCaptures audits the data roots of real dockerds (overlay2 and
// vfs): zero error or warning findings, every image with the daemon's own
// diffIDs and chainIDs, every layer rebuilt to its diffID, and nothing
// written.
func TestRealStoreCaptures(t *testing.T) {
	for _, name := range []string{"docker-overlay2", "docker-vfs"} {
		t.Run(name, func(t *testing.T) {
			root, truth := extractCapture(t, name)
			before := dockertest.TreeHash(t, root)
			r := runAudit(t, root, Options{Jobs: 2})
			if st, _ := Open(root, Options{}); st.Driver() != truth.Driver {
				t.Errorf("driver = %s, want %s", st.Driver(), truth.Driver)
			}
			for _, f := range r.Findings {
				if f.Severity >= report.Warning {
					t.Errorf("finding on a real, intact store: %s %s [%s] %s (expected %q, actual %q)", f.Severity, f.Check, f.Subject, f.Message, f.Expected, f.Actual)
				}
			}
			for _, p := range r.Problems {
				t.Errorf("problem on a real store: [%s] %s", p.Subject, p.Message)
			}
			byID := map[string]report.Image{}
			for _, img := range r.Images {
				byID[img.ConfigDigest] = img
			}
			for _, ti := range truth.Images {
				img, ok := byID[ti.ID]
				if !ok {
					t.Errorf("image %s (%s) not in the report", ti.Ref, ti.ID)
					continue
				}
				for _, tag := range ti.RepoTags {
					if !contains(img.Tags, tag) {
						t.Errorf("image %s: tag %s missing from %v", ti.Ref, tag, img.Tags)
					}
				}
				for _, d := range ti.RepoDigests {
					if !contains(img.Tags, d) {
						t.Errorf("image %s: repo digest %s missing from %v", ti.Ref, d, img.Tags)
					}
				}
				if len(img.Layers) != len(ti.DiffIDs) {
					t.Errorf("image %s: %d layers, daemon says %d", ti.Ref, len(img.Layers), len(ti.DiffIDs))
					continue
				}
				for i, l := range img.Layers {
					if l.DiffID != ti.DiffIDs[i] || l.ChainID != ti.ChainIDs[i] || (l.Entries == 0 && l.DiffID != emptyTar) {
						t.Errorf("image %s layer %d: rebuilt diffID %s chainID %s (%d entries); daemon says %s, %s", ti.Ref, i, l.DiffID, l.ChainID, l.Entries, ti.DiffIDs[i], ti.ChainIDs[i])
					}
					if !strings.Contains(l.Location, ti.CacheIDs[i]) {
						t.Errorf("image %s layer %d: location %s, daemon's cache-id %s", ti.Ref, i, l.Location, ti.CacheIDs[i])
					}
				}
			}
			if after := dockertest.TreeHash(t, root); strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Fatalf("the audit changed the data root")
			}
			if testing.Verbose() {
				report.WriteText(os.Stdout, r, report.TextOptions{Verbose: true})
			}
		})
	}
}

// TestRealStoreCaptureCorrupted damages a real overlay2 capture the way
// users find it damaged and requires the named finding.
func TestRealStoreCaptureCorrupted(t *testing.T) {
	root, truth := extractCapture(t, "docker-overlay2")
	var img storetar.TruthImage
	for _, ti := range truth.Images {
		if len(ti.CacheIDs) > 1 {
			img = ti
			break
		}
	}
	if img.ID == "" {
		t.Fatal("capture has no image with two layers")
	}
	// Add a file to the top layer's diff/, and chmod one of its entries.
	top := len(img.CacheIDs) - 1
	diff := filepath.Join(root, "overlay2", img.CacheIDs[top], "diff")
	dockertest.WriteFile(t, filepath.Join(diff, "EVIL"), nil, 0o644)
	r := runAudit(t, root, Options{Jobs: 2, Images: []string{img.ID}})
	requireFinding(t, r, want{check: ExtraFile, entry: "EVIL", digest: img.ChainIDs[top]})
	if len(r.Images) != 1 || r.Images[0].ConfigDigest != img.ID {
		t.Errorf("selection by ID gave %d images", len(r.Images))
	}
}
