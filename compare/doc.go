// Package compare decides whether two sides hold the same image.
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
// layer). Expected values are the registry's (or source's), actual
// values the host's. The tag-moved check (compare-tag-moved) is decided by
// the command line, which resolves tags.
package compare
