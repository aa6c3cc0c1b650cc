package registryclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types, in the order of the Accept header.
const (
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtSchema1Signed  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mtSchema1        = "application/vnd.docker.distribution.manifest.v1+json"
)

var manifestTypes = []string{mtOCIIndex, mtOCIManifest, mtDockerList, mtDockerManifest, mtSchema1Signed, mtSchema1}

func isManifestType(mt string) bool {
	for _, m := range manifestTypes {
		if m == mt {
			return true
		}
	}
	// Artifact and vendor manifest types; configs and layers never say "manifest".
	return strings.Contains(mt, "manifest") || strings.HasSuffix(mt, ".index.v1+json")
}

// displayName writes Docker Hub names the way Docker users know them.
func displayName(s string) string {
	if rest, ok := strings.CutPrefix(s, name.DefaultRegistry+"/"); ok {
		return "docker.io/" + rest
	}
	return s
}

func isForeign(mt string) bool {
	return strings.Contains(mt, "foreign") || strings.Contains(mt, "nondistributable")
}

// Source is one image reference in a registry. It implements source.Source
// and source.Noter, and is safe for concurrent use.
type Source struct {
	c     *Client
	input string
	ref   name.Reference
	eps   []*endpoint

	once   sync.Once
	done   chan struct{}
	target source.Target
	err    error

	mu        sync.Mutex
	preferred int // index in eps of the endpoint that resolved the reference
	manifests map[digest.Digest]*fetched
	findings  []report.Finding
}

var (
	_ source.Source = (*Source)(nil)
	_ source.Noter  = (*Source)(nil)
)

// Open parses a reference as Docker users write it ("nginx",
// "nginx:1.27", "localhost:5000/app", "ghcr.io/o/a@sha256:…") and returns
// its Source. It makes no request; Targets resolves the reference.
func (c *Client) Open(ref string) (*Source, error) {
	ref = strings.TrimSpace(ref)
	var opts []name.Option
	if c.opts.Insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", ref, err)
	}
	if !c.opts.Insecure && isLoopback(r.Context().RegistryStr()) {
		// Loopback registries are reached over HTTP, like Docker does.
		if r, err = name.ParseReference(ref, name.Insecure); err != nil {
			return nil, fmt.Errorf("reference %q: %w", ref, err)
		}
	}
	// go-containerregistry checks the repository's length before it adds
	// "library/" to a Docker Hub name: a name it accepts can expand past
	// the limit, and every request for it would then fail (found by fuzzing).
	if _, err := name.ParseReference(r.Name(), opts...); err != nil {
		return nil, fmt.Errorf("reference %q: its full form %s is not a valid reference: %w", ref, r.Name(), err)
	}
	eps, err := c.endpoints(r.Context())
	if err != nil {
		return nil, err
	}
	return &Source{c: c, input: ref, ref: r, eps: eps, done: make(chan struct{}), manifests: map[digest.Digest]*fetched{}}, nil
}

// String implements source.Source.
func (s *Source) String() string { return "registry:" + displayName(s.ref.Name()) }

// Close implements source.Source. Connections are the Client's; nothing to release.
func (s *Source) Close() error { return nil }

// Findings implements source.Noter: problems this package sees that the
// verifier cannot (the signature-free payload of signed schema 1 manifests,
// a Docker-Content-Digest header naming another manifest than the one asked
// for).
func (s *Source) Findings() []report.Finding {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]report.Finding(nil), s.findings...)
}

func (s *Source) addFinding(check report.Check, subj report.Subject, msg, want, got string) {
	subj.Image = s.input
	s.mu.Lock()
	defer s.mu.Unlock()
	s.findings = append(s.findings, report.Finding{Check: check, Severity: report.SeverityOf(check), Subject: subj, Message: msg, Expected: want, Actual: got})
}

