package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/layercheck/layercheck/ref"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Options configure a Verifier.
type Options struct {
	// Jobs is how many layers are read at once (0: 1).
	Jobs int
	// Platforms selects platforms of multi-platform indexes ("linux/arm64/v8");
	// empty: every platform.
	Platforms []string
	// Images selects targets by name, tag, or digest/ID prefix; empty: all.
	Images []string
	// MaxManifestSize bounds manifests, indexes and configs read into memory (0: 4 MiB).
	MaxManifestSize int64
	// MaxDepth bounds index nesting (0: 8).
	MaxDepth int
	// MaxLayers bounds the layers of one image (0: 1000).
	MaxLayers int
	// MaxIndexEntries bounds the manifests of one index (0: 10000).
	MaxIndexEntries int
	// Pass configures every layer pass (limits, taps).
	Pass PassOptions
	// LayerObservers, when set, returns observers to attach to the pass of
	// one layer blob (analysis). Called once per distinct blob.
	LayerObservers func(key string) []Observer
	// LayerTaps, when set, returns taps to attach to the pass of one layer
	// blob (a tar-split capture beside the hashing). Called once per
	// distinct blob, before its pass; the blob's Location is what the
	// report's Layer.Location shows.
	LayerTaps func(b source.Blob) []io.Writer
	// Analysis, when set, runs the layer analysis in every layer's pass and
	// adds it to each image (report.Image.Analysis); see analysis.go.
	Analysis *AnalysisOptions
	// Progress is called after each layer pass with the bytes it read. It may
	// be called from several goroutines at once.
	Progress func(location string, bytes int64)
	// Planned, when set, is called once the walk is done, before any layer
	// is read, with the layers to read and their declared stored bytes
	// (what a progress display shows as the total).
	Planned func(layers int, bytes int64)
	// ReadBlob, when set, is asked once for each distinct blob the pool
	// would read (layers, artifact blobs, unreferenced blobs): false leaves
	// it unread and unreported, so the layers using it get no measurements,
	// findings or problems. A sharded store audit reads only its shard's
	// blobs this way; the other shards report the rest.
	ReadBlob func(b source.Blob) bool
	// Measured, when set, is called after each blob pass with what it
	// measured (err: the stored bytes could not be read). It may be called
	// from several goroutines at once.
	Measured func(b source.Blob, res *PassResult, err error)
}

// Verifier checks sources. It is safe to use from one goroutine at a time.
type Verifier struct {
	opts Options
}

// New returns a Verifier with defaults filled in.
func New(opts Options) *Verifier {
	if opts.Jobs <= 0 {
		opts.Jobs = 1
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = 4 << 20
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = 8
	}
	if opts.MaxLayers <= 0 {
		opts.MaxLayers = 1000
	}
	if opts.MaxIndexEntries <= 0 {
		opts.MaxIndexEntries = 10000
	}
	return &Verifier{opts: opts}
}

// ErrNoMatch is returned when --image or --platform selects nothing.
var ErrNoMatch = errors.New("nothing matches the selection")

// Verify checks every target of src and adds images, findings and problems
// to b. It returns an error only when the source could not be checked at all
// (unreadable, cancelled); data problems are findings. It is VerifyAll of
// one source.
func (v *Verifier) Verify(ctx context.Context, src source.Source, b *report.Builder) error {
	return v.VerifyAll(ctx, []source.Source{src}, b)[0]
}

// BlobScoper is implemented by sources whose blobs live in a store that other
// sources of one VerifyAll call may name too (two references to one registry
// repository). Sources with the same non-empty BlobScope share their layer
// passes by Blob.Key(): a blob both reference is read once. A source without
// it shares nothing with any other source.
type BlobScoper interface {
	BlobScope() string
}

