package compare

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// row is what a test asserts of one finding: check ID, severity, subject
// layer index (-1 for an image-level finding), expected and actual.
type row struct {
	Check    report.Check
	Sev      report.Severity
	Layer    int
	Expected string
	Actual   string
}

func (r row) String() string {
	return fmt.Sprintf("{%s %s layer=%d expected=%q actual=%q}", r.Check, r.Sev, r.Layer, r.Expected, r.Actual)
}

func rowsOf(fs []report.Finding) []row {
	out := make([]row, 0, len(fs))
	for _, f := range fs {
		l := -1
		if f.Subject.Layer != nil {
			l = *f.Subject.Layer
		}
		out = append(out, row{f.Check, f.Severity, l, f.Expected, f.Actual})
	}
	sortRows(out)
	return out
}

func sortRows(rs []row) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].String() < rs[j].String() })
}

// assertRows checks that the findings are exactly want (as a set).
func assertRows(t *testing.T, fs []report.Finding, want []row) {
	t.Helper()
	got := rowsOf(fs)
	w := append([]row(nil), want...)
	sortRows(w)
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Errorf("findings differ\n got: %v\nwant: %v", got, w)
		for _, f := range fs {
			t.Logf("  %s %s %s: %s", f.Check, f.Severity, f.Subject, f.Message)
		}
	}
}

// dg is a sha256 digest of s.
func dg(s string) string { return digest.FromString(s).String() }

// chainIDs computes the chainIDs of diffIDs as the image spec defines them:
// ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
func chainIDs(diffIDs []string) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1] + " " + d).String()
	}
	return out
}

// spec describes a hand-written image: the contents of its layers (their
// diffIDs and compressed digests are hashes of these strings) and how they
// are stored.
type spec struct {
	name, platform string
	layers         []string // layer contents, base first
	compression    string   // "gzip" or "none" (a graph-driver docker save)
	recompress     int      // index of a layer whose compressed bytes differ (-1: none)
	noManifest     bool     // a legacy docker save: no manifest blob
}

// image builds a report.Image as the verifier would measure it: diffIDs,
// chainIDs, compressed digests, a config digest that depends on the diffIDs
// and a manifest digest that depends on the config and layer digests.
func image(s spec) report.Image {
	if s.compression == "" {
		s.compression = "gzip"
	}
	var diffIDs []string
	for _, c := range s.layers {
		diffIDs = append(diffIDs, dg("tar:"+c))
	}
	chains := chainIDs(diffIDs)
	im := report.Image{Name: s.name, Platform: s.platform, Status: report.StatusOK}
	im.ConfigDigest = dg("config:" + s.platform + ":" + strings.Join(diffIDs, ","))
	var blobs []string
	for i, c := range s.layers {
		l := report.Layer{Index: i, DiffID: diffIDs[i], ChainID: chains[i], Compression: s.compression, Status: report.StatusOK}
		if s.compression == "none" {
			l.Digest = diffIDs[i] // an uncompressed layer's digest is its diffID
		} else {
			l.Digest = dg("gzip:" + c)
			if s.recompress == i {
				l.Digest = dg("gzip-9:" + c)
			}
		}
		blobs = append(blobs, l.Digest)
		im.Layers = append(im.Layers, l)
	}
	if !s.noManifest {
		im.ManifestDigest = dg("manifest:" + im.ConfigDigest + ":" + strings.Join(blobs, ","))
	}
	return im
}

func amd64(layers ...string) spec {
	return spec{name: "app:1", platform: "linux/amd64", layers: layers, recompress: -1}
}

