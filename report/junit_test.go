package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

func TestWriteJUnitGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.junit.golden", buf.Bytes())
}

// parsedJUnit is what the test reads back: a reader independent of the
// writer's structs.
type parsedJUnit struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Props    []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Type    string `xml:"type,attr"`
			} `xml:"error"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, data []byte) parsedJUnit {
	t.Helper()
	if !bytes.HasPrefix(data, []byte(xml.Header)) {
		t.Errorf("JUnit output lacks the XML declaration")
	}
	// A strict token pass first: every byte must be well-formed XML.
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("JUnit output is not well-formed XML: %v\n%s", err, data)
			}
			break
		}
	}
	var p parsedJUnit
	if err := xml.Unmarshal(data, &p); err != nil {
		t.Fatalf("JUnit output does not parse: %v", err)
	}
	return p
}

func TestWriteJUnitContent(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	p := parseJUnit(t, buf.Bytes())
	var names []string
	for _, s := range p.Suites {
		names = append(names, s.Name)
	}
	wantNames := appImage + " linux/amd64|" + baseImage + " linux/arm64/v8|source images/app.tar|problems"
	if got := strings.Join(names, "|"); got != wantNames {
		t.Fatalf("suites = %s, want %s", got, wantNames)
	}
	imageChecks := 0
	for _, ci := range Catalog() {
		if imageCheck(ci.ID) {
			imageChecks++
		}
	}
	app, base, source, problems := p.Suites[0], p.Suites[1], p.Suites[2], p.Suites[3]
	if app.Tests != imageChecks || len(app.Cases) != imageChecks || app.Failures != 1 {
		t.Errorf("app suite: tests %d, cases %d, failures %d; want %d, %d, 1", app.Tests, len(app.Cases), app.Failures, imageChecks, imageChecks)
	}
	if base.Failures != 0 || base.Tests != imageChecks {
		t.Errorf("base suite: tests %d failures %d, want %d, 0", base.Tests, base.Failures, imageChecks)
	}
	for _, c := range app.Cases {
		switch c.Name {
		case string(LayerDigest):
			if c.Failure == nil || c.Failure.Type != string(LayerDigest) {
				t.Fatalf("layer-digest case: failure = %+v", c.Failure)
			}
			for _, s := range []string{"expected: " + dg("app layer 1"), "actual:   " + dg("app layer 1 as stored")} {
				if !strings.Contains(c.Failure.Text, s) {
					t.Errorf("failure text lacks %q:\n%s", s, c.Failure.Text)
				}
			}
		case string(LayerTrailing):
			if c.Failure != nil || !strings.Contains(c.SystemOut, "WARNING") || !strings.Contains(c.SystemOut, "1024 bytes") {
				t.Errorf("warning case: failure %+v, system-out %q; want passed with the warning in system-out", c.Failure, c.SystemOut)
			}
		default:
			if c.Failure != nil {
				t.Errorf("case %s failed: %+v", c.Name, c.Failure)
			}
		}
	}
	var appProps []string
	for _, pr := range app.Props {
		appProps = append(appProps, pr.Name+"="+pr.Value)
	}
	if !strings.Contains(strings.Join(appProps, " "), "configDigest="+dg("app config")) {
		t.Errorf("app properties = %v, want the config digest", appProps)
	}
	if len(source.Cases) != 1 || source.Cases[0].Name != string(BlobUnreferenced) || source.Failures != 0 {
		t.Errorf("source suite = %+v, want one passed blob-unreferenced case", source)
	}
	if problems.Errors != 1 || len(problems.Cases) != 1 || problems.Cases[0].Error == nil ||
		!strings.Contains(problems.Cases[0].Error.Message, "unexpected EOF") {
		t.Errorf("problems suite = %+v", problems)
	}
	if p.Tests != 2*imageChecks+2 || p.Failures != 1 || p.Errors != 1 {
		t.Errorf("totals: tests %d failures %d errors %d; want %d, 1, 1", p.Tests, p.Failures, p.Errors, 2*imageChecks+2)
	}
}

func TestWriteJUnitHostileText(t *testing.T) {
	r := &Report{
		Images: []Image{{Name: `a"<b>&'`, Layers: []Layer{{Index: 0}}}},
		Findings: []Finding{{
			Check: LayerDuplicate, Severity: Error, Subject: Subject{Image: `a"<b>&'`, Layer: LayerIndex(0), Entry: "x\x00y"},
			Message: "bad\x01entry ]]> </failure> \xff", Expected: "\x1b[31m",
		}},
		Problems: []Problem{{Message: "nul\x00 byte"}},
	}
	r.Normalize()
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, r); err != nil {
		t.Fatal(err)
	}
	p := parseJUnit(t, buf.Bytes())
	if p.Suites[0].Name != `a"<b>&'` || p.Failures != 1 {
		t.Errorf("hostile names did not survive: %+v", p.Suites[0])
	}
}
