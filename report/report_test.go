package report

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// dg returns a deterministic digest for a label.
func dg(label string) string {
	sum := sha256.Sum256([]byte(label))
	return "sha256:" + hex.EncodeToString(sum[:])
}

const (
	appImage  = "example.com/app:1.0"
	baseImage = "example.com/base:3.19"
)

// sampleReport is the fixed report of the golden files: example.com/app:1.0
// fails (layer 1's stored bytes hash to another digest) and has a warning on
// layer 0; example.com/base:3.19 is ok; an unreferenced blob is an info that
// names no image; the arm64 variant of app could not be read (a problem).
func sampleReport() *Report {
	var b Builder
	// Added out of order on purpose: Finish must sort.
	b.AddImage(Image{
		Name:              baseImage,
		Platform:          "linux/arm64/v8",
		ManifestDigest:    dg("base manifest"),
		ManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
		ConfigDigest:      dg("base config"),
		Layers: []Layer{{
			Index: 0, MediaType: "application/vnd.oci.image.layer.v1.tar+zstd", Digest: dg("base layer 0"),
			Size: 3_409_121, Compression: "zstd", DiffID: dg("base diff 0"), ChainID: dg("base diff 0"),
			TarSize: 8_912_896, Entries: 527, Location: "blobs/sha256/" + dg("base layer 0")[7:],
		}},
	})
	b.AddImage(Image{
		Name:              appImage,
		Tags:              []string{appImage, "example.com/app:latest"},
		Platform:          "linux/amd64",
		IndexDigest:       dg("app index"),
		ManifestDigest:    dg("app manifest"),
		ManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
		ConfigDigest:      dg("app config"),
		Layers: []Layer{
			{
				Index: 0, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: dg("app layer 0"),
				Size: 2_818_370, Compression: "gzip", DiffID: dg("app diff 0"), ChainID: dg("app diff 0"),
				TarSize: 7_377_920, Entries: 480, Location: "blobs/sha256/" + dg("app layer 0")[7:],
			},
			{
				Index: 1, MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: dg("app layer 1 as stored"),
				Size: 812, Compression: "gzip", DiffID: dg("app diff 1"), ChainID: dg("app chain 1"),
				TarSize: 3072, Entries: 2, Location: "blobs/sha256/" + dg("app layer 1")[7:],
			},
		},
	})
	b.Add(Finding{
		Check: BlobUnreferenced, Severity: Info,
		Subject: Subject{Digest: dg("stray blob"), Path: "blobs/sha256/" + dg("stray blob")[7:]},
		Message: "blob is referenced by no manifest",
	})
	b.Add(Finding{
		Check: LayerDigest, Severity: Error,
		Subject: Subject{Image: appImage, Platform: "linux/amd64", Layer: LayerIndex(1), Digest: dg("app layer 1"),
			Path: "blobs/sha256/" + dg("app layer 1")[7:]},
		Message:  "stored layer bytes do not hash to the descriptor digest",
		Expected: dg("app layer 1"),
		Actual:   dg("app layer 1 as stored"),
	})
	b.Add(Finding{
		Check: LayerTrailing, Severity: Warning,
		Subject: Subject{Image: appImage, Platform: "linux/amd64", Layer: LayerIndex(0), Digest: dg("app layer 0")},
		Message: "non-zero bytes after the tar end-of-archive marker", Expected: "0 bytes", Actual: "1024 bytes",
	})
	b.Problem(Subject{Image: appImage, Platform: "linux/arm64"}, "reading manifest %s: unexpected EOF", dg("app arm64 manifest"))
	return b.Finish("tar", "images/app.tar", "v0.1.0-test")
}

// golden compares got with testdata/name, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (rerun with -update if the change is intended)\n--- got:\n%s\n--- want:\n%s", path, got, want)
	}
}

