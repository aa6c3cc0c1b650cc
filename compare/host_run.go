package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/layercheck/layercheck/hoststore/containerd"
	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/ref"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/tarsplit"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HostImages compares images of a host store with their registry sources
// (`layercheck compare host`): each image named by reference, ID or unique
// prefix is looked up in the store, its registry source is the reference
// the store recorded for it (or opts.Remote), the tag it was pulled under
// is checked for having moved, and the registry's image is verified and
// compared with what the store holds. With opts.Deep the host side's
// layers are rebuilt from disk too, once for all the images. The report
// always comes back; the error is the first "could not compare".
func HostImages(ctx context.Context, st store.Store, reg Registry, images []string, opts Options) (*report.Report, error) {
	o := &outcome{version: opts.Version}
	switch s := st.(type) {
	case *docker.Store:
		var deep []string
		caps := newCaptures()
		for _, name := range images {
			if ctx.Err() != nil {
				break
			}
			if id := dockerImage(ctx, s, reg, o, name, opts, caps); id != "" {
				deep = append(deep, id)
			}
		}
		if opts.Deep && len(deep) > 0 && ctx.Err() == nil {
			// One audit for all images: layers they share are rebuilt once.
			hb := &report.Builder{}
			aud := s.Select(deep)
			if err := aud.Audit(ctx, hb); err != nil {
				o.fail(report.Subject{Path: aud.String()}, err)
			}
			o.merge(hb.Finish("host", aud.String(), opts.Version))
		}
	case *containerd.Store:
		for _, name := range images {
			if ctx.Err() != nil {
				break
			}
			containerdImage(ctx, s, reg, o, name, opts)
		}
	default:
		if err := deepSupported(st, opts); err != nil {
			return nil, err
		}
		var deep []string
		for _, name := range images {
			if ctx.Err() != nil {
				break
			}
			if id := modelImage(ctx, st, reg, o, name, opts); id != "" {
				deep = append(deep, id)
			}
		}
		deepModel(ctx, st, o, deep, opts)
	}
	return o.finish(ctx, strings.Join(images, ", ")+" vs registry")
}

// deepSupported refuses --deep for a store that cannot audit a selection
// of its images (every store layercheck opens can; the check keeps --deep
// from being ignored).
func deepSupported(st store.Store, opts Options) error {
	if _, ok := st.(store.Selector); opts.Deep && !ok {
		return &ArgumentError{fmt.Errorf("--deep: a %s store cannot audit a selection of its images; audit it with layercheck host --root %s", st.Kind(), st.Root())}
	}
	return nil
}

// deepModel is --deep for a store known through the store model: one audit
// of the images compared (ids: their selection keys), so layers they share
// are rebuilt once.
func deepModel(ctx context.Context, st store.Store, o *outcome, ids []string, opts Options) {
	sel, ok := st.(store.Selector)
	if !opts.Deep || !ok || len(ids) == 0 || ctx.Err() != nil {
		return
	}
	slices.Sort(ids)
	sub, err := sel.SelectImages(slices.Compact(ids))
	if err != nil {
		o.fail(report.Subject{Path: st.String()}, err)
		return
	}
	defer sub.Close()
	hb := &report.Builder{}
	if err := sub.Audit(ctx, hb); err != nil {
		o.fail(report.Subject{Path: sub.String()}, err)
	}
	o.merge(hb.Finish("host", sub.String(), opts.Version))
}

// hostSource is the registry reference a host image is compared with, and
// how it was found.
type hostSource struct {
	ref    string // what is verified
	repo   string // full repository name (distribution metadata's SourceRepository)
	pulled string // the host's recorded repo digest reference ("" when none)
	// also are the other digests the host records in that repository (a
	// load and a pull, an index and its platform manifest): the tag serving
	// any of them has not moved.
	also []string
	tag  string // the host's tag in that repository ("" when none)
}

