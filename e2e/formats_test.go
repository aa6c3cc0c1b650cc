//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/e2e/harness"
	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// TestFormats runs layercheck on every artifact layout the real tools write
// (issue 17): skopeo's `dir:` copies (plain and compressed), podman's saves
// (docker-dir plain and compressed, docker-archive, `-m` multi-image
// docker-archive, oci-archive, oci-dir), a `skopeo copy --all` of a
// two-platform index to `dir:`, `oci:` layouts with zstd and
// zstd:chunked layers written by skopeo copy and podman push, and a layout
// umoci built. Each is clean; then, on a copy, one flipped byte in the middle
// of its largest layer blob is found with the exact check ID. A zstd:chunked
// layer is reported as such (--analyze) and a flipped byte in its table of
// contents is found as layer-toc-digest.

// formatCase is one artifact a real tool wrote.
type formatCase struct {
	name    string
	path    string       // a directory (layout) or a file (tar)
	want    report.Check // what a flipped byte in the middle of the largest layer blob gives
	chunked bool         // the layers are zstd:chunked: their TOC is checked too
	images  int          // images the report must list; 0: at least one
}

func (c formatCase) command() string {
	if fi, err := os.Stat(c.path); err == nil && fi.IsDir() {
		return "layout"
	}
	return "tar"
}

