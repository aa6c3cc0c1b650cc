package diskcheck

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Stat holds the lstat fields the audits compare.
type Stat struct {
	UID, GID     int
	Ino, Dev     uint64
	Nlink        uint64
	Major, Minor int64
	Blocks       int64
}

// Whiteout names of the OCI layer format.
const (
	WhPrefix = ".wh."
	WhOpaque = ".wh..wh..opq"
)

// CleanEntry cleans a tar name the way an unpack resolves it: relative to
// the layer root, slash-separated. ok is false for names that climb out of
// the root or hold a NUL byte.
func CleanEntry(name string) (string, bool) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", false
	}
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}

// SplitDirBase splits a cleaned path into its directory ("." at the root) and base.
func SplitDirBase(clean string) (string, string) {
	dir, base := path.Split(clean)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	return dir, base
}

// RootCache keeps os.Roots of recently used directories below Root, so a
// lookup costs one fstatat instead of one openat per path component. Tar
// entries come grouped by directory, so a few slots suffice.
type RootCache struct {
	Root  *os.Root
	names []string
	roots []*os.Root
	files []*os.File // each directory opened, for its descriptor (xattrs); nil until needed
	// rootFile is Root opened as a directory (xattrs of its entries).
	rootFile *os.File
}

const rootCacheSlots = 8

// Get returns the root of dir ("." is Root itself).
func (c *RootCache) Get(dir string) (*os.Root, error) {
	if dir == "." || dir == "" {
		return c.Root, nil
	}
	for i, n := range c.names {
		if n == dir {
			return c.roots[i], nil
		}
	}
	r, err := c.Root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if len(c.names) == rootCacheSlots {
		c.roots[0].Close()
		if c.files[0] != nil {
			c.files[0].Close()
		}
		c.names, c.roots, c.files = c.names[1:], c.roots[1:], c.files[1:]
	}
	c.names = append(c.names, dir)
	c.roots = append(c.roots, r)
	c.files = append(c.files, nil)
	return r, nil
}

// dirFile returns the open directory dir ("." is Root's).
func (c *RootCache) dirFile(dir string) (*os.File, error) {
	if dir == "." || dir == "" {
		if c.rootFile == nil {
			f, err := c.Root.Open(".")
			if err != nil {
				return nil, err
			}
			c.rootFile = f
		}
		return c.rootFile, nil
	}
	r, err := c.Get(dir)
	if err != nil {
		return nil, err
	}
	i := len(c.names) - 1
	for c.names[i] != dir {
		i--
	}
	if c.files[i] == nil {
		f, err := r.Open(".")
		if err != nil {
			return nil, err
		}
		c.files[i] = f
	}
	return c.files[i], nil
}

// Xattrs lists the extended attributes of the cleaned path clean (the
// root itself for "."), without opening it or following a symlink in its
// place: one system call through the directory's descriptor.
func (c *RootCache) Xattrs(clean string) (map[string]string, error) {
	dir, base := ".", "."
	if clean != "." && clean != "" {
		dir, base = SplitDirBase(clean)
	}
	f, err := c.dirFile(dir)
	if err != nil {
		return nil, err
	}
	return xattrsAt(f, base, clean)
}

// Lookup returns the directory root of a cleaned path and its base name.
func (c *RootCache) Lookup(clean string) (*os.Root, string, error) {
	dir, base := SplitDirBase(clean)
	r, err := c.Get(dir)
	return r, base, err
}

// Close closes the cached roots (not Root).
func (c *RootCache) Close() {
	for i, r := range c.roots {
		r.Close()
		if c.files[i] != nil {
			c.files[i].Close()
		}
	}
	if c.rootFile != nil {
		c.rootFile.Close()
	}
	c.names, c.roots, c.files, c.rootFile = nil, nil, nil, nil
}

// Escapes reports whether an os.Root error refused a path leading out of the
// root. os.Root reports it with an unexported error whose text is stable.
func Escapes(err error) bool {
	return err != nil && !errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "path escapes from parent")
}

// IgnoredXattr tells the xattrs on disk that are not part of a layer:
// security.selinux (the host's labelling) and the overlay filesystem's own
// trusted.overlay.* and user.overlay.* markers.
func IgnoredXattr(k string) bool {
	return k == "security.selinux" || strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.")
}

// HasOpaque reports whether a directory carries overlayfs's opaque marker.
func HasOpaque(r *os.Root, name string) (bool, error) {
	x, err := Xattrs(r, name)
	if err != nil {
		return false, err
	}
	return x["trusted.overlay.opaque"] == "y" || x["user.overlay.opaque"] == "y", nil
}

// IsWhiteoutDevice tells an overlayfs whiteout: a 0/0 character device.
func IsWhiteoutDevice(fi fs.FileInfo, st Stat) bool {
	return fi.Mode()&fs.ModeCharDevice != 0 && st.Major == 0 && st.Minor == 0
}

// TypeMatches reports whether the tar type flag fits the file mode. known is
// false for types the audits do not compare.
func TypeMatches(flag byte, m fs.FileMode) (known, match bool) {
	switch flag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return true, m.IsRegular()
	case tar.TypeSymlink:
		return true, m&fs.ModeSymlink != 0
	case tar.TypeChar:
		return true, m&fs.ModeCharDevice != 0
	case tar.TypeBlock:
		return true, m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0
	case tar.TypeDir:
		return true, m.IsDir()
	case tar.TypeFifo:
		return true, m&fs.ModeNamedPipe != 0
	}
	return false, false
}

// TarTypeName names a tar type flag for messages.
func TarTypeName(flag byte) string {
	switch flag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return "regular file"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeDir:
		return "directory"
	case tar.TypeFifo:
		return "FIFO"
	}
	return fmt.Sprintf("entry of type %q", flag)
}

// TypeName names a file type for messages.
func TypeName(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	}
	return "irregular file"
}

// UnixPerm returns the permission, setuid, setgid and sticky bits as in a tar header.
func UnixPerm(m fs.FileMode) int64 {
	p := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 04000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 02000
	}
	if m&fs.ModeSticky != 0 {
		p |= 01000
	}
	return p
}

// HeaderXattrs returns the SCHILY.xattr.* PAX records of a header; trusted.*
// ones only when withTrusted (an unprivileged reader cannot see them on disk).
func HeaderXattrs(h *tar.Header, withTrusted bool) map[string]string {
	out := map[string]string{}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if strings.HasPrefix(name, "trusted.") && !withTrusted {
				continue
			}
			out[name] = v
		}
	}
	return out
}
