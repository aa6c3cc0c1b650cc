package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/report"
)

type hostCmd struct {
	Images []string `arg:"" optional:"" name:"image" help:"Audit only these images: name:tag (nginx means nginx:latest), name@sha256:…, or an image ID prefix. None: every image, layer, container layer and leftover."`
	Root   string   `default:"/var/lib/docker" help:"Docker data root (a live one, a copy or a mounted backup); opened read-only." placeholder:"DIR"`
	Driver string   `help:"Graph driver to audit when image/ holds stores of several (overlay2, fuse-overlayfs, vfs, btrfs, zfs)." placeholder:"NAME"`
}

// hostAuditor is one host store audited into the report. --root gives a
// Docker graph-driver store (hoststore/docker); a containerd store
// (--containerd-root, hoststore/containerd) is another implementation added
// to hostCmd.auditors.
type hostAuditor interface {
	// String names the store for the report's source line.
	String() string
	// Audit adds images, findings and problems to b; an error means the
	// store could not be audited at all.
	Audit(ctx context.Context, b *report.Builder) error
}

var _ hostAuditor = (*docker.Store)(nil)

// auditors opens the stores the flags name.
func (c *hostCmd) auditors(g *Globals, prog *progress) ([]hostAuditor, error) {
	st, err := docker.Open(c.Root, docker.Options{
		Driver:      c.Driver,
		Images:      c.Images,
		Jobs:        g.jobs(),
		MaxFileSize: g.MaxManifestSize,
		Pass:        g.verifierOptions(selection{}).Pass,
		Progress:    prog.add,
	})
	if err != nil {
		return nil, err
	}
	return []hostAuditor{st}, nil
}

func (c *hostCmd) Run(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		env.Code = ExitUsage
		return err
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	stores, err := c.auditors(g, prog)
	if err != nil {
		if errors.Is(err, docker.ErrUnsupportedDriver) && c.Driver != "" {
			env.Code = ExitUsage
			return &usageError{err.Error()}
		}
		env.Code = ExitCannotCheck
		return err
	}
	b := &report.Builder{}
	var firstErr error
	var names []string
	for _, s := range stores {
		names = append(names, s.String())
		if err := s.Audit(env.Ctx, b); err != nil {
			if env.Ctx.Err() != nil {
				firstErr = env.Ctx.Err()
				break
			}
			b.Problem(report.Subject{Path: s.String()}, "%v", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	prog.done()
	rep := b.Finish("host", strings.Join(names, ", "), toolVersion())
	if werr := writeOutputs(env, outs, rep, g); werr != nil {
		env.Code = ExitCannotCheck
		return werr
	}
	failOn, _ := report.ParseSeverity(g.FailOn)
	env.Code = exitCode(rep, firstErr, failOn)
	if env.Code == ExitInterrupted {
		return fmt.Errorf("interrupted; the report covers what was audited so far")
	}
	if firstErr != nil && len(rep.Images) == 0 {
		return firstErr
	}
	return nil
}
