// Package cstoragetest lays out containers-storage graph roots (podman,
// buildah, CRI-O) for tests, in the formats containers/storage writes
// (FORMATS.md section 7): <driver>-layers/layers.json and
// <id>.tar-split.gz (tar-split's own disassembler over the layer tar),
// <driver>-images/images.json with the big data under =base64 file names
// (config, manifest, manifest-<digest>), <driver>-containers/containers.json
// with a container layer, the overlay driver's diff/, link, lower, work,
// merged, empty and l/ symlinks, vfs's full rootfs per layer, and the lock
// files podman keeps (which the audit must never touch).
//
// It is written independently of the reader (package cstorage imports
// nothing of it; it imports nothing of package cstorage), so a reader bug is
// not mirrored in its input; layer tars and unpacking are dockertest's.
// Imported only by tests.
package cstoragetest
