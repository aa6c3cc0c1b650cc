package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
)

// SARIF constants. The $schema URI is the one GitHub code scanning and CodeQL
// use; validators accept any URI ending in "2.1.0.json".
const (
	sarifSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	sarifVersion = "2.1.0"
	// sarifFingerprintKey names layercheck's partialFingerprints entry. The
	// "/v1" suffix changes if the fingerprint's inputs ever change.
	sarifFingerprintKey = "layercheckFinding/v1"
)

// WriteSARIF writes r as a SARIF 2.1.0 log for GitHub code scanning and other
// SARIF consumers: one run whose driver lists every check in the catalog as a
// rule, one result per finding, and the problems (what could not be checked)
// as tool execution notifications. r should be normalized.
//
// Each result's physical location is the finding's Subject.Path, else the
// report's Source, with a placeholder region (line 1: GitHub requires a
// region, and the artifacts are binary). Logical locations name the image,
// platform, layer and tar entry. partialFingerprints hash the check ID and the
// subject, so the same problem keeps its alert across runs.
func WriteSARIF(w io.Writer, r *Report) error {
	rules, index := sarifRules(r.Findings)
	results := make([]sarifResult, 0, len(r.Findings))
	for _, f := range r.Findings {
		results = append(results, sarifResultOf(r, f, index[f.Check]))
	}
	inv := sarifInvocation{ExecutionSuccessful: len(r.Problems) == 0}
	for _, p := range r.Problems {
		n := sarifNotification{Level: "error", Message: sarifMessage{Text: problemText(p)}}
		if loc, ok := sarifLocationOf(r, p.Subject); ok {
			n.Locations = []sarifLocation{loc}
		}
		inv.Notifications = append(inv.Notifications, n)
	}
	name := r.Tool.Name
	if name == "" {
		name = "layercheck"
	}
	log := sarifLog{
		Schema:  sarifSchema,
		Version: sarifVersion,
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name:    name,
				Version: r.Tool.Version,
				Rules:   rules,
			}},
			Invocations: []sarifInvocation{inv},
			Results:     results,
			Properties: map[string]any{
				"command": r.Command,
				"source":  r.Source,
				"verdict": verdictOf(r.Summary),
				"summary": r.Summary,
			},
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("writing SARIF report: %w", err)
	}
	return nil
}

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
	Properties  map[string]any    `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name    string      `json:"name"`
	Version string      `json:"version,omitempty"`
	Rules   []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string             `json:"id"`
	Name                 string             `json:"name"`
	ShortDescription     sarifMessage       `json:"shortDescription"`
	FullDescription      sarifMessage       `json:"fullDescription"`
	Help                 sarifMessage       `json:"help"`
	DefaultConfiguration sarifConfiguration `json:"defaultConfiguration"`
	Properties           sarifRuleProps     `json:"properties"`
}

type sarifRuleProps struct {
	Tags      []string `json:"tags"`
	Precision string   `json:"precision"`
}

type sarifConfiguration struct {
	Level string `json:"level"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifMessage    `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifMessage      `json:"message"`
	Locations           []sarifLocation   `json:"locations,omitempty"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          sarifResultProps  `json:"properties"`
}