// VerifyAll checks every target of every source into b, like Verify over each
// source in turn, with the same images, findings and problems, but reads the
// layers of all of them in one pool (Options.Jobs, largest first): first every
// source is walked, Options.Jobs sources at a time (its manifests, indexes and
// configs read; a Scanner source streams its layers during its walk), then
// every distinct layer blob is read once, then each source's images are
// finished, in input order. errs[i] is
// the error of srcs[i], as Verify would return it: the source could not be
// checked at all (its problem is for the caller to report), or the context
// was cancelled (then every source walked so far is reported as far as it
// was verified, the others not at all).
func (v *Verifier) VerifyAll(ctx context.Context, srcs []source.Source, b *report.Builder) []error {
	set := &jobSet{jobs: map[string]*layerJob{}, analysis: map[string]*analysisSet{}}
	errs := make([]error, len(srcs))
	runs := make([]*run, len(srcs))
	for i, src := range srcs {
		scope := fmt.Sprintf("source %d", i)
		if s, ok := src.(BlobScoper); ok && s.BlobScope() != "" {
			scope = "scope " + s.BlobScope()
		}
		r := &run{v: v, src: src, b: b, set: set, pos: i, scope: scope, referenced: map[string]bool{}}
		if v.opts.Analysis != nil {
			if set.analysis[scope] == nil {
				set.analysis[scope] = &analysisSet{opts: *v.opts.Analysis, byKey: map[string]*LayerAnalyzer{}}
			}
			r.analysis = set.analysis[scope]
		}
		runs[i] = r
	}
	// The walks of different sources overlap (Jobs at a time): a registry's
	// round trips for configs, a compressed archive's stream. Each run adds
	// only problems to b before its finish, and b sorts them.
	walked := make([]bool, len(srcs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, v.opts.Jobs)
	for i, r := range runs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		if err := ctx.Err(); err != nil {
			<-sem
			errs[i] = err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			walked[i], errs[i] = r.walk(ctx)
		}()
	}
	wg.Wait()
	for i := range runs {
		if !walked[i] {
			runs[i] = nil
		}
	}
	var err error
	if ctx.Err() == nil {
		for _, r := range runs {
			if r != nil {
				r.listUnreferenced(ctx)
			}
		}
		err = set.runJobs(ctx, v.opts.Jobs, v.opts.Planned)
	}
	if err != nil || ctx.Err() != nil {
		cause := ctx.Err()
		if cause == nil {
			cause = err
		}
		set.interrupt(cause)
		for i, r := range runs {
			if r != nil {
				r.interrupted()
				errs[i] = cause
			}
		}
		return errs
	}
	for _, r := range runs {
		if r != nil {
			r.finish()
		}
	}
	return errs
}

// jobSet is the layer jobs of one VerifyAll call, shared by its sources.
type jobSet struct {
	mu   sync.Mutex
	jobs map[string]*layerJob // by scope and Blob.Key()
	// analysis holds one analysisSet per scope (keyed by Blob.Key() inside it).
	analysis map[string]*analysisSet
}

type run struct {
	v          *Verifier
	src        source.Source
	b          *report.Builder
	set        *jobSet
	pos        int    // the source's position in VerifyAll's input
	scope      string // what sources sharing jobs have in common (BlobScoper), else this source alone
	referenced map[string]bool
	images     []*imageWork
	filtered   bool
	analysis   *analysisSet // the scope's; nil unless Options.Analysis
	// unref are the stored blobs nothing referenced (listUnreferenced).
	unref   []source.Blob
	listErr error
}

// layerJob is one distinct stored blob and what its pass measured.
type layerJob struct {
	blob    source.Blob
	key     string // the scope and Blob.Key()
	owner   *run   // the first run (in input order) that met it: its scope's observers
	size    int64
	walkTar bool
	// toc asks the pass to check a lazy-pull TOC: the annotations of the
	// first descriptor met that declares one (see lazy.go).
	toc     *TOCOptions
	res     *PassResult
	err     error
	done    bool
	skipped bool // Options.ReadBlob declined it: another shard reads it
}

// imageWork collects what is known of one image until its layers are read.
type imageWork struct {
	name, platform    string
	tags              []string
	indexDigest       string
	manifestDigest    string
	manifestMediaType string
	configDigest      string
	diffIDs           []digest.Digest // nil when the config could not be read
	layers            []layerWork
	findings          []report.Finding
	fromRecord        bool
	artifact          bool
}

type layerWork struct {
	ref source.Ref
	job *layerJob
}

func (w *imageWork) add(check report.Check, layer *int, subj report.Subject, msg, want, got string) {
	subj.Layer = layer
	w.findings = append(w.findings, report.Finding{Check: check, Severity: report.SeverityOf(check), Subject: subj, Message: msg, Expected: want, Actual: got})
}

func (w *imageWork) addSev(check report.Check, sev report.Severity, layer *int, subj report.Subject, msg, want, got string) {
	subj.Layer = layer
	w.findings = append(w.findings, report.Finding{Check: check, Severity: sev, Subject: subj, Message: msg, Expected: want, Actual: got})
}

// walk reads the source's structure (streaming it first when it is a
// Scanner) and collects its layer jobs. walked tells whether any target was
// met: the run then has something to report even when err says the walk was
// cancelled.
func (r *run) walk(ctx context.Context) (walked bool, err error) {
	if sc, ok := r.src.(source.Scanner); ok {
		if err := sc.Scan(ctx, func(b source.Blob, rd io.Reader) error { return r.scanned(ctx, b, rd) }); err != nil {
			return false, fmt.Errorf("reading %s: %w", r.src, err)
		}
	}
	targets, err := r.src.Targets(ctx)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", r.src, err)
	}
	targets, err = r.selectTargets(targets)
	if err != nil {
		return false, err
	}
	for _, t := range targets {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		switch {
		case t.Image != nil:
			r.record(ctx, t)
		case t.Descriptor != nil:
			r.descriptor(ctx, t.Name, t.Tags, *t.Descriptor, t.Claims, 0, "", "")
		}
	}
	return true, nil
}

