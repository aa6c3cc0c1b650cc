package verify

import (
	"bytes"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
)

// FuzzLazyPass runs the TOC checks over arbitrary blobs: any outcome but a
// panic, a hang or a pass that measures otherwise than the plain one is fine.
func FuzzLazyPass(f *testing.F) {
	// Small layers: the fuzzer is slow with megabytes.
	files := []fixtures.File{fixtures.Dir("d"), fixtures.Reg("d/a", fixtures.RandomBytes(1, 3000)), fixtures.Reg("d/b", []byte("b")), fixtures.Reg("e", nil)}
	if l, err := fixtures.EStargzLayer(files, 1024); err == nil {
		f.Add(l.Stored, true)
	}
	if l, err := fixtures.ZstdChunkedLayer(files); err == nil {
		f.Add(l.Stored, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, estargz bool) {
		kind, ann := LazyZstdChunked, map[string]string{AnnotationZstdChunkedChecksum: "sha256:00", AnnotationZstdChunkedPosition: "1:2:3:1"}
		if estargz {
			kind, ann = LazyEStargz, map[string]string{AnnotationEStargzTOCDigest: "sha256:00"}
		}
		opts := PassOptions{MaxTarSize: 8 << 20, MaxRatio: 100}
		plain, err := Pass(t.Context(), bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.TOC = &TOCOptions{Kind: kind, Annotations: ann, MaxTOCSize: 1 << 20, MaxTOCEntries: 1000}
		res, err := Pass(t.Context(), bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.TOC == nil {
			t.Fatal("no TOC result")
		}
		if res.StoredDigest != plain.StoredDigest || res.StoredSize != plain.StoredSize {
			t.Fatalf("stored measures differ: %+v vs %+v", res, plain)
		}
		if plain.DecompressErr == nil && plain.TarErr == nil && plain.LimitErr == nil && (res.DiffID != plain.DiffID || res.Entries != plain.Entries) {
			t.Fatalf("tar measures differ: %+v vs %+v", res, plain)
		}
	})
}
