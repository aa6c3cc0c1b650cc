// Package hoststore opens an on-disk image store of any kind layercheck
// knows, recognising the kind from the store's contents, never from the
// path's name or from which flag named it: Docker's classic store
// (image/<driver>), Docker's containerd image store and plain containerd
// roots, containers-storage graph roots, and a registry's filesystem storage
// (docker/registry/v2). It is the one dispatcher over the backends in its
// subpackages, which implement store.Store; it verifies nothing itself.
package hoststore
