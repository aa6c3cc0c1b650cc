package report

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// SchemaVersion identifies the JSON document layout. Bump the suffix on any
// incompatible change; docs/report-schema.json describes it.
const SchemaVersion = "layercheck.dev/report/v1"

// Subject names what a finding is about. Empty fields are omitted.
type Subject struct {
	Image    string `json:"image,omitempty"`    // image name, tag or reference as the user knows it
	Platform string `json:"platform,omitempty"` // os/arch[/variant]
	Layer    *int   `json:"layer,omitempty"`    // layer index, 0 = base
	Digest   string `json:"digest,omitempty"`   // digest of the object at fault
	Path     string `json:"path,omitempty"`     // file in the archive, layout or store
	Entry    string `json:"entry,omitempty"`    // tar entry inside a layer
}

// String renders the subject for humans: "nginx:latest linux/amd64 layer 2 (sha256:ab12…) etc/passwd".
func (s Subject) String() string {
	var parts []string
	if s.Image != "" {
		parts = append(parts, s.Image)
	}
	if s.Platform != "" {
		parts = append(parts, s.Platform)
	}
	if s.Layer != nil {
		parts = append(parts, fmt.Sprintf("layer %d", *s.Layer))
	}
	if s.Digest != "" {
		parts = append(parts, Short(s.Digest))
	}
	if s.Path != "" {
		parts = append(parts, s.Path)
	}
	if s.Entry != "" {
		parts = append(parts, fmt.Sprintf("entry %q", s.Entry))
	}
	return strings.Join(parts, " ")
}

// LayerIndex returns a pointer to i, for Subject.Layer.
func LayerIndex(i int) *int { return &i }

// Finding is one verified problem or notable fact.
type Finding struct {
	Check    Check    `json:"check"`
	Severity Severity `json:"severity"`
	Subject  Subject  `json:"subject"`
	Message  string   `json:"message"`
	Expected string   `json:"expected,omitempty"`
	Actual   string   `json:"actual,omitempty"`
}

// Problem is something layercheck could not check (I/O, unsupported input).
type Problem struct {
	Subject Subject `json:"subject"`
	Message string  `json:"message"`
}

// Layer is what was measured for one layer of one image.
type Layer struct {
	Index       int    `json:"index"`
	MediaType   string `json:"mediaType,omitempty"`
	Digest      string `json:"digest,omitempty"` // computed digest of the stored bytes
	Size        int64  `json:"size"`             // stored bytes read
	Compression string `json:"compression,omitempty"`
	DiffID      string `json:"diffID,omitempty"` // computed digest of the tar stream
	ChainID     string `json:"chainID,omitempty"`
	TarSize     int64  `json:"tarSize,omitempty"`
	Entries     int    `json:"entries,omitempty"`
	Location    string `json:"location,omitempty"`
	Status      Status `json:"status"`
}

// Image is one verified image (one platform of a multi-platform image).
type Image struct {
	Name              string   `json:"name"`
	Tags              []string `json:"tags,omitempty"`
	Platform          string   `json:"platform,omitempty"`
	IndexDigest       string   `json:"indexDigest,omitempty"`
	ManifestDigest    string   `json:"manifestDigest,omitempty"`
	ManifestMediaType string   `json:"manifestMediaType,omitempty"`
	ConfigDigest      string   `json:"configDigest,omitempty"` // the image ID
	Layers            []Layer  `json:"layers"`
	Status            Status   `json:"status"`
	// Analysis is the layer analysis (--analyze); nil when not asked for.
	Analysis *ImageAnalysis `json:"analysis,omitempty"`
}

// Summary counts what a report holds.
type Summary struct {
	Images    int     `json:"images"`
	Layers    int     `json:"layers"`
	BytesRead int64   `json:"bytesRead"`
	Errors    int     `json:"errors"`
	Warnings  int     `json:"warnings"`
	Infos     int     `json:"infos"`
	Problems  int     `json:"problems"` // things that could not be checked
	Verdict   Verdict `json:"verdict"`
}

// Report is the full result of one run.
type Report struct {
	SchemaVersion string    `json:"schemaVersion"`
	Tool          Tool      `json:"tool"`
	Command       string    `json:"command"`
	Source        string    `json:"source"`
	Shard         *Shard    `json:"shard,omitempty"` // set when --shard split the inputs
	Images        []Image   `json:"images"`
	Findings      []Finding `json:"findings"`
	Problems      []Problem `json:"problems,omitempty"`
	Summary       Summary   `json:"summary"`
}

// Tool identifies the program that wrote a report.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Builder collects findings from concurrent workers.
type Builder struct {
	mu       sync.Mutex
	findings []Finding
	problems []Problem
	images   []Image
}

// Add records findings. Safe for concurrent use.
func (b *Builder) Add(f ...Finding) {
	for _, x := range f {
		if _, ok := catalog[x.Check]; !ok {
			SeverityOf(x.Check) // remembered for Unregistered
		}
	}
	b.mu.Lock()
	b.findings = append(b.findings, f...)
	b.mu.Unlock()
}