// interrupt marks every job not read to the end after a cancellation.
func (s *jobSet) interrupt(cause error) {
	for _, j := range s.jobs {
		if j.skipped {
			continue
		}
		if !j.done || (j.res == nil && j.err == nil) || errors.Is(j.err, context.Canceled) || errors.Is(j.err, context.DeadlineExceeded) {
			j.err = fmt.Errorf("interrupted before the layer was read to the end: %w", cause)
			j.done = true
		}
	}
}

// interrupted reports what was verified before a cancellation: every image
// met so far, with the layers read to the end; each layer that was not is a
// problem saying so (jobSet.interrupt marked them). Unreferenced blobs are
// not looked for (the walk did not finish, so "unreferenced" would be wrong).
func (r *run) interrupted() {
	r.finishImages()
	if n, ok := r.src.(source.Noter); ok {
		r.b.Add(n.Findings()...)
	}
}

// scanned runs the pass over a blob a sequential source streams past once.
func (r *run) scanned(ctx context.Context, b source.Blob, rd io.Reader) error {
	opts := r.v.opts.Pass
	if r.v.opts.LayerObservers != nil {
		opts.Observers = append(append([]Observer(nil), opts.Observers...), r.v.opts.LayerObservers(b.Key())...)
	}
	if r.v.opts.LayerTaps != nil {
		opts.Taps = append(append([]io.Writer(nil), opts.Taps...), r.v.opts.LayerTaps(b)...)
	}
	if obs := r.analysisObservers(b.Key()); obs != nil {
		opts.Observers = append(append([]Observer(nil), opts.Observers...), obs...)
	}
	res, err := Pass(ctx, rd, opts)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	r.set.mu.Lock()
	// Another walk of the scope may have met the blob already (walks
	// overlap): its job is this one, now done.
	j := r.set.jobs[r.key(b)]
	if j == nil || j.done {
		j = &layerJob{key: r.key(b)}
		r.set.jobs[j.key] = j
	}
	j.blob, j.owner, j.size, j.walkTar, j.res, j.err, j.done = b, r, res.StoredSize, true, res, err, true
	r.set.mu.Unlock()
	if r.v.opts.Progress != nil {
		r.v.opts.Progress(b.Location(), res.StoredSize)
	}
	if r.v.opts.Measured != nil {
		r.v.opts.Measured(b, res, err)
	}
	return nil
}

// selectTargets applies --image.
func (r *run) selectTargets(ts []source.Target) ([]source.Target, error) {
	if len(r.v.opts.Images) == 0 {
		return ts, nil
	}
	r.filtered = true
	var out []source.Target
	for _, t := range ts {
		for _, sel := range r.v.opts.Images {
			if matchTarget(t, sel) {
				out = append(out, t)
				break
			}
		}
	}
	if len(out) == 0 {
		var names []string
		for _, t := range ts {
			names = append(names, t.Name)
		}
		return nil, fmt.Errorf("--image %s: %w; %s holds: %s", strings.Join(r.v.opts.Images, ","), ErrNoMatch, r.src, strings.Join(names, ", "))
	}
	return out, nil
}

// matchTarget applies an --image selector to a target: its name or tags
// (normalised references), or a prefix of its manifest or config digest.
func matchTarget(t source.Target, sel string) bool {
	var ds []digest.Digest
	if t.Descriptor != nil {
		ds = append(ds, t.Descriptor.Digest)
	}
	if t.Image != nil {
		ds = append(ds, t.Image.Config.Desc.Digest)
	}
	return ref.Match(sel, append([]string{t.Name}, t.Tags...), ds...)
}

func (r *run) ref(b source.Blob) {
	if b != nil {
		r.referenced[b.Key()] = true
	}
}

// readSmall reads a manifest, index or config, bounded by MaxManifestSize.
func (r *run) readSmall(ctx context.Context, b source.Blob) ([]byte, error) {
	return source.ReadAll(ctx, b, r.v.opts.MaxManifestSize)
}

// computeDigest hashes data with the algorithm of want (sha256 when want is empty).
func computeDigest(want digest.Digest, data []byte) (digest.Digest, error) {
	alg := digest.SHA256
	if want != "" {
		alg = want.Algorithm()
	}
	if !alg.Available() {
		return "", fmt.Errorf("digest algorithm %q is not supported", alg)
	}
	return alg.FromBytes(data), nil
}

