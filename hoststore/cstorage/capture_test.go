package cstorage_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/layercheck/layercheck/e2e/storetar"
	"github.com/layercheck/layercheck/hoststore/cstorage"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
)

// TestRealPodmanCapture audits a real podman graph root
// (fixtures/testdata/stores, `make capture-stores`): clean as podman left
// it, then with one byte appended to a file of a layer, which must be named.
func TestRealPodmanCapture(t *testing.T) {
	for _, name := range []string{"podman-overlay", "podman-vfs"} {
		t.Run(name, func(t *testing.T) {
			root, truth := storetar.ExtractCapture(t, name)
			rep := audit(t, root, store.Options{Jobs: 2})
			// info findings are expected: the pulled image's layers were
			// stored from the uncompressed load before (cs-image-blob)
			if rep.Summary.Errors+rep.Summary.Warnings > 0 || len(rep.Problems) > 0 {
				t.Fatalf("the capture as podman left it:\n%s\nproblems: %v", findings(rep), rep.Problems)
			}
			if !contains(checks(rep), string(cstorage.CSImageBlob)) {
				t.Errorf("no %s for the image pulled over loaded layers:\n%s", cstorage.CSImageBlob, findings(rep))
			}
			if len(rep.Images) != len(truth.Images) {
				t.Errorf("%d images audited, podman listed %d", len(rep.Images), len(truth.Images))
			}
			// A regular file with data and one link in some layer's directory.
			var victim, entry string
			drv := filepath.Join(root, truth.Driver)
			_ = filepath.WalkDir(drv, func(p string, d fs.DirEntry, err error) error {
				if err != nil || victim != "" {
					return fs.SkipAll
				}
				if fi, err := d.Info(); err == nil && d.Type().IsRegular() && fi.Size() > 0 && fi.Sys().(*syscall.Stat_t).Nlink == 1 {
					rel, _ := filepath.Rel(drv, p)
					// overlay: <id>/diff/<entry>; vfs: dir/<id>/<entry>
					parts := strings.SplitN(rel, string(filepath.Separator), 3)
					if len(parts) == 3 && (parts[1] == "diff" || parts[0] == "dir") {
						victim, entry = p, parts[2]
					}
				}
				return nil
			})
			if victim == "" {
				t.Fatal("no regular file with data in any layer directory")
			}
			f, err := os.OpenFile(victim, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Write([]byte{'!'})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			rep = audit(t, root, store.Options{Jobs: 2})
			// The file is named. On overlay it is the layer's own: its CRC
			// and the layer's diffID fail. On vfs it may be an inherited
			// copy (no diffID covers it), compared with the lower layer's
			// header and CRC.
			var named []string
			for _, f := range rep.Findings {
				if f.Subject.Entry == entry && f.Severity == report.Error {
					named = append(named, string(f.Check))
				}
			}
			ok := len(named) > 0
			if truth.Driver == "overlay" {
				ok = contains(named, string(cstorage.CSFileCRC)) && contains(checks(rep), string(cstorage.CSLayerDiffID))
			}
			if !ok {
				t.Errorf("a byte appended to %s: got:\n%s", entry, findings(rep))
			}
		})
	}
}
