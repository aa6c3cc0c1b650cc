package main

import (
	"fmt"
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
		env.Code = ExitUsage
		return err
	}
	if err := g.policy.validate(); err != nil {
		env.Code = ExitUsage
		return err
	}
	reports := make([]*report.Report, 0, len(c.Reports))
	var refs []string
	for _, path := range c.Reports {
		r, err := readReportFile(path)
		if err != nil {
			env.Code = ExitCannotCheck
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
	rep, err := report.Merge(reports...)
	if err != nil {
		env.Code = ExitCannotCheck
		return err
	}
	applyPolicies(rep, &g.policy, refs)
	if err := writeOutputs(env, outs, rep, g); err != nil {
		env.Code = ExitCannotCheck
		return err
	}
	failOn, _ := report.ParseSeverity(g.FailOn)
	env.Code = exitCode(rep, nil, failOn)
	return nil
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
