package main

import (
	"fmt"
	"github.com/layercheck/layercheck/policy"
	"os"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/source/dirlayout"
	"github.com/layercheck/layercheck/source/dockerarchive"
	"github.com/layercheck/layercheck/source/ocilayout"
	"github.com/layercheck/layercheck/verify"
)

// selection holds the flags that choose images and platforms.
type selection struct {
	Image    []string `help:"Verify only this image: a name, tag, or image/manifest digest prefix. Repeatable." placeholder:"REF|ID"`
	Platform []string `help:"Verify only these platforms of multi-platform images (os/arch[/variant]). Repeatable, or comma-separated." sep:","`
}

type tarCmd struct {
	selection
	Archives []string `arg:"" optional:"" name:"archive" help:"docker save tarball or OCI archive (plain, .gz or .zst; detected by content), or an OCI layout directory." type:"path"`
	File     string   `short:"f" help:"Also read archive paths from FILE, one per line; blank lines and # comments are skipped." placeholder:"FILE"`
	shardFlag
}

type layoutCmd struct {
	selection
	Dirs []string `arg:"" optional:"" name:"dir" help:"OCI image layout directory." type:"existingdir"`
	File string   `short:"f" help:"Also read layout directories from FILE, one per line; blank lines and # comments are skipped." placeholder:"FILE"`
	shardFlag
}

func (c *tarCmd) Run(g *Globals, env *Env) error {
	for _, a := range c.Archives {
		if _, err := os.Stat(a); err != nil {
			return &usageError{msg: fmt.Sprintf("archive %s: %v", a, err)}
		}
	}
	names, sh, err := inputList(c.Archives, c.File, c.shardFlag, "archive")
	if err != nil {
		return usage(err)
	}
	return verifySources(env, g, "tar", c.selection, names, sh, openArtifact)
}

func (c *layoutCmd) Run(g *Globals, env *Env) error {
	names, sh, err := inputList(c.Dirs, c.File, c.shardFlag, "layout directory")
	if err != nil {
		return usage(err)
	}
	return verifySources(env, g, "layout", c.selection, names, sh, openArtifact)
}

// inputList gathers the inputs of the arguments and of -f (each once, in
// order) and applies --shard. It is a usage error when there is no input
// at all; a shard may be left with none.
func inputList(args []string, file string, shard shardFlag, what string) ([]string, *report.Shard, error) {
	sh, err := shard.parse()
	if err != nil {
		return nil, nil, err
	}
	all := append([]string(nil), args...)
	if file != "" {
		more, err := readList(file, what, true)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, more...)
	}
	all = dedup(all)
	if len(all) == 0 {
		return nil, nil, &usageError{msg: fmt.Sprintf("no %s: give at least one or -f FILE", what)}
	}
	return sh.Apply(all), sh, nil
}

// openArtifact opens a file as a docker save or OCI archive, a directory
// as skopeo's dir: layout or an OCI image layout: what each is, is read from
// its contents.
func openArtifact(path string, g *Globals) (source.Source, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		if dirlayout.Is(path) {
			return dirlayout.Open(path, dirlayout.Options{MaxManifestSize: g.MaxManifestSize})
		}
		return ocilayout.Open(path, ocilayout.Options{MaxManifestSize: g.MaxManifestSize})
	}
	return dockerarchive.Open(path, dockerarchive.Options{MaxManifestSize: g.MaxManifestSize})
}

func (g *Globals) verifierOptions(sel selection) verify.Options {
	return verify.Options{
		Jobs:            g.jobs(),
		Platforms:       sel.Platform,
		Images:          sel.Image,
		MaxManifestSize: g.MaxManifestSize,
		MaxLayers:       g.MaxLayers,
		MaxIndexEntries: g.MaxIndexEntries,
		MaxDepth:        g.MaxIndexDepth,
		Pass:            verify.PassOptions{MaxTarSize: g.MaxTarSize, MaxRatio: g.MaxRatio},
		Analysis:        g.analysisOptions(),
	}
}

// sourcesPerBatch bounds the archives and layouts verifySources opens and
// verifies at once: their open files, and the metadata a whole-compressed
// archive keeps in memory (up to 64 MiB of manifests and configs each).
const sourcesPerBatch = 16

// verifySources verifies each named source into one report and writes it,
// sourcesPerBatch at a time. sh, when not nil, is recorded in the report (--shard).
func verifySources(env *Env, g *Globals, command string, sel selection, names []string, sh *report.Shard, open func(string, *Globals) (source.Source, error)) error {
	return verifyBatches(env, g, command, sel, names, sh, open, sourcesPerBatch)
}

// verifyBatches is verifySources with the batch size given: the layers of
// a batch's sources are read in one pool (verify.VerifyAll).
func verifyBatches(env *Env, g *Globals, command string, sel selection, names []string, sh *report.Shard, open func(string, *Globals) (source.Source, error), batchSize int) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		return usage(err)
	}
	if err := g.policy().Validate(); err != nil {
		return usage(err)
	}
	opts := g.verifierOptions(sel)
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	opts.Progress, opts.Planned = prog.add, prog.plan
	b := &report.Builder{}
	firstErr := verify.New(opts).VerifyNamed(env.Ctx, names, func(name string) (source.Source, error) { return open(name, g) }, batchSize, b)
	prog.done()
	rep := b.Finish(command, strings.Join(names, ", "), toolVersion())
	rep.Shard = sh
	policy.Apply(rep, g.policy(), policyRefs(command, names))
	// With several inputs the problems in the report name the ones that
	// could not be checked; with one, its error is also printed.
	return conclude(env, g, outs, rep, firstErr, "verified", len(names) == 1)
}