// descriptor verifies a manifest or index and recurses.
func (r *run) descriptor(ctx context.Context, name string, tags []string, desc ocispec.Descriptor, claims []source.Claim, depth int, platform, indexDigest string) {
	w := &imageWork{name: name, tags: tags, platform: platform, indexDigest: indexDigest, manifestDigest: desc.Digest.String(), manifestMediaType: desc.MediaType}
	subj := report.Subject{Digest: desc.Digest.String()}
	defer func() {
		if len(w.findings) > 0 || w.layers != nil || w.configDigest != "" {
			r.images = append(r.images, w)
		}
	}()
	if depth > r.v.opts.MaxDepth {
		w.add(report.ManifestParse, nil, subj, fmt.Sprintf("index nesting deeper than %d levels", r.v.opts.MaxDepth), "", "")
		return
	}
	if err := desc.Digest.Validate(); err != nil {
		w.add(report.ManifestParse, nil, subj, fmt.Sprintf("descriptor digest %q is invalid: %v", desc.Digest, err), "", "")
		return
	}
	blob, err := r.src.Blob(ctx, desc)
	if err != nil {
		if errors.Is(err, source.ErrNotFound) {
			w.add(report.ManifestMissing, nil, subj, fmt.Sprintf("manifest %s is not in %s", desc.Digest, r.src), "", "")
		} else {
			r.b.Problem(report.Subject{Image: name, Platform: platform, Digest: desc.Digest.String()}, "reading manifest: %v", err)
		}
		return
	}
	r.ref(blob)
	subj.Path = blob.Location()
	data, err := r.readSmall(ctx, blob)
	if err != nil {
		var le *source.LimitError
		if errors.As(err, &le) {
			w.add(report.ManifestParse, nil, subj, err.Error(), "", "")
		} else {
			r.b.Problem(report.Subject{Image: name, Platform: platform, Digest: desc.Digest.String(), Path: blob.Location()}, "reading manifest: %v", err)
		}
		return
	}
	got, err := computeDigest(desc.Digest, data)
	if err != nil {
		r.b.Problem(report.Subject{Image: name, Digest: desc.Digest.String()}, "%v", err)
		return
	}
	if got != desc.Digest {
		w.add(report.ManifestDigest, nil, subj, "manifest bytes do not hash to the digest that references them", desc.Digest.String(), got.String())
	}
	for _, c := range claims {
		if c.Digest != "" && c.Digest != got {
			w.add(report.ManifestDigest, nil, subj, "manifest bytes do not hash to the digest of the "+c.By, c.Digest.String(), got.String())
		}
	}
	w.manifestDigest = got.String()
	if desc.Size >= 0 && desc.Size != int64(len(data)) {
		w.add(report.ManifestSize, nil, subj, "manifest length differs from its descriptor", fmt.Sprint(desc.Size), fmt.Sprint(len(data)))
	}
	var head struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		w.add(report.ManifestParse, nil, subj, "manifest is not valid JSON: "+err.Error(), "", "")
		return
	}
	if k := source.DuplicateKey(data); k != "" {
		w.addSev(report.ManifestParse, report.Warning, nil, subj, fmt.Sprintf("key %q appears twice in one object; read as encoding/json does (the last value wins), while other tools may read the first", k), "", "")
	}
	mt := desc.MediaType
	if head.MediaType != "" && mt != "" && head.MediaType != mt {
		// The same kind under another name (an OCI descriptor for a Docker
		// manifest) parses the same everywhere: a warning. Another kind is an error.
		sev := report.Error
		if kindOf(head.MediaType) == kindOf(mt) || kindOf(mt) == kindUnknown {
			sev = report.Warning
		}
		w.addSev(report.ManifestMediaType, sev, nil, subj, "descriptor and document disagree on the media type", mt, head.MediaType)
	}
	if mt == "" || (kindOf(mt) == kindUnknown && head.MediaType != "") {
		mt = head.MediaType
	}
	kind := kindOf(mt)
	if kind == kindUnknown {
		switch {
		case head.Manifests != nil:
			kind = kindIndex
		case head.Config != nil:
			kind = kindManifest
		case head.FSLayers != nil:
			kind = kindSchema1
		}
		if kind != kindUnknown && mt != "" && head.MediaType == "" {
			w.addSev(report.ManifestMediaType, report.Warning, nil, subj, "unknown manifest media type", "an OCI or Docker manifest/index type", mt)
		}
	}
	w.manifestMediaType = mt
	switch kind {
	case kindIndex:
		w.configDigest = "" // an index is not an image; its children are
		r.index(ctx, w, name, tags, data, subj, depth, got.String())
		w.layers = nil
		if len(w.findings) == 0 {
			w.findings = nil
		}
		// index-level findings belong to the index's own entry
		if len(w.findings) > 0 {
			w.platform = platform
		}
	case kindManifest:
		r.manifest(ctx, w, data, subj)
	case kindSchema1:
		r.schema1(ctx, w, data, subj)
	default:
		w.artifact = true
		w.add(report.Artifact, nil, subj, fmt.Sprintf("descriptor of media type %q is not a manifest; listed, not verified", mt), "", "")
	}
}

