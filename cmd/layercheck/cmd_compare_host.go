package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/hoststore/containerd"
	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/tarsplit"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// The two host modes of layercheck compare:
//
//	compare [--root DATAROOT] [--remote REF] [--deep] IMAGE   (runHost)
//	compare --root DATAROOT SOURCE                             (runStore)
//
// Which one an argument means: with REF it is an artifact (cmd_compare.go).
// Alone, a path that exists or, with --root, a registry reference with a
// registry host ("localhost:5000/app:1", "ghcr.io/o/a:1") is a SOURCE
// checked against the store; anything else names a host image.

// pathExists reports whether s names an existing file or directory.
func pathExists(s string) bool {
	_, err := os.Stat(s)
	return err == nil
}

// hasRegistryHost reports whether a reference names its registry: a first
// path component with a dot or a port, or localhost.
func hasRegistryHost(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	if !ok {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[")
}

// refName splits a familiar reference into its repository name, tag and
// digest ("" when absent).
func refName(ref string) (repo, tag, dgst string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i], "", ref[i+1:]
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i+1:], "/") {
		return ref[:i], ref[i+1:], ""
	}
	return ref, "", ""
}

// fullRepo turns a familiar repository name into the full name Docker's
// distribution metadata records (SourceRepository): docker.io/library/nginx.
func fullRepo(name string) string {
	first, _, ok := strings.Cut(name, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[")) {
		if first == "index.docker.io" || first == "registry-1.docker.io" {
			return "docker.io/" + name[len(first)+1:]
		}
		return name
	}
	if !ok {
		return "docker.io/library/" + name
	}
	return "docker.io/" + name
}

// captures keeps one tar-split capture per layer blob, attached to the
// verifier's pass of that blob (verify.Options.LayerTaps), by location.
type captures struct {
	mu sync.Mutex
	m  map[string]*tarsplit.Capture
}

func newCaptures() *captures { return &captures{m: map[string]*tarsplit.Capture{}} }

func (c *captures) tap(b source.Blob) []io.Writer {
	// Raw segment bytes are kept only to show a differing header; hashes
	// and lengths are always kept.
	cp := tarsplit.NewCaptureWith(tarsplit.CaptureOptions{MaxKeptRawBytes: 1 << 20})
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[b.Location()]; old != nil {
		old.Close()
	}
	c.m[b.Location()] = cp
	return []io.Writer{cp}
}

// closeAll ends every capture; call it after the verifier returned.
func (c *captures) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cp := range c.m {
		cp.Close()
	}
}

func (c *captures) get(loc string) *tarsplit.Capture {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[loc]
}

// registryClient builds the registry client of compare's flags.
func (c *compareCmd) registryClient(g *Globals) (*registryclient.Client, error) {
	return registryclient.NewClient(registryclient.Options{
		Insecure:        c.Insecure,
		IdleTimeout:     c.Timeout,
		Retries:         c.Retries,
		MaxManifestSize: g.MaxManifestSize,
		UserAgent:       "layercheck/" + toolVersion(),
	})
}

// verifySide verifies one source into its own report, with a tar-split
// capture on every layer's pass when caps is not nil.
func verifySide(ctx context.Context, src source.Source, opts verify.Options, caps *captures, command, name string) (*report.Report, error) {
	if caps != nil {
		opts.LayerTaps = caps.tap
	}
	b := &report.Builder{}
	err := verify.New(opts).Verify(ctx, src, b)
	if caps != nil {
		caps.closeAll()
	}
	return b.Finish(command, name, toolVersion()), err
}

// outcome collects the compare report and the first error.
type outcome struct {
	b        *report.Builder
	firstErr error
	prog     *progress
}

func (o *outcome) merge(r *report.Report) {
	o.b.Add(r.Findings...)
	for _, p := range r.Problems {
		o.b.Problem(p.Subject, "%s", p.Message)
	}
	for _, im := range r.Images {
		o.b.AddImage(im)
	}
}

func (o *outcome) result(res compare.Result) {
	o.b.Add(res.Findings...)
	for _, p := range res.Problems {
		o.b.Problem(p.Subject, "%s", p.Message)
	}
}

func (o *outcome) fail(subj report.Subject, err error) {
	o.b.Problem(subj, "%v", err)
	if o.firstErr == nil {
		o.firstErr = err
	}
}

