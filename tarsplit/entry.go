package tarsplit

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"path"
	"path/filepath"
	"strings"

	"github.com/vbatts/tar-split/tar/storage"
)

// Type is the kind of a tar-split record. The values are tar-split's own.
type Type int

// Record types, as stored in the "type" field.
const (
	// FileEntry is a tar header as returned by the tar reader (any type: regular
	// file, directory, link, device, whiteout…). Size > 0 entries carry the CRC of
	// the file data and are read from the layer directory on reassembly.
	FileEntry Type = Type(storage.FileType)
	// SegmentEntry holds raw archive bytes: header blocks, padding, the
	// end-of-archive blocks and any trailing data.
	SegmentEntry Type = Type(storage.SegmentType)
)

// String names the record type.
func (t Type) String() string {
	switch t {
	case FileEntry:
		return "file"
	case SegmentEntry:
		return "segment"
	default:
		return "unknown"
	}
}

// CRCSize is the length of a file entry's payload: a big-endian CRC-64/ISO.
const CRCSize = 8

// Entry is one tar-split record, decoded from a tar-split.json.gz or captured
// from a tar stream. Entries returned by a source must not be modified.
type Entry struct {
	Type Type
	// Name is the header name exactly as in the archive (after PAX/GNU long-name
	// resolution), from "name" or, for names that are not valid UTF-8, "name_raw".
	// Empty for segments.
	Name []byte
	// Size is the header size of a file entry, and the payload length of a segment.
	Size int64
	// Payload is, for a file entry with Size > 0, the 8-byte big-endian CRC-64/ISO
	// of the file data (nil for Size 0). For a segment it is the raw archive bytes;
	// a Capture may drop them (Payload nil while Size > 0) past its memory cap,
	// SegmentSum still identifies them.
	Payload []byte
	// SegmentSum is the sha256 of a segment's raw bytes (zero for file entries).
	SegmentSum [32]byte
	// RunSum and RunSize describe the run of consecutive segments this one ends
	// (every segment since the previous file entry, this one included): the sha256
	// and length of their concatenated bytes. Where tar-split cuts the data after
	// the end-of-archive blocks depends on the reader's chunk sizes, so [Compare]
	// compares runs, not single segments.
	RunSum  [32]byte
	RunSize int64
	// Position is the 0-based index of the record in the tar-split.
	Position int
	// Line is the 1-based line of the record in the decoded JSON (0 when captured).
	Line int

	// Typeflag is the tar type flag of a file entry, read from the header block at
	// the end of the preceding segment; 0 when no valid header block was found.
	Typeflag byte
	// Sparse reports a GNU sparse file (type 'S' or GNU.sparse PAX records). Its
	// tar-split CRC covers the expanded data, so a rebuild cannot match the archive.
	Sparse bool
	// Duplicate reports a file entry whose cleaned name (filepath.Clean, tar-split's
	// rule) was already seen in this tar-split. tar-split and Docker refuse such
	// files (storage.ErrDuplicatePath).
	Duplicate bool
	// Unsafe reports a file entry whose name climbs out of the layer root (a ".."
	// left after cleaning) or holds a NUL byte. UnsafeReason says which.
	Unsafe       bool
	UnsafeReason string
}

// NameString returns the name as a Go string (the raw bytes, not necessarily UTF-8).
func (e *Entry) NameString() string { return string(e.Name) }

// EntrySource yields tar-split entries in position order. Both the decoded file
// ([*Reader]) and a closed [*Capture] implement it.
type EntrySource interface {
	// Next returns the next entry, or io.EOF after the last one. Any other error
	// ends the source.
	Next() (*Entry, error)
}

// tar header-only types: the tar reader reads no data for them whatever Size says.
func headerOnly(typeflag byte, name []byte) bool {
	switch typeflag {
	case '1', '2', '3', '4', '5', '6':
		return true
	case 0:
		// Legacy archives mark directories with a trailing slash (the reader turns
		// TypeRegA + "/" into TypeDir).
		return bytes.HasSuffix(name, []byte("/"))
	}
	return false
}