func (r *run) index(ctx context.Context, w *imageWork, name string, tags []string, data []byte, subj report.Subject, depth int, dgst string) {
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		w.add(report.ManifestParse, nil, subj, "index does not parse: "+err.Error(), "", "")
		return
	}
	if len(idx.Manifests) > r.v.opts.MaxIndexEntries {
		w.add(report.ManifestParse, nil, subj, fmt.Sprintf("index lists %d manifests, more than the limit of %d", len(idx.Manifests), r.v.opts.MaxIndexEntries), "", "")
		return
	}
	matched := 0
	for i, child := range idx.Manifests {
		plat := ref.PlatformOf(child.Platform)
		if IsAttestation(child) {
			cw := &imageWork{name: name, platform: "attestation " + platformOfAttestation(child, idx), artifact: true}
			cw.add(report.Artifact, nil, report.Subject{Digest: child.Digest.String()}, "attestation manifest; listed, not verified as an image", "", "")
			r.images = append(r.images, cw)
			r.markArtifact(ctx, child)
			continue
		}
		if !r.platformSelected(plat) {
			r.filtered = true
			continue
		}
		if child.Size < 0 {
			w.add(report.ManifestSize, nil, report.Subject{Digest: child.Digest.String()}, fmt.Sprintf("index manifests[%d] declares a negative size", i), "a size ≥ 0", fmt.Sprint(child.Size))
		}
		matched++
		if plat == "" {
			plat = fmt.Sprintf("manifests[%d]", i)
		}
		r.descriptor(ctx, name, tags, child, nil, depth+1, plat, dgst)
	}
	if len(r.v.opts.Platforms) > 0 && matched == 0 && len(idx.Manifests) > 0 {
		r.b.Problem(report.Subject{Image: name, Digest: dgst}, "no platform of the index matches --platform %s", strings.Join(r.v.opts.Platforms, ","))
	}
}

// markArtifact records the blobs of an artifact as referenced without reading them.
func (r *run) markArtifact(ctx context.Context, d ocispec.Descriptor) {
	b, err := r.src.Blob(ctx, d)
	if err != nil {
		return
	}
	r.ref(b)
	data, err := r.readSmall(ctx, b)
	if err != nil {
		return
	}
	var m ocispec.Manifest
	if json.Unmarshal(data, &m) != nil {
		return
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if b, err := r.src.Blob(ctx, d); err == nil {
			r.ref(b)
		}
	}
}

// IsAttestation reports whether an index entry is a BuildKit attestation manifest.
func IsAttestation(d ocispec.Descriptor) bool {
	return d.Annotations["vnd.docker.reference.type"] == "attestation-manifest"
}

func platformOfAttestation(d ocispec.Descriptor, idx ocispec.Index) string {
	subject := d.Annotations["vnd.docker.reference.digest"]
	for _, m := range idx.Manifests {
		if m.Digest.String() == subject {
			return "for " + ref.PlatformOf(m.Platform)
		}
	}
	return "of " + report.Short(d.Digest.String())
}

func (r *run) platformSelected(plat string) bool {
	return ref.PlatformSelected(r.v.opts.Platforms, plat)
}

