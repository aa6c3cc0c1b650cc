package tarsplit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/layercheck/layercheck/internal/crc64iso"
)

// emptyCRC is the CRC tar-split records for a header-only entry with Size > 0
// (the reader returns no data for it).
var emptyCRC = make([]byte, CRCSize)

// FileOpener opens the payload of a size > 0 entry. name is already cleaned,
// relative to the layer root and slash-separated, and never starts with "..".
// A missing file must give an error matching fs.ErrNotExist.
type FileOpener interface {
	Open(name string) (io.ReadCloser, error)
}

// Root is a [FileOpener] confined to one directory by [os.Root]: ".." past the
// root, absolute names and symlinks that lead out of it are refused with a
// [*UnsafePathError]. Only regular files are opened, so a FIFO or device node
// planted in a layer cannot block or disturb the reader.
type Root struct {
	root *os.Root
	mu   sync.Mutex
	dirs dirCache // directories of recent files, each opened once
}

// dirCache keeps os.Roots of the directories recently opened from, so a
// file costs one fstatat and one openat instead of an openat and a close per
// path component, twice. Tar entries come grouped by directory, so a few
// slots suffice.
type dirCache struct {
	names []string
	roots []*os.Root
}

const dirCacheSlots = 8

func (c *dirCache) get(root *os.Root, dir string) (*os.Root, error) {
	if dir == "." {
		return root, nil
	}
	for i, n := range c.names {
		if n == dir {
			return c.roots[i], nil
		}
	}
	r, err := root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if len(c.names) == dirCacheSlots {
		c.roots[0].Close()
		c.names, c.roots = c.names[1:], c.roots[1:]
	}
	c.names = append(c.names, dir)
	c.roots = append(c.roots, r)
	return r, nil
}

func (c *dirCache) close() {
	for _, r := range c.roots {
		r.Close()
	}
	c.names, c.roots = nil, nil
}

var _ FileOpener = (*Root)(nil)

// RootOpener opens dir as a layer root. Close it when done.
func RootOpener(dir string) (*Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening layer root: %w", err)
	}
	return &Root{root: r}, nil
}

// Name returns the directory the root was opened with.
func (r *Root) Name() string { return r.root.Name() }

// Close releases the root directory.
func (r *Root) Close() error {
	r.mu.Lock()
	r.dirs.close()
	r.mu.Unlock()
	return r.root.Close()
}

