package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/layercheck/layercheck/fixtures/badinput"
	"github.com/layercheck/layercheck/report"
)

// TestBadInput runs every case of the bad-input corpus through the CLI and
// asserts its exit code, its check ID (or that it is an error), that the
// finding or error names the culprit, that the run terminates, and that the
// input is byte-for-byte and mode-for-mode unchanged afterwards.
func TestBadInput(t *testing.T) {
	cases := badinput.Cases()
	if len(cases) < 40 {
		t.Fatalf("the corpus has %d cases, want at least 40", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			if c.NonRoot && os.Geteuid() == 0 {
				t.Skip("running as root, which reads mode-000 files anyway; run the suite as a normal user to cover this case")
			}
			dir := t.TempDir()
			in, err := c.Build(dir)
			if err != nil {
				t.Fatalf("building the input: %v", err)
			}
			t.Cleanup(func() {
				_ = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, _ error) error { return os.Chmod(p, 0o755) })
			})
			before := treeHash(t, dir)
			args := append([]string{c.Command, "-o", "json", "--no-progress"}, c.Flags...)
			args = append(args, in.Path)
			type result struct {
				out, errOut string
				code        int
			}
			done := make(chan result, 1)
			go func() {
				var out, errb bytes.Buffer
				code := run(context.Background(), args, &out, &errb)
				done <- result{out.String(), errb.String(), code}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(3 * time.Minute): // a hang guard, not a speed assertion
				t.Fatalf("layercheck %s did not terminate", strings.Join(args, " "))
			}
			if after := treeHash(t, dir); after != before {
				t.Errorf("the input was modified (tree hash %s → %s)", before, after)
			}
			var rep report.Report
			jsonErr := json.Unmarshal([]byte(r.out), &rep)
			describe := func() string {
				return fmt.Sprintf("exit %d\nstderr: %s\nfindings: %s\nproblems: %+v", r.code, r.errOut, findingsText(rep), rep.Problems)
			}
			if r.code != c.Exit {
				t.Errorf("exit %d, want %d\n%s", r.code, c.Exit, describe())
			}
			if c.Check != "" {
				if jsonErr != nil {
					t.Fatalf("stdout is not a JSON report (%v)\n%s", jsonErr, describe())
				}
				var named, present bool
				for _, f := range rep.Findings {
					if f.Check != c.Check {
						continue
					}
					present = true
					if strings.Contains(findingText(f), in.Culprit) {
						named = true
					}
				}
				switch {
				case !present:
					t.Errorf("no %s finding\n%s", c.Check, describe())
				case !named:
					t.Errorf("no %s finding names %q\n%s", c.Check, in.Culprit, describe())
				}
				return
			}
			if c.Exit == ExitOK {
				if rep.Summary.Errors != 0 || len(rep.Problems) != 0 {
					t.Errorf("want a clean run\n%s", describe())
				}
				return
			}
			var msgs []string
			msgs = append(msgs, r.errOut)
			for _, p := range rep.Problems {
				msgs = append(msgs, p.Message, p.Subject.Path)
			}
			if !strings.Contains(strings.Join(msgs, "\n"), in.Culprit) {
				t.Errorf("no error names %q\n%s", in.Culprit, describe())
			}
		})
	}
}

// findingText is everything a finding says, for the culprit search.
func findingText(f report.Finding) string {
	s := f.Subject
	layer := ""
	if s.Layer != nil {
		layer = fmt.Sprintf("layer %d", *s.Layer)
	}
	return strings.Join([]string{s.Image, s.Platform, layer, s.Digest, s.Path, s.Entry, f.Message, f.Expected, f.Actual}, "\n")
}

// treeHash hashes the names, modes, link targets and contents of everything
// under dir, without following symlinks and without opening anything but
// regular files it may read.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%v\x00%d\x00", rel, fi.Mode(), fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			io.WriteString(h, target)
		case fi.Mode().IsRegular() && fi.Mode().Perm()&0o444 != 0:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
