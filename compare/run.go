package compare

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/layercheck/layercheck/ref"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/tarsplit"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// Registry opens registry references as sources. The caller supplies it
// (the command line wraps registryclient.Client), so this package never
// talks to a registry by itself and tests can serve one from memory.
type Registry interface {
	Open(ref string) (source.Source, error)
}

// RegistryFunc adapts a function to Registry.
type RegistryFunc func(ref string) (source.Source, error)

// Open implements Registry.
func (f RegistryFunc) Open(r string) (source.Source, error) { return f(r) }

// Options configure every form of compare.
type Options struct {
	// Verify carries the engine's limits, jobs, analysis and progress for
	// both sides. Its Images and Platforms are set per side.
	Verify verify.Options
	// Platforms selects the platforms compared; empty: all (artifact and
	// store forms) or the host image's own (host form).
	Platforms []string
	// Images selects images of a multi-image artifact.
	Images []string
	// Remote is the registry reference a host image is compared with,
	// instead of the one its store recorded.
	Remote string
	// Deep also proves the bytes: tar-splits entry by entry and every host
	// layer rebuilt from disk (Docker's classic store).
	Deep bool
	// Version is the tool's version, recorded in the report.
	Version string
}

// ArgumentError is a reference or selection the user must correct: the
// command line turns it into a usage error.
type ArgumentError struct{ Err error }

func (e *ArgumentError) Error() string { return e.Err.Error() }
func (e *ArgumentError) Unwrap() error { return e.Err }

// outcome collects one compare run's report and its first error.
type outcome struct {
	b        report.Builder
	firstErr error
	version  string
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

func (o *outcome) result(res Result) {
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

// finish returns the report and the first error (the cancellation when
// ctx was cancelled).
func (o *outcome) finish(ctx context.Context, name string) (*report.Report, error) {
	if ctx.Err() != nil {
		o.firstErr = ctx.Err()
	}
	return o.b.Finish("compare", name, o.version), o.firstErr
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

// verifySide verifies one source into its own report, with a tar-split
// capture on every layer's pass when caps is not nil.
func verifySide(ctx context.Context, src source.Source, opts verify.Options, caps *captures, command, name, version string) (*report.Report, error) {
	if caps != nil {
		opts.LayerTaps = caps.tap
	}
	b := &report.Builder{}
	err := verify.New(opts).Verify(ctx, src, b)
	if caps != nil {
		caps.closeAll()
	}
	return b.Finish(command, name, version), err
}

// ContainerImages drops what the verifier listed as artifacts or
// attestations: only container images are compared.
func ContainerImages(r *report.Report) []report.Image {
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

// Artifact compares an artifact (docker save, OCI layout) with the image a
// registry serves under regRef: both sides verified by the shared verifier
// (each layer read once per side), then compared platform by platform. The
// report always comes back; the error is the first "could not compare".
func Artifact(ctx context.Context, art source.Source, artName string, reg source.Source, regRef string, opts Options) (*report.Report, error) {
	o := &outcome{version: opts.Version}
	regOpts := opts.Verify
	regOpts.Platforms, regOpts.Images = opts.Platforms, nil
	artOpts := opts.Verify
	artOpts.Platforms, artOpts.Images = opts.Platforms, opts.Images

	regRep, err := verifySide(ctx, reg, regOpts, nil, "remote", regRef, opts.Version)
	o.merge(regRep)
	if err != nil {
		o.fail(report.Subject{Path: regRef}, err)
	}
	if ctx.Err() == nil {
		artRep, aerr := verifySide(ctx, art, artOpts, nil, "tar", artName, opts.Version)
		o.merge(artRep)
		if aerr != nil {
			o.fail(report.Subject{Path: artName}, aerr)
		}
		if o.firstErr == nil && ctx.Err() == nil {
			o.result(Images(regRef, ContainerImages(regRep), ContainerImages(artRep)))
		}
	}
	return o.finish(ctx, artName+" vs "+regRef)
}

// resolveDigest fetches the manifest a reference names and returns its
// digest (one manifest request; the verification reuses the source).
func resolveDigest(ctx context.Context, reg Registry, r string) (source.Source, digest.Digest, error) {
	src, err := reg.Open(r)
	if err != nil {
		return nil, "", err
	}
	ts, err := src.Targets(ctx)
	if err != nil {
		src.Close()
		return nil, "", err
	}
	if len(ts) != 1 || ts[0].Descriptor == nil {
		src.Close()
		return nil, "", fmt.Errorf("%s: no manifest", r)
	}
	return src, ts[0].Descriptor.Digest, nil
}

// checkTag is the tag-moved check of every store: it resolves tagRef in the
// registry and compares its digest with pulledRef's (repo@digest, what the
// host recorded when it pulled) and, should they differ, with also's (the
// other digests the host records in that repository). A moved tag is an
// error finding with both
// digests, a tag that cannot be resolved a warning. It returns the registry
// source to compare with and the reference it names: the pulled digest when
// preferPulled and the registry still serves it, else what the tag serves
// now; when the tag did not move, nil and the caller's target (the caller
// opens it). stop is true when the context was cancelled.
func checkTag(ctx context.Context, reg Registry, b *report.Builder, subj report.Subject,
	tagRef, pulledRef string, also []string, target string, preferPulled bool) (src source.Source, to string, stop bool) {
	var pulled string
	if p, err := ref.Parse(pulledRef); err == nil {
		pulled = p.Digest.String()
	}
	tagSrc, now, err := resolveDigest(ctx, reg, tagRef)
	if err == nil && now.String() != pulled && recordedDigest(also, now.String()) {
		// The tag serves another digest the host records for this image
		// in the repository: it has not moved. Compared with what it serves.
		if target == tagRef || target == pulledRef {
			return tagSrc, tagRef, false
		}
		tagSrc.Close()
		return nil, target, false
	}
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return nil, "", true
		}
		b.Add(report.Finding{Check: TagMoved, Severity: report.Warning, Subject: subj,
			Message:  fmt.Sprintf("the tag %s could not be resolved in the registry (%v), so whether it moved is unknown (a tag deleted upstream looks like this); compared by the pulled digest", tagRef, err),
			Expected: "a manifest", Actual: pulled})
		return nil, pulledRef, false
	case now.String() == pulled:
		if target == tagRef {
			return tagSrc, tagRef, false
		}
		tagSrc.Close()
		return nil, target, false
	}
	msg := fmt.Sprintf("the tag %s moved upstream since the host pulled it: the registry now serves %s, the host recorded %s; the local copy is stale, not necessarily damaged", tagRef, now, pulled)
	src, to = tagSrc, tagRef
	if preferPulled {
		if pulledSrc, _, perr := resolveDigest(ctx, reg, pulledRef); perr == nil {
			msg += "; compared below with the pulled digest, which the registry still serves"
			tagSrc.Close()
			src, to = pulledSrc, pulledRef
		} else {
			msg += fmt.Sprintf("; the registry no longer serves the pulled digest (%v), so the host image is compared with what the tag serves now", perr)
		}
	}
	b.Add(report.Finding{Check: TagMoved, Severity: report.Error, Subject: subj, Message: msg, Expected: now.String(), Actual: pulled})
	return src, to, false
}

// recordedDigest reports whether one of the digest references refs has the
// digest d.
func recordedDigest(refs []string, d string) bool {
	for _, r := range refs {
		if p, err := ref.Parse(r); err == nil && p.Digest.String() == d {
			return true
		}
	}
	return false
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