// Resolve fetches the manifest the reference names, once. Later calls wait
// for the first and return its result; Targets calls it.
func (s *Source) Resolve(ctx context.Context) error {
	s.once.Do(func() {
		defer close(s.done)
		s.target, s.err = s.resolve(ctx)
	})
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Targets implements source.Source: the one manifest or index the reference
// names. Its descriptor has the media type of the Content-Type header, the
// digest of the reference (for a digest reference), else of the
// Docker-Content-Digest header, else of the bytes, and the size of the body;
// the other statements of the digest are Claims the verifier checks.
func (s *Source) Targets(ctx context.Context) ([]source.Target, error) {
	if err := s.Resolve(ctx); err != nil {
		return nil, err
	}
	return []source.Target{s.target}, nil
}

func (s *Source) resolve(ctx context.Context) (source.Target, error) {
	var refDigest digest.Digest
	if d, ok := s.ref.(name.Digest); ok {
		refDigest = digest.Digest(d.DigestStr())
		if err := refDigest.Validate(); err != nil {
			return source.Target{}, fmt.Errorf("reference %s: %w", s.input, err)
		}
	}
	var f *fetched
	var errs []error
	for i, ep := range s.eps {
		var err error
		f, err = s.fetchManifest(ctx, ep, s.ref.Identifier(), "")
		if err == nil {
			s.mu.Lock()
			s.preferred = i
			s.mu.Unlock()
			break
		}
		if ctx.Err() != nil {
			return source.Target{}, ctx.Err()
		}
		if ep.mirror {
			s.c.logf("mirror %s: %v; trying the next", ep.host(), err)
		}
		errs = append(errs, err)
		f = nil
	}
	if f == nil {
		return source.Target{}, joinErrors(errs)
	}
	desc := ocispec.Descriptor{MediaType: f.mediaType, Size: f.size}
	var claims []source.Claim
	switch {
	case refDigest != "":
		desc.Digest = refDigest
		if f.header != "" {
			claims = append(claims, source.Claim{By: "Docker-Content-Digest header", Digest: f.header})
		}
	case f.header != "":
		desc.Digest = f.header
	default:
		desc.Digest = digest.SHA256.FromBytes(f.data)
	}
	s.schema1Payload(f, desc.Digest, claims)
	s.mu.Lock()
	s.manifests[desc.Digest] = f
	s.mu.Unlock()
	t := source.Target{Name: s.input, Descriptor: &desc, Claims: claims}
	if tag, ok := s.ref.(name.Tag); ok {
		t.Tags = []string{displayName(tag.Name())}
	}
	return t, nil
}

// fetched is a manifest as a registry served it.
type fetched struct {
	data      []byte
	mediaType string        // from Content-Type; "" when the registry named no manifest type
	header    digest.Digest // Docker-Content-Digest, "" when absent or invalid
	size      int64         // body length (the Content-Length when the body was over the limit)
	location  string
}

// fetchManifest GETs /v2/<repo>/manifests/<reference> from ep with the full
// Accept list, reading at most MaxManifestSize+1 bytes (the verifier reports
// a larger manifest). A body cut by the network is fetched again.
func (s *Source) fetchManifest(ctx context.Context, ep *endpoint, reference, mediaType string) (*fetched, error) {
	u := ep.url("manifests", reference)
	accept := append([]string(nil), manifestTypes...)
	if mediaType != "" && !slices.Contains(manifestTypes, mediaType) {
		accept = append([]string{mediaType}, accept...)
	}
	hdr := http.Header{"Accept": {strings.Join(accept, ", ")}}
	loc := displayName(ep.repo.Name()) + "@" + reference
	if !strings.Contains(reference, ":") {
		loc = displayName(ep.repo.Name()) + ":" + reference
	}
	failures := 0
	for {
		f, err, retry := s.fetchOnce(ctx, ep, u, hdr)
		if err == nil {
			f.location = loc
			return f, nil
		}
		if !retry || ctx.Err() != nil || failures >= s.c.opts.Retries {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, s.c.scrub(fmt.Errorf("manifest %s: %w", loc, err))
		}
		d := s.c.backoff(failures)
		failures++
		s.c.logf("manifest %s: %v; retrying in %s", loc, err, d)
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

func (s *Source) fetchOnce(ctx context.Context, ep *endpoint, u *url.URL, hdr http.Header) (f *fetched, err error, retry bool) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := s.c.get(rctx, ep, u, hdr)
	if err != nil {
		return nil, err, false // the transport already retried
	}
	if resp.StatusCode != http.StatusOK {
		return nil, s.c.statusError(u, resp), false
	}
	defer resp.Body.Close()
	body := newIdleReader(resp.Body, s.c.opts.IdleTimeout, cancel)
	limit := s.c.opts.MaxManifestSize
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err(), false
		}
		return nil, fmt.Errorf("reading the body: %w", body.explain(stripURLError(err))), true
	}
	f = &fetched{data: data, size: int64(len(data)), mediaType: manifestMediaType(resp.Header.Get("Content-Type"))}
	if int64(len(data)) > limit && resp.ContentLength > limit {
		f.size = resp.ContentLength
	}
	if h := digest.Digest(strings.TrimSpace(resp.Header.Get("Docker-Content-Digest"))); h != "" && h.Validate() == nil {
		f.header = h
	}
	return f, nil, false
}

