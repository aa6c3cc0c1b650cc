//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
)

// TestRemote verifies every image the harness pushed to the loopback
// distribution registry with `layercheck remote`, and compares what it
// reports with the registry's own manifest digest and the daemon's image ID
// and diffIDs.
func TestRemote(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	seen := 0
	for _, drv := range s.Drivers {
		for _, img := range s.Sets[drv].Images {
			if img.Remote == "" {
				continue
			}
			seen++
			t.Run(drv+"/"+img.Name, func(t *testing.T) {
				run := layercheck(t, s, "remote", "-o", "json", img.Remote)
				requireClean(t, "layercheck remote "+img.Remote, run)
				repo := strings.TrimSuffix(strings.TrimPrefix(img.Remote, s.Registry.Addr+"/"), ":1")
				m, err := s.Registry.Manifest(ctx, repo, "1")
				if err != nil {
					t.Fatal(err)
				}
				if len(run.Report.Images) != 1 {
					t.Fatalf("%d images in the report, want 1", len(run.Report.Images))
				}
				got := run.Report.Images[0]
				if got.ManifestDigest != m.Digest {
					t.Errorf("manifest digest %s, the registry serves %s", got.ManifestDigest, m.Digest)
				}
				if got.ConfigDigest != img.Inspect.ID {
					t.Errorf("config digest %s, the daemon's image ID %s", got.ConfigDigest, img.Inspect.ID)
				}
				if len(got.Layers) != len(img.Inspect.RootFS.Layers) {
					t.Fatalf("%d layers, the daemon has %d", len(got.Layers), len(img.Inspect.RootFS.Layers))
				}
				for i, l := range got.Layers {
					if l.DiffID != img.Inspect.RootFS.Layers[i] {
						t.Errorf("layer %d diffID %s, the daemon's %s", i, l.DiffID, img.Inspect.RootFS.Layers[i])
					}
					if l.ChainID != img.ChainIDs[i] {
						t.Errorf("layer %d chainID %s, the layer store's %s", i, l.ChainID, img.ChainIDs[i])
					}
				}
			})
		}
	}
	if seen == 0 {
		t.Skip("the harness pushed no image to its registry")
	}
}
