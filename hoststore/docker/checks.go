package docker

import "github.com/layercheck/layercheck/report"

// Check IDs of the Docker host store audit. They are stable: they appear in
// JSON, SARIF and JUnit output. The FORMATS.md section 6 invariant each one
// implements is given in brackets; the severity registered is the default,
// a few findings are graded differently (see the comments).
const (
	// Image store (imagedb, repositories.json).

	// ImagedbDigest: imagedb/content/sha256/<h> does not hash to h [1].
	ImagedbDigest report.Check = "host-imagedb-digest"
	// ImagedbConfig: an image config does not parse, has no rootfs, or its
	// rootfs.type or diff_ids are invalid [2].
	ImagedbConfig report.Check = "host-imagedb-config"
	// ImagedbHistory: more non-empty history entries than diff_ids (error),
	// or fewer (info) [4].
	ImagedbHistory report.Check = "host-imagedb-history"
	// ImageLayerMissing: the chainID of an image's diff_ids is not in the
	// layer store; Docker drops the image at start [3].
	ImageLayerMissing report.Check = "host-image-layer-missing"
	// ImageDangling: an untagged image no other image builds on and no
	// container uses; `docker image prune` removes it (info).
	ImageDangling report.Check = "host-image-dangling"
	// ImagedbMetadata: imagedb/metadata files (parent, lastUpdated,
	// builtLocally) are malformed [7]; a metadata directory without its
	// config is a warning [5].
	ImagedbMetadata report.Check = "host-imagedb-metadata"
	// ImagedbParent: the metadata parent names no stored image (dangling),
	// or its diff_ids are not a prefix of the child's [6].
	ImagedbParent report.Check = "host-imagedb-parent"
	// Repositories: repositories.json does not parse, or a reference in it
	// is malformed or filed under the wrong repository [9].
	Repositories report.Check = "host-repositories"
	// RepositoriesDangling: a tag or digest reference names an image that is
	// not in imagedb [8].
	RepositoriesDangling report.Check = "host-repositories-dangling"
	// Leftover: an interrupted write or delete left a file or directory
	// behind (.tmp-*, layerdb/tmp/write-set-*, *-removing) [11, 23]; entries
	// Docker ignores are infos.
	Leftover report.Check = "host-leftover"

	// Layer store (layerdb/sha256/<chainID>).

	// LayerdbFile: diff, size, cache-id, tar-split.json.gz or parent is
	// missing, empty or not in Docker's exact format [12]. Whitespace around
	// a value Docker trims on read is a warning.
	LayerdbFile report.Check = "host-layerdb-file"
	// LayerChainID: the directory name differs from the chainID recomputed
	// from parent and diff [13].
	LayerChainID report.Check = "host-layer-chainid"
	// LayerParent: parent names no layer (dangling), or the chain has a
	// cycle or is deeper than Docker's 125 [14].
	LayerParent report.Check = "host-layer-parent"
	// LayerCacheDir: the graph-driver directory of the cache-id is missing [15].
	LayerCacheDir report.Check = "host-layer-cache-dir"
	// LayerCacheShared: two layers or mounts share one cache-id or mount-id [16].
	LayerCacheShared report.Check = "host-layer-cache-shared"
	// HostTarSplit: tar-split.json.gz is corrupt or truncated, or lists a path
	// twice [20].
	HostTarSplit report.Check = "host-tarsplit"
	// TarSplitNotReproducible: an entry Docker itself cannot rebuild for a
	// known, benign reason (FORMATS 2.7).
	TarSplitNotReproducible report.Check = "host-tarsplit-not-reproducible"
	// HostLayerDiffID: the tar stream rebuilt from tar-split and the layer
	// directory does not hash to diff [19].
	HostLayerDiffID report.Check = "host-layer-diffid"
	// HostLayerTar: the rebuilt stream is not a readable tar.
	HostLayerTar report.Check = "host-layer-tar"
	// FileCRC: a file's content (CRC-64 or length) differs from what the
	// tar-split recorded [18].
	FileCRC report.Check = "host-file-crc"
	// LayerMissingFile: an entry of the layer's tar is absent from the layer
	// directory (or, for full-rootfs drivers, an inherited entry is) [21].
	LayerMissingFile report.Check = "host-layer-missing-file"
	// UnsafePath: a tar-split name, or a symlink on its path, leads out of
	// the layer directory; nothing outside is read [20].
	UnsafePath report.Check = "host-unsafe-path"
	// HostLayerSize: the size file disagrees with the driver's rule [22].
	HostLayerSize report.Check = "host-layer-size"
	// LstatMismatch: an entry on disk differs from its tar header (type,
	// mode, owner, size, symlink target, hardlink identity, device numbers,
	// xattrs) [21].
	LstatMismatch report.Check = "host-lstat-mismatch"
	// ExtraFile: the layer directory holds an entry its tar does not [21].
	ExtraFile report.Check = "host-extra-file"
	// Whiteout: whiteouts or opaque markers on disk disagree with the tar [25].
	Whiteout report.Check = "host-whiteout"
	// LayerUnused: a layer no image, container or BuildKit snapshot uses (info).
	LayerUnused report.Check = "host-layer-unused"

	// Containers (layerdb/mounts, containers/).

	// Mount: layerdb/mounts/<id> has a malformed or missing mount-id, an
	// init-id other than mount-id+"-init", or a parent not in layerdb [26].
	Mount report.Check = "host-mount"
	// MountDir: the driver directory of a mount-id or init-id is gone [26].
	MountDir report.Check = "host-mount-dir"
	// MountOrphan: a mount no container uses (warning; info when it looks
	// like a BuildKit RW layer) [27].
	MountOrphan report.Check = "host-mount-orphan"
	// Container: containers/<id>/config.v2.json is unreadable (error), its
	// image is missing (warning, dangling), its RW layer is missing or its
	// parent is not the image's chainID (error) [27, 28].
	Container report.Check = "host-container"

	// overlay2 and fuse-overlayfs.

	// OverlayLink: a link file is malformed, or l/<link> is missing or does
	// not point at ../<cache-id>/diff [24].
	OverlayLink report.Check = "host-overlay-link"
	// OverlayLower: a lower file does not list the links of the parent
	// chain, nearest first [24].
	OverlayLower report.Check = "host-overlay-lower"
	// OverlayDanglingLink: an l/ symlink points at no directory [24].
	OverlayDanglingLink report.Check = "host-overlay-dangling-link"
	// OverlayCommitted: a layer with children has no committed file
	// (pre-20.10 data; info) [24].
	OverlayCommitted report.Check = "host-overlay-committed"

	// Orphans and distribution metadata.

	// OrphanDir: a graph-driver directory no layer, mount or BuildKit
	// snapshot references, with its size [17].
	OrphanDir report.Check = "host-orphan-dir"
	// BuildKit: what BuildKit's snapshots.db owns (info) [29].
	BuildKit report.Check = "host-buildkit"
	// HostDistribution: distribution/ metadata is malformed or inconsistent
	// [30, 31, 33].
	HostDistribution report.Check = "host-distribution"
	// DistributionStale: distribution/ entries whose layer is gone (info:
	// Docker never removes them) [32].
	DistributionStale report.Check = "host-distribution-stale"
)

