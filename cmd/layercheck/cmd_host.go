package main

import (
	"context"
	"net"
	"time"

	"errors"
	"fmt"
	"github.com/layercheck/layercheck/policy"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/report/metrics"
	"github.com/layercheck/layercheck/schedule"
	"strings"

	"github.com/layercheck/layercheck/hoststore"
	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/store"
)

type hostCmd struct {
	Images   []string `arg:"" optional:"" name:"image" help:"Audit only these images: name:tag (nginx means nginx:latest), name@sha256:…, or an image ID prefix. None: every image, layer, container layer and leftover."`
	Root     []string `help:"Store to audit, repeatable: a Docker data root, a containerd root (also k3s/RKE2's), a containers-storage graph root or a registry's storage directory; the kind is recognised from its contents. A live store, a copy or a mounted backup; opened read-only. Default: every store found at /var/lib/docker, /var/lib/containerd and /var/lib/containers/storage." placeholder:"DIR"`
	Driver   string   `help:"Graph driver to audit when a Docker root's image/ holds stores of several (overlay2, fuse-overlayfs, vfs, btrfs, zfs)." placeholder:"NAME"`
	Platform []string `help:"Audit only these platforms of multi-platform images (containerd). Repeatable, or comma-separated." sep:","`

	ContainerdRoot string   `name:"containerd-root" help:"A containerd root to audit, like --root but refused when it is not a containerd root." placeholder:"DIR"`
	Namespace      []string `help:"containerd namespaces to audit (moby, default, k8s.io, ...); repeatable or comma-separated. Default: all (moby for a Docker root)." sep:"," placeholder:"NS"`

	Interval      time.Duration `help:"Audit again every DURATION (6h, 30m) until SIGTERM or Ctrl-C, writing the outputs after each round; exit 0 when stopped. A failed round is reported in the outputs and metrics, never a crash. 0: audit once." placeholder:"DURATION"`
	MetricsListen string        `name:"metrics-listen" help:"Serve the latest round's Prometheus metrics on http://ADDR/metrics and liveness on /healthz (with --interval; e.g. :9090)." placeholder:"ADDR"`
	shardFlag
}

// defaultDockerRoot is where Docker keeps its data root.
const defaultDockerRoot = "/var/lib/docker"

// roots lists the stores to audit: the flags', else every default path
// that holds a store.
func (c *hostCmd) roots() ([]hoststore.Root, error) {
	var roots []hoststore.Root
	for _, r := range c.Root {
		roots = append(roots, hoststore.Root{Path: r})
	}
	if c.ContainerdRoot != "" {
		roots = append(roots, hoststore.Root{Path: c.ContainerdRoot, Kind: store.Containerd})
	}
	if len(roots) > 0 {
		return roots, nil
	}
	return hoststore.Discover()
}

// storeOpenError classifies an error of hoststore.Open: options that do not
// apply to the store found are usage errors.
func storeOpenError(err error) error {
	var oe *hoststore.OptionError
	var ke *hoststore.KindError
	if errors.As(err, &oe) || errors.As(err, &ke) || errors.Is(err, docker.ErrUnsupportedDriver) && strings.Contains(err.Error(), "graph driver \"") {
		return usage(err)
	}
	return err
}

