package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/hoststore"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/store"
)

// compareCmd has three explicit forms; which one an argument belongs to is
// never guessed from its shape or from the flags typed.
type compareCmd struct {
	Artifact compareArtifactCmd `cmd:"" default:"withargs" help:"compare ARTIFACT REF: a docker save tarball or OCI layout with what a registry serves (manifest, config digest, every diffID and chainID, compressed layer digests where both sides have them). The default form: 'compare artifact' may be left out."`
	Host     compareHostCmd     `cmd:"" help:"compare host [--root DIR] [--remote REF] [--deep] IMAGE...: images of a host store (Docker, containerd, containers-storage, registry storage) with their registry sources: image ID, diffIDs, chainIDs, tag moved, layerdb, distribution/, compressed digests; --deep also tar-splits and every file. IMAGE is always a host image, whatever registry it names."`
	Store    compareStoreCmd    `cmd:"" help:"compare store [--root DIR] SOURCE...: registry references, docker saves or OCI layouts against a host's store: with Docker's classic store chainIDs, layerdb records and every tar-split, from the source's own bytes; with containerd, containers-storage or a registry's storage the image's config digest, diffIDs and chainIDs."`
}

// registryFlags are the registry client's flags of compare.
type registryFlags struct {
	Insecure bool          `help:"Allow plain HTTP and unverified TLS certificates (loopback registries are reached over HTTP without it)."`
	Timeout  time.Duration `default:"60s" help:"Give up on a connection that sends nothing for this long."`
	Retries  int           `default:"5" help:"Retries of a failed request or an interrupted blob transfer."`
}

func (r registryFlags) client(g *Globals) (*registryclient.Client, error) {
	c, err := registryclient.NewClient(registryclient.Options{
		Insecure:        r.Insecure,
		IdleTimeout:     r.Timeout,
		Retries:         r.Retries,
		MaxManifestSize: g.MaxManifestSize,
		UserAgent:       "layercheck/" + toolVersion(),
	})
	return c, usage(err)
}

// registry adapts the client to compare.Registry.
func registryOf(c *registryclient.Client) compare.Registry {
	return compare.RegistryFunc(func(r string) (source.Source, error) { return c.Open(r) })
}

func (g *Globals) compareOptions(platforms, images []string, prog *progress) compare.Options {
	vo := g.verifierOptions(selection{})
	vo.Progress, vo.Planned = prog.add, prog.plan
	return compare.Options{Verify: vo, Platforms: platforms, Images: images, Version: toolVersion()}
}

// oneArgHelp is the usage error of the old one-argument form.
const oneArgHelp = "compare needs two arguments, ARTIFACT REF; to compare host images with their registry sources use\n" +
	"  layercheck compare host [--root DIR | --containerd-root DIR] [--remote REF] [--deep] IMAGE...\n" +
	"and to check sources against a host's layer store use\n" +
	"  layercheck compare store [--root DIR] SOURCE..."

type compareArtifactCmd struct {
	Source   string   `arg:"" name:"artifact" help:"docker save tarball (plain, .gz or .zst) or OCI layout (directory or tar)."`
	Ref      string   `arg:"" optional:"" name:"ref" help:"Registry reference the artifact should equal: localhost:5000/app:1, ghcr.io/org/app@sha256:…"`
	Image    []string `help:"When the artifact holds several images: compare only this one (name, tag, or image/manifest digest prefix)." placeholder:"REF|ID"`
	Platform []string `help:"Compare only these platforms (os/arch[/variant]). Repeatable, or comma-separated." sep:","`
	registryFlags
	// The host flags of the old forms, accepted only to say where they
	// went: compare host and compare store.
	OldRoot           string `name:"root" hidden:""`
	OldContainerdRoot string `name:"containerd-root" hidden:""`
	OldRemote         string `name:"remote" hidden:""`
	OldDeep           bool   `name:"deep" hidden:""`
}

func (c *compareArtifactCmd) Run(g *Globals, env *Env) error {
	if c.OldRoot != "" || c.OldContainerdRoot != "" || c.OldRemote != "" || c.OldDeep {
		return &usageError{msg: "--root, --containerd-root, --remote and --deep belong to the host forms of compare; " + oneArgHelp}
	}
	if c.Ref == "" {
		return &usageError{msg: oneArgHelp}
	}
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		return usage(err)
	}
	if _, err := os.Stat(c.Source); err != nil {
		return &usageError{msg: fmt.Sprintf("artifact: %v", err)}
	}
	client, err := c.client(g)
	if err != nil {
		return err
	}
	remote, err := client.Open(c.Ref)
	if err != nil {
		return usage(err)
	}
	defer remote.Close()
	art, err := openArtifact(c.Source, g)
	if err != nil {
		return err
	}
	defer art.Close()
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	rep, ferr := compare.Artifact(env.Ctx, art, c.Source, remote, c.Ref, g.compareOptions(c.Platform, c.Image, prog))
	prog.done()
	return conclude(env, g, outs, rep, ferr, "verified", true)
}

// storeFlags name the host store compare reads.
type storeFlags struct {
	Root           string   `help:"Host store to read (a Docker data root, a containerd root, ...; the kind is recognised from its contents), opened read-only. Default: /var/lib/docker." placeholder:"DIR"`
	ContainerdRoot string   `name:"containerd-root" help:"A containerd root (/var/lib/containerd, a copy or a backup), instead of --root." placeholder:"DIR"`
	Driver         string   `help:"Graph driver of a Docker root whose image/ holds several." placeholder:"NAME"`
	Namespace      []string `help:"containerd namespace of the images (default, k8s.io, moby, ...). Default: the one that holds each (moby for a Docker root)." sep:"," placeholder:"NS"`
}

