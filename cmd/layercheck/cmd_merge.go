package main

import (
	"fmt"
	"github.com/layercheck/layercheck/policy"
	"os"
	"strings"

	"github.com/layercheck/layercheck/report"
)

type mergeCmd struct {
	Reports []string `arg:"" name:"report" help:"JSON reports written by layercheck -o json=FILE (for example one per CI shard)." type:"existingfile"`
}

// Run reads the JSON reports, joins them with report.Merge, applies the
// policy flags and writes the outputs; the exit code follows from the
// merged report as if one run had verified everything.
func (c *mergeCmd) Run(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		return usage(err)
	}
	if err := g.policy().Validate(); err != nil {
		return usage(err)
	}
	reports := make([]*report.Report, 0, len(c.Reports))
	var refs []string
	for _, path := range c.Reports {
		r, err := readReportFile(path)
		if err != nil {
			return err
		}
		if r.Command == "remote" {
			for _, ref := range strings.Split(r.Source, ", ") {
				if ref != "" {
					refs = append(refs, ref)
				}
			}
		}
		reports = append(reports, r)
	}
	missing, duplicated, err := report.ShardCoverage(reports...)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	rep, err := report.Merge(reports...)
	if err != nil {
		return err
	}
	if len(duplicated) > 0 {
		fmt.Fprintf(env.Stderr, "layercheck: warning: shard %s given more than once (joined once)\n", joinInts(duplicated))
	}
	if len(missing) > 0 {
		// A missing shard's inputs were not verified: the merged report is
		// incomplete, like a run that could not check some inputs.
		fmt.Fprintf(env.Stderr, "layercheck: warning: shard %s of %d missing; its inputs are not in the merged report\n", joinInts(missing), shardCount(reports))
		rep.Problems = append(rep.Problems, report.Problem{Message: fmt.Sprintf("merge: shard %s of %d missing: its inputs were not verified", joinInts(missing), shardCount(reports))})
		rep.Normalize()
	}
	policy.Apply(rep, g.policy(), refs)
	return conclude(env, g, outs, rep, nil, "merged", false)
}

func readReportFile(path string) (*report.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("merge: %s: %w", path, err)
	}
	return r, nil
}

func joinInts(is []int) string {
	ss := make([]string, len(is))
	for i, n := range is {
		ss[i] = fmt.Sprint(n)
	}
	return strings.Join(ss, ", ")
}

// shardCount is the number of shards of the first sharded report.
func shardCount(reports []*report.Report) int {
	for _, r := range reports {
		if r.Shard != nil {
			return r.Shard.Count
		}
	}
	return 0
}