func (c *hostCmd) Run(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		return usage(err)
	}
	if err := g.policy().Validate(); err != nil {
		return usage(err)
	}
	if c.Interval < 0 || c.MetricsListen != "" && c.Interval == 0 {
		return &usageError{msg: "--metrics-listen serves the rounds of --interval; give --interval DURATION (and a positive one)"}
	}
	sh, err := c.shardFlag.parse()
	if err != nil {
		return usage(err)
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet || c.Interval > 0)
	vo := g.verifierOptions(selection{})
	vo.Progress, vo.Planned = prog.add, prog.plan
	opts := store.Options{
		Images: c.Images, Platforms: c.Platform, Driver: c.Driver, Namespaces: c.Namespace,
		Jobs: g.jobs(), MaxFileSize: g.MaxManifestSize, Shard: sh, Verify: vo,
	}
	// One round: open every store (a store that cannot be opened is the
	// round's error), audit each into its own report, join them.
	round := func(ctx context.Context) (hostRound, error) {
		var r hostRound
		roots, err := c.roots() // each round: a store may appear or go
		if err != nil {
			return r, err
		}
		stores, err := hoststore.OpenAll(roots, opts)
		if err != nil {
			return r, storeOpenError(err)
		}
		defer func() {
			for _, s := range stores {
				s.Close()
			}
		}()
		r.audited = store.AuditEach(ctx, stores, toolVersion())
		r.rep, r.firstErr = store.Join(ctx, r.audited, toolVersion())
		r.rep.Shard = sh
		// Host images are addressed by content: --require-digest has no
		// references to judge; the platform, layer size, media type and
		// wasted-bytes policies apply to the audited images as to any report.
		policy.Apply(r.rep, g.policy(), policyRefs("host", c.Images))
		return r, nil
	}
	if c.Interval == 0 {
		r, err := round(env.Ctx)
		prog.done()
		if err != nil {
			return err
		}
		env.audit = r.metrics(env.start, time.Since(env.start), nil)
		return conclude(env, g, outs, r.rep, r.firstErr, "audited", true)
	}
	return c.loop(g, env, outs, round)
}

// hostRound is one audit of every store.
type hostRound struct {
	audited  []store.Audited
	rep      *report.Report
	firstErr error
}

// metrics is the round for -o prometheus and --metrics-listen.
func (r hostRound) metrics(start time.Time, d time.Duration, err error) *metrics.Audit {
	a := &metrics.Audit{Start: start, Duration: d, Err: err}
	for _, x := range r.audited {
		a.Stores = append(a.Stores, metrics.Store{Name: x.Store.String(), Kind: string(x.Store.Kind()), Report: x.Report, Err: x.Err, Duration: x.Duration})
	}
	return a
}

// loop is host --interval: a round, its outputs, the wait, until the
// context ends (SIGTERM: exit 0). The first round's outputs failing to be
// written stops it (a wrong path); later failures are told on stderr.
func (c *hostCmd) loop(g *Globals, env *Env, outs []output, round func(context.Context) (hostRound, error)) error {
	env.exporter = metrics.New(toolVersion())
	ctx, cancel := context.WithCancel(env.Ctx)
	defer cancel()
	if c.MetricsListen != "" {
		ln, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			return usage(fmt.Errorf("--metrics-listen: %w", err))
		}
		go env.exporter.Serve(ctx, ln)
	}
	err := schedule.Run(ctx, c.Interval, round, func(r schedule.Round[hostRound]) error {
		rep := r.Value.rep
		if rep == nil {
			rep = (&report.Builder{}).Finish("host", strings.Join(hostRootsOf(c), ", "), toolVersion())
			rep.Problems = append(rep.Problems, report.Problem{Message: fmt.Sprint(r.Err)})
		}
		env.start = r.Start
		env.audit = r.Value.metrics(r.Start, r.Duration, r.Err)
		env.exporter.Update(*env.audit)
		werr := conclude(env, g, outs, rep, r.Value.firstErr, "audited", false)
		var ue *usageError
		if r.N == 1 && (errors.As(r.Err, &ue) || werr != nil) {
			if werr != nil {
				return werr
			}
			return r.Err
		}
		for _, e := range []error{r.Err, werr} {
			if e != nil {
				fmt.Fprintf(env.Stderr, "layercheck: round %d: %v\n", r.N, e)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Stopped by SIGTERM or Ctrl-C between or during rounds: a clean stop.
	env.result = nil
	return nil
}

func hostRootsOf(c *hostCmd) []string {
	roots := append([]string(nil), c.Root...)
	if c.ContainerdRoot != "" {
		roots = append(roots, c.ContainerdRoot)
	}
	return roots
}
