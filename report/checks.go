package report

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// Check is a stable identifier of one kind of verification. Check IDs appear
// in JSON, SARIF and JUnit output and in tests; never rename one.
type Check string

// CheckInfo documents a check for --help, SARIF rules and docs/checks.md.
type CheckInfo struct {
	ID       Check
	Severity Severity // default severity of its findings
	Title    string   // short description
}

// Manifest and index checks.
const (
	ManifestDigest    Check = "manifest-digest"     // manifest bytes do not hash to the claimed digest
	ManifestSize      Check = "manifest-size"       // manifest length differs from the descriptor
	ManifestMediaType Check = "manifest-media-type" // media type of descriptor and document disagree, or unknown
	ManifestParse     Check = "manifest-parse"      // manifest/index is not valid JSON of its schema
	ManifestMissing   Check = "manifest-missing"    // a descriptor names a manifest the source does not hold
	ManifestSchema1   Check = "manifest-schema1"    // legacy schema 1 manifest: what can and cannot be checked
	IndexPlatform     Check = "index-platform"      // platform in the index differs from the config's
	Artifact          Check = "artifact"            // not an image (attestation, signature, other artifact): listed, not verified
)

// Config checks.
const (
	ConfigDigest    Check = "config-digest"     // config bytes do not hash to the descriptor / file name (the image ID)
	ConfigSize      Check = "config-size"       // config length differs from the descriptor
	ConfigParse     Check = "config-parse"      // config is not valid JSON or lacks rootfs
	ConfigRootFS    Check = "config-rootfs"     // rootfs.type is not "layers" or diff_ids are not digests
	ConfigMissing   Check = "config-missing"    // the config blob is absent
	ConfigMediaType Check = "config-media-type" // config media type is not an image config
	LayerCount      Check = "layer-count"       // layers, diff_ids and non-empty history disagree
)

// Layer checks.
const (
	LayerDigest     Check = "layer-digest"         // stored bytes do not hash to the descriptor digest
	LayerSize       Check = "layer-size"           // stored length differs from the descriptor size
	LayerMediaType  Check = "layer-media-type"     // declared media type disagrees with the real compression
	LayerDiffID     Check = "layer-diffid"         // uncompressed tar does not hash to config diff_ids[i]
	LayerDecompress Check = "layer-decompress"     // gzip/zstd stream is corrupt or truncated
	LayerTar        Check = "layer-tar"            // tar stream unreadable, truncated or without end marker
	LayerTrailing   Check = "layer-trailing-data"  // bytes after the end of the compressed stream or non-zero bytes after the tar end
	LayerDuplicate  Check = "layer-duplicate-path" // a path appears twice in one layer (Docker's layer store refuses it)
	LayerUnsafePath Check = "layer-unsafe-path"    // entry name with .. or absolute path escaping the root
	LayerMissing    Check = "layer-missing"        // a descriptor names a layer blob the source does not hold
	LayerForeign    Check = "layer-foreign"        // foreign / non-distributable layer not verified
	LayerLimit      Check = "layer-limit"          // a resource limit stopped the check (decompression bomb, huge header)
)

// Lazy-pull layer checks (eStargz, zstd:chunked): the table of contents
// (TOC) lazy pullers trust to fetch and place files.
const (
	LayerTOCDigest     Check = "layer-toc-digest"      // the TOC does not hash to the digest its layer annotation pins
	LayerTOCPosition   Check = "layer-toc-position"    // the TOC is not where the annotation or the footer says
	LayerTOCParse      Check = "layer-toc-parse"       // the TOC does not decompress, parse or stay within the limits
	LayerTOCFileDigest Check = "layer-toc-file-digest" // a regular file's digest or size in the TOC differs from the tar, or the TOC and the tar list different files
	LayerTOCChunk      Check = "layer-toc-chunk"       // a chunk's digest, offsets or extent differ from the stream
	LayerTOCTarSplit   Check = "layer-toc-tarsplit"    // the tar-split of a zstd:chunked layer differs from its digest or from the stream
	LayerTOCUnchecked  Check = "layer-toc-unchecked"   // a lazy-pull layer whose TOC could not be checked (a streamed source)
)

