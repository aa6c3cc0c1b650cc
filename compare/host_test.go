package compare

import (
	"errors"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

const hostRepo = "registry.example/app"

// hostImage builds the docker.HostImage a classic store would hold for the
// registry image r (pulled from hostRepo): image ID = config digest, the
// diffIDs and chainIDs, a present layerdb record per layer with the right
// diff and parent, and the distribution metadata of the pull.
func hostImage(r report.Image) *docker.HostImage {
	h := &docker.HostImage{ID: digest.Digest(r.ConfigDigest), OS: "linux", Architecture: "amd64", RepoTags: []string{"app:1"}}
	for i, l := range r.Layers {
		h.DiffIDs = append(h.DiffIDs, digest.Digest(l.DiffID))
		h.ChainIDs = append(h.ChainIDs, digest.Digest(l.ChainID))
		hl := docker.HostLayer{
			ChainID: digest.Digest(l.ChainID), Present: true,
			Dir:  "image/overlay2/layerdb/sha256/" + digest.Digest(l.ChainID).Encoded(),
			Diff: digest.Digest(l.DiffID), Size: 100,
		}
		if i > 0 {
			hl.Parent = digest.Digest(r.Layers[i-1].ChainID)
		}
		if l.Digest != "" {
			hl.Distribution = []docker.V2Metadata{{Digest: digest.Digest(l.Digest), SourceRepository: hostRepo}}
		}
		h.Layers = append(h.Layers, hl)
	}
	return h
}

// note is the info finding every Host comparison ends with.
var note = row{LayerDigestDiffers, report.Info, -1, "", ""}

func TestHost(t *testing.T) {
	reg := image(amd64("base", "middle", "top"))
	middle := image(amd64("base", "MIDDLE", "top"))
	fewer := image(amd64("base", "middle"))
	more := image(amd64("base", "middle", "top", "extra"))
	otherBlob := digest.Digest(dg("gzip-9:middle"))

	tests := []struct {
		name     string
		want     report.Image
		host     *docker.HostImage
		lookup   DiffIDLookup
		rows     []row
		problems int
		msg      string
	}{
		{
			name: "the same image gives only the note that compressed digests cannot be compared",
			want: reg, host: hostImage(reg),
			rows: []row{note},
		},
		{
			name: "another image ID is compare-config",
			want: reg,
			host: func() *docker.HostImage { h := hostImage(reg); h.ID = digest.Digest(dg("other")); return h }(),
			rows: []row{note, {Config, report.Error, -1, reg.ConfigDigest, dg("other")}},
		},
		{
			name: "a diffID changed in the middle is compare-diffid there and compare-chainid on every layer above",
			want: reg, host: hostImage(middle),
			rows: []row{
				note,
				{Config, report.Error, -1, reg.ConfigDigest, middle.ConfigDigest},
				{DiffID, report.Error, 1, reg.Layers[1].DiffID, middle.Layers[1].DiffID},
				{ChainID, report.Error, 2, reg.Layers[2].ChainID, middle.Layers[2].ChainID},
			},
			msg: "(layer 1 differs)",
		},
		{
			name: "a registry layer the host image lacks is compare-layer-missing-local",
			want: reg, host: hostImage(fewer),
			rows: []row{
				note,
				{Config, report.Error, -1, reg.ConfigDigest, fewer.ConfigDigest},
				{LayerCountDiffers, report.Error, -1, "3 layers", "2 layers"},
				{LayerMissingLocal, report.Error, 2, reg.Layers[2].DiffID, "absent"},
			},
		},
		{
			name: "a host layer beyond the registry's image is compare-layer-only-local",
			want: reg, host: hostImage(more),
			rows: []row{
				note,
				{Config, report.Error, -1, reg.ConfigDigest, more.ConfigDigest},
				{LayerCountDiffers, report.Error, -1, "3 layers", "4 layers"},
				{LayerOnlyLocal, report.Error, 3, "absent", more.Layers[3].DiffID},
			},
		},
		{
			name: "a layerdb record missing from the store is compare-layer-missing-local naming its chainID",
			want: reg,
			host: func() *docker.HostImage {
				h := hostImage(reg)
				h.Layers[1] = docker.HostLayer{ChainID: h.ChainIDs[1], Dir: h.Layers[1].Dir, Size: -1}
				return h
			}(),
			rows: []row{note, {LayerMissingLocal, report.Error, 1, reg.Layers[1].ChainID, "absent"}},
		},
		{
			name: "a layerdb record with a wrong diff and no parent is compare-layerdb twice",
			want: reg,
			host: func() *docker.HostImage {
				h := hostImage(reg)
				h.Layers[2].Diff = digest.Digest(dg("wrong"))
				h.Layers[2].Parent = ""
				return h
			}(),
			rows: []row{
				note,
				{Layerdb, report.Error, 2, reg.Layers[2].DiffID, dg("wrong")},
				{Layerdb, report.Error, 2, reg.Layers[1].ChainID, "absent"},
			},
		},
		{
			name: "a pull cache mapping the registry's blob to another diffID is a compare-distribution error",
			want: reg, host: hostImage(reg),
			lookup: func(blob digest.Digest) (digest.Digest, bool, error) {
				if blob.String() == reg.Layers[0].Digest {
					return digest.Digest(dg("poisoned")), true, nil
				}
				return "", false, nil
			},
			rows: []row{note, {Distribution, report.Error, 0, reg.Layers[0].DiffID, dg("poisoned")}},
		},
		{
			name: "a pull cache agreeing with the registry gives no finding",
			want: reg, host: hostImage(reg),
			lookup: func(blob digest.Digest) (digest.Digest, bool, error) {
				for _, l := range reg.Layers {
					if l.Digest == blob.String() {
						return digest.Digest(l.DiffID), true, nil
					}
				}
				return "", false, nil
			},
			rows: []row{note},
		},
		{
			name: "an unreadable pull cache is a problem per layer",
			want: reg, host: hostImage(reg),
			lookup: func(digest.Digest) (digest.Digest, bool, error) {
				return "", false, errors.New("permission denied")
			},
			rows:     []row{note},
			problems: 3,
		},
		{
			name: "v2metadata naming only other blobs of the same repository is a compare-distribution warning",
			want: reg,
			host: func() *docker.HostImage {
				h := hostImage(reg)
				h.Layers[1].Distribution = []docker.V2Metadata{{Digest: otherBlob, SourceRepository: hostRepo}}
				return h
			}(),
			rows: []row{note, {Distribution, report.Warning, 1, reg.Layers[1].Digest, otherBlob.String()}},
			msg:  "recompressed",
		},
		{
			name: "v2metadata holding the registry's blob among others gives no finding",
			want: reg,
			host: func() *docker.HostImage {
				h := hostImage(reg)
				h.Layers[1].Distribution = []docker.V2Metadata{{Digest: otherBlob, SourceRepository: hostRepo}, h.Layers[1].Distribution[0]}
				return h
			}(),
			rows: []row{note},
		},
		{
			name: "v2metadata of other repositories only gives no finding",
			want: reg,
			host: func() *docker.HostImage {
				h := hostImage(reg)
				h.Layers[1].Distribution = []docker.V2Metadata{{Digest: otherBlob, SourceRepository: "docker.io/library/other"}}
				return h
			}(),
			rows: []row{note},
		},
		{
			name: "an unknown registry config digest is a problem, not a finding",
			want: func() report.Image { w := reg; w.ConfigDigest = ""; return w }(),
			host: hostImage(reg),
			rows: []row{note}, problems: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := Host("registry.example/app:1", tc.want, tc.host, hostRepo, tc.lookup)
			assertRows(t, res.Findings, tc.rows)
			if len(res.Problems) != tc.problems {
				t.Errorf("problems = %v, want %d", res.Problems, tc.problems)
			}
			if len(res.Pairs) != 1 || res.Pairs[0][1].ConfigDigest != tc.host.ID.String() {
				t.Errorf("pairs = %v, want the registry image and the host's", res.Pairs)
			}
			if tc.msg != "" && !hasMessage(res.Findings, tc.msg) {
				t.Errorf("no finding says %q", tc.msg)
			}
		})
	}
}

