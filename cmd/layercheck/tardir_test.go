package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// `layercheck tar` takes OCI image layouts as directories too (the product
// promise: docker save tarballs and OCI layouts, directory or tar), and a
// layout gives the same report under `tar` as under `layout`.
func TestTarAcceptsLayoutDirectory(t *testing.T) {
	b := fixtures.MustBuild(fixtures.SampleImage())
	dir := filepath.Join(t.TempDir(), "layout")
	if err := fixtures.WriteOCILayout(dir, fixtures.ImageEntry(b)); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := fixtures.WriteOCIArchive(f, fixtures.ImageEntry(b)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	images := func(args ...string) []report.Image {
		t.Helper()
		out, errOut, code := runCLI(t, append([]string{"-o", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %s", args, code, errOut)
		}
		var rep report.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		return rep.Images
	}
	viaTar := images("tar", dir)
	viaLayout := images("layout", dir)
	if len(viaTar) != 1 || len(viaLayout) != 1 || viaTar[0].ConfigDigest != viaLayout[0].ConfigDigest || viaTar[0].ConfigDigest != b.ConfigDigest.String() {
		t.Fatalf("tar DIR: %+v\nlayout DIR: %+v\nwant config %s", viaTar, viaLayout, b.ConfigDigest)
	}
	// A directory and an archive in one run.
	if both := images("tar", dir, archive); len(both) != 2 {
		t.Fatalf("tar DIR ARCHIVE: %d images, want 2", len(both))
	}
	// A missing path is still a usage error naming it.
	_, errOut, code := runCLI(t, "tar", filepath.Join(dir, "absent"))
	if code != ExitUsage || !strings.Contains(errOut, "absent") {
		t.Fatalf("absent path: exit %d, stderr %q", code, errOut)
	}
}
