package ocilayout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixturesDir is ../shared/fixtures-external relative to the repository
// root; tests using it skip when it is absent.
func fixturesDir(t *testing.T) string { return fixtures.External(t) }

type layoutCase struct {
	dir      string
	names    []string
	findings []report.Check // checks that must appear
	// absent: blobs the layout names but does not hold (ErrNotFound expected).
	absent bool
	// mismatch: blobs known not to hash to / measure their descriptor.
	mismatch bool
}

const (
	stereo = "anchore+stereoscope/pkg/image/oci/testdata/"
	ggcr   = "google+go-containerregistry/pkg/v1/layout/testdata/"
	cimage = "containers+image/oci/layout/fixtures/"
)

var layoutCases = []layoutCase{
	{dir: stereo + "valid_oci_dir", names: []string{"latest", "1.0"}},
	{dir: stereo + "multiplatform_oci_dir", names: []string{"docker.io/library/multi-platform:latest"}},
	{dir: stereo + "valid_manifest", names: []string{"index.json[0]"}, findings: []report.Check{report.ArchiveManifest}, mismatch: true},
	{dir: stereo + "invalid_file", names: nil, findings: []report.Check{report.ArchiveManifest}},
	{dir: stereo + "no_manifests", names: nil, findings: []report.Check{report.ArchiveManifest}},
	{dir: ggcr + "test_index", names: []string{"1", "2", "3", "4"}},
	{dir: ggcr + "test_gc_index", names: []string{"1", "3", "4"}},
	{dir: ggcr + "test_index_one_image", names: []string{"index.json[0]"}},
	{dir: ggcr + "test_index_media_type", names: []string{"index.json[0]"}},
	{dir: ggcr + "test_gc_image_unknown_mediatype", names: []string{"index.json[0]"}, absent: true},
	{dir: "regclient+regclient/testdata/external", names: []string{"a3", "sha256-dfae8f425735a5e3a72e40d6609e03079995511d48157c74d54801ff4430491e", "a4"}},
	{dir: "regclient+regclient/testdata/testrepo"},
	{dir: cimage + "delete_image_multiple_images", names: []string{"latest", "3.18.3", "3", "3.18", "3.17.5", "3.16.7", "1.0.0"}},
	{dir: cimage + "delete_image_only_one_image", names: []string{"latest"}, mismatch: true},
	{dir: cimage + "delete_image_shared_blobs_dir", names: []string{"latest"}, absent: true},
	{dir: cimage + "delete_image_two_identical_references", names: []string{"1.0.0", "1.0.0"}},
	{dir: cimage + "manifest", names: []string{"v0.1.1"}, absent: true, findings: []report.Check{report.ArchiveManifest}},
	{dir: cimage + "name_lookups", names: []string{"a", "b", "c", "d", "invalid-mime"}, absent: true},
	{dir: cimage + "two_images_manifest", names: []string{"index.json[0]", "index.json[1]"}, absent: true},
}

func TestFixtures(t *testing.T) {
	root := fixturesDir(t)
	for _, tc := range layoutCases {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			dir := filepath.Join(root, tc.dir)
			before := snapshot(t, dir)
			l, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer l.Close()
			ts, err := l.Targets(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tc.names != nil || len(ts) == 0 {
				if got := targetNames(ts); !slices.Equal(got, tc.names) {
					t.Fatalf("names = %q, want %q", got, tc.names)
				}
			} else if len(ts) != 26 {
				t.Fatalf("testrepo: %d targets, want 26", len(ts))
			}
			fs := l.Findings()
			for _, c := range tc.findings {
				if !slices.ContainsFunc(fs, func(f report.Finding) bool { return f.Check == c }) {
					t.Errorf("no %s finding in %+v", c, fs)
				}
			}
			w := &walker{t: t, l: l, tc: tc, seen: map[digest.Digest]bool{}}
			for _, tg := range ts {
				w.walk(*tg.Descriptor, 0)
			}
			if w.absentSeen && !tc.absent {
				t.Error("blobs absent from a complete layout")
			}
			if tc.absent && !w.absentSeen {
				t.Error("no absent blob found where the fixture lacks some")
			}
			blobs, err := l.ListBlobs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range blobs {
				data := readAll(t, b)
				if d, err := digest.Parse(b.Key()); err == nil && digest.FromBytes(data) != d && !tc.mismatch {
					t.Errorf("blob %s hashes to %s", d, digest.FromBytes(data))
				}
			}
			// Every blob reached through the index is listed.
			listed := map[string]bool{}
			for _, b := range blobs {
				listed[b.Key()] = true
			}
			for d := range w.seen {
				if w.present[d] && !listed[d.String()] {
					t.Errorf("blob %s reachable but not listed", d)
				}
			}
			if after := snapshot(t, dir); !slices.Equal(before, after) {
				t.Error("the layout changed while it was read")
			}
		})
	}
}

