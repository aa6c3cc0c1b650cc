//go:build linux

package containerd

import (
	"strings"
	"testing"

	"github.com/layercheck/layercheck/e2e/storetar"
	"github.com/layercheck/layercheck/report"
)

// extractCapture restores fixtures/testdata/stores/<name>.tar.gz (a real
// store captured by the e2e harness) and returns its directory and ground truth.
func extractCapture(t *testing.T, name string) (string, *storetar.Truth) {
	return storetar.ExtractCapture(t, name)
}

func errorsOnly(t *testing.T, rep *report.Report) {
	t.Helper()
	if rep.Summary.Errors > 0 || len(rep.Problems) > 0 {
		t.Fatalf("want no error finding and no problem, got:\n%s", dump(rep))
	}
}

// TestCaptureContainerd audits a real containerd 1.6 root (imports with the
// overlayfs and native snapshotters, and a pull): no error, and the images
// are exactly those `ctr images ls` listed, with the same target digests.
func TestCaptureContainerd(t *testing.T) {
	root, truth := extractCapture(t, "containerd")
	before := treeHash(t, root)
	st, err := Open(root, Options{Jobs: 2})
	must(t, err)
	if len(st.Copied()) != 0 {
		t.Errorf("an unlocked capture was read through copies: %v", st.Copied())
	}
	b := &report.Builder{}
	must(t, st.Audit(t.Context(), b))
	rep := b.Finish("host", root, "test")
	errorsOnly(t, rep)
	if rep.Summary.Warnings > 0 {
		t.Errorf("warnings on a real root:\n%s", dump(rep))
	}
	got := map[string]string{}
	for _, img := range rep.Images {
		if !strings.HasPrefix(img.Platform, "attestation") {
			got[img.Name] = img.ManifestDigest
			if img.IndexDigest != "" {
				got[img.Name] = img.IndexDigest
			}
		}
	}
	if len(got) != len(truth.CtrImages) {
		t.Errorf("%d images audited, ctr listed %d: %v", len(got), len(truth.CtrImages), got)
	}
	for _, ti := range truth.CtrImages {
		name := targetName(ti.Namespace, ti.Name)
		if got[name] != ti.Digest {
			t.Errorf("image %s: digest %q, ctr said %s", name, got[name], ti.Digest)
		}
	}
	// Every layer was read and its snapshots found: nothing unpacked is missing.
	for _, img := range rep.Images {
		for _, l := range img.Layers {
			if l.DiffID == "" || l.ChainID == "" {
				t.Errorf("%s layer %d: no diffID or chainID measured", img.Name, l.Index)
			}
		}
	}
	// Every committed snapshot's files were compared with its layer (overlayfs
	// and native), and they match.
	if fs := find(rep, CheckSnapshotFileUnchecked, nil); len(fs) > 0 {
		t.Errorf("snapshots not compared on a real root:\n%s", dump(rep))
	}
	if n := snapshotsCompared(t, root); n["overlayfs"] == 0 || n["native"] == 0 {
		t.Errorf("snapshots compared per snapshotter: %v; want both overlayfs and native", n)
	}
	if after := treeHash(t, root); after != before {
		t.Fatal("the audit changed the captured root")
	}
}

// snapshotsCompared counts, per snapshotter, the snapshots the audit's plan
// compares with their layers.
func snapshotsCompared(t *testing.T, root string) map[string]int {
	t.Helper()
	st, err := Open(root, Options{})
	must(t, err)
	a := &auditor{st: st, reads: newReadTracker(4 << 20), snap: newSnapFiles(st), byName: map[string]*imgTarget{}}
	must(t, a.selectTargets())
	a.planSnapshots()
	out := map[string]int{}
	for _, c := range a.snap.order {
		if c.blobKey != "" {
			out[c.sn]++
		}
	}
	return out
}

// TestCaptureDockerContainerdCache audits the containerd root a
// graph-driver dockerd keeps beside its data root (<root>/containerd/daemon,
// namespace moby: pulled manifests held by leases).
func TestCaptureDockerContainerdCache(t *testing.T) {
	for _, name := range []string{"docker-overlay2", "docker-vfs"} {
		t.Run(name, func(t *testing.T) {
			dr, _ := extractCapture(t, name)
			root, ok := DockerRoot(dr)
			if !ok {
				t.Skipf("%s has no containerd/daemon root", name)
			}
			rep := audit(t, root, Options{})
			errorsOnly(t, rep)
			if rep.Summary.Warnings > 0 {
				t.Errorf("warnings on a real root:\n%s", dump(rep))
			}
			if fs := find(rep, CheckUnreferenced, nil); len(fs) > 0 {
				t.Errorf("lease-held content reported unreferenced:\n%s", dump(rep))
			}
		})
	}
}
