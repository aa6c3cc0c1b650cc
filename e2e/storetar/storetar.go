// Package storetar archives and restores container stores (a Docker data
// root, a containerd root) exactly enough for layercheck's host-store tests:
// regular files, directories, symlinks, hardlinks, fifos, character and block
// devices (overlay whiteouts are 0/0 character devices), owners, permission
// bits with setuid/setgid/sticky, nanosecond mtimes, and every extended
// attribute (trusted.overlay.opaque, user.*) as PAX SCHILY.xattr records.
// Sockets are left out.
//
// The captures under fixtures/testdata/stores are written by Capture (see
// e2e/cmd/capture-stores) and read by tests with Extract, which needs root
// for device nodes, trusted.* attributes and ownership, or with Walk, which
// streams the entries without writing anything and works for any user.
package storetar

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// XattrPrefix is the PAX record prefix of extended attributes.
const XattrPrefix = "SCHILY.xattr."

// ErrNeedRoot marks an entry that only root can restore (a device node, a
// trusted.* attribute, a foreign owner).
var ErrNeedRoot = errors.New("restoring this entry needs root")

// Options tune Capture.
type Options struct {
	// Exclude returns true for paths (relative, slash-separated) to leave
	// out; a directory is left out with everything below it.
	Exclude func(rel string) bool
}

// Capture writes the tree below dir as a gzip-compressed tar to w. Entries are
// sorted by name, so two captures of the same tree are identical.
func Capture(w io.Writer, dir string, opts Options) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	links := map[[2]uint64]string{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if opts.Exclude != nil && opts.Exclude(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		h, err := header(p, rel, links)
		if err != nil || h == nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("writing header of %s: %w", rel, err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("copying %s: %w", rel, err)
			}
			if n != h.Size {
				return fmt.Errorf("%s changed size while captured (%d, then %d bytes)", rel, h.Size, n)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("capturing %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// header builds the tar header of p; nil for a socket.
func header(p, rel string, links map[[2]uint64]string) (*tar.Header, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", rel, err)
	}
	h := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		Format:  tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h.Typeflag, h.Name = tar.TypeDir, rel+"/"
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[key]; ok && st.Nlink > 1 {
			h.Typeflag, h.Linkname = tar.TypeLink, first
		} else {
			if st.Nlink > 1 {
				links[key] = rel
			}
			h.Typeflag, h.Size = tar.TypeReg, st.Size
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, err
		}
		h.Typeflag, h.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		h.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		h.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: unsupported file type %o", rel, st.Mode&unix.S_IFMT)
	}
	xattrs, err := listXattrs(p)
	if err != nil {
		return nil, fmt.Errorf("xattrs of %s: %w", rel, err)
	}
	if len(xattrs) > 0 {
		h.PAXRecords = map[string]string{}
		for k, v := range xattrs {
			h.PAXRecords[XattrPrefix+k] = v
		}
	}
	return h, nil
}

func listXattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || sz == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsz, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		val := make([]byte, vsz)
		if vsz > 0 {
			vsz, err = unix.Lgetxattr(p, name, val)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		out[name] = string(val[:vsz])
	}
	return out, nil
}

// Entry is one member of a capture, as Walk delivers it.
type Entry struct {
	Header *tar.Header
	Body   io.Reader // content of a regular file; empty otherwise
}

// Xattrs returns the extended attributes recorded for the entry.
func (e Entry) Xattrs() map[string]string {
	out := map[string]string{}
	for k, v := range e.Header.PAXRecords {
		if name, ok := strings.CutPrefix(k, XattrPrefix); ok {
			out[name] = v
		}
	}
	return out
}

// Walk streams the members of a gzip-compressed capture to fn, in order,
// without writing anything. Returning io.EOF from fn stops the walk early.
func Walk(r io.Reader, fn func(Entry) error) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading capture: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading capture: %w", err)
		}
		if err := fn(Entry{Header: h, Body: tr}); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// Extract restores a gzip-compressed capture into dir, which must exist and
