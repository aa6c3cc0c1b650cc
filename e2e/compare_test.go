//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
)

// compareFindings returns the report's findings of one check at or above sev.
func compareFindings(r *report.Report, check string, sev report.Severity) []report.Finding {
	var out []report.Finding
	for _, f := range r.Findings {
		if string(f.Check) == check && f.Severity >= sev {
			out = append(out, f)
		}
	}
	return out
}

// layerDir is a layer's directory under a data root, from its layerdb
// cache-id.
func layerDir(t *testing.T, root, drv, chainID string) string {
	t.Helper()
	id, err := os.ReadFile(filepath.Join(root, "image", drv, "layerdb", "sha256", strings.TrimPrefix(chainID, "sha256:"), "cache-id"))
	if err != nil {
		t.Fatal(err)
	}
	return hostLayerDir(t, drv, strings.TrimSpace(string(id)))
}

// TestComparePulledIdentical compares each image dockerd pulled back from the
// loopback registry with its registry source (repositories.json's repo
// digest): identical, with and without --deep.
func TestComparePulledIdentical(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		for _, img := range s.Sets[drv].Images {
			if !img.Pulled {
				continue
			}
			t.Run(drv+"/"+img.Name, func(t *testing.T) {
				for _, extra := range [][]string{nil, {"--deep"}} {
					args := append([]string{"compare", "host", "--root", s.Sets[drv].Docker.DataRoot, "-o", "json"}, extra...)
					run := layercheck(t, s, append(args, img.Inspect.ID)...)
					requireClean(t, "layercheck compare "+strings.Join(extra, " ")+" "+img.Name, run)
					if findImage(run.Report, img.Inspect.ID) == nil || len(compareFindings(run.Report, "compare-layer-digest", report.Info)) != 1 {
						t.Errorf("the report lacks the host image or the note on compressed digests: %+v", run.Report.Findings)
					}
				}
			})
		}
	}
}

// tinyRootfs is a one-file rootfs tar unique to the test.
func tinyRootfs(t *testing.T, content string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "moved.txt", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(content))
	tw.Close()
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCompareTagMoved pushes a new image of its own from dockerd, then
// pushes another image under the same tag with skopeo: compare names the
// move with both digests and compares with the pushed digest, which the
// registry still serves.
func TestCompareTagMoved(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	drv := s.Drivers[0]
	set := s.Sets[drv]
	d := set.Docker
	remote := s.Registry.Ref(drv + "/compare-moved:1")
	if _, err := d.CLI(ctx, "import", tinyRootfs(t, "compare "+drv+"\n"), remote); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.CLI(context.Background(), "rmi", remote) })
	if _, err := d.CLI(ctx, "push", remote); err != nil {
		t.Fatal(err)
	}
	ins, err := d.InspectImage(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	if len(ins.RepoDigests) != 1 {
		t.Fatalf("repo digests after the push: %v", ins.RepoDigests)
	}
	pushed := ins.RepoDigests[0][strings.Index(ins.RepoDigests[0], "@")+1:]
	run := layercheck(t, s, "compare", "host", "--root", d.DataRoot, "-o", "json", ins.ID)
	requireClean(t, "layercheck compare before the move", run)
	// Named by its registry-hosted reference, it is still the host image
	// (issue #13: the shape of a name never changes what it means).
	run = layercheck(t, s, "compare", "host", "--root", d.DataRoot, "-o", "json", remote)
	requireClean(t, "layercheck compare host REGISTRY/REPO:TAG before the move", run)

	// Someone else pushes another image under the tag.
	if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+set.Image("busybox").Save, "docker://"+remote, "--dest-tls-verify=false"); err != nil {
		t.Fatal(err)
	}
	m, err := s.Registry.Manifest(ctx, drv+"/compare-moved", "1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest == pushed {
		t.Fatal("the tag did not move")
	}
	run = layercheck(t, s, "compare", "host", "--root", d.DataRoot, "-o", "json", ins.ID)
	if run.Code != 1 {
		t.Fatalf("exit %d after the tag moved, want 1; stderr %s", run.Code, run.Stderr)
	}
	moved := compareFindings(run.Report, "compare-tag-moved", report.Error)
	if len(moved) != 1 || moved[0].Expected != m.Digest || moved[0].Actual != pushed {
		t.Fatalf("compare-tag-moved = %+v, want registry %s, host %s", moved, m.Digest, pushed)
	}
	if run.Report.Summary.Errors != 1 {
		t.Errorf("compared with the pushed digest the image is the same, yet: %+v", run.Report.Findings)
	}
	run = layercheck(t, s, "compare", "host", "--root", d.DataRoot, "-o", "json", remote)
	if moved := compareFindings(run.Report, "compare-tag-moved", report.Error); run.Code != 1 || len(moved) != 1 || moved[0].Expected != m.Digest || moved[0].Actual != pushed {
		t.Fatalf("compare host %s after the move: exit %d, compare-tag-moved %+v", remote, run.Code, moved)
	}
}