// Open opens name read-only inside the root. Symlinks are followed only while
// they stay inside the root.
func (r *Root) Open(name string) (io.ReadCloser, error) {
	clean, why := cleanName(name)
	if why != "" {
		return nil, &UnsafePathError{Name: name, Position: -1, Reason: why}
	}
	if f := r.openDirect(clean); f != nil {
		return f, nil
	}
	fi, err := r.root.Stat(clean)
	if err != nil {
		return nil, classifyRootErr(name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%w (mode %v)", ErrNotRegular, fi.Mode())}
	}
	// O_NONBLOCK: should the file be swapped for a FIFO after the Stat, the open
	// still returns at once, and the Stat below refuses it.
	f, err := r.root.OpenFile(clean, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, classifyRootErr(name, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%w (mode %v)", ErrNotRegular, fi.Mode())
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f, nil
}

// openDirect is Open's fast path for the common case: a regular file (not a
// symlink) in a directory reached before. It returns nil for everything
// else (a symlink to follow, a missing or special file, any error), which
// the full path then resolves and reports.
func (r *Root) openDirect(clean string) *sizedFile {
	dir, base := ".", clean
	if i := strings.LastIndexByte(clean, '/'); i >= 0 {
		dir, base = clean[:i], clean[i+1:]
	}
	r.mu.Lock()
	dr, err := r.dirs.get(r.root, dir)
	r.mu.Unlock()
	if err != nil {
		return nil
	}
	fi, err := dr.Lstat(base)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	f, err := dr.OpenFile(base, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	if fi2, err := f.Stat(); err != nil || !fi2.Mode().IsRegular() || !os.SameFile(fi, fi2) {
		f.Close()
		return nil
	}
	return &sizedFile{File: f, size: fi.Size()}
}

// SizedReader is what a [FileOpener] may return for a regular file whose
// size at opening it knows (from fstat of the open descriptor): the rebuild
// reads it to that size, without one more read for the end of the file.
type SizedReader interface {
	io.ReadCloser
	SizeAtOpen() int64
}

// sizedFile is a regular file with its size at opening, so its reader can
// stop there instead of reading once more for the end of the file.
type sizedFile struct {
	*os.File
	size int64
}

func (f *sizedFile) SizeAtOpen() int64 { return f.size }

// classifyRootErr turns os.Root's escape refusal into an UnsafePathError.
func classifyRootErr(name string, err error) error {
	// os.Root reports escapes with an unexported error whose text is stable;
	// the tests pin the behaviour.
	if !errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "path escapes from parent") {
		return &UnsafePathError{Name: name, Position: -1, Reason: "path resolves outside the layer root (symlink or ..)"}
	}
	return err
}

// chain is the FileOpener ChainOpener returns.
type chain []FileOpener

// ChainOpener tries each opener in order and returns the first file found. An
// opener reporting fs.ErrNotExist passes to the next; any other error (an unsafe
// path, a non-regular file such as an overlay whiteout, a permission error) is
// returned at once, so an upper directory cannot be bypassed by a lower one.
// Used for overlay2, where a layer's diff dir is tried before its lowers.
func ChainOpener(openers ...FileOpener) FileOpener {
	return chain(openers)
}

func (c chain) Open(name string) (io.ReadCloser, error) {
	err := error(&fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist})
	for _, o := range c {
		f, oerr := o.Open(name)
		if oerr == nil {
			return f, nil
		}
		if !errors.Is(oerr, fs.ErrNotExist) {
			return nil, oerr
		}
		err = oerr
	}
	return nil, err
}

// MaxProblems caps AssembleStats.Problems and AssembleStats.Notes; the counters
// keep counting past it.
const MaxProblems = 1000

// AssembleStats is what [Assemble] found. The typed problems in Problems
// (*ChecksumError, *MissingError, *UnsafePathError, *DuplicatePathError,
// *FileError) are data findings; they never stop the rebuild.
type AssembleStats struct {
	Entries           int   // records read
	Files             int   // file records
	FilesOpened       int   // size > 0 files opened in the root
	FileBytes         int64 // bytes of file payload copied from the root
	BytesWritten      int64 // total bytes written to the output
	FinalEmptySegment bool  // the last record is an empty segment (tar-split <= v0.11.3, Docker <= 24)

	ChecksumErrors int // files whose CRC or length differ
	Missing        int // size > 0 files absent from the root
	Unsafe         int // names that would leave the root
	Duplicates     int // repeated cleaned names
	Unreadable     int // files that could not be opened or read

	Problems []error            // the problems above in record order, up to MaxProblems
	Notes    []*NotReproducible // entries Docker cannot rebuild for a benign reason, up to MaxProblems
	Dropped  int                // problems and notes not kept because of the cap
}

// OK reports that every file was found intact. FinalEmptySegment and notes do
// not count; whether the rebuilt stream matches the diffID is for the caller.
func (s *AssembleStats) OK() bool { return len(s.Problems) == 0 && s.Dropped == 0 }

func (s *AssembleStats) problem(err error) {
	switch err.(type) {
	case *ChecksumError:
		s.ChecksumErrors++
	case *MissingError:
		s.Missing++
	case *UnsafePathError:
		s.Unsafe++
	case *DuplicatePathError:
		s.Duplicates++
	case *FileError:
		s.Unreadable++
	}
	if len(s.Problems) < MaxProblems {
		s.Problems = append(s.Problems, err)
	} else {
		s.Dropped++
	}
}

func (s *AssembleStats) note(n *NotReproducible) {
	if len(s.Notes) < MaxProblems {
		s.Notes = append(s.Notes, n)
	} else {
		s.Dropped++
	}
}

// copyBufSize is the read size for file payloads.
const copyBufSize = 256 << 10

// Assemble rebuilds the tar stream described by ts (a tar-split.json.gz) with the
// file payloads from root, writing it to w, as Docker's TarStream does (FORMATS
// 2.3): segments verbatim; for each file entry with size > 0 the whole file,
// read to EOF, while its CRC-64/ISO is compared with the recorded one.
//
// Unlike Docker it does not stop at the first bad file. Damaged, missing and
// unreadable files and unsafe or duplicate names are recorded in the stats and
// the rebuild goes on (a missing or refused file contributes no bytes), so the
// caller learns every problem and still gets a full stream to hash. Entries under
// .wh..wh.plnk/ that are absent, header-only types with a non-zero size (nothing
// is written for them: the archive had no data) and sparse files are recorded as
// notes.
//
// The error is non-nil only when the rebuild could not be completed: a malformed
// tar-split (a [*FormatError]), a failed write to w, or ctx being done.
func Assemble(ctx context.Context, ts io.Reader, root FileOpener, w io.Writer) (AssembleStats, error) {
	tr, err := Open(ts)
	if err != nil {
		return AssembleStats{}, err
	}
	return AssembleFrom(ctx, tr, root, w)
}

// AssembleFrom is [Assemble] over records already being decoded: a
// [*Reader], or a source wrapping one (a caller that also needs the records,
// so the tar-split is decoded once). Records must come in position order,
// with Typeflag, Duplicate and Unsafe set as [*Reader] sets them.
func AssembleFrom(ctx context.Context, tr EntrySource, root FileOpener, w io.Writer) (AssembleStats, error) {
	var st AssembleStats
	cw := &countWriter{w: w}
	buf := make([]byte, copyBufSize)
	crc := crc64iso.New() // tar-split's CRC-64/ISO (storage.CRCTable), with PCLMULQDQ where the CPU has it
	lastEmpty := false
	for {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("assembling tar stream: %w", err)
		}
		e, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			st.BytesWritten = cw.n
			return st, err
		}
		st.Entries++
		lastEmpty = e.Type == SegmentEntry && e.Size == 0
		if e.Type == SegmentEntry {
			if _, err := cw.Write(e.Payload); err != nil {
				st.BytesWritten = cw.n
				return st, fmt.Errorf("writing tar stream (entry %d): %w", e.Position, err)
			}
			continue
		}
		st.Files++
		if err := assembleFile(ctx, &st, e, root, cw, crc, buf); err != nil {
			st.BytesWritten = cw.n
			return st, err
		}
	}
	st.BytesWritten = cw.n
	st.FinalEmptySegment = lastEmpty
	return st, nil
}

