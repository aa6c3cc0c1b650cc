package containerd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Paths inside a containerd root (FORMATS.md 4.1).
const (
	ContentDir        = "io.containerd.content.v1.content"
	MetaDBPath        = "io.containerd.metadata.v1.bolt/meta.db"
	SnapshotterPrefix = "io.containerd.snapshotter.v1."
)

// DefaultLockTimeout is how long Open waits for a database lock before it
// reads a private copy instead.
const DefaultLockTimeout = time.Second

// Options configure Open and Audit.
type Options struct {
	// Namespaces selects the namespaces to audit (moby, default, k8s.io, ...);
	// empty: every namespace in meta.db.
	Namespaces []string
	// Images selects images by name, tag, or target digest prefix; empty: all.
	// With a selection, store-wide checks (orphans, unreferenced content,
	// leases, ingests) are skipped.
	Images []string
	// Platforms selects platforms of multi-platform images; empty: all.
	Platforms []string
	// Jobs is how many blobs are read at once (0: 1).
	Jobs int
	// LockTimeout bounds the wait for a bbolt lock (0: DefaultLockTimeout).
	LockTimeout time.Duration
	// TempDir receives the private copies of locked databases (empty: os.TempDir()).
	TempDir string
	// NoSnapshotFiles skips comparing the files of committed snapshots with
	// their layers (and reporting active snapshots' sizes).
	NoSnapshotFiles bool
	// Verify carries the engine's limits, observers and progress callback.
	// Its Jobs, Images and Platforms are ignored: the fields above apply.
	Verify verify.Options
}

// Store is a containerd root read into memory: meta.db, the snapshotters'
// metadata and the listing of the content store. It holds no open files.
type Store struct {
	root         string
	opts         Options
	meta         *metaDB
	copied       []string
	snapshotters map[string]*snapshotter
	files        map[digest.Digest]*blobFile
	oddFiles     []oddFile
	ingests      []ingest
	selected     []string
	// small, when set, serves readSmall (the audit's reads of manifests and
	// configs the verifier already read).
	small func(digest.Digest) ([]byte, bool)
}

// blobFile is one file under blobs/<alg>/.
type blobFile struct {
	Digest digest.Digest
	Path   string
	Size   int64
}

// oddFile is an entry under blobs/ that is not a blob: a bad name, a
// directory, a symlink, an unsupported algorithm.
type oddFile struct {
	Path, Why string
	Size      int64
}

// ingest is one directory under ingest/ (an unfinished write).
type ingest struct {
	Path, Ref string
	Size      int64 // bytes in data
	Total     int64 // expected total, -1 unknown
}

// IsRoot reports whether dir looks like a containerd root (it has meta.db).
func IsRoot(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, MetaDBPath))
	return err == nil && fi.Mode().IsRegular()
}

// DockerRoot returns the root of the containerd that dockerd runs itself
// (<data root>/containerd/daemon), used by Docker's containerd image store
// in namespace moby, and whether it exists.
func DockerRoot(dataRoot string) (string, bool) {
	r := filepath.Join(dataRoot, "containerd", "daemon")
	return r, IsRoot(r)
}

// Open reads the containerd root: meta.db and every snapshotter's
// metadata.db (read-only, through a private copy when locked), the blob
// listing and the ingests. A selected namespace that meta.db lacks is an
// error wrapping verify.ErrNoMatch.
func Open(root string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 1
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("containerd root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("containerd root %s is not a directory", root)
	}
	metaPath := filepath.Join(root, MetaDBPath)
	if _, err := os.Stat(metaPath); err != nil {
		return nil, fmt.Errorf("%s is not a containerd root: %w", root, err)
	}
	s := &Store{root: root, opts: opts, snapshotters: map[string]*snapshotter{}, files: map[digest.Digest]*blobFile{}}
	copied, err := boltRead(metaPath, opts.LockTimeout, opts.TempDir, func(tx *bolt.Tx) error {
		m, err := readMetaDB(tx)
		s.meta = m
		return err
	})
	if err != nil {
		return nil, err
	}
	if copied {
		s.copied = append(s.copied, metaPath)
	}
	if err := s.readSnapshotters(); err != nil {
		return nil, err
	}
	if err := s.listContent(); err != nil {
		return nil, err
	}
	if err := s.selectNamespaces(); err != nil {
		return nil, err
	}
	return s, nil
}

// Root returns the directory the store was opened from.
func (s *Store) Root() string { return s.root }

// Namespaces returns the namespaces Audit covers, sorted.
func (s *Store) Namespaces() []string { return append([]string(nil), s.selected...) }

// AllNamespaces returns every namespace meta.db holds, sorted.
func (s *Store) AllNamespaces() []string { return s.meta.NamespaceNames() }

// Copied lists the databases that were locked (by a running containerd) and
// were read from a private copy, since removed.
func (s *Store) Copied() []string { return append([]string(nil), s.copied...) }

// Close releases nothing today (Open keeps no files open); it exists so a
// Store can be used like a source.
func (s *Store) Close() error { return nil }

func (s *Store) selectNamespaces() error {
	all := s.meta.NamespaceNames()
	if len(s.opts.Namespaces) == 0 {
		s.selected = all
		return nil
	}
	seen := map[string]bool{}
	for _, n := range s.opts.Namespaces {
		if _, ok := s.meta.Namespaces[n]; !ok {
			have := strings.Join(all, ", ")
			if have == "" {
				have = "no namespace"
			}
			return fmt.Errorf("namespace %q: %w; %s holds: %s", n, verify.ErrNoMatch, filepath.Join(s.root, MetaDBPath), have)
		}
		if !seen[n] {
			seen[n] = true
			s.selected = append(s.selected, n)
		}
	}
	sort.Strings(s.selected)
	return nil
}

