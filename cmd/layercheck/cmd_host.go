package main

import (
	"context"
	"errors"
	"strings"

	"github.com/layercheck/layercheck/hoststore/containerd"
	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/report"
)

type hostCmd struct {
	Images []string `arg:"" optional:"" name:"image" help:"Audit only these images: name:tag (nginx means nginx:latest), name@sha256:…, or an image ID prefix. None: every image, layer, container layer and leftover."`
	Root   string   `default:"/var/lib/docker" help:"Docker data root (a live one, a copy or a mounted backup); opened read-only." placeholder:"DIR"`
	Driver string   `help:"Graph driver to audit when image/ holds stores of several (overlay2, fuse-overlayfs, vfs, btrfs, zfs)." placeholder:"NAME"`

	// containerd stores (hoststore/containerd).
	ContainerdRoot string   `name:"containerd-root" help:"containerd root to audit (/var/lib/containerd, a copy or a backup): content store, meta.db, snapshotters; opened read-only, a locked meta.db is read from a private copy. Alone it audits only containerd; add --root for a Docker root too. A Docker root without image/<driver> but with containerd/daemon (Docker's containerd image store) is audited this way automatically, namespace moby." placeholder:"DIR"`
	Namespace      []string `help:"containerd namespaces to audit (moby, default, k8s.io, ...); repeatable or comma-separated. Default: all (moby for a Docker root)." sep:"," placeholder:"NS"`
}

// defaultDockerRoot is --root's default: with --containerd-root alone, no
// Docker root is audited.
const defaultDockerRoot = "/var/lib/docker"

var _ hostAuditor = (*containerd.Store)(nil)

func (c *hostCmd) containerdOptions(g *Globals, prog *progress) containerd.Options {
	vo := g.verifierOptions(selection{})
	vo.Progress = prog.add
	return containerd.Options{Namespaces: c.Namespace, Images: c.Images, Jobs: g.jobs(), Verify: vo}
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
	var out []hostAuditor
	if c.ContainerdRoot == "" || c.Root != defaultDockerRoot {
		st, err := docker.Open(c.Root, docker.Options{
			Driver:      c.Driver,
			Images:      c.Images,
			Jobs:        g.jobs(),
			MaxFileSize: g.MaxManifestSize,
			Pass:        g.verifierOptions(selection{}).Pass,
			Progress:    prog.add,
			// --analyze and --max-wasted-bytes: the analysis rides on
			// each layer's rebuild pass.
			Analysis: g.analysisOptions(),
		})
		switch {
		case err == nil:
			out = append(out, st)
		case errors.Is(err, docker.ErrNotDockerRoot):
			// Docker's containerd image store: no image/<driver>, a containerd root beside it.
			if _, ok := containerd.DockerRoot(c.Root); !ok {
				return nil, err
			}
			cs, cerr := containerd.OpenDocker(c.Root, c.containerdOptions(g, prog))
			if cerr != nil {
				return nil, cerr
			}
			out = append(out, cs)
		default:
			return nil, err
		}
	}
	if c.ContainerdRoot != "" {
		cs, err := containerd.Open(c.ContainerdRoot, c.containerdOptions(g, prog))
		if err != nil {
			return nil, err
		}
		out = append(out, cs)
	}
	return out, nil
}

func (c *hostCmd) Run(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		env.Code = ExitUsage
		return err
	}
	if err := g.policy.validate(); err != nil {
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
	// Host images are addressed by content: --require-digest has no
	// references to judge; the platform, layer size, media type and
	// wasted-bytes policies apply to the audited images as to any report
	// (graph-driver images declare no media types; their analysis comes
	// from the rebuild pass, containerd's from the verifier's).
	applyPolicies(rep, &g.policy, policyRefs("host", c.Images))
	return conclude(env, g, outs, rep, firstErr, "audited", true)
}
