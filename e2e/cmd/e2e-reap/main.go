// Command e2e-reap cleans up after an end-to-end run whose test binary died
// before it could stop its daemons (a panic, a `go test -timeout`, SIGKILL):
// it stops by pid every process that belongs to the run's directory, unmounts
// everything below it, detaches the loop devices whose backing files are
// below it (the btrfs dockerd's data root) and removes it. `make e2e` runs it after the suite.
//
// Usage: e2e-reap DIR
//
// It exits 0 when DIR was already gone (the suite cleaned up after itself),
// and 1 when it had to stop a process, unmount or detach something, or failed
// to.
package main

import (
	"fmt"
	"os"

	"github.com/layercheck/layercheck/e2e/harness"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: e2e-reap DIR")
		os.Exit(80)
	}
	dir := os.Args[1]
	if os.Getenv("LAYERCHECK_E2E_KEEP") == "1" {
		fmt.Fprintf(os.Stderr, "e2e-reap: LAYERCHECK_E2E_KEEP=1, leaving %s\n", dir)
		return
	}
	did, err := harness.Reap(dir)
	for _, s := range did {
		fmt.Fprintf(os.Stderr, "e2e-reap: %s: %s\n", dir, s)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e-reap: %v\n", err)
		os.Exit(1)
	}
	if len(did) > 0 {
		fmt.Fprintf(os.Stderr, "e2e-reap: the suite left %d things behind in %s (cleaned now)\n", len(did), dir)
		os.Exit(1)
	}
}
