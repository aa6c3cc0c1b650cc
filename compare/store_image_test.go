package compare

import (
	"testing"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	digest "github.com/opencontainers/go-digest"
)

// TestStoreImage: an image known through the store model compared with the
// registry's: identical gives nothing; another config, a differing diffID
// and a recompressed layer each give their check.
func TestStoreImage(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	want := report.Image{ConfigDigest: d("cfg").String(), ManifestDigest: d("m").String(), Platform: "linux/amd64", Layers: []report.Layer{
		{Index: 0, DiffID: d("a").String(), ChainID: d("a").String(), Digest: d("za").String(), Compression: "gzip"},
		{Index: 1, DiffID: d("b").String(), ChainID: d("ab").String(), Digest: d("zb").String(), Compression: "gzip"},
	}}
	host := func() store.Image {
		return store.Image{ID: d("cfg"), Manifest: d("m"), Layers: []store.Layer{
			{DiffID: d("a"), ChainID: d("a"), Digest: d("za")},
			{DiffID: d("b"), ChainID: d("ab"), Digest: d("zb")},
		}}
	}
	checks := func(r Result) map[report.Check]report.Severity {
		out := map[report.Check]report.Severity{}
		for _, f := range r.Findings {
			out[f.Check] = f.Severity
		}
		return out
	}
	if got := checks(StoreImage("img", want, host())); len(got) != 0 {
		t.Errorf("identical: %v", got)
	}
	h := host()
	h.ID = d("other")
	if got := checks(StoreImage("img", want, h)); got[Config] != report.Error {
		t.Errorf("other config: %v", got)
	}
	h = host()
	h.Layers[1].DiffID = d("c")
	if got := checks(StoreImage("img", want, h)); got[DiffID] != report.Error {
		t.Errorf("other diffID: %v", got)
	}
	h = host()
	h.Layers[0].Digest = d("za2")
	if got := checks(StoreImage("img", want, h)); got[LayerDigestDiffers] != report.Warning {
		t.Errorf("recompressed: %v", got)
	}
}
