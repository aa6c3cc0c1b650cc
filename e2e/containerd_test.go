//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore/containerd"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store/storetest"
	digest "github.com/opencontainers/go-digest"
)

// These tests audit the standalone containerd of the harness (imports of
// the docker saves with the default and the native snapshotter, an
// oci-archive import, a zstd pull) and the containerd roots the dockerds keep,
// and compare what hoststore/containerd reads with `ctr images ls` and
// `ctr content ls`.

func ctrdAudit(t *testing.T, root string, opts containerd.Options) (*containerd.Store, *report.Report) {
	t.Helper()
	st, err := containerd.Open(root, opts)
	if err != nil {
		t.Fatalf("opening %s: %v", root, err)
	}
	b := &report.Builder{}
	if err := st.Audit(context.Background(), b); err != nil {
		t.Fatalf("auditing %s: %v", root, err)
	}
	return st, b.Finish("host", root, "e2e")
}

func ctrdFindings(r *report.Report) string { return storetest.ReportText(r) }

func requireNoErrors(t *testing.T, what string, r *report.Report) {
	t.Helper()
	if r.Summary.Errors > 0 || r.Summary.Warnings > 0 || len(r.Problems) > 0 {
		t.Fatalf("%s: want no error, warning or problem, got:\n%s", what, ctrdFindings(r))
	}
}

// ctrContent parses `ctr content ls`: digest -> the containerd.io/uncompressed label ("" if none).
func ctrContent(t *testing.T, s *Suite, ns string) map[digest.Digest]string {
	t.Helper()
	out, err := s.Containerd.Ctr(context.Background(), ns, "content", "ls")
	if err != nil {
		t.Fatal(err)
	}
	got := map[digest.Digest]string{}
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if i == 0 || line == "" {
			continue
		}
		var fields []string
		for _, f := range strings.Split(line, "\t") {
			if f != "" {
				fields = append(fields, f)
			}
		}
		d := digest.Digest(fields[0])
		if d.Validate() != nil {
			t.Fatalf("ctr content ls line %q: no digest", line)
		}
		got[d] = ""
		if len(fields) > 0 {
			labels := fields[len(fields)-1]
			if i := strings.Index(labels, "containerd.io/uncompressed="); i >= 0 {
				v := labels[i+len("containerd.io/uncompressed="):]
				got[d], _, _ = strings.Cut(v, ",")
			}
		}
	}
	return got
}