// dockerImage compares one image of a Docker classic store; it returns the
// image ID for the deep audit ("" when the comparison stopped early).
func dockerImage(ctx context.Context, st *docker.Store, reg Registry, o *outcome, name string, opts Options, caps *captures) string {
	img, err := st.LookupImage(name)
	if err != nil {
		o.fail(report.Subject{Image: name}, fmt.Errorf("host image: %w", err))
		return ""
	}
	si := img.StoreImage()
	hs, err := modelSource(name, opts.Remote, &si)
	if err != nil {
		o.fail(report.Subject{Image: name}, err)
		return ""
	}
	subj := report.Subject{Image: name, Platform: img.Platform()}
	var c *captures
	if opts.Deep {
		c = caps
	}
	// With --remote the user chose what to compare with; otherwise the
	// digest the host pulled, while the registry still serves it.
	regSrc, target, regRep := registrySide(ctx, reg, o, subj, registryQuery{tag: hs.tag, pulled: hs.pulled, also: hs.also, target: hs.ref,
		preferPulled: opts.Remote == "", platforms: []string{img.Platform()}, caps: c}, opts)
	if regSrc == nil {
		return ""
	}
	defer regSrc.Close()
	want, ok := pickImage(ContainerImages(regRep), img.ID.String())
	if !ok {
		o.b.Problem(subj, "%s holds no container image to compare", target)
		return ""
	}
	o.result(Host(name, want, img, hs.repo, st.DiffIDByDigest))
	if !opts.Deep {
		o.b.AddImage(HostReportImage(img))
		return ""
	}
	tarSplits(st, o, subj, want, img.Layers, caps)
	return img.ID.String()
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
		f, p := TarSplitResult(ls, layers[i].TarSplit, d)
		if f != nil {
			o.b.Add(*f)
		}
		if p != nil {
			o.b.Problem(p.Subject, "%s", p.Message)
		}
	}
}