// should be empty. Names must stay inside dir and never pass through a
// symlink. Directory modes and times are set last, so a mode-000 directory
// (overlay2's work/work) can still be filled. Device nodes, trusted.*
// attributes and ownership need root: without it Extract fails with an error
// wrapping ErrNeedRoot.
func Extract(r io.Reader, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	type dirMeta struct {
		path string
		h    *tar.Header
	}
	var dirs []dirMeta
	err = Walk(r, func(e Entry) error {
		h := e.Header
		name := strings.TrimSuffix(h.Name, "/")
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return fmt.Errorf("entry %q leaves the target directory", h.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := checkParents(dir, p); err != nil {
			return fmt.Errorf("entry %q: %w", h.Name, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			dirs = append(dirs, dirMeta{p, h})
			return setXattrs(p, h, name) // owner, mode and times at the end
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, e.Body); err != nil {
				f.Close()
				return fmt.Errorf("writing %s: %w", name, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeLink:
			if !filepath.IsLocal(filepath.FromSlash(h.Linkname)) {
				return fmt.Errorf("hardlink %q points outside: %q", h.Name, h.Linkname)
			}
			return os.Link(filepath.Join(dir, filepath.FromSlash(h.Linkname)), p)
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeChar, tar.TypeBlock:
			mode := uint32(unix.S_IFCHR)
			if h.Typeflag == tar.TypeBlock {
				mode = unix.S_IFBLK
			}
			if err := unix.Mknod(p, mode|uint32(h.Mode&0o7777), int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
				if errors.Is(err, unix.EPERM) {
					return fmt.Errorf("device %s: %w: %w", name, ErrNeedRoot, err)
				}
				return fmt.Errorf("device %s: %w", name, err)
			}
		case tar.TypeFifo:
			if err := unix.Mkfifo(p, uint32(h.Mode&0o7777)); err != nil {
				return fmt.Errorf("fifo %s: %w", name, err)
			}
		default:
			return fmt.Errorf("entry %q: unsupported type %q", h.Name, h.Typeflag)
		}
		return finish(p, h, name)
	})
	if err != nil {
		return err
	}
	// Deepest directories first, so that setting a parent's mtime is the last
	// change inside it.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i].path) > len(dirs[j].path) })
	for _, d := range dirs {
		if err := finish(d.path, d.h, d.h.Name); err != nil {
			return err
		}
	}
	return nil
}

// checkParents fails if a directory between dir and p is not a real
// directory (a symlink planted by an earlier entry, say).
func checkParents(dir, p string) error {
	rel, err := filepath.Rel(dir, filepath.Dir(p))
	if err != nil || rel == "." {
		return err
	}
	cur := dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		st, err := os.Lstat(cur)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", cur)
		}
	}
	return nil
}

func setXattrs(p string, h *tar.Header, name string) error {
	for k, v := range h.PAXRecords {
		attr, ok := strings.CutPrefix(k, XattrPrefix)
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(p, attr, []byte(v), 0); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("xattr %s of %s: %w: %w", attr, name, ErrNeedRoot, err)
			}
			return fmt.Errorf("xattr %s of %s: %w", attr, name, err)
		}
	}
	return nil
}

// finish sets owner, mode, xattrs (non-directories) and times of p.
func finish(p string, h *tar.Header, name string) error {
	if err := unix.Lchown(p, h.Uid, h.Gid); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("owner of %s: %w: %w", name, ErrNeedRoot, err)
		}
		return fmt.Errorf("owner of %s: %w", name, err)
	}
	if h.Typeflag != tar.TypeSymlink && h.Typeflag != tar.TypeLink {
		// After chown, which clears setuid and setgid.
		if err := unix.Fchmodat(unix.AT_FDCWD, p, uint32(h.Mode&0o7777), 0); err != nil {
			return fmt.Errorf("mode of %s: %w", name, err)
		}
	}
	if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeLink {
		if err := setXattrs(p, h, name); err != nil {
			return err
		}
	}
	if h.Typeflag == tar.TypeLink {
		return nil
	}
	ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("times of %s: %w", name, err)
	}
	return nil
}
