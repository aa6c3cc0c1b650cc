package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"
	kongcompletion "github.com/jotaen/kong-completion"
)

// Shell completion. The scripts are small hooks: the shell runs layercheck
// itself with the command line in COMP_LINE (the protocol of
// github.com/posener/complete, bash's `complete -C`), and
// github.com/jotaen/kong-completion answers from the kong model, so every
// command, flag and enum value is completed as the CLI defines it, with no
// script to regenerate when they change.

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"Shell to print the completion script for: bash, zsh or fish."`
}

// Help explains where the script goes.
func (c *completionCmd) Help() string {
	return `Prints a script that makes the shell complete layercheck's commands, flags and values.

  bash:  source <(layercheck completion bash)          (or add that line to ~/.bashrc)
  zsh:   source <(layercheck completion zsh)           (or add that line to ~/.zshrc)
  fish:  layercheck completion fish | source           (or save it as ~/.config/fish/completions/layercheck.fish)

The script runs the layercheck binary it names to answer each completion; print it again if the binary moves.`
}

// Run prints the script.
func (c *completionCmd) Run(env *Env) error {
	bin, err := os.Executable()
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		return fmt.Errorf("completion: finding the layercheck binary: %w", err)
	}
	script, err := completionScript(c.Shell, "layercheck", bin)
	if err != nil {
		return usage(err)
	}
	_, err = fmt.Fprint(env.Stdout, script)
	return err
}

// completionScript returns the hook of shell for the command name, answered
// by the binary at bin.
func completionScript(shell, name, bin string) (string, error) {
	q := shellQuote(bin)
	switch shell {
	case "bash":
		return fmt.Sprintf("# layercheck completion for bash: source <(layercheck completion bash)\ncomplete -o default -o bashdefault -C %s %s\n", q, name), nil
	case "zsh":
		return fmt.Sprintf("# layercheck completion for zsh: source <(layercheck completion zsh)\nautoload -U +X bashcompinit && bashcompinit\ncomplete -o default -o bashdefault -C %s %s\n", q, name), nil
	case "fish":
		return fmt.Sprintf(`# layercheck completion for fish: layercheck completion fish | source
function __complete_%[1]s
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %[2]s
end
complete -c %[1]s -a "(__complete_%[1]s)"
`, name, q), nil
	}
	return "", &usageError{msg: fmt.Sprintf("completion: unknown shell %q (want bash, zsh or fish)", shell)}
}

// shellQuote quotes s for bash, zsh and fish alike when it holds anything
// but plain path characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// answerCompletion answers a completion request (COMP_LINE set by the
// shell's hook) from the kong model and ends the run through kong's exit
// function; without COMP_LINE it does nothing.
func answerCompletion(parser *kong.Kong) {
	if os.Getenv("COMP_LINE") == "" {
		return
	}
	kongcompletion.Register(parser)
}