func TestNormalizeStatuses(t *testing.T) {
	r := sampleReport()
	app, base := r.Images[0], r.Images[1]
	if app.Name != appImage || base.Name != baseImage {
		t.Fatalf("images = %s, %s; want %s first, sorted by name", app.Name, base.Name, appImage)
	}
	if app.Status != StatusFailed {
		t.Errorf("app status = %s, want failed", app.Status)
	}
	if got := app.Layers[0].Status; got != StatusWarning {
		t.Errorf("app layer 0 status = %s, want warning", got)
	}
	if got := app.Layers[1].Status; got != StatusFailed {
		t.Errorf("app layer 1 status = %s, want failed", got)
	}
	if base.Status != StatusOK || base.Layers[0].Status != StatusOK {
		t.Errorf("base status = %s, layer %s; want ok, ok", base.Status, base.Layers[0].Status)
	}

	// An image-level error (no layer) fails the image but none of its layers;
	// a finding for the same name on another platform touches neither.
	r.Findings = append(r.Findings,
		Finding{Check: ConfigDigest, Severity: Error, Subject: Subject{Image: baseImage, Platform: "linux/arm64/v8"}},
		Finding{Check: LayerDiffID, Severity: Error, Subject: Subject{Image: appImage, Platform: "linux/386", Layer: LayerIndex(0)}},
	)
	r.Normalize()
	base = r.Images[1]
	if base.Status != StatusFailed || base.Layers[0].Status != StatusOK {
		t.Errorf("after image-level error: base status = %s, layer %s; want failed, ok", base.Status, base.Layers[0].Status)
	}
	if got := r.Images[0].Layers[0].Status; got != StatusWarning {
		t.Errorf("a linux/386 finding changed linux/amd64 layer 0 to %s", got)
	}
}

func TestNormalizeSummaryAndVerdict(t *testing.T) {
	r := sampleReport()
	want := Summary{Images: 2, Layers: 3, BytesRead: 2_818_370 + 812 + 3_409_121, Errors: 1, Warnings: 1, Infos: 1, Problems: 1, Verdict: VerdictFailed}
	if r.Summary != want {
		t.Errorf("Summary = %+v, want %+v", r.Summary, want)
	}

	tests := []struct {
		name     string
		findings []Finding
		problems []Problem
		want     Verdict
	}{
		{"nothing", nil, nil, VerdictOK},
		{"warnings and infos only", []Finding{{Check: LayerTrailing, Severity: Warning}, {Check: Artifact, Severity: Info}}, nil, VerdictOK},
		{"a problem", nil, []Problem{{Message: "x"}}, VerdictIncomplete},
		{"a problem and a warning", []Finding{{Check: LayerTrailing, Severity: Warning}}, []Problem{{Message: "x"}}, VerdictIncomplete},
		{"an error beats a problem", []Finding{{Check: LayerDigest, Severity: Error}}, []Problem{{Message: "x"}}, VerdictFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Findings: tt.findings, Problems: tt.problems}
			r.Normalize()
			if r.Summary.Verdict != tt.want {
				t.Errorf("Verdict = %s, want %s", r.Summary.Verdict, tt.want)
			}
			if r.Summary.Problems != len(tt.problems) {
				t.Errorf("Problems = %d, want %d", r.Summary.Problems, len(tt.problems))
			}
		})
	}
}

func TestNormalizeOrder(t *testing.T) {
	s := func(img, plat string, layer int) Subject {
		sub := Subject{Image: img, Platform: plat}
		if layer >= 0 {
			sub.Layer = LayerIndex(layer)
		}
		return sub
	}
	want := []Finding{
		{Check: BlobDigest, Severity: Error, Subject: s("", "", -1), Message: "source-level first"},
		{Check: ConfigDigest, Severity: Error, Subject: s("a", "linux/amd64", -1)},
		{Check: LayerDigest, Severity: Error, Subject: s("a", "linux/amd64", 0)},
		{Check: LayerSize, Severity: Error, Subject: s("a", "linux/amd64", 0)},
		{Check: LayerTrailing, Severity: Warning, Subject: s("a", "linux/amd64", 0)},
		{Check: LayerDuplicate, Severity: Error, Subject: Subject{Image: "a", Platform: "linux/amd64", Layer: LayerIndex(1), Entry: "etc/a"}},
		{Check: LayerDuplicate, Severity: Error, Subject: Subject{Image: "a", Platform: "linux/amd64", Layer: LayerIndex(1), Entry: "etc/b"}},
		{Check: LayerDigest, Severity: Error, Subject: s("a", "linux/arm64", 0)},
		{Check: LayerDigest, Severity: Error, Subject: s("b", "linux/amd64", 0)},
	}
	r := &Report{
		Images: []Image{{Name: "b", Platform: "linux/amd64"}, {Name: "a", Platform: "linux/arm64"}, {Name: "a", Platform: "linux/amd64"}},
		Problems: []Problem{
			{Subject: Subject{Image: "b"}, Message: "z"},
			{Subject: Subject{Image: "a"}, Message: "y"},
		},
	}
	for i := len(want) - 1; i >= 0; i-- { // reversed input
		r.Findings = append(r.Findings, want[i])
	}
	r.Normalize()
	if !reflect.DeepEqual(r.Findings, want) {
		t.Errorf("findings order:\n got %s\nwant %s", checksOf(r.Findings), checksOf(want))
	}
	var imgs []string
	for _, img := range r.Images {
		imgs = append(imgs, img.Name+" "+img.Platform)
	}
	if got := strings.Join(imgs, ", "); got != "a linux/amd64, a linux/arm64, b linux/amd64" {
		t.Errorf("images order = %s", got)
	}
	if r.Problems[0].Message != "y" {
		t.Errorf("problems not sorted by subject: %+v", r.Problems)
	}
}

