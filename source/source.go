package source

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Sentinel errors. Wrap them with context; test with errors.Is.
var (
	// ErrNotFound: the source holds no such blob, manifest or image.
	ErrNotFound = errors.New("not found")
	// ErrUnsupported: the input is of a kind layercheck does not read.
	ErrUnsupported = errors.New("unsupported")
	// ErrConsumed: a blob of a sequential source was already streamed past.
	ErrConsumed = errors.New("blob already streamed; it can be read only once")
)

// Blob is one stored object. Its bytes are whatever the source holds, not
// verified against any digest.
type Blob interface {
	// Key identifies the stored bytes inside their source: two Blobs with the
	// same Key are the same bytes, and the verifier reads them once.
	Key() string
	// Location names the blob for a person: an archive member, a file, a URL.
	Location() string
	// Size is the stored size when known without reading, else -1.
	Size() int64
	// Open returns the stored bytes from the start. The caller closes the reader.
	Open(ctx context.Context) (io.ReadCloser, error)
}

// Ref is a reference from a manifest (or a manifest-like record) to a blob.
type Ref struct {
	// Desc is what the referrer claims: media type, digest and size. An empty
	// digest means the referrer implies none; Size -1 means unknown.
	Desc ocispec.Descriptor
	// Blob is the referenced object, nil when the source does not hold it.
	Blob Blob
	// Missing explains a nil Blob for the report ("manifest.json names abc/layer.tar, absent").
	Missing string
}

// Image is an image a source declares without an OCI/Docker manifest: an
// entry of docker save's manifest.json, or an image of a host store.
type Image struct {
	// Config is the image config. Its Desc.Digest is the digest the source
	// implies (a file name such as "<hex>.json"), or empty.
	Config Ref
	// Layers are base first. Each Desc.Digest is the digest the stored bytes
	// are expected to have, or empty when the source implies none (in a
	// docker save, an uncompressed layer.tar is expected to hash to its diffID).
	Layers []Ref
	// Manifest is the raw record (a manifest.json entry), kept for reports. Optional.
	Manifest []byte
}

// Claim is somebody's statement of a manifest's digest besides its
// descriptor: a Docker-Content-Digest header, the digest in a reference.
type Claim struct {
	By     string // "Docker-Content-Digest header", "reference"
	Digest digest.Digest
}

// Target is one thing a source asks the verifier to check.
type Target struct {
	// Name is how a user refers to it: "nginx:latest", "index.json[0]", a tag.
	Name string
	// Tags are the names the source records for it (RepoTags, ref.name).
	Tags []string
	// Descriptor names a manifest or an index, fetched through Source.Blob.
	// Exactly one of Descriptor and Image is set.
	Descriptor *ocispec.Descriptor
	// Claims are other statements of the descriptor's digest to check.
	Claims []Claim
	// Image is an image declared without a manifest.
	Image *Image
}

// Source is a place that holds images.
type Source interface {
	// String describes the source for reports: "docker-archive:image.tar".
	String() string
	// Targets lists what to verify, in the source's own order.
	Targets(ctx context.Context) ([]Target, error)
	// Blob returns the blob a descriptor names (by digest, and for registries
	// by media type: manifests and blobs are fetched differently). It returns
	// an error wrapping ErrNotFound when the source does not hold it.
	Blob(ctx context.Context, desc ocispec.Descriptor) (Blob, error)
	// Close releases files and connections.
	Close() error
}

// Lister is implemented by sources that can enumerate every stored blob, so
// blobs nothing references can be reported.
type Lister interface {
	ListBlobs(ctx context.Context) ([]Blob, error)
}

// Scanner is implemented by sources that can be read only front to back (a
// tarball compressed as a whole). Before Targets is called, the verifier
// calls Scan once; the source calls fn for every blob it does not keep in
// memory, in storage order, and fn consumes r. Such blobs later return
// ErrConsumed from Open, and the verifier uses what fn computed.
type Scanner interface {
	Scan(ctx context.Context, fn func(b Blob, r io.Reader) error) error
}

// Noter is implemented by sources that found problems while reading their
// own structure (unsafe member names, invalid metadata files).
type Noter interface {
	Findings() []report.Finding
}

// MediaTyper is an optional Blob capability: the media type the source
// itself records for the blob (a registry's Content-Type).
type MediaTyper interface {
	MediaType() string
}

// NotFoundf returns an error wrapping ErrNotFound.
func NotFoundf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNotFound)
}
