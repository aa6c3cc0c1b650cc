//go:build !linux

package diskcheck

import (
	"errors"
	"io"
	"io/fs"
	"os"
)

// The audit runs on Linux only (Open refuses other systems); these stubs keep
// the package building elsewhere.

func StatOf(fs.FileInfo) (Stat, bool) { return Stat{}, false }

func Xattrs(*os.Root, string) (map[string]string, error) {
	return nil, errors.New("xattrs: unsupported on this system")
}

func xattrsAt(*os.File, string, string) (map[string]string, error) {
	return nil, errors.New("xattrs: unsupported on this system")
}

func ProcUsable() bool { return false }

// SeesTrustedXattrs: without capabilities to ask about, root is taken to see them.
func SeesTrustedXattrs() bool { return os.Geteuid() == 0 }

// fdFile is Linux only; openRegularAt never opens one here.
type fdFile struct {
	io.ReadCloser
	probe *cacheProbe
}

func openRegularAt(*os.File, string, fs.FileInfo) *fdFile { return nil }

func (*fdFile) xattrs(string) (map[string]string, error) {
	return nil, errors.New("xattrs: unsupported on this system")
}

func willNeedAt(*os.File, string, bool) bool { return false }
