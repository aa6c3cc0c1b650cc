package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/hoststore/containerd"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

// The containerd mode of layercheck compare:
//
//	compare --containerd-root DIR [--namespace NS] [--remote REF] IMAGE
//	compare [--root DATAROOT] IMAGE   (a Docker data root with the containerd image store)
//
// The image is a meta.db image record; its registry source is its own name
// (containerd keeps the reference it pulled as the image name, and the
// target digest is what was pulled), or --remote. Both sides hold the
// compressed blobs, so everything is compared by content digest.

// containerdImageStore tells whether root is a Docker data root using the
// containerd image store: no image/ directory (the classic store's), a
// containerd root at containerd/daemon.
func containerdImageStore(root string) bool {
	if _, err := os.Stat(filepath.Join(root, "image")); err == nil {
		return false
	}
	_, ok := containerd.DockerRoot(root)
	return ok
}

// containerdOptions are the store options of compare's flags.
func (c *compareCmd) containerdOptions(g *Globals, prog *progress) containerd.Options {
	vo := g.verifierOptions(selection{})
	vo.Progress = prog.add
	var ns []string
	if c.Namespace != "" {
		ns = []string{c.Namespace}
	}
	return containerd.Options{Namespaces: ns, Platforms: c.Platform, Jobs: g.jobs(), Verify: vo}
}

// openContainerd opens the containerd root: a standalone one, or the one
// beside a Docker data root (dockerRoot).
func (c *compareCmd) openContainerd(root string, dockerRoot bool, opts containerd.Options) (*containerd.Store, error) {
	if dockerRoot {
		return containerd.OpenDocker(root, opts)
	}
	return containerd.Open(root, opts)
}

