package main

import (
	"fmt"
	"os"
	"time"

	"github.com/layercheck/layercheck/verify"
)

// analyzeFlags turn on the layer analysis of every verification.
type analyzeFlags struct {
	Analyze bool `help:"Also analyse the layers from the same pass (no second read): files by type, bytes, compression ratio, whiteouts, largest files, files later layers overwrite or delete, and dive's wasted bytes and efficiency per image. Added to the JSON report; the table shows a summary line per image."`

	// analysisTable makes the table output the full analysis (layercheck analyze).
	analysisTable bool
}

// analysisOptions returns the verifier's analysis options: on with
// --analyze, with --max-wasted-bytes (which judges its figures), and for
// layercheck analyze.
func (g *Globals) analysisOptions() *verify.AnalysisOptions {
	if g.Analyze || g.MaxWastedBytes > 0 || g.analysisTable {
		return &verify.AnalysisOptions{}
	}
	return nil
}

type analyzeCmd struct {
	Source   string   `arg:"" name:"source" help:"What to analyse: a docker save tarball or OCI archive (plain, .gz or .zst), an OCI layout directory, or else an image reference in a registry (nginx:1.27, ghcr.io/org/app@sha256:…)."`
	Image    []string `help:"Analyse only this image of an archive: a name, tag, or image/manifest digest prefix. Repeatable." placeholder:"REF|ID"`
	Platform []string `help:"Analyse only these platforms of multi-platform images (os/arch[/variant]). Repeatable, or comma-separated." sep:","`
	Insecure bool     `help:"For a registry reference: allow plain HTTP and unverified TLS certificates (loopback registries are reached over HTTP without it)."`
}

// Run verifies SOURCE with the analysis on, as tar, layout or remote would
// (the same single pass, findings and exit code), and prints the analysis
// as the table output. A path that exists is an archive or a layout; any
// other SOURCE is a registry reference.
func (c *analyzeCmd) Run(g *Globals, env *Env) error {
	g.analysisTable = true
	sel := selection{Image: c.Image, Platform: c.Platform}
	if fi, err := os.Stat(c.Source); err == nil {
		if fi.IsDir() {
			return verifySources(env, g, "layout", sel, []string{c.Source}, nil, openArtifact)
		}
		return verifySources(env, g, "tar", sel, []string{c.Source}, nil, openArtifact)
	}
	if len(c.Image) > 0 {
		return &usageError{msg: fmt.Sprintf("%s is not a file or directory, so it is read as a registry reference; --image selects images of an archive", c.Source)}
	}
	rc := &remoteCmd{
		Refs: []string{c.Source}, Platform: c.Platform, Insecure: c.Insecure,
		Timeout: 60 * time.Second, ConnectTimeout: 30 * time.Second, Retries: 5, StreamsPerHost: 8,
	}
	return rc.Run(g, env)
}
