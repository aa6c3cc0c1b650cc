// Package docker audits a Docker graph-driver data root (/var/lib/docker by
// default) offline and read-only: the image store, the layer store, the
// exact content of every layer, the graph driver's directories, containers'
// read-write layers, BuildKit's share and what interrupted operations left
// behind. FORMATS.md (shared docs) sections 1, 2 and 6 are the reference; the
// check IDs in checks.go name the invariant of section 6 they implement.
//
// [Open] finds the graph driver from image/<driver>/ (overlay2,
// fuse-overlayfs, vfs, btrfs, zfs); [Store.Audit] adds to a report.Builder
// one report.Image per image (layers with their diffIDs and chainIDs) and a
// finding, with a stable check ID, for every problem.
//
// Tested against real daemons (the e2e suite, dockerd 20.10): overlay2, vfs,
// btrfs (a loop-mounted btrfs data root, and a plain-directory copy of it)
// and fuse-overlayfs, each audited live, clean, with the daemon's diffIDs and
// chainIDs, and on copies with a damaged file and an undone whiteout; the
// hermetic tests (dockertest) lay out the same four. zfs follows FORMATS.md
// only: no zfs store, real or built by the tests, has been audited yet.
//
// [Store.LookupImage] is the cheap read-only view of one image that
// layercheck compare uses: its config (platform, diffIDs, chainIDs), the
// layerdb records of its chainIDs, its repositories.json references and the
// distribution/ entries of its layers, with no layer content read;
// [Store.Layer], [Store.DiffIDByDigest] and [Store.OpenFile] read one layerdb
// record, one diffid-by-digest entry and one file (a tar-split.json.gz).
//
// # Exact content
//
// Each layer is rebuilt once, whichever images share it: tarsplit.Assemble
// replays tar-split.json.gz with the files of the layer directory
// (overlay2/<cache-id>/diff, vfs/dir/<cache-id>, …) read in place, never
// mounted, and the rebuilt stream goes through the engine's single pass
// (verify.Pass), which hashes it (the diffID Docker checks) and walks its
// headers. A disk observer on that pass compares every header with lstat of
// the same path: type (with the driver's whiteout mapping: overlay2's 0/0
// character devices and opaque xattrs, fuse-overlayfs's .wh. files, the
// full-rootfs drivers' deletions), mode, owner, size, symlink target,
// hardlink identity, device numbers and xattrs. Then the layer directory is
// walked for what the tar lacks (an added file, even an empty one), against
// the layer's own entries for overlay drivers and against a replay of the
// whole chain's tar-splits for full-rootfs drivers, whose directories also
// hold the entries they inherit: those are compared with the header of the
// lower layer that last wrote them (type, size, symlink target, device
// numbers, mode, owner, hardlink identity; not xattrs, which vfs does not
// copy). Layers run in parallel
// (Options.Jobs); memory per layer is a few buffers and the layer's path
// tree.
//
// With Options.Analysis the same pass also feeds a verify.LayerAnalyzer
// (one per layer, however many images share it); each selected image gets
// the analysis verify.AnalyzeImage combines from its layers, base first:
// the figures the verifier computes for a docker save of the image. A layer
// that could not be rebuilt, or whose rebuilt stream is misaligned by a file
// of the wrong length, leaves the image's analysis partial.
//
// # Safety
//
// Nothing under the data root is written, renamed, mounted or locked. Every
// path is resolved inside the data root through os.Root, tar-split names
// inside the layer directory (a name climbing out, or a symlink leading out,
// is a finding and is never read), metadata files must be regular files and
// are opened with O_NONBLOCK, xattrs are read through O_PATH descriptors so
// no device or FIFO is ever opened, and BuildKit's bbolt database is copied
// to a private temporary file before it is opened (bbolt takes a lock even
// read-only). Messages suggest only non-destructive next steps.
//
// # Check IDs
//
//	host-imagedb-digest             config bytes hash to their name
//	host-imagedb-config             config parses, rootfs and diff_ids valid
//	host-imagedb-history            non-empty history vs diff_ids
//	host-image-layer-missing        an image's chainID is in the layer store
//	host-image-dangling             untagged image nothing uses (info)
//	host-imagedb-metadata           metadata files well formed, with a config
//	host-imagedb-parent             metadata parent exists, diff_ids prefix
//	host-repositories               repositories.json parses, refs well formed
//	host-repositories-dangling      every reference names a stored image
//	host-leftover                   .tmp-*, write-set-*, *-removing leftovers
//	host-layerdb-file               diff, size, cache-id, parent, tar-split exact
//	host-layer-chainid              directory name == chainID(parent, diff)
//	host-layer-parent               parent exists, acyclic, <= 125 deep
//	host-layer-cache-dir            the cache-id's driver directory exists
//	host-layer-cache-shared         cache-ids and mount-ids unique
//	host-tarsplit                   tar-split decodes, no duplicate path
//	host-tarsplit-not-reproducible  entries Docker cannot rebuild (benign)
//	host-layer-diffid               rebuilt stream hashes to diff
//	host-layer-tar                  rebuilt stream is a readable tar
//	host-file-crc                   a file's CRC-64 and length (names the file)
//	host-layer-missing-file         a tar entry absent from the directory
//	host-unsafe-path                a name or symlink leading out of the layer
//	host-layer-size                 size file follows the driver's rule
//	host-lstat-mismatch             header vs lstat of the same path
//	host-extra-file                 an entry on disk the tar lacks
//	host-whiteout                   whiteouts and opaque markers vs the tar
//	host-layer-unused               a layer nothing uses (info)
//	host-mount                      layerdb/mounts files valid and resolving
//	host-mount-dir                  a mount's driver directories exist
//	host-mount-orphan               a RW layer of no container
//	host-container                  container config, image, RW layer, parent
//	host-overlay-link               overlay link file and l/ symlink agree
//	host-overlay-lower              lower lists the parent chain's links
//	host-overlay-dangling-link      an l/ symlink pointing nowhere
//	host-overlay-committed          committed marker on layers with children
//	host-orphan-dir                 driver directory nothing references (size)
//	host-buildkit                   what BuildKit owns (info)
//	host-distribution               distribution metadata well formed
//	host-distribution-stale         distribution entries of gone layers (info)
//
// A teammate's package hoststore/containerd audits containerd stores; the
// command line runs both through the same report.
package docker
