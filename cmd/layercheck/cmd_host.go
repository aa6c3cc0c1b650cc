package main

import (
	"errors"
	"fmt"
	"github.com/layercheck/layercheck/policy"
	"os"
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
	shardFlag
}

// defaultDockerRoot is where Docker keeps its data root.
const defaultDockerRoot = "/var/lib/docker"

// roots lists the stores to audit and their required kind ("" any): the
// flags', else every default path that holds a store.
func (c *hostCmd) roots() ([]string, []store.Kind, error) {
	var roots []string
	var kinds []store.Kind
	for _, r := range c.Root {
		roots, kinds = append(roots, r), append(kinds, "")
	}
	if c.ContainerdRoot != "" {
		roots, kinds = append(roots, c.ContainerdRoot), append(kinds, store.Containerd)
	}
	if len(roots) > 0 {
		return roots, kinds, nil
	}
	for _, r := range hoststore.DefaultRoots {
		if _, err := hoststore.Detect(r); err == nil {
			roots, kinds = append(roots, r), append(kinds, "")
		}
	}
	if len(roots) == 0 {
		return nil, nil, fmt.Errorf("no store found at %s; name one with --root DIR", strings.Join(hoststore.DefaultRoots, ", "))
	}
	return roots, kinds, nil
}

// storeOpenError classifies an error of hoststore.Open: options that do not
// apply to the store found are usage errors.
func storeOpenError(err error) error {
	var oe *hoststore.OptionError
	if errors.As(err, &oe) || errors.Is(err, docker.ErrUnsupportedDriver) && strings.Contains(err.Error(), "graph driver \"") {
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
	sh, err := parseShard(c.Shard)
	if err != nil {
		return usage(err)
	}
	roots, kinds, err := c.roots()
	if err != nil {
		return err
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	vo := g.verifierOptions(selection{})
	vo.Progress, vo.Planned = prog.add, prog.plan
	opts := store.Options{
		Images: c.Images, Platforms: c.Platform, Driver: c.Driver, Namespaces: c.Namespace,
		Jobs: g.jobs(), MaxFileSize: g.MaxManifestSize, Shard: sh, Verify: vo,
	}
	var stores []store.Store
	defer func() {
		for _, s := range stores {
			s.Close()
		}
	}()
	for i, root := range roots {
		if _, err := os.Stat(root); err != nil {
			return err
		}
		st, err := hoststore.Open(root, opts)
		if err != nil {
			return storeOpenError(err)
		}
		stores = append(stores, st)
		if kinds[i] != "" && st.Kind() != kinds[i] {
			return &usageError{msg: fmt.Sprintf("%s is a %s store, not a %s root; name it with --root", root, st.Kind(), kinds[i])}
		}
	}
	rep, firstErr := store.AuditAll(env.Ctx, stores, toolVersion())
	prog.done()
	rep.Shard = sh
	// Host images are addressed by content: --require-digest has no
	// references to judge; the platform, layer size, media type and
	// wasted-bytes policies apply to the audited images as to any report.
	policy.Apply(rep, g.policy(), policyRefs("host", c.Images))
	return conclude(env, g, outs, rep, firstErr, "audited", true)
}
