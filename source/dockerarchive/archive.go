package dockerarchive

import (
	"archive/tar"
	"bytes"
	"context"
	_ "crypto/sha256" // digest algorithms go-digest validates against
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxManifestSize  = 4 << 20
	DefaultMaxMetadataTotal = 64 << 20
	DefaultMaxMembers       = 1 << 20
)

// maxLinkHops bounds how many links one name may go through.
const maxLinkHops = 64

// maxTrailing bounds what Scan reads after the end of the tar inside a
// compressed archive (to reach the compressed stream's own checksum).
const maxTrailing = 16 << 20

// Well-known metadata member names.
const (
	manifestFile     = "manifest.json"
	repositoriesFile = "repositories"
	indexFile        = ocispec.ImageIndexFile  // index.json
	layoutFile       = ocispec.ImageLayoutFile // oci-layout
)

// Options configure Open.
type Options struct {
	// MaxManifestSize bounds each metadata member read into memory
	// (manifest.json, index.json, oci-layout, configs); 0 means
	// DefaultMaxManifestSize.
	MaxManifestSize int64
	// MaxMetadataTotal bounds the metadata a compressed archive's Scan keeps
	// in memory altogether; 0 means DefaultMaxMetadataTotal.
	MaxMetadataTotal int64
	// MaxMembers bounds the number of members indexed; 0 means DefaultMaxMembers.
	MaxMembers int
}

// Compression is how an archive is compressed as a whole.
type Compression string

