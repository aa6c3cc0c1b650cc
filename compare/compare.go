package compare

import (
	"fmt"
	"sort"
	"strings"

	"github.com/layercheck/layercheck/report"
)

// Check IDs of the comparison. Expected values are the registry's, actual
// values the artifact's.
const (
	Manifest           report.Check = "compare-manifest"         // manifest (or index) digests differ
	Config             report.Check = "compare-config"           // config digests (image IDs) differ
	LayerCountDiffers  report.Check = "compare-layer-count"      // the two sides have different numbers of layers
	DiffID             report.Check = "compare-diffid"           // a layer's uncompressed content differs
	ChainID            report.Check = "compare-chainid"          // same layer content on a different stack of lower layers
	LayerDigestDiffers report.Check = "compare-layer-digest"     // compressed layer bytes differ, or cannot be compared
	MissingPlatform    report.Check = "compare-missing-platform" // a platform is present on one side only
)

func init() {
	report.Register(
		report.CheckInfo{ID: Manifest, Severity: report.Error, Title: "compare: the artifact's manifest digest equals the registry's"},
		report.CheckInfo{ID: Config, Severity: report.Error, Title: "compare: the artifact's config digest (image ID) equals the registry's"},
		report.CheckInfo{ID: LayerCountDiffers, Severity: report.Error, Title: "compare: both sides have the same number of layers"},
		report.CheckInfo{ID: DiffID, Severity: report.Error, Title: "compare: each layer's measured diffID equals the registry's"},
		report.CheckInfo{ID: ChainID, Severity: report.Error, Title: "compare: each layer's chainID equals the registry's"},
		report.CheckInfo{ID: LayerDigestDiffers, Severity: report.Error, Title: "compare: compressed layer digests are equal where both sides hold compressed blobs"},
		report.CheckInfo{ID: MissingPlatform, Severity: report.Error, Title: "compare: every platform is present on both sides"},
	)
}

// Result is the outcome of one comparison.
type Result struct {
	// Findings are the differences (and notes on what could not be compared).
	Findings []report.Finding
	// Problems are comparisons that could not be made (a value one side
	// could not measure, an ambiguous artifact).
	Problems []report.Problem
	// Pairs are the images compared, registry side first.
	Pairs [][2]report.Image

	gotSide string // the other side's name in messages ("" means artifact)
}

// Images compares what the verifier measured on the registry side (want)
// with the artifact side (got). subject names the comparison in findings
// (the registry reference). Images that are artifacts or attestations
// rather than container images are left out by the caller.
func Images(subject string, want, got []report.Image) Result {
	return images(subject, "artifact", want, got)
}

// images is Images with the name of the got side in messages ("artifact",
// "host").
func images(subject, gotSide string, want, got []report.Image) Result {
	res := Result{gotSide: gotSide}
	if len(want) == 0 || len(got) == 0 {
		side := "registry"
		if len(want) > 0 {
			side = gotSide
		}
		res.Problems = append(res.Problems, report.Problem{Subject: report.Subject{Image: subject}, Message: "the " + side + " side holds no image to compare"})
		return res
	}
	got, prob := pickArtifact(want, got)
	if prob != "" {
		res.Problems = append(res.Problems, report.Problem{Subject: report.Subject{Image: subject}, Message: prob})
		return res
	}
	wantBy, gotBy := byPlatform(want), byPlatform(got)
	var plats []string
	for p := range wantBy {
		plats = append(plats, p)
	}
	for p := range gotBy {
		if _, ok := wantBy[p]; !ok {
			plats = append(plats, p)
		}
	}
	sort.Strings(plats)
	matched := 0
	for _, p := range plats {
		if _, ok := gotBy[p]; ok {
			if _, ok := wantBy[p]; ok {
				matched++
			}
		}
	}
	for _, p := range plats {
		w, wok := wantBy[p]
		g, gok := gotBy[p]
		subj := report.Subject{Image: subject, Platform: p}
		switch {
		case wok && gok:
			res.Pairs = append(res.Pairs, [2]report.Image{w, g})
			res.pair(subj, w, g)
		case wok:
			// A docker save or a pull keeps one platform of a
			// multi-platform image: the others being absent is a note
			// as long as some platform matched.
			sev := report.Warning
			msg := "the registry serves this platform; the " + gotSide + " does not hold it"
			if matched == 0 {
				sev = report.Error
				msg += " (and no platform is on both sides)"
			}
			res.add(MissingPlatform, sev, subj, msg, w.ManifestDigest, "absent")
		default:
			res.add(MissingPlatform, report.Error, subj, "the "+gotSide+" holds this platform; the registry does not serve it", "absent", g.ConfigDigest)
		}
	}
	return res
}

func (r *Result) add(c report.Check, sev report.Severity, s report.Subject, msg, want, got string) {
	r.Findings = append(r.Findings, report.Finding{Check: c, Severity: sev, Subject: s, Message: msg, Expected: want, Actual: got})
}

func (r *Result) problem(s report.Subject, format string, args ...any) {
	r.Problems = append(r.Problems, report.Problem{Subject: s, Message: fmt.Sprintf(format, args...)})
}

