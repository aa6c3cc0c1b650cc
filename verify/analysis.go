package verify

import (
	"archive/tar"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/report"
)

// DefaultMaxAnalysisPaths is how many paths the analysis remembers per layer
// (AnalysisOptions.MaxPaths): about 100 bytes each, so some 25 MiB for a
// layer at the limit. Entries past it are still counted by type and size,
// but the cross-layer figures (wasted and hidden bytes, efficiency) leave
// them out and the layer and image say so (Truncated).
const DefaultMaxAnalysisPaths = 250_000

// DefaultTopFiles is how many largest files and inefficient paths are listed.
const DefaultTopFiles = 10

// AnalysisOptions turn on the layer analysis (Options.Analysis).
type AnalysisOptions struct {
	// MaxPaths bounds the paths remembered per layer (0: DefaultMaxAnalysisPaths).
	MaxPaths int
	// TopFiles bounds the largest files per layer and the inefficient paths
	// per image (0: DefaultTopFiles).
	TopFiles int
}

// Entry kinds the analysis remembers per path.
const (
	kindFile     uint8 = iota // regular file, link, device: anything but a directory
	kindDir                   // directory
	kindWhiteout              // .wh.<name>: deletes <name> from lower layers
)

type pathInfo struct {
	size int64
	kind uint8
}

// LayerAnalyzer is the header observer of the analysis: one per layer blob,
// attached to its single pass. It counts entries by type, sums the regular
// files' bytes, keeps the largest files and remembers each path (up to a
// limit) for the cross-layer figures computed by AnalyzeImage.
type LayerAnalyzer struct {
	maxPaths, top int
	stats         report.LayerAnalysis
	paths         map[string]pathInfo // cleaned path without leading slash
	opaque        map[string]struct{} // directories with a .wh..wh..opq marker
}

// NewLayerAnalyzer returns an observer for one layer's pass.
func NewLayerAnalyzer(opts AnalysisOptions) *LayerAnalyzer {
	if opts.MaxPaths <= 0 {
		opts.MaxPaths = DefaultMaxAnalysisPaths
	}
	if opts.TopFiles <= 0 {
		opts.TopFiles = DefaultTopFiles
	}
	return &LayerAnalyzer{maxPaths: opts.MaxPaths, top: opts.TopFiles, paths: map[string]pathInfo{}, opaque: map[string]struct{}{}}
}

// Header implements Observer.
func (a *LayerAnalyzer) Header(h *tar.Header) {
	a.stats.Entries++
	name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
	if name == "" || h.Typeflag == tar.TypeXGlobalHeader {
		return // the root directory itself, or a PAX global header (no file)
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case base == ".wh..wh..opq":
		a.stats.OpaqueDirs++
		if len(a.opaque) < a.maxPaths {
			a.opaque[dir] = struct{}{}
		} else {
			a.stats.Truncated = true
		}
		return
	case strings.HasPrefix(base, ".wh."):
		a.stats.Whiteouts++
		a.remember(path.Join(dir, strings.TrimPrefix(base, ".wh.")), pathInfo{kind: kindWhiteout})
		return
	}
	info := pathInfo{kind: kindFile, size: h.Size}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		a.stats.Regular++
		a.stats.Bytes += h.Size
		a.largest(name, h.Size)
	case tar.TypeDir:
		a.stats.Dirs++
		info.kind = kindDir
	case tar.TypeSymlink:
		a.stats.Symlinks++
	case tar.TypeLink:
		a.stats.Hardlinks++
	default:
		a.stats.Other++
	}
	a.remember(name, info)
}

func (a *LayerAnalyzer) remember(name string, info pathInfo) {
	if _, ok := a.paths[name]; !ok && len(a.paths) >= a.maxPaths {
		a.stats.Truncated = true
		return
	}
	a.paths[name] = info
}

// largest keeps the top largest regular files, largest first, ties by path.
func (a *LayerAnalyzer) largest(name string, size int64) {
	l := a.stats.Largest
	if len(l) == a.top && !bigger(size, name, l[len(l)-1]) {
		return
	}
	i := sort.Search(len(l), func(i int) bool { return bigger(size, name, l[i]) })
	l = append(l, report.FileSize{})
	copy(l[i+1:], l[i:])
	l[i] = report.FileSize{Path: name, Size: size}
	if len(l) > a.top {
		l = l[:a.top]
	}
	a.stats.Largest = l
}

