package main

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// TestCorruptions runs the fixtures' corruption table through the whole CLI:
// each corruption, in each format it applies to, must produce its expected
// check IDs, and no error or warning outside what the case allows.
func TestCorruptions(t *testing.T) {
	for _, c := range fixtures.Corruptions() {
		for _, f := range fixtures.Formats() {
			if !c.AppliesTo(f) {
				continue
			}
			t.Run(c.Name+"/"+string(f), func(t *testing.T) {
				fx, err := c.Make(f)
				if err != nil {
					t.Fatal(err)
				}
				path, err := fx.Write(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				cmd := "tar"
				if f.IsDir() {
					cmd = "layout"
				}
				out, errOut, code := runCLI(t, cmd, "-o", "json", path)
				if c.WantError {
					if code != ExitCannotCheck {
						t.Fatalf("exit %d, want %d (could not check)\nstderr: %s", code, ExitCannotCheck, errOut)
					}
					return
				}
				var rep report.Report
				if err := json.Unmarshal([]byte(out), &rep); err != nil {
					t.Fatalf("exit %d, stdout is not JSON: %v\nstderr: %s", code, err, errOut)
				}
				got, any := map[report.Check]bool{}, map[report.Check]bool{}
				for _, fd := range rep.Findings {
					any[fd.Check] = true
					if fd.Severity >= report.Warning {
						got[fd.Check] = true
					}
				}
				want, may := c.Want(f), c.May(f)
				for _, w := range want {
					if !any[w] {
						t.Errorf("missing %s\nfindings: %s", w, findingsText(rep))
					}
				}
				for g := range got {
					if !slices.Contains(want, g) && !slices.Contains(may, g) {
						t.Errorf("unexpected %s\nfindings: %s", g, findingsText(rep))
					}
				}
				wantCode := ExitOK
				for _, fd := range rep.Findings {
					if fd.Severity == report.Error {
						wantCode = ExitFindings
					}
				}
				if code != wantCode {
					t.Errorf("exit %d, want %d", code, wantCode)
				}
			})
		}
	}
}

func findingsText(r report.Report) string {
	b, _ := json.MarshalIndent(r.Findings, "", " ")
	return string(b)
}