// TestCompareDeepChangedFile changes one byte of a file under a layer
// directory in a copy of the data root: the metadata comparison still
// matches, --deep names the file.
func TestCompareDeepChangedFile(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		t.Run(drv, func(t *testing.T) {
			set := s.Sets[drv]
			img := set.Image("layers")
			c := s.Env.Corrupt(t, set.Docker.DataRoot)
			dir := layerDir(t, c.Path, drv, img.ChainIDs[0])
			rel, size := largestFile(t, c.Path, dir)
			if err := c.FlipByte(rel, size/2); err != nil {
				t.Fatal(err)
			}
			run := layercheck(t, s, "compare", "host", "--root", c.Path, "-o", "json", img.Inspect.ID)
			requireClean(t, "layercheck compare without --deep", run)
			run = layercheck(t, s, "compare", "host", "--root", c.Path, "--deep", "-o", "json", img.Inspect.ID)
			if run.Code != 1 {
				t.Fatalf("--deep: exit %d, want 1; stderr %s", run.Code, run.Stderr)
			}
			named := false
			entry, _ := filepath.Rel(dir, rel)
			for _, f := range compareFindings(run.Report, "host-file-crc", report.Error) {
				if e := strings.TrimPrefix(f.Subject.Entry, "./"); e != "" && (e == entry || strings.HasSuffix(entry, e)) {
					named = true
				}
			}
			if !named {
				t.Errorf("--deep does not name %s: %+v", entry, run.Report.Findings)
			}
		})
	}
}

// TestCompareSaveAgainstStore checks each image's `docker save` against the
// data root it came from (--root DATAROOT SAVE): every chainID in layerdb with
// its diff and parent, every tar-split captured from the save equal to
// dockerd's tar-split.json.gz. Then, in a copy with one tar-split altered,
// the entry is named.
func TestCompareSaveAgainstStore(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		set := s.Sets[drv]
		t.Run(drv, func(t *testing.T) {
			for _, img := range set.Images {
				run := layercheck(t, s, "compare", "store", "--root", set.Docker.DataRoot, "-o", "json", img.Save)
				requireClean(t, "layercheck compare --root "+drv+" "+img.Save, run)
				if findImage(run.Report, img.Inspect.ID) == nil {
					t.Errorf("%s: the host image is not in the report", img.Name)
				}
			}

			img := set.Image("layers")
			c := s.Env.Corrupt(t, set.Docker.DataRoot)
			top := len(img.ChainIDs) - 1
			for top > 0 && img.Inspect.RootFS.Layers[top] == "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef" {
				top-- // the empty layer has no file to alter
			}
			rel := filepath.Join("image", drv, "layerdb", "sha256", strings.TrimPrefix(img.ChainIDs[top], "sha256:"), "tar-split.json.gz")
			p, err := c.File(rel)
			if err != nil {
				t.Fatal(err)
			}
			entry := alterTarSplitCRC(t, p)
			run := layercheck(t, s, "compare", "store", "--root", c.Path, "-o", "json", img.Save)
			if run.Code != 1 {
				t.Fatalf("altered tar-split: exit %d, want 1; stderr %s", run.Code, run.Stderr)
			}
			got := compareFindings(run.Report, "compare-tarsplit", report.Error)
			if len(got) != 1 || got[0].Subject.Entry != entry || got[0].Subject.Layer == nil || *got[0].Subject.Layer != top {
				t.Fatalf("compare-tarsplit = %+v, want entry %q of layer %d", got, entry, top)
			}
		})
	}
}