// Archive and layout checks.
const (
	ArchiveUnsafePath Check = "archive-unsafe-path" // member name with .. or absolute path, or a link leaving the archive
	ArchiveManifest   Check = "archive-manifest"    // manifest.json / index.json / oci-layout invalid
	ArchiveMember     Check = "archive-member"      // a referenced member is missing or not a regular file
	BlobUnreferenced  Check = "blob-unreferenced"   // a stored blob no manifest references
	BlobDigest        Check = "blob-digest"         // a content-addressed blob does not hash to its name
)

// Policy checks: findings added by the CI policy flags of cmd/layercheck
// (--require-platforms, --require-digest, --max-layer-size,
// --allowed-media-types), not by verification.
const (
	PolicyPlatforms Check = "policy-platforms"    // a platform --require-platforms lists is not among an image's verified platforms
	PolicyDigestRef Check = "policy-digest-ref"   // --require-digest: a reference names a tag, not a digest
	PolicyLayerSize Check = "policy-layer-size"   // a layer's stored or uncompressed size is above --max-layer-size
	PolicyMediaType Check = "policy-media-type"   // a manifest or layer media type is outside --allowed-media-types
	PolicyWasted    Check = "policy-wasted-bytes" // an image's wasted bytes (dive's measure) are above --max-wasted-bytes
)

// Severity grades a finding.
type Severity int

// Severities, from least to most serious.
const (
	Info Severity = iota
	Warning
	Error
)

var (
	catalog   = map[Check]CheckInfo{}
	producers = map[Check]string{}

	unregMu      sync.Mutex
	unregistered = map[Check]bool{}
)

// Register adds checks to the catalog. Every package that defines check IDs
// registers them in an init function; the catalog records which package did
// (Producer). Registering an ID twice is a programming error.
func Register(infos ...CheckInfo) {
	pkg := callerPackage(2)
	for _, ci := range infos {
		if old, ok := producers[ci.ID]; ok {
			panic(fmt.Sprintf("check %s registered twice (by %s and %s)", ci.ID, old, pkg))
		}
		catalog[ci.ID] = ci
		producers[ci.ID] = pkg
	}
}

// callerPackage is the import path (below the module) of the function skip
// frames up: "hoststore/containerd" for its init.
func callerPackage(skip int) string {
	pc, _, _, ok := runtime.Caller(skip)
	if !ok {
		return ""
	}
	fn := runtime.FuncForPC(pc).Name() // github.com/layercheck/layercheck/hoststore/containerd.init.0
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		fn = fn[:slash+1+dot]
	}
	return strings.TrimPrefix(strings.TrimPrefix(fn, "github.com/layercheck/layercheck"), "/")
}

// Producer names the package that registered a check ("report" for the
// engine's own IDs, "hoststore/containerd", ...).
func Producer(c Check) string { return producers[c] }

// SeverityOf is a check's default severity. An ID that is not in the
// catalog is a programming error: it gets Error (never silently Info) and
// is remembered for Unregistered, which the test suites check.
func SeverityOf(c Check) Severity {
	if ci, ok := catalog[c]; ok {
		return ci.Severity
	}
	unregMu.Lock()
	unregistered[c] = true
	unregMu.Unlock()
	return Error
}

