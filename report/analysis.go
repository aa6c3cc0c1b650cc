package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// ImageAnalysis is the layer analysis of one image (--analyze), computed
// from the tar headers of the verification pass: no layer is read twice.
//
// WastedBytes and Efficiency are computed as dive
// (github.com/wagoodman/dive, filetree.Efficiency and image.Analyze) does:
// every leaf path of every layer (a file, link or whiteout; a directory only
// when the layer holds nothing below it) is collected across the layers in
// order; a whiteout counts the bytes of what it deletes when that is a
// directory, 0 when it is a file. A path seen in two or more layers is
// inefficient, and WastedBytes is the sum of all its sizes, the topmost
// copy included. Efficiency is the sum over every path of its smallest size
// divided by the sum of all sizes (1 when there are no bytes). HiddenBytes
// is the plainer figure: the bytes of lower-layer files that a higher layer
// replaces or deletes.
type ImageAnalysis struct {
	Layers []LayerAnalysis `json:"layers"`
	// Files and Bytes total the regular files of every layer.
	Files       int     `json:"files"`
	Bytes       int64   `json:"bytes"`
	WastedBytes int64   `json:"wastedBytes"`
	Efficiency  float64 `json:"efficiency"`
	// HiddenFiles and HiddenBytes total the layers' hidden files.
	HiddenFiles int   `json:"hiddenFiles"`
	HiddenBytes int64 `json:"hiddenBytes"`
	// Inefficiencies are the paths of WastedBytes, largest first (at most 10).
	Inefficiencies []PathWaste `json:"inefficiencies,omitempty"`
	// Truncated: a layer held more paths than the analysis tracks, so the
	// cross-layer figures (wasted, hidden, efficiency) are lower bounds.
	Truncated bool `json:"truncated,omitempty"`
	// Partial: a layer could not be read to its end (missing, unreadable,
	// corrupt); the figures cover what was read.
	Partial bool `json:"partial,omitempty"`
}

// LayerAnalysis is what the tar headers of one layer show.
type LayerAnalysis struct {
	Index int `json:"index"`
	// Entries counts every tar entry; the others count them by type.
	// Whiteouts (.wh.<name>) and opaque markers (.wh..wh..opq) are counted
	// apart, not as regular files.
	Entries    int `json:"entries"`
	Regular    int `json:"regular"`
	Dirs       int `json:"dirs"`
	Symlinks   int `json:"symlinks"`
	Hardlinks  int `json:"hardlinks"`
	Other      int `json:"other"` // devices, FIFOs
	Whiteouts  int `json:"whiteouts"`
	OpaqueDirs int `json:"opaqueDirs"`
	// Bytes is the content of the regular files.
	Bytes int64 `json:"bytes"`
	// CompressionRatio is the tar stream's size over the stored size (1 for
	// an uncompressed layer; 0 when nothing was stored).
	CompressionRatio float64 `json:"compressionRatio"`
	// HiddenFiles and HiddenBytes: regular files of this layer that a higher
	// layer replaces or deletes (same path, a whiteout of it or of a parent,
	// an opaque parent, a parent replaced by a non-directory).
	HiddenFiles int   `json:"hiddenFiles"`
	HiddenBytes int64 `json:"hiddenBytes"`
	// Largest are the largest regular files, largest first (at most 10).
	Largest []FileSize `json:"largest,omitempty"`
	// Truncated: the layer held more paths than the analysis tracks.
	Truncated bool `json:"truncated,omitempty"`
	// Partial: the layer was not read to its end (see the image's findings
	// and problems), or it is missing.
	Partial bool `json:"partial,omitempty"`
	// Lazy names the lazy-pull format the layer's descriptor declares
	// ("estargz", "zstd:chunked"): its table of contents was checked too.
	Lazy string `json:"lazy,omitempty"`
}

// FileSize is one file and its size.
type FileSize struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// PathWaste is one path present in several layers (dive's inefficiency).
type PathWaste struct {
	Path   string `json:"path"`
	Layers int    `json:"layers"` // how many layers hold it
	Bytes  int64  `json:"bytes"`  // its sizes summed over those layers
}

