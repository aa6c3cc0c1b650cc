package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/layercheck/layercheck/report"
)

// shardFlag is --shard I/N, accepted by the commands that take a list of
// inputs (tar, layout, remote).
type shardFlag struct {
	Shard     string `help:"Verify only shard I of N of the inputs (I from 1, or from 0 with --shard-base 0): they are sorted and every N-th from position I is taken, so N machines given 1/N … N/N split them without overlap. In a Kubernetes indexed Job: --shard $(JOB_COMPLETION_INDEX)/N --shard-base 0. Join the shards' JSON reports with layercheck merge." placeholder:"I/N"`
	ShardBase int    `name:"shard-base" default:"1" enum:"0,1" help:"Where the I of --shard I/N counts from: 1 (default) or 0 (a Kubernetes JOB_COMPLETION_INDEX, with no shell to add one)."`
}

// parse is the flags' shard, 1-based, or nil for no sharding.
func (f shardFlag) parse() (*report.Shard, error) {
	if f.Shard == "" || f.ShardBase == 1 {
		return parseShard(f.Shard)
	}
	is, ns, ok := strings.Cut(strings.TrimSpace(f.Shard), "/")
	i, err := strconv.Atoi(is)
	if !ok || err != nil {
		return parseShard(f.Shard) // its message
	}
	return parseShard(strconv.Itoa(i+1) + "/" + ns)
}

// parseShard parses "I/N" with 1 <= I <= N. The empty string means no
// sharding and returns nil.
func parseShard(s string) (*report.Shard, error) {
	if s == "" {
		return nil, nil
	}
	is, ns, ok := strings.Cut(strings.TrimSpace(s), "/")
	i, ierr := strconv.Atoi(is)
	n, nerr := strconv.Atoi(ns)
	switch {
	case !ok || ierr != nil || nerr != nil:
		return nil, &usageError{msg: fmt.Sprintf("--shard %q: want I/N, two integers (e.g. 2/3)", s)}
	case n < 1:
		return nil, &usageError{msg: fmt.Sprintf("--shard %q: the number of shards must be at least 1", s)}
	case i < 1 || i > n:
		return nil, &usageError{msg: fmt.Sprintf("--shard %q: the shard index is 1-based and must be between 1 and %d", s, n)}
	}
	return &report.Shard{Index: i, Count: n}, nil
}

// readList reads input names from a file, one per line; blank lines and
// # comments are skipped, and surrounding spaces trimmed. what names the
// kind of line for the error ("reference", "archive").
func readList(file, what string, allowSpaces bool) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, &usageError{msg: fmt.Sprintf("-f: %v", err)}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !allowSpaces && strings.ContainsAny(line, " \t") {
			return nil, &usageError{msg: fmt.Sprintf("%s:%d: one %s per line, got %q", file, n, what, line)}
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, &usageError{msg: fmt.Sprintf("-f %s: %v", file, err)}
	}
	return out, nil
}

// dedup keeps the first occurrence of each name, in order.
func dedup(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
