package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func TestWriteJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json.golden", buf.Bytes())
}

func TestJSONRoundTrip(t *testing.T) {
	r := sampleReport()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("ReadJSON(WriteJSON(r)) differs from r:\n got %+v\nwant %+v", back, r)
	}
	var again bytes.Buffer
	if err := WriteJSON(&again, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("writing the read report again gives different bytes")
	}
}

func TestWriteJSONNilSlices(t *testing.T) {
	r := &Report{SchemaVersion: SchemaVersion, Images: []Image{{Name: "x"}}}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "null") || !strings.Contains(out, `"findings": []`) || !strings.Contains(out, `"layers": []`) {
		t.Errorf("nil slices not written as []:\n%s", out)
	}
	if r.Findings != nil || r.Images[0].Layers != nil {
		t.Error("WriteJSON modified its input")
	}
}

func TestReadJSONRejects(t *testing.T) {
	valid := func(version string) string {
		return `{"schemaVersion":"` + version + `","tool":{"name":"layercheck","version":"x"},"command":"tar","source":"a.tar",` +
			`"images":[],"findings":[{"check":"layer-digest","severity":"error","subject":{},"message":"m"}],` +
			`"summary":{"images":0,"layers":0,"bytesRead":0,"errors":1,"warnings":0,"infos":0,"problems":0,"verdict":"failed"}}`
	}
	tests := []struct {
		name, doc, wantErr string
	}{
		{"next major", valid("layercheck.dev/report/v2"), "unsupported schemaVersion"},
		{"major with a suffix", valid("layercheck.dev/report/v10"), "unsupported schemaVersion"},
		{"other document", valid("example.com/report/v1"), "not a layercheck report"},
		{"no version", `{"images":[]}`, "no schemaVersion"},
		{"not an object", `[1,2]`, "cannot unmarshal"},
		{"not JSON", `schemaVersion: v1`, "invalid character"},
		{"trailing data", valid(SchemaVersion) + `{}`, "invalid character"},
		{"bad severity", strings.Replace(valid(SchemaVersion), `"error"`, `"fatal"`, 1), "unknown severity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadJSON(strings.NewReader(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ReadJSON = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}

	// A later minor version of v1 is read; unknown fields are ignored.
	r, err := ReadJSON(strings.NewReader(strings.Replace(valid("layercheck.dev/report/v1.3"), `"command"`, `"newField":1,"command"`, 1)))
	if err != nil {
		t.Fatalf("ReadJSON of v1.3: %v", err)
	}
	if r.Findings[0].Severity != Error || r.Source != "a.tar" {
		t.Errorf("ReadJSON of v1.3 = %+v", r)
	}

	old := maxJSONSize
	maxJSONSize = 64
	defer func() { maxJSONSize = old }()
	if _, err := ReadJSON(strings.NewReader(valid(SchemaVersion))); err == nil || !strings.Contains(err.Error(), "larger than 64 bytes") {
		t.Errorf("ReadJSON of an oversized document = %v, want a size error", err)
	}
}

// compileReportSchema compiles docs/report-schema.json from the repository.
func compileReportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join("..", "docs", "report-schema.json")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening the report schema: %v", err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("report-schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("report-schema.json")
	if err != nil {
		t.Fatalf("compiling %s: %v", path, err)
	}
	return sch
}

func instance(t *testing.T, b []byte) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJSONMatchesSchema(t *testing.T) {
	sch := compileReportSchema(t)
	merged, err := Merge(sampleReport(), (&Builder{}).Finish("remote", "registry.example/x:1", "v0"))
	if err != nil {
		t.Fatal(err)
	}
	reports := map[string]*Report{
		"sample":        sampleReport(),
		"empty":         (&Builder{}).Finish("tar", "", "dev"),
		"nil slices":    {SchemaVersion: SchemaVersion, Images: []Image{{Name: "x", Status: StatusOK}}, Summary: Summary{Verdict: VerdictOK}},
		"merged":        merged,
		"every finding": everyCheckReport(),
		"sharded":       sharded(),
		"analysed":      analysed(),
	}
	for name, r := range reports {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJSON(&buf, r); err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(instance(t, buf.Bytes())); err != nil {
				t.Errorf("WriteJSON output does not match docs/report-schema.json: %v\n%s", err, buf.Bytes())
			}
		})
	}
}

func sharded() *Report {
	r := sampleReport()
	r.Shard = &Shard{Index: 2, Count: 3, Inputs: 7}
	return r
}

