// Package dirlayout reads the containers/image "dir:" layout as a
// source.Source: the directory `skopeo copy … dir:OUT` and
// `podman save --format docker-dir` write. It holds manifest.json (the image's
// manifest, Docker schema 2, OCI or schema 1 as the copy wrote it, or an
// index for `--all` copies, whose instance manifests are <hex>.manifest.json),
// a version file ("Directory Transport Version: 1.1"), every blob as a file
// named by its sha256 hex digest, and optional signature-N /
// <hex>.signature-N files.
//
// It lists one Target (manifest.json, by the sha256 of its bytes: the layout
// records no digest for it) and hands out blobs by digest; it verifies
// nothing (package verify does). Problems of the layout itself (no version
// file, an unknown version, directories where files belong) are findings
// through source.Noter; an error means the directory could not be read.
//
// It is not a writer and does not verify signatures (their files are neither
// blobs nor unreferenced). The directory is only read: files are opened
// read-only and symlinks leaving it are not followed.
package dirlayout
