//go:build !linux

package docker

import (
	"errors"
	"io/fs"
	"os"
)

// The audit runs on Linux only (Open refuses other systems); these stubs keep
// the package building elsewhere.

func statOf(fs.FileInfo) (statT, bool) { return statT{}, false }

func xattrs(*os.Root, string) (map[string]string, error) {
	return nil, errors.New("xattrs: unsupported on this system")
}

func procUsable() bool { return false }

func seesTrustedXattrs() bool { return os.Geteuid() == 0 }
