//go:build !linux

package diskcheck

import (
	"errors"
	"io/fs"
	"os"
)

// The audits run on Linux only; these stubs keep the packages building elsewhere.

// StatOf is unsupported on this system.
func StatOf(fs.FileInfo) (Stat, bool) { return Stat{}, false }

// Xattrs is unsupported on this system.
func Xattrs(*os.Root, string) (map[string]string, error) {
	return nil, errors.New("xattrs: unsupported on this system")
}

// ProcUsable is false on this system.
func ProcUsable() bool { return false }
