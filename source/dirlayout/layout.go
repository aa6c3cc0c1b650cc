package dirlayout

import (
	"bytes"
	"context"
	_ "crypto/sha256" // digest algorithms go-digest validates against
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Files of the layout (containers/image directory/directory_transport.go).
const (
	ManifestFile = "manifest.json"
	VersionFile  = "version"
	// versionPrefix starts the version file; containers/image writes 1.1
	// (1.0 before it stored blobs of any algorithm).
	versionPrefix = "Directory Transport Version: "
	// instanceSuffix names an instance manifest of a multi-image copy: <hex>.manifest.json.
	instanceSuffix = "." + ManifestFile
)

// DefaultMaxManifestSize bounds manifest.json and version when
// Options.MaxManifestSize is 0.
const DefaultMaxManifestSize = 4 << 20

// knownVersions are the version file contents layercheck knows.
var knownVersions = []string{"1.0", "1.1"}

// signatureName matches signature files: signature-N and <hex>.signature-N.
var signatureName = regexp.MustCompile(`^([0-9a-f]{64}\.)?signature-[0-9]+$`)

// Options configure Open.
type Options struct {
	// MaxManifestSize bounds the metadata read into memory (manifest.json,
	// version); 0 means DefaultMaxManifestSize.
	MaxManifestSize int64
}

// Layout is a dir: layout opened for reading. It implements source.Source,
// source.Lister and source.Noter, and is safe for concurrent use.
type Layout struct {
	dir      string
	root     string // dir with symlinks resolved, to confine blob paths
	opts     Options
	manifest []byte
	mdigest  digest.Digest

	mu       sync.Mutex
	findings []report.Finding
	listed   bool
	blobs    []source.Blob
	listErr  error
}

var (
	_ source.Source = (*Layout)(nil)
	_ source.Lister = (*Layout)(nil)
	_ source.Noter  = (*Layout)(nil)
)

// Is reports whether dir looks like a dir: layout by its content: a
// directory with a regular manifest.json that is a JSON object (docker
// save's manifest.json is an array), and either a version file naming the
// directory transport or no OCI layout files (index.json, oci-layout) beside it.
func Is(dir string) bool {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return false
	}
	data, err := source.ReadSmallFile(filepath.Join(dir, ManifestFile), DefaultMaxManifestSize)
	if err != nil || !isObject(data) {
		return false
	}
	if v, err := source.ReadSmallFile(filepath.Join(dir, VersionFile), 4<<10); err == nil && bytes.HasPrefix(v, []byte(versionPrefix)) {
		return true
	}
	for _, f := range []string{ocispec.ImageIndexFile, ocispec.ImageLayoutFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return false
		}
	}
	var head struct {
		SchemaVersion *int `json:"schemaVersion"`
	}
	return json.Unmarshal(data, &head) == nil && head.SchemaVersion != nil
}