// walker follows descriptors through indexes and manifests, reading and
// hashing every blob.
type walker struct {
	t          *testing.T
	l          *Layout
	tc         layoutCase
	seen       map[digest.Digest]bool
	present    map[digest.Digest]bool
	absentSeen bool
}

func (w *walker) blob(d ocispec.Descriptor) ([]byte, bool) {
	t := w.t
	t.Helper()
	if w.present == nil {
		w.present = map[digest.Digest]bool{}
	}
	w.seen[d.Digest] = true
	b, err := w.l.Blob(context.Background(), d)
	if errors.Is(err, source.ErrNotFound) {
		w.absentSeen = true
		if !w.tc.absent {
			t.Errorf("blob %s: %v", d.Digest, err)
		}
		return nil, false
	}
	if err != nil {
		t.Fatalf("blob %s: %v", d.Digest, err)
	}
	if b.Key() != d.Digest.String() {
		t.Errorf("blob %s has key %q", d.Digest, b.Key())
	}
	w.present[d.Digest] = true
	data := readAll(t, b)
	if !w.tc.mismatch && (digest.FromBytes(data) != d.Digest || int64(len(data)) != d.Size) {
		t.Errorf("blob %s: %d bytes hashing to %s; descriptor says %d bytes", d.Digest, len(data), digest.FromBytes(data), d.Size)
	}
	return data, true
}