// Compressions Open recognises by their magic bytes.
const (
	None Compression = ""
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

type memberKind int

const (
	kindReg memberKind = iota
	kindDir
	kindSymlink
	kindHardlink
	kindOther
)

// member is one name in the archive (the last member of that name).
type member struct {
	name   string // cleaned, slash-separated, relative to the archive root
	kind   memberKind
	typ    byte  // tar type flag, for messages
	off    int64 // uncompressed archives: offset of the data in the file
	size   int64
	link   string // symlink: target as stored; hardlink: cleaned member name
	unsafe bool   // a link whose target leaves the archive
	sparse bool   // tar sparse member: its data is not a plain byte range

	// Compressed archives, set by Scan.
	data     []byte // kept in memory (metadata)
	kept     bool
	streamed bool  // handed to Scan's fn; its bytes are gone
	tooLarge bool  // a named metadata member above MaxManifestSize
	broken   error // the archive ends inside this member
}

// Archive is an image tarball opened for reading. It implements
// source.Source, source.Lister, source.Scanner and source.Noter. After Open
// (and, for a compressed archive, after Scan) it is safe for concurrent use.
type Archive struct {
	path  string
	ra    io.ReaderAt
	size  int64
	close io.Closer
	comp  Compression
	opts  Options

	// Filled by Open (uncompressed) or Scan (compressed); read-only afterwards.
	members map[string]*member
	order   []string        // member names in first-seen order
	dirs    map[string]bool // directories implied by member names

	mu          sync.Mutex
	findings    []report.Finding
	scanStarted bool
	ready       bool // members are indexed: Targets, Blob and ListBlobs may run
	targetsDone bool
	targets     []source.Target
	targetsErr  error
	truncMsg    string // set by truncated: why the index stopped early
}

var (
	_ source.Source  = (*Archive)(nil)
	_ source.Lister  = (*Archive)(nil)
	_ source.Scanner = (*Archive)(nil)
	_ source.Noter   = (*Archive)(nil)
)

// Open opens the archive at path read-only and finds out its kind from its
// first bytes. An uncompressed archive is indexed at once, reading headers
// only; Open then fails if the archive holds no image metadata
// (manifest.json or index.json) or is a pre-1.10 save, with an error wrapping
// source.ErrUnsupported. A gzip- or zstd-compressed archive is only
// recognised here; it is read by Scan.
func Open(p string, opts Options) (*Archive, error) {
	f, err := os.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening archive: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("opening archive %s: not a regular file (%s): %w", p, st.Mode().Type(), source.ErrUnsupported)
	}
	a, err := newArchive(p, f, st.Size(), f, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// newArchive is Open over any ReaderAt (tests count the bytes it reads).
func newArchive(name string, ra io.ReaderAt, size int64, closer io.Closer, opts Options) (*Archive, error) {
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	if opts.MaxMetadataTotal <= 0 {
		opts.MaxMetadataTotal = DefaultMaxMetadataTotal
	}
	if opts.MaxMembers <= 0 {
		opts.MaxMembers = DefaultMaxMembers
	}
	a := &Archive{path: name, ra: ra, size: size, close: closer, opts: opts,
		members: map[string]*member{}, dirs: map[string]bool{}}
	var magic [6]byte
	n, err := ra.ReadAt(magic[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	m := magic[:n]
	switch {
	case bytes.HasPrefix(m, []byte{0x1f, 0x8b}):
		a.comp = Gzip
		return a, nil
	case bytes.HasPrefix(m, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		a.comp = Zstd
		return a, nil
	case bytes.HasPrefix(m, []byte("BZh")):
		return nil, fmt.Errorf("%s is bzip2-compressed; layercheck reads plain, gzip and zstd archives: decompress it first (bunzip2): %w", name, source.ErrUnsupported)
	case bytes.HasPrefix(m, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, fmt.Errorf("%s is xz-compressed; layercheck reads plain, gzip and zstd archives: decompress it first (unxz): %w", name, source.ErrUnsupported)
	}
	if err := a.index(); err != nil {
		return nil, err
	}
	if err := a.classify(); err != nil {
		return nil, err
	}
	a.ready = true
	return a, nil
}

// index reads every header of an uncompressed archive, seeking over the data.
func (a *Archive) index() error {
	sr := io.NewSectionReader(a.ra, 0, a.size)
	tr := tar.NewReader(sr)
	last, lastEnd := "", int64(0)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if lastEnd > a.size {
				// Seeking over member data hides a file that ends inside it.
				a.truncated(last, fmt.Errorf("its data runs to byte %d, past the end of the file (%d bytes): %w", lastEnd, a.size, io.ErrUnexpectedEOF))
			}
			return nil
		}
		if err != nil {
			if len(a.order) == 0 {
				return fmt.Errorf("%s is not a tar archive (nor gzip or zstd of one): %v: %w", a.path, err, source.ErrUnsupported)
			}
			a.truncated(last, err)
			return nil
		}
		off, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return fmt.Errorf("reading %s: %w", a.path, err)
		}
		m, err := a.add(hdr, off)
		if err != nil {
			return err
		}
		if m != nil {
			last = m.name
		}
		lastEnd = 0
		if !hasSparseRecords(hdr) { // a sparse header's Size is the expanded size
			lastEnd = off + hdr.Size
		}
	}
}

// truncated records that the archive ends or breaks after member last.
func (a *Archive) truncated(last string, err error) {
	msg := fmt.Sprintf("the archive is truncated or corrupt after member %q: %v; members after it cannot be read", last, err)
	if last == "" {
		msg = fmt.Sprintf("the archive is truncated or corrupt: %v", err)
	}
	a.note(report.Finding{Check: report.ArchiveMember, Severity: report.Error, Subject: report.Subject{Path: last}, Message: msg})
	a.truncMsg = msg
}

// add records one header. It returns nil for headers that are not members
// (global PAX headers, the root directory) and for unsafe names.
func (a *Archive) add(hdr *tar.Header, off int64) (*member, error) {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeGNULongName, tar.TypeGNULongLink, 'V':
		return nil, nil
	}
	name, ok := cleanName(hdr.Name)
	if !ok {
		a.note(unsafeFinding(hdr.Name, fmt.Sprintf("member name %q climbs out of the archive or is absolute; it is not read", hdr.Name)))
		return nil, nil
	}
	if name == "" {
		return nil, nil
	}
	m := &member{name: name, typ: hdr.Typeflag, off: off, size: hdr.Size}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont:
		m.kind = kindReg
		m.sparse = hasSparseRecords(hdr)
	case tar.TypeGNUSparse:
		m.kind = kindReg
		m.sparse = true
	case tar.TypeDir:
		m.kind = kindDir
	case tar.TypeSymlink:
		m.kind = kindSymlink
		m.link = hdr.Linkname
		if path.IsAbs(hdr.Linkname) || escapes(path.Join(path.Dir(name), hdr.Linkname)) {
			m.unsafe = true
			a.note(unsafeFinding(name, fmt.Sprintf("member %q is a symlink to %q, outside the archive; it is not followed", name, hdr.Linkname)))
		}
	case tar.TypeLink:
		m.kind = kindHardlink
		target, ok := cleanName(hdr.Linkname)
		if !ok || target == "" {
			m.unsafe = true
			a.note(unsafeFinding(name, fmt.Sprintf("member %q is a hard link to %q, outside the archive; it is not followed", name, hdr.Linkname)))
		}
		m.link = target
	default:
		m.kind = kindOther
	}
	if old, dup := a.members[name]; dup {
		if old.kind != kindDir || m.kind != kindDir {
			a.note(report.Finding{Check: report.ArchiveMember, Severity: report.Warning, Subject: report.Subject{Path: name},
				Message: fmt.Sprintf("member %q occurs more than once; the last copy is used, as tar extraction and docker load do, but other tools may read the first", name)})
		}
	} else {
		if len(a.order) >= a.opts.MaxMembers {
			return nil, fmt.Errorf("%s: more than %d members; not read (raise the member limit if this is really an image archive)", a.path, a.opts.MaxMembers)
		}
		a.order = append(a.order, name)
	}
	a.members[name] = m
	for d := path.Dir(name); d != "." && !a.dirs[d]; d = path.Dir(d) {
		a.dirs[d] = true
	}
	return m, nil
}

func hasSparseRecords(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func unsafeFinding(p, msg string) report.Finding {
	return report.Finding{Check: report.ArchiveUnsafePath, Severity: report.Error, Subject: report.Subject{Path: p}, Message: msg}
}

// cleanName turns a member name into a clean relative path. It refuses
// absolute names and names with a ".." component; "" means the archive root.
func cleanName(raw string) (string, bool) {
	if raw == "" {
		return "", true
	}
	if strings.HasPrefix(raw, "/") {
		return "", false
	}
	for _, c := range strings.Split(raw, "/") {
		if c == ".." {
			return "", false
		}
	}
	p := path.Clean(raw)
	if p == "." {
		return "", true
	}
	return p, true
}

// escapes reports whether a cleaned relative path climbs above the root.
func escapes(p string) bool {
	return p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p)
}

// resolved is where a name leads inside the archive.
type resolved struct {
	m      *member // nil: nothing usable (see why)
	name   string  // the member's own name after following links
	dir    bool    // the name is a directory (explicit or implied)
	why    string  // why m is nil: "absent", "a symlink loop"...
	unsafe bool    // a link on the way leaves the archive
}

// resolve follows symlinks (in any component) and hard links from name to a
// member, never leaving the archive.
func (a *Archive) resolve(name string) resolved {
	p := name
	for hops := 0; hops <= maxLinkHops; hops++ {
		comps := strings.Split(p, "/")
		next := ""
		for i := range comps {
			prefix := strings.Join(comps[:i+1], "/")
			rest := strings.Join(comps[i+1:], "/")
			last := i == len(comps)-1
			m := a.members[prefix]
			if m == nil {
				if last {
					if a.dirs[prefix] {
						return resolved{name: prefix, dir: true, why: "a directory"}
					}
					return resolved{name: prefix, why: "absent from the archive"}
				}
				continue
			}
			switch m.kind {
			case kindSymlink, kindHardlink:
				if m.unsafe {
					return resolved{name: prefix, unsafe: true, why: fmt.Sprintf("a link to %q, outside the archive (not followed)", m.link)}
				}
				if m.kind == kindHardlink && !last {
					return resolved{name: prefix, why: "absent from the archive (" + prefix + " is a hard link, not a directory)"}
				}
				target := m.link
				if m.kind == kindSymlink {
					target = path.Join(path.Dir(prefix), m.link)
				}
				if rest != "" {
					target = path.Join(target, rest)
				}
				if escapes(target) {
					return resolved{name: prefix, unsafe: true, why: fmt.Sprintf("a link to %q, outside the archive (not followed)", m.link)}
				}
				if target == "." {
					return resolved{name: prefix, dir: true, why: "a directory"}
				}
				next = target
			case kindDir:
				if last {
					return resolved{m: m, name: prefix, dir: true, why: "a directory"}
				}
				continue
			default:
				if !last {
					return resolved{name: prefix, why: "absent from the archive (" + prefix + " is not a directory)"}
				}
				return resolved{m: m, name: prefix}
			}
			break
		}
		p = next
	}
	return resolved{name: name, why: "a chain of more than 64 links (a loop?)"}
}

// lookup resolves name to a regular member's blob, or explains why there is
// none. unsafe reports a link leaving the archive on the way.
func (a *Archive) lookup(name string) (b source.Blob, why string, unsafe bool) {
	r := a.resolve(name)
	switch {
	case r.unsafe:
		return nil, r.why, true
	case r.dir:
		return nil, "a directory, not a file", false
	case r.m == nil:
		return nil, r.why, false
	case r.m.kind != kindReg:
		return nil, fmt.Sprintf("not a regular file (tar type %q)", r.m.typ), false
	}
	return a.memberBlob(r.m), "", false
}

// memberBlob is the blob of a regular member.
func (a *Archive) memberBlob(m *member) source.Blob {
	k := memberKey(m.name)
	switch {
	case m.broken != nil:
		return &errBlob{k: k, loc: m.name, n: m.size, err: m.broken}
	case a.comp != None && m.kept:
		return &source.BytesBlob{K: k, Loc: m.name, Data: m.data}
	case a.comp != None && m.tooLarge:
		return &errBlob{k: k, loc: m.name, n: m.size, err: &source.LimitError{What: m.name, Limit: a.opts.MaxManifestSize}}
	case a.comp != None && m.streamed:
		return &errBlob{k: k, loc: m.name, n: m.size, err: fmt.Errorf("%s (in %s-compressed %s): %w", m.name, a.comp, a.path, source.ErrConsumed)}
	case a.comp != None:
		return &errBlob{k: k, loc: m.name, n: m.size, err: fmt.Errorf("%s (in %s-compressed %s) was not read", m.name, a.comp, a.path)}
	case m.sparse:
		return &errBlob{k: k, loc: m.name, n: m.size, err: fmt.Errorf("%s is a sparse tar member; layercheck does not read those in place: %w", m.name, source.ErrUnsupported)}
	}
	return &source.SectionBlob{K: k, Loc: m.name, R: a.ra, Off: m.off, N: m.size}
}

// errBlob is a blob that cannot be opened (streamed past, too large, sparse).
type errBlob struct {
	k, loc string
	n      int64
	err    error
}

func (b *errBlob) Key() string                                 { return b.k }
func (b *errBlob) Location() string                            { return b.loc }
func (b *errBlob) Size() int64                                 { return b.n }
func (b *errBlob) Open(context.Context) (io.ReadCloser, error) { return nil, b.err }

// memberKey is the Key of the member called name: the digest for a
// blobs/<alg>/<encoded> member with a valid digest, else the member name
// ("./" prefixed when the name itself is a digest string, such as a ggcr
// config called sha256:<hex>, so it cannot collide with a blob's key).
func memberKey(name string) string {
	if d, ok := blobDigest(name); ok {
		return d.String()
	}
	if digest.Digest(name).Validate() == nil {
		return "./" + name
	}
	return name
}

// blobDigest returns the digest a blobs/<alg>/<encoded> name claims.
func blobDigest(name string) (digest.Digest, bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != ocispec.ImageBlobsDir {
		return "", false
	}
	d := digest.Digest(parts[1] + ":" + parts[2])
	return d, d.Validate() == nil
}

// readMeta reads a small metadata member whole.
func (a *Archive) readMeta(ctx context.Context, name string) ([]byte, error) {
	b, why, _ := a.lookup(name)
	if b == nil {
		return nil, fmt.Errorf("%s: %s: %w", name, why, source.ErrNotFound)
	}
	data, err := source.ReadAll(ctx, b, a.opts.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", name, a.path, err)
	}
	return data, nil
}

// has reports whether name leads to a regular member.
func (a *Archive) has(name string) bool {
	r := a.resolve(name)
	return r.m != nil && r.m.kind == kindReg
}

// classify checks that the archive holds image metadata and checks oci-layout
// when it is an OCI layout.
func (a *Archive) classify() error {
	hasManifest, hasIndex := a.has(manifestFile), a.has(indexFile)
	if !hasManifest && !hasIndex {
		if a.has(repositoriesFile) {
			return fmt.Errorf("%s is a pre-1.10 docker save (repositories and <id>/json, no manifest.json): that legacy v1 format records no content digests, so there is nothing to verify: %w", a.path, source.ErrUnsupported)
		}
		for _, n := range a.order {
			if strings.Count(n, "/") == 1 && (path.Base(n) == manifestFile || path.Base(n) == indexFile) {
				return fmt.Errorf("%s holds %s but no manifest.json or index.json at its root: the image must be at the top of the archive, not in a directory: %w", a.path, n, source.ErrUnsupported)
			}
		}
		if len(a.order) == 0 {
			return fmt.Errorf("%s is an empty tar archive: %w", a.path, source.ErrUnsupported)
		}
		if a.truncMsg != "" {
			// docker save writes its metadata last: a truncated save loses it.
			return fmt.Errorf("%s holds neither manifest.json nor index.json, and %s: %w", a.path, a.truncMsg, source.ErrUnsupported)
		}
		return fmt.Errorf("%s holds neither manifest.json nor index.json: not a docker save or OCI archive: %w", a.path, source.ErrUnsupported)
	}
	if hasIndex {
		a.checkLayoutFile()
	}
	return nil
}

// checkLayoutFile records what is wrong with the oci-layout member of an
// archive holding an OCI layout.
func (a *Archive) checkLayoutFile() {
	warn := func(msg string) {
		a.note(report.Finding{Check: report.ArchiveManifest, Severity: report.Warning, Subject: report.Subject{Path: layoutFile}, Message: msg})
	}
	if !a.has(layoutFile) {
		warn("the archive has index.json but no oci-layout file; an OCI image layout must have one")
		return
	}
	data, err := a.readMeta(context.Background(), layoutFile)
	if err != nil {
		warn(fmt.Sprintf("oci-layout cannot be read: %v", err))
		return
	}
	if msg := source.CheckOCILayout(data); msg != "" {
		warn(msg)
	}
}

// String implements source.Source.
func (a *Archive) String() string { return "docker-archive:" + a.path }

// Compression reports how the archive is compressed as a whole.
func (a *Archive) Compression() Compression { return a.comp }

// checkReady fails for a compressed archive Scan has not read yet.
func (a *Archive) checkReady() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ready {
		return fmt.Errorf("%s is %s-compressed: Scan must run before its contents can be listed or read", a.path, a.comp)
	}
	return nil
}

