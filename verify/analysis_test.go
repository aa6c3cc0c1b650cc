package verify

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/report"
)

// aentry is one tar entry of a test layer: a name ending in "/" is a
// directory, "name->target" a symlink, "name=>target" a hard link, else a
// regular file of size bytes.
type aentry struct {
	name string
	size int
}

func layerTar(t *testing.T, es ...aentry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(e.size)}
		switch {
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case strings.Contains(e.name, "->"):
			n, target, _ := strings.Cut(e.name, "->")
			h.Name, h.Linkname, h.Typeflag = n, target, tar.TypeSymlink
		case strings.Contains(e.name, "=>"):
			n, target, _ := strings.Cut(e.name, "=>")
			h.Name, h.Linkname, h.Typeflag = n, target, tar.TypeLink
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bytes.Repeat([]byte{'x'}, e.size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// analyzeLayers runs the real pass over each layer with an analyzer.
func analyzeLayers(t *testing.T, opts AnalysisOptions, layers ...[]byte) *report.ImageAnalysis {
	t.Helper()
	var ls []AnalyzedLayer
	for i, l := range layers {
		a := NewLayerAnalyzer(opts)
		res, err := Pass(context.Background(), bytes.NewReader(l), PassOptions{Observers: []Observer{a}})
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		ls = append(ls, AnalyzedLayer{Analyzer: a, StoredSize: res.StoredSize, TarSize: res.TarSize,
			Complete: res.TarEnd && res.TarErr == nil})
	}
	return AnalyzeImage(ls, opts.TopFiles)
}

// wasteLayers is the image of the analysis tests:
//
//	0: etc/a 100, etc/b 200, a symlink and a hard link, opt/x 1000, opt/y 500,
//	   var/cache/c 300, usr/bin/tool 50 (no directory entries above it)
//	1: etc/a rewritten (150), etc/b deleted, opt deleted, var/cache opaque
//	   with var/cache/d 10
//	2: etc/a rewritten again (100)
func wasteLayers(t *testing.T) [][]byte {
	return [][]byte{
		layerTar(t, aentry{"etc/", 0}, aentry{"etc/a", 100}, aentry{"etc/b", 200}, aentry{"etc/link->a", 0}, aentry{"etc/hl=>etc/a", 0},
			aentry{"opt/", 0}, aentry{"opt/x", 1000}, aentry{"opt/y", 500}, aentry{"var/", 0}, aentry{"var/cache/", 0},
			aentry{"var/cache/c", 300}, aentry{"usr/bin/tool", 50}),
		layerTar(t, aentry{"etc/", 0}, aentry{"etc/a", 150}, aentry{"etc/.wh.b", 0}, aentry{".wh.opt", 0},
			aentry{"var/", 0}, aentry{"var/cache/", 0}, aentry{"var/cache/.wh..wh..opq", 0}, aentry{"var/cache/d", 10}),
		layerTar(t, aentry{"./etc/a", 100}),
	}
}

func TestAnalyzeImage(t *testing.T) {
	got := analyzeLayers(t, AnalysisOptions{}, wasteLayers(t)...)
	want := []report.LayerAnalysis{
		{Index: 0, Entries: 12, Regular: 6, Dirs: 4, Symlinks: 1, Hardlinks: 1, Bytes: 2150, CompressionRatio: 1,
			HiddenFiles: 5, HiddenBytes: 100 + 200 + 1000 + 500 + 300,
			Largest: []report.FileSize{{Path: "opt/x", Size: 1000}, {Path: "opt/y", Size: 500}, {Path: "var/cache/c", Size: 300}, {Path: "etc/b", Size: 200}, {Path: "etc/a", Size: 100}, {Path: "usr/bin/tool", Size: 50}}},
		{Index: 1, Entries: 8, Regular: 2, Dirs: 3, Whiteouts: 2, OpaqueDirs: 1, Bytes: 160, CompressionRatio: 1,
			HiddenFiles: 1, HiddenBytes: 150, Largest: []report.FileSize{{Path: "etc/a", Size: 150}, {Path: "var/cache/d", Size: 10}}},
		{Index: 2, Entries: 1, Regular: 1, Bytes: 100, CompressionRatio: 1, Largest: []report.FileSize{{Path: "etc/a", Size: 100}}},
	}
	if !reflect.DeepEqual(got.Layers, want) {
		t.Errorf("layers:\n got %+v\nwant %+v", got.Layers, want)
	}
	// dive: etc/a is in three layers (100+150+100), etc/b in two (200, and
	// 0 for the whiteout of a file); opt's whiteout counts opt's 1500 bytes
	// but opt was no leaf below, so it is in one layer only.
	if got.WastedBytes != 550 {
		t.Errorf("wasted %d, want 550", got.WastedBytes)
	}
	// min sizes 100+0+1000+500+300+50+1500+10 over cumulative 350+200+1000+500+300+50+1500+10.
	if want := 3460.0 / 3910.0; got.Efficiency != want {
		t.Errorf("efficiency %v, want %v", got.Efficiency, want)
	}
	if got.Files != 9 || got.Bytes != 2410 || got.HiddenFiles != 6 || got.HiddenBytes != 2250 || got.Truncated || got.Partial {
		t.Errorf("totals %+v", got)
	}
	wantWaste := []report.PathWaste{{Path: "etc/a", Layers: 3, Bytes: 350}, {Path: "etc/b", Layers: 2, Bytes: 200}}
	if !reflect.DeepEqual(got.Inefficiencies, wantWaste) {
		t.Errorf("inefficiencies %+v, want %+v", got.Inefficiencies, wantWaste)
	}
}

// TestAnalyzeDirLeafWhiteout: a directory that is a leaf in a lower layer
// (nothing below it there) and later deleted counts what was stacked under
// it, as dive does.
func TestAnalyzeDirLeafWhiteout(t *testing.T) {
	got := analyzeLayers(t, AnalysisOptions{},
		layerTar(t, aentry{"d/", 0}, aentry{"d/f", 40}),
		layerTar(t, aentry{"d/", 0}),
		layerTar(t, aentry{".wh.d", 0}),
	)
	// d: leaf of layer 1 (0) and whiteout of layer 2 (40: d/f stacked below).
	if got.WastedBytes != 40 || got.HiddenBytes != 40 || got.HiddenFiles != 1 {
		t.Errorf("wasted %d hidden %d/%d, want 40, 40/1", got.WastedBytes, got.HiddenBytes, got.HiddenFiles)
	}
	if want := 40.0 / 80.0; got.Efficiency != want {
		t.Errorf("efficiency %v, want %v", got.Efficiency, want)
	}
}

func TestAnalyzeLimits(t *testing.T) {
	layers := wasteLayers(t)
	got := analyzeLayers(t, AnalysisOptions{MaxPaths: 3, TopFiles: 2}, layers...)
	if !got.Truncated || !got.Layers[0].Truncated || got.Layers[2].Truncated {
		t.Errorf("truncated image %v, layers %v %v; want true, true, false", got.Truncated, got.Layers[0].Truncated, got.Layers[2].Truncated)
	}
	// Counts and bytes do not depend on the path limit.
	if got.Layers[0].Regular != 6 || got.Layers[0].Bytes != 2150 || len(got.Layers[0].Largest) != 2 || got.Layers[0].Largest[0].Path != "opt/x" {
		t.Errorf("layer 0 %+v", got.Layers[0])
	}
	if len(got.Inefficiencies) > 2 {
		t.Errorf("%d inefficiencies listed, want at most 2", len(got.Inefficiencies))
	}
	// A missing layer makes the analysis partial, the others still count.
	part := AnalyzeImage([]AnalyzedLayer{{}, {Analyzer: NewLayerAnalyzer(AnalysisOptions{}), Complete: true}}, 0)
	if !part.Partial || !part.Layers[0].Partial || part.Layers[1].Partial || part.Efficiency != 1 {
		t.Errorf("partial analysis %+v", part)
	}
}

// TestAnalyzeLegacyRegularType: a pre-POSIX regular file (type flag NUL, the
// deprecated tar.TypeRegA) is counted as a regular file with its bytes, and a
// NUL-typed name ending in "/" as a directory: archive/tar's reader turns
// them into TypeReg and TypeDir, so the observers need no TypeRegA case.
func TestAnalyzeLegacyRegularType(t *testing.T) {
	l := layerTar(t, aentry{"old/", 0}, aentry{"old/file", 42})
	nulType(t, l, 0)
	nulType(t, l, 512)
	a := NewLayerAnalyzer(AnalysisOptions{})
	res, err := Pass(context.Background(), bytes.NewReader(l), PassOptions{Observers: []Observer{a}})
	if err != nil || res.TarErr != nil || !res.TarEnd {
		t.Fatalf("pass: err %v, tar err %v, end %v", err, res.TarErr, res.TarEnd)
	}
	if a.stats.Regular != 1 || a.stats.Bytes != 42 || a.stats.Dirs != 1 {
		t.Errorf("regular %d (%d bytes), dirs %d; want 1 regular file of 42 bytes and 1 directory", a.stats.Regular, a.stats.Bytes, a.stats.Dirs)
	}
}

// nulType rewrites the type flag of the tar header at off to NUL and fixes
// its checksum (tar.Writer itself never writes that flag).
func nulType(t *testing.T, b []byte, off int) {
	t.Helper()
	h := b[off : off+512]
	if h[156] != tar.TypeReg && h[156] != tar.TypeDir {
		t.Fatalf("no regular or directory header at %d (type %q)", off, h[156])
	}
	h[156] = 0
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}