// finish writes the report and sets the exit code.
func (o *outcome) finish(env *Env, g *Globals, outs []output, name string) error {
	o.prog.done()
	if env.Ctx.Err() != nil {
		o.firstErr = env.Ctx.Err()
	}
	rep := o.b.Finish("compare", name, toolVersion())
	return conclude(env, g, outs, rep, o.firstErr, "compared", true)
}

// openStore opens the Docker data root of --root (default /var/lib/docker).
func (c *compareCmd) openStore(g *Globals, prog *progress) (*docker.Store, error) {
	root := c.Root
	if root == "" {
		root = defaultDockerRoot
	}
	st, err := docker.Open(root, docker.Options{
		Driver:      c.Driver,
		Jobs:        g.jobs(),
		MaxFileSize: g.MaxManifestSize,
		Pass:        g.verifierOptions(selection{}).Pass,
		Progress:    prog.add,
	})
	if errors.Is(err, docker.ErrNotDockerRoot) {
		if _, ok := containerd.DockerRoot(root); ok {
			return nil, fmt.Errorf("%w; it uses the containerd image store: compare --root DATAROOT SOURCE checks a source against Docker's classic (graph-driver) store only (compare --root DATAROOT IMAGE compares one of its images with its registry source)", err)
		}
		return nil, fmt.Errorf("%w; a Docker data root holds image/<driver> (classic store) or containerd/daemon (containerd image store); for a standalone containerd root use --containerd-root", err)
	}
	return st, err
}

// hostSource is the registry reference a host image is compared with, and
// how it was found.
type hostSource struct {
	ref    string // what is verified
	repo   string // full repository name (distribution metadata's SourceRepository)
	pulled string // the host's recorded repo digest reference ("" when none)
	tag    string // the host's tag in that repository ("" when none)
}

// registrySource finds where a host image came from: --remote, else the
// repo@sha256: reference repositories.json records (preferring the
// repository the user named).
func (c *compareCmd) registrySource(img *docker.HostImage) (hostSource, error) {
	userRepo, userTag, _ := refName(c.Source)
	if c.Remote != "" {
		repo, tag, dg := refName(c.Remote)
		hs := hostSource{ref: c.Remote, repo: fullRepo(repo)}
		for _, d := range img.RepoDigests {
			if r, _, _ := refName(d); fullRepo(r) == hs.repo {
				hs.pulled = d
				break
			}
		}
		if tag != "" && dg == "" {
			hs.tag = c.Remote
		}
		return hs, nil
	}
	if len(img.RepoDigests) == 0 {
		return hostSource{}, fmt.Errorf("image %s (%s) has no registry source: repositories.json records no repo@sha256: reference for it (built, loaded or imported locally, never pulled or pushed); name one with --remote REF", c.Source, img.ID)
	}
	pick := img.RepoDigests[0]
	for _, d := range img.RepoDigests {
		if r, _, _ := refName(d); fullRepo(r) == fullRepo(userRepo) {
			pick = d
			break
		}
	}
	repo, _, _ := refName(pick)
	hs := hostSource{ref: pick, repo: fullRepo(repo), pulled: pick}
	for _, t := range img.RepoTags {
		r, tg, _ := refName(t)
		if fullRepo(r) != hs.repo {
			continue
		}
		if hs.tag == "" || (tg == userTag && fullRepo(r) == fullRepo(userRepo)) {
			hs.tag = t
		}
	}
	return hs, nil
}

// resolveDigest fetches the manifest a reference names and returns its
// digest (one manifest request; the verification reuses it).
func resolveDigest(ctx context.Context, client *registryclient.Client, ref string) (*registryclient.Source, digest.Digest, error) {
	src, err := client.Open(ref)
	if err != nil {
		return nil, "", err
	}
	ts, err := src.Targets(ctx)
	if err != nil {
		return nil, "", err
	}
	if len(ts) != 1 || ts[0].Descriptor == nil {
		return nil, "", fmt.Errorf("%s: no manifest", ref)
	}
	return src, ts[0].Descriptor.Digest, nil
}

