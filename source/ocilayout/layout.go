package ocilayout

import (
	"context"
	_ "crypto/sha256" // digest algorithms go-digest validates against
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DefaultMaxManifestSize bounds index.json and oci-layout when
// Options.MaxManifestSize is 0.
const DefaultMaxManifestSize = 4 << 20

// Options configure Open.
type Options struct {
	// MaxManifestSize bounds the metadata files read into memory
	// (index.json, oci-layout); 0 means DefaultMaxManifestSize.
	MaxManifestSize int64
}

// Layout is an OCI image layout directory opened for reading. It implements
// source.Source, source.Lister and source.Noter, and is safe for concurrent
// use.
type Layout struct {
	dir     string // as given, for messages and blob paths
	root    string // dir with symlinks resolved, to confine blob paths
	opts    Options
	targets []source.Target

	mu       sync.Mutex
	findings []report.Finding
	listed   bool // blobs/ was walked: blobs and listErr hold the result
	blobs    []source.Blob
	listErr  error
}

var (
	_ source.Source = (*Layout)(nil)
	_ source.Lister = (*Layout)(nil)
	_ source.Noter  = (*Layout)(nil)
)

// Open reads the layout's oci-layout and index.json. Problems with either
// file become findings (see Findings); Open fails only when dir is not a
// directory or index.json cannot be read at all (absent, unreadable, larger
// than the limit).
func Open(dir string, opts Options) (*Layout, error) {
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	root, err := source.OpenDir(dir, "OCI layout")
	if err != nil {
		return nil, err
	}
	l := &Layout{dir: dir, root: root, opts: opts}

	indexPath := filepath.Join(dir, ocispec.ImageIndexFile)
	data, err := source.ReadSmallFile(indexPath, opts.MaxManifestSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, lerr := os.Lstat(filepath.Join(dir, ocispec.ImageLayoutFile)); lerr != nil {
				return nil, fmt.Errorf("%s: not an OCI image layout: no %s and no %s: %w", dir, ocispec.ImageIndexFile, ocispec.ImageLayoutFile, source.ErrUnsupported)
			}
			return nil, fmt.Errorf("reading %s: OCI layout without an index: %w", indexPath, err)
		}
		return nil, fmt.Errorf("reading %s: %w", indexPath, err)
	}
	l.checkLayoutFile()
	ts, fs := source.ParseIndexJSON(data, ocispec.ImageIndexFile)
	l.targets = ts
	l.note(fs...)
	return l, nil
}

// checkLayoutFile checks the oci-layout file and records what is wrong with it.
func (l *Layout) checkLayoutFile() {
	const file = ocispec.ImageLayoutFile
	warn := func(msg string) {
		l.note(report.Finding{Check: report.ArchiveManifest, Severity: report.Warning, Subject: report.Subject{Path: file}, Message: msg})
	}
	data, err := source.ReadSmallFile(filepath.Join(l.dir, file), l.opts.MaxManifestSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		warn("oci-layout is missing; an OCI image layout must have one")
		return
	case err != nil:
		warn(fmt.Sprintf("oci-layout cannot be read: %v", err))
		return
	}
	if msg := source.CheckOCILayout(data); msg != "" {
		warn(msg)
	}
}

// String implements source.Source.
func (l *Layout) String() string { return "oci:" + l.dir }

// Targets implements source.Source: one target per index.json descriptor, in
// index order. An index.json with no manifests gives no targets. Targets
// also walks blobs/ once (see ListBlobs), so that Findings is complete when
// Targets returns.
func (l *Layout) Targets(ctx context.Context) ([]source.Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, _ = l.ListBlobs(ctx) // its error is ListBlobs' to report
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]source.Target, len(l.targets))
	copy(out, l.targets)
	return out, nil
}

// Blob implements source.Source: the file blobs/<alg>/<encoded>. The digest
// is validated before it becomes a path. An absent file, a directory or any
// other non-regular file where the blob belongs gives an error wrapping
// source.ErrNotFound.
func (l *Layout) Blob(ctx context.Context, desc ocispec.Descriptor) (source.Blob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := desc.Digest
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: invalid digest, no such blob in the layout: %w: %w", string(d), err, source.ErrNotFound)
	}
	rel := filepath.Join(ocispec.ImageBlobsDir, string(d.Algorithm()), d.Encoded())
	return l.fileBlob(rel, d.String())
}

// fileBlob checks that rel (relative to the layout) is a regular file inside
// the layout and returns it as a blob with key k.
func (l *Layout) fileBlob(rel, k string) (*source.FileBlob, error) {
	return source.ConfinedFile(l.dir, l.root, rel, k, "the layout")
}

// ListBlobs implements source.Lister: every file under blobs/. A file named
// blobs/<alg>/<encoded> with a valid digest is keyed by that digest (the key
// Blob gives it); any other file is keyed by its slash-separated path
// relative to the layout ("blobs/sha256/tmp-123"). Files that are not
// regular, or symlinks leaving the layout, are left out and reported as
// findings. blobs/ is walked once; later calls return the same list.
func (l *Layout) ListBlobs(ctx context.Context) ([]source.Blob, error) {
	l.mu.Lock()
	if l.listed {
		bs, err := l.blobs, l.listErr
		l.mu.Unlock()
		return append([]source.Blob(nil), bs...), err
	}
	l.mu.Unlock()
	bs, fs, err := l.walkBlobs(ctx)
	if ctx.Err() != nil {
		return nil, ctx.Err() // not cached: a later call may finish
	}
	l.mu.Lock()
	if !l.listed {
		l.listed, l.blobs, l.listErr = true, bs, err
		l.findings = append(l.findings, fs...)
	}
	bs, err = l.blobs, l.listErr
	l.mu.Unlock()
	return append([]source.Blob(nil), bs...), err
}

// walkBlobs lists blobs/ and the problems found there.
func (l *Layout) walkBlobs(ctx context.Context) ([]source.Blob, []report.Finding, error) {
	var findings []report.Finding
	base := filepath.Join(l.dir, ocispec.ImageBlobsDir)
	if _, err := os.Lstat(base); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	var out []source.Blob
	err := filepath.WalkDir(base, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("listing blobs: %w", err)
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if de.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		slash := filepath.ToSlash(rel)
		b, err := l.fileBlob(rel, blobKey(slash))
		if err != nil {
			check, sev := report.ArchiveMember, report.Warning
			if !errors.Is(err, source.ErrNotFound) {
				check, sev = report.ArchiveUnsafePath, report.Error
			}
			findings = append(findings, report.Finding{Check: check, Severity: sev, Subject: report.Subject{Path: slash}, Message: err.Error()})
			return nil
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, findings, err
	}
	return out, findings, nil
}

// blobKey is the key of the file at slash path rel: its digest when the path
// is blobs/<alg>/<encoded> with a valid digest, else the path itself.
func blobKey(rel string) string {
	parts := strings.Split(rel, "/")
	if len(parts) == 3 && parts[0] == ocispec.ImageBlobsDir {
		d := digest.Digest(parts[1] + ":" + parts[2])
		if d.Validate() == nil {
			return d.String()
		}
	}
	return rel
}

// Findings implements source.Noter: problems of oci-layout and index.json
// found by Open, and of blobs/ found by the walk Targets and ListBlobs do.
func (l *Layout) Findings() []report.Finding {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]report.Finding(nil), l.findings...)
}

func (l *Layout) note(fs ...report.Finding) {
	l.mu.Lock()
	l.findings = append(l.findings, fs...)
	l.mu.Unlock()
}

// Close implements source.Source. A layout holds no open files.
func (l *Layout) Close() error { return nil }
