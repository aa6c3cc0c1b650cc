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