func (r *run) manifest(ctx context.Context, w *imageWork, data []byte, subj report.Subject) {
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		w.add(report.ManifestParse, nil, subj, "manifest does not parse: "+err.Error(), "", "")
		return
	}
	if m.SchemaVersion != 2 {
		w.add(report.ManifestParse, nil, subj, "manifest schemaVersion is not 2", "2", fmt.Sprint(m.SchemaVersion))
	}
	if isArtifact(m) {
		w.artifact = true
		w.add(report.Artifact, nil, subj, fmt.Sprintf("artifact manifest (config %s%s); blobs checked for integrity, not as an image", m.Config.MediaType, artifactType(m.ArtifactType)), "", "")
		for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
			r.blobOnly(ctx, w, d)
		}
		return
	}
	if len(m.Layers) > r.v.opts.MaxLayers {
		w.add(report.LayerCount, nil, subj, fmt.Sprintf("manifest lists %d layers, more than the limit of %d", len(m.Layers), r.v.opts.MaxLayers), "", "")
		return
	}
	config := source.Ref{Desc: m.Config}
	cfgSubj := report.Subject{Digest: m.Config.Digest.String()}
	if err := m.Config.Digest.Validate(); err != nil {
		w.add(report.ManifestParse, nil, cfgSubj, fmt.Sprintf("config digest %q is invalid", m.Config.Digest), "", "")
		config.Missing = "invalid digest"
	} else if b, err := r.src.Blob(ctx, m.Config); err == nil {
		config.Blob = b
	} else if errors.Is(err, source.ErrNotFound) {
		config.Missing = fmt.Sprintf("config %s is not in %s", m.Config.Digest, r.src)
	} else {
		r.b.Problem(report.Subject{Image: w.name, Platform: w.platform, Digest: m.Config.Digest.String()}, "reading config: %v", err)
		return
	}
	if m.Config.Size < 0 {
		w.add(report.ConfigSize, nil, cfgSubj, "manifest declares a negative config size", "a size ≥ 0", fmt.Sprint(m.Config.Size))
	}
	if !isImageConfig(m.Config.MediaType) {
		w.add(report.ConfigMediaType, nil, cfgSubj, "config media type is not an image config", MediaTypeOCIConfig, m.Config.MediaType)
	}
	var layers []source.Ref
	for i, d := range m.Layers {
		ref := source.Ref{Desc: d}
		if d.Size < 0 {
			w.add(report.LayerSize, report.LayerIndex(i), report.Subject{Digest: d.Digest.String()}, "manifest declares a negative layer size", "a size ≥ 0", fmt.Sprint(d.Size))
		}
		if err := d.Digest.Validate(); err != nil {
			w.add(report.ManifestParse, report.LayerIndex(i), report.Subject{}, fmt.Sprintf("layer digest %q is invalid", d.Digest), "", "")
			ref.Missing = "invalid digest"
		} else if b, err := r.src.Blob(ctx, d); err == nil {
			ref.Blob = b
		} else if errors.Is(err, source.ErrNotFound) {
			ref.Missing = fmt.Sprintf("layer %s is not in %s", d.Digest, r.src)
		} else {
			r.b.Problem(report.Subject{Image: w.name, Platform: w.platform, Layer: report.LayerIndex(i), Digest: d.Digest.String()}, "reading layer: %v", err)
			ref.Missing = "unreadable"
		}
		layers = append(layers, ref)
	}
	r.image(ctx, w, config, layers, true)
}

// emptyJSON is the digest of "{}", the OCI empty descriptor's content.
const emptyJSON = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

// isArtifact tells an artifact (attestation, signature, SBOM, build record)
// from an image: a non-image config type, an artifactType, the empty "{}"
// config, or layers that are not layer media types.
func isArtifact(m ocispec.Manifest) bool {
	if !isImageConfig(m.Config.MediaType) || m.ArtifactType != "" || m.Config.Digest == emptyJSON {
		return true
	}
	for _, l := range m.Layers {
		if _, known := layerCompression(l.MediaType); !known && l.MediaType != "" && !isForeign(l.MediaType) {
			return true
		}
	}
	return false
}

func artifactType(t string) string {
	if t == "" {
		return ""
	}
	return ", artifactType " + t
}

// blobOnly checks an artifact blob's digest and size without reading it as a tar.
func (r *run) blobOnly(ctx context.Context, w *imageWork, d ocispec.Descriptor) {
	if d.Digest.Validate() != nil {
		return
	}
	b, err := r.src.Blob(ctx, d)
	if err != nil {
		if errors.Is(err, source.ErrNotFound) && d.MediaType != MediaTypeOCIEmpty {
			w.add(report.LayerMissing, nil, report.Subject{Digest: d.Digest.String()}, "artifact blob is missing", "", "")
		}
		return
	}
	r.ref(b)
	j := r.job(b, false)
	w.layers = append(w.layers, layerWork{ref: source.Ref{Desc: d, Blob: b}, job: j})
}

// key is the job key of b: its Key() inside the run's scope.
func (r *run) key(b source.Blob) string { return r.scope + "\x00" + b.Key() }

// lookup returns the job of b, nil when there is none.
func (r *run) lookup(b source.Blob) *layerJob {
	r.set.mu.Lock()
	defer r.set.mu.Unlock()
	return r.set.jobs[r.key(b)]
}

func (r *run) job(b source.Blob, walkTar bool) *layerJob {
	r.ref(b)
	r.set.mu.Lock()
	defer r.set.mu.Unlock()
	j, ok := r.set.jobs[r.key(b)]
	if !ok {
		j = &layerJob{blob: b, key: r.key(b), owner: r, size: b.Size()}
		r.set.jobs[r.key(b)] = j
	} else if !j.done && r.pos < j.owner.pos {
		// Walks overlap: the first source in input order owns a shared
		// job, whichever met it first, so what the pass is given is the
		// same from run to run.
		j.blob, j.owner = b, r
	}
	if walkTar {
		j.walkTar = true
	}
	return j
}