func TestFormats(t *testing.T) {
	s := need(t)
	ctx := context.Background()
	drv := s.Drivers[len(s.Drivers)-1]
	set := s.Sets[drv]
	work := s.Env.Path("formats")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	out := func(name string) string { return filepath.Join(work, name) }
	var cases []formatCase
	add := func(c formatCase, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("writing %s: %v", c.name, err)
			return
		}
		cases = append(cases, c)
	}
	layers := "docker-archive:" + set.Image("layers").Save

	// skopeo: dir: plain (layers stored uncompressed, as the save holds
	// them), --dest-compress (gzip) and zstd; oci: with zstd and zstd:chunked.
	add(formatCase{name: "skopeo-dir", path: out("skopeo-dir"), want: report.LayerDigest},
		s.Env.SkopeoCopy(ctx, layers, "dir:"+out("skopeo-dir")))
	add(formatCase{name: "skopeo-dir-gzip", path: out("skopeo-dir-gzip"), want: report.LayerDigest},
		s.Env.SkopeoCopy(ctx, layers, "dir:"+out("skopeo-dir-gzip"), "--dest-compress"))
	add(formatCase{name: "skopeo-dir-zstd", path: out("skopeo-dir-zstd"), want: report.LayerDigest},
		// Docker schema 2 has no zstd layer type: skopeo wants --format oci.
		s.Env.SkopeoCopy(ctx, layers, "dir:"+out("skopeo-dir-zstd"), "--dest-compress", "--dest-compress-format", "zstd", "--format", "oci"))
	add(formatCase{name: "skopeo-oci-zstd", path: out("skopeo-oci-zstd"), want: report.LayerDigest},
		s.Env.SkopeoCopy(ctx, layers, "oci:"+out("skopeo-oci-zstd")+":layers", "--dest-compress-format", "zstd"))
	if err := s.Env.SkopeoCopy(ctx, layers, "oci:"+out("skopeo-oci-chunked")+":layers", "--dest-compress-format", "zstd:chunked"); err != nil {
		t.Logf("skopeo copy --dest-compress-format zstd:chunked refused, case skipped: %v", err)
	} else {
		add(formatCase{name: "skopeo-oci-zstd-chunked", path: out("skopeo-oci-chunked"), want: report.LayerDigest, chunked: true}, nil)
	}
	// skopeo copy --all: the suite builds no multi-platform image (dockerd
	// saves one platform), so the test makes an OCI index of the layers
	// image (linux/amd64) and a copy of it whose config says linux/arm64.
	mp := out("multi-src")
	err := s.Env.SkopeoCopy(ctx, layers, "oci:"+mp+":layers")
	if err == nil {
		err = writeMultiPlatform(mp, "layers", "multi")
	}
	if err == nil {
		err = s.Env.SkopeoCopy(ctx, "oci:"+mp+":multi", "dir:"+out("skopeo-dir-all"), "--all")
	}
	add(formatCase{name: "skopeo-dir-all", path: out("skopeo-dir-all"), want: report.LayerDigest, images: 2}, err)

	// podman: a vfs graph root of its own with two loaded images.
	if _, _, err := harness.FindPodman(); err != nil {
		t.Logf("podman cases skipped: %v", err)
	} else {
		p, err := s.Env.NewPodman("formats", "vfs")
		if err != nil {
			t.Fatal(err)
		}
		pol := "--signature-policy=" + p.Policy
		for _, name := range []string{"busybox", "layers"} {
			if _, err := p.CLI(ctx, "load", pol, "--input", set.Image(name).Save); err != nil {
				t.Fatalf("podman load of %s: %v", name, err)
			}
		}
		id, bb := loadedID(set, "layers"), loadedID(set, "busybox")
		save := func(name string, want report.Check, args ...string) {
			_, err := p.CLI(ctx, append(append([]string{"save", "--quiet", "--output", out(name)}, args...), id)...)
			add(formatCase{name: name, path: out(name), want: want}, err)
		}
		save("podman-docker-dir", report.LayerDigest, "--format", "docker-dir")
		save("podman-docker-dir-compress", report.LayerDigest, "--format", "docker-dir", "--compress")
		save("podman-docker-archive", report.LayerDiffID, "--format", "docker-archive")
		save("podman-oci-archive", report.LayerDigest, "--format", "oci-archive")
		save("podman-oci-dir", report.LayerDigest, "--format", "oci-dir")
		_, err = p.CLI(ctx, "save", "--quiet", "--output", out("podman-multi.tar"), "--format", "docker-archive", "-m", id, bb)
		add(formatCase{name: "podman-docker-archive-multi", path: out("podman-multi.tar"), want: report.LayerDiffID, images: 2}, err)
		_, err = p.CLI(ctx, "push", pol, "--quiet", "--compression-format", "zstd", id, "oci:"+out("podman-oci-zstd")+":layers")
		add(formatCase{name: "podman-push-oci-zstd", path: out("podman-oci-zstd"), want: report.LayerDigest}, err)
		if _, err := p.CLI(ctx, "push", pol, "--quiet", "--compression-format", "zstd:chunked", id, "oci:"+out("podman-oci-chunked")+":layers"); err != nil {
			t.Logf("podman push --compression-format zstd:chunked refused, case skipped: %v", err)
		} else {
			add(formatCase{name: "podman-push-oci-zstd-chunked", path: out("podman-oci-chunked"), want: report.LayerDigest, chunked: true}, nil)
		}
	}

	// umoci: a two-layer image built from scratch.
	if dir, err := umociLayout(ctx, s.Env, work); err != nil {
		t.Logf("umoci case skipped: %v", err)
	} else {
		add(formatCase{name: "umoci", path: dir, want: report.LayerDigest}, nil)
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkFormat(t, s, c) })
	}
}

