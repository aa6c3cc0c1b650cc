package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestWriteTextGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		opts TextOptions
	}{
		{"text.golden", TextOptions{}},
		{"text-verbose.golden", TextOptions{Verbose: true}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteText(&buf, sampleReport(), tc.opts); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.file, buf.Bytes())
		})
	}
	var buf bytes.Buffer
	if err := WriteQuiet(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "quiet.golden", buf.Bytes())
}

func TestWriteTextContent(t *testing.T) {
	r := sampleReport()
	var quiet, verbose bytes.Buffer
	if err := WriteText(&quiet, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&verbose, r, TextOptions{Verbose: true}); err != nil {
		t.Fatal(err)
	}
	q, v := quiet.String(), verbose.String()

	// Infos are listed only when verbose, but always counted.
	if strings.Contains(q, string(BlobUnreferenced)) {
		t.Errorf("non-verbose output lists the info finding:\n%s", q)
	}
	if !strings.Contains(v, string(BlobUnreferenced)) {
		t.Errorf("verbose output lacks the info finding:\n%s", v)
	}
	for _, out := range []string{q, v} {
		last := lastLine(out)
		if last != "FAILED: 1 error, 1 warning, 1 info, 1 problem; 2 images, 3 layers checked" {
			t.Errorf("verdict line = %q", last)
		}
	}
	// Expected and actual are printed in full; the tables use short digests.
	for _, want := range []string{
		"expected: " + dg("app layer 1"),
		"actual:   " + dg("app layer 1 as stored"),
		Short(dg("app layer 0")),
		Short(dg("app manifest")),
		Short(dg("app config")),
		"2.7 MiB", "812 B",
		"reading manifest " + dg("app arm64 manifest") + ": unexpected EOF",
	} {
		if !strings.Contains(q, want) {
			t.Errorf("output lacks %q:\n%s", want, q)
		}
	}
	if strings.Contains(q, dg("app layer 0")) {
		t.Errorf("layer table prints a full digest instead of a short one")
	}
	// The layer-digest finding sits under the app image, before the base image.
	app, base, find := strings.Index(q, appImage), strings.Index(q, baseImage), strings.Index(q, string(LayerDigest))
	if !(app < find && find < base) {
		t.Errorf("finding at %d is not between the app header (%d) and the base header (%d)", find, app, base)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestVerdictLine(t *testing.T) {
	tests := []struct {
		s    Summary
		want string
	}{
		{Summary{Images: 3, Layers: 12, Verdict: VerdictOK}, "OK: 3 images, 12 layers verified, 0 problems"},
		{Summary{Images: 1, Layers: 1, Warnings: 2, Infos: 1, Verdict: VerdictOK}, "OK: 1 image, 1 layer verified, 2 warnings, 1 info, 0 problems"},
		{Summary{Images: 2, Layers: 5, Errors: 2, Warnings: 1, Verdict: VerdictFailed}, "FAILED: 2 errors, 1 warning; 2 images, 5 layers checked"},
		{Summary{Images: 1, Layers: 0, Problems: 2, Verdict: VerdictIncomplete}, "INCOMPLETE: 2 problems, 0 errors; 1 image, 0 layers checked"},
		{Summary{Errors: 1}, "FAILED: 1 error; 0 images, 0 layers checked"}, // verdict derived when unset
	}
	for _, tt := range tests {
		if got := verdictLine(tt.s); got != tt.want {
			t.Errorf("verdictLine(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}

func TestWriteTextEscapesControlCharacters(t *testing.T) {
	r := &Report{
		Images: []Image{{Name: "img\x1b]0;pwned\x07", Layers: []Layer{{Index: 0}}}},
		Findings: []Finding{{
			Check: LayerUnsafePath, Severity: Warning,
			Subject: Subject{Image: "img\x1b]0;pwned\x07", Layer: LayerIndex(0)},
			Message: "entry\tname\nwith \x1b[31mred\x1b[0m and \xff",
		}},
	}
	r.Normalize()
	var buf bytes.Buffer
	if err := WriteText(&buf, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.ContainsAny(out, "\x1b\x07\t") || strings.Contains(out, "\xff") {
		t.Errorf("control bytes reached the terminal: %q", out)
	}
	for _, want := range []string{`\x1b[31mred`, `entry\tname\nwith`, `\xff`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks the escaped form %q: %q", want, out)
		}
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestWritersReportWriteErrors(t *testing.T) {
	r := sampleReport()
	writers := map[string]func() error{
		"text":  func() error { return WriteText(&failWriter{}, r, TextOptions{}) },
		"quiet": func() error { return WriteQuiet(&failWriter{}, r) },
		"json":  func() error { return WriteJSON(&failWriter{}, r) },
		"sarif": func() error { return WriteSARIF(&failWriter{}, r) },
		"junit": func() error { return WriteJUnit(&failWriter{after: 1}, r) },
	}
	for name, write := range writers {
		if err := write(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s writer on a failing writer: err = %v, want one wrapping \"disk full\"", name, err)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 40: "5.0 TiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