// Unregistered lists the check IDs SeverityOf or a Builder met that are not
// in the catalog; tests fail on any.
func Unregistered() []Check {
	unregMu.Lock()
	defer unregMu.Unlock()
	out := make([]Check, 0, len(unregistered))
	for c := range unregistered {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Lookup returns the catalog entry of a check.
func Lookup(c Check) (CheckInfo, bool) {
	ci, ok := catalog[c]
	return ci, ok
}

// Catalog returns every registered check, sorted by ID.
func Catalog() []CheckInfo {
	out := make([]CheckInfo, 0, len(catalog))
	for _, ci := range catalog {
		out = append(out, ci)
	}
	sortChecks(out)
	return out
}

func init() {
	Register(
		CheckInfo{ManifestDigest, Error, "manifest bytes hash to the claimed digest"},
		CheckInfo{ManifestSize, Error, "manifest length equals the descriptor size"},
		CheckInfo{ManifestMediaType, Error, "manifest media type agrees with its descriptor and content"},
		CheckInfo{ManifestParse, Error, "manifest or index parses as its schema"},
		CheckInfo{ManifestMissing, Error, "every referenced manifest is present"},
		CheckInfo{ManifestSchema1, Warning, "legacy schema 1 manifest: only blob digests can be checked"},
		CheckInfo{IndexPlatform, Warning, "index platform equals the config's os/architecture"},
		CheckInfo{Artifact, Info, "artifact or attestation manifest, listed but not verified as an image"},
		CheckInfo{ConfigDigest, Error, "config bytes hash to the image ID (descriptor digest or file name)"},
		CheckInfo{ConfigSize, Error, "config length equals the descriptor size"},
		CheckInfo{ConfigParse, Error, "config parses and has a rootfs"},
		CheckInfo{ConfigRootFS, Error, "rootfs.type is layers and diff_ids are valid digests"},
		CheckInfo{ConfigMissing, Error, "the config blob is present"},
		CheckInfo{ConfigMediaType, Warning, "config media type is an image config type"},
		CheckInfo{LayerCount, Error, "number of layers, diff_ids and non-empty history entries agree"},
		CheckInfo{LayerDigest, Error, "stored layer bytes hash to the descriptor digest"},
		CheckInfo{LayerSize, Error, "stored layer length equals the descriptor size"},
		CheckInfo{LayerMediaType, Error, "declared layer media type matches the compression found by magic bytes"},
		CheckInfo{LayerDiffID, Error, "uncompressed layer hashes to the config's diff_id"},
		CheckInfo{LayerDecompress, Error, "compressed layer stream decompresses to its end"},
		CheckInfo{LayerTar, Error, "layer tar stream is readable to its end-of-archive marker"},
		CheckInfo{LayerTrailing, Warning, "no unexpected bytes after the compressed stream or the tar end"},
		CheckInfo{LayerDuplicate, Error, "no path appears twice in one layer"},
		CheckInfo{LayerUnsafePath, Warning, "no layer entry name climbs out of the root"},
		CheckInfo{LayerMissing, Error, "every referenced layer blob is present"},
		CheckInfo{LayerForeign, Info, "foreign or non-distributable layer skipped"},
		CheckInfo{LayerLimit, Error, "layer stayed within the resource limits"},
		CheckInfo{LayerTOCDigest, Error, "lazy-pull layer: the TOC hashes to the digest its annotation pins (zstd:chunked manifest-checksum, eStargz toc.digest)"},
		CheckInfo{LayerTOCPosition, Error, "lazy-pull layer: the TOC is where the manifest-position annotation and the footer say"},
		CheckInfo{LayerTOCParse, Error, "lazy-pull layer: the TOC decompresses, parses and stays within the limits"},
		CheckInfo{LayerTOCFileDigest, Error, "lazy-pull layer: every regular file's digest and size in the TOC match the tar, which holds exactly the TOC's files"},
		CheckInfo{LayerTOCChunk, Error, "lazy-pull layer: every chunk's digest and offsets match the stream and lie inside the blob"},
		CheckInfo{LayerTOCTarSplit, Error, "zstd:chunked layer: the tar-split hashes to the TOC's tarSplitDigest and matches the tar stream"},
		CheckInfo{LayerTOCUnchecked, Info, "lazy-pull layer whose TOC was not checked (a source streamed as a whole)"},
		CheckInfo{ArchiveUnsafePath, Error, "archive member names and links stay inside the archive"},
		CheckInfo{ArchiveManifest, Error, "archive or layout metadata (manifest.json, index.json, oci-layout) is valid"},
		CheckInfo{ArchiveMember, Error, "every member the metadata names is present and a regular file"},
		CheckInfo{BlobUnreferenced, Info, "blob present but referenced by nothing"},
		CheckInfo{BlobDigest, Error, "content-addressed blob hashes to its name"},
		CheckInfo{PolicyPlatforms, Error, "policy: every platform of --require-platforms is among each image's verified platforms"},
		CheckInfo{PolicyDigestRef, Error, "policy: with --require-digest, every reference is pinned by digest (@sha256:…)"},
		CheckInfo{PolicyLayerSize, Error, "policy: no layer's stored or uncompressed size is above --max-layer-size"},
		CheckInfo{PolicyMediaType, Error, "policy: every manifest and layer media type is in --allowed-media-types"},
		CheckInfo{PolicyWasted, Error, "policy: no image wastes more than --max-wasted-bytes in files later layers overwrite or delete (dive's measure)"},
	)
}