// umociLayout builds an OCI layout with umoci (init, new, two unpack/repack
// rounds, each adding files) below work.
func umociLayout(ctx context.Context, env *harness.Env, work string) (string, error) {
	umoci, err := harness.LookTool("umoci")
	if err != nil {
		return "", err
	}
	dir, bundle := filepath.Join(work, "umoci"), filepath.Join(work, "umoci-bundle")
	run := func(args ...string) error {
		_, err := env.Run(ctx, harness.Cmd{Argv: append([]string{umoci}, args...)})
		return err
	}
	if err := run("init", "--layout", dir); err != nil {
		return "", err
	}
	if err := run("new", "--image", dir+":lc"); err != nil {
		return "", err
	}
	for i, files := range []map[string]string{
		{"etc/umoci.txt": "built by umoci\n", "bin/data": strings.Repeat("layercheck umoci layer data\n", 4096)},
		{"etc/second.txt": "second layer\n"},
	} {
		if err := run("unpack", "--image", dir+":lc", bundle); err != nil {
			return "", err
		}
		for name, body := range files {
			p := filepath.Join(bundle, "rootfs", name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return "", err
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				return "", err
			}
		}
		if err := run("repack", "--image", dir+":lc", "--history.created_by", fmt.Sprintf("layercheck e2e layer %d", i), bundle); err != nil {
			return "", err
		}
		if err := os.RemoveAll(bundle); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// checkFormat: clean, then one flipped byte in the largest layer blob found.
func checkFormat(t *testing.T, s *Suite, c formatCase) {
	cmd := c.command()
	args := []string{cmd, c.path, "--output", "json"}
	if c.chunked {
		args = append(args, "--analyze")
	}
	run := layercheck(t, s, args...)
	requireClean(t, "layercheck "+cmd+" "+c.name, run)
	if n := len(run.Report.Images); n == 0 || c.images > 0 && n != c.images {
		var got []string
		for _, img := range run.Report.Images {
			got = append(got, img.Name+" "+img.Platform)
		}
		t.Fatalf("%s: %d images in the report, want %d: %v", c.name, n, max(c.images, 1), got)
	}
	for _, f := range run.Report.Findings {
		if strings.HasPrefix(string(f.Check), "layer-toc-") {
			t.Errorf("%s: %s finding (%s) on a clean layer: %s", c.name, f.Check, f.Severity, f.Message)
		}
	}
	var largest *report.Layer
	for i := range run.Report.Images {
		img := &run.Report.Images[i]
		for j := range img.Layers {
			if l := &img.Layers[j]; largest == nil || l.Size > largest.Size {
				largest = l
			}
		}
		if c.chunked {
			if img.Analysis == nil {
				t.Fatalf("%s: --analyze gave no analysis", c.name)
			}
			for _, la := range img.Analysis.Layers {
				if la.Lazy != "zstd:chunked" {
					t.Errorf("%s: layer %d is not reported as zstd:chunked (lazy %q)", c.name, la.Index, la.Lazy)
				}
			}
		}
	}
	if largest == nil {
		t.Fatalf("%s: no layer in the report", c.name)
	}
	t.Logf("%s: %d images; flipping a byte in layer %s (%s, %d bytes, %s)", c.name, len(run.Report.Images), largest.Digest, largest.Compression, largest.Size, largest.Location)

	cp := s.Env.Corrupt(t, c.path)
	if cmd == "tar" {
		off, size, err := cp.TarMember("", largest.Location)
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.FlipByte("", off+size/2); err != nil {
			t.Fatal(err)
		}
	} else {
		rel, err := filepath.Rel(c.path, largest.Location)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Fatalf("layer location %s is not inside %s", largest.Location, c.path)
		}
		if err := cp.FlipByte(rel, largest.Size/2); err != nil {
			t.Fatal(err)
		}
	}
	requireFinding(t, c.name+" with a flipped layer byte", layercheck(t, s, cmd, cp.Path, "--output", "json"), c.want)

	if c.chunked {
		checkChunkedTOCFlip(t, s, c)
	}
}

// requireFinding fails unless the run exited 1 with a finding of check.
func requireFinding(t *testing.T, what string, run layercheckRun, check report.Check) {
	t.Helper()
	var got []string
	found := false
	for _, f := range run.Report.Findings {
		got = append(got, string(f.Check)+" "+f.Subject.String())
		found = found || f.Check == check
	}
	sort.Strings(got)
	if run.Code != 1 || !found {
		t.Errorf("%s: exit %d, want 1 with a %s finding; findings:\n%s\nstderr: %.2000s", what, run.Code, check, strings.Join(got, "\n"), run.Stderr)
		return
	}
	t.Logf("%s: found %s (all findings: %s)", what, check, strings.Join(got, "; "))
}

// checkChunkedTOCFlip flips a byte inside the TOC frame of each zstd:chunked
// layer of a copy (located by the manifest-position annotation) and wants
// layer-toc-digest: the TOC lies outside the decompressed stream, so only the
// TOC check sees which part changed.
func checkChunkedTOCFlip(t *testing.T, s *Suite, c formatCase) {
	layers, err := ociLayerAnnotations(c.path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for digest, ann := range layers {
		pos := ann["io.github.containers.zstd-chunked.manifest-position"]
		if pos == "" {
			pos = ann["io.containers.zstd-chunked.manifest-position"]
		}
		if pos == "" {
			continue
		}
		f := strings.Split(pos, ":")
		off, err1 := strconv.ParseInt(f[0], 10, 64)
		size, err2 := strconv.ParseInt(f[min(1, len(f)-1)], 10, 64)
		if len(f) != 4 || err1 != nil || err2 != nil {
			t.Fatalf("layer %s: manifest-position %q", digest, pos)
		}
		n++
		cp := s.Env.Corrupt(t, c.path)
		if err := cp.FlipByte(filepath.Join("blobs", "sha256", strings.TrimPrefix(digest, "sha256:")), off+size/2); err != nil {
			t.Fatal(err)
		}
		requireFinding(t, fmt.Sprintf("%s with a flipped TOC byte in %s", c.name, digest), layercheck(t, s, "layout", cp.Path, "--output", "json"), report.LayerTOCDigest)
	}
	if n == 0 {
		t.Errorf("%s: no layer has a zstd:chunked manifest-position annotation", c.name)
	}
}

// ociLayerAnnotations reads an OCI layout's manifests and returns each layer
// digest's annotations.
func ociLayerAnnotations(dir string) (map[string]map[string]string, error) {
	type desc struct {
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	}
	read := func(path string, v any) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	var idx struct{ Manifests []desc }
	if err := read(filepath.Join(dir, "index.json"), &idx); err != nil {
		return nil, err
	}
	res := map[string]map[string]string{}
	for _, m := range idx.Manifests {
		var man struct{ Layers []desc }
		if err := read(filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(m.Digest, "sha256:")), &man); err != nil {
			return nil, err
		}
		for _, l := range man.Layers {
			res[l.Digest] = l.Annotations
		}
	}
	return res, nil
}

// writeMultiPlatform adds to the OCI layout dir an image index tagged to
// with two instances: the manifest tagged from (linux/amd64 as the suite
// builds it) and a copy whose config says linux/arm64 (same layers).
func writeMultiPlatform(dir, from, to string) error {
	blob := func(d string) string { return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")) }
	put := func(v any) (map[string]any, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		d := digest.FromBytes(b)
		if err := os.WriteFile(blob(d.String()), b, 0o644); err != nil {
			return nil, err
		}
		return map[string]any{"digest": d.String(), "size": len(b)}, nil
	}
	read := func(path string, v any) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	var idx map[string]any
	if err := read(filepath.Join(dir, "index.json"), &idx); err != nil {
		return err
	}
	var amd map[string]any
	for _, m := range idx["manifests"].([]any) {
		if d := m.(map[string]any); d["annotations"].(map[string]any)["org.opencontainers.image.ref.name"] == from {
			amd = d
		}
	}
	if amd == nil {
		return fmt.Errorf("no %s in %s", from, dir)
	}
	var man, cfg map[string]any
	if err := read(blob(amd["digest"].(string)), &man); err != nil {
		return err
	}
	cdesc := man["config"].(map[string]any)
	if err := read(blob(cdesc["digest"].(string)), &cfg); err != nil {
		return err
	}
	cfg["architecture"] = "arm64"
	c2, err := put(cfg)
	if err != nil {
		return err
	}
	cdesc["digest"], cdesc["size"] = c2["digest"], c2["size"]
	m2, err := put(man)
	if err != nil {
		return err
	}
	mt := "application/vnd.oci.image.manifest.v1+json"
	index, err := put(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{
			map[string]any{"mediaType": mt, "digest": amd["digest"], "size": amd["size"], "platform": map[string]string{"os": "linux", "architecture": "amd64"}},
			map[string]any{"mediaType": mt, "digest": m2["digest"], "size": m2["size"], "platform": map[string]string{"os": "linux", "architecture": "arm64"}},
		},
	})
	if err != nil {
		return err
	}
	index["mediaType"] = "application/vnd.oci.image.index.v1+json"
	index["annotations"] = map[string]string{"org.opencontainers.image.ref.name": to}
	idx["manifests"] = append(idx["manifests"].([]any), index)
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644)
}