// pickArtifact chooses the artifact's image when it holds several (a docker
// save of many images): the one whose config digest the registry serves,
// else the only one. The problem is non-empty when no choice is possible.
func pickArtifact(want, got []report.Image) ([]report.Image, string) {
	names := map[string][]report.Image{}
	var order []string
	for _, g := range got {
		if _, ok := names[g.Name]; !ok {
			order = append(order, g.Name)
		}
		names[g.Name] = append(names[g.Name], g)
	}
	if len(order) == 1 {
		return got, ""
	}
	configs := map[string]bool{}
	for _, w := range want {
		configs[w.ConfigDigest] = true
	}
	var hits []string
	for _, n := range order {
		for _, g := range names[n] {
			if g.ConfigDigest != "" && configs[g.ConfigDigest] {
				hits = append(hits, n)
				break
			}
		}
	}
	if len(hits) == 1 {
		return names[hits[0]], ""
	}
	return nil, fmt.Sprintf("the artifact holds %d images (%s) and none is the only one with the registry's config digest; choose one with --image", len(order), strings.Join(order, ", "))
}

// byPlatform indexes images by platform; an image without one is "unknown".
func byPlatform(imgs []report.Image) map[string]report.Image {
	out := map[string]report.Image{}
	for _, im := range imgs {
		p := im.Platform
		if p == "" {
			p = "unknown"
		}
		if _, dup := out[p]; !dup {
			out[p] = im
		}
	}
	return out
}

func (r *Result) pair(subj report.Subject, w, g report.Image) {
	if w.ConfigDigest == "" || g.ConfigDigest == "" {
		r.problem(subj, "config digest unknown on the %s side (see its findings): the image IDs cannot be compared", r.unknownSide(w.ConfigDigest, g.ConfigDigest))
	} else if w.ConfigDigest != g.ConfigDigest {
		r.add(Config, report.Error, subj, "the config digests (image IDs) differ: a different image", w.ConfigDigest, g.ConfigDigest)
	}
	if len(w.Layers) != len(g.Layers) {
		r.add(LayerCountDiffers, report.Error, subj, "the number of layers differs", fmt.Sprintf("%d layers", len(w.Layers)), fmt.Sprintf("%d layers", len(g.Layers)))
	}
	n := min(len(w.Layers), len(g.Layers))
	compressedComparable := true
	var plainLayers []string
	firstDiff := -1
	for i := 0; i < n; i++ {
		wl, gl := w.Layers[i], g.Layers[i]
		ls := subj
		ls.Layer = report.LayerIndex(i)
		switch {
		case wl.DiffID == "" || gl.DiffID == "":
			r.problem(ls, "diffID unknown on the %s side (see its findings): the layer cannot be compared", r.unknownSide(wl.DiffID, gl.DiffID))
			if firstDiff < 0 {
				firstDiff = i
			}
		case wl.DiffID != gl.DiffID:
			s := ls
			s.Digest = gl.Digest
			r.add(DiffID, report.Error, s, fmt.Sprintf("layer %d differs: its uncompressed content does not hash to the registry's diffID", i), wl.DiffID, gl.DiffID)
			if firstDiff < 0 {
				firstDiff = i
			}
		case wl.ChainID != "" && gl.ChainID != "" && wl.ChainID != gl.ChainID:
			msg := "same layer content on a different stack of lower layers"
			if firstDiff >= 0 {
				msg += fmt.Sprintf(" (layer %d differs)", firstDiff)
			}
			r.add(ChainID, report.Error, ls, msg, wl.ChainID, gl.ChainID)
		}
		if wl.Compression == "" || gl.Compression == "" {
			// Not measured on one side (a problem above or that side's
			// findings say why): an unread layer is not an uncompressed one.
			continue
		}
		if !compressed(wl.Compression) || !compressed(gl.Compression) {
			if compressed(wl.Compression) != compressed(gl.Compression) {
				compressedComparable = false
				plainLayers = append(plainLayers, fmt.Sprint(i))
			}
			continue
		}
		if wl.Digest != "" && gl.Digest != "" && wl.Digest != gl.Digest && wl.DiffID == gl.DiffID {
			s := ls
			s.Digest = gl.Digest
			r.add(LayerDigestDiffers, report.Error, s, fmt.Sprintf("layer %d has the same content compressed into different bytes (recompressed)", i), wl.Digest, gl.Digest)
		}
	}
	if !compressedComparable {
		r.add(LayerDigestDiffers, report.Info, subj, fmt.Sprintf("compressed layer digests cannot be compared for layers %s: one side stores them uncompressed (a docker save of a graph-driver store keeps only the uncompressed tar, whose digest is the diffID); the layers were compared by diffID and chainID", strings.Join(plainLayers, ", ")), "", "")
	}
	switch {
	case w.ManifestDigest == "" || g.ManifestDigest == "":
		// A legacy docker save has no manifest blob: nothing to compare.
	case w.ManifestDigest == g.ManifestDigest:
	case !compressedComparable:
		r.add(Manifest, report.Info, subj, "the manifests differ because the artifact's manifest names uncompressed layers; not a difference of content", w.ManifestDigest, g.ManifestDigest)
	default:
		r.add(Manifest, report.Error, subj, "the manifest digests differ", w.ManifestDigest, g.ManifestDigest)
	}
	if w.IndexDigest != "" && g.IndexDigest != "" && w.IndexDigest != g.IndexDigest && compressedComparable {
		r.add(Manifest, report.Error, subj, "the index digests differ", w.IndexDigest, g.IndexDigest)
	}
}

func compressed(c string) bool { return c != "" && c != "none" }

func (r *Result) unknownSide(want, got string) string {
	side := r.gotSide
	if side == "" {
		side = "artifact"
	}
	switch {
	case want == "" && got == "":
		return "registry and " + side
	case want == "":
		return "registry"
	}
	return side
}
