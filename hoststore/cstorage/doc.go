// Package cstorage audits a containers-storage graph root (podman, buildah,
// CRI-O; /var/lib/containers/storage by default) offline and read-only, as
// a store.Store. FORMATS.md section 7 is the reference; the check IDs
// (cs-…) are in checks.go.
//
// [Open] finds the graph driver from <driver>-layers/layers.json and
// <driver>-images/images.json (overlay and vfs; others are refused with
// ErrUnsupportedDriver). [Store.Images] and [Store.Lookup] read the records
// and the configs only: image ID (the config digest), normalized names,
// repo digests (every manifest digest under every repository the image is
// named in, as podman's RepoDigests; in each repository the manifests a
// registry served first, the last one stored first among them, since
// containers-storage does not record which came from where), the instance manifest's digest,
// platform, and per layer its diff-digest, chainID, compressed-diff-digest
// and diff-size. [Store.OpenLayer] rebuilds one layer's stream as
// containers-storage's Diff does.
//
// [Store.Audit] checks: layers.json and volatile-layers.json (parse,
// unique IDs and names, parents, cycles, incomplete flags, driver
// directory, tar-split present); every layer's exact content, rebuilt from
// <id>.tar-split.gz and its directory (overlay/<id>/diff with the parents'
// diff/ as fallback as the driver's DiffGetter; vfs/dir/<id>) through
// package diskcheck, the engine's single pass hashing it against
// diff-digest and diff-size, every header compared with lstat (owners
// through the layer's uidmap/gidmap; directory mtimes never), entries the
// tar lacks; layers recorded by toc-digest only are noted (info);
// images.json (top layer and chain, big data present with recorded size and
// digest under the =base64 file names, the image digest among its
// manifests', config hashing to the image ID (or the TOC image ID
// containers/image computes), diff_ids vs the chain's diff-digests, the
// manifest's config and layer count, its layer digests vs
// compressed-diff-digest (info: a layer shared by images pulled in another
// compression keeps the first blob's digest), unique names);
// containers.json (layer and image exist); overlay link files, l/ symlinks
// and lower files; orphan driver directories, big-data directories and
// tar-splits (warnings, with sizes).
//
// # Safety and live stores
//
// Nothing under the root is written, renamed, mounted or locked: no *.lock
// file is opened, metadata files are opened read-only after an lstat (a
// symlink, FIFO or device is refused), layer files through os.Root.
// containers-storage replaces its JSON files by atomic renames while podman
// or CRI-O run: the records are read until a stat of every file before and
// after agrees, and when a file changed during the audit the findings of
// layers and images whose records changed or went away are dropped (a
// problem says so), and orphans are judged against both reads.
//
// Not covered: btrfs, zfs, devmapper and aufs graph roots, additional image
// stores (they have the same layout: audit them as roots of their own),
// composefs-backed layers, layer big data.
package cstorage