// checkTag is the tag-moved check of both host stores: it resolves tagRef
// in the registry and compares its digest with pulledRef's (repo@digest, what
// the host recorded when it pulled). A moved tag is an error finding with both
// digests, a tag that cannot be resolved a warning. It returns the registry
// source to compare with and the reference it names: the pulled digest when
// preferPulled and the registry still serves it, else what the tag serves now;
// when the tag did not move, nil and the caller's target (the caller opens
// it). stop is true when the context was cancelled.
func checkTag(ctx context.Context, client *registryclient.Client, b *report.Builder, subj report.Subject,
	tagRef, pulledRef, target string, preferPulled bool) (src *registryclient.Source, to string, stop bool) {
	_, _, pulled := refName(pulledRef)
	tagSrc, now, err := resolveDigest(ctx, client, tagRef)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return nil, "", true
		}
		b.Add(report.Finding{Check: compare.TagMoved, Severity: report.Warning, Subject: subj,
			Message:  fmt.Sprintf("the tag %s could not be resolved in the registry (%v), so whether it moved is unknown (a tag deleted upstream looks like this); compared by the pulled digest", tagRef, err),
			Expected: "a manifest", Actual: pulled})
		return nil, pulledRef, false
	case now.String() == pulled:
		if target == tagRef {
			return tagSrc, tagRef, false
		}
		return nil, target, false
	}
	msg := fmt.Sprintf("the tag %s moved upstream since the host pulled it: the registry now serves %s, the host recorded %s; the local copy is stale, not necessarily damaged", tagRef, now, pulled)
	src, to = tagSrc, tagRef
	if preferPulled {
		if pulledSrc, _, perr := resolveDigest(ctx, client, pulledRef); perr == nil {
			msg += "; compared below with the pulled digest, which the registry still serves"
			src, to = pulledSrc, pulledRef
		} else {
			msg += fmt.Sprintf("; the registry no longer serves the pulled digest (%v), so the host image is compared with what the tag serves now", perr)
		}
	}
	b.Add(report.Finding{Check: compare.TagMoved, Severity: report.Error, Subject: subj, Message: msg, Expected: now.String(), Actual: pulled})
	return src, to, false
}

