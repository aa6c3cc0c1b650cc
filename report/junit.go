package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteJUnit writes r as JUnit XML for CI test dashboards.
//
// Every image (one platform) is a <testsuite> named "<image> <platform>" with
// one <testcase> per check that applies to an image: every catalog check of
// the manifest, index, config and layer families, plus any other check with a
// finding for the image. A check fails (<failure type="check-id">) when it
// produced error findings; its warnings and infos go to <system-out>. Findings
// that name no listed image form a suite named after the source. Problems
// (what could not be checked) form a "problems" suite, one <error> each.
// r should be normalized.
func WriteJUnit(w io.Writer, r *Report) error {
	byImage, other := groupFindings(r)
	root := junitSuites{Name: "layercheck"}
	for _, img := range r.Images {
		name := strings.TrimSpace(img.Name + " " + img.Platform)
		s := junitSuiteOf(name, byImage[imageKey{img.Name, img.Platform}], true)
		s.Properties = junitProps(
			"image", img.Name, "platform", img.Platform, "indexDigest", img.IndexDigest,
			"manifestDigest", img.ManifestDigest, "configDigest", img.ConfigDigest, "status", string(img.Status))
		root.add(s)
	}
	if len(other) > 0 {
		name := "source"
		if r.Source != "" {
			name = "source " + r.Source
		}
		root.add(junitSuiteOf(name, other, false))
	}
	if len(r.Problems) > 0 {
		s := junitSuite{Name: "problems"}
		for i, p := range r.Problems {
			name := p.Subject.String()
			if name == "" {
				name = fmt.Sprintf("problem %d", i+1)
			}
			s.Cases = append(s.Cases, junitCase{
				Name:      name,
				Classname: "problems",
				Error:     &junitFailure{Message: p.Message, Type: "could-not-check", Text: problemText(p)},
			})
			s.Tests++
			s.Errors++
		}
		root.add(s)
	}

	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("writing JUnit report: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(root); err != nil {
		return fmt.Errorf("writing JUnit report: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("writing JUnit report: %w", err)
	}
	return nil
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

func (s *junitSuites) add(suite junitSuite) {
	s.Suites = append(s.Suites, suite)
	s.Tests += suite.Tests
	s.Failures += suite.Failures
	s.Errors += suite.Errors
}

type junitSuite struct {
	Name       string           `xml:"name,attr"`
	Tests      int              `xml:"tests,attr"`
	Failures   int              `xml:"failures,attr"`
	Errors     int              `xml:"errors,attr"`
	Skipped    int              `xml:"skipped,attr"`
	Properties *junitProperties `xml:"properties,omitempty"`
	Cases      []junitCase      `xml:"testcase"`
}

type junitProperties struct {
	Props []junitProperty `xml:"property"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// junitProps builds <properties> from name, value pairs, leaving out empty values.
func junitProps(kv ...string) *junitProperties {
	p := &junitProperties{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			p.Props = append(p.Props, junitProperty{Name: kv[i], Value: kv[i+1]})
		}
	}
	return p
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// imageCheck reports whether a check is about one image rather than the
// source as a whole (archive members, stray blobs) or a host store.
func imageCheck(c Check) bool {
	for _, p := range []string{"manifest-", "index-", "config-", "layer-"} {
		if strings.HasPrefix(string(c), p) {
			return true
		}
	}
	return false
}

// junitSuiteOf builds a suite from the findings of one image (allImageChecks:
// list every image check, passed or not) or of the source.
func junitSuiteOf(name string, fs []Finding, allImageChecks bool) junitSuite {
	byCheck := map[Check][]Finding{}
	var checks []Check
	if allImageChecks {
		for _, ci := range Catalog() {
			if imageCheck(ci.ID) {
				byCheck[ci.ID] = nil
				checks = append(checks, ci.ID)
			}
		}
	}
	for _, f := range fs {
		if _, ok := byCheck[f.Check]; !ok {
			checks = append(checks, f.Check)
		}
		byCheck[f.Check] = append(byCheck[f.Check], f)
	}
	sort.Slice(checks, func(i, j int) bool { return checks[i] < checks[j] })

	s := junitSuite{Name: name}
	for _, c := range checks {
		tc := junitCase{Name: string(c), Classname: name}
		var failed []Finding
		var out strings.Builder
		for _, f := range byCheck[c] {
			if f.Severity == Error {
				failed = append(failed, f)
			} else {
				out.WriteString(findingBlock(f))
			}
		}
		if len(failed) > 0 {
			msg := failed[0].Message
			if len(failed) > 1 {
				msg = fmt.Sprintf("%s (and %d more)", msg, len(failed)-1)
			}
			var text strings.Builder
			for _, f := range failed {
				text.WriteString(findingBlock(f))
			}
			tc.Failure = &junitFailure{Message: msg, Type: string(c), Text: text.String()}
			s.Failures++
		}
		tc.SystemOut = out.String()
		s.Cases = append(s.Cases, tc)
		s.Tests++
	}
	return s
}

// findingBlock renders a finding for a failure body or system-out, with full
// expected and actual values.
func findingBlock(f Finding) string {
	var b strings.Builder
	subj := f.Subject.String()
	if subj == "" {
		subj = "source"
	}
	fmt.Fprintf(&b, "%s %s: %s\n", strings.ToUpper(f.Severity.String()), subj, f.Message)
	if f.Expected != "" {
		fmt.Fprintf(&b, "  expected: %s\n", f.Expected)
	}
	if f.Actual != "" {
		fmt.Fprintf(&b, "  actual:   %s\n", f.Actual)
	}
	return b.String()
}
