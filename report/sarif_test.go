package report

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

func TestWriteSARIFGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.sarif.golden", buf.Bytes())
}

// checkSARIF is a structural check of a SARIF log against the parts of the
// SARIF 2.1.0 specification (OASIS) and of GitHub code scanning's upload
// rules that layercheck's output uses. The official JSON schema
// (sarif-schema-2.1.0.json) is not available offline and tests must not
// fetch it, so this encodes its requirements by hand: version "2.1.0", a
// $schema naming the 2.1.0 schema, runs[].tool.driver.name, rules with id,
// shortDescription, fullDescription, help.text and a valid default level
// (GitHub's GH2012), results with message.text, a ruleId present in the
// rules and a matching ruleIndex, a valid level, non-empty locations with
// artifactLocation.uri (a relative reference or a file URI) and
// region.startLine (GH1003, GH1005), and partialFingerprints (GH1015).
func checkSARIF(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var log map[string]any
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatalf("SARIF is not JSON: %v", err)
	}
	errorf := func(format string, args ...any) { t.Helper(); t.Errorf("SARIF: "+format, args...) }
	if log["version"] != "2.1.0" {
		errorf("version = %v, want 2.1.0", log["version"])
	}
	if s, _ := log["$schema"].(string); !strings.HasSuffix(s, "2.1.0.json") {
		errorf("$schema = %q, want the SARIF 2.1.0 schema", s)
	}
	runs, _ := log["runs"].([]any)
	if len(runs) != 1 {
		t.Fatalf("SARIF: %d runs, want 1", len(runs))
	}
	run := runs[0].(map[string]any)
	driver, _ := run["tool"].(map[string]any)["driver"].(map[string]any)
	if name, _ := driver["name"].(string); name == "" {
		errorf("runs[0].tool.driver.name missing")
	}
	levels := map[string]bool{"none": true, "note": true, "warning": true, "error": true}
	rules, ok := driver["rules"].([]any)
	if !ok {
		errorf("runs[0].tool.driver.rules missing")
	}
	ruleIDs := map[string]int{}
	for i, x := range rules {
		rule := x.(map[string]any)
		id, _ := rule["id"].(string)
		if id == "" {
			errorf("rules[%d].id missing", i)
		}
		if _, dup := ruleIDs[id]; dup {
			errorf("rule %s listed twice", id)
		}
		ruleIDs[id] = i
		for _, field := range []string{"shortDescription", "fullDescription", "help"} {
			if m, _ := rule[field].(map[string]any); m == nil || m["text"] == "" || m["text"] == nil {
				errorf("rule %s: %s.text missing", id, field)
			}
		}
		if lvl, _ := rule["defaultConfiguration"].(map[string]any)["level"].(string); !levels[lvl] {
			errorf("rule %s: defaultConfiguration.level %q", id, lvl)
		}
	}
	results, ok := run["results"].([]any)
	if !ok {
		errorf("runs[0].results missing (an empty run needs [])")
	}
	for i, x := range results {
		res := x.(map[string]any)
		if text, _ := res["message"].(map[string]any)["text"].(string); strings.TrimSpace(text) == "" {
			errorf("results[%d].message.text missing", i)
		}
		id, _ := res["ruleId"].(string)
		idx, known := ruleIDs[id]
		if !known {
			errorf("results[%d].ruleId %q is not a rule", i, id)
		}
		if ri, ok := res["ruleIndex"].(float64); ok && int(ri) != idx {
			errorf("results[%d].ruleIndex %v, rule %s is at %d", i, ri, id, idx)
		}
		if lvl, _ := res["level"].(string); !levels[lvl] {
			errorf("results[%d].level %q", i, lvl)
		}
		if fp, _ := res["partialFingerprints"].(map[string]any); len(fp) == 0 {
			errorf("results[%d].partialFingerprints missing", i)
		}
		locs, _ := res["locations"].([]any)
		if len(locs) == 0 {
			errorf("results[%d].locations empty", i)
		}
		for _, l := range locs {
			pl, _ := l.(map[string]any)["physicalLocation"].(map[string]any)
			if pl == nil {
				errorf("results[%d]: location without physicalLocation", i)
				continue
			}
			uri, _ := pl["artifactLocation"].(map[string]any)["uri"].(string)
			u, err := url.Parse(uri)
			if uri == "" || err != nil || (u.IsAbs() && u.Scheme != "file") {
				errorf("results[%d]: artifactLocation.uri %q is not a relative reference or file URI (%v)", i, uri, err)
			}
			if line, _ := pl["region"].(map[string]any)["startLine"].(float64); line < 1 {
				errorf("results[%d]: region.startLine missing", i)
			}
		}
	}
	for _, x := range run["invocations"].([]any) {
		inv := x.(map[string]any)
		if _, ok := inv["executionSuccessful"].(bool); !ok {
			errorf("invocation without executionSuccessful")
		}
	}
	return log
}

