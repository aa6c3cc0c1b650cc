package tarsplit

import (
	"errors"
	"fmt"

	"github.com/vbatts/tar-split/tar/storage"
)

// ErrDuplicatePath is tar-split's own sentinel for a second file entry with the
// same cleaned name. [*DuplicatePathError] matches it with errors.Is.
var ErrDuplicatePath = storage.ErrDuplicatePath

// ErrNotRegular is returned (wrapped in a [*FileError]) when the path of a size > 0
// entry is not a regular file in the layer root (a directory, device, FIFO,
// socket, or an overlay whiteout).
var ErrNotRegular = errors.New("not a regular file")

// ErrLimit marks a resource limit that stopped decoding or capturing
// (a record too long, a sparse file expanding past the capture budget).
var ErrLimit = errors.New("resource limit exceeded")

// FormatError is a malformed tar-split stream: bad gzip, bad JSON, an unknown
// record type, an out-of-order position, a record over the size limit.
type FormatError struct {
	Line int   // 1-based line of the record; 0 when the gzip header itself is bad
	Err  error // what is wrong
}

// Error names the line and the problem.
func (e *FormatError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("tar-split: %v", e.Err)
	}
	return fmt.Sprintf("tar-split line %d: %v", e.Line, e.Err)
}

// Unwrap returns the underlying problem.
func (e *FormatError) Unwrap() error { return e.Err }

// ChecksumError is a size > 0 file whose content on disk does not have the CRC
// (or length) the tar-split recorded: the file was changed after registration.
type ChecksumError struct {
	Name     string // entry name as in the tar-split
	Position int    // record position
	Want     []byte // CRC-64/ISO from the tar-split (8 bytes, big-endian)
	Got      []byte // CRC-64/ISO of the file read to EOF
	WantSize int64  // size from the tar-split header
	GotSize  int64  // bytes read from the file
}

// Error names the file, both CRCs and, when they differ, both sizes.
func (e *ChecksumError) Error() string {
	msg := fmt.Sprintf("file integrity checksum failed for %q (entry %d): crc64 want %x, got %x", e.Name, e.Position, e.Want, e.Got)
	if e.WantSize != e.GotSize {
		msg += fmt.Sprintf("; size want %d, got %d", e.WantSize, e.GotSize)
	}
	return msg
}

// MissingError is a size > 0 file entry whose path does not exist in the layer root.
type MissingError struct {
	Name     string
	Position int
	Err      error // the open error
}

// Error names the missing file.
func (e *MissingError) Error() string {
	return fmt.Sprintf("file %q (entry %d) missing from the layer: %v", e.Name, e.Position, e.Err)
}

// Unwrap returns the open error.
func (e *MissingError) Unwrap() error { return e.Err }

// UnsafePathError is an entry name that would make reassembly read outside the
// layer root: ".." climbing out, a NUL byte, or a symlink on the path that leads
// out of the root. The file is not opened.
type UnsafePathError struct {
	Name     string
	Position int    // record position; -1 when raised by a FileOpener
	Reason   string // what makes it unsafe
}

// Error names the path and why it is unsafe.
func (e *UnsafePathError) Error() string {
	if e.Position < 0 {
		return fmt.Sprintf("unsafe path %q: %s", e.Name, e.Reason)
	}
	return fmt.Sprintf("unsafe path %q (entry %d): %s", e.Name, e.Position, e.Reason)
}

// DuplicatePathError is a file entry whose cleaned name was already seen.
// errors.Is(err, ErrDuplicatePath) holds.
type DuplicatePathError struct {
	Name     string
	Position int // record position; -1 when unknown
}

// Error names the repeated path.
func (e *DuplicatePathError) Error() string {
	if e.Position < 0 {
		return fmt.Sprintf("duplicate path %q: %v", e.Name, storage.ErrDuplicatePath)
	}
	return fmt.Sprintf("duplicate path %q (entry %d): %v", e.Name, e.Position, storage.ErrDuplicatePath)
}

// Unwrap returns ErrDuplicatePath.
func (e *DuplicatePathError) Unwrap() error { return storage.ErrDuplicatePath }

// FileError is a size > 0 file that exists but could not be opened or read
// (permissions, not a regular file, an I/O error). errors.Is works on Err.
type FileError struct {
	Name     string
	Position int
	Op       string // "open" or "read"
	Err      error
}

// Error names the operation, the file and the cause.
func (e *FileError) Error() string {
	return fmt.Sprintf("%s %q (entry %d): %v", e.Op, e.Name, e.Position, e.Err)
}

// Unwrap returns the cause.
func (e *FileError) Unwrap() error { return e.Err }

// NotReproducible notes an entry that tar-split (and so Docker) cannot rebuild
// from the layer directory for a known, benign reason (FORMATS 2.7): it explains
// a diffID mismatch without meaning the layer was tampered with.
type NotReproducible struct {
	Name     string
	Position int
	Reason   string
}

// Error renders the note; NotReproducible is an error so it can travel with the problems.
func (n *NotReproducible) Error() string {
	return fmt.Sprintf("entry %q (%d) not reproducible from the layer directory: %s", n.Name, n.Position, n.Reason)
}