// Blob implements source.Source: the member blobs/<alg>/<encoded>, links
// followed. The digest is validated before it becomes a member name. An
// absent member, a directory or another non-regular member where the blob
// belongs gives an error wrapping source.ErrNotFound. In a compressed archive
// the blob of a member Scan streamed past returns source.ErrConsumed from
// Open, with the same Key Scan gave it.
func (a *Archive) Blob(ctx context.Context, desc ocispec.Descriptor) (source.Blob, error) {
	if err := a.checkReady(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d := desc.Digest
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: invalid digest, no such blob in the archive: %w: %w", string(d), err, source.ErrNotFound)
	}
	name := path.Join(ocispec.ImageBlobsDir, string(d.Algorithm()), d.Encoded())
	b, why, unsafe := a.lookup(name)
	if unsafe {
		a.note(unsafeFinding(name, fmt.Sprintf("blob member %s is %s", name, why)))
	}
	if b == nil {
		return nil, source.NotFoundf("blob %s: member %s is %s", d, name, why)
	}
	return b, nil
}

// ListBlobs implements source.Lister: every regular member under blobs/,
// plus the image files of legacy and ggcr-style saves (*/layer.tar,
// <hex>.json, sha256:<hex>, <hex>.tar.gz at the root). Links are not listed
// apart from their targets: they are the same bytes.
func (a *Archive) ListBlobs(ctx context.Context) ([]source.Blob, error) {
	if err := a.checkReady(); err != nil {
		return nil, err
	}
	var out []source.Blob
	for _, n := range a.order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := a.members[n]
		if m.kind != kindReg || !isImageFile(n) {
			continue
		}
		out = append(out, a.memberBlob(m))
	}
	return out, nil
}