// assembleFile handles one file entry. It returns an error only for write
// failures and cancellation.
func assembleFile(ctx context.Context, st *AssembleStats, e *Entry, root FileOpener, w *countWriter, crc hashResetter, buf []byte) error {
	name := string(e.Name)
	if e.Duplicate {
		st.problem(&DuplicatePathError{Name: name, Position: e.Position})
	}
	if e.Unsafe {
		st.problem(&UnsafePathError{Name: name, Position: e.Position, Reason: e.UnsafeReason})
		return nil
	}
	if e.Size == 0 {
		return nil
	}
	clean, _ := cleanName(string(e.Name))
	if headerOnly(e.Typeflag, e.Name) {
		reason := fmt.Sprintf("header type %q has size %d but carries no data; tar-split would open and copy the path, so Docker cannot rebuild this layer", e.Typeflag, e.Size)
		if !bytes.Equal(e.Payload, emptyCRC) {
			reason += fmt.Sprintf(" (and the recorded crc64 %x is not that of empty data)", e.Payload)
		}
		st.note(&NotReproducible{Name: name, Position: e.Position, Reason: reason})
		return nil
	}
	if e.Sparse {
		st.note(&NotReproducible{Name: name, Position: e.Position, Reason: "sparse file: tar-split records the expanded data, which differs from the archive bytes"})
	}
	f, err := root.Open(clean)
	if err != nil {
		var up *UnsafePathError
		switch {
		case errors.As(err, &up):
			st.problem(&UnsafePathError{Name: name, Position: e.Position, Reason: up.Reason})
		case errors.Is(err, fs.ErrNotExist) && isPlnk(clean):
			st.note(&NotReproducible{Name: name, Position: e.Position, Reason: "AUFS hardlink staging (.wh..wh.plnk) is not unpacked into the layer"})
		case errors.Is(err, fs.ErrNotExist):
			st.problem(&MissingError{Name: name, Position: e.Position, Err: err})
		default:
			st.problem(&FileError{Name: name, Position: e.Position, Op: "open", Err: err})
		}
		return nil
	}
	defer f.Close()
	st.FilesOpened++
	crc.Reset()
	var n int64
	size := int64(-1) // the size at opening, when known: no read for the end
	if sf, ok := f.(SizedReader); ok {
		size = sf.SizeAtOpen()
	}
	for size != 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("assembling tar stream: %w", err)
		}
		nr, rerr := f.Read(buf)
		if nr > 0 {
			if _, werr := w.Write(buf[:nr]); werr != nil {
				return fmt.Errorf("writing tar stream (file %q, entry %d): %w", name, e.Position, werr)
			}
			crc.Write(buf[:nr])
			n += int64(nr)
			st.FileBytes += int64(nr)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			st.problem(&FileError{Name: name, Position: e.Position, Op: "read", Err: rerr})
			return nil
		}
		if size > 0 && n >= size {
			break
		}
	}
	got := crc.Sum(nil)
	if !bytes.Equal(got, e.Payload) || n != e.Size {
		st.problem(&ChecksumError{Name: name, Position: e.Position, Want: e.Payload, Got: got, WantSize: e.Size, GotSize: n})
	}
	return nil
}

// SumFile reads r to its end and returns the CRC-64/ISO of what it read, as
// tar-split records a file's data (the big-endian uint64 of a file record's
// payload), and its length. buf is the read buffer.
func SumFile(r io.Reader, buf []byte) (crc uint64, n int64, err error) {
	for {
		m, rerr := r.Read(buf)
		crc = crc64iso.Update(crc, buf[:m])
		n += int64(m)
		if rerr == io.EOF {
			return crc, n, nil
		}
		if rerr != nil {
			return crc, n, rerr
		}
	}
}

type hashResetter interface {
	io.Writer
	Sum([]byte) []byte
	Reset()
}

// countWriter counts bytes written and never reports a short write as success.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}
