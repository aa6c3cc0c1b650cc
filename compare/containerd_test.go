package compare

import (
	"testing"

	"github.com/layercheck/layercheck/report"
)

// storeOf builds what a containerd host's records declare for the image r:
// its manifest as the target, every layer's blob present.
func storeOf(r report.Image) ContainerdImage {
	p := StorePlatform{Platform: r.Platform, ManifestDigest: r.ManifestDigest}
	for _, l := range r.Layers {
		p.Layers = append(p.Layers, StoreLayer{Digest: l.Digest, Size: 100, DiffID: l.DiffID, ChainID: l.ChainID, Blob: true})
	}
	return ContainerdImage{Target: r.ManifestDigest, Platforms: []StorePlatform{p}}
}

// withoutBlob is r as the verifier measures it on a content store lacking
// layer i's blob: nothing measured for that layer.
func withoutBlob(r report.Image, i int) report.Image {
	r.Layers = append([]report.Layer(nil), r.Layers...)
	r.Layers[i] = report.Layer{Index: i, Status: report.StatusFailed}
	return r
}

// contentNote is the info finding every containerd comparison with a pair ends with.
var contentNote = row{LayerDigestDiffers, report.Info, -1, "", ""}

func TestContainerd(t *testing.T) {
	reg := image(amd64("base", "middle", "top"))
	indexed := reg
	indexed.IndexDigest = dg("index")
	middle := image(amd64("base", "MIDDLE", "top"))

	tests := []struct {
		name     string
		want     []report.Image
		got      []report.Image
		host     ContainerdImage
		rows     []row
		problems int
		msg      string
	}{
		{
			name: "the same manifest gives only the note that digests were compared",
			want: []report.Image{reg}, got: []report.Image{reg}, host: storeOf(reg),
			rows: []row{contentNote},
		},
		{
			name: "a host that pulled the manifest of what the registry serves as an index has another target",
			want: []report.Image{indexed}, got: []report.Image{reg}, host: storeOf(reg),
			rows: []row{contentNote, {Manifest, report.Error, -1, indexed.IndexDigest, reg.ManifestDigest}},
			msg:  "a single manifest) is not what the registry serves (an index)",
		},
		{
			name: "a host that pulled an index of what the registry serves as a manifest has another target",
			want: []report.Image{reg}, got: []report.Image{indexed},
			host: func() ContainerdImage {
				h := storeOf(reg)
				h.Target, h.TargetIsIndex = indexed.IndexDigest, true
				return h
			}(),
			rows: []row{contentNote, {Manifest, report.Error, -1, reg.ManifestDigest, indexed.IndexDigest}},
			msg:  "an index) is not what the registry serves (a single manifest)",
		},
		{
			name: "two different indexes are compared by Images as index digests",
			want: []report.Image{indexed},
			got: func() []report.Image {
				g := reg
				g.IndexDigest = dg("another index")
				return []report.Image{g}
			}(),
			host: func() ContainerdImage {
				h := storeOf(reg)
				h.Target, h.TargetIsIndex = dg("another index"), true
				return h
			}(),
			rows: []row{contentNote, {Manifest, report.Error, -1, indexed.IndexDigest, dg("another index")}},
			msg:  "the index digests differ",
		},
		{
			name: "a changed layer is compare-diffid and compare-layer-digest is not added for it",
			want: []report.Image{reg}, got: []report.Image{middle}, host: storeOf(middle),
			rows: []row{
				contentNote,
				{Config, report.Error, -1, reg.ConfigDigest, middle.ConfigDigest},
				{Manifest, report.Error, -1, reg.ManifestDigest, middle.ManifestDigest},
				{DiffID, report.Error, 1, reg.Layers[1].DiffID, middle.Layers[1].DiffID},
				{ChainID, report.Error, 2, reg.Layers[2].ChainID, middle.Layers[2].ChainID},
			},
		},
		{
			name: "a blob missing with a snapshot of its chainID is a compare-layer-missing-local warning",
			want: []report.Image{reg}, got: []report.Image{withoutBlob(reg, 1)},
			host: func() ContainerdImage {
				h := storeOf(reg)
				h.Platforms[0].Layers[1].Blob = false
				h.Platforms[0].Layers[1].Snapshotters = []string{"overlayfs"}
				return h
			}(),
			rows: []row{contentNote, {LayerMissingLocal, report.Warning, 1, reg.Layers[1].Digest, "absent"}},
			msg:  "the overlayfs snapshot of its chainID holds the unpacked layer",
		},
		{
			name: "a blob missing without a snapshot is a compare-layer-missing-local error",
			want: []report.Image{reg}, got: []report.Image{withoutBlob(reg, 1)},
			host: func() ContainerdImage {
				h := storeOf(reg)
				h.Platforms[0].Layers[1].Blob = false
				return h
			}(),
			rows: []row{contentNote, {LayerMissingLocal, report.Error, 1, reg.Layers[1].Digest, "absent"}},
			msg:  "the host does not have this layer",
		},
		{
			name: "a missing blob whose declared diffID differs is also compare-diffid",
			want: []report.Image{reg}, got: []report.Image{withoutBlob(middle, 1)},
			host: func() ContainerdImage {
				h := storeOf(middle)
				h.Platforms[0].Layers[1].Blob = false
				return h
			}(),
			rows: []row{
				contentNote,
				{LayerMissingLocal, report.Error, 1, middle.Layers[1].Digest, "absent"},
				{Config, report.Error, -1, reg.ConfigDigest, middle.ConfigDigest},
				{Manifest, report.Error, -1, reg.ManifestDigest, middle.ManifestDigest},
				{DiffID, report.Error, 1, reg.Layers[1].DiffID, middle.Layers[1].DiffID},
				{ChainID, report.Error, 2, reg.Layers[2].ChainID, middle.Layers[2].ChainID},
			},
		},
		{
			name: "a blob present but unreadable adds nothing here: the verifier's findings say why",
			want: []report.Image{reg}, got: []report.Image{withoutBlob(reg, 1)}, host: storeOf(reg),
			rows:     []row{contentNote},
			problems: 1, // diffID unknown on the host side
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Containerd("registry.example/app:1", tc.want, tc.got, tc.host)
			assertRows(t, res.Findings, tc.rows)
			if len(res.Problems) != tc.problems {
				t.Errorf("problems = %v, want %d", res.Problems, tc.problems)
			}
			if tc.msg != "" && !hasMessage(res.Findings, tc.msg) {
				t.Errorf("no finding says %q", tc.msg)
			}
		})
	}
}

// TestContainerdDoesNotChangeItsInput: filling a missing layer with what
// the host declares works on a copy; the caller's image keeps what the
// verifier measured.
func TestContainerdDoesNotChangeItsInput(t *testing.T) {
	reg := image(amd64("base", "top"))
	got := withoutBlob(reg, 0)
	h := storeOf(reg)
	h.Platforms[0].Layers[0].Blob = false
	Containerd("app:1", []report.Image{reg}, []report.Image{got}, h)
	if got.Layers[0].Digest != "" || got.Layers[0].DiffID != "" {
		t.Errorf("the caller's image was changed: %+v", got.Layers[0])
	}
}
