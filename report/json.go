package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxJSONSize bounds the size of a JSON report ReadJSON accepts.
const MaxJSONSize = 256 << 20

// maxJSONSize is MaxJSONSize; tests lower it.
var maxJSONSize int64 = MaxJSONSize

// WriteJSON writes r as one indented JSON document (schema:
// docs/report-schema.json) followed by a newline. Field order follows the
// struct definitions, so equal reports give byte-equal output. Nil slices are
// written as empty arrays; r itself is not modified. r should be normalized.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonView(r)); err != nil {
		return fmt.Errorf("writing JSON report: %w", err)
	}
	return nil
}

// jsonView returns a shallow copy of r whose required arrays are never null.
func jsonView(r *Report) *Report {
	c := *r
	if c.Findings == nil {
		c.Findings = []Finding{}
	}
	c.Images = make([]Image, len(r.Images))
	for i, img := range r.Images {
		if img.Layers == nil {
			img.Layers = []Layer{}
		}
		c.Images[i] = img
	}
	return &c
}

// ReadJSON reads a report written by WriteJSON. It rejects documents that are
// not layercheck reports, whose schemaVersion has another major version than
// this package's, and documents larger than MaxJSONSize. Unknown fields are
// ignored (later minor versions may add some). The report is returned as read;
// call Normalize to recompute statuses and the summary.
func ReadJSON(rd io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	if int64(len(data)) > maxJSONSize {
		return nil, fmt.Errorf("reading JSON report: larger than %d bytes", maxJSONSize)
	}
	// Check the version before decoding the rest: a document of another
	// major version may not decode, and its errors would mislead.
	var head struct {
		SchemaVersion *string `json:"schemaVersion"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	if head.SchemaVersion == nil {
		return nil, errors.New("reading JSON report: no schemaVersion, not a layercheck report")
	}
	if err := checkSchemaVersion(*head.SchemaVersion); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("reading JSON report: %w", err)
	}
	return &r, nil
}

// checkSchemaVersion accepts "layercheck.dev/report/v1" and later minor
// versions of it ("…/v1.2"); other majors and other documents are refused.
func checkSchemaVersion(v string) error {
	i := strings.LastIndex(SchemaVersion, "/v")
	base, want := SchemaVersion[:i], SchemaVersion[i+2:]
	rest, ok := strings.CutPrefix(v, base+"/v")
	if !ok {
		return fmt.Errorf("schemaVersion %q is not a layercheck report version (want %s)", v, SchemaVersion)
	}
	major, _, _ := strings.Cut(rest, ".")
	if major != want {
		return fmt.Errorf("unsupported schemaVersion %q: this layercheck reads major version v%s (%s)", v, want, SchemaVersion)
	}
	return nil
}
