package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

type chainidCmd struct {
	DiffIDs []string `arg:"" name:"diffid" help:"diffIDs, base layer first (sha256:<64 hex>)."`
}

func (c *chainidCmd) Run(g *Globals, env *Env) error {
	ds := make([]digest.Digest, len(c.DiffIDs))
	for i, s := range c.DiffIDs {
		d := digest.Digest(s)
		if err := d.Validate(); err != nil {
			env.Code = ExitUsage
			return &usageError{fmt.Sprintf("diffID %d (%q) is not a digest: %v", i+1, s, err)}
		}
		ds[i] = d
	}
	for _, c := range verify.ChainIDs(ds) {
		fmt.Fprintln(env.Stdout, c)
	}
	return nil
}

type checksCmd struct{}

func (c *checksCmd) Run(g *Globals, env *Env) error {
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSEVERITY\tWHAT IT PROVES")
	for _, ci := range report.Catalog() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", ci.ID, ci.Severity, ci.Title)
	}
	return tw.Flush()
}