// lazyJob asks the job's pass to check a lazy-pull TOC when the
// descriptor's annotations declare one and no earlier descriptor did.
func (r *run) lazyJob(j *layerJob, ann map[string]string) {
	kind := LazyOf(ann)
	if kind == "" {
		return
	}
	r.set.mu.Lock()
	defer r.set.mu.Unlock()
	if j.toc == nil && !j.done {
		cp := make(map[string]string, len(ann))
		for k, v := range ann {
			cp[k] = v
		}
		j.toc = &TOCOptions{Kind: kind, Annotations: cp}
	}
}

// record verifies an image declared without a manifest (docker save's manifest.json).
func (r *run) record(ctx context.Context, t source.Target) {
	w := &imageWork{name: t.Name, tags: t.Tags, fromRecord: true}
	r.images = append(r.images, w)
	if len(t.Image.Layers) > r.v.opts.MaxLayers {
		w.add(report.LayerCount, nil, report.Subject{}, fmt.Sprintf("%d layers, more than the limit of %d", len(t.Image.Layers), r.v.opts.MaxLayers), "", "")
		return
	}
	r.image(ctx, w, t.Image.Config, t.Image.Layers, false)
}

// ImageConfig is the part of an image config (OCI image-spec config or
// Docker's image JSON) that layercheck checks: the platform, the rootfs
// diffIDs and which history entries made no layer. The verifier and the
// host-store audits decode configs into it.
type ImageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	RootFS       *struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		EmptyLayer bool `json:"empty_layer"`
	} `json:"history"`
}

// image checks a config and schedules the layers.
func (r *run) image(ctx context.Context, w *imageWork, config source.Ref, layers []source.Ref, fromManifest bool) {
	cfgSubj := report.Subject{Digest: config.Desc.Digest.String()}
	var cfg *ImageConfig
	if config.Blob == nil {
		w.add(report.ConfigMissing, nil, cfgSubj, nonEmpty(config.Missing, "the config blob is missing"), "", "")
	} else {
		r.ref(config.Blob)
		cfgSubj.Path = config.Blob.Location()
		data, err := r.readSmall(ctx, config.Blob)
		var le *source.LimitError
		switch {
		case errors.As(err, &le):
			w.add(report.ConfigParse, nil, cfgSubj, err.Error(), "", "")
		case err != nil:
			r.b.Problem(report.Subject{Image: w.name, Path: config.Blob.Location()}, "reading config: %v", err)
		default:
			got, derr := computeDigest(config.Desc.Digest, data)
			if derr != nil {
				r.b.Problem(report.Subject{Image: w.name, Path: config.Blob.Location()}, "%v", derr)
				break
			}
			w.configDigest = got.String()
			if config.Desc.Digest != "" && got != config.Desc.Digest {
				msg := "config bytes do not hash to the digest in the manifest (the image ID)"
				if !fromManifest {
					msg = "config file name is not the sha256 of its content (the image ID)"
				}
				w.add(report.ConfigDigest, nil, cfgSubj, msg, config.Desc.Digest.String(), got.String())
			}
			if fromManifest && config.Desc.Size >= 0 && config.Desc.Size != int64(len(data)) {
				w.add(report.ConfigSize, nil, cfgSubj, "config length differs from its descriptor", fmt.Sprint(config.Desc.Size), fmt.Sprint(len(data)))
			}
			cfg = &ImageConfig{}
			if err := json.Unmarshal(data, cfg); err != nil {
				w.add(report.ConfigParse, nil, cfgSubj, "config is not valid JSON: "+err.Error(), "", "")
				cfg = nil
			} else if cfg.RootFS == nil {
				w.add(report.ConfigParse, nil, cfgSubj, "config has no rootfs", "", "")
				cfg = nil
			}
			if k := source.DuplicateKey(data); k != "" {
				w.addSev(report.ConfigParse, report.Warning, nil, cfgSubj, fmt.Sprintf("key %q appears twice in one object; read as encoding/json does (the last value wins), while other tools may read the first", k), "", "")
			}
		}
	}
	if cfg != nil {
		if p := ref.PlatformOf(&ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}); w.platform == "" {
			w.platform = p
		} else if p != "" && !strings.HasPrefix(w.platform, "manifests[") && !ref.SamePlatform(w.platform, p) {
			w.add(report.IndexPlatform, nil, cfgSubj, "the index and the config disagree on the platform", w.platform, p)
		}
		if cfg.RootFS.Type != "layers" {
			w.add(report.ConfigRootFS, nil, cfgSubj, `rootfs.type is not "layers"`, "layers", cfg.RootFS.Type)
		}
		w.diffIDs = make([]digest.Digest, 0, len(cfg.RootFS.DiffIDs))
		for i, s := range cfg.RootFS.DiffIDs {
			d := digest.Digest(s)
			if d.Validate() != nil {
				w.add(report.ConfigRootFS, report.LayerIndex(i), cfgSubj, fmt.Sprintf("diff_ids[%d] is not a valid digest", i), "", s)
			}
			w.diffIDs = append(w.diffIDs, d)
		}
		nonEmptyHist := 0
		for _, h := range cfg.History {
			if !h.EmptyLayer {
				nonEmptyHist++
			}
		}
		if len(layers) != len(w.diffIDs) {
			w.add(report.LayerCount, nil, cfgSubj, "the number of layers differs from the number of rootfs.diff_ids", fmt.Sprintf("%d diff_ids", len(w.diffIDs)), fmt.Sprintf("%d layers", len(layers)))
		}
		if len(cfg.History) > 0 && nonEmptyHist > len(w.diffIDs) {
			w.add(report.LayerCount, nil, cfgSubj, "more non-empty history entries than diff_ids (Docker refuses this image)", fmt.Sprintf("%d diff_ids", len(w.diffIDs)), fmt.Sprintf("%d non-empty history entries", nonEmptyHist))
		} else if len(cfg.History) > 0 && nonEmptyHist < len(w.diffIDs) {
			w.addSev(report.LayerCount, report.Warning, nil, cfgSubj, "fewer non-empty history entries than diff_ids", fmt.Sprintf("%d diff_ids", len(w.diffIDs)), fmt.Sprintf("%d non-empty history entries", nonEmptyHist))
		}
	}
	for i, ref := range layers {
		lw := layerWork{ref: ref}
		if ref.Blob == nil {
			if isForeign(ref.Desc.MediaType) || len(ref.Desc.URLs) > 0 {
				w.add(report.LayerForeign, report.LayerIndex(i), report.Subject{Digest: ref.Desc.Digest.String()}, "foreign or non-distributable layer is not in the source; skipped", "", "")
			} else {
				w.add(report.LayerMissing, report.LayerIndex(i), report.Subject{Digest: ref.Desc.Digest.String()}, nonEmpty(ref.Missing, "layer blob is missing"), "", "")
			}
		} else {
			lw.job = r.job(ref.Blob, true)
			r.lazyJob(lw.job, ref.Desc.Annotations)
		}
		w.layers = append(w.layers, lw)
	}
	if w.layers == nil {
		w.layers = []layerWork{}
	}
}