// Problem records something that could not be checked. Safe for concurrent use.
func (b *Builder) Problem(s Subject, format string, args ...any) {
	b.mu.Lock()
	b.problems = append(b.problems, Problem{Subject: s, Message: fmt.Sprintf(format, args...)})
	b.mu.Unlock()
}

// AddImage records an image result. Safe for concurrent use.
func (b *Builder) AddImage(img Image) {
	b.mu.Lock()
	b.images = append(b.images, img)
	b.mu.Unlock()
}

// Finish returns the report, sorted for deterministic output, with statuses and summary filled in.
func (b *Builder) Finish(command, source, version string) *Report {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &Report{
		SchemaVersion: SchemaVersion,
		Tool:          Tool{Name: "layercheck", Version: version},
		Command:       command,
		Source:        source,
		Images:        append([]Image(nil), b.images...),
		Findings:      append([]Finding(nil), b.findings...),
		Problems:      append([]Problem(nil), b.problems...),
	}
	r.Normalize()
	return r
}

// Normalize sorts findings and images, fills statuses and recomputes the summary.
// Merged or hand-built reports call it before writing.
func (r *Report) Normalize() {
	if r.SchemaVersion == "" {
		r.SchemaVersion = SchemaVersion
	}
	sort.SliceStable(r.Findings, func(i, j int) bool { return lessFinding(r.Findings[i], r.Findings[j]) })
	r.Findings = dedupFindings(r.Findings)
	sort.SliceStable(r.Problems, func(i, j int) bool {
		return r.Problems[i].Subject.String()+r.Problems[i].Message < r.Problems[j].Subject.String()+r.Problems[j].Message
	})
	sort.SliceStable(r.Images, func(i, j int) bool {
		if r.Images[i].Name != r.Images[j].Name {
			return r.Images[i].Name < r.Images[j].Name
		}
		return r.Images[i].Platform < r.Images[j].Platform
	})
	if r.Images == nil {
		r.Images = []Image{}
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	s := Summary{Images: len(r.Images)}
	for i := range r.Images {
		img := &r.Images[i]
		if img.Layers == nil {
			img.Layers = []Layer{}
		}
		img.Status = StatusOK
		for j := range img.Layers {
			l := &img.Layers[j]
			l.Status = r.status(img, &l.Index)
			img.Status = worse(img.Status, l.Status)
			s.Layers++
			s.BytesRead += l.Size
		}
		img.Status = worse(img.Status, r.status(img, nil))
	}
	for _, f := range r.Findings {
		switch f.Severity {
		case Error:
			s.Errors++
		case Warning:
			s.Warnings++
		default:
			s.Infos++
		}
	}
	s.Problems = len(r.Problems)
	switch {
	case s.Errors > 0:
		s.Verdict = VerdictFailed
	case s.Problems > 0:
		s.Verdict = VerdictIncomplete
	default:
		s.Verdict = VerdictOK
	}
	r.Summary = s
}

// status grades an image (layer nil: findings without a layer) or one of its layers.
func (r *Report) status(img *Image, layer *int) Status {
	st := StatusOK
	for _, f := range r.Findings {
		if f.Subject.Image != img.Name || f.Subject.Platform != img.Platform {
			continue
		}
		if layer != nil && (f.Subject.Layer == nil || *f.Subject.Layer != *layer) {
			continue
		}
		switch f.Severity {
		case Error:
			st = worse(st, StatusFailed)
		case Warning:
			st = worse(st, StatusWarning)
		}
	}
	return st
}

func lessFinding(a, b Finding) bool {
	if a.Subject.Image != b.Subject.Image {
		return a.Subject.Image < b.Subject.Image
	}
	if a.Subject.Platform != b.Subject.Platform {
		return a.Subject.Platform < b.Subject.Platform
	}
	la, lb := -1, -1
	if a.Subject.Layer != nil {
		la = *a.Subject.Layer
	}
	if b.Subject.Layer != nil {
		lb = *b.Subject.Layer
	}
	if la != lb {
		return la < lb
	}
	if a.Severity != b.Severity {
		return a.Severity > b.Severity
	}
	if a.Check != b.Check {
		return a.Check < b.Check
	}
	if a.Subject.Path != b.Subject.Path {
		return a.Subject.Path < b.Subject.Path
	}
	if a.Subject.Entry != b.Subject.Entry {
		return a.Subject.Entry < b.Subject.Entry
	}
	return a.Subject.Digest < b.Subject.Digest
}

func dedupFindings(fs []Finding) []Finding {
	out := fs[:0]
	seen := map[string]bool{}
	for _, f := range fs {
		k, _ := json.Marshal(f)
		if seen[string(k)] {
			continue
		}
		seen[string(k)] = true
		out = append(out, f)
	}
	return out
}

// Short abbreviates a digest for tables: "sha256:0123456789ab".
func Short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}