// analysisSummary is the one-line summary the table shows under an image.
func analysisSummary(a *ImageAnalysis) string {
	s := fmt.Sprintf("analysis: %s in %s, efficiency %s, wasted %s, hidden by later layers %s",
		humanSize(a.Bytes), plural(a.Files, "file"), percent(a.Efficiency), humanSize(a.WastedBytes), humanSize(a.HiddenBytes))
	if a.Truncated {
		s += " (path limit hit: lower bounds)"
	}
	if a.Partial {
		s += " (partial: a layer was not read to its end)"
	}
	return s
}

func percent(f float64) string {
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}

// WriteAnalysis renders the layer analysis of every image of r that has
// one: a per-layer table (entries by type, bytes, compression ratio,
// whiteouts, hidden bytes), the largest files, the inefficient paths and
// the image totals, then the verdict line of the verification that ran
// with it. Input-derived strings are escaped as in WriteText.
func WriteAnalysis(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	tw := tabwriter.NewWriter(ew, 0, 8, 2, ' ', 0)
	p := textPrinter{tw: tw}
	if r.Source != "" || r.Command != "" {
		p.linef("layercheck %s", clean(strings.TrimSpace(r.Command+" "+r.Source)))
		p.linef("")
	}
	n := 0
	for i := range r.Images {
		img := &r.Images[i]
		if img.Analysis == nil {
			continue
		}
		n++
		a := img.Analysis
		head := clean(img.Name)
		if img.Platform != "" {
			head += " " + clean(img.Platform)
		}
		p.linef("%s", head)
		p.linef("  LAYER\tFILES\tDIRS\tLINKS\tOTHER\tWHITEOUTS\tOPAQUE\tBYTES\tRATIO\tHIDDEN")
		for _, l := range a.Layers {
			mark := ""
			if l.Partial {
				mark = " (partial)"
			} else if l.Truncated {
				mark = " (truncated)"
			}
			if l.Lazy != "" {
				mark += " (" + clean(l.Lazy) + ")"
			}
			p.linef("  %d%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s", l.Index, mark, l.Regular, l.Dirs, l.Symlinks+l.Hardlinks, l.Other,
				l.Whiteouts, l.OpaqueDirs, humanSize(l.Bytes), ratio(l.CompressionRatio), hidden(l.HiddenFiles, l.HiddenBytes))
		}
		p.linef("  total\t%d\t\t\t\t\t\t%s\t\t%s", a.Files, humanSize(a.Bytes), hidden(a.HiddenFiles, a.HiddenBytes))
		p.linef("  efficiency %s, wasted %s (dive's measure)", percent(a.Efficiency), humanSize(a.WastedBytes))
		if a.Truncated {
			p.linef("  a layer held more paths than the analysis tracks: wasted and hidden bytes are lower bounds")
		}
		if len(a.Inefficiencies) > 0 {
			p.linef("  Paths in several layers:")
			for _, pw := range a.Inefficiencies {
				p.linef("    %s\t%d layers\t%s", clean(pw.Path), pw.Layers, humanSize(pw.Bytes))
			}
		}
		var largest []string
		for _, l := range a.Layers {
			for _, f := range l.Largest {
				largest = append(largest, fmt.Sprintf("    %d\t%s\t%s", l.Index, humanSize(f.Size), clean(f.Path)))
			}
		}
		if len(largest) > 0 {
			p.linef("  Largest files (layer, size, path):")
			for _, s := range largest {
				p.linef("%s", s)
			}
		}
		p.linef("")
	}
	if n == 0 {
		p.linef("no image was analysed")
		p.linef("")
	}
	p.linef("%s", verdictLine(r.Summary))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing analysis: %w", err)
	}
	if ew.err != nil {
		return fmt.Errorf("writing analysis: %w", ew.err)
	}
	return nil
}

func ratio(r float64) string {
	if r == 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

func hidden(files int, bytes int64) string {
	if files == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s)", humanSize(bytes), plural(files, "file"))
}
