package docker

import (
	"os"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
)

// TestNoLowerFileNoFallback: an overlay layer whose directory has no lower
// file is read from its own diff/ alone, as Docker does (its Get returns
// diff/ without mounting when there is no lower file, FORMATS.md 2.3): a file
// of the layer's tar that is only in a parent's diff/ is missing, and the tar
// cannot be rebuilt. Found on a real data root by the e2e corruption table
// (swapped cache-ids of a layer and its grandparent): following the layerdb
// parent chain instead rebuilt the right bytes and hid the LayerDiffID
// finding.
func TestNoLowerFileNoFallback(t *testing.T) {
	for _, drv := range []string{"overlay2", "fuse-overlayfs"} {
		t.Run(drv, func(t *testing.T) {
			s := dockertest.Build(t, dockertest.DefaultSpec(drv, dockertest.IsRoot()))
			l0, l1 := s.Layers["L0"], s.Layers["L1"]
			// etc/new.txt moves down to the parent, whole: through a union
			// mount the layer would read the same bytes.
			must(t, os.Rename(s.Path(l1.Dir+"/etc/new.txt"), s.Path(l0.Dir+"/etc/new.txt")))
			r := runAudit(t, s.Root, Options{Jobs: 2})
			requireFinding(t, r, want{check: ExtraFile, entry: "etc/new.txt", digest: l0.ChainID.String()})
			for _, f := range r.Findings {
				if f.Check == HostLayerDiffID && f.Subject.Digest == l1.ChainID.String() {
					t.Fatalf("with its lower file the layer reads etc/new.txt from its parent, as Docker's union mount does; got %s", findingsText(r))
				}
			}

			must(t, os.Remove(s.Path(s.CacheDir(l1.CacheID)+"/lower")))
			r = runAudit(t, s.Root, Options{Jobs: 2})
			requireFinding(t, r, want{check: OverlayLower, digest: l1.ChainID.String()})
			requireFinding(t, r, want{check: LayerMissingFile, entry: "etc/new.txt", digest: l1.ChainID.String()})
			requireFinding(t, r, want{check: HostLayerDiffID, digest: l1.ChainID.String()})
		})
	}
}
