package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// pushBuilt writes b as an OCI layout with the fixtures' own writer and
// pushes that layout's image, blob for blob, with go-containerregistry.
func pushBuilt(t *testing.T, rr *remoteRegistry, repoTag string, b *fixtures.Built) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "push")
	if err := fixtures.WriteOCILayout(dir, fixtures.ImageEntry(b)); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(rr.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d.String() != b.OCIManifestDigest.String() {
		t.Fatalf("pushed manifest %s, the fixture's is %s", d, b.OCIManifestDigest)
	}
}

// writeArtifact writes b in format f (OCI layout directory or docker save tarball).
func writeArtifact(t *testing.T, f fixtures.Format, b *fixtures.Built) string {
	t.Helper()
	fx, err := fixtures.NewFixture(f, b)
	if err != nil {
		t.Fatal(err)
	}
	path, err := fx.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func compareFindings(rep report.Report, sev report.Severity) map[report.Check][]report.Finding {
	out := map[report.Check][]report.Finding{}
	for _, f := range rep.Findings {
		if strings.HasPrefix(string(f.Check), "compare-") && f.Severity >= sev {
			out[f.Check] = append(out[f.Check], f)
		}
	}
	return out
}

func TestCompareIdentical(t *testing.T) {
	rr := newRemoteRegistry(t)
	base := fixtures.MustBuild(fixtures.BaseImage())
	pushBuilt(t, rr, "app:1", base)
	ref := rr.host + "/app:1"
	for _, f := range []fixtures.Format{fixtures.FormatOCILayout, fixtures.FormatOCIArchive, fixtures.FormatDockerContainerd, fixtures.FormatDockerOCI, fixtures.FormatDockerLegacy} {
		t.Run(string(f), func(t *testing.T) {
			art := writeArtifact(t, f, base)
			out, errOut, code := runCLI(t, "compare", "-o", "json", "--no-progress", art, ref)
			if code != ExitOK {
				t.Fatalf("exit %d, stderr %s\n%s", code, errOut, out)
			}
			rep := jsonReport(t, out)
			if rep.Command != "compare" || rep.Summary.Errors != 0 || len(rep.Problems) != 0 {
				t.Fatalf("command %q, %d errors, problems %+v\n%s", rep.Command, rep.Summary.Errors, rep.Problems, findingsText(rep))
			}
			// Both sides were verified and reported: the registry's image and the artifact's.
			if len(rep.Images) != 2 {
				t.Fatalf("%d images, want 2 (registry and artifact)", len(rep.Images))
			}
			for _, im := range rep.Images {
				if im.ConfigDigest != base.ConfigDigest.String() || len(im.Layers) != 3 {
					t.Errorf("%s: config %s, %d layers", im.Name, im.ConfigDigest, len(im.Layers))
				}
			}
			notes := compareFindings(rep, report.Info)[compare.LayerDigestDiffers]
			uncompressed := f == fixtures.FormatDockerOCI || f == fixtures.FormatDockerLegacy
			if uncompressed != (len(notes) == 1) {
				t.Fatalf("uncompressed layers %v, compare-layer-digest notes %+v", uncompressed, notes)
			}
			if uncompressed && !strings.Contains(notes[0].Message, "uncompressed") {
				t.Errorf("the note does not say why: %q", notes[0].Message)
			}
		})
	}
}

func TestCompareTagMoved(t *testing.T) {
	rr := newRemoteRegistry(t)
	base := fixtures.MustBuild(fixtures.BaseImage())
	art := writeArtifact(t, fixtures.FormatOCILayout, base)
	pushBuilt(t, rr, "app:1", base)
	other := fixtures.MustBuild(fixtures.SampleImage())
	pushBuilt(t, rr, "app:1", other) // the tag moved

	out, errOut, code := runCLI(t, "compare", "-o", "json", "--no-progress", art, rr.host+"/app:1")
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stderr %s", code, ExitFindings, errOut)
	}
	rep := jsonReport(t, out)
	got := compareFindings(rep, report.Error)
	cfg := got[compare.Config]
	if len(cfg) != 1 || cfg[0].Expected != other.ConfigDigest.String() || cfg[0].Actual != base.ConfigDigest.String() {
		t.Fatalf("compare-config = %+v, want expected %s (registry) actual %s (artifact)", cfg, other.ConfigDigest, base.ConfigDigest)
	}
	man := got[compare.Manifest]
	if len(man) != 1 || man[0].Expected != other.OCIManifestDigest.String() || man[0].Actual != base.OCIManifestDigest.String() {
		t.Fatalf("compare-manifest = %+v", man)
	}
	if len(got[compare.DiffID]) == 0 {
		t.Errorf("no compare-diffid finding\n%s", findingsText(rep))
	}
	if len(other.Layers) != len(base.Layers) && len(got[compare.LayerCountDiffers]) != 1 {
		t.Errorf("layer counts %d and %d, compare-layer-count %+v", len(other.Layers), len(base.Layers), got[compare.LayerCountDiffers])
	}
	// Each side on its own is a sound image: the findings are differences, not damage.
	for _, f := range rep.Findings {
		if f.Severity == report.Error && !strings.HasPrefix(string(f.Check), "compare-") {
			t.Errorf("verification finding %s on a sound image: %+v", f.Check, f)
		}
	}
}