func bigger(size int64, name string, f report.FileSize) bool {
	return size > f.Size || size == f.Size && name < f.Path
}

// AnalyzedLayer is one layer of an image for AnalyzeImage: its analyzer
// (nil when the layer could not be read), the sizes its pass measured, and
// whether the pass read it to its end.
type AnalyzedLayer struct {
	Analyzer   *LayerAnalyzer
	StoredSize int64
	TarSize    int64
	Complete   bool
	// Lazy is the lazy-pull format the layer's descriptor declares, or "".
	Lazy LazyKind
}

// AnalyzeImage combines the layers' analyzers, base layer first, into the
// image's analysis: per-layer statistics, hidden files, and dive's wasted
// bytes and efficiency (see report.ImageAnalysis for the definitions).
func AnalyzeImage(layers []AnalyzedLayer, topFiles int) *report.ImageAnalysis {
	if topFiles <= 0 {
		topFiles = DefaultTopFiles
	}
	out := &report.ImageAnalysis{Layers: make([]report.LayerAnalysis, len(layers)), Efficiency: 1}
	for i, l := range layers {
		la := report.LayerAnalysis{Index: i, Lazy: string(l.Lazy)}
		if l.Analyzer != nil {
			la = l.Analyzer.stats
			la.Index, la.Lazy = i, string(l.Lazy)
			la.Largest = append([]report.FileSize(nil), la.Largest...)
		}
		if l.StoredSize > 0 && l.TarSize > 0 {
			la.CompressionRatio = float64(l.TarSize) / float64(l.StoredSize)
		}
		la.Partial = l.Analyzer == nil || !l.Complete
		out.Layers[i] = la
		out.Files += la.Regular
		out.Bytes += la.Bytes
		out.Truncated = out.Truncated || la.Truncated
		out.Partial = out.Partial || la.Partial
	}
	hiddenFiles(layers, out)
	diveEfficiency(layers, out, topFiles)
	return out
}

// hiddenFiles marks, walking from the top layer down, each regular file a
// higher layer replaces or deletes.
func hiddenFiles(layers []AnalyzedLayer, out *report.ImageAnalysis) {
	upper := map[string]uint8{}      // paths of higher layers and their kinds
	upperOpaque := map[string]bool{} // opaque directories of higher layers
	for i := len(layers) - 1; i >= 0; i-- {
		a := layers[i].Analyzer
		if a == nil {
			continue
		}
		la := &out.Layers[i]
		for p, info := range a.paths {
			if info.kind != kindFile || info.size == 0 {
				continue
			}
			if hiddenBy(p, upper, upperOpaque) {
				la.HiddenFiles++
				la.HiddenBytes += info.size
			}
		}
		out.HiddenFiles += la.HiddenFiles
		out.HiddenBytes += la.HiddenBytes
		for p, info := range a.paths {
			if k, ok := upper[p]; !ok || k == kindDir {
				upper[p] = info.kind
			}
		}
		for d := range a.opaque {
			upperOpaque[d] = true
		}
	}
}

func hiddenBy(p string, upper map[string]uint8, opaque map[string]bool) bool {
	if _, ok := upper[p]; ok {
		return true
	}
	for d := path.Dir(p); d != "."; d = path.Dir(d) {
		if k, ok := upper[d]; ok && k != kindDir {
			return true // deleted, or replaced by a non-directory
		}
		if opaque[d] {
			return true
		}
	}
	return opaque[""] // an opaque marker at the root
}