// cleanName returns the name the way reassembly uses it: relative to the layer
// root, cleaned, slash-separated. unsafe is non-empty when the name climbs out
// of the root or cannot be a path.
func cleanName(n string) (clean string, unsafe string) {
	if strings.IndexByte(n, 0) >= 0 {
		return "", "name contains a NUL byte"
	}
	c := path.Clean(strings.TrimLeft(n, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return c, "name climbs out of the layer root"
	}
	return c, ""
}

// plnkDir is where AUFS staged hardlinks; Docker unpacks it into a temp dir, not into the layer.
const plnkDir = ".wh..wh.plnk"

func isPlnk(clean string) bool {
	return clean == plnkDir || strings.HasPrefix(clean, plnkDir+"/")
}

// tracker derives the per-entry flags shared by the decoder and the capture.
type tracker struct {
	seen     map[string]struct{} // nil: do not track duplicates
	typeflag byte                // from the last segment
	sparse   bool                // from the last segment
	run      hash.Hash           // sha256 of the current run of segments
	runSize  int64
}

func newTracker(dups bool) *tracker {
	t := &tracker{run: sha256.New()}
	if dups {
		t.seen = map[string]struct{}{}
	}
	return t
}

// segment fills the sums of a segment entry whose raw bytes are b, and records
// the header information at its end for the file entry that follows.
func (t *tracker) segment(e *Entry, b []byte) {
	e.Size = int64(len(b))
	e.SegmentSum = sha256.Sum256(b)
	t.run.Write(b)
	t.runSize += int64(len(b))
	t.run.Sum(e.RunSum[:0])
	e.RunSize = t.runSize
	t.typeflag, t.sparse = lastHeader(b)
}

// file fills the flags of a file entry.
func (t *tracker) file(e *Entry) {
	e.Typeflag = t.typeflag
	e.Sparse = t.sparse
	t.typeflag, t.sparse = 0, false
	t.run.Reset()
	t.runSize = 0
	name := string(e.Name) // one conversion for both checks
	if _, why := cleanName(name); why != "" {
		e.Unsafe, e.UnsafeReason = true, why
	}
	if t.seen != nil {
		key := filepath.Clean(name) // tar-split's own rule
		if _, ok := t.seen[key]; ok {
			e.Duplicate = true
		} else {
			t.seen[key] = struct{}{}
		}
	}
}

const blockSize = 512

// maxHeaderScan bounds how far back lastHeader looks (old GNU sparse extension
// blocks and PAX 1.0 sparse maps can follow the main header block).
const maxHeaderScan = 64

// lastHeader finds the header block of the entry a segment introduces and
// returns its type flag and whether it describes a GNU sparse file. A header
// segment normally ends with that block (plus, for sparse files, the sparse map
// the reader consumed right after it), so blocks are counted back from the end.
// A PAX global header segment ends with its unpadded records instead; then the
// first header block after the leading padding is used.
func lastHeader(seg []byte) (typeflag byte, sparse bool) {
	found := -1
	for i, off := 0, len(seg)-blockSize; i < maxHeaderScan && off >= 0; i, off = i+1, off-blockSize {
		if validChecksum(seg[off : off+blockSize]) {
			found = off
			break
		}
	}
	if found < 0 {
		for off := 0; off < blockSize && off+blockSize <= len(seg); off++ {
			if validChecksum(seg[off : off+blockSize]) {
				found = off
				break
			}
		}
	}
	if found < 0 {
		return 0, false
	}
	typeflag = seg[found+156]
	sparse = typeflag == 'S' || bytes.Contains(seg[:found], []byte("GNU.sparse."))
	return typeflag, sparse
}

// validChecksum reports whether blk is a tar header block with a correct checksum
// (unsigned or, as some old tars wrote, signed).
func validChecksum(blk []byte) bool {
	field := blk[148:156]
	// Parse the octal field: optional leading spaces, digits, then NUL or spaces.
	field = bytes.Trim(field, " \x00")
	if len(field) == 0 {
		return false
	}
	var want int64
	for _, c := range field {
		if c < '0' || c > '7' {
			return false
		}
		want = want*8 + int64(c-'0')
	}
	var unsigned, signed int64
	for i, c := range blk {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return want == unsigned || want == signed
}

// ustarField names the ustar header field at offset off of a header block.
func ustarField(off int) string {
	fields := []struct {
		end  int
		name string
	}{
		{100, "name"}, {108, "mode"}, {116, "uid"}, {124, "gid"}, {136, "size"},
		{148, "mtime"}, {156, "checksum"}, {157, "typeflag"}, {257, "linkname"},
		{263, "magic"}, {265, "version"}, {297, "uname"}, {329, "gname"},
		{337, "devmajor"}, {345, "devminor"}, {500, "prefix"}, {512, "padding"},
	}
	for _, f := range fields {
		if off < f.end {
			return f.name
		}
	}
	return ""
}