func init() {
	report.Register(
		report.CheckInfo{ID: ImagedbDigest, Severity: report.Error, Title: "host store: imagedb config bytes hash to their file name (the image ID)"},
		report.CheckInfo{ID: ImagedbConfig, Severity: report.Error, Title: "host store: image config parses, rootfs.type is layers, diff_ids are digests"},
		report.CheckInfo{ID: ImagedbHistory, Severity: report.Error, Title: "host store: non-empty history entries do not outnumber diff_ids"},
		report.CheckInfo{ID: ImageLayerMissing, Severity: report.Error, Title: "host store: the chainID of every image's diff_ids is in the layer store"},
		report.CheckInfo{ID: ImageDangling, Severity: report.Info, Title: "host store: untagged image nothing builds on or runs (docker image prune removes it)"},
		report.CheckInfo{ID: ImagedbMetadata, Severity: report.Error, Title: "host store: imagedb metadata files are well formed and belong to a stored image"},
		report.CheckInfo{ID: ImagedbParent, Severity: report.Error, Title: "host store: an image's metadata parent exists and its diff_ids are a prefix of the child's"},
		report.CheckInfo{ID: Repositories, Severity: report.Error, Title: "host store: repositories.json parses and its references are well formed"},
		report.CheckInfo{ID: RepositoriesDangling, Severity: report.Error, Title: "host store: every repositories.json reference names a stored image"},
		report.CheckInfo{ID: Leftover, Severity: report.Warning, Title: "host store: no leftovers of interrupted writes or deletes (.tmp-*, write-set-*, *-removing)"},
		report.CheckInfo{ID: LayerdbFile, Severity: report.Error, Title: "host store: layerdb diff, size, cache-id, parent and tar-split.json.gz are present and exact"},
		report.CheckInfo{ID: LayerChainID, Severity: report.Error, Title: "host store: a layer's directory name equals the chainID of parent and diff"},
		report.CheckInfo{ID: LayerParent, Severity: report.Error, Title: "host store: a layer's parent exists; the chain is acyclic and at most 125 deep"},
		report.CheckInfo{ID: LayerCacheDir, Severity: report.Error, Title: "host store: the graph-driver directory of each layer's cache-id exists"},
		report.CheckInfo{ID: LayerCacheShared, Severity: report.Error, Title: "host store: cache-ids and mount-ids are unique"},
		report.CheckInfo{ID: HostTarSplit, Severity: report.Error, Title: "host store: tar-split.json.gz decodes to its end and lists no path twice"},
		report.CheckInfo{ID: TarSplitNotReproducible, Severity: report.Warning, Title: "host store: every tar-split entry can be rebuilt from the layer directory"},
		report.CheckInfo{ID: HostLayerDiffID, Severity: report.Error, Title: "host store: the tar rebuilt from tar-split and the layer directory hashes to diff"},
		report.CheckInfo{ID: HostLayerTar, Severity: report.Error, Title: "host store: the rebuilt layer stream is a readable tar"},
		report.CheckInfo{ID: FileCRC, Severity: report.Error, Title: "host store: every file's CRC-64 and length equal the tar-split's"},
		report.CheckInfo{ID: LayerMissingFile, Severity: report.Error, Title: "host store: every entry of a layer's tar is present in its directory"},
		report.CheckInfo{ID: UnsafePath, Severity: report.Error, Title: "host store: tar-split names resolve inside the layer directory"},
		report.CheckInfo{ID: HostLayerSize, Severity: report.Error, Title: "host store: a layer's size file follows the graph driver's rule"},
		report.CheckInfo{ID: LstatMismatch, Severity: report.Error, Title: "host store: each entry on disk matches its tar header (type, mode, owner, size, link, device, xattrs)"},
		report.CheckInfo{ID: ExtraFile, Severity: report.Error, Title: "host store: a layer directory holds no entry its tar lacks"},
		report.CheckInfo{ID: Whiteout, Severity: report.Error, Title: "host store: whiteouts and opaque markers on disk match the tar"},
		report.CheckInfo{ID: LayerUnused, Severity: report.Info, Title: "host store: layer used by no image, container or BuildKit snapshot"},
		report.CheckInfo{ID: Mount, Severity: report.Error, Title: "host store: layerdb mounts have a valid mount-id, init-id and parent"},
		report.CheckInfo{ID: MountDir, Severity: report.Error, Title: "host store: the driver directories of every mount-id and init-id exist"},
		report.CheckInfo{ID: MountOrphan, Severity: report.Warning, Title: "host store: every RW layer belongs to a container or BuildKit"},
		report.CheckInfo{ID: Container, Severity: report.Error, Title: "host store: containers have a readable config, their RW layer, and the image it was made from"},
		report.CheckInfo{ID: OverlayLink, Severity: report.Error, Title: "host store: overlay2 link files and l/ symlinks agree"},
		report.CheckInfo{ID: OverlayLower, Severity: report.Error, Title: "host store: overlay2 lower files list the parent chain's links, nearest first"},
		report.CheckInfo{ID: OverlayDanglingLink, Severity: report.Warning, Title: "host store: every overlay2 l/ symlink points at a layer directory"},
		report.CheckInfo{ID: OverlayCommitted, Severity: report.Info, Title: "host store: overlay2 layers with children are marked committed"},
		report.CheckInfo{ID: OrphanDir, Severity: report.Warning, Title: "host store: every graph-driver directory belongs to a layer, a mount or BuildKit"},
		report.CheckInfo{ID: BuildKit, Severity: report.Info, Title: "host store: graph-driver data owned by BuildKit"},
		report.CheckInfo{ID: HostDistribution, Severity: report.Error, Title: "host store: distribution metadata is well formed and consistent"},
		report.CheckInfo{ID: DistributionStale, Severity: report.Info, Title: "host store: distribution metadata for layers no longer stored"},
	)
	// A finding of OrphanDir carries the directory's size in bytes as its Actual.
	report.RegisterOrphan(OrphanDir)
}
