//go:build linux

package diskcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
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
	p := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	buf := make([]byte, 4096)
	var n int
	for {
		n, err = unix.Listxattr(p, buf)
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
	out := map[string]string{}
	val := make([]byte, 4096)
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		for {
			m, err := unix.Getxattr(p, k, val)
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
