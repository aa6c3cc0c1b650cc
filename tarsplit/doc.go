// Package tarsplit wraps github.com/vbatts/tar-split for layercheck: it reads
// the tar-split.json.gz files Docker's layer store keeps next to every layer,
// rebuilds the exact layer tar from them and an unpacked layer directory, captures
// a tar-split from a tar stream while the verifier reads it, and compares two
// tar-splits entry by entry.
//
// The format is described in FORMATS.md section 2 (shared docs): one JSON record
// per line; type 2 "segment" records hold raw archive bytes (headers, padding, the
// end-of-archive blocks and trailing data), type 1 "file" records hold a header
// name, its size and, for size > 0, the big-endian CRC-64/ISO of the file data.
//
// The four parts:
//
//   - [Open] decodes a tar-split.json.gz stream record by record ([Reader]). It is
//     strict about the format (every malformed record is a [*FormatError] naming
//     the line), bounded in memory (a record may not exceed [MaxSegmentSize] of
//     payload) and flags, without failing, the two things tar-split's own rules or
//     a careful reader would refuse: duplicate cleaned names and names that climb
//     out of the layer root. Lines of the exact shape tar-split's packer writes
//     are parsed by hand (no library decodes this fixed schema faster with the
//     same strictness); any other line falls back to encoding/json, so results
//     and errors are always exactly encoding/json's.
//   - [Assemble] rebuilds the tar stream the way Docker's TarStream does, but never
//     stops at the first damaged file: checksum mismatches, missing files and unsafe
//     names are recorded as typed errors in [AssembleStats] and the stream is still
//     written in full, so the caller can both name every damaged file and compare
//     the stream's sha256 with the diffID. Files are opened only inside the layer
//     root ([RootOpener], built on [os.Root]); [ChainOpener] tries several roots in
//     order (overlay2 lower directories).
//   - [Capture] is an io.Writer that runs tar-split's own disassembler over the
//     bytes written to it, keeping a compact list of entries (names, sizes, CRCs,
//     sha256 and length of every segment, raw header bytes up to a cap). It
//     streams, never blocks its writer, and stops with [ErrLimit] when a sparse
//     file would make tar-split checksum more than a budget of holes.
//   - [Compare] compares two [EntrySource]s (a decoded file or a capture): file
//     entries field by field, the segments between them as runs of bytes (by
//     length and sha256), and names the first difference. A trailing empty
//     segment, which tar-split <= v0.11.3 (Docker <= 24) always wrote and later
//     versions do not, is not a difference, nor is where tar-split cut trailing
//     data into chunks.
//
// Package tarsplit imports only the standard library and vbatts/tar-split.
package tarsplit
