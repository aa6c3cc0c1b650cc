// Package containerd audits a containerd root, read-only: the content store
// (io.containerd.content.v1.content), the metadata database (meta.db, bbolt)
// and the snapshotters' own metadata (overlayfs, native). It serves plain
// containerd (/var/lib/containerd), Kubernetes nodes (namespace k8s.io) and
// Docker's containerd image store (namespace moby).
//
// Open reads both bbolt databases into memory through read-only handles with
// a lock timeout; when a running containerd holds the lock, the file is
// copied to a private temporary file, which is read and removed. Nothing
// under the root is ever written.
//
// Audit then checks, per namespace:
//
//   - every image through the shared verifier (package verify): the target
//     descriptor, indexes, manifests, configs and layers, each layer read
//     once by verify.Pass, which also yields its diffID;
//   - the containerd records around them: the content records (size, file
//     present), the gc.ref labels of indexes and manifests, the
//     containerd.io/uncompressed label of layers, the snapshot label of
//     configs and the snapshot chain in meta.db, in the snapshotter's
//     metadata.db and on disk;
//   - the files of every committed snapshot of the images' chains
//     (overlayfs, native), against their layer as its pass walks it: each
//     entry lstat'ed (type, size, mode, owner, link target, device, xattrs),
//     each regular file's bytes compared as they pass, whiteout devices and
//     opaque markers (overlayfs), then the snapshot walked for entries the
//     layer lacks; native snapshots against the merged view of their chain
//     (snapfiles.go). A snapshot several images share is compared once;
//     one whose blob is gone is information, and VerifySnapshotFiles
//     compares it with layers streamed from elsewhere (a registry). Active
//     snapshots (containers' writes) are reported with their size only;
//   - the store as a whole: every blob hashes to its name, orphan blobs and
//     snapshot directories, leftover ingests, leases that name missing
//     objects, and content nothing references.
//
// FindImage resolves one image record for layercheck compare without
// verifying anything: its target, the platform manifests the content store
// holds (config, layers with their diffIDs and chainIDs, which blobs are
// present, which snapshotters hold each chainID intact) and the platforms
// of an index it does not hold. Select restricts an opened store to some
// namespaces and images without reading it again.
//
// Check IDs are the ctrd-* entries registered in checks.go; docs/checks.md
// lists them. The on-disk formats are described in FORMATS.md section 4.
package containerd
