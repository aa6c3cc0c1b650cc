package store

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// Kind names what sort of store a path holds.
type Kind string

// The kinds of store layercheck knows.
const (
	Docker            Kind = "docker"             // Docker's classic graph-driver store (image/<driver>, layerdb)
	Containerd        Kind = "containerd"         // a containerd root, or Docker's containerd image store
	ContainersStorage Kind = "containers-storage" // podman, buildah, CRI-O (<driver>-layers, <driver>-images)
	Registry          Kind = "registry"           // distribution's filesystem storage (docker/registry/v2)
)

// ErrNotFound is returned by Lookup, and by Audit with Options.Images,
// when no image matches. It is verify.ErrNoMatch, so every command's
// selection is handled alike.
var ErrNotFound = verify.ErrNoMatch

// ErrAmbiguous is returned by Lookup when a name or ID prefix matches more
// than one image.
var ErrAmbiguous = errors.New("the name matches several images")

// ErrNotAStore is returned by an opener for a path that is not a store of
// its kind (hoststore.Open tries the next kind).
var ErrNotAStore = errors.New("not a store of this kind")

// Store is one on-disk store, opened read-only. Nothing a Store does writes,
// locks or mounts anything under its root.
type Store interface {
	// Kind says what sort of store this is.
	Kind() Kind
	// Root is the directory the store was opened at.
	Root() string
	// String names the store for reports: its kind, driver and root.
	String() string
	// Images lists the images the store holds (after the Options.Images
	// selection), cheaply: records only, no layer content read.
	Images(ctx context.Context) ([]Image, error)
	// Lookup finds one image by reference (nginx, nginx:latest,
	// docker.io/library/nginx@sha256:…), by image ID or by a unique ID
	// prefix, without reading layer content. ErrNotFound and ErrAmbiguous
	// wrap the reasons it finds none.
	Lookup(ctx context.Context, name string) (*Image, error)
	// Audit checks the store (the images Options.Images selects, or the
	// whole store with its leftovers) and adds images, findings and
	// problems to b. An error means the store could not be audited at all.
	Audit(ctx context.Context, b *report.Builder) error
	// Close releases what Open took (temporary copies of locked databases).
	Close() error
}

// LayerReader is implemented by stores that can give a layer's
// uncompressed tar stream as the store keeps it (rebuilt from tar-split and
// the driver's files, or a stored blob decompressed), for compare --deep.
type LayerReader interface {
	OpenLayer(ctx context.Context, chainID digest.Digest) (io.ReadCloser, error)
}

// Selector is implemented by stores that can narrow an audit to some
// images (as Options.Images does at opening) without being opened again by
// the caller: compare --deep audits just the images it compared. The
// returned store is closed by the caller and does not close its parent.
type Selector interface {
	SelectImages(images []string) (Store, error)
}

// Image is what a store records about one image, read without any layer
// content: what compare sets beside the image's registry source.
type Image struct {
	// ID is the image ID: the config's digest.
	ID digest.Digest
	// Names are the references that name the image in the store, in
	// normalized form (docker.io/library/nginx:latest), sorted.
	Names []string
	// RepoDigests are the registry manifest digests the store recorded
	// for the image (repo@sha256:…, normalized): what it was pulled as.
	RepoDigests []string
	// Manifest is the digest of the manifest the store keeps for the image
	// ("" where the store keeps none, as Docker's classic store).
	Manifest digest.Digest
	// Platform is os/arch[/variant] from the config.
	Platform string
	// Namespace is the containerd namespace holding the image ("" for
	// other stores).
	Namespace string
	// Layers are the image's layers, base first.
	Layers []Layer
}

// Layer is one layer of an Image as the store records it.
type Layer struct {
	DiffID  digest.Digest
	ChainID digest.Digest
	// Digest is the compressed layer digest where the store keeps it
	// (containerd, containers-storage, registry storage); "" otherwise.
	Digest digest.Digest
	// Size is the uncompressed size the store records; -1 when unknown.
	Size int64
	// Present says whether the store holds the layer's content.
	Present bool
}

// Options configure every backend. A backend ignores what does not apply to
// it (Driver to containerd, Namespaces to Docker).
type Options struct {
	// Images selects images by reference, ID or unique ID prefix; empty:
	// the whole store, with its store-wide checks (orphans, leftovers).
	Images []string
	// Platforms selects platforms of multi-platform images; empty: all.
	Platforms []string
	// Driver selects the graph driver when a root holds several.
	Driver string
	// Namespaces selects containerd namespaces; empty: all.
	Namespaces []string
	// Jobs is how many layers or blobs are read at once (0: 1).
	Jobs int
	// MaxFileSize bounds every metadata file read into memory (0: 16 MiB).
	MaxFileSize int64
	// Shard, when set, restricts the audit to this shard of the store's
	// work (registry storage: repositories and blobs).
	Shard *report.Shard
	// Verify carries the engine's limits (Pass), analysis and progress
	// callback for the layers the audit reads.
	Verify verify.Options
}

// Audited is one store's audit: its own report, the error that stopped it
// (nil for a complete audit) and how long it took.
type Audited struct {
	Store    Store
	Report   *report.Report
	Err      error
	Duration time.Duration
}

// AuditEach audits stores one after the other, each into its own report
// (what per-store metrics need). It stops at the cancellation of ctx.
func AuditEach(ctx context.Context, stores []Store, version string) []Audited {
	var out []Audited
	for _, s := range stores {
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		b := &report.Builder{}
		err := s.Audit(ctx, b)
		if err != nil && ctx.Err() == nil {
			b.Problem(report.Subject{Path: s.String()}, "%v", err)
		}
		out = append(out, Audited{Store: s, Report: b.Finish("host", s.String(), version), Err: err, Duration: time.Since(start)})
	}
	return out
}

// Join puts the stores' reports into one report, in order, and returns the
// first error (the cancellation when ctx was cancelled).
func Join(ctx context.Context, audited []Audited, version string) (*report.Report, error) {
	b := &report.Builder{}
	var firstErr error
	var names []string
	for _, a := range audited {
		names = append(names, a.Store.String())
		b.Add(a.Report.Findings...)
		for _, p := range a.Report.Problems {
			b.Problem(p.Subject, "%s", p.Message)
		}
		for _, im := range a.Report.Images {
			b.AddImage(im)
		}
		if a.Err != nil && firstErr == nil {
			firstErr = a.Err
		}
	}
	if ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return b.Finish("host", strings.Join(names, ", "), version), firstErr
}

// AuditAll audits stores into one report (AuditEach, then Join).
func AuditAll(ctx context.Context, stores []Store, version string) (*report.Report, error) {
	return Join(ctx, AuditEach(ctx, stores, version), version)
}