func TestWriteSARIFStructure(t *testing.T) {
	for name, r := range map[string]*Report{
		"sample":        sampleReport(),
		"every check":   everyCheckReport(),
		"empty":         (&Builder{}).Finish("remote", "registry.example/app:1", "dev"),
		"no source":     {Findings: []Finding{{Check: LayerDigest, Severity: Error, Subject: Subject{Image: "alpine:3.19"}, Message: "m"}}},
		"unknown check": {Source: "x.tar", Findings: []Finding{{Check: "hoststore-orphan", Severity: Warning, Message: "m"}}},
	} {
		t.Run(name, func(t *testing.T) {
			r.Normalize()
			var buf bytes.Buffer
			if err := WriteSARIF(&buf, r); err != nil {
				t.Fatal(err)
			}
			checkSARIF(t, buf.Bytes())
		})
	}
}

func TestWriteSARIFContent(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSARIF(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	log := checkSARIF(t, buf.Bytes())
	run := log["runs"].([]any)[0].(map[string]any)
	driver := run["tool"].(map[string]any)["driver"].(map[string]any)
	if got, want := len(driver["rules"].([]any)), len(Catalog()); got != want {
		t.Errorf("%d rules, want one per catalog check (%d)", got, want)
	}
	if driver["version"] != "v0.1.0-test" {
		t.Errorf("driver.version = %v", driver["version"])
	}
	results := run["results"].([]any)
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	levels := map[string]string{}
	var digestResult map[string]any
	for _, x := range results {
		res := x.(map[string]any)
		levels[res["ruleId"].(string)] = res["level"].(string)
		if res["ruleId"] == string(LayerDigest) {
			digestResult = res
		}
	}
	want := map[string]string{string(LayerDigest): "error", string(LayerTrailing): "warning", string(BlobUnreferenced): "note"}
	for id, lvl := range want {
		if levels[id] != lvl {
			t.Errorf("level of %s = %q, want %q", id, levels[id], lvl)
		}
	}
	text := digestResult["message"].(map[string]any)["text"].(string)
	for _, s := range []string{"expected " + dg("app layer 1"), "actual " + dg("app layer 1 as stored"), appImage, "layer 1"} {
		if !strings.Contains(text, s) {
			t.Errorf("layer-digest message %q lacks %q", text, s)
		}
	}
	loc := digestResult["locations"].([]any)[0].(map[string]any)
	if uri := loc["physicalLocation"].(map[string]any)["artifactLocation"].(map[string]any)["uri"]; uri != "blobs/sha256/"+dg("app layer 1")[7:] {
		t.Errorf("uri = %v, want the finding's path", uri)
	}
	var kinds []string
	for _, l := range loc["logicalLocations"].([]any) {
		kinds = append(kinds, l.(map[string]any)["kind"].(string))
	}
	if strings.Join(kinds, ",") != "image,platform,layer" {
		t.Errorf("logical location kinds = %v", kinds)
	}
	// A finding without a path points at the report's source.
	for _, x := range results {
		res := x.(map[string]any)
		if res["ruleId"] == string(LayerTrailing) {
			uri := res["locations"].([]any)[0].(map[string]any)["physicalLocation"].(map[string]any)["artifactLocation"].(map[string]any)["uri"]
			if uri != "images/app.tar" {
				t.Errorf("uri without a subject path = %v, want the source", uri)
			}
		}
	}
	// The problem is a tool execution notification and the run is not successful.
	inv := run["invocations"].([]any)[0].(map[string]any)
	if inv["executionSuccessful"] != false || len(inv["toolExecutionNotifications"].([]any)) != 1 {
		t.Errorf("invocation = %v, want executionSuccessful false and one notification", inv)
	}
}

func TestSARIFFingerprints(t *testing.T) {
	f := Finding{Check: LayerDigest, Severity: Error, Subject: Subject{Image: "a", Layer: LayerIndex(1), Digest: dg("x")}, Actual: "one"}
	g := f
	g.Actual, g.Message = "two", "reworded" // same problem, other measurement: same alert
	if fingerprint(f) != fingerprint(g) {
		t.Error("fingerprint depends on the message or measured value")
	}
	for name, h := range map[string]Finding{
		"layer": {Check: f.Check, Subject: Subject{Image: "a", Layer: LayerIndex(2), Digest: dg("x")}},
		"check": {Check: LayerSize, Subject: f.Subject},
		"image": {Check: f.Check, Subject: Subject{Image: "b", Layer: LayerIndex(1), Digest: dg("x")}},
		"shift": {Check: f.Check, Subject: Subject{Image: "a", Platform: "1", Digest: dg("x")}},
	} {
		if fingerprint(h) == fingerprint(f) {
			t.Errorf("fingerprint ignores the %s", name)
		}
	}
}

func TestArtifactURI(t *testing.T) {
	for in, want := range map[string]string{
		"images/app.tar":                "images/app.tar",
		"alpine:3.19":                   "./alpine:3.19",
		"docker.io/library/alpine:3.19": "docker.io/library/alpine:3.19",
		"my images/a b.tar":             "my%20images/a%20b.tar",
		"/var/lib/docker":               "file:///var/lib/docker",
		`dir\app.tar`:                   "dir/app.tar",
	} {
		got := artifactURI(in)
		if got != want {
			t.Errorf("artifactURI(%q) = %q, want %q", in, got, want)
		}
		if u, err := url.Parse(got); err != nil || (u.IsAbs() && u.Scheme != "file") {
			t.Errorf("artifactURI(%q) = %q parses as %v, %v", in, got, u, err)
		}
	}
}
