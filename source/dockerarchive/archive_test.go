package dockerarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// legacyImage is a minimal docker save (≤24) of one image with the given layers.
type legacyImage struct {
	config  []byte
	layers  [][]byte
	entries []entry // config, layers, manifest.json
}

func newLegacyImage(t *testing.T, tag string, layers ...[]byte) legacyImage {
	t.Helper()
	var diffIDs []string
	for _, l := range layers {
		diffIDs = append(diffIDs, sha(l).String())
	}
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}`, strings.Join(diffIDs, `","`)))
	img := legacyImage{config: cfg, layers: layers}
	img.entries = append(img.entries, reg(sha(cfg).Encoded()+".json", cfg))
	var paths []string
	for i, l := range layers {
		p := fmt.Sprintf("v1id%d/layer.tar", i)
		paths = append(paths, p)
		img.entries = append(img.entries, reg(p, l))
	}
	img.entries = append(img.entries, jsonEntry(t, "manifest.json", []map[string]any{{
		"Config": sha(cfg).Encoded() + ".json", "RepoTags": []string{tag}, "Layers": paths}}))
	return img
}

func TestLegacySaveInPlace(t *testing.T) {
	l0, l1 := layerTar(t, "a", "one"), layerTar(t, "b", "two")
	img := newLegacyImage(t, "x:1", l0, l1)
	a := openBytes(t, buildTar(t, img.entries...), Options{})
	if a.Compression() != None {
		t.Errorf("Compression() = %q", a.Compression())
	}
	ts := targets(t, a)
	if len(ts) != 1 || ts[0].Name != "x:1" || !slices.Equal(ts[0].Tags, []string{"x:1"}) {
		t.Fatalf("targets = %+v", ts)
	}
	im := ts[0].Image
	if im.Config.Desc.Digest != sha(img.config) {
		t.Errorf("config claims %s, want %s", im.Config.Desc.Digest, sha(img.config))
	}
	for i, l := range im.Layers {
		if l.Desc.Digest != "" || l.Desc.Size != -1 {
			t.Errorf("layer.tar %d claims %+v, want nothing", i, l.Desc)
		}
		if _, ok := l.Blob.(*source.SectionBlob); !ok {
			t.Errorf("layer %d is a %T, want a SectionBlob read in place", i, l.Blob)
		}
		if got := readBytes(t, l.Blob); !bytes.Equal(got, img.layers[i]) {
			t.Errorf("layer %d bytes differ", i)
		}
		if l.Blob.Key() != fmt.Sprintf("v1id%d/layer.tar", i) {
			t.Errorf("layer %d key %q", i, l.Blob.Key())
		}
	}
	if len(a.Findings()) != 0 {
		t.Errorf("findings on a clean save: %+v", a.Findings())
	}
	// A legacy save holds no blobs/: Blob finds nothing.
	if _, err := a.Blob(context.Background(), ocispec.Descriptor{Digest: sha(img.config)}); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Blob in a legacy save = %v, want ErrNotFound", err)
	}
}

func TestUnsafeMemberNames(t *testing.T) {
	good := layerTar(t, "f", "good")
	img := newLegacyImage(t, "x:1", good)
	evil := layerTar(t, "f", "evil")
	entries := []entry{
		reg("../evil/layer.tar", evil),
		reg("/abs/layer.tar", evil),
		reg("a/../../b/layer.tar", evil),
	}
	entries = append(entries, img.entries[:len(img.entries)-1]...)
	entries = append(entries, jsonEntry(t, "manifest.json", []map[string]any{{
		"Config": sha(img.config).Encoded() + ".json", "RepoTags": []string{"x:1"},
		"Layers": []string{"v1id0/layer.tar", "../evil/layer.tar", "/abs/layer.tar"}}}))
	a := openBytes(t, buildTar(t, entries...), Options{})
	ts := targets(t, a)
	ls := ts[0].Image.Layers
	if ls[0].Blob == nil {
		t.Fatalf("good layer missing: %s", ls[0].Missing)
	}
	for _, i := range []int{1, 2} {
		if ls[i].Blob != nil || !strings.Contains(ls[i].Missing, "unsafe") {
			t.Errorf("layer %d: blob %v, missing %q; want missing as unsafe", i, ls[i].Blob, ls[i].Missing)
		}
	}
	unsafe := findingsOf(a.Findings(), report.ArchiveUnsafePath)
	for _, want := range []string{"../evil/layer.tar", "/abs/layer.tar", "a/../../b/layer.tar"} {
		n := 0
		for _, f := range unsafe {
			if f.Subject.Path == want && strings.Contains(f.Message, want) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no unsafe-path finding naming %q in %+v", want, unsafe)
		}
	}
	// The unsafe members are not indexed at all.
	for n := range a.members {
		if strings.Contains(n, "evil") || strings.Contains(n, "abs") {
			t.Errorf("unsafe member indexed as %q", n)
		}
	}
}

func TestLinksLeavingTheArchive(t *testing.T) {
	img := newLegacyImage(t, "x:1", layerTar(t, "f", "ok"))
	entries := append([]entry{}, img.entries[:len(img.entries)-1]...)
	entries = append(entries,
		symlink("l1/layer.tar", "../../etc/passwd"),
		symlink("l2/layer.tar", "/etc/passwd"),
		hardlink("l3/layer.tar", "../outside"),
		symlink("up", ".."),
		jsonEntry(t, "manifest.json", []map[string]any{{
			"Config": sha(img.config).Encoded() + ".json",
			"Layers": []string{"l1/layer.tar", "l2/layer.tar", "l3/layer.tar", "up/x/layer.tar"}}}),
	)
	a := openBytes(t, buildTar(t, entries...), Options{})
	ts := targets(t, a)
	for i, l := range ts[0].Image.Layers {
		if l.Blob != nil {
			t.Errorf("layer %d through a link leaving the archive resolved to %s", i, l.Blob.Location())
		}
		if !strings.Contains(l.Missing, "outside the archive") {
			t.Errorf("layer %d missing %q, want it to say the link leaves the archive", i, l.Missing)
		}
	}
	unsafe := findingsOf(a.Findings(), report.ArchiveUnsafePath)
	for _, want := range []string{"l1/layer.tar", "l2/layer.tar", "l3/layer.tar", "up"} {
		if !slices.ContainsFunc(unsafe, func(f report.Finding) bool { return f.Subject.Path == want }) {
			t.Errorf("no unsafe-path finding for member %q: %+v", want, unsafe)
		}
	}
	if ts[0].Name != sha(img.config).String() {
		t.Errorf("untagged image named %q, want its config id", ts[0].Name)
	}
}

func TestLinksInsideTheArchive(t *testing.T) {
	l0 := layerTar(t, "f", "zero")
	img := newLegacyImage(t, "x:1", l0)
	entries := append([]entry{}, img.entries[:len(img.entries)-1]...)
	entries = append(entries,
		dir("real/"),
		reg("real/layer.tar", l0),
		symlink("dirlink", "real"),                    // a symlinked directory
		hardlink("hard/layer.tar", "v1id0/layer.tar"), // hard link to a member
		symlink("chain/layer.tar", "../hard/layer.tar"),
		symlink("loop1", "loop2"), symlink("loop2", "loop1"),
		jsonEntry(t, "manifest.json", []map[string]any{{
			"Config": sha(img.config).Encoded() + ".json",
			"Layers": []string{"dirlink/layer.tar", "chain/layer.tar", "loop1", "real"}}}),
	)
	a := openBytes(t, buildTar(t, entries...), Options{})
	ls := targets(t, a)[0].Image.Layers
	if ls[0].Blob == nil || ls[0].Blob.Key() != "real/layer.tar" {
		t.Errorf("dirlink/layer.tar: %+v", ls[0])
	} else if !bytes.Equal(readBytes(t, ls[0].Blob), l0) {
		t.Error("dirlink/layer.tar bytes differ")
	}
	if ls[1].Blob == nil || ls[1].Blob.Key() != "v1id0/layer.tar" {
		t.Errorf("symlink to hard link: %+v", ls[1])
	}
	if ls[2].Blob != nil || !strings.Contains(ls[2].Missing, "loop") {
		t.Errorf("symlink loop: blob %v, missing %q", ls[2].Blob, ls[2].Missing)
	}
	if ls[3].Blob != nil || !strings.Contains(ls[3].Missing, "directory") {
		t.Errorf("directory as a layer: blob %v, missing %q", ls[3].Blob, ls[3].Missing)
	}
	if n := len(findingsOf(a.Findings(), report.ArchiveUnsafePath)); n != 0 {
		t.Errorf("%d unsafe-path findings for links that stay inside", n)
	}
}

// docker25 builds a Docker 25+ style save: OCI layout plus manifest.json with
// LayerSources, layers stored uncompressed and named by diffID.
func docker25(t *testing.T, layers ...[]byte) (entries []entry, cfg []byte, manifest []byte) {
	t.Helper()
	var diffIDs, paths []string
	ls := map[string]ocispec.Descriptor{}
	var descs []ocispec.Descriptor
	for _, l := range layers {
		d := sha(l)
		diffIDs = append(diffIDs, d.String())
		paths = append(paths, "blobs/sha256/"+d.Encoded())
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: d, Size: int64(len(l))}
		ls[d.String()] = desc
		descs = append(descs, desc)
	}
	cfg = []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]}}`, strings.Join(diffIDs, `","`)))
	manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[`, sha(cfg), len(cfg)))
	for i, d := range descs {
		if i > 0 {
			manifest = append(manifest, ',')
		}
		manifest = append(manifest, fmt.Sprintf(`{"mediaType":"%s","digest":"%s","size":%d}`, d.MediaType, d.Digest, d.Size)...)
	}
	manifest = append(manifest, "]}"...)
	entries = []entry{
		dir("blobs/"), dir("blobs/sha256/"),
		reg("blobs/sha256/"+sha(cfg).Encoded(), cfg),
		reg("blobs/sha256/"+sha(manifest).Encoded(), manifest),
	}
	for i, l := range layers {
		entries = append(entries, reg(paths[i], l))
	}
	entries = append(entries,
		regs("oci-layout", `{"imageLayoutVersion": "1.0.0"}`),
		jsonEntry(t, "index.json", map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex,
			"manifests": []map[string]any{{"mediaType": ocispec.MediaTypeImageManifest, "digest": sha(manifest), "size": len(manifest),
				"annotations": map[string]string{"io.containerd.image.name": "docker.io/library/x:1", ocispec.AnnotationRefName: "1"}}}}),
		jsonEntry(t, "manifest.json", []map[string]any{{"Config": "blobs/sha256/" + sha(cfg).Encoded(),
			"RepoTags": []string{"x:1"}, "Layers": paths, "LayerSources": ls}}),
	)
	return entries, cfg, manifest
}

func TestDocker25Save(t *testing.T) {
	l0, l1 := layerTar(t, "a", "one"), layerTar(t, "b", "two")
	entries, cfg, manifest := docker25(t, l0, l1)
	a := openBytes(t, buildTar(t, entries...), Options{})
	ts := targets(t, a)
	if got := names(ts); !slices.Equal(got, []string{"x:1", "docker.io/library/x:1"}) {
		t.Fatalf("names = %q", got)
	}
	if !slices.Equal(ts[1].Tags, []string{"docker.io/library/x:1", "1"}) {
		t.Errorf("index target tags = %q", ts[1].Tags)
	}
	img := ts[0].Image
	if img.Config.Blob.Key() != sha(cfg).String() {
		t.Errorf("config key %q, want the digest", img.Config.Blob.Key())
	}
	for i, l := range img.Layers {
		want := sha([][]byte{l0, l1}[i])
		if l.Desc.Digest != want || l.Desc.MediaType != ocispec.MediaTypeImageLayer || l.Desc.Size != int64(len([][]byte{l0, l1}[i])) {
			t.Errorf("layer %d claims %+v", i, l.Desc)
		}
		// The same member through Blob has the same key (the verifier reads it once).
		b, err := a.Blob(context.Background(), ocispec.Descriptor{Digest: want})
		if err != nil {
			t.Fatal(err)
		}
		if b.Key() != l.Blob.Key() {
			t.Errorf("layer %d: key %q via manifest.json, %q via Blob", i, l.Blob.Key(), b.Key())
		}
	}
	mb, err := a.Blob(context.Background(), *ts[1].Descriptor)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBytes(t, mb), manifest) {
		t.Error("manifest bytes differ")
	}
	blobs, err := a.ListBlobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 4 {
		t.Errorf("ListBlobs = %d blobs, want 4 (config, manifest, 2 layers)", len(blobs))
	}
}

func TestLayerSourcesNotDescribingTheMember(t *testing.T) {
	l0 := layerTar(t, "a", "one")
	img := newLegacyImage(t, "x:1", l0)
	compressed := ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromString("elsewhere"), Size: 99}
	foreign := ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Digest: sha(l0), Size: int64(len(l0)), URLs: []string{"https://example.com/l"}}
	for name, ls := range map[string]ocispec.Descriptor{"compressed": compressed, "foreign": foreign} {
		t.Run(name, func(t *testing.T) {
			entries := append([]entry{}, img.entries[:len(img.entries)-1]...)
			entries = append(entries, jsonEntry(t, "manifest.json", []map[string]any{{
				"Config": sha(img.config).Encoded() + ".json", "Layers": []string{"v1id0/layer.tar"},
				"LayerSources": map[string]ocispec.Descriptor{sha(l0).String(): ls}}}))
			a := openBytes(t, buildTar(t, entries...), Options{})
			d := targets(t, a)[0].Image.Layers[0].Desc
			if d.Digest != "" || d.Size != -1 || d.MediaType != "" {
				t.Errorf("layer claims %+v, want nothing", d)
			}
		})
	}
}

func TestManifestProblems(t *testing.T) {
	l0 := layerTar(t, "a", "one")
	d25, _, _ := docker25(t, l0)
	withManifest := func(m string) []entry {
		var out []entry
		for _, e := range d25 {
			if e.name != "manifest.json" {
				out = append(out, e)
			}
		}
		return append(out, regs("manifest.json", m))
	}
	for _, tc := range []struct {
		name, manifest string
		names          []string
		msg            string
	}{
		{"garbage", "{not json", []string{"docker.io/library/x:1"}, "not a JSON list"},
		{"null", "null", []string{"docker.io/library/x:1"}, "null"},
		{"empty", "  ", []string{"docker.io/library/x:1"}, "empty"},
		{"empty list", "[]", []string{"docker.io/library/x:1"}, "empty list"},
		{"bad entry", `[null, 5]`, []string{"docker.io/library/x:1"}, "manifest.json[1]"},
		{"no config", `[{"RepoTags":["y:2"],"Layers":[]}]`, []string{"y:2", "docker.io/library/x:1"}, "names no Config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := openBytes(t, buildTar(t, withManifest(tc.manifest)...), Options{})
			ts := targets(t, a)
			if got := names(ts); !slices.Equal(got, tc.names) {
				t.Errorf("names = %q, want %q (index.json as fallback)", got, tc.names)
			}
			fs := findingsOf(a.Findings(), report.ArchiveManifest)
			if !slices.ContainsFunc(fs, func(f report.Finding) bool {
				return f.Severity == report.Error && strings.Contains(f.Message, tc.msg)
			}) {
				t.Errorf("no error finding mentioning %q: %+v", tc.msg, fs)
			}
		})
	}
}

func TestTargetsComputedOnce(t *testing.T) {
	a := openBytes(t, buildTar(t, regs("manifest.json", "null")), Options{})
	targets(t, a)
	targets(t, a)
	if n := len(a.Findings()); n != 1 {
		t.Errorf("%d findings after two Targets calls, want 1", n)
	}
}

func TestBlobValidation(t *testing.T) {
	hex := sha([]byte("x")).Encoded()
	hex2 := sha([]byte("y")).Encoded()
	entries, _, _ := docker25(t, layerTar(t, "a", "one"))
	entries = append(entries,
		dir("blobs/sha256/"+hex+"/"),
		regs("blobs/sha256/"+hex2+"/inside", "z"),
		regs("x", "secret"),
	)
	a := openBytes(t, buildTar(t, entries...), Options{})
	ctx := context.Background()
	for _, d := range []digest.Digest{"sha256:../../x", digest.Digest("sha256:" + hex[:10]), "md5:abc", "", digest.Digest("sha256:" + strings.ToUpper(hex))} {
		b, err := a.Blob(ctx, ocispec.Descriptor{Digest: d})
		if err == nil || !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "invalid digest") {
			t.Errorf("Blob(%q) = %v, %v; want an invalid-digest error wrapping ErrNotFound", d, b, err)
		}
	}
	for _, h := range []string{hex, hex2} {
		_, err := a.Blob(ctx, ocispec.Descriptor{Digest: digest.NewDigestFromEncoded(digest.SHA256, h)})
		if !errors.Is(err, source.ErrNotFound) || !strings.Contains(err.Error(), "directory") {
			t.Errorf("Blob of a directory = %v, want ErrNotFound saying it is a directory", err)
		}
	}
	_, err := a.Blob(ctx, ocispec.Descriptor{Digest: digest.FromString("absent")})
	if !errors.Is(err, source.ErrNotFound) {
		t.Errorf("absent blob: %v", err)
	}
}

func TestDuplicateMembersLastWins(t *testing.T) {
	first, last := layerTar(t, "f", "first"), layerTar(t, "f", "last")
	img := newLegacyImage(t, "x:1", last)
	entries := append([]entry{reg("v1id0/layer.tar", first)}, img.entries...)
	data := buildTar(t, entries...)

	a := openBytes(t, data, Options{})
	l := targets(t, a)[0].Image.Layers[0]
	if !bytes.Equal(readBytes(t, l.Blob), last) {
		t.Error("duplicate member: the first copy is served, want the last (as tar extraction)")
	}
	dups := findingsOf(a.Findings(), report.ArchiveMember)
	if len(dups) != 1 || dups[0].Severity != report.Warning || dups[0].Subject.Path != "v1id0/layer.tar" {
		t.Errorf("duplicate findings = %+v", dups)
	}
	blobs, _ := a.ListBlobs(context.Background())
	if len(blobs) != 2 {
		t.Errorf("ListBlobs = %d, want 2 (config and the one layer)", len(blobs))
	}

	// Compressed: fn sees both copies under one key, in archive order; the
	// later call is the copy the archive means.
	c := openBytes(t, gzipBytes(t, data), Options{})
	var seen []digest.Digest
	err := c.Scan(context.Background(), func(b source.Blob, r io.Reader) error {
		m, err := measure(r)
		if b.Key() == "v1id0/layer.tar" {
			seen = append(seen, m.digest)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []digest.Digest{sha(first), sha(last)}) {
		t.Errorf("Scan passed the duplicate as %v, want first then last", seen)
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestOpenReadsHeadersOnly builds an archive with an 8 GiB member stored as
// a hole in a sparse file, and checks Open reads only the headers.
func TestOpenReadsHeadersOnly(t *testing.T) {
	const big = 8 << 30
	img := newLegacyImage(t, "x:1", layerTar(t, "f", "small"))
	p := filepath.Join(t.TempDir(), "big.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Name: "huge/layer.tar", Typeflag: tar.TypeReg, Size: big, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(hdr.Bytes()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(big, io.SeekCurrent); err != nil { // a hole: no disk space used
		t.Fatal(err)
	}
	if _, err := f.Write(buildTar(t, img.entries...)); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	cr := &countingReaderAt{r: f}
	a, err := newArchive(p, cr, st.Size(), nil, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if n := cr.n.Load(); n > 64<<10 {
		t.Errorf("Open read %d bytes of a %d-byte archive; want headers only", n, st.Size())
	}
	blobs, err := a.ListBlobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, b := range blobs {
		if b.Location() == "huge/layer.tar" {
			found = true
			if b.Size() != big {
				t.Errorf("huge member size %d", b.Size())
			}
		}
	}
	if !found {
		t.Error("huge member not listed")
	}
	before := cr.n.Load()
	ts := targets(t, a)
	if got := readBytes(t, ts[0].Image.Layers[0].Blob); !bytes.Equal(got, img.layers[0]) {
		t.Error("layer after the huge member reads wrong bytes")
	}
	if n := cr.n.Load() - before; n > 64<<10 {
		t.Errorf("Targets and one small layer read %d bytes", n)
	}
}

func TestCompressedScan(t *testing.T) {
	small := layerTar(t, "a", "small layer")
	large := layerTar(t, "b", strings.Repeat("large layer ", 1000)) // above the 4 KiB limit used below
	entries, cfg, _ := docker25(t, small, large)
	// A legacy-style link to a blob, as in saves that share layers.
	entries = append(entries, hardlink("shared/layer.tar", "blobs/sha256/"+sha(large).Encoded()))
	raw := buildTar(t, entries...)
	for _, c := range []struct {
		name string
		data []byte
	}{{"gzip", gzipBytes(t, raw)}, {"zstd", zstdBytes(t, raw)}} {
		t.Run(c.name, func(t *testing.T) {
			a := openBytes(t, c.data, Options{MaxManifestSize: 4096})
			ctx := context.Background()
			if _, err := a.Blob(ctx, ocispec.Descriptor{Digest: sha(cfg)}); err == nil || !strings.Contains(err.Error(), "Scan") {
				t.Errorf("Blob before Scan = %v", err)
			}
			if _, err := a.ListBlobs(ctx); err == nil {
				t.Error("ListBlobs before Scan succeeded")
			}
			scanned := scanAll(t, a)
			want := []string{sha(large).String(), sha(small).String()}
			slices.Sort(want)
			got := make([]string, 0, len(scanned))
			for k := range scanned {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("Scan passed %q, want the two layers %q (config, manifest, metadata kept; link not passed)", got, want)
			}
			if err := a.Scan(ctx, discardFn); err == nil {
				t.Error("second Scan succeeded")
			}
			ts := targets(t, a)
			img := ts[0].Image
			if got := readBytes(t, img.Config.Blob); !bytes.Equal(got, cfg) {
				t.Error("config kept in memory reads wrong bytes")
			}
			for i, l := range img.Layers {
				if _, err := l.Blob.Open(ctx); !errors.Is(err, source.ErrConsumed) {
					t.Errorf("layer %d Open after Scan = %v, want ErrConsumed", i, err)
				}
				if m, ok := scanned[l.Blob.Key()]; !ok || m.digest != l.Desc.Digest {
					t.Errorf("layer %d key %s: scanned %+v, claimed %s", i, l.Blob.Key(), m, l.Desc.Digest)
				}
			}
			b, why, _ := a.lookup("shared/layer.tar")
			if b == nil || b.Key() != sha(large).String() {
				t.Errorf("hard link in a compressed archive: %v %s; want the key of its target", b, why)
			}
			checkDescriptor(t, a, *ts[1].Descriptor, scanned, 0)
		})
	}
}

func TestCompressedMetadataCap(t *testing.T) {
	var entries []entry
	for i := 0; i < 10; i++ {
		entries = append(entries, regs(fmt.Sprintf("cfg%d.json", i), `{"x":"`+strings.Repeat("y", 2000)+`"}`))
	}
	entries = append(entries, regs("manifest.json", "[]"))
	a := openBytes(t, gzipBytes(t, buildTar(t, entries...)), Options{MaxMetadataTotal: 8000})
	err := a.Scan(context.Background(), discardFn)
	var le *source.LimitError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "decompress the archive first") {
		t.Errorf("Scan = %v, want a limit error suggesting to decompress", err)
	}
}

func TestCompressedStreamCorrupt(t *testing.T) {
	img := newLegacyImage(t, "x:1", layerTar(t, "f", "x"))
	gz := gzipBytes(t, buildTar(t, img.entries...))
	gz[len(gz)-6] ^= 0xff // the gzip trailer's CRC-32
	a := openBytes(t, gz, Options{})
	if err := a.Scan(context.Background(), discardFn); err != nil {
		t.Fatalf("Scan: %v", err)
	}
	fs := findingsOf(a.Findings(), report.ArchiveMember)
	if len(fs) != 1 || fs[0].Severity != report.Error || !strings.Contains(fs[0].Message, "corrupt") {
		t.Errorf("findings = %+v, want one error about the corrupt gzip stream", fs)
	}
	if len(targets(t, a)) != 1 {
		t.Error("targets lost")
	}
}

func TestScanCancelled(t *testing.T) {
	img := newLegacyImage(t, "x:1", layerTar(t, "f", "x"), layerTar(t, "g", "y"))
	a := openBytes(t, zstdBytes(t, buildTar(t, img.entries...)), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := a.Scan(ctx, func(source.Blob, io.Reader) error { calls++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("Scan = %v after %d calls, want context.Canceled after 1", err, calls)
	}
}

func TestTruncatedArchive(t *testing.T) {
	img := newLegacyImage(t, "x:1", layerTar(t, "f", "x"))
	full := buildTar(t, append([]entry{img.entries[len(img.entries)-1]}, img.entries[:len(img.entries)-1]...)...)
	cut := full[:len(full)-1024-600] // inside the last layer's data
	a := openBytes(t, cut, Options{})
	fs := findingsOf(a.Findings(), report.ArchiveMember)
	if len(fs) != 1 || !strings.Contains(fs[0].Message, "truncated") {
		t.Errorf("findings = %+v, want one about truncation", fs)
	}
	ts := targets(t, a)
	if len(ts) != 1 {
		t.Fatalf("targets = %d", len(ts))
	}
}

func TestNotAnImageArchive(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty file", nil, "empty tar"},
		{"random bytes", bytes.Repeat([]byte("not a tar "), 100), "not a tar archive"},
		{"xz", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 100)...), "xz-compressed"},
		{"bzip2", []byte("BZh91AY&SY"), "bzip2"},
		{"plain layer", layerTar(t, "etc/passwd", "root"), "neither manifest.json nor index.json"},
		{"pre-1.10", buildTar(t, regs("repositories", `{"x":{"1":"abc"}}`), regs("abc/json", `{"id":"abc"}`), reg("abc/layer.tar", layerTar(t, "f", "x"))), "pre-1.10"},
		{"nested layout", buildTar(t, regs("mylayout/index.json", "{}"), regs("mylayout/oci-layout", "{}")), "not in a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "in.tar", tc.data)
			_, err := Open(p, Options{})
			if !errors.Is(err, source.ErrUnsupported) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), p) {
				t.Errorf("Open = %v; want ErrUnsupported naming the file and saying %q", err, tc.msg)
			}
		})
	}
	if _, err := Open(t.TempDir(), Options{}); err == nil {
		t.Error("Open of a directory succeeded")
	}
}

func TestOCIArchiveLayoutFile(t *testing.T) {
	entries, _, _ := docker25(t, layerTar(t, "a", "one"))
	var noLayout, noManifest []entry
	for _, e := range entries {
		if e.name != "oci-layout" {
			noLayout = append(noLayout, e)
		}
		if e.name != "manifest.json" {
			noManifest = append(noManifest, e)
		}
	}
	a := openBytes(t, buildTar(t, noLayout...), Options{})
	fs := findingsOf(a.Findings(), report.ArchiveManifest)
	if len(fs) != 1 || fs[0].Subject.Path != "oci-layout" || fs[0].Severity != report.Warning {
		t.Errorf("findings without oci-layout = %+v", fs)
	}
	b := openBytes(t, buildTar(t, append(noManifest, regs("oci-layout", `{"imageLayoutVersion":"2.0.0"}`))...), Options{})
	if fs := findingsOf(b.Findings(), report.ArchiveManifest); len(fs) != 1 || !strings.Contains(fs[0].Message, "2.0.0") {
		t.Errorf("findings with version 2.0.0 = %+v", fs)
	}
	if got := names(targets(t, b)); !slices.Equal(got, []string{"docker.io/library/x:1"}) {
		t.Errorf("OCI archive targets = %q", got)
	}
}

func TestDigestNamedMemberKeys(t *testing.T) {
	cfg := []byte(`{"rootfs":{"type":"layers","diff_ids":[]}}`)
	d := sha(cfg)
	a := openBytes(t, buildTar(t,
		reg(d.String(), cfg), // ggcr-style config named sha256:<hex>
		reg("blobs/sha256/"+d.Encoded(), []byte(`{"other":"bytes"}`)),
		jsonEntry(t, "manifest.json", []map[string]any{{"Config": d.String(), "Layers": []string{}}}),
	), Options{})
	img := targets(t, a)[0].Image
	b, err := a.Blob(context.Background(), ocispec.Descriptor{Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.Blob.Key() == b.Key() {
		t.Errorf("root member %s and blobs/ member share key %q though their bytes differ", d, b.Key())
	}
	if img.Config.Desc.Digest != d {
		t.Errorf("config named by digest claims %q", img.Config.Desc.Digest)
	}
}

// TestConcurrentUse reads one archive from several goroutines at once (run
// with -race).
func TestConcurrentUse(t *testing.T) {
	entries, _, _ := docker25(t, layerTar(t, "a", "one"), layerTar(t, "b", "two"))
	raw := buildTar(t, entries...)
	plain := openBytes(t, raw, Options{})
	compressed := openBytes(t, gzipBytes(t, raw), Options{})
	scanAll(t, compressed)
	for _, a := range []*Archive{plain, compressed} {
		done := make(chan struct{})
		for i := 0; i < 4; i++ {
			go func() {
				defer func() { done <- struct{}{} }()
				ctx := context.Background()
				ts, err := a.Targets(ctx)
				if err != nil || len(ts) != 2 {
					t.Errorf("Targets = %d, %v", len(ts), err)
					return
				}
				for _, l := range ts[0].Image.Layers {
					if _, err := a.Blob(ctx, ocispec.Descriptor{Digest: l.Desc.Digest}); err != nil {
						t.Error(err)
					}
				}
				if _, err := a.ListBlobs(ctx); err != nil {
					t.Error(err)
				}
				_ = a.Findings()
			}()
		}
		for i := 0; i < 4; i++ {
			<-done
		}
	}
}

// TestContainerdStoreSave: Docker's containerd image store saves the
// compressed registry blobs, and manifest.json points at them without
// LayerSources.
func TestContainerdStoreSave(t *testing.T) {
	tar0 := layerTar(t, "a", "one")
	gz0 := gzipBytes(t, tar0)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + sha(tar0).String() + `"]}}`)
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` +
		sha(cfg).String() + `","size":` + fmt.Sprint(len(cfg)) + `},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"` +
		sha(gz0).String() + `","size":` + fmt.Sprint(len(gz0)) + `}]}`)
	a := openBytes(t, buildTar(t,
		reg("blobs/sha256/"+sha(cfg).Encoded(), cfg),
		reg("blobs/sha256/"+sha(gz0).Encoded(), gz0),
		reg("blobs/sha256/"+sha(man).Encoded(), man),
		regs("oci-layout", `{"imageLayoutVersion":"1.0.0"}`),
		jsonEntry(t, "index.json", map[string]any{"schemaVersion": 2, "manifests": []map[string]any{{
			"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": sha(man), "size": len(man),
			"annotations": map[string]string{"io.containerd.image.name": "docker.io/library/x:1", ocispec.AnnotationRefName: "1"}}}}),
		jsonEntry(t, "manifest.json", []map[string]any{{"Config": "blobs/sha256/" + sha(cfg).Encoded(),
			"RepoTags": []string{"x:1"}, "Layers": []string{"blobs/sha256/" + sha(gz0).Encoded()}}}),
	), Options{})
	ts := targets(t, a)
	if got := names(ts); !slices.Equal(got, []string{"x:1", "docker.io/library/x:1"}) {
		t.Fatalf("names = %q", got)
	}
	l := ts[0].Image.Layers[0]
	if l.Desc.Digest != sha(gz0) || l.Desc.MediaType != "" || l.Desc.Size != -1 {
		t.Errorf("compressed layer claims %+v, want the digest its name claims", l.Desc)
	}
	m := read(t, l.Blob, nil)
	if m.digest != sha(gz0) || m.diffID != sha(tar0) {
		t.Errorf("layer read as %+v", m)
	}
	checkDescriptor(t, a, *ts[1].Descriptor, nil, 0)
	if fs := a.Findings(); len(fs) != 0 {
		t.Errorf("findings on a clean save: %+v", fs)
	}
}