// isImageFile reports whether a member name is a blob or an image file of a
// docker save, as opposed to metadata (manifest.json, <v1id>/json, VERSION).
func isImageFile(n string) bool {
	if strings.HasPrefix(n, ocispec.ImageBlobsDir+"/") {
		return true
	}
	if strings.Count(n, "/") == 1 && path.Base(n) == "layer.tar" {
		return true
	}
	if strings.Contains(n, "/") {
		return false
	}
	if hex, ok := strings.CutSuffix(n, ".json"); ok && isSHA256Hex(hex) {
		return true
	}
	if hex, ok := strings.CutSuffix(n, ".tar.gz"); ok && isSHA256Hex(hex) {
		return true
	}
	return digest.Digest(n).Validate() == nil
}

func isSHA256Hex(s string) bool {
	return digest.SHA256.Validate(s) == nil
}

// Findings implements source.Noter. It is complete once Targets returned
// (and, for a compressed archive, Scan ran); Blob may add unsafe-link
// findings later.
func (a *Archive) Findings() []report.Finding {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := append([]report.Finding(nil), a.findings...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Subject.Path < out[j].Subject.Path })
	return out
}

func (a *Archive) note(fs ...report.Finding) {
	a.mu.Lock()
	a.findings = append(a.findings, fs...)
	a.mu.Unlock()
}

// Close implements source.Source: it closes the file.
func (a *Archive) Close() error {
	if a.close == nil {
		return nil
	}
	err := a.close.Close()
	a.close = nil
	return err
}