func TestCompareLayerDiffers(t *testing.T) {
	rr := newRemoteRegistry(t)
	base := fixtures.MustBuild(fixtures.BaseImage())
	pushBuilt(t, rr, "app:1", base)
	img := fixtures.BaseImage()
	img.Layers[2].Files[1] = fixtures.Reg("app/config.json", []byte(`{"listen":":8080","debug":true}`+"\n"))
	changed := fixtures.MustBuild(img)

	for _, f := range []fixtures.Format{fixtures.FormatOCILayout, fixtures.FormatDockerLegacy} {
		t.Run(string(f), func(t *testing.T) {
			art := writeArtifact(t, f, changed)
			out, errOut, code := runCLI(t, "compare", "-o", "json", "--no-progress", art, rr.host+"/app:1")
			if code != ExitFindings {
				t.Fatalf("exit %d, want %d; stderr %s", code, ExitFindings, errOut)
			}
			rep := jsonReport(t, out)
			got := compareFindings(rep, report.Error)
			d := got[compare.DiffID]
			if len(d) != 1 || d[0].Subject.Layer == nil || *d[0].Subject.Layer != 2 ||
				d[0].Expected != base.Layers[2].DiffID.String() || d[0].Actual != changed.Layers[2].DiffID.String() {
				t.Fatalf("compare-diffid = %+v, want one on layer 2 (%s → %s)\n%s", d, base.Layers[2].DiffID, changed.Layers[2].DiffID, findingsText(rep))
			}
			if len(got[compare.Config]) != 1 || len(got[compare.LayerCountDiffers]) != 0 || len(got[compare.ChainID]) != 0 {
				t.Errorf("findings: %s", findingsText(rep))
			}
			// The table names the check and the layer for a person.
			table, _, _ := runCLI(t, "compare", "--no-progress", art, rr.host+"/app:1")
			if !strings.Contains(table, "compare-diffid") || !strings.Contains(table, "layer 2") {
				t.Errorf("table output does not name compare-diffid on layer 2:\n%s", table)
			}
		})
	}
}

func TestCompareCannotCompare(t *testing.T) {
	rr := newRemoteRegistry(t)
	base := fixtures.MustBuild(fixtures.BaseImage())
	art := writeArtifact(t, fixtures.FormatOCILayout, base)
	// Nothing under that tag: the registry side cannot be read.
	_, errOut, code := runCLI(t, "compare", "-o", "json", "--no-progress", "--retries", "0", art, rr.host+"/absent:1")
	if code != ExitCannotCheck {
		t.Fatalf("absent tag: exit %d, want %d; stderr %s", code, ExitCannotCheck, errOut)
	}
	if _, _, code := runCLI(t, "compare", filepath.Join(t.TempDir(), "none.tar"), rr.host+"/app:1"); code != ExitUsage {
		t.Fatalf("absent artifact: exit %d, want %d", code, ExitUsage)
	}
	if _, err := os.Stat(art); err != nil {
		t.Fatal(err)
	}
}