func TestLayerStore(t *testing.T) {
	src := image(amd64("base", "top"))
	records := func() []docker.HostLayer { return hostImage(src).Layers }
	tests := []struct {
		name     string
		want     report.Image
		layers   []docker.HostLayer
		rows     []row
		problems int
	}{
		{name: "records matching the source give no finding", want: src, layers: records()},
		{
			name: "a chainID absent from layerdb is compare-layer-missing-local",
			want: src,
			layers: func() []docker.HostLayer {
				l := records()
				l[1] = docker.HostLayer{ChainID: l[1].ChainID, Dir: l[1].Dir, Size: -1}
				return l
			}(),
			rows: []row{{LayerMissingLocal, report.Error, 1, src.Layers[1].ChainID, "absent"}},
		},
		{
			name: "a record whose parent is another chainID is compare-layerdb",
			want: src,
			layers: func() []docker.HostLayer {
				l := records()
				l[1].Parent = digest.Digest(dg("elsewhere"))
				return l
			}(),
			rows: []row{{Layerdb, report.Error, 1, src.Layers[0].ChainID, dg("elsewhere")}},
		},
		{
			name: "a source layer without a diffID is a problem",
			want: func() report.Image {
				w := src
				w.Layers = append([]report.Layer(nil), src.Layers...)
				w.Layers[0].DiffID = ""
				return w
			}(),
			layers: records(), problems: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := LayerStore(report.Subject{Image: "app.tar"}, tc.want, tc.layers)
			assertRows(t, res.Findings, tc.rows)
			if len(res.Problems) != tc.problems {
				t.Errorf("problems = %v, want %d", res.Problems, tc.problems)
			}
		})
	}
}