// manifestMediaType normalises a Content-Type: parameters dropped, and the
// generic types some registries send for schema 1 treated as unknown.
func manifestMediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.TrimSpace(strings.SplitN(ct, ";", 2)[0])
	}
	switch mt {
	case "", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream":
		return ""
	}
	return mt
}

// schema1Payload checks a signed schema 1 manifest: its digest covers the
// payload without the signatures (libtrust's formatLength and formatTail),
// which the verifier cannot compute. want is the digest the referrer
// expects; claims are further statements of it.
func (s *Source) schema1Payload(f *fetched, want digest.Digest, claims []source.Claim) {
	var head struct {
		SchemaVersion int `json:"schemaVersion"`
		Signatures    []struct {
			Protected string `json:"protected"`
		} `json:"signatures"`
	}
	if json.Unmarshal(f.data, &head) != nil || head.SchemaVersion != 1 || head.Signatures == nil {
		return
	}
	subj := report.Subject{Digest: want.String(), Path: f.location}
	payload, err := schema1SignedPayload(f.data, head.Signatures[0].Protected)
	for _, sig := range head.Signatures[1:] {
		if err != nil {
			break
		}
		if p, perr := schema1SignedPayload(f.data, sig.Protected); perr != nil || !bytes.Equal(p, payload) {
			err = errors.New("signatures cover different payloads")
		}
	}
	if err != nil {
		s.addFinding(report.ManifestParse, subj, "signed schema 1 manifest: the payload without signatures cannot be extracted: "+err.Error(), "", "")
		return
	}
	alg := digest.SHA256
	if want != "" && want.Algorithm().Available() {
		alg = want.Algorithm()
	}
	got := alg.FromBytes(payload)
	if want != "" && got != want {
		s.addFinding(report.ManifestDigest, subj, "the payload of the signed schema 1 manifest (without signatures) does not hash to the digest that references it", want.String(), got.String())
	}
	for _, c := range claims {
		if c.Digest != "" && c.Digest != want && c.Digest != got {
			s.addFinding(report.ManifestDigest, subj, "the payload of the signed schema 1 manifest (without signatures) does not hash to the digest of the "+c.By, c.Digest.String(), got.String())
		}
	}
}

