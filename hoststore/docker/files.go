package docker

import (
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	digest "github.com/opencontainers/go-digest"
)

// errNotRegular: a metadata path is not a regular file (a directory, a
// symlink, a FIFO or a device).
var errNotRegular = diskcheck.ErrNotRegular

// errTooLarge: a metadata file exceeds Options.MaxFileSize.
var errTooLarge = diskcheck.ErrTooLarge

// rootFor returns the root rel is resolved in and rel inside it. Paths under
// the graph driver's directory go through its own root, so a driver
// directory that an administrator moved to another disk and symlinked
// (a common setup) is followed, while nothing below it can lead out.
func (a *audit) rootFor(rel string) (*os.Root, string) {
	if a.drvRoot != nil {
		if rel == a.drv.dirRel {
			return a.drvRoot, "."
		}
		if rest, ok := strings.CutPrefix(rel, a.drv.dirRel+"/"); ok {
			return a.drvRoot, rest
		}
	}
	return a.dr, rel
}

// lstat is Lstat of rel inside the data root.
func (a *audit) lstat(rel string) (fs.FileInfo, error) {
	r, p := a.rootFor(rel)
	return r.Lstat(p)
}

// readlink is Readlink of rel inside the data root.
func (a *audit) readlink(rel string) (string, error) {
	r, p := a.rootFor(rel)
	return r.Readlink(p)
}

// readFile reads a regular file inside the data root, at most max bytes. A
// symlink, FIFO or device in its place is refused, never followed or opened.
func (a *audit) readFile(rel string, max int64) ([]byte, error) {
	r, p := a.rootFor(rel)
	return diskcheck.ReadRegular(r, p, max)
}

// openRegular opens a regular file inside the data root read-only. The path
// is checked with lstat first, so a symlink or special file is refused
// without being opened; O_NONBLOCK keeps a file swapped for a FIFO in the
// meantime from blocking, and the opened file is checked again.
func (a *audit) openRegular(rel string) (*os.File, error) {
	r, p := a.rootFor(rel)
	return diskcheck.OpenRegular(r, p)
}

// readDir lists a directory inside the data root, sorted by name. A missing
// directory gives no entries and an error matching fs.ErrNotExist.
func (a *audit) readDir(rel string) ([]fs.DirEntry, error) {
	r, p := a.rootFor(rel)
	return diskcheck.ReadDir(r, p, rel)
}

// exists reports whether rel exists (without following a final symlink).
func (a *audit) exists(rel string) bool {
	_, err := a.lstat(rel)
	return err == nil
}

// isDir reports whether rel is a directory (not a symlink to one).
func (a *audit) isDir(rel string) bool {
	fi, err := a.lstat(rel)
	return err == nil && fi.IsDir()
}

var (
	hex64     = regexp.MustCompile(`^[a-f0-9]{64}$`)
	digestRe  = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	linkIDRe  = regexp.MustCompile(`^[A-Z2-7]{26}$`)
	mountIDRe = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// valueFormat grades a metadata value against Docker's exact format.
type valueFormat int

const (
	formatExact      valueFormat = iota // byte for byte as Docker writes it
	formatWhitespace                    // Docker trims it on read, but never writes it so
	formatBad                           // Docker cannot read it
)

// parseDigestFile parses a diff or parent file: "sha256:<64 hex>", no newline.
func parseDigestFile(b []byte) (digest.Digest, valueFormat) {
	s := string(b)
	if digestRe.MatchString(s) {
		return digest.Digest(s), formatExact
	}
	if t := strings.TrimSpace(s); digestRe.MatchString(t) {
		return digest.Digest(t), formatWhitespace
	}
	return "", formatBad
}

// safeName reports whether s can name a directory entry under the driver
// directory: one path element, not "." or "..", printable.
func safeName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if c == '/' || c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// quoteValue renders a metadata value for a finding, short and safe.
func quoteValue(b []byte) string {
	if len(b) > 100 {
		return fmt.Sprintf("%q… (%d bytes)", b[:100], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// typeName names a file type for messages.
func typeName(m fs.FileMode) string { return diskcheck.TypeName(m) }

// humanSize renders a byte count: "12.3 MiB (12897484 bytes)".
func humanSize(n int64) string { return diskcheck.HumanSize(n) }
