// Package store is the one model of an on-disk image store that layercheck
// audits: Docker's classic (graph-driver) store, containerd (and Docker's
// containerd image store), containers-storage (podman, buildah, CRI-O) and a
// registry's own filesystem storage (distribution's docker/registry/v2).
//
// It holds the interface every backend implements (Store), the cheap,
// content-free view of one image that compare needs (Image, Layer), the
// options every backend takes (Options) and nothing else: it opens no store
// and verifies nothing. Which kind a path is, and which backend opens it, is
// decided by package hoststore (hoststore.Open), which imports the backends;
// the backends (hoststore/docker, hoststore/containerd, ...) import this
// package for its types, so there is no cycle. storetest is the conformance
// suite every backend passes.
package store
