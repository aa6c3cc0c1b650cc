package main

import (
	"fmt"
	"os"
	"time"

	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

type compareCmd struct {
	Source   string   `arg:"" name:"source" help:"What to compare. With REF: a docker save tarball (plain, .gz or .zst) or OCI layout (directory or tar). Without REF: a host image of the Docker store at --root (name:tag, name@sha256:…, or an image ID or unique prefix); with --root, a path or a registry reference with a registry host (localhost:5000/app:1, ghcr.io/o/a@sha256:…) is instead compared as a source against the store. With --containerd-root, or a --root using Docker's containerd image store: an image of that store (docker.io/library/nginx:latest, nginx, NS/name, or a target digest prefix)."`
	Ref      string   `arg:"" optional:"" name:"ref" help:"Registry reference the artifact should equal: localhost:5000/app:1, ghcr.io/org/app@sha256:…"`
	Image    []string `help:"When the artifact holds several images: compare only this one (name, tag, or image/manifest digest prefix)." placeholder:"REF|ID"`
	Platform []string `help:"Compare only these platforms (os/arch[/variant]). Repeatable, or comma-separated." sep:","`

	Root   string `help:"Docker data root to compare with (default /var/lib/docker for a host image); opened read-only. With a SOURCE that is a path or a registry reference with a registry host, the source's own bytes are checked against this store's layerdb and tar-splits." placeholder:"DATAROOT"`
	Driver string `help:"Graph driver of --root when image/ holds several." placeholder:"NAME"`
	Remote string `help:"Registry reference to compare a host image with, instead of the repo@sha256: reference repositories.json records for it (classic store) or the image's own name (containerd store)." placeholder:"REF"`
	Deep   bool   `help:"Also prove the bytes: capture each registry (or source) layer's tar-split while it is read, compare it entry by entry with the host's tar-split.json.gz, and rebuild each host layer from disk as layercheck host does (its diffID and every file). For a containerd store it adds nothing: the local compressed blobs are always re-hashed and compared by content digest."`

	ContainerdRoot string `name:"containerd-root" help:"containerd root holding IMAGE (/var/lib/containerd, a copy or a backup), instead of a Docker data root; opened read-only. IMAGE is a meta.db image record (docker.io/library/nginx:latest, nginx, or a target digest prefix), compared with the registry reference it is named after (or --remote). A --root whose Docker data root uses the containerd image store (containerd/daemon, namespace moby) is read this way automatically." placeholder:"DIR"`
	Namespace      string `help:"containerd namespace of IMAGE (default, k8s.io, moby, ...). Default: the namespace that holds it (moby for a Docker root)." placeholder:"NS"`

	Insecure bool          `help:"Allow plain HTTP and unverified TLS certificates (loopback registries are reached over HTTP without it)."`
	Timeout  time.Duration `default:"60s" help:"Give up on a connection that sends nothing for this long."`
	Retries  int           `default:"5" help:"Retries of a failed request or an interrupted blob transfer."`
}

// Run dispatches on the arguments: ARTIFACT REF compares an artifact with a
// registry; SOURCE alone is a host image (mode 1) or, with --root and a
// SOURCE that is a path or a registry reference with a registry host, a
// source checked against the store (mode 2). See cmd_compare_host.go.
func (c *compareCmd) Run(g *Globals, env *Env) error {
	if c.Ref != "" {
		if c.Root != "" || c.Remote != "" || c.Deep || c.Driver != "" || c.ContainerdRoot != "" || c.Namespace != "" {
			env.Code = ExitUsage
			return &usageError{"compare ARTIFACT REF compares an artifact with a registry; --root, --containerd-root, --namespace, --remote, --deep and --driver are for host stores (compare [--root DATAROOT] IMAGE, compare --containerd-root DIR IMAGE, or compare --root DATAROOT SOURCE)"}
		}
		return c.runArtifact(g, env)
	}
	if c.ContainerdRoot != "" {
		if c.Root != "" || c.Driver != "" {
			env.Code = ExitUsage
			return &usageError{"compare --containerd-root DIR IMAGE compares an image of a containerd store; --root and --driver name a Docker data root instead"}
		}
		if pathExists(c.Source) {
			env.Code = ExitUsage
			return &usageError{fmt.Sprintf("%s is a file or directory: compare --containerd-root compares an image of the store (a meta.db image name) with its registry source", c.Source)}
		}
		return c.runContainerd(g, env, c.ContainerdRoot, false)
	}
	if c.Root != "" && c.Remote == "" && (pathExists(c.Source) || hasRegistryHost(c.Source)) {
		if !pathExists(c.Source) && containerdImageStore(c.Root) {
			// A containerd image store names its images by their full
			// registry reference: SOURCE is one of its images.
			return c.runContainerd(g, env, c.Root, true)
		}
		return c.runStore(g, env)
	}
	if pathExists(c.Source) {
		env.Code = ExitUsage
		return &usageError{fmt.Sprintf("%s is a file or directory: compare it with a registry (compare ARTIFACT REF) or with a host store (compare --root DATAROOT ARTIFACT)", c.Source)}
	}
	return c.runHost(g, env)
}

// runArtifact verifies both sides with the shared verifier (each layer read
// once per side) and compares what was measured, platform by platform. Exit
// 0: the same image; 1: different (or a side is damaged); 3: could not
// compare.
func (c *compareCmd) runArtifact(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		env.Code = ExitUsage
		return err
	}
	if _, err := os.Stat(c.Source); err != nil {
		env.Code = ExitUsage
		return &usageError{fmt.Sprintf("artifact: %v", err)}
	}
	client, err := registryclient.NewClient(registryclient.Options{
		Insecure:        c.Insecure,
		IdleTimeout:     c.Timeout,
		Retries:         c.Retries,
		MaxManifestSize: g.MaxManifestSize,
		UserAgent:       "layercheck/" + toolVersion(),
	})
	if err != nil {
		env.Code = ExitUsage
		return &usageError{err.Error()}
	}
	remote, err := client.Open(c.Ref)
	if err != nil {
		env.Code = ExitUsage
		return &usageError{err.Error()}
	}
	defer remote.Close()

	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	regOpts := g.verifierOptions(selection{Platform: c.Platform})
	regOpts.Progress = prog.add
	artOpts := g.verifierOptions(selection{Platform: c.Platform, Image: c.Image})
	artOpts.Progress = prog.add

	b := &report.Builder{}
	var firstErr error
	side := func(label string, verr error) {
		if verr != nil {
			b.Problem(report.Subject{Path: label}, "%v", verr)
			if firstErr == nil {
				firstErr = verr
			}
		}
	}
	regB := &report.Builder{}
	side(c.Ref, verify.New(regOpts).Verify(env.Ctx, remote, regB))
	regRep := regB.Finish("remote", c.Ref, toolVersion())

	artB := &report.Builder{}
	if env.Ctx.Err() == nil {
		art, err := openArchive(c.Source, g)
		if err != nil {
			side(c.Source, err)
		} else {
			side(c.Source, verify.New(artOpts).Verify(env.Ctx, art, artB))
			art.Close()
		}
	}
	artRep := artB.Finish("tar", c.Source, toolVersion())
	prog.done()

	for _, r := range []*report.Report{regRep, artRep} {
		b.Add(r.Findings...)
		for _, p := range r.Problems {
			b.Problem(p.Subject, "%s", p.Message)
		}
		for _, im := range r.Images {
			b.AddImage(im)
		}
	}
	if env.Ctx.Err() != nil {
		firstErr = env.Ctx.Err()
	} else if firstErr == nil {
		res := compare.Images(c.Ref, containerImages(regRep), containerImages(artRep))
		b.Add(res.Findings...)
		for _, p := range res.Problems {
			b.Problem(p.Subject, "%s", p.Message)
		}
	}
	rep := b.Finish("compare", c.Source+" vs "+c.Ref, toolVersion())
	return conclude(env, g, outs, rep, firstErr, "verified", true)
}

// containerImages drops what the verifier listed as artifacts or
// attestations: only container images are compared.
func containerImages(r *report.Report) []report.Image {
	skip := map[[2]string]bool{}
	for _, f := range r.Findings {
		if f.Check == report.Artifact {
			skip[[2]string{f.Subject.Image, f.Subject.Platform}] = true
		}
	}
	var out []report.Image
	for _, im := range r.Images {
		if !skip[[2]string{im.Name, im.Platform}] {
			out = append(out, im)
		}
	}
	return out
}
