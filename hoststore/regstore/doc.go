// Package regstore audits a distribution registry's filesystem storage (the
// `rootdirectory` of distribution's filesystem driver, holding
// docker/registry/v2; Harbor and GitLab store images with it) offline and
// read-only, as a store.Store of kind store.Registry.
//
// What it checks: every blobs/<alg>/<xx>/<hex>/data hashes to its path
// (sha256 and sha512), each blob read once through verify.Pass however many
// repositories link it; every manifest revision of every repository parses
// as the registry parses it (registry/storage/manifeststore.go) and every
// blob it references exists and is linked in the repository; every link
// (_layers, _manifests/revisions, tags/<tag>/current, tags/<tag>/index)
// holds a well-formed digest equal to its directory's where it must and
// names an existing blob; and leftovers: blobs no revision references (the
// set `registry garbage-collect --dry-run` lists without
// --delete-untagged: every revision of every repository with a _layers/
// directory is marked with its config, layers and index children), uploads
// older than a day, empty repositories. The images themselves are verified
// by package verify, as `layercheck layout` verifies a layout: each
// repository is a source.Source of its manifest revisions, all sharing one
// verify.BlobScoper scope, so verify.Verifier.VerifyAll reads every layer
// once in one pool.
//
// Names: an image is named by the repository path as stored, with no
// registry host (library/nginx:1, lc/app@sha256:…); Lookup also accepts a
// name with a host or docker.io prefix, which it strips. Image.ID is the
// config digest, RepoDigests are repository@manifest digest (and
// repository@index digest for an index's children), Layers[].Digest is the
// compressed blob digest and DiffID comes from the config.
//
// Sharding (store.Options.Shard, index I of N): link, tag, manifest and
// upload checks are split by repository (sorted paths, every N-th from
// position I); hashing and the orphan and blob findings by blob digest (the
// first 64 bits of the hex, modulo N), so every blob is hashed by exactly one
// shard. Every shard reads all manifests and configs (small, bounded) since
// the garbage-collect mark set and the diff_ids a layer is checked against
// span repositories; each shard reports every image with the measurements
// of its own layers, and report.Merge folds them. With the layer analysis a
// shard's image analysis covers only its own layers.
//
// It is not a registry client (see registryclient), writes nothing, takes
// no lock and follows no symlink out of the root (all reads go through an
// os.Root; special files are not opened for reading).
package regstore