// isObject reports whether data is JSON whose first token opens an object.
func isObject(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// Open reads the layout's manifest.json and version. Problems with the
// version file become findings; Open fails only when dir is not a directory
// or manifest.json cannot be read (absent, unreadable, larger than the limit).
func Open(dir string, opts Options) (*Layout, error) {
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	root, err := source.OpenDir(dir, "dir: layout")
	if err != nil {
		return nil, err
	}
	l := &Layout{dir: dir, root: root, opts: opts}
	mb, err := source.ConfinedFile(dir, root, ManifestFile, "", "the dir: layout")
	if err != nil {
		if errors.Is(err, source.ErrNotFound) {
			return nil, fmt.Errorf("%s: not a dir: layout: %v: %w", dir, err, source.ErrUnsupported)
		}
		return nil, err
	}
	data, err := source.ReadSmallFile(mb.Path, opts.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", mb.Path, err)
	}
	l.manifest, l.mdigest = data, digest.FromBytes(data)
	l.checkVersion()
	return l, nil
}

// checkVersion checks the version file and records what is wrong with it.
func (l *Layout) checkVersion() {
	warn := func(msg string) {
		l.note(report.Finding{Check: report.ArchiveManifest, Severity: report.Warning, Subject: report.Subject{Path: VersionFile}, Message: msg})
	}
	data, err := source.ReadSmallFile(filepath.Join(l.dir, VersionFile), 4<<10)
	var le *source.LimitError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		warn("version is missing; containers/image writes \"" + versionPrefix + "1.1\" beside manifest.json")
		return
	case errors.As(err, &le):
		warn("version is larger than 4 KiB: not a directory transport version file")
		return
	case err != nil:
		warn(fmt.Sprintf("version cannot be read: %v", err))
		return
	}
	got := strings.TrimRight(string(data), "\n")
	v, ok := strings.CutPrefix(got, versionPrefix)
	if !ok {
		warn(fmt.Sprintf("version does not start with %q: %q", versionPrefix, trunc(got)))
		return
	}
	for _, k := range knownVersions {
		if v == k {
			return
		}
	}
	warn(fmt.Sprintf("version %q is not one layercheck knows (%s)", trunc(v), strings.Join(knownVersions, ", ")))
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// String implements source.Source.
func (l *Layout) String() string { return "dir:" + l.dir }

// Targets implements source.Source: one target, manifest.json, named by the
// sha256 of its bytes (the layout records no digest for it). Its media type
// is left for the verifier to read from the document. Targets also lists the
// directory once (see ListBlobs), so that Findings is complete when it returns.
func (l *Layout) Targets(ctx context.Context) ([]source.Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, _ = l.ListBlobs(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	desc := ocispec.Descriptor{Digest: l.mdigest, Size: int64(len(l.manifest))}
	return []source.Target{{Name: ManifestFile, Descriptor: &desc}}, nil
}

// Blob implements source.Source. A digest names manifest.json (when it is
// the digest of its bytes), an instance manifest <hex>.manifest.json, or a
// blob file: <hex> for sha256, <alg>-<hex> or <hex> for other algorithms.
// The digest is validated before it becomes a path.
func (l *Layout) Blob(ctx context.Context, desc ocispec.Descriptor) (source.Blob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := desc.Digest
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: invalid digest, no such blob in the dir: layout: %w: %w", string(d), err, source.ErrNotFound)
	}
	if d == l.mdigest {
		return &source.BytesBlob{K: d.String(), Loc: filepath.Join(l.dir, ManifestFile), Data: l.manifest}, nil
	}
	var firstErr error
	for _, name := range candidates(d) {
		b, err := source.ConfinedFile(l.dir, l.root, name, d.String(), "the dir: layout")
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, source.ErrNotFound) {
			return nil, err
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// candidates lists the file names a digest may be stored under.
func candidates(d digest.Digest) []string {
	names := []string{d.Encoded() + instanceSuffix}
	if d.Algorithm() != digest.SHA256 {
		names = append(names, string(d.Algorithm())+"-"+d.Encoded())
	}
	return append(names, d.Encoded())
}

// keyOf is the blob key of a file name of the layout: the digest it names
// (a blob or an instance manifest), else "" (metadata, signatures, strays).
func keyOf(name string) string {
	base := strings.TrimSuffix(name, instanceSuffix)
	if alg, enc, ok := strings.Cut(base, "-"); ok {
		if d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc); d.Validate() == nil && d.Algorithm() != digest.SHA256 {
			return d.String()
		}
	}
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512, digest.SHA384} {
		if d := digest.NewDigestFromEncoded(alg, base); d.Validate() == nil {
			return d.String()
		}
	}
	return ""
}

// ListBlobs implements source.Lister: every regular file of the directory
// but manifest.json, version and signatures. A file named by a digest
// (<hex>, <hex>.manifest.json) is keyed by it, as Blob keys it; any other
// file (a dir-put-blob temporary file left by an interrupted copy) is keyed
// by its name, so it is reported unreferenced without being hashed.
// Subdirectories and symlinks leaving the directory are findings. The
// directory is listed once; later calls return the same list.
func (l *Layout) ListBlobs(ctx context.Context) ([]source.Blob, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.listed {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l.listed = true
		l.blobs, l.listErr = l.list()
	}
	return append([]source.Blob(nil), l.blobs...), l.listErr
}

// list reads the directory; called with l.mu held.
func (l *Layout) list() ([]source.Blob, error) {
	des, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", l.dir, err)
	}
	sort.Slice(des, func(i, j int) bool { return des[i].Name() < des[j].Name() })
	var out []source.Blob
	for _, de := range des {
		name := de.Name()
		if name == ManifestFile || name == VersionFile || signatureName.MatchString(name) {
			continue
		}
		k := keyOf(name)
		if k == "" {
			k = name
		}
		b, err := source.ConfinedFile(l.dir, l.root, name, k, "the dir: layout")
		if err != nil {
			check, sev := report.ArchiveMember, report.Warning
			if !errors.Is(err, source.ErrNotFound) {
				check, sev = report.ArchiveUnsafePath, report.Error
			}
			l.findings = append(l.findings, report.Finding{Check: check, Severity: sev, Subject: report.Subject{Path: name}, Message: err.Error()})
			continue
		}
		if k == l.mdigest.String() {
			continue // a copy of manifest.json under its digest: the target itself
		}
		out = append(out, b)
	}
	return out, nil
}

// Findings implements source.Noter: problems of the version file found by
// Open, and of the directory found by the listing Targets and ListBlobs do.
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