func nonEmpty(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// runJobs reads every pending blob once, largest first, jobs at a time.
func (s *jobSet) runJobs(ctx context.Context, jobs int, planned func(int, int64)) error {
	var pending []*layerJob
	var total int64
	for _, j := range s.jobs {
		if j.done {
			continue
		}
		if rb := j.owner.v.opts.ReadBlob; rb != nil && !rb(j.blob) {
			j.done, j.skipped = true, true
			continue
		}
		pending = append(pending, j)
		total += max(j.size, 0)
	}
	if planned != nil {
		planned(len(pending), total)
	}
	sort.Slice(pending, func(a, b int) bool {
		if pending[a].size != pending[b].size {
			return pending[a].size > pending[b].size
		}
		return pending[a].key < pending[b].key
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, j := range pending {
		g.Go(func() error {
			j.run(gctx)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// run reads the job's blob with the options of its owner's scope.
func (j *layerJob) run(ctx context.Context) {
	r := j.owner
	rc, err := j.blob.Open(ctx)
	if err != nil {
		j.err = err
		j.done = true
		return
	}
	defer rc.Close()
	opts := r.v.opts.Pass
	opts.NoTarWalk = !j.walkTar
	if j.toc != nil {
		t := *j.toc
		if opts.TOC != nil { // the configured limits
			t.MaxTOCSize, t.MaxTOCEntries = opts.TOC.MaxTOCSize, opts.TOC.MaxTOCEntries
		}
		opts.TOC = &t
	} else {
		opts.TOC = nil
	}
	if j.walkTar && r.v.opts.LayerObservers != nil {
		opts.Observers = append(append([]Observer(nil), opts.Observers...), r.v.opts.LayerObservers(j.blob.Key())...)
	}
	if j.walkTar && r.v.opts.LayerTaps != nil {
		opts.Taps = append(append([]io.Writer(nil), opts.Taps...), r.v.opts.LayerTaps(j.blob)...)
	}
	if j.walkTar {
		if obs := r.analysisObservers(j.blob.Key()); obs != nil {
			opts.Observers = append(append([]Observer(nil), opts.Observers...), obs...)
		}
	}
	j.res, j.err = Pass(ctx, rc, opts)
	j.done = true
	if r.v.opts.Progress != nil && j.res != nil {
		r.v.opts.Progress(j.blob.Location(), j.res.StoredSize)
	}
	if r.v.opts.Measured != nil {
		r.v.opts.Measured(j.blob, j.res, j.err)
	}
}