// comparedPlatforms picks the platform manifests of a containerd image to
// compare: those sels select; else those the host unpacked or holds every
// layer blob of (containerd fetches only the manifest and config of the
// other platforms of an index); else those it holds some layer blob of;
// else every one whose config is present.
func comparedPlatforms(img *containerd.HostImage, sels []string) []containerd.HostPlatform {
	if len(sels) > 0 {
		var out []containerd.HostPlatform
		for _, p := range img.Platforms {
			if ref.PlatformSelected(sels, p.Platform) {
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

// containerdImage compares one image of a containerd store with its
// registry source: its own name (containerd keeps the reference it pulled
// as the image name, and the target digest is what was pulled), or
// opts.Remote. Both sides hold the compressed blobs, so everything is
// compared by content digest.
func containerdImage(ctx context.Context, st *containerd.Store, reg Registry, o *outcome, name string, opts Options) {
	img, err := st.FindImage(name)
	if err != nil {
		o.fail(report.Subject{Image: name}, fmt.Errorf("host image: %w", err))
		return
	}
	subj := report.Subject{Image: name}
	plats := comparedPlatforms(img, opts.Platforms)
	if len(plats) == 0 {
		if len(opts.Platforms) > 0 {
			o.fail(subj, fmt.Errorf("host image %s/%s: no platform manifest in the content store matches --platform %s", img.Namespace, img.Name, strings.Join(opts.Platforms, ",")))
			return
		}
		// Nothing to compare: the audit says what is missing (a target
		// or config blob gone is a finding of its own).
		if _, ok := auditLocal(ctx, o, st, img, opts.Version); ok {
			o.b.Problem(report.Subject{Image: name, Digest: img.Target.Digest.String()}, "no platform manifest with its config is in the content store: nothing to compare with the registry")
		}
		return
	}
	var platNames []string
	for _, p := range plats {
		platNames = append(platNames, p.Platform)
	}
	pulled := img.Target.Digest
	remote := opts.Remote
	if remote == "" {
		remote = img.Name
	}
	r, err := ref.Parse(remote)
	if err != nil {
		o.fail(subj, &ArgumentError{err})
		return
	}
	q := registryQuery{target: remote, preferPulled: true, platforms: platNames}
	if r.Tag != "" && r.Digest == "" && r.Name() == ref.RepositoryOf(img.Name) {
		// Tag moved: the tag now resolves to another digest than the
		// target the host pulled.
		q.tag, q.pulled = remote, r.WithDigest(pulled).String()
	}
	regSrc, _, regRep := registrySide(ctx, reg, o, subj, q, opts)
	if regSrc == nil {
		return
	}
	defer regSrc.Close()
	hostRep, ok := auditLocal(ctx, o, st, img, opts.Version)
	if !ok {
		return
	}
	host := ContainerdImage{Target: pulled.String(), TargetIsIndex: len(img.Absent) > 0 || isIndexMediaType(img.Target.MediaType)}
	want := map[string]bool{}
	for _, p := range plats {
		sp := StorePlatform{Platform: p.Platform, ManifestDigest: p.Manifest.Digest.String()}
		for _, l := range p.Layers {
			sp.Layers = append(sp.Layers, StoreLayer{Digest: l.Desc.Digest.String(), Size: l.Desc.Size, DiffID: l.DiffID.String(),
				ChainID: l.ChainID.String(), Blob: l.Blob, Snapshotters: l.Snapshotters})
		}
		host.Platforms = append(host.Platforms, sp)
		want[sp.ManifestDigest] = true
	}
	var got []report.Image
	for _, im := range ContainerImages(hostRep) {
		if im.Name == img.Namespace+"/"+img.Name && want[im.ManifestDigest] {
			got = append(got, im)
		}
	}
	o.result(Containerd(name, ContainerImages(regRep), got, host))
	if opts.Deep && ctx.Err() == nil && blobsDiscarded(plats) {
		// The audit could not compare these snapshots with their layers:
		// the content store no longer holds the blobs. The registry's do.
		open := func(ctx context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
			b, err := regSrc.Blob(ctx, d)
			if err != nil {
				return nil, err
			}
			return b.Open(ctx)
		}
		if err := st.VerifySnapshotFiles(ctx, name, open, &o.b); err != nil {
			o.fail(subj, err)
		}
	}
}

// blobsDiscarded reports whether a compared platform lacks a layer blob
// (containerd's discard_unpacked_layers, or Docker keeping no blob).
func blobsDiscarded(plats []containerd.HostPlatform) bool {
	for _, p := range plats {
		for _, l := range p.Layers {
			if !l.Blob {
				return true
			}
		}
	}
	return false
}

func isIndexMediaType(mt string) bool {
	return mt == "application/vnd.oci.image.index.v1+json" || mt == verify.MediaTypeDockerList
}

// auditLocal runs the containerd audit of this one image into o: the
// shared verifier over its content blobs (every blob re-hashed, every layer
// decompressed for its diffID) and the checks of its records and
// snapshots. ok is false when the audit could not run or was interrupted.
func auditLocal(ctx context.Context, o *outcome, st *containerd.Store, img *containerd.HostImage, version string) (*report.Report, bool) {
	aud, err := st.Select([]string{img.Namespace}, []string{img.Namespace + "/" + img.Name})
	if err != nil {
		o.fail(report.Subject{Path: st.Root()}, err)
		return nil, false
	}
	hb := &report.Builder{}
	if err := aud.Audit(ctx, hb); err != nil {
		o.fail(report.Subject{Path: aud.String()}, err)
		return nil, false
	}
	rep := hb.Finish("host", aud.String(), version)
	o.merge(rep)
	return rep, ctx.Err() == nil
}

// NamedSource is a source with the name the report gives it.
type NamedSource struct {
	Name string
	// Command is the verifier command its report section is named after
	// ("remote" for a registry reference, "tar" for an artifact).
	Command string
	Source  source.Source
}

// Sources checks sources (registry references, docker saves, OCI layouts)
// against a store (`layercheck compare store`). Against Docker's classic
// store: from each source's bytes, every layer's diffID, chainID and
// tar-split, captured in the one pass that verifies it; then the host image
// by config digest (or name), every chainID's layerdb record and
// tar-split.json.gz. Against any other store, through the store model
// (modelSources): the image by config digest (or name), its config digest,
// diffIDs and chainIDs. With opts.Deep the matching host images are audited
// from disk in one audit.
func Sources(ctx context.Context, st store.Store, srcs []NamedSource, opts Options) (*report.Report, error) {
	o := &outcome{version: opts.Version}
	ds, ok := st.(*docker.Store)
	if !ok {
		return modelSources(ctx, st, o, srcs, opts)
	}
	var names []string
	var deep []string
	for _, src := range srcs {
		names = append(names, src.Name)
		if ctx.Err() != nil {
			break
		}
		deep = append(deep, storeSource(ctx, ds, o, src, opts)...)
	}
	if opts.Deep && len(deep) > 0 && ctx.Err() == nil {
		hb := &report.Builder{}
		aud := ds.Select(deep)
		if err := aud.Audit(ctx, hb); err != nil {
			o.fail(report.Subject{Path: aud.String()}, err)
		}
		o.merge(hb.Finish("host", aud.String(), opts.Version))
	}
	return o.finish(ctx, strings.Join(names, ", ")+" vs "+st.String())
}

// storeSource checks one source against the store; it returns the IDs of
// the host images found, for the deep audit.
func storeSource(ctx context.Context, st *docker.Store, o *outcome, src NamedSource, opts Options) []string {
	caps := newCaptures()
	imgs := sourceImages(ctx, o, src, opts, caps)
	if len(imgs) == 0 {
		return nil
	}
	var missing []report.Image
	var found []string
	for _, im := range imgs {
		subj := report.Subject{Image: im.Name, Platform: im.Platform}
		host, how := lookupHost(ctx, st, im)
		if host != nil {
			found = append(found, host.ID.String())
			if how != "config" {
				o.b.Add(report.Finding{Check: Config, Severity: report.Error, Subject: subj,
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
		o.result(LayerStore(subj, im, layers))
		tarSplits(st, o, subj, im, layers, caps)
		if host != nil && !opts.Deep {
			o.b.AddImage(HostReportImage(host))
		}
	}
	reportMissing(o, missing, found)
	return found
}

// sourceImages verifies a compare store source into o (caps: its tar-split
// captures, or nil) and returns its container images; none when it could
// not be verified or holds none (o says why).
func sourceImages(ctx context.Context, o *outcome, src NamedSource, opts Options, caps *captures) []report.Image {
	vo := opts.Verify
	vo.Platforms, vo.Images = opts.Platforms, opts.Images
	srcRep, verr := verifySide(ctx, src.Source, vo, caps, src.Command, src.Name, opts.Version)
	o.merge(srcRep)
	if verr != nil {
		o.fail(report.Subject{Image: src.Name}, verr)
		return nil
	}
	imgs := ContainerImages(srcRep)
	if len(imgs) == 0 {
		o.b.Problem(report.Subject{Image: src.Name}, "the source holds no container image to compare")
	}
	return imgs
}

// reportMissing files the source images no host image matched: an error,
// or information when another platform of the source is on the host.
func reportMissing(o *outcome, missing []report.Image, found []string) {
	for _, im := range missing {
		sev := report.Error
		msg := "the host store holds no image with the source's config digest (image ID), nor one of its names"
		if len(found) > 0 {
			sev = report.Info
			msg += " (another platform of the source is on the host: a pull keeps one platform)"
		}
		o.b.Add(report.Finding{Check: HostImage, Severity: sev, Subject: report.Subject{Image: im.Name, Platform: im.Platform}, Message: msg, Expected: im.ConfigDigest, Actual: "absent"})
	}
}

// modelSources is Sources for a store known through the store model
// (containerd, containers-storage, a registry's storage): each source's
// images are verified, found in the store by config digest (else by name)
// and compared by content: config digest, every diffID and chainID (not the
// manifest or compressed digests: a source need not be the registry image
// the store pulled). With opts.Deep the images found are audited, once for
// all.
func modelSources(ctx context.Context, st store.Store, o *outcome, srcs []NamedSource, opts Options) (*report.Report, error) {
	if err := deepSupported(st, opts); err != nil {
		return nil, err
	}
	var names, deep []string
	for _, src := range srcs {
		names = append(names, src.Name)
		if ctx.Err() != nil {
			break
		}
		imgs := sourceImages(ctx, o, src, opts, nil)
		if len(imgs) == 0 {
			continue
		}
		var missing []report.Image
		var found []string
		for _, im := range imgs {
			host, how := lookupModel(ctx, st, im)
			if host == nil {
				missing = append(missing, im)
				continue
			}
			subj := report.Subject{Image: im.Name, Platform: im.Platform}
			found = append(found, host.ID.String())
			deep = append(deep, selectionKey(host))
			if how != "config" {
				o.b.Add(report.Finding{Check: Config, Severity: report.Error, Subject: subj,
					Message: fmt.Sprintf("no host image has the source's config digest; the host image named %s is another image", how), Expected: im.ConfigDigest, Actual: host.ID.String()})
			}
			o.result(StoreImage(im.Name, im, contentOnly(*host)))
			if !opts.Deep {
				o.b.AddImage(modelReportImage(st, *host))
			}
		}
		reportMissing(o, missing, found)
	}
	deepModel(ctx, st, o, deep, opts)
	return o.finish(ctx, strings.Join(names, ", ")+" vs "+st.String())
}

// contentOnly drops what a source need not share with the store image it
// is checked against: the manifest and compressed layer digests (a save or
// a push elsewhere compresses anew). What is left names the content: the
// config digest, diffIDs and chainIDs.
func contentOnly(img store.Image) store.Image {
	img.Manifest = ""
	img.Layers = append([]store.Layer(nil), img.Layers...)
	for i := range img.Layers {
		img.Layers[i].Digest = ""
	}
	return img
}

// lookupModel finds the store image of a source image: by config digest,
// else by one of its names. how is "config" or the name that matched.
func lookupModel(ctx context.Context, st store.Store, im report.Image) (*store.Image, string) {
	if im.ConfigDigest != "" {
		if h, err := st.Lookup(ctx, im.ConfigDigest); err == nil && h.ID.String() == im.ConfigDigest {
			return h, "config"
		}
	}
	for _, n := range append([]string{im.Name}, im.Tags...) {
		if n == "" || strings.HasPrefix(n, "sha256:") {
			continue
		}
		if h, err := st.Lookup(ctx, n); err == nil {
			return h, n
		}
	}
	return nil, ""
}

// lookupHost is lookupModel for Docker's classic store, with the image as
// its own package reads it.
func lookupHost(ctx context.Context, st *docker.Store, im report.Image) (*docker.HostImage, string) {
	m, how := lookupModel(ctx, st, im)
	if m == nil {
		return nil, ""
	}
	h, err := st.LookupImage(m.ID.String())
	if err != nil {
		return nil, ""
	}
	return h, how
}

// modelSource finds where a host image came from: remote, else the
// registry digest the store recorded (preferring the repository the user
// named), with the tag the store names it by in that repository.
func modelSource(name, remote string, img *store.Image) (hostSource, error) {
	if remote != "" {
		r, err := ref.Parse(remote)
		if err != nil {
			return hostSource{}, &ArgumentError{err}
		}
		hs := hostSource{ref: remote, repo: r.Name()}
		for _, d := range img.RepoDigests {
			switch {
			case ref.RepositoryOf(d) != hs.repo:
			case hs.pulled == "":
				hs.pulled = d
			default:
				hs.also = append(hs.also, d)
			}
		}
		if r.Tag != "" && r.Digest == "" {
			hs.tag = remote
		}
		return hs, nil
	}
	if len(img.RepoDigests) == 0 {
		return hostSource{}, fmt.Errorf("image %s (%s) has no registry source: the store records no registry digest for it (built or loaded locally); name one with --remote REF", name, img.ID)
	}
	user, _ := ref.Parse(name)
	pick := img.RepoDigests[0]
	for _, d := range img.RepoDigests {
		if ref.RepositoryOf(d) == user.Name() {
			pick = d
			break
		}
	}
	hs := hostSource{ref: pick, repo: ref.RepositoryOf(pick), pulled: pick}
	for _, d := range img.RepoDigests {
		if d != pick && ref.RepositoryOf(d) == hs.repo {
			hs.also = append(hs.also, d)
		}
	}
	for _, n := range img.Names {
		r, err := ref.Parse(n)
		if err != nil || r.Name() != hs.repo || r.Tag == "" {
			continue
		}
		if hs.tag == "" || r.String() == user.String() {
			hs.tag = r.String()
		}
	}
	return hs, nil
}

// modelImage compares one image of a store known only through the store
// model (containers-storage, a registry's storage) with its registry
// source: tag moved, then config digest, every diffID and chainID, the
// manifest and the compressed layer digests where the store keeps them. It
// returns the image's selection key for --deep ("" when the comparison
// stopped early).
func modelImage(ctx context.Context, st store.Store, reg Registry, o *outcome, name string, opts Options) string {
	img, err := st.Lookup(ctx, name)
	if err != nil {
		o.fail(report.Subject{Image: name}, fmt.Errorf("host image: %w", err))
		return ""
	}
	hs, err := modelSource(name, opts.Remote, img)
	if err != nil {
		o.fail(report.Subject{Image: name}, err)
		return ""
	}
	subj := report.Subject{Image: name, Platform: img.Platform}
	var platforms []string
	if img.Platform != "" {
		platforms = []string{img.Platform}
	}
	regSrc, target, regRep := registrySide(ctx, reg, o, subj, registryQuery{tag: hs.tag, pulled: hs.pulled, also: hs.also, target: hs.ref,
		preferPulled: opts.Remote == "", platforms: platforms}, opts)
	if regSrc == nil {
		return ""
	}
	defer regSrc.Close()
	want, ok := pickImage(ContainerImages(regRep), img.ID.String())
	if !ok {
		o.b.Problem(subj, "%s holds no container image to compare", target)
		return ""
	}
	o.result(StoreImage(name, want, *img))
	if !opts.Deep { // else the audit lists it
		o.b.AddImage(modelReportImage(st, *img))
	}
	return selectionKey(img)
}

// selectionKey names a store image for Options.Images: its first name
// (every store selects by name; containerd does not select by image ID),
// else its ID.
func selectionKey(img *store.Image) string {
	if len(img.Names) > 0 {
		return img.Names[0]
	}
	return img.ID.String()
}

// modelReportImage is the host side of a model image in the report.
func modelReportImage(st store.Store, img store.Image) report.Image {
	out := report.Image{Name: st.String() + ": " + firstOr(img.Names, img.ID.String()), Platform: img.Platform, ConfigDigest: img.ID.String(), ManifestDigest: img.Manifest.String(), Tags: img.Names}
	for i, l := range img.Layers {
		out.Layers = append(out.Layers, report.Layer{Index: i, DiffID: l.DiffID.String(), ChainID: l.ChainID.String(), Digest: l.Digest.String()})
	}
	return out
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

// StoreImage compares what a registry serves (want, measured by the
// verifier) with an image as a store model records it: config digest
// against the image ID, layer count, every diffID and chainID, and the
// manifest and compressed layer digests where the store keeps them. A store
// that shares layers by diffID (containers-storage) may record another
// compression of the same content than this image's registry serves: that
// is a warning, not an error, since the content (diffID) is equal.
func StoreImage(subject string, want report.Image, host store.Image) Result {
	got := report.Image{ConfigDigest: host.ID.String(), ManifestDigest: host.Manifest.String()}
	for i, l := range host.Layers {
		gl := report.Layer{Index: i, DiffID: l.DiffID.String(), ChainID: l.ChainID.String()}
		if l.Digest != "" && i < len(want.Layers) {
			// The store keeps the compressed digest, not the compression:
			// the registry's tells pair the digests are comparable.
			gl.Digest, gl.Compression = l.Digest.String(), want.Layers[i].Compression
		}
		got.Layers = append(got.Layers, gl)
	}
	r := Result{gotSide: "host"}
	r.pair(report.Subject{Image: subject, Platform: want.Platform}, want, got)
	for i, f := range r.Findings {
		if f.Check == LayerDigestDiffers && f.Severity == report.Error {
			r.Findings[i].Severity = report.Warning
			r.Findings[i].Message += "; the store keeps the layer as another image recorded it (layers are shared by content), so this is not damage"
		}
	}
	return r
}

// registryQuery says what the registry side of a host form compares with.
type registryQuery struct {
	tag, pulled  string   // checked for a moved tag when both are set
	also         []string // other digests the host records in the tag's repository
	target       string   // compared with when the tag did not move
	preferPulled bool     // a moved tag: compare with the pulled digest while served
	platforms    []string
	caps         *captures // tar-split captures of --deep, or nil
}

// registrySide is what every host form does on the registry's side: the
// tag-moved check, then the registry's image of the host's platforms
// verified into o. It returns the open source (the caller closes it), the
// reference compared and its report; a nil source when the comparison
// cannot go on (o says why).
func registrySide(ctx context.Context, reg Registry, o *outcome, subj report.Subject, q registryQuery, opts Options) (source.Source, string, *report.Report) {
	target := q.target
	var src source.Source
	if q.tag != "" && q.pulled != "" {
		var stop bool
		if src, target, stop = checkTag(ctx, reg, &o.b, subj, q.tag, q.pulled, q.also, target, q.preferPulled); stop {
			return nil, "", nil
		}
	}
	if src == nil {
		var err error
		if src, err = reg.Open(target); err != nil {
			o.fail(subj, &ArgumentError{err})
			return nil, "", nil
		}
	}
	vo := opts.Verify
	vo.Platforms, vo.Images = q.platforms, nil
	rep, err := verifySide(ctx, src, vo, q.caps, "remote", target, opts.Version)
	o.merge(rep)
	if err != nil {
		if errors.Is(err, verify.ErrNoMatch) {
			what := "platform"
			if len(q.platforms) > 1 {
				what = "platforms"
			}
			o.b.Add(report.Finding{Check: MissingPlatform, Severity: report.Error, Subject: subj,
				Message: fmt.Sprintf("%s serves no manifest for the host image's %s", target, what), Expected: "absent", Actual: strings.Join(q.platforms, ", ")})
		} else {
			o.fail(report.Subject{Image: target}, err)
		}
		src.Close()
		return nil, "", nil
	}
	return src, target, rep
}
