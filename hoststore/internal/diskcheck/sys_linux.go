//go:build linux

package diskcheck

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// StatOf returns the Unix stat fields of a FileInfo from Lstat.
func StatOf(fi fs.FileInfo) (st Stat, ok bool) {
	s, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Stat{}, false
	}
	return Stat{
		UID: int(s.Uid), GID: int(s.Gid), Ino: s.Ino, Dev: uint64(s.Dev), Nlink: uint64(s.Nlink),
		Major: int64(unix.Major(uint64(s.Rdev))), Minor: int64(unix.Minor(uint64(s.Rdev))),
		Blocks: s.Blocks,
	}, true
}

// xattrs lists the extended attributes of name inside root without opening
// it for reading: an O_PATH descriptor (which never opens a device or blocks
// on a FIFO) is resolved through /proc/self/fd. Symlinks are not followed.
func Xattrs(root *os.Root, name string) (map[string]string, error) {
	f, err := root.OpenFile(name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return xattrsOf(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), name, unix.Listxattr, unix.Getxattr)
}

// xattrsAt lists the extended attributes of base (one path component, or
// "." for the directory itself) in the open directory dir, without opening
// it: the path through /proc/self/fd names it, and the l* calls do not
// follow a symlink in its place.
func xattrsAt(dir *os.File, base, name string) (map[string]string, error) {
	p := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd()))
	if base != "." {
		p += "/" + base
	}
	return xattrsOf(p, name, unix.Llistxattr, unix.Lgetxattr)
}

// fdFile is a regular file of a layer directory open for the rebuild on a
// bare descriptor: an os.File would try to register each one with the
// runtime's poller (one more system call per file, always refused for a
// regular file) and allocate for it.
type fdFile struct {
	fd   int
	size int64 // at opening
	name string
	// probe, when set, has the first read ask whether the file's data is
	// in the page cache (cacheProbe).
	probe *cacheProbe
}

// openRegularAt opens base in the open directory dir if it is still the
// regular file want (the observer's lstat): no symlink followed, no blocking
// on a FIFO swapped in, and fstat of the descriptor must show want's inode.
// nil: not that file (the caller resolves the name its own way).
func openRegularAt(dir *os.File, base string, want fs.FileInfo) *fdFile {
	ws, ok := want.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	fd, size, ok := openInode(dir, base, uint64(ws.Dev), ws.Ino)
	if !ok {
		return nil
	}
	return &fdFile{fd: fd, size: size, name: base}
}

// openInode opens base (one path component) in the open directory dir for
// reading if it is still the regular file with inode ino on device dev (an
// lstat made before): no symlink followed, no blocking on a FIFO swapped
// in, and fstat of the descriptor must show that inode. It returns the
// descriptor and the size fstat gave.
func openInode(dir *os.File, base string, dev, ino uint64) (int, int64, bool) {
	if base == "." || base == ".." || base == "" || strings.Contains(base, "/") {
		return -1, 0, false
	}
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, false
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != ino || uint64(st.Dev) != dev {
		unix.Close(fd)
		return -1, 0, false
	}
	return fd, st.Size, true
}

func (f *fdFile) Read(p []byte) (int, error) {
	if pr := f.probe; pr != nil && len(p) > 0 {
		f.probe = nil
		// RWF_NOWAIT: the pages that are cached, or EAGAIN when the first
		// is not (the read would wait for the disk); the same read as
		// read(2) otherwise, so a warm file costs no extra system call.
		n, err := unix.Preadv2(f.fd, [][]byte{p}, -1, unix.RWF_NOWAIT)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err == unix.EAGAIN:
			pr.cold.Store(true)
		case err == unix.EINTR:
		default: // not supported by this kernel or filesystem: no probing
			pr.off.Store(true)
		}
	}
	for {
		n, err := unix.Read(f.fd, p)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *fdFile) Close() error { return unix.Close(f.fd) }

// SizeAtOpen implements tarsplit.SizedReader.
func (f *fdFile) SizeAtOpen() int64 { return f.size }

// xattrs lists the file's extended attributes through its descriptor.
func (f *fdFile) xattrs(name string) (map[string]string, error) {
	return xattrsOf("", name,
		func(_ string, buf []byte) (int, error) { return unix.Flistxattr(f.fd, buf) },
		func(_, k string, buf []byte) (int, error) { return unix.Fgetxattr(f.fd, k, buf) })
}

func xattrsOf(p, name string, list func(string, []byte) (int, error), get func(string, string, []byte) (int, error)) (map[string]string, error) {
	buf := make([]byte, 4096)
	var n int
	var err error
	for {
		n, err = list(p, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < 1<<20 {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing xattrs of %s: %w", name, err)
	}
	if n == 0 {
		return nil, nil // most files: no map, no value buffer
	}
	out := map[string]string{}
	val := make([]byte, 4096)
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		for {
			m, err := get(p, k, val)
			if errors.Is(err, unix.ERANGE) && len(val) < 1<<20 {
				val = make([]byte, len(val)*4)
				continue
			}
			if err == nil {
				out[k] = string(val[:m])
			}
			break
		}
	}
	return out, nil
}

// ProcUsable reports whether /proc/self/fd resolves descriptors (needed by xattrs).
func ProcUsable() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

// SeesTrustedXattrs says whether this process can read trusted.* xattrs
// (overlay2's opaque markers): the kernel shows them only to a process with
// CAP_SYS_ADMIN in its effective set. Root with its capabilities dropped (a
// Kubernetes pod with only DAC_READ_SEARCH) cannot, and must not take their
// absence for a missing marker.
func SeesTrustedXattrs() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.Geteuid() == 0
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
}

// willNeedAt asks the kernel to read base, in the open directory dir, into
// the page cache if it is a regular file that is not cached: lstat first (a
// device node is never opened), then the rebuild's open of that inode
// (openInode), then, when check is set, a one-byte read with RWF_NOWAIT (is
// its first page cached?). It reports whether the file was found cached.
// Errors are ignored: it is a hint.
func willNeedAt(dir *os.File, base string, check bool) (cached bool) {
	var st unix.Stat_t
	if unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size == 0 {
		return false
	}
	fd, _, ok := openInode(dir, base, uint64(st.Dev), st.Ino)
	if !ok {
		return false
	}
	defer unix.Close(fd)
	if check {
		var b [1]byte
		if _, err := unix.Preadv2(fd, [][]byte{b[:]}, 0, unix.RWF_NOWAIT); err == nil {
			return true
		}
	}
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_WILLNEED)
	return false
}
