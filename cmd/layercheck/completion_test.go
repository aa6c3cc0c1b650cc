package main

import (
	"slices"
	"strings"
	"testing"
)

// TestCompletionScripts: each shell's script is printed, hooks the
// layercheck command and names the binary that answers.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string][]string{
		"bash": {"complete -o default -o bashdefault -C ", " layercheck\n"},
		"zsh":  {"bashcompinit", "complete -o default -o bashdefault -C ", " layercheck\n"},
		"fish": {"function __complete_layercheck", "set -lx COMP_LINE (commandline -cp)", `complete -c layercheck -a "(__complete_layercheck)"`},
	} {
		out, errOut, code := runCLI(t, "completion", shell)
		if code != ExitOK {
			t.Fatalf("completion %s: exit %d\n%s", shell, code, errOut)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("completion %s lacks %q:\n%s", shell, w, out)
			}
		}
	}
	if _, _, code := runCLI(t, "completion", "powershell"); code != ExitUsage {
		t.Errorf("completion powershell: exit %d, want %d", code, ExitUsage)
	}
	if got := shellQuote("/opt/my tools/layercheck"); got != `'/opt/my tools/layercheck'` {
		t.Errorf("shellQuote = %s", got)
	}
}

// TestCompletionAnswers plays the shell's side of the hook: COMP_LINE
// holds the line being completed, and layercheck prints the candidates,
// one per line, and exits 0 without running a command.
func TestCompletionAnswers(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"layercheck ", []string{"tar", "layout", "remote", "compare", "host", "analyze", "merge", "checks", "chainid", "completion"}},
		{"layercheck an", []string{"analyze"}},
		{"layercheck tar --sh", []string{"--shard"}},
		{"layercheck remote --max-wa", []string{"--max-wasted-bytes"}},
		{"layercheck tar --fail-on ", []string{"error", "warning"}},
		{"layercheck completion ", []string{"bash", "fish", "zsh"}},
	} {
		t.Setenv("COMP_LINE", tc.line)
		t.Setenv("COMP_POINT", "")
		out, errOut, code := runCLI(t, "tar", "does-not-exist.tar")
		if code != ExitOK {
			t.Errorf("%q: exit %d\n%s", tc.line, code, errOut)
			continue
		}
		got := strings.Fields(out)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%q: candidates %v lack %s", tc.line, got, w)
			}
		}
	}
}
