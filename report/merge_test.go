package report

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestMerge(t *testing.T) {
	a := sampleReport()
	// b re-checks the base image (same measurements), finds the same
	// unreferenced blob and a new problem, from another command and source.
	var bb Builder
	bb.AddImage(a.Images[1])
	bb.AddImage(Image{Name: "example.com/other:2", Platform: "linux/amd64", Layers: []Layer{{Index: 0, Size: 10}}})
	for _, f := range a.Findings {
		if f.Check == BlobUnreferenced {
			bb.Add(f)
		}
	}
	bb.Add(Finding{Check: LayerSize, Severity: Error, Subject: Subject{Image: "example.com/other:2", Platform: "linux/amd64", Layer: LayerIndex(0)}})
	bb.Problem(Subject{Path: "x"}, "permission denied")
	b := bb.Finish("remote", "registry.example/other:2", "v0.1.0-test")

	beforeA, _ := json.Marshal(a)
	beforeB, _ := json.Marshal(b)
	m, err := Merge(a, b, a)
	if err != nil {
		t.Fatal(err)
	}
	if afterA, _ := json.Marshal(a); string(afterA) != string(beforeA) {
		t.Error("Merge modified its first input")
	}
	if afterB, _ := json.Marshal(b); string(afterB) != string(beforeB) {
		t.Error("Merge modified its second input")
	}

	if m.Command != "merge" {
		t.Errorf("Command = %q, want merge (commands differ)", m.Command)
	}
	if m.Source != "images/app.tar, registry.example/other:2" {
		t.Errorf("Source = %q", m.Source)
	}
	if m.Tool != a.Tool || m.SchemaVersion != SchemaVersion {
		t.Errorf("Tool = %+v, SchemaVersion %q", m.Tool, m.SchemaVersion)
	}
	var names []string
	for _, img := range m.Images {
		names = append(names, img.Name)
	}
	if got := strings.Join(names, ","); got != appImage+","+baseImage+",example.com/other:2" {
		t.Errorf("images = %s (duplicates must be removed, order normalized)", got)
	}
	want := Summary{Images: 3, Layers: 4, BytesRead: a.Summary.BytesRead + 10, Errors: 2, Warnings: 1, Infos: 1, Problems: 2, Verdict: VerdictFailed}
	if m.Summary != want {
		t.Errorf("Summary = %+v, want %+v", m.Summary, want)
	}
	if got := m.Images[2].Status; got != StatusFailed {
		t.Errorf("status of the other image = %s, want failed", got)
	}

	// Same command: kept. Merging one report gives an equal report.
	one, err := Merge(a)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(one, a) {
		t.Errorf("Merge(a) differs from a:\n got %+v\nwant %+v", one, a)
	}
	// A merged report merges again without growing.
	again, err := Merge(m, a)
	if err != nil {
		t.Fatal(err)
	}
	if again.Source != m.Source || again.Summary != m.Summary {
		t.Errorf("Merge(m, a): source %q summary %+v; want %q %+v", again.Source, again.Summary, m.Source, m.Summary)
	}
}

func TestMergeErrors(t *testing.T) {
	if _, err := Merge(); err == nil {
		t.Error("Merge() succeeded, want an error")
	}
	if _, err := Merge(sampleReport(), nil); err == nil || !strings.Contains(err.Error(), "report 2 is nil") {
		t.Errorf("Merge with nil = %v", err)
	}
	v2 := sampleReport()
	v2.SchemaVersion = "layercheck.dev/report/v2"
	if _, err := Merge(sampleReport(), v2); err == nil || !strings.Contains(err.Error(), "unsupported schemaVersion") {
		t.Errorf("Merge with a v2 report = %v", err)
	}
}

// TestMergeFoldsPartialImages: the shards of a store audit each measure
// some layers of an image; merged, they give the image measured whole, and
// entries that disagree on a measurement stay apart.
func TestMergeFoldsPartialImages(t *testing.T) {
	img := func(l0, l1 Layer) Image {
		return Image{Name: "r:1", ManifestDigest: "sha256:m", ConfigDigest: "sha256:c", Layers: []Layer{l0, l1}}
	}
	full0 := Layer{Index: 0, Digest: "sha256:a", Size: 10, Compression: "gzip", DiffID: "sha256:da", TarSize: 20, Entries: 2, ChainID: "sha256:x"}
	full1 := Layer{Index: 1, Digest: "sha256:b", Size: 11, Compression: "zstd", DiffID: "sha256:db", TarSize: 21, Entries: 3, ChainID: "sha256:y"}
	part0 := Layer{Index: 0, ChainID: "sha256:x"}
	part1 := Layer{Index: 1, ChainID: "sha256:y"}
	a := &Report{Images: []Image{img(full0, part1)}}
	b := &Report{Images: []Image{img(part0, full1)}}
	whole := &Report{Images: []Image{img(full0, full1)}}
	whole.Normalize()
	got, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Images) != 1 || !reflect.DeepEqual(got.Images, whole.Images) {
		t.Fatalf("merged images = %+v, want %+v", got.Images, whole.Images)
	}
	other := full1
	other.Digest = "sha256:other"
	c := &Report{Images: []Image{img(part0, other)}}
	got, err = Merge(a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Images) != 2 {
		t.Fatalf("disagreeing measurements folded: %+v", got.Images)
	}
}