type sarifResultProps struct {
	Subject  Subject `json:"subject"`
	Expected string  `json:"expected,omitempty"`
	Actual   string  `json:"actual,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
	Region           sarifRegion           `json:"region"`
}

type sarifArtifactLocation struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogicalLocation struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// sarifRules returns one rule per catalog check, then one per check the
// findings use that the catalog lacks (a package forgot to Register it), and
// the index of each rule by check ID.
func sarifRules(findings []Finding) ([]sarifRule, map[Check]int) {
	infos := Catalog()
	seen := map[Check]bool{}
	for _, ci := range infos {
		seen[ci.ID] = true
	}
	var extra []CheckInfo
	for _, f := range findings {
		if !seen[f.Check] {
			seen[f.Check] = true
			extra = append(extra, CheckInfo{ID: f.Check, Severity: f.Severity, Title: "check " + string(f.Check)})
		}
	}
	sortChecks(extra)
	infos = append(infos, extra...)

	rules := make([]sarifRule, len(infos))
	index := make(map[Check]int, len(infos))
	for i, ci := range infos {
		index[ci.ID] = i
		rules[i] = sarifRule{
			ID:               string(ci.ID),
			Name:             ruleName(ci.ID),
			ShortDescription: sarifMessage{Text: ci.Title},
			FullDescription:  sarifMessage{Text: fmt.Sprintf("layercheck check %s: %s.", ci.ID, ci.Title)},
			Help: sarifMessage{Text: fmt.Sprintf("%s.\n\nA result of check %s means this did not hold for the named "+
				"image, platform, layer or entry; the message gives the expected and the actual value. "+
				"Findings of this check are %s by default. The check catalog is documented in docs/checks.md "+
				"of the layercheck repository.", upperFirst(ci.Title), ci.ID, article(ci.Severity))},
			DefaultConfiguration: sarifConfiguration{Level: sarifLevel(ci.Severity)},
			Properties:           sarifRuleProps{Tags: ruleTags(ci.ID), Precision: "very-high"},
		}
	}
	return rules, index
}

func article(s Severity) string {
	if s == Error || s == Info {
		return "an " + s.String()
	}
	return "a " + s.String()
}

// ruleName turns "layer-diffid" into "LayerDiffid", SARIF's recommended form.
func ruleName(c Check) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(string(c), func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		b.WriteString(upperFirst(part))
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func ruleTags(c Check) []string {
	tags := []string{"container-image", "integrity"}
	if kind, _, ok := strings.Cut(string(c), "-"); ok {
		tags = append(tags, kind)
	}
	return tags
}

func sarifLevel(s Severity) string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "note"
}

func sarifResultOf(r *Report, f Finding, ruleIndex int) sarifResult {
	res := sarifResult{
		RuleID:              string(f.Check),
		RuleIndex:           ruleIndex,
		Level:               sarifLevel(f.Severity),
		Message:             sarifMessage{Text: findingText(f)},
		PartialFingerprints: map[string]string{sarifFingerprintKey: fingerprint(f)},
		Properties:          sarifResultProps{Subject: f.Subject, Expected: f.Expected, Actual: f.Actual},
	}
	if loc, ok := sarifLocationOf(r, f.Subject); ok {
		res.Locations = []sarifLocation{loc}
	}
	return res
}

// findingText is a finding as one sentence: subject, message, expected, actual.
func findingText(f Finding) string {
	var b strings.Builder
	if s := f.Subject.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	b.WriteString(f.Message)
	switch {
	case f.Expected != "" && f.Actual != "":
		fmt.Fprintf(&b, " (expected %s, actual %s)", f.Expected, f.Actual)
	case f.Expected != "":
		fmt.Fprintf(&b, " (expected %s)", f.Expected)
	case f.Actual != "":
		fmt.Fprintf(&b, " (actual %s)", f.Actual)
	}
	if b.Len() == 0 {
		return string(f.Check)
	}
	return b.String()
}

func problemText(p Problem) string {
	if s := p.Subject.String(); s != "" {
		return s + ": " + p.Message
	}
	if p.Message == "" {
		return "could not check"
	}
	return p.Message
}

// fingerprint hashes what identifies a finding across runs: the check and the
// whole subject, not the message or the measured values.
func fingerprint(f Finding) string {
	h := sha256.New()
	layer := ""
	if f.Subject.Layer != nil {
		layer = strconv.Itoa(*f.Subject.Layer)
	}
	for _, s := range []string{string(f.Check), f.Subject.Image, f.Subject.Platform, layer, f.Subject.Digest, f.Subject.Path, f.Subject.Entry} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sarifLocationOf builds the location of a subject; ok is false when there is
// nothing to name.
func sarifLocationOf(r *Report, s Subject) (sarifLocation, bool) {
	var loc sarifLocation
	where := s.Path
	if where == "" {
		where = r.Source
	}
	if where == "" {
		where = s.Image
	}
	if where != "" {
		loc.PhysicalLocation = &sarifPhysicalLocation{
			ArtifactLocation: sarifArtifactLocation{URI: artifactURI(where)},
			Region:           sarifRegion{StartLine: 1},
		}
	}
	var fq []string
	add := func(kind, name string) {
		fq = append(fq, name)
		loc.LogicalLocations = append(loc.LogicalLocations, sarifLogicalLocation{
			Name: name, FullyQualifiedName: strings.Join(fq, " "), Kind: kind,
		})
	}
	if s.Image != "" {
		add("image", s.Image)
	}
	if s.Platform != "" {
		add("platform", s.Platform)
	}
	if s.Layer != nil {
		name := "layer " + strconv.Itoa(*s.Layer)
		if s.Digest != "" {
			name += " " + s.Digest
		}
		add("layer", name)
	} else if s.Digest != "" {
		add("blob", s.Digest)
	}
	if s.Entry != "" {
		add("entry", s.Entry)
	}
	return loc, loc.PhysicalLocation != nil || len(loc.LogicalLocations) > 0
}

// artifactURI turns a file path or an image reference into a relative URI
// reference (RFC 3986): characters outside the path grammar are
// percent-encoded and a colon in the first segment ("alpine:3.19") gets a "./"
// prefix so it is not read as a scheme. Absolute local paths become file URIs,
// the only absolute form GitHub code scanning displays.
func artifactURI(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	if strings.HasPrefix(p, "/") {
		return (&url.URL{Scheme: "file", Path: p}).String()
	}
	return (&url.URL{Path: p}).String()
}