// comparedPlatforms picks the platform manifests to compare: those
// --platform selects; else those the host unpacked or holds every layer
// blob of (containerd fetches only the manifest and config of the other
// platforms of an index); else those it holds some layer blob of; else
// every one whose config is present.
func (c *compareCmd) comparedPlatforms(img *containerd.HostImage) []containerd.HostPlatform {
	if len(c.Platform) > 0 {
		var out []containerd.HostPlatform
		for _, p := range img.Platforms {
			if verify.PlatformSelected(c.Platform, p.Platform) {
				out = append(out, p)
			}
		}
		return out
	}
	tiers := []func(p containerd.HostPlatform) bool{
		func(p containerd.HostPlatform) bool {
			all := true
			for _, l := range p.Layers {
				all = all && l.Blob
			}
			return p.Unpacked || all
		},
		func(p containerd.HostPlatform) bool {
			for _, l := range p.Layers {
				if l.Blob {
					return true
				}
			}
			return false
		},
		func(p containerd.HostPlatform) bool { return p.ConfigPresent },
	}
	for _, keep := range tiers {
		var out []containerd.HostPlatform
		for _, p := range img.Platforms {
			if keep(p) {
				out = append(out, p)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// runContainerd compares an image of a containerd store with its registry
// source. root is --containerd-root, or a Docker data root whose
// containerd image store is used (dockerRoot).
func (c *compareCmd) runContainerd(g *Globals, env *Env, root string, dockerRoot bool) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		env.Code = ExitUsage
		return err
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	st, err := c.openContainerd(root, dockerRoot, c.containerdOptions(g, prog))
	if err != nil {
		env.Code = ExitCannotCheck
		return err
	}
	img, err := st.FindImage(c.Source)
	if err != nil {
		env.Code = ExitCannotCheck
		return fmt.Errorf("host image: %w", err)
	}
	plats := c.comparedPlatforms(img)
	if len(plats) == 0 {
		if len(c.Platform) > 0 {
			env.Code = ExitCannotCheck
			return fmt.Errorf("host image %s/%s: no platform manifest in the content store matches --platform %s", img.Namespace, img.Name, strings.Join(c.Platform, ","))
		}
		// Nothing to compare: the audit says what is missing (a target
		// or config blob gone is a finding of its own).
		o := &outcome{b: &report.Builder{}, prog: prog}
		if _, ok := auditLocal(env, o, st, img); ok {
			o.b.Problem(report.Subject{Image: c.Source, Digest: img.Target.Digest.String()}, "no platform manifest with its config is in the content store: nothing to compare with the registry")
		}
		return o.finish(env, g, outs, c.Source)
	}
	var platNames []string
	for _, p := range plats {
		platNames = append(platNames, p.Platform)
	}
	client, err := c.registryClient(g)
	if err != nil {
		env.Code = ExitUsage
		return &usageError{err.Error()}
	}
	o := &outcome{b: &report.Builder{}, prog: prog}
	subj := report.Subject{Image: c.Source}
	ctx := env.Ctx
	pulled := img.Target.Digest.String()

	ref := c.Remote
	if ref == "" {
		ref = img.Name
	}
	repo, tag, dg := refName(ref)
	imgRepo, _, _ := refName(img.Name)
	target := ref
	var regSrc *registryclient.Source
	if tag != "" && dg == "" && fullRepo(repo) == fullRepo(imgRepo) {
		// Tag moved: the tag now resolves to another digest than the
		// target the host pulled.
		var stop bool
		regSrc, target, stop = checkTag(ctx, client, o.b, subj, ref, repo+"@"+pulled, target, true)
		if stop {
			return o.finish(env, g, outs, c.Source)
		}
	}
	if regSrc == nil {
		regSrc, err = client.Open(target)
		if err != nil {
			env.Code = ExitUsage
			return &usageError{err.Error()}
		}
	}
	defer regSrc.Close()
	name := c.Source + " vs " + target

	opts := g.verifierOptions(selection{Platform: platNames})
	opts.Progress = prog.add
	regRep, verr := verifySide(ctx, regSrc, opts, nil, "remote", target)
	o.merge(regRep)
	if verr != nil {
		if errors.Is(verr, verify.ErrNoMatch) {
			o.b.Add(report.Finding{Check: compare.MissingPlatform, Severity: report.Error, Subject: subj,
				Message: fmt.Sprintf("%s serves no manifest for the host image's platforms", target), Expected: "absent", Actual: strings.Join(platNames, ", ")})
		} else {
			o.fail(report.Subject{Image: target}, verr)
		}
		return o.finish(env, g, outs, name)
	}

	hostRep, ok := auditLocal(env, o, st, img)
	if !ok {
		return o.finish(env, g, outs, name)
	}

	host := compare.ContainerdImage{Target: pulled, TargetIsIndex: len(img.Absent) > 0 || isIndexMediaType(img.Target.MediaType)}
	want := map[string]bool{}
	for _, p := range plats {
		sp := compare.StorePlatform{Platform: p.Platform, ManifestDigest: p.Manifest.Digest.String()}
		for _, l := range p.Layers {
			sp.Layers = append(sp.Layers, compare.StoreLayer{Digest: l.Desc.Digest.String(), Size: l.Desc.Size, DiffID: l.DiffID.String(),
				ChainID: l.ChainID.String(), Blob: l.Blob, Snapshotters: l.Snapshotters})
		}
		host.Platforms = append(host.Platforms, sp)
		want[sp.ManifestDigest] = true
	}
	var got []report.Image
	for _, im := range containerImages(hostRep) {
		if im.Name == img.Namespace+"/"+img.Name && want[im.ManifestDigest] {
			got = append(got, im)
		}
	}
	o.result(compare.Containerd(c.Source, containerImages(regRep), got, host))
	return o.finish(env, g, outs, name)
}

func isIndexMediaType(mt string) bool {
	return mt == "application/vnd.oci.image.index.v1+json" || mt == verify.MediaTypeDockerList
}

// auditLocal runs the containerd audit of this one image into o: the
// shared verifier over its content blobs (every blob re-hashed, every layer
// decompressed for its diffID) and the checks of its records and
// snapshots. ok is false when the audit could not run or was interrupted.
func auditLocal(env *Env, o *outcome, st *containerd.Store, img *containerd.HostImage) (*report.Report, bool) {
	aud, err := st.Select([]string{img.Namespace}, []string{img.Namespace + "/" + img.Name})
	if err != nil {
		o.fail(report.Subject{Path: st.Root()}, err)
		return nil, false
	}
	hb := &report.Builder{}
	if err := aud.Audit(env.Ctx, hb); err != nil {
		o.fail(report.Subject{Path: aud.String()}, err)
		return nil, false
	}
	rep := hb.Finish("host", aud.String(), toolVersion())
	o.merge(rep)
	return rep, env.Ctx.Err() == nil
}