func TestImages(t *testing.T) {
	base := amd64("base", "middle", "top")
	reg := image(base)

	fewer := image(amd64("base", "middle"))
	more := image(amd64("base", "middle", "top", "extra"))
	recompressed := base
	recompressed.recompress = 2
	plain := base
	plain.compression = "none"
	legacyPlain := plain
	legacyPlain.noManifest = true
	arm := base
	arm.platform = "linux/arm64"

	tests := []struct {
		name      string
		want, got []report.Image
		rows      []row
		problems  int
		pairs     int
		msg       string // a substring one finding's message must hold
	}{
		{
			name: "identical images give no finding",
			want: []report.Image{reg}, got: []report.Image{reg},
			pairs: 1,
		},
		{
			name: "a different config digest is compare-config and, the manifest naming it, compare-manifest",
			want: []report.Image{reg},
			got: func() []report.Image {
				g := reg
				g.ConfigDigest = dg("another config")
				g.ManifestDigest = dg("another manifest")
				return []report.Image{g}
			}(),
			rows: []row{
				{Config, report.Error, -1, reg.ConfigDigest, dg("another config")},
				{Manifest, report.Error, -1, reg.ManifestDigest, dg("another manifest")},
			},
			pairs: 1,
		},
		{
			// The chainID of every layer above a changed one differs too:
			// the changed layer itself is compare-diffid (its chainID is
			// not reported again), each layer above is compare-chainid
			// naming the first layer that differs.
			name: "a diffID changed in the middle is compare-diffid there and compare-chainid on every layer above",
			want: []report.Image{image(amd64("base", "middle", "top", "roof"))},
			got:  []report.Image{image(amd64("base", "MIDDLE", "top", "roof"))},
			rows: func() []row {
				w, g := image(amd64("base", "middle", "top", "roof")), image(amd64("base", "MIDDLE", "top", "roof"))
				return []row{
					{Config, report.Error, -1, w.ConfigDigest, g.ConfigDigest},
					{Manifest, report.Error, -1, w.ManifestDigest, g.ManifestDigest},
					{DiffID, report.Error, 1, w.Layers[1].DiffID, g.Layers[1].DiffID},
					{ChainID, report.Error, 2, w.Layers[2].ChainID, g.Layers[2].ChainID},
					{ChainID, report.Error, 3, w.Layers[3].ChainID, g.Layers[3].ChainID},
				}
			}(),
			pairs: 1,
			msg:   "same layer content on a different stack of lower layers (layer 1 differs)",
		},
		{
			name: "the artifact lacking the top layer is compare-layer-count",
			want: []report.Image{reg}, got: []report.Image{fewer},
			rows: []row{
				{Config, report.Error, -1, reg.ConfigDigest, fewer.ConfigDigest},
				{Manifest, report.Error, -1, reg.ManifestDigest, fewer.ManifestDigest},
				{LayerCountDiffers, report.Error, -1, "3 layers", "2 layers"},
			},
			pairs: 1,
		},
		{
			name: "the artifact holding an extra layer is compare-layer-count",
			want: []report.Image{reg}, got: []report.Image{more},
			rows: []row{
				{Config, report.Error, -1, reg.ConfigDigest, more.ConfigDigest},
				{Manifest, report.Error, -1, reg.ManifestDigest, more.ManifestDigest},
				{LayerCountDiffers, report.Error, -1, "3 layers", "4 layers"},
			},
			pairs: 1,
		},
		{
			name: "the same content recompressed is compare-layer-digest on that layer",
			want: []report.Image{reg}, got: []report.Image{image(recompressed)},
			rows: []row{
				{LayerDigestDiffers, report.Error, 2, reg.Layers[2].Digest, image(recompressed).Layers[2].Digest},
				{Manifest, report.Error, -1, reg.ManifestDigest, image(recompressed).ManifestDigest},
			},
			pairs: 1,
			msg:   "layer 2 has the same content compressed into different bytes (recompressed)",
		},
		{
			name: "an uncompressed side is an info note on layer digests and on the manifest, not an error",
			want: []report.Image{reg}, got: []report.Image{image(plain)},
			rows: []row{
				{LayerDigestDiffers, report.Info, -1, "", ""},
				{Manifest, report.Info, -1, reg.ManifestDigest, image(plain).ManifestDigest},
			},
			pairs: 1,
			msg:   "compressed layer digests cannot be compared for layers 0, 1, 2",
		},
		{
			name: "a legacy save without a manifest has nothing to compare in the manifest",
			want: []report.Image{reg}, got: []report.Image{image(legacyPlain)},
			rows: []row{
				{LayerDigestDiffers, report.Info, -1, "", ""},
			},
			pairs: 1,
		},
		{
			name: "a platform only the registry serves is a warning when another platform matched",
			want: []report.Image{reg, image(arm)}, got: []report.Image{reg},
			rows: []row{
				{MissingPlatform, report.Warning, -1, image(arm).ManifestDigest, "absent"},
			},
			pairs: 1,
		},
		{
			name: "no platform on both sides: each missing platform is an error",
			want: []report.Image{reg}, got: []report.Image{image(arm)},
			rows: []row{
				{MissingPlatform, report.Error, -1, reg.ManifestDigest, "absent"},
				{MissingPlatform, report.Error, -1, "absent", image(arm).ConfigDigest},
			},
			msg: "(and no platform is on both sides)",
		},
		{
			name: "a platform only the artifact holds is an error even when another matched",
			want: []report.Image{reg}, got: []report.Image{reg, image(arm)},
			rows: []row{
				{MissingPlatform, report.Error, -1, "absent", image(arm).ConfigDigest},
			},
			pairs: 1,
		},
		{
			name: "an artifact of several images is narrowed to the one with the registry's config",
			want: []report.Image{reg},
			got: func() []report.Image {
				other := image(spec{name: "other:1", platform: "linux/amd64", layers: []string{"x"}, recompress: -1})
				return []report.Image{other, reg}
			}(),
			pairs: 1,
		},
		{
			name: "an artifact of several images none of which is the registry's is a problem",
			want: []report.Image{reg},
			got: []report.Image{
				image(spec{name: "other:1", platform: "linux/amd64", layers: []string{"x"}, recompress: -1}),
				image(spec{name: "third:1", platform: "linux/amd64", layers: []string{"y"}, recompress: -1}),
			},
			problems: 1,
		},
		{
			name: "an empty side is a problem, not a finding",
			want: []report.Image{reg}, got: nil,
			problems: 1,
		},
		{
			name: "a diffID the artifact could not measure is a problem, not a finding",
			want: []report.Image{reg},
			got: func() []report.Image {
				g := reg
				g.Layers = append([]report.Layer(nil), reg.Layers...)
				g.Layers[1].DiffID, g.Layers[1].ChainID = "", ""
				return []report.Image{g}
			}(),
			problems: 1,
			pairs:    1,
		},
		{
			// The verifier leaves Compression empty for a layer it could not
			// read; that is not an uncompressed layer (no "one side stores
			// them uncompressed" note, no downgrade of a manifest difference).
			name: "a layer the artifact could not read is a problem, not a note that one side is uncompressed",
			want: []report.Image{reg},
			got: func() []report.Image {
				g := reg
				g.Layers = append([]report.Layer(nil), reg.Layers...)
				g.Layers[1] = report.Layer{Index: 1, ChainID: reg.Layers[1].ChainID, Status: report.StatusFailed}
				return []report.Image{g}
			}(),
			problems: 1,
			pairs:    1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Images("registry.example/app:1", tc.want, tc.got)
			assertRows(t, res.Findings, tc.rows)
			if len(res.Problems) != tc.problems {
				t.Errorf("problems = %v, want %d", res.Problems, tc.problems)
			}
			if len(res.Pairs) != tc.pairs {
				t.Errorf("pairs = %d, want %d", len(res.Pairs), tc.pairs)
			}
			for _, f := range res.Findings {
				if f.Subject.Image != "registry.example/app:1" {
					t.Errorf("finding %s names image %q, want the compared reference", f.Check, f.Subject.Image)
				}
				if f.Subject.Platform == "" {
					t.Errorf("finding %s names no platform", f.Check)
				}
			}
			if tc.msg != "" && !hasMessage(res.Findings, tc.msg) {
				t.Errorf("no finding says %q", tc.msg)
			}
		})
	}
}

func hasMessage(fs []report.Finding, sub string) bool {
	for _, f := range fs {
		if strings.Contains(f.Message, sub) {
			return true
		}
	}
	return false
}

// TestImagesDiffIDSubjectNamesArtifactBlob: a compare-diffid finding names
// the artifact's layer blob, so a reader can find the bytes that differ.
func TestImagesDiffIDSubjectNamesArtifactBlob(t *testing.T) {
	w, g := image(amd64("a", "b")), image(amd64("a", "B"))
	res := Images("app:1", []report.Image{w}, []report.Image{g})
	for _, f := range res.Findings {
		if f.Check == DiffID {
			if f.Subject.Digest != g.Layers[1].Digest {
				t.Errorf("compare-diffid subject digest = %q, want the artifact's blob %q", f.Subject.Digest, g.Layers[1].Digest)
			}
			return
		}
	}
	t.Fatalf("no compare-diffid finding: %v", rowsOf(res.Findings))
}
