package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// TestDirLayoutCommands: tar DIR and layout DIR verify skopeo's dir:
// layout, recognised by its contents; a flipped layer byte is named.
func TestDirLayoutCommands(t *testing.T) {
	b := fixtures.MustBuild(fixtures.BaseImage())
	a, err := fixtures.DirLayout(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := a.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"tar", "layout"} {
		if out, errOut, code := runCLI(t, cmd, "--no-progress", dir); code != ExitOK {
			t.Fatalf("%s on a dir: layout: exit %d, stderr %s\n%s", cmd, code, errOut, out)
		}
	}
	p := filepath.Join(dir, b.Layers[0].Digest.Encoded())
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCLI(t, "tar", "--no-progress", "-o", "json", dir)
	if code != ExitFindings {
		t.Fatalf("flipped byte: exit %d", code)
	}
	if got := byCheck(jsonReport(t, out), report.Error)[report.LayerDigest]; len(got) != 1 {
		t.Fatalf("layer-digest findings %+v", got)
	}
}
