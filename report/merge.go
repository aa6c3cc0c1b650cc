package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Merge joins reports into one: images, findings and problems concatenated
// with exact duplicates removed, then normalized (statuses, order, summary).
// The command is the reports' common command, or "merge" if they differ; the
// sources are joined with ", " (each distinct source once); the tool is the
// first report's. The inputs are not modified. Merge fails on a nil report or
// one whose schemaVersion has another major version.
func Merge(reports ...*Report) (*Report, error) {
	if len(reports) == 0 {
		return nil, errors.New("merging reports: no reports")
	}
	out := &Report{SchemaVersion: SchemaVersion}
	var sources []string
	seenSource := map[string]bool{}
	seenImage := map[string]bool{}
	seenProblem := map[string]bool{}
	for i, r := range reports {
		if r == nil {
			return nil, fmt.Errorf("merging reports: report %d is nil", i+1)
		}
		if r.SchemaVersion != "" {
			if err := checkSchemaVersion(r.SchemaVersion); err != nil {
				return nil, fmt.Errorf("merging report %d: %w", i+1, err)
			}
		}
		if i == 0 {
			out.Tool = r.Tool
			out.Command = r.Command
		} else if r.Command != out.Command {
			out.Command = "merge"
		}
		for _, s := range strings.Split(r.Source, ", ") {
			if s != "" && !seenSource[s] {
				seenSource[s] = true
				sources = append(sources, s)
			}
		}
		for _, img := range r.Images {
			k := imageIdentity(img)
			if seenImage[k] {
				continue
			}
			seenImage[k] = true
			img.Layers = append([]Layer(nil), img.Layers...) // Normalize writes statuses into layers
			out.Images = append(out.Images, img)
		}
		out.Findings = append(out.Findings, r.Findings...)
		for _, p := range r.Problems {
			k, _ := json.Marshal(p)
			if seenProblem[string(k)] {
				continue
			}
			seenProblem[string(k)] = true
			out.Problems = append(out.Problems, p)
		}
	}
	if out.Tool.Name == "" {
		out.Tool.Name = "layercheck"
	}
	out.Images = foldPartial(out.Images)
	out.Source = strings.Join(sources, ", ")
	out.Normalize() // sorts and removes duplicate findings
	return out, nil
}

// imageIdentity keys an image by everything measured, not by the statuses
// Normalize derives from findings.
func imageIdentity(img Image) string {
	img.Status = ""
	img.Layers = append([]Layer(nil), img.Layers...)
	for i := range img.Layers {
		img.Layers[i].Status = ""
	}
	k, _ := json.Marshal(img)
	return string(k)
}

// foldPartial joins entries of one image that differ only in which layers
// were measured: the shards of a store audit split the blobs, so each
// reports every image with the measurements of its own blobs and leaves the
// other layers' measured fields empty. Two entries fold when every measured
// field is equal or empty on one side; entries that disagree stay apart.
func foldPartial(imgs []Image) []Image {
	var out []Image
	byShape := map[string][]int{} // shape -> positions in out
	for _, img := range imgs {
		k := imageShape(img)
		folded := false
		for _, i := range byShape[k] {
			if m, ok := foldLayers(out[i].Layers, img.Layers); ok {
				out[i].Layers = m
				folded = true
				break
			}
		}
		if !folded {
			byShape[k] = append(byShape[k], len(out))
			out = append(out, img)
		}
	}
	return out
}

// imageShape keys an image by everything but its layers' measurements.
func imageShape(img Image) string {
	img.Status = ""
	img.Layers = append([]Layer(nil), img.Layers...)
	for i := range img.Layers {
		l := &img.Layers[i]
		l.Status, l.Digest, l.Size, l.Compression, l.DiffID, l.ChainID, l.TarSize, l.Entries = "", "", 0, "", "", "", 0, 0
	}
	k, _ := json.Marshal(img)
	return string(k)
}

// foldLayers fills the empty measured fields of a from b, or says they disagree.
func foldLayers(a, b []Layer) ([]Layer, bool) {
	out := append([]Layer(nil), a...)
	for i := range out {
		x, y := &out[i], b[i]
		okS := func(p *string, v string) bool {
			if *p == "" {
				*p = v
			}
			return v == "" || *p == v
		}
		okN := func(p *int64, v int64) bool {
			if *p == 0 {
				*p = v
			}
			return v == 0 || *p == v
		}
		entries := int64(x.Entries)
		if !okS(&x.Digest, y.Digest) || !okS(&x.Compression, y.Compression) || !okS(&x.DiffID, y.DiffID) ||
			!okS(&x.ChainID, y.ChainID) || !okN(&x.Size, y.Size) || !okN(&x.TarSize, y.TarSize) || !okN(&entries, int64(y.Entries)) {
			return nil, false
		}
		x.Entries = int(entries)
	}
	return out, true
}
