// Package source defines how layercheck sees any place that holds images: a
// docker-save tarball, an OCI layout, a registry, a host store. A Source lists
// Targets (the things a user asked to verify) and hands out Blobs (stored
// bytes, unverified). Nothing here verifies; package verify does.
//
// Backends live in sub-packages (source/dockerarchive, source/ocilayout,
// registryclient, hoststore/...) and are chosen by cmd/layercheck; this
// package imports none of them.
package source