// diveEfficiency computes dive's wasted bytes and efficiency score.
func diveEfficiency(layers []AnalyzedLayer, out *report.ImageAnalysis, topFiles int) {
	type occurrence struct {
		cum, min int64
		n        int
	}
	occ := map[string]*occurrence{}
	stack := map[string]pathInfo{} // the layers below, stacked
	for _, l := range layers {
		a := l.Analyzer
		if a == nil {
			continue
		}
		// A layer's leaves: its entries with nothing of the layer below them.
		parents := map[string]bool{}
		for p := range a.paths {
			for d := path.Dir(p); d != "." && !parents[d]; d = path.Dir(d) {
				parents[d] = true
			}
		}
		// Whiteouts of directories in the stack count what is below them:
		// one scan of the stack, each path added to its whited-out ancestors.
		dirSize := map[string]int64{}
		for p, info := range a.paths {
			if st, ok := stack[p]; ok && info.kind == kindWhiteout && st.kind == kindDir {
				dirSize[p] = st.size
			}
		}
		if len(dirSize) > 0 {
			for q, qi := range stack {
				for d := path.Dir(q); d != "."; d = path.Dir(d) {
					if _, ok := dirSize[d]; ok {
						dirSize[d] += qi.size
					}
				}
			}
		}
		for p, info := range a.paths {
			if parents[p] {
				continue
			}
			size := info.size
			if info.kind == kindWhiteout {
				size = dirSize[p] // 0 for a file or a path not in the stack
			}
			o := occ[p]
			if o == nil {
				o = &occurrence{min: size}
				occ[p] = o
			}
			o.cum += size
			o.min = min(o.min, size)
			o.n++
		}
		// Stack the layer: whiteouts remove a path and what is below it
		// (dive ignores opaque markers), the other entries are added.
		removed := false
		for p, info := range a.paths {
			if info.kind == kindWhiteout {
				delete(stack, p)
				removed = true
			}
		}
		if removed {
			for q := range stack {
				for d := path.Dir(q); d != "."; d = path.Dir(d) {
					if info, ok := a.paths[d]; ok && info.kind == kindWhiteout {
						delete(stack, q)
						break
					}
				}
			}
		}
		for p, info := range a.paths {
			if info.kind != kindWhiteout {
				stack[p] = info
			}
		}
	}
	var minSum, cumSum int64
	var waste []report.PathWaste
	for p, o := range occ {
		minSum += o.min
		cumSum += o.cum
		if o.n >= 2 {
			out.WastedBytes += o.cum
			if o.cum > 0 {
				waste = append(waste, report.PathWaste{Path: p, Layers: o.n, Bytes: o.cum})
			}
		}
	}
	if cumSum > 0 {
		out.Efficiency = float64(minSum) / float64(cumSum)
	}
	sort.Slice(waste, func(i, j int) bool {
		if waste[i].Bytes != waste[j].Bytes {
			return waste[i].Bytes > waste[j].Bytes
		}
		return waste[i].Path < waste[j].Path
	})
	if len(waste) > topFiles {
		waste = waste[:topFiles]
	}
	out.Inefficiencies = waste
}

// analysisSet holds the analyzers of one Verify run, one per layer blob.
type analysisSet struct {
	opts  AnalysisOptions
	mu    sync.Mutex
	byKey map[string]*LayerAnalyzer
}

// observers returns the analysis observer for a blob's pass (none when the
// analysis is off).
func (r *run) analysisObservers(key string) []Observer {
	s := r.analysis
	if s == nil {
		return nil
	}
	a := NewLayerAnalyzer(s.opts)
	s.mu.Lock()
	s.byKey[key] = a
	s.mu.Unlock()
	return []Observer{a}
}

// imageAnalysis combines the analyzers of w's layers (nil when the
// analysis is off or w is not an image).
func (r *run) imageAnalysis(w *imageWork) *report.ImageAnalysis {
	if r.analysis == nil || w.artifact {
		return nil
	}
	ls := make([]AnalyzedLayer, len(w.layers))
	for i, l := range w.layers {
		ls[i].Lazy = LazyOf(l.ref.Desc.Annotations)
		if l.job == nil || l.job.res == nil || l.job.err != nil {
			continue
		}
		res := l.job.res
		r.analysis.mu.Lock()
		a := r.analysis.byKey[l.job.blob.Key()]
		r.analysis.mu.Unlock()
		ls[i] = AnalyzedLayer{Analyzer: a, StoredSize: res.StoredSize, TarSize: res.TarSize, Lazy: ls[i].Lazy,
			Complete: res.TarEnd && res.TarErr == nil && res.DecompressErr == nil && res.LimitErr == nil}
	}
	return AnalyzeImage(ls, r.analysis.opts.TopFiles)
}
