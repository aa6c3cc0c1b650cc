package containerd

import (
	"context"
	"errors"
	"hash"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// storeSource presents the images of the selected namespaces as a
// source.Source: each image record is a Target whose descriptor is the
// record's target, and blobs are the content store's files. Blobs are
// shared by all namespaces (the files are), so a layer referenced from two
// namespaces is read once.
type storeSource struct {
	st      *Store
	targets []source.Target
	reads   *readTracker // nil: plain file blobs
}

var _ source.Source = (*storeSource)(nil)

// Source returns the selected namespaces' images as a source.Source for the
// shared verifier. Target names are "<namespace>/<image name>"; each
// target's Tags hold the plain image name.
func (s *Store) Source() source.Source {
	return &storeSource{st: s, targets: s.targets(nil)}
}

// String implements source.Source.
func (s *storeSource) String() string { return "containerd:" + s.st.root }

// Targets implements source.Source.
func (s *storeSource) Targets(context.Context) ([]source.Target, error) { return s.targets, nil }

// Close implements source.Source.
func (s *storeSource) Close() error { return nil }

// Blob implements source.Source: the file blobs/<alg>/<hex> of the digest.
func (s *storeSource) Blob(_ context.Context, desc ocispec.Descriptor) (source.Blob, error) {
	if desc.Digest.Validate() != nil {
		return nil, source.NotFoundf("invalid digest %q", desc.Digest)
	}
	f := s.st.files[desc.Digest]
	if f == nil {
		return nil, source.NotFoundf("%s: no blob file %s", desc.Digest, s.st.blobPath(desc.Digest))
	}
	fb := &source.FileBlob{K: f.Path, Path: f.Path, N: f.Size}
	if s.reads == nil {
		return fb, nil
	}
	return &trackedBlob{FileBlob: fb, d: f.Digest, t: s.reads, small: !isLayerType(desc.MediaType) && f.Size <= s.reads.limit}, nil
}

// targets lists one Target per image record of the selected namespaces,
// sorted, skipping records whose target is unusable; keep filters them.
func (s *Store) targets(keep func(ns *namespace, img *imageRecord) bool) []source.Target {
	var out []source.Target
	for _, n := range s.selected {
		ns := s.meta.Namespaces[n]
		names := make([]string, 0, len(ns.Images))
		for name := range ns.Images {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			img := ns.Images[name]
			if len(img.Problems) > 0 || (keep != nil && !keep(ns, img)) {
				continue
			}
			d := img.Target
			out = append(out, source.Target{Name: targetName(n, name), Tags: []string{name}, Descriptor: &d})
		}
	}
	return out
}

func targetName(ns, image string) string { return ns + "/" + image }

// isLayerType follows containerd's images.IsLayerType.
func isLayerType(mt string) bool {
	if strings.HasPrefix(mt, "application/vnd.oci.image.layer.") {
		return true
	}
	base, _, _ := strings.Cut(mt, "+")
	switch base {
	case "application/vnd.docker.image.rootfs.diff.tar", "application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.foreign.diff.tar", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.diff.tar.zstd":
		return true
	}
	return false
}

// readTracker remembers which blob files were read to their end, and keeps
// the bytes and digest of small non-layer blobs (manifests, indexes,
// configs) so that nothing is read twice.
type readTracker struct {
	limit int64
	mu    sync.Mutex
	state map[digest.Digest]*readState
}

type readState struct {
	full bool          // read to EOF at least once
	sum  digest.Digest // computed digest, when hashed here
	data []byte        // the bytes, for small blobs
}

func newReadTracker(limit int64) *readTracker {
	return &readTracker{limit: limit, state: map[digest.Digest]*readState{}}
}

func (t *readTracker) get(d digest.Digest) *readState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state[d]
}

func (t *readTracker) done(d digest.Digest, sum digest.Digest, data []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.state[d]
	if st == nil {
		st = &readState{}
		t.state[d] = st
	}
	st.full = true
	if sum != "" {
		st.sum = sum
	}
	if data != nil {
		st.data = data
	}
}

// trackedBlob is a file blob whose reads are recorded in a readTracker.
type trackedBlob struct {
	*source.FileBlob
	d     digest.Digest
	t     *readTracker
	small bool
}

// Open implements source.Blob.
func (b *trackedBlob) Open(context.Context) (io.ReadCloser, error) {
	f, err := openBlob(b.Path)
	if err != nil {
		return nil, err
	}
	r := &trackReader{f: f, b: b}
	if b.small {
		r.h = b.d.Algorithm().Hash()
	}
	return r, nil
}

type trackReader struct {
	f    *os.File
	b    *trackedBlob
	h    hash.Hash
	buf  []byte
	over bool
	done bool
}

func (r *trackReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if n > 0 && r.h != nil {
		r.h.Write(p[:n])
		if !r.over && int64(len(r.buf)+n) <= r.b.t.limit {
			r.buf = append(r.buf, p[:n]...)
		} else {
			r.over, r.buf = true, nil
		}
	}
	if errors.Is(err, io.EOF) && !r.done {
		r.done = true
		var sum digest.Digest
		var data []byte
		if r.h != nil {
			sum = digest.NewDigest(r.b.d.Algorithm(), r.h)
			if !r.over {
				data = r.buf
				if data == nil {
					data = []byte{}
				}
			}
		}
		r.b.t.done(r.b.d, sum, data)
	}
	return n, err
}

func (r *trackReader) Close() error { return r.f.Close() }

// openHook, when set (by tests), sees every blob file the audit opens.
var openHook func(path string)

// openBlob opens a content blob read-only.
func openBlob(path string) (*os.File, error) {
	if openHook != nil {
		openHook(path)
	}
	return os.Open(path)
}