// schema1SignedPayload returns content[:formatLength] + formatTail, both
// from a JWS protected header (libtrust ParsePrettySignature).
func schema1SignedPayload(content []byte, protected string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(protected, "="))
	if err != nil {
		return nil, fmt.Errorf("protected header is not base64url: %w", err)
	}
	var h struct {
		FormatLength *int   `json:"formatLength"`
		FormatTail   string `json:"formatTail"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return nil, fmt.Errorf("protected header: %w", err)
	}
	if h.FormatLength == nil || *h.FormatLength < 0 || *h.FormatLength > len(content) {
		return nil, errors.New("protected header has no usable formatLength")
	}
	tail, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(h.FormatTail, "="))
	if err != nil {
		return nil, fmt.Errorf("formatTail is not base64url: %w", err)
	}
	out := make([]byte, 0, *h.FormatLength+len(tail))
	out = append(out, content[:*h.FormatLength]...)
	return append(out, tail...), nil
}

// orderedEndpoints lists the endpoints, the one that resolved the reference first.
func (s *Source) orderedEndpoints() []*endpoint {
	s.mu.Lock()
	p := s.preferred
	s.mu.Unlock()
	out := []*endpoint{s.eps[p]}
	for i, ep := range s.eps {
		if i != p {
			out = append(out, ep)
		}
	}
	return out
}

// Blob implements source.Source. A manifest fetched by Targets is served
// from memory; anything else is lazy: no request is made before Open.
// Manifests (by media type) come from the manifests endpoint, everything
// else from the blobs endpoint. Foreign and non-distributable layers are
// reported not found unless AllowNondistributable is set; then they come
// from their URLs (and the registry as a fallback).
func (s *Source) Blob(ctx context.Context, desc ocispec.Descriptor) (source.Blob, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("descriptor digest %q: %w", desc.Digest, err)
	}
	s.mu.Lock()
	f := s.manifests[desc.Digest]
	s.mu.Unlock()
	loc := displayName(s.ref.Context().Name()) + "@" + desc.Digest.String()
	if f != nil {
		return &manifestBlob{s: s, desc: desc, loc: f.location, f: f}, nil
	}
	if isManifestType(desc.MediaType) {
		return &manifestBlob{s: s, desc: desc, loc: loc}, nil
	}
	b := &lazyBlob{s: s, desc: desc, loc: loc}
	for _, ep := range s.orderedEndpoints() {
		b.cands = append(b.cands, candidate{ep: ep, url: ep.url("blobs", desc.Digest.String())})
	}
	if isForeign(desc.MediaType) {
		if !s.c.opts.AllowNondistributable {
			return nil, source.NotFoundf("non-distributable layer %s (fetch it from its URLs with --allow-nondistributable)", desc.Digest)
		}
		urls := foreignURLs(desc.URLs)
		if len(urls) > 0 {
			b.loc = redactURL(urls[0].url)
		}
		b.cands = append(urls, b.cands...)
	} else if s.c.opts.AllowNondistributable {
		b.cands = append(b.cands, foreignURLs(desc.URLs)...)
	}
	return b, nil
}

// foreignURLs keeps the http and https URLs of a descriptor.
func foreignURLs(urls []string) []candidate {
	var out []candidate
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue
		}
		out = append(out, candidate{url: u})
	}
	return out
}

// manifestBlob is a manifest or index, read whole into memory.
type manifestBlob struct {
	s    *Source
	desc ocispec.Descriptor
	loc  string
	f    *fetched

	mu sync.Mutex
	mt string
}

var (
	_ source.Blob       = (*manifestBlob)(nil)
	_ source.MediaTyper = (*manifestBlob)(nil)
)

// Key implements source.Blob: the digest.
func (b *manifestBlob) Key() string { return b.desc.Digest.String() }

// Location implements source.Blob: "registry/repo@digest".
func (b *manifestBlob) Location() string { return b.loc }

// Size implements source.Blob: the descriptor's size, or the body's length
// when it was already fetched.
func (b *manifestBlob) Size() int64 {
	if b.f != nil {
		return b.f.size
	}
	return b.desc.Size
}

// MediaType implements source.MediaTyper: the Content-Type the registry
// sent, once the manifest was fetched.
func (b *manifestBlob) MediaType() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f != nil {
		return b.f.mediaType
	}
	return b.mt
}

// Open implements source.Blob. A manifest not fetched yet is fetched from
// the first endpoint that serves it.
func (b *manifestBlob) Open(ctx context.Context) (io.ReadCloser, error) {
	if b.f != nil {
		return io.NopCloser(bytes.NewReader(b.f.data)), nil
	}
	var errs []error
	for _, ep := range b.s.orderedEndpoints() {
		f, err := b.s.fetchManifest(ctx, ep, b.desc.Digest.String(), b.desc.MediaType)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		b.mu.Lock()
		b.mt = f.mediaType
		b.mu.Unlock()
		if f.header != "" && f.header != b.desc.Digest {
			b.s.addFinding(report.ManifestDigest, report.Subject{Digest: b.desc.Digest.String(), Path: f.location},
				"the registry's Docker-Content-Digest header names another digest than the one asked for", b.desc.Digest.String(), f.header.String())
		}
		b.s.schema1Payload(f, b.desc.Digest, nil)
		return io.NopCloser(bytes.NewReader(f.data)), nil
	}
	return nil, joinErrors(errs)
}

// joinErrors joins the errors of several endpoints. The result is "not
// found" only when the last one tried (the origin) said so: a blob a mirror
// lacks but the origin could not be asked for is not known to be missing.
func joinErrors(errs []error) error {
	if len(errs) <= 1 {
		return errors.Join(errs...)
	}
	err := errors.Join(errs...)
	if errors.Is(errs[len(errs)-1], source.ErrNotFound) {
		return err
	}
	return &flatError{msg: err.Error()}
}

type flatError struct{ msg string }

func (e *flatError) Error() string { return e.msg }

// candidate is one place a blob may be fetched from: a registry endpoint's
// blobs URL, or (ep nil) a foreign layer's URL.
type candidate struct {
	ep  *endpoint
	url *url.URL
}

func (c candidate) host() string {
	if c.ep != nil {
		return c.ep.host()
	}
	return c.url.Host
}

// lazyBlob is a blob fetched when opened.
type lazyBlob struct {
	s     *Source
	desc  ocispec.Descriptor
	loc   string
	cands []candidate
}

var _ source.Blob = (*lazyBlob)(nil)

// Key implements source.Blob: the digest.
func (b *lazyBlob) Key() string { return b.desc.Digest.String() }

// Location implements source.Blob: "registry/repo@digest", or the URL of a
// foreign layer.
func (b *lazyBlob) Location() string { return b.loc }

// Size implements source.Blob: the descriptor's size (-1: unknown).
func (b *lazyBlob) Size() int64 { return b.desc.Size }

// Open implements source.Blob. It waits for a stream slot of the host, sends
// the GET, and returns the body as it arrives, unverified; the reader
// resumes or retries interrupted transfers (see blobReader).
func (b *lazyBlob) Open(ctx context.Context) (io.ReadCloser, error) {
	var errs []error
	for i, cand := range b.cands {
		r := &blobReader{c: b.s.c, ctx: ctx, cand: cand, desc: b.desc, what: "blob " + b.desc.Digest.String(), size: b.desc.Size, limit: -1}
		if b.desc.Size >= 0 {
			r.limit = b.desc.Size + overreadSlack
		}
		err := r.start()
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if i < len(b.cands)-1 {
			b.s.c.logf("blob %s from %s: %v; trying the next source", b.desc.Digest, cand.host(), err)
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, source.NotFoundf("blob %s: no usable URL", b.desc.Digest)
	}
	return nil, b.s.c.scrub(joinErrors(errs))
}

// overreadSlack is how many bytes past its descriptor's size a blob is read,
// so that the verifier can report the real length of a slightly longer body;
// a longer one is cut there (the verifier then reports a size and digest
// mismatch with the length read).
const overreadSlack = 1 << 20

// contentRangeStart parses "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "bytes ") {
		return 0, false
	}
	v = strings.TrimPrefix(v, "bytes ")
	a, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(a, 10, 64)
	return n, err == nil
}