func (w *walker) walk(d ocispec.Descriptor, depth int) {
	if w.seen[d.Digest] || depth > 8 {
		return
	}
	data, ok := w.blob(d)
	if !ok {
		return
	}
	var doc struct {
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Subject   *ocispec.Descriptor  `json:"subject"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return // not a manifest (an artifact's blob)
	}
	for _, m := range doc.Manifests {
		w.walk(m, depth+1)
	}
	if doc.Config != nil && !w.seen[doc.Config.Digest] {
		w.blob(*doc.Config)
	}
	for _, l := range doc.Layers {
		if !w.seen[l.Digest] {
			w.blob(l)
		}
	}
}

func readAll(t *testing.T, b source.Blob) []byte {
	t.Helper()
	data, err := source.ReadAll(context.Background(), b, 64<<20)
	if err != nil {
		t.Fatalf("reading %s: %v", b.Location(), err)
	}
	if b.Size() != int64(len(data)) {
		t.Errorf("%s: Size() = %d, read %d", b.Location(), b.Size(), len(data))
	}
	return data
}

func targetNames(ts []source.Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

// snapshot records every file's path, size, mode and mtime under dir.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %v %d", p, info.Size(), info.Mode(), info.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// layoutDir writes a small valid layout: one image manifest with a config
// and one layer, plus whatever extra files are given (path → content).
func layoutDir(t *testing.T, extra map[string]string) (string, ocispec.Descriptor) {
	t.Helper()
	dir := t.TempDir()
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	blob := func(data []byte) ocispec.Descriptor {
		d := digest.FromBytes(data)
		write("blobs/sha256/"+d.Encoded(), data)
		return ocispec.Descriptor{Digest: d, Size: int64(len(data))}
	}
	layer := blob([]byte("layer bytes"))
	layer.MediaType = ocispec.MediaTypeImageLayer
	cfg := blob([]byte(`{"rootfs":{"type":"layers","diff_ids":["` + digest.FromString("layer bytes").String() + `"]}}`))
	cfg.MediaType = ocispec.MediaTypeImageConfig
	m, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{layer}})
	md := blob(m)
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "v1"}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex, "manifests": []ocispec.Descriptor{md}})
	write("index.json", idx)
	write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	for rel, content := range extra {
		write(rel, []byte(content))
	}
	return dir, md
}

func TestLayoutTargetsAndBlobs(t *testing.T) {
	dir, md := layoutDir(t, nil)
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := l.Targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Name != "v1" || ts[0].Descriptor.Digest != md.Digest || ts[0].Image != nil {
		t.Fatalf("targets = %+v", ts)
	}
	if len(l.Findings()) != 0 {
		t.Errorf("findings on a valid layout: %+v", l.Findings())
	}
	b, err := l.Blob(context.Background(), md)
	if err != nil {
		t.Fatal(err)
	}
	fb, ok := b.(*source.FileBlob)
	if !ok || fb.Size() != md.Size || fb.Key() != md.Digest.String() {
		t.Errorf("blob = %#v", b)
	}
}

func TestBlobRefusesBadDigestsAndNonFiles(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	dirHex := digest.FromString("dir").Encoded()
	linkHex := digest.FromString("link").Encoded()
	inHex := digest.FromString("in").Encoded()
	dir, md := layoutDir(t, map[string]string{
		"blobs/sha256/" + dirHex + "/x": "a directory where a blob belongs",
		"x":                             "not a blob",
	})
	if err := os.Symlink(outside, filepath.Join(dir, "blobs", "sha256", linkHex)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(md.Digest.Encoded(), filepath.Join(dir, "blobs", "sha256", inHex)); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, d := range []digest.Digest{"sha256:../../x", "sha256:..", "sha256:" + digest.Digest(strings.Repeat("../", 21)+"x"), "", "md5:d41d8cd98f00b204e9800998ecf8427e", digest.Digest("sha256:" + strings.ToUpper(md.Digest.Encoded()))} {
		if b, err := l.Blob(ctx, ocispec.Descriptor{Digest: d}); err == nil || !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "invalid digest") {
			t.Errorf("Blob(%q) = %v, %v; want an invalid-digest error wrapping ErrNotFound", d, b, err)
		}
	}
	if _, err := l.Blob(ctx, ocispec.Descriptor{Digest: digest.NewDigestFromEncoded(digest.SHA256, dirHex)}); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory blob: %v", err)
	}
	if _, err := l.Blob(ctx, ocispec.Descriptor{Digest: digest.FromString("absent")}); !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "absent") {
		t.Errorf("absent blob: %v", err)
	}
	if b, err := l.Blob(ctx, ocispec.Descriptor{Digest: digest.NewDigestFromEncoded(digest.SHA256, linkHex)}); err == nil || errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "outside the layout") {
		t.Errorf("symlink leaving the layout: %v, %v", b, err)
	}
	if b, err := l.Blob(ctx, ocispec.Descriptor{Digest: digest.NewDigestFromEncoded(digest.SHA256, inHex)}); err != nil || b.Size() != md.Size {
		t.Errorf("symlink inside the layout: %v, %v", b, err)
	}

	// Findings are complete once Targets returned (the verifier reads them
	// then), including those about blobs/.
	if _, err := l.Targets(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(l.Findings(), func(f report.Finding) bool {
		return f.Check == report.ArchiveUnsafePath && strings.Contains(f.Subject.Path, linkHex)
	}) {
		t.Errorf("no unsafe-path finding for the outside symlink after Targets: %+v", l.Findings())
	}
	blobs, err := l.ListBlobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := l.ListBlobs(ctx); len(again) != len(blobs) || len(l.Findings()) != 1 {
		t.Errorf("second ListBlobs: %d blobs (first %d), %d findings (want 1)", len(again), len(blobs), len(l.Findings()))
	}
	var keys []string
	for _, b := range blobs {
		keys = append(keys, b.Key())
	}
	if !slices.Contains(keys, "blobs/sha256/"+dirHex+"/x") {
		t.Errorf("stray file under blobs/ not listed by path: %q", keys)
	}
	if slices.Contains(keys, digest.NewDigestFromEncoded(digest.SHA256, linkHex).String()) {
		t.Error("symlink leaving the layout listed")
	}
}

func TestBlobFIFODoesNotHang(t *testing.T) {
	dir, _ := layoutDir(t, nil)
	hex := digest.FromString("fifo").Encoded()
	if err := syscall.Mkfifo(filepath.Join(dir, "blobs", "sha256", hex), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "oci-layout.fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Blob(context.Background(), ocispec.Descriptor{Digest: digest.NewDigestFromEncoded(digest.SHA256, hex)})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO blob: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Blob blocked on a FIFO")
	}
}

func TestIndexFIFONotOpened(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "index.json"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Open(dir, Options{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Open with a FIFO index.json = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open blocked on a FIFO index.json")
	}
}

func TestLayoutFileProblems(t *testing.T) {
	for _, tc := range []struct {
		name, content string // content "" = file absent
		msg           string
	}{
		{"absent", "", "missing"},
		{"garbage", "{nope", "not valid JSON"},
		{"no version", `{"other":1}`, "no imageLayoutVersion"},
		{"future version", `{"imageLayoutVersion":"2.0.0"}`, "2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := layoutDir(t, nil)
			p := filepath.Join(dir, "oci-layout")
			if tc.content == "" {
				os.Remove(p)
			} else if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			fs := l.Findings()
			if len(fs) != 1 || fs[0].Check != report.ArchiveManifest || fs[0].Subject.Path != "oci-layout" || !strings.Contains(fs[0].Message, tc.msg) {
				t.Errorf("findings = %+v, want one about oci-layout saying %q", fs, tc.msg)
			}
			if ts, _ := l.Targets(context.Background()); len(ts) != 1 {
				t.Errorf("targets = %d, want 1 despite the oci-layout problem", len(ts))
			}
		})
	}
}

func TestIndexProblems(t *testing.T) {
	for _, tc := range []struct {
		name, index string
		targets     int
		sev         report.Severity
		msg         string
	}{
		{"null manifests", `{"schemaVersion":2,"manifests":null}`, 0, report.Info, "no manifests"},
		{"no manifests", `{"schemaVersion":2}`, 0, report.Info, "no manifests"},
		{"empty manifests", `{"schemaVersion":2,"manifests":[]}`, 0, report.Info, "no manifests"},
		{"garbage", `[1,2`, 0, report.Error, "not a JSON image index"},
		{"empty file", ``, 0, report.Error, "empty"},
		{"bad entry", `{"schemaVersion":2,"manifests":[{"digest":5},{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":3}]}`, 1, report.Error, "manifests[0]"},
		{"schema 1", `{"schemaVersion":1,"manifests":[]}`, 0, report.Warning, "schemaVersion 1"},
		{"manifest as index", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}`, 0, report.Warning, "not an image index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := layoutDir(t, map[string]string{"index.json": tc.index})
			l, err := Open(dir, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			ts, err := l.Targets(context.Background())
			if err != nil || len(ts) != tc.targets {
				t.Errorf("Targets = %d, %v; want %d", len(ts), err, tc.targets)
			}
			if !slices.ContainsFunc(l.Findings(), func(f report.Finding) bool {
				return f.Check == report.ArchiveManifest && f.Severity == tc.sev && strings.Contains(f.Message, tc.msg)
			}) {
				t.Errorf("no severity-%d finding saying %q: %+v", tc.sev, tc.msg, l.Findings())
			}
		})
	}
}

func TestTargetNames(t *testing.T) {
	d := func(ann map[string]string) ocispec.Descriptor { return ocispec.Descriptor{Annotations: ann} }
	for _, tc := range []struct {
		desc ocispec.Descriptor
		name string
		tags []string
	}{
		{d(nil), "index.json[3]", nil},
		{d(map[string]string{ocispec.AnnotationRefName: "v1"}), "v1", []string{"v1"}},
		{d(map[string]string{ocispec.AnnotationRefName: "latest", "io.containerd.image.name": "docker.io/library/x:latest"}), "docker.io/library/x:latest", []string{"docker.io/library/x:latest", "latest"}},
		{d(map[string]string{ocispec.AnnotationRefName: "x:1", "io.containerd.image.name": "x:1"}), "x:1", []string{"x:1"}},
	} {
		name, tags := source.IndexTargetName(tc.desc, "index.json[3]")
		if name != tc.name || !slices.Equal(tags, tc.tags) {
			t.Errorf("IndexTargetName(%v) = %q %q, want %q %q", tc.desc.Annotations, name, tags, tc.name, tc.tags)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := Open(empty, Options{}); !errors.Is(err, source.ErrUnsupported) || !strings.Contains(err.Error(), "index.json") {
		t.Errorf("Open(empty dir) = %v", err)
	}
	onlyLayout := t.TempDir()
	os.WriteFile(filepath.Join(onlyLayout, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	if _, err := Open(onlyLayout, Options{}); err == nil || !strings.Contains(err.Error(), filepath.Join(onlyLayout, "index.json")) {
		t.Errorf("Open(layout without index.json) = %v, want an error naming index.json", err)
	}
	file := filepath.Join(empty, "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(file, Options{}); !errors.Is(err, source.ErrUnsupported) {
		t.Errorf("Open(file) = %v", err)
	}
	big, _ := layoutDir(t, map[string]string{"index.json": `{"schemaVersion":2,"manifests":[]}` + strings.Repeat(" ", 200)})
	var le *source.LimitError
	if _, err := Open(big, Options{MaxManifestSize: 100}); !errors.As(err, &le) {
		t.Errorf("Open with an index.json over the limit = %v, want a LimitError", err)
	}
}

func TestListBlobsWithoutBlobsDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644)
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	bs, err := l.ListBlobs(context.Background())
	if err != nil || len(bs) != 0 {
		t.Errorf("ListBlobs = %v, %v", bs, err)
	}
}
