package source

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// RealPath returns p absolute with every symlink resolved.
func RealPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// ReadSmallFile reads a regular file whole, refusing more than limit bytes.
// It checks the file type before opening it, so a FIFO cannot block it.
func ReadSmallFile(p string, limit int64) ([]byte, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", p, st.Mode().Type())
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, limit, p)
}

// OpenDir checks that dir is a directory and returns its real path (every
// symlink resolved), to confine what is read below it. what names the kind
// of directory in errors ("OCI layout").
func OpenDir(dir, what string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", what, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("opening %s %s: not a directory: %w", what, dir, ErrUnsupported)
	}
	root, err := RealPath(dir)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", what, err)
	}
	return root, nil
}

// Within reports whether p is root or below it (both cleaned, absolute or not alike).
func Within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}

// ConfinedFile returns the file rel of the directory dir (whose real path is
// root, and which messages call what: "the layout") as a blob with key k, when it is a regular file that resolves inside
// root. An absent file, a directory or another non-regular file gives an
// error wrapping ErrNotFound; a symlink leaving root gives another error.
func ConfinedFile(dir, root, rel, k, what string) (*FileBlob, error) {
	p := filepath.Join(dir, rel)
	resolved, err := RealPath(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, NotFoundf("%s: absent from %s", filepath.ToSlash(rel), what)
		}
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if !Within(root, resolved) {
		return nil, fmt.Errorf("%s resolves to %s, outside %s; not followed", filepath.ToSlash(rel), resolved, what)
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	switch {
	case st.IsDir():
		return nil, NotFoundf("%s is a directory where a blob belongs", filepath.ToSlash(rel))
	case !st.Mode().IsRegular():
		return nil, NotFoundf("%s is not a regular file (%s)", filepath.ToSlash(rel), st.Mode().Type())
	}
	return &FileBlob{K: k, Path: p, N: st.Size()}, nil
}
