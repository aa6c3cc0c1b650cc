// Package compare decides whether two sides hold the same image. It is the
// library behind `layercheck compare`, one function per form:
//
//   - [Artifact]: a docker save or OCI layout against a registry image;
//   - [HostImages]: images of a host store (store.Store, opened once) against
//     their registry sources, the tag-moved check first;
//   - [Sources]: registry images, saves or layouts against a store (Docker's
//     layer store in depth: layerdb and tar-splits; any other by content:
//     config digest, diffIDs, chainIDs).
//
// Each verifies both sides with the shared verifier (each layer read once per
// side), returns a report and the first "could not compare" error, and talks
// to registries only through the [Registry] the caller gives. It is not a
// command line (no flags, no output) and opens no store by itself.
//
// [Images] compares an artifact (a docker save tarball or an OCI layout)
// with what a registry serves. It works on the report.Image results the
// verifier measured on each side (each layer read once per side) and turns
// every difference (manifest, config digest, layer count, diffID, chainID,
// compressed layer digest, platform present on one side only) into a
// report.Finding with a check ID of its own, expected = the registry's
// value, actual = the artifact's.
//
// [Host] compares what a registry serves with an image of a Docker classic
// (graph-driver) store, as hoststore/docker's LookupImage read it without
// rebuilding content: config digest against image ID, every diffID and
// chainID, layers missing locally or only local, each layerdb record's diff
// and parent, and the host's distribution/ metadata against the registry's
// compressed layer digests; it notes why compressed digests themselves
// cannot be compared (the store keeps only diffIDs). [LayerStore] checks any
// source's layers against a host's layerdb, and [TarSplitResult] turns the
// entry-by-entry comparison of a tar-split captured from the source's bytes
// with the host's tar-split.json.gz into a finding naming the first
// difference. [Containerd] compares what a registry serves with an image of
// a containerd content store (a standalone containerd root or Docker's
// containerd image store): both sides keep the compressed blobs, so it
// compares by content digest (target, platform manifest, config and
// compressed layer digests, diffIDs, chainIDs) what the verifier measured on
// the host's blobs, and names layers whose blob the content store lacks
// (an error, a warning when a snapshot of the chainID still holds the
// layer). [StoreImage] compares an image known only through the store model
// (containers-storage, a registry's storage). Expected values are the
// registry's (or source's), actual values the host's.
package compare