func (s *Store) readSnapshotters() error {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.root, err)
	}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), SnapshotterPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		sn := &snapshotter{Name: name, Dir: filepath.Join(s.root, e.Name())}
		s.snapshotters[name] = sn
		dbPath := filepath.Join(sn.Dir, "metadata.db")
		if _, err := os.Stat(dbPath); err != nil {
			sn.Err = fmt.Errorf("no metadata.db: %w", err)
			continue
		}
		copied, err := boltRead(dbPath, s.opts.LockTimeout, s.opts.TempDir, sn.read)
		if err != nil {
			sn.Err = err
			continue
		}
		sn.Read, sn.Copied = true, copied
		if copied {
			s.copied = append(s.copied, dbPath)
		}
	}
	return nil
}

func (s *Store) contentPath(parts ...string) string {
	return filepath.Join(append([]string{s.root, ContentDir}, parts...)...)
}

// blobPath is where the content store keeps a digest's bytes.
func (s *Store) blobPath(d digest.Digest) string {
	return s.contentPath("blobs", d.Algorithm().String(), d.Encoded())
}

func (s *Store) listContent() error {
	blobs := s.contentPath("blobs")
	algs, err := os.ReadDir(blobs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", blobs, err)
	}
	for _, a := range algs {
		dir := filepath.Join(blobs, a.Name())
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			s.oddFiles = append(s.oddFiles, oddFile{Path: dir, Why: "not a directory of a supported digest algorithm"})
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("reading %s: %w", dir, err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			d := digest.NewDigestFromEncoded(alg, e.Name())
			fi, err := e.Info()
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // removed by a running containerd since the listing
				}
				return fmt.Errorf("stat %s: %w", p, err)
			}
			switch {
			case d.Validate() != nil:
				s.oddFiles = append(s.oddFiles, oddFile{Path: p, Why: "the name is not a " + string(alg) + " digest", Size: fi.Size()})
			case !fi.Mode().IsRegular():
				s.oddFiles = append(s.oddFiles, oddFile{Path: p, Why: "not a regular file (" + fi.Mode().Type().String() + ")"})
			default:
				s.files[d] = &blobFile{Digest: d, Path: p, Size: fi.Size()}
			}
		}
	}
	ing := s.contentPath("ingest")
	entries, err := os.ReadDir(ing)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", ing, err)
	}
	for _, e := range entries {
		p := filepath.Join(ing, e.Name())
		in := ingest{Path: p, Total: -1}
		if e.IsDir() {
			in.Ref = strings.TrimSpace(string(readSmallFile(filepath.Join(p, "ref"), 4096)))
			if t, err := strconv.ParseInt(strings.TrimSpace(string(readSmallFile(filepath.Join(p, "total"), 64))), 10, 64); err == nil {
				in.Total = t
			}
			if fi, err := os.Stat(filepath.Join(p, "data")); err == nil {
				in.Size = fi.Size()
			}
		} else if fi, err := e.Info(); err == nil {
			in.Size = fi.Size()
		}
		s.ingests = append(s.ingests, in)
	}
	return nil
}

// readSmallFile returns at most limit bytes of a file, nil on any error.
func readSmallFile(p string, limit int64) []byte {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, limit))
	return b
}

// String names the store for reports: "containerd:<root>", with the
// namespaces when a selection was made.
func (s *Store) String() string {
	if len(s.opts.Namespaces) > 0 {
		return "containerd:" + s.root + " (namespace " + strings.Join(s.selected, ", ") + ")"
	}
	return "containerd:" + s.root
}

// Image is an image record of meta.db.
type Image struct {
	Name   string
	Target ocispec.Descriptor
	Labels map[string]string
}

// Records returns the image records of a namespace, sorted by name, as
// `ctr images ls` lists them.
func (s *Store) Records(namespace string) []Image {
	ns := s.meta.Namespaces[namespace]
	if ns == nil {
		return nil
	}
	var out []Image
	for _, name := range sortedKeys(ns.Images) {
		img := ns.Images[name]
		out = append(out, Image{Name: name, Target: img.Target, Labels: img.Labels})
	}
	return out
}

// Content is a content record of meta.db.
type Content struct {
	Digest digest.Digest
	Size   int64
	Labels map[string]string
}

// Content returns the content records of a namespace, sorted by digest, as
// `ctr content ls` lists them.
func (s *Store) Content(namespace string) []Content {
	ns := s.meta.Namespaces[namespace]
	if ns == nil {
		return nil
	}
	var out []Content
	for _, d := range sortedDigests(ns.Blobs) {
		rec := ns.Blobs[d]
		out = append(out, Content{Digest: d, Size: rec.Size, Labels: rec.Labels})
	}
	return out
}

// OpenDocker opens the containerd root a Docker data root uses for its
// containerd image store (<data root>/containerd/daemon). Without a namespace
// selection it audits namespace moby, or every namespace when the root has
// no moby namespace yet.
func OpenDocker(dataRoot string, opts Options) (*Store, error) {
	root, ok := DockerRoot(dataRoot)
	if !ok {
		return nil, fmt.Errorf("%s has no containerd root at containerd/daemon", dataRoot)
	}
	if len(opts.Namespaces) > 0 {
		return Open(root, opts)
	}
	opts.Namespaces = []string{"moby"}
	st, err := Open(root, opts)
	if errors.Is(err, verify.ErrNoMatch) {
		opts.Namespaces = nil
		return Open(root, opts)
	}
	return st, err
}