// TestContainerdLive audits the running standalone containerd: its
// databases are locked, so they are read from private copies; the audit
// finds nothing wrong, and its images and content records are exactly what
// ctr lists, namespace by namespace.
func TestContainerdLive(t *testing.T) {
	s := need(t)
	root := s.Containerd.Root
	st, rep := ctrdAudit(t, root, containerd.Options{Jobs: 2})
	requireNoErrors(t, "live containerd", rep)
	copied := false
	for _, p := range st.Copied() {
		copied = copied || strings.HasSuffix(p, containerd.MetaDBPath)
	}
	if !copied {
		t.Errorf("meta.db of the running containerd was not read through a private copy (copied: %v)", st.Copied())
	}
	audited := map[string]bool{}
	for _, img := range rep.Images {
		audited[img.Name] = true
	}
	ctx := context.Background()
	for _, drv := range s.Drivers {
		for _, ns := range s.CtrNamespaces[drv] {
			ctrImgs, err := s.Containerd.Images(ctx, ns)
			if err != nil {
				t.Fatal(err)
			}
			var want, got []string
			for _, ci := range ctrImgs {
				want = append(want, ci.Name+" "+ci.MediaType+" "+ci.Digest)
				if !audited[ns+"/"+ci.Name] {
					t.Errorf("namespace %s: image %s is not in the report", ns, ci.Name)
				}
			}
			for _, img := range st.Records(ns) {
				got = append(got, img.Name+" "+img.Target.MediaType+" "+img.Target.Digest.String())
			}
			sort.Strings(want)
			sort.Strings(got)
			if strings.Join(want, "\n") != strings.Join(got, "\n") {
				t.Errorf("namespace %s: images\n%s\nctr images ls:\n%s", ns, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			ctrC := ctrContent(t, s, ns)
			records := st.Content(ns)
			if len(records) != len(ctrC) {
				t.Errorf("namespace %s: %d content records, ctr content ls lists %d", ns, len(records), len(ctrC))
			}
			for _, c := range records {
				label, ok := ctrC[c.Digest]
				if !ok {
					t.Errorf("namespace %s: content %s is not in ctr content ls", ns, c.Digest)
					continue
				}
				if label != c.Labels["containerd.io/uncompressed"] {
					t.Errorf("namespace %s: content %s uncompressed label %q, ctr says %q", ns, c.Digest, c.Labels["containerd.io/uncompressed"], label)
				}
			}
		}
	}
}

// TestContainerdCorruptedCopy damages a copy of the standalone root: a
// flipped byte in a layer blob and a removed snapshot directory are found,
// and the original stays clean.
func TestContainerdCorruptedCopy(t *testing.T) {
	s := need(t)
	c := s.Env.Corrupt(t, s.Containerd.Root)
	st, err := containerd.Open(c.Path, containerd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := s.CtrNamespaces[s.Drivers[0]][0]
	var layer containerd.Content
	for _, rec := range st.Content(ns) {
		if rec.Labels["containerd.io/uncompressed"] != "" && rec.Size > 1024 {
			layer = rec
			break
		}
	}
	if layer.Digest == "" {
		t.Fatalf("namespace %s has no layer of more than 1 KiB", ns)
	}
	if err := c.FlipByte(filepath.Join(containerd.ContentDir, "blobs", "sha256", layer.Digest.Encoded()), 600); err != nil {
		t.Fatal(err)
	}
	dirs, err := c.Glob(containerd.SnapshotterPrefix + "native/snapshots/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no native snapshot directory in the copy: %v", err)
	}
	if err := c.Remove(dirs[0]); err != nil {
		t.Fatal(err)
	}
	_, rep := ctrdAudit(t, c.Path, containerd.Options{Jobs: 2})
	var digestFound, snapshotFound bool
	for _, f := range rep.Findings {
		if f.Check == report.LayerDigest && f.Subject.Digest == layer.Digest.String() {
			digestFound = true
		}
		if f.Check == containerd.CheckSnapshotMissing && f.Severity == report.Error {
			snapshotFound = true
		}
	}
	if !digestFound || !snapshotFound {
		t.Errorf("flipped layer byte found: %v, removed snapshot directory found: %v; findings:\n%s", digestFound, snapshotFound, ctrdFindings(rep))
	}
	_, orig := ctrdAudit(t, s.Containerd.Root, containerd.Options{})
	requireNoErrors(t, "the original root after corrupting its copy", orig)
}

// TestContainerdDockerRoots audits the containerd each dockerd runs beside
// its graph-driver store (namespace moby: pulled manifests under leases).
func TestContainerdDockerRoots(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		d := s.Env.Docker(drv)
		if d == nil {
			continue
		}
		root, ok := containerd.DockerRoot(d.DataRoot)
		if !ok {
			t.Logf("dockerd %s keeps no containerd root under its data root", drv)
			continue
		}
		_, rep := ctrdAudit(t, root, containerd.Options{})
		requireNoErrors(t, "dockerd "+drv+" containerd root", rep)
	}
}

// TestContainerdCLI runs `layercheck host --containerd-root` on the live
// root; it skips until the flag exists.
func TestContainerdCLI(t *testing.T) {
	s := need(t)
	run := layercheck(t, s, "host", "--containerd-root", s.Containerd.Root, "-o", "json")
	requireClean(t, "layercheck host --containerd-root", run)
	ns := s.CtrNamespaces[s.Drivers[0]][0]
	run = layercheck(t, s, "host", "--containerd-root", s.Containerd.Root, "--namespace", ns, "-o", "json")
	requireClean(t, "layercheck host --containerd-root --namespace", run)
	for _, img := range run.Report.Images {
		if !strings.HasPrefix(img.Name, ns+"/") {
			t.Errorf("--namespace %s reported image %s", ns, img.Name)
		}
	}
}