// runHost compares a host image with its registry source (mode 1).
func (c *compareCmd) runHost(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		env.Code = ExitUsage
		return err
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	st, err := c.openStore(g, prog)
	if err != nil {
		root := c.Root
		if root == "" {
			root = defaultDockerRoot
		}
		if _, ok := containerd.DockerRoot(root); ok && errors.Is(err, docker.ErrNotDockerRoot) && c.Driver == "" {
			// Docker's containerd image store, detected as layercheck host does.
			return c.runContainerd(g, env, root, true)
		}
		env.Code = ExitCannotCheck
		return err
	}
	if c.Namespace != "" {
		env.Code = ExitUsage
		return &usageError{fmt.Sprintf("--namespace is for containerd stores; %s is Docker's classic (graph-driver) store", st.Root())}
	}
	img, err := st.LookupImage(c.Source)
	if err != nil {
		env.Code = ExitCannotCheck
		return fmt.Errorf("host image: %w", err)
	}
	hs, err := c.registrySource(img)
	if err != nil {
		env.Code = ExitCannotCheck
		return err
	}
	client, err := c.registryClient(g)
	if err != nil {
		env.Code = ExitUsage
		return &usageError{err.Error()}
	}
	o := &outcome{b: &report.Builder{}, prog: prog}
	subj := report.Subject{Image: c.Source, Platform: img.Platform()}
	ctx := env.Ctx

	// Tag moved: the host's tag now resolves to another digest than the
	// one the host recorded when it pulled (or pushed).
	target := hs.ref
	var regSrc *registryclient.Source
	if hs.tag != "" && hs.pulled != "" {
		var stop bool
		// With --remote the user chose what to compare with; otherwise the
		// digest the host pulled, while the registry still serves it.
		regSrc, target, stop = checkTag(ctx, client, o.b, subj, hs.tag, hs.pulled, target, c.Remote == "")
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

	var caps *captures
	if c.Deep {
		caps = newCaptures()
	}
	opts := g.verifierOptions(selection{Platform: []string{img.Platform()}})
	opts.Progress = prog.add
	regRep, verr := verifySide(ctx, regSrc, opts, caps, "remote", target)
	o.merge(regRep)
	if verr != nil {
		if errors.Is(verr, verify.ErrNoMatch) {
			o.b.Add(report.Finding{Check: compare.MissingPlatform, Severity: report.Error, Subject: subj,
				Message: fmt.Sprintf("%s serves no manifest for the host image's platform", target), Expected: "absent", Actual: img.Platform()})
		} else {
			o.fail(report.Subject{Image: target}, verr)
		}
		return o.finish(env, g, outs, c.Source+" vs "+target)
	}
	want, ok := pickImage(containerImages(regRep), img.ID.String())
	if !ok {
		o.b.Problem(subj, "%s holds no container image to compare", target)
		return o.finish(env, g, outs, c.Source+" vs "+target)
	}
	res := compare.Host(c.Source, want, img, hs.repo, st.DiffIDByDigest)
	o.result(res)
	if c.Deep {
		c.deep(ctx, st, o, subj, want, img.Layers, caps, img.ID.String(), g, prog)
	} else {
		o.b.AddImage(compare.HostReportImage(img))
	}
	return o.finish(env, g, outs, c.Source+" vs "+target)
}

// pickImage chooses the registry image to compare: the one with the host's
// config digest, else the only (or first) one.
func pickImage(imgs []report.Image, id string) (report.Image, bool) {
	for _, im := range imgs {
		if im.ConfigDigest == id {
			return im, true
		}
	}
	if len(imgs) == 0 {
		return report.Image{}, false
	}
	return imgs[0], true
}

// tarSplits compares the tar-split captured from each source layer with the
// host's tar-split.json.gz of the layer at the same index.
func tarSplits(st *docker.Store, o *outcome, subj report.Subject, want report.Image, layers []docker.HostLayer, caps *captures) {
	for i, wl := range want.Layers {
		if i >= len(layers) || !layers[i].Present || layers[i].TarSplit == "" {
			continue // reported by the layer store checks
		}
		ls := subj
		ls.Layer = report.LayerIndex(i)
		cp := caps.get(wl.Location)
		if cp == nil {
			o.b.Problem(ls, "layer %d was not read, so its tar-split was not captured", i)
			continue
		}
		cp.Rewind()
		rc, err := st.OpenFile(layers[i].TarSplit)
		if err != nil {
			o.b.Problem(ls, "opening the host's tar-split: %v", err)
			continue
		}
		rd, err := tarsplit.Open(rc)
		var d *tarsplit.Diff
		if err != nil {
			d = &tarsplit.Diff{Err: fmt.Errorf("reading second tar-split: %w", err)}
		} else {
			d = tarsplit.Compare(cp, rd)
		}
		rc.Close()
		f, p := compare.TarSplitResult(ls, layers[i].TarSplit, d)
		if f != nil {
			o.b.Add(*f)
		}
		if p != nil {
			o.b.Problem(p.Subject, "%s", p.Message)
		}
	}
}

// deep compares the tar-splits and rebuilds the host image's layers from
// disk with the host audit (its findings name the first damaged file).
func (c *compareCmd) deep(ctx context.Context, st *docker.Store, o *outcome, subj report.Subject, want report.Image, layers []docker.HostLayer, caps *captures, id string, g *Globals, prog *progress) {
	if caps != nil {
		tarSplits(st, o, subj, want, layers, caps)
	}
	if id == "" {
		return
	}
	aud, err := docker.Open(st.Root(), docker.Options{
		Driver:      st.Driver(),
		Images:      []string{id},
		Jobs:        g.jobs(),
		MaxFileSize: g.MaxManifestSize,
		Pass:        g.verifierOptions(selection{}).Pass,
		Progress:    prog.add,
	})
	if err != nil {
		o.fail(report.Subject{Path: st.Root()}, err)
		return
	}
	hb := &report.Builder{}
	if err := aud.Audit(ctx, hb); err != nil {
		o.fail(report.Subject{Path: aud.String()}, err)
	}
	o.merge(hb.Finish("host", aud.String(), toolVersion()))
}

// runStore checks a source (registry reference, docker save, OCI layout)
// against a host's layer store (mode 2): from the source's bytes, each
// layer's diffID, chainID and tar-split, captured in the one pass that
// verifies it; then the host image by config digest (or name), every
// chainID's layerdb record and tar-split.json.gz.
func (c *compareCmd) runStore(g *Globals, env *Env) error {
	outs, err := parseOutputs(g.Output, g.Quiet)
	if err != nil {
		env.Code = ExitUsage
		return err
	}
	prog := newProgress(env.Stderr, g.NoProgress || g.Quiet)
	st, err := c.openStore(g, prog)
	if err != nil {
		env.Code = ExitCannotCheck
		return err
	}
	if c.Namespace != "" {
		env.Code = ExitUsage
		return &usageError{fmt.Sprintf("--namespace is for containerd stores; %s is Docker's classic (graph-driver) store", st.Root())}
	}
	var src source.Source
	command := "remote"
	if pathExists(c.Source) {
		command = "tar"
		src, err = openArchive(c.Source, g)
		if err != nil {
			env.Code = ExitCannotCheck
			return err
		}
	} else {
		client, cerr := c.registryClient(g)
		if cerr != nil {
			env.Code = ExitUsage
			return &usageError{cerr.Error()}
		}
		rs, oerr := client.Open(c.Source)
		if oerr != nil {
			env.Code = ExitUsage
			return &usageError{oerr.Error()}
		}
		src = rs
	}
	defer src.Close()
	name := c.Source + " vs " + st.String()
	o := &outcome{b: &report.Builder{}, prog: prog}
	caps := newCaptures()
	opts := g.verifierOptions(selection{Platform: c.Platform, Image: c.Image})
	opts.Progress = prog.add
	srcRep, verr := verifySide(env.Ctx, src, opts, caps, command, c.Source)
	o.merge(srcRep)
	if verr != nil {
		o.fail(report.Subject{Image: c.Source}, verr)
		return o.finish(env, g, outs, name)
	}
	imgs := containerImages(srcRep)
	if len(imgs) == 0 {
		o.b.Problem(report.Subject{Image: c.Source}, "the source holds no container image to compare")
		return o.finish(env, g, outs, name)
	}
	var missing []report.Image
	matched := 0
	for _, im := range imgs {
		subj := report.Subject{Image: im.Name, Platform: im.Platform}
		host, how := lookupHost(st, im)
		if host != nil {
			matched++
			if how != "config" {
				o.b.Add(report.Finding{Check: compare.Config, Severity: report.Error, Subject: subj,
					Message: fmt.Sprintf("no host image has the source's config digest; the host image named %s is another image", how), Expected: im.ConfigDigest, Actual: host.ID.String()})
			}
		} else {
			missing = append(missing, im)
		}
		var layers []docker.HostLayer
		for _, l := range im.Layers {
			if l.ChainID == "" {
				break
			}
			hl, err := st.Layer(digest.Digest(l.ChainID))
			if err != nil {
				o.b.Problem(subj, "%v", err)
				break
			}
			layers = append(layers, hl)
		}
		o.result(compare.LayerStore(subj, im, layers))
		tarSplits(st, o, subj, im, layers, caps)
		if host != nil {
			if c.Deep {
				c.deep(env.Ctx, st, o, subj, im, nil, nil, host.ID.String(), g, prog)
			} else {
				o.b.AddImage(compare.HostReportImage(host))
			}
		}
	}
	for _, im := range missing {
		sev := report.Error
		msg := "the host store holds no image with the source's config digest (image ID), nor one of its names"
		if matched > 0 {
			sev = report.Info
			msg += " (another platform of the source is on the host: a pull keeps one platform)"
		}
		o.b.Add(report.Finding{Check: compare.HostImage, Severity: sev, Subject: report.Subject{Image: im.Name, Platform: im.Platform}, Message: msg, Expected: im.ConfigDigest, Actual: "absent"})
	}
	return o.finish(env, g, outs, name)
}

// lookupHost finds the host image of a source image: by config digest,
// else by one of its names. how is "config" or the name that matched.
func lookupHost(st *docker.Store, im report.Image) (*docker.HostImage, string) {
	if im.ConfigDigest != "" {
		if h, err := st.LookupImage(im.ConfigDigest); err == nil {
			return h, "config"
		}
	}
	for _, n := range append([]string{im.Name}, im.Tags...) {
		if n == "" || strings.HasPrefix(n, "sha256:") {
			continue
		}
		if h, err := st.LookupImage(n); err == nil {
			return h, n
		}
	}
	return nil, ""
}
