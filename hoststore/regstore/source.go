package regstore

import (
	"context"
	_ "crypto/sha512" // blobs may be stored under sha512
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// regBlob is one blobs/<alg>/<xx>/<hex>/data file as a source.Blob. Its Key
// is its digest, shared by every repository source, so the verifier reads it
// once. A blob stored under another algorithm than sha256 is hashed with it
// as it is read (verify.Pass hashes sha256), in the same read.
type regBlob struct {
	s *Store
	f *blobFile
	h *hashes // where a non-sha256 digest measured on read goes
}

var _ source.Blob = (*regBlob)(nil)

func (b *regBlob) Key() string      { return b.f.d.String() }
func (b *regBlob) Location() string { return V2Dir + "/" + b.f.rel }
func (b *regBlob) Size() int64      { return b.f.size }

// Open opens the data file through the root, without blocking on a FIFO.
func (b *regBlob) Open(ctx context.Context) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := b.s.v2.OpenFile(b.f.rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file (%s)", b.Location(), fi.Mode().Type())
	}
	if b.f.d.Algorithm() == digest.SHA256 {
		return f, nil
	}
	if !b.f.d.Algorithm().Available() {
		return f, nil
	}
	return &altHasher{f: f, h: b.f.d.Algorithm().Hash(), done: func(d digest.Digest) { b.h.set(b.f.d, d) }, alg: b.f.d.Algorithm()}, nil
}

// altHasher hashes what is read with a second algorithm and reports the
// digest when the file was read to its end.
type altHasher struct {
	f    *os.File
	h    hash.Hash
	alg  digest.Algorithm
	eof  bool
	done func(digest.Digest)
}

func (a *altHasher) Read(p []byte) (int, error) {
	n, err := a.f.Read(p)
	a.h.Write(p[:n])
	if errors.Is(err, io.EOF) && !a.eof {
		a.eof = true
		a.done(digest.NewDigest(a.alg, a.h))
	}
	return n, err
}

func (a *altHasher) Close() error { return a.f.Close() }

// hashes records what each blob's read measured: sha256 from the pass,
// other algorithms from altHasher.
type hashes struct {
	mu  sync.Mutex
	got map[digest.Digest]digest.Digest
	err map[digest.Digest]error
}

func (h *hashes) set(blob, got digest.Digest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.got == nil {
		h.got = map[digest.Digest]digest.Digest{}
	}
	if blob.Algorithm() == got.Algorithm() || h.got[blob] == "" {
		h.got[blob] = got
	}
}

func (h *hashes) fail(blob digest.Digest, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = map[digest.Digest]error{}
	}
	h.err[blob] = err
}

func (h *hashes) measured(blob digest.Digest) (digest.Digest, error, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err, ok := h.err[blob]; ok {
		return "", err, true
	}
	d, ok := h.got[blob]
	return d, nil, ok
}

// repoSource is one repository as a source.Source: its targets are the
// manifest revisions chosen by the audit, its blobs those of blobs/ (found
// by digest, or through the repository's link for an alias digest). Links
// are the audit's to check; the source hands out any blob that exists, so
// the images are verified even when a link is broken.
type repoSource struct {
	s       *Store
	r       *repo
	h       *hashes
	targets []source.Target
}

var (
	_ source.Source     = (*repoSource)(nil)
	_ verify.BlobScoper = (*repoSource)(nil)
)

func (rs *repoSource) String() string { return rs.s.String() + " repository " + rs.r.name }

// BlobScope implements verify.BlobScoper: every repository of the storage
// shares one blob store.
func (rs *repoSource) BlobScope() string { return "registry storage " + rs.s.root }

func (rs *repoSource) Targets(ctx context.Context) ([]source.Target, error) {
	return append([]source.Target(nil), rs.targets...), ctx.Err()
}

func (rs *repoSource) Blob(ctx context.Context, desc ocispec.Descriptor) (source.Blob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := desc.Digest
	if err := d.Validate(); err != nil {
		return nil, source.NotFoundf("blob %q: invalid digest: %v", string(d), err)
	}
	if b := rs.s.sc.blobs[d]; b != nil {
		return &regBlob{s: rs.s, f: b, h: rs.h}, nil
	}
	for _, links := range []map[digest.Digest]*link{rs.r.layers, rs.r.revisions} {
		if l := links[d]; l != nil && l.target != "" {
			if b := rs.s.sc.blobs[l.target]; b != nil {
				return &regBlob{s: rs.s, f: b, h: rs.h}, nil
			}
		}
	}
	return nil, source.NotFoundf("blob %s is not in blobs/ of %s", d, rs.s)
}

func (rs *repoSource) Close() error { return nil }