func checksOf(fs []Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Subject.String()+"/"+string(f.Check))
	}
	return strings.Join(s, " | ")
}

func TestNormalizeDedup(t *testing.T) {
	f := Finding{Check: LayerDigest, Severity: Error, Subject: Subject{Image: "a", Layer: LayerIndex(0)}, Expected: "x", Actual: "y"}
	g := f
	g.Actual = "z" // differs: kept
	h := f
	h.Subject.Layer = LayerIndex(0) // another pointer to an equal value: a duplicate
	r := &Report{Findings: []Finding{f, g, h, f}}
	r.Normalize()
	if len(r.Findings) != 2 {
		t.Fatalf("after dedup %d findings, want 2: %+v", len(r.Findings), r.Findings)
	}
	if r.Summary.Errors != 2 {
		t.Errorf("Errors = %d, want 2 (duplicates are not counted)", r.Summary.Errors)
	}
}

func TestNormalizeIdempotentAndNonNil(t *testing.T) {
	r := sampleReport()
	first, _ := json.Marshal(r)
	r.Normalize()
	second, _ := json.Marshal(r)
	if !bytes.Equal(first, second) {
		t.Errorf("Normalize is not idempotent:\n%s\n%s", first, second)
	}

	e := &Report{Images: []Image{{Name: "x"}}}
	e.Normalize()
	if e.SchemaVersion != SchemaVersion || e.Findings == nil || e.Images[0].Layers == nil || e.Images[0].Status != StatusOK {
		t.Errorf("Normalize of a bare report = %+v", e)
	}
}

func TestSeverityJSON(t *testing.T) {
	for _, s := range []Severity{Info, Warning, Error} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := `"` + s.String() + `"`; string(b) != want {
			t.Errorf("Marshal(%d) = %s, want %s", int(s), b, want)
		}
		var back Severity = -1
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", b, back, err, s)
		}
	}
	for _, in := range []string{`"fatal"`, `"Error"`, `2`, `""`} {
		var s Severity
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", in, s)
		}
	}
	if got := Severity(7).String(); got != "severity(7)" {
		t.Errorf("Severity(7).String() = %q", got)
	}
	// A finding keeps its severity through a JSON round trip.
	f := Finding{Check: LayerTrailing, Severity: Warning, Message: "m"}
	b, _ := json.Marshal(f)
	var back Finding
	if err := json.Unmarshal(b, &back); err != nil || back.Severity != Warning {
		t.Errorf("finding round trip: %s -> %+v, %v", b, back, err)
	}
}

// TestUnregisteredCheck: a check ID missing from the catalog gets Error,
// never a silent Info, and is listed by Unregistered for the suites to fail on.
func TestUnregisteredCheck(t *testing.T) {
	const c Check = "test-never-registered"
	if got := SeverityOf(c); got != Error {
		t.Errorf("SeverityOf(unregistered) = %v, want Error", got)
	}
	b := &Builder{}
	b.Add(Finding{Check: "test-never-registered-either", Severity: Warning})
	u := Unregistered()
	if len(u) != 2 || u[0] != c || u[1] != "test-never-registered-either" {
		t.Errorf("Unregistered() = %v", u)
	}
	if SeverityOf(LayerDigest) != Error || Producer(LayerDigest) != "report" {
		t.Errorf("LayerDigest: severity %v, producer %q", SeverityOf(LayerDigest), Producer(LayerDigest))
	}
}

func TestOrphanBytes(t *testing.T) {
	const c Check = "test-orphan-bytes"
	RegisterOrphan(c)
	for _, tc := range []struct {
		f      Finding
		n      int64
		orphan bool
	}{
		{Finding{Check: c, Actual: "4096"}, 4096, true},
		{Finding{Check: c, Actual: ""}, 0, true},
		{Finding{Check: c, Actual: "-3"}, 0, true},
		{Finding{Check: c, Actual: "4 KiB"}, 0, true},
		{Finding{Check: LayerSize, Actual: "4096"}, 0, false},
	} {
		n, ok := tc.f.OrphanBytes()
		if n != tc.n || ok != tc.orphan {
			t.Errorf("%s Actual %q: OrphanBytes() = %d, %v; want %d, %v", tc.f.Check, tc.f.Actual, n, ok, tc.n, tc.orphan)
		}
	}
}