// alterTarSplitCRC rewrites the CRC of the first non-empty file of a
// tar-split.json.gz and returns that file's name.
func alterTarSplitCRC(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	entry := ""
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if size, _ := rec["size"].(float64); entry == "" && rec["type"] == float64(1) && size > 0 {
			entry = rec["name"].(string)
			rec["payload"] = "AAAAAAAAAAA="
			b, _ := json.Marshal(rec)
			line = string(b)
		}
		out.WriteString(line + "\n")
	}
	if entry == "" {
		t.Fatalf("%s has no file entry with content", path)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(out.Bytes())
	zw.Close()
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return entry
}

// TestCompareContainerdPulled compares the image the standalone containerd
// pulled from the loopback registry (zstd layers, namespace <driver>-zstd)
// with the registry: identical, compared by content digest.
func TestCompareContainerdPulled(t *testing.T) {
	s := need(t)
	for _, drv := range s.Drivers {
		ref := s.Copies[drv].ZstdRemote["layers"]
		t.Run(drv, func(t *testing.T) {
			run := layercheck(t, s, "compare", "host", "--containerd-root", s.Containerd.Root, "--namespace", drv+"-zstd", "-o", "json", ref)
			requireClean(t, "layercheck compare --containerd-root "+ref, run)
			if len(compareFindings(run.Report, "compare-layer-digest", report.Info)) != 1 || len(run.Report.Images) < 2 {
				t.Errorf("the report lacks an image side or the note on content digests: %d images, %+v", len(run.Report.Images), run.Report.Findings)
			}
		})
	}
}

// TestCompareContainerdTagMoved pushes an image with skopeo, pulls it into
// a namespace of the standalone containerd with ctr, compares (identical),
// then pushes another image under the same tag: compare names the move
// with both digests and, compared with the pulled digest the registry
// still serves, finds nothing else.
func TestCompareContainerdTagMoved(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	drv := s.Drivers[0]
	set := s.Sets[drv]
	ns := "compare-moved"
	remote := s.Registry.Ref(drv + "/compare-ctrd-moved:1")
	if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+set.Image("layers").Save, "docker://"+remote, "--dest-tls-verify=false"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Containerd.Ctr(ctx, ns, "images", "pull", "--plain-http", "--snapshotter", s.Snapshotter, remote); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Containerd.Ctr(context.Background(), ns, "images", "rm", "--sync", remote) })
	pulled, err := s.Registry.Manifest(ctx, drv+"/compare-ctrd-moved", "1")
	if err != nil {
		t.Fatal(err)
	}
	run := layercheck(t, s, "compare", "host", "--containerd-root", s.Containerd.Root, "--namespace", ns, "-o", "json", remote)
	requireClean(t, "layercheck compare --containerd-root before the move", run)

	if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+set.Image("busybox").Save, "docker://"+remote, "--dest-tls-verify=false"); err != nil {
		t.Fatal(err)
	}
	m, err := s.Registry.Manifest(ctx, drv+"/compare-ctrd-moved", "1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest == pulled.Digest {
		t.Fatal("the tag did not move")
	}
	run = layercheck(t, s, "compare", "host", "--containerd-root", s.Containerd.Root, "--namespace", ns, "-o", "json", remote)
	if run.Code != 1 {
		t.Fatalf("exit %d after the tag moved, want 1; stderr %s", run.Code, run.Stderr)
	}
	moved := compareFindings(run.Report, "compare-tag-moved", report.Error)
	if len(moved) != 1 || moved[0].Expected != m.Digest || moved[0].Actual != pulled.Digest {
		t.Fatalf("compare-tag-moved = %+v, want registry %s, host %s", moved, m.Digest, pulled.Digest)
	}
	if run.Report.Summary.Errors != 1 || run.Report.Summary.Problems != 0 {
		t.Errorf("compared with the pulled digest the image is the same, yet: %+v %+v", run.Report.Findings, run.Report.Problems)
	}
}
