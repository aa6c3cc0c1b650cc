// Package dockerarchive reads image tarballs as a source.Source: `docker save`
// output of every era and an OCI layout tarred up (oci-archive), optionally
// compressed as a whole with gzip or zstd. The kind is detected from the
// content, never from the file name:
//
//   - legacy docker save (Docker 1.10–24): manifest.json, <v1id>/layer.tar,
//     <image id>.json, repositories;
//   - Docker 25+: oci-layout, index.json and blobs/sha256/… beside a
//     manifest.json with LayerSources, including saves from Docker's
//     containerd image store, whose layers are the compressed registry blobs;
//   - ggcr/kaniko/jib tarballs: config named sha256:<hex>, layers <hex>.tar.gz;
//   - an OCI image layout as a tar, with no manifest.json.
//
// Pre-1.10 saves (repositories and <id>/json only) record no content digests
// and are refused with an error wrapping source.ErrUnsupported.
//
// An uncompressed archive is indexed once (headers only; member data is
// skipped by seeking) and members are served in place as byte ranges of the
// file. A compressed archive cannot be seeked, so it is read once through
// Scan (source.Scanner): small JSON members are kept in memory, every other
// member is handed to the caller's function as it streams past and is
// afterwards reported as consumed.
//
// Member names with "..", absolute names and links leaving the archive are
// never followed; they are reported as report.ArchiveUnsafePath findings
// through source.Noter. When a member name occurs twice, the last copy wins,
// as with tar extraction and `docker load`, and a finding says so. Nothing
// here verifies digests; package verify does.
package dockerarchive
