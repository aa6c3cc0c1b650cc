// Package dockertest builds realistic Docker graph-driver data roots for
// tests and benchmarks: layer tars written with archive/tar,
// tar-split.json.gz produced by tar-split's own disassembler from those
// tars, layer directories unpacked the way Docker's graph drivers unpack
// them (overlay2: diff/ with 0/0 whiteout devices and opaque xattrs, link,
// lower, l/ symlinks, committed; fuse-overlayfs: the same layout with the
// .wh. files kept in diff/; vfs and btrfs: a full rootfs copy per layer,
// whiteouts applied as deletions), imagedb configs and metadata,
// repositories.json, distribution metadata, a container with its init and
// read-write layers, and a BuildKit snapshots.db.
//
// It is written independently of the audit (package docker imports nothing
// of it, it imports nothing of package docker), so a reader bug is not
// mirrored in its input. Whiteout devices, trusted xattrs and file owners
// need root: DefaultSpec leaves the overlay2 whiteout layer out otherwise.
// Imported only by tests.
package dockertest
