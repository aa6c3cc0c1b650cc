package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/layercheck/layercheck/report"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotations that name an index.json entry.
const (
	annotationContainerdName = "io.containerd.image.name"
	mediaTypeDockerList      = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// indexDoc is index.json as read for listing: entries are decoded one by one
// so that a single bad entry does not hide the others.
type indexDoc struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []json.RawMessage `json:"manifests"`
	Config        json.RawMessage   `json:"config"`
	Layers        json.RawMessage   `json:"layers"`
}

// ParseIndexJSON turns the bytes of an OCI layout's index.json into targets,
// and its structural problems into report.ArchiveManifest findings. file
// names it in messages. Shared by the layout and archive backends.
func ParseIndexJSON(data []byte, file string) ([]Target, []report.Finding) {
	var fs []report.Finding
	add := func(sev report.Severity, msg string) {
		fs = append(fs, report.Finding{Check: report.ArchiveManifest, Severity: sev, Subject: report.Subject{Path: file}, Message: msg})
	}
	if len(bytes.TrimSpace(data)) == 0 {
		add(report.Error, file+" is empty")
		return nil, fs
	}
	var doc indexDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		add(report.Error, fmt.Sprintf("%s is not a JSON image index: %v", file, err))
		return nil, fs
	}
	if doc.SchemaVersion == nil {
		add(report.Warning, file+" has no schemaVersion")
	} else if *doc.SchemaVersion != 2 {
		add(report.Warning, fmt.Sprintf("%s has schemaVersion %d, want 2", file, *doc.SchemaVersion))
	}
	switch doc.MediaType {
	case "", ocispec.MediaTypeImageIndex:
	case mediaTypeDockerList:
		add(report.Info, fmt.Sprintf("%s declares media type %s; an OCI layout's index.json is an OCI image index", file, doc.MediaType))
	default:
		add(report.Warning, fmt.Sprintf("%s declares media type %q, not an image index", file, doc.MediaType))
	}
	if doc.Config != nil || doc.Layers != nil {
		add(report.Warning, file+" has config/layers fields: it looks like an image manifest, not an index")
	}
	if k := DuplicateKey(data); k != "" {
		add(report.Warning, fmt.Sprintf("%s: key %q appears twice in one object; read as encoding/json does (the last value wins), while other tools may read the first", file, k))
	}
	if len(doc.Manifests) == 0 {
		add(report.Info, file+" lists no manifests")
		return nil, fs
	}
	var ts []Target
	for i, raw := range doc.Manifests {
		var d ocispec.Descriptor
		if err := json.Unmarshal(raw, &d); err != nil {
			add(report.Error, fmt.Sprintf("%s manifests[%d] is not a descriptor: %v", file, i, err))
			continue
		}
		if d.Size < 0 {
			add(report.Error, fmt.Sprintf("%s manifests[%d] (%s) declares a negative size %d", file, i, d.Digest, d.Size))
		}
		name, tags := IndexTargetName(d, fmt.Sprintf("%s[%d]", file, i))
		desc := d
		ts = append(ts, Target{Name: name, Tags: tags, Descriptor: &desc})
	}
	return ts, fs
}

// IndexTargetName names an index entry: its io.containerd.image.name annotation
// (always a full reference) when present, else its
// org.opencontainers.image.ref.name (often only a tag), else fallback. Tags
// are the distinct values of both annotations.
func IndexTargetName(d ocispec.Descriptor, fallback string) (string, []string) {
	var tags []string
	for _, k := range []string{annotationContainerdName, ocispec.AnnotationRefName} {
		v := strings.TrimSpace(d.Annotations[k])
		if v == "" || contains(tags, v) {
			continue
		}
		tags = append(tags, v)
	}
	if len(tags) == 0 {
		return fallback, nil
	}
	return tags[0], tags
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// CheckOCILayout returns what is wrong with the bytes of an oci-layout file,
// or "" when it is a valid layout header of a known major version.
func CheckOCILayout(data []byte) string {
	var lay struct {
		Version *string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(data, &lay); err != nil {
		return fmt.Sprintf("oci-layout is not valid JSON: %v", err)
	}
	switch {
	case lay.Version == nil:
		return "oci-layout has no imageLayoutVersion"
	case !strings.HasPrefix(*lay.Version, "1."):
		return fmt.Sprintf("oci-layout has imageLayoutVersion %q; layercheck knows %s", *lay.Version, ocispec.ImageLayoutVersion)
	}
	return ""
}