func analysed() *Report {
	r := sampleReport()
	r.Images[0].Analysis = &ImageAnalysis{
		Layers: []LayerAnalysis{{Index: 0, Entries: 3, Regular: 2, Dirs: 1, Bytes: 30, CompressionRatio: 2.5, HiddenFiles: 1, HiddenBytes: 10,
			Largest: []FileSize{{Path: "a", Size: 20}, {Path: "b", Size: 10}}, Truncated: true, Partial: true}},
		Files: 2, Bytes: 30, WastedBytes: 20, Efficiency: 0.5, HiddenFiles: 1, HiddenBytes: 10,
		Inefficiencies: []PathWaste{{Path: "b", Layers: 2, Bytes: 20}}, Truncated: true, Partial: true,
	}
	return r
}

// everyCheckReport has one finding per catalog check with every subject
// field set, so the schema sees every field the structs can write.
func everyCheckReport() *Report {
	var b Builder
	b.AddImage(Image{Name: "i", Tags: []string{"i:1"}, Platform: "linux/amd64", IndexDigest: dg("x"), ManifestDigest: dg("m"),
		ManifestMediaType: "m", ConfigDigest: dg("c"), Layers: []Layer{{Index: 0, MediaType: "t", Digest: dg("l"), Size: 1,
			Compression: "gzip", DiffID: dg("d"), ChainID: dg("d"), TarSize: 1024, Entries: 1, Location: "l"}}})
	for _, ci := range Catalog() {
		b.Add(Finding{Check: ci.ID, Severity: ci.Severity, Message: ci.Title, Expected: "e", Actual: "a",
			Subject: Subject{Image: "i", Platform: "linux/amd64", Layer: LayerIndex(0), Digest: "not even a digest", Path: "p", Entry: "e"}})
	}
	b.Problem(Subject{Path: "p"}, "could not read")
	return b.Finish("tar", "s", "v")
}

// TestSchemaRejectsDrift shows the schema is strict enough to catch a writer
// that drifts from it.
func TestSchemaRejectsDrift(t *testing.T) {
	sch := compileReportSchema(t)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(m map[string]any){
		"unknown severity":   func(m map[string]any) { finding(m)["severity"] = "fatal" },
		"numeric severity":   func(m map[string]any) { finding(m)["severity"] = 2 },
		"other version":      func(m map[string]any) { m["schemaVersion"] = "layercheck.dev/report/v2" },
		"unknown top field":  func(m map[string]any) { m["extra"] = true },
		"unknown verdict":    func(m map[string]any) { m["summary"].(map[string]any)["verdict"] = "maybe" },
		"missing findings":   func(m map[string]any) { delete(m, "findings") },
		"null images":        func(m map[string]any) { m["images"] = nil },
		"bad layer digest":   func(m map[string]any) { layer(m)["digest"] = "abc" },
		"negative layer":     func(m map[string]any) { finding(m)["subject"].(map[string]any)["layer"] = -1 },
		"unknown status":     func(m map[string]any) { layer(m)["status"] = "broken" },
		"message not string": func(m map[string]any) { finding(m)["message"] = 1 },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			b, _ := json.Marshal(m)
			if err := sch.Validate(instance(t, b)); err == nil {
				t.Errorf("schema accepts a document with %s", name)
			}
		})
	}
}

func finding(m map[string]any) map[string]any {
	return m["findings"].([]any)[0].(map[string]any)
}

func layer(m map[string]any) map[string]any {
	return m["images"].([]any)[0].(map[string]any)["layers"].([]any)[0].(map[string]any)
}

// TestSchemaEnumsMatchCode keeps the schema's constants equal to the Go ones.
func TestSchemaEnumsMatchCode(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "report-schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties struct {
			SchemaVersion struct {
				Const string `json:"const"`
			} `json:"schemaVersion"`
		} `json:"properties"`
		Defs map[string]struct {
			Enum []string `json:"enum"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Properties.SchemaVersion.Const != SchemaVersion {
		t.Errorf("schema const schemaVersion = %q, code %q", s.Properties.SchemaVersion.Const, SchemaVersion)
	}
	want := map[string][]string{
		"severity": {Info.String(), Warning.String(), Error.String()},
		"status":   {string(StatusOK), string(StatusWarning), string(StatusFailed)},
		"verdict":  {string(VerdictOK), string(VerdictFailed), string(VerdictIncomplete)},
	}
	for def, w := range want {
		if got := s.Defs[def].Enum; !reflect.DeepEqual(got, w) {
			t.Errorf("schema $defs/%s enum = %v, code has %v", def, got, w)
		}
	}
}