// open opens the store the flags name, once for the whole run.
func (s storeFlags) open(g *Globals, platforms []string, prog *progress) (store.Store, error) {
	root := s.Root
	switch {
	case s.Root != "" && s.ContainerdRoot != "":
		return nil, &usageError{msg: "--root and --containerd-root name two stores; give one"}
	case s.ContainerdRoot != "":
		root = s.ContainerdRoot
	case root == "":
		root = defaultDockerRoot
	}
	vo := g.verifierOptions(selection{})
	vo.Progress, vo.Planned = prog.add, prog.plan
	st, err := hoststore.Open(root, store.Options{
		Driver: s.Driver, Namespaces: s.Namespace, Platforms: platforms,
		Jobs: g.jobs(), MaxFileSize: g.MaxManifestSize, Verify: vo,
	})
	if err != nil {
		return nil, storeOpenError(err)
	}
	if s.ContainerdRoot != "" && st.Kind() != store.Containerd {
		st.Close()
		return nil, &usageError{msg: fmt.Sprintf("--containerd-root %s is a %s store, not a containerd root; name it with --root", root, st.Kind())}
	}
	return st, nil
}

type compareHostCmd struct {
	Images   []string `arg:"" name:"image" help:"Host images: name:tag (nginx means docker.io/library/nginx:latest), name@sha256:…, or an image ID or unique prefix. Always an image of the host store, whatever registry its name has."`
	Remote   string   `help:"Registry reference to compare the image with, instead of the one the store recorded for it (Docker: the repo@sha256: of repositories.json; containerd: the image's own name)." placeholder:"REF"`
	Deep     bool     `help:"Also prove the bytes: capture each registry layer's tar-split while it is read, compare it entry by entry with the host's tar-split.json.gz, and rebuild each host layer from disk as layercheck host does (its diffID and every file), once for all images. A containerd store's local blobs are always re-hashed."`
	Platform []string `help:"containerd: compare only these platforms (os/arch[/variant]). Repeatable, or comma-separated." sep:","`
	storeFlags
	registryFlags
}

func (c *compareHostCmd) Run(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		return usage(err)
	}
	if c.Remote != "" && len(c.Images) > 1 {
		return &usageError{msg: "--remote names one registry image: compare one host image with it"}
	}
	client, err := c.client(g)
	if err != nil {
		return err
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	st, err := c.open(g, c.Platform, prog)
	if err != nil {
		return err
	}
	defer st.Close()
	opts := g.compareOptions(c.Platform, nil, prog)
	opts.Remote, opts.Deep = c.Remote, c.Deep
	rep, ferr := compare.HostImages(env.Ctx, st, registryOf(client), c.Images, opts)
	prog.done()
	if rep == nil {
		return ferr
	}
	return conclude(env, g, outs, rep, ferr, "compared", true)
}

type compareStoreCmd struct {
	Sources  []string `arg:"" name:"source" help:"Sources to check against the store: a docker save tarball or OCI layout (a path that exists), or a registry reference (docker://REF says so explicitly)."`
	Image    []string `help:"When a source holds several images: only this one (name, tag, or image/manifest digest prefix)." placeholder:"REF|ID"`
	Platform []string `help:"Only these platforms (os/arch[/variant]). Repeatable, or comma-separated." sep:","`
	Deep     bool     `help:"Also rebuild each matching host image's layers from disk (their diffIDs and every file), once for all sources."`
	Root     string   `help:"Store to check the sources against, opened read-only: a Docker data root (default /var/lib/docker), a containerd root, a containers-storage graph root or a registry's storage, recognised from its contents." placeholder:"DIR"`
	Driver   string   `help:"Graph driver of --root when image/ holds several." placeholder:"NAME"`
	registryFlags
}

func (c *compareStoreCmd) Run(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		return usage(err)
	}
	client, err := c.client(g)
	if err != nil {
		return err
	}
	var srcs []compare.NamedSource
	defer func() {
		for _, s := range srcs {
			s.Source.Close()
		}
	}()
	for _, name := range c.Sources {
		src, command, err := openSource(name, client, g)
		if err != nil {
			return err
		}
		srcs = append(srcs, compare.NamedSource{Name: name, Command: command, Source: src})
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	st, err := storeFlags{Root: c.Root, Driver: c.Driver}.open(g, nil, prog)
	if err != nil {
		return err
	}
	defer st.Close()
	opts := g.compareOptions(c.Platform, c.Image, prog)
	opts.Deep = c.Deep
	rep, ferr := compare.Sources(env.Ctx, st, srcs, opts)
	prog.done()
	if rep == nil {
		return ferr
	}
	return conclude(env, g, outs, rep, ferr, "compared", true)
}

// openSource opens a compare store SOURCE: docker://REF is a registry
// reference; otherwise a path that exists is an artifact and anything else a
// registry reference (a typo'd path fails as a reference, naming both).
func openSource(name string, client *registryclient.Client, g *Globals) (source.Source, string, error) {
	if r, ok := strings.CutPrefix(name, "docker://"); ok {
		s, err := client.Open(r)
		return s, "remote", usage(err)
	}
	if _, err := os.Stat(name); err == nil {
		s, err := openArtifact(name, g)
		return s, "tar", err
	}
	s, err := client.Open(name)
	if err != nil {
		return nil, "", &usageError{msg: fmt.Sprintf("source %s is neither a file or directory nor a registry reference: %v", name, err), err: err}
	}
	return s, "remote", nil
}
