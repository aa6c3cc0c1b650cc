package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
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
	Archives []string `arg:"" name:"archive" help:"docker save tarball or OCI archive (plain, .gz or .zst; detected by content)." type:"existingfile"`
}

type layoutCmd struct {
	selection
	Dirs []string `arg:"" name:"dir" help:"OCI image layout directory." type:"existingdir"`
}

func (c *tarCmd) Run(g *Globals, env *Env) error {
	return verifySources(env, g, "tar", c.selection, c.Archives, openArchive)
}

func (c *layoutCmd) Run(g *Globals, env *Env) error {
	return verifySources(env, g, "layout", c.selection, c.Dirs, openLayout)
}

func openArchive(path string, g *Globals) (source.Source, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return openLayout(path, g)
	}
	return dockerarchive.Open(path, dockerarchive.Options{MaxManifestSize: g.MaxManifestSize})
}

func openLayout(path string, g *Globals) (source.Source, error) {
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return dockerarchive.Open(path, dockerarchive.Options{MaxManifestSize: g.MaxManifestSize})
	}
	return ocilayout.Open(path, ocilayout.Options{MaxManifestSize: g.MaxManifestSize})
}

func (g *Globals) verifierOptions(sel selection) verify.Options {
	return verify.Options{
		Jobs:            g.jobs(),
		Platforms:       sel.Platform,
		Images:          sel.Image,
		MaxManifestSize: g.MaxManifestSize,
		Pass:            verify.PassOptions{MaxTarSize: g.MaxTarSize, MaxRatio: g.MaxRatio},
	}
}

// verifySources verifies each named source into one report and writes it.
func verifySources(env *Env, g *Globals, command string, sel selection, names []string, open func(string, *Globals) (source.Source, error)) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		env.Code = ExitUsage
		return err
	}
	if err := g.policy.validate(); err != nil {
		env.Code = ExitUsage
		return err
	}
	opts := g.verifierOptions(sel)
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	opts.Progress = prog.add
	v := verify.New(opts)
	b := &report.Builder{}
	var firstErr error
	for _, name := range names {
		src, err := open(name, g)
		if err != nil {
			b.Problem(report.Subject{Path: name}, "%v", err)
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		err = v.Verify(env.Ctx, src, b)
		src.Close()
		if err != nil {
			if env.Ctx.Err() != nil {
				firstErr = env.Ctx.Err()
				break
			}
			b.Problem(report.Subject{Path: name}, "%v", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	prog.done()
	rep := b.Finish(command, strings.Join(names, ", "), toolVersion())
	applyPolicies(rep, &g.policy, policyRefs(command, names))
	if werr := writeOutputs(env, outs, rep, g); werr != nil {
		env.Code = ExitCannotCheck
		return werr
	}
	failOn, _ := report.ParseSeverity(g.FailOn)
	env.Code = exitCode(rep, firstErr, failOn)
	if env.Code == ExitInterrupted {
		return fmt.Errorf("interrupted; the report covers what was verified so far")
	}
	if firstErr != nil && len(names) == 1 && len(rep.Images) == 0 {
		return firstErr
	}
	return nil
}
