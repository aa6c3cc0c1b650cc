package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestExitCodeTablesAgree keeps README.md's exit-code table and --help's
// (exitCodeHelp) to the codes exitcode.go defines: the same set, in order.
func TestExitCodeTablesAgree(t *testing.T) {
	want := []int{ExitOK, ExitFindings, ExitCannotCheck, ExitUsage, ExitInterrupted}

	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	sec := string(readme)
	i := strings.Index(sec, "## Exit codes")
	if i < 0 {
		t.Fatal("README.md has no \"## Exit codes\" section")
	}
	sec = sec[i+len("## Exit codes"):]
	if j := strings.Index(sec, "\n## "); j >= 0 {
		sec = sec[:j]
	}
	var fromREADME []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(sec, -1) {
		n, _ := strconv.Atoi(m[1])
		fromREADME = append(fromREADME, n)
	}
	if !slices.Equal(fromREADME, want) {
		t.Errorf("README.md exit codes %v, exitcode.go defines %v", fromREADME, want)
	}

	var fromHelp []int
	for _, m := range regexp.MustCompile(`(?m)^  (\d+) +\S`).FindAllStringSubmatch(exitCodeHelp, -1) {
		n, _ := strconv.Atoi(m[1])
		fromHelp = append(fromHelp, n)
	}
	if !slices.Equal(fromHelp, want) {
		t.Errorf("--help exit codes %v, exitcode.go defines %v", fromHelp, want)
	}
}
