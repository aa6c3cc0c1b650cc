package harness

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Copy is a private copy of a store, layout or archive, made by Env.Corrupt.
// Its methods change the copy only: every path they take is relative to the
// copy and may not leave it.
type Copy struct {
	Path string // the copy of the source (a directory or a file)
	Src  string // what was copied; never written

	dir string // the directory holding Path
}

// CopyStore copies src (a Docker data root, a containerd root, a registry
// storage tree, an OCI layout, an archive file) with `cp -a --one-file-system`,
// keeping xattrs (overlay opaque markers), device nodes (overlay whiteouts),
// hardlinks, owners, modes and times, and without descending into mounts
// (running containers' merged directories); btrfs subvolumes, which cp takes
// for other filesystems, are copied too (copySubvolumes). The source is only read. The copy
// lives under Root/work/copies and goes away with the Env.
func (e *Env) CopyStore(ctx context.Context, src string) (*Copy, error) {
	src, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(src); err != nil {
		return nil, fmt.Errorf("copying store: %w", err)
	}
	e.mu.Lock()
	e.copies++
	n := e.copies
	e.mu.Unlock()
	dir := e.Path("work", "copies", fmt.Sprintf("%03d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	dst := filepath.Join(dir, filepath.Base(src))
	// --preserve=all fails loudly where -a alone would not diagnose a lost
	// xattr; sparse files stay sparse.
	_, err = e.Run(ctx, Cmd{Argv: []string{"cp", "-a", "--one-file-system", "--preserve=all", "--sparse=always", "--", src, dst}, Timeout: 10 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("copying %s: %w", src, err)
	}
	if err := e.copySubvolumes(ctx, src, dst); err != nil {
		return nil, err
	}
	return &Copy{Path: dst, Src: src, dir: dir}, nil
}

// copySubvolumes fills in the btrfs subvolumes below src that
// `cp --one-file-system` left empty: each subvolume has a device number of its
// own, so cp takes it for another filesystem and copies only the directory.
// The btrfs storage driver keeps every layer in a subvolume
// (btrfs/subvolumes/<cache-id>). Real mount points are still not entered. It
// does nothing when src is not on btrfs.
func (e *Env) copySubvolumes(ctx context.Context, src, dst string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(src, &sfs); err != nil || sfs.Type != unix.BTRFS_SUPER_MAGIC {
		return nil
	}
	mounts, err := MountsUnder(src)
	if err != nil {
		return err
	}
	isMount := map[string]bool{}
	for _, m := range mounts {
		if m != src {
			isMount[m] = true
		}
	}
	var subvols []string // parents before children (WalkDir order)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || p == src {
			return nil
		}
		var st, parent unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if err := unix.Lstat(filepath.Dir(p), &parent); err != nil {
			return err
		}
		switch {
		case st.Dev == parent.Dev:
			// Same device: cp copied it, even through a bind mount of the
			// same filesystem (dockerd's btrfs driver makes its home,
			// <data-root>/btrfs, a private bind mount of itself).
		case isMount[p]:
			return filepath.SkipDir // another filesystem: cp skipped it, so do we
		default:
			subvols = append(subvols, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finding btrfs subvolumes below %s: %w", src, err)
	}
	for _, sv := range subvols {
		rel, _ := filepath.Rel(src, sv)
		// "sv/." into the existing empty directory: its contents and its own
		// mode, owner, times and xattrs.
		_, err := e.Run(ctx, Cmd{Argv: []string{"cp", "-a", "--one-file-system", "--preserve=all", "--sparse=always", "--", sv + "/.", filepath.Join(dst, rel)}, Timeout: 10 * time.Minute})
		if err != nil {
			return fmt.Errorf("copying btrfs subvolume %s: %w", sv, err)
		}
	}
	return nil
}

// Corrupt copies src like CopyStore for a test and removes the copy when the
// test ends. The test fails at once if the copy cannot be made.
func (e *Env) Corrupt(t testing.TB, src string) *Copy {
	t.Helper()
	c, err := e.CopyStore(context.Background(), src)
	if err != nil {
		t.Fatalf("Corrupt(%s): %v", src, err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(c.dir); err != nil {
			t.Errorf("removing copy %s: %v", c.dir, err)
		}
	})
	return c
}

// File returns the absolute path of rel inside the copy ("" or "." is the
// copy itself). It refuses paths that leave the copy.
func (c *Copy) File(rel string) (string, error) {
	if rel == "" || rel == "." {
		return c.Path, nil
	}
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%q is not a local path inside the copy", rel)
	}
	p := filepath.Join(c.Path, rel)
	// No symlink on the way may lead out of the copy either.
	real, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return "", err
	}
	base, err := filepath.EvalSymlinks(c.Path)
	if err != nil {
		return "", err
	}
	if !within(base, real) {
		return "", fmt.Errorf("%q resolves outside the copy", rel)
	}
	return p, nil
}

// FlipByte XORs the byte at offset with 0xff; a negative offset counts from
// the end (-1 is the last byte).
func (c *Copy) FlipByte(rel string, offset int64) error {
	p, err := c.File(rel)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if offset < 0 {
		offset += st.Size()
	}
	if offset < 0 || offset >= st.Size() {
		return fmt.Errorf("offset %d outside %s (%d bytes)", offset, rel, st.Size())
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, offset); err != nil {
		return err
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, offset); err != nil {
		return err
	}
	return f.Close()
}

// Truncate cuts rel to size bytes; a negative size removes that many bytes
// from the end.
func (c *Copy) Truncate(rel string, size int64) error {
	p, err := c.File(rel)
	if err != nil {
		return err
	}
	if size < 0 {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		size += st.Size()
		if size < 0 {
			size = 0
		}
	}
	return os.Truncate(p, size)
}

// Remove deletes rel (a file or a whole directory) from the copy.
func (c *Copy) Remove(rel string) error {
	if rel == "" || rel == "." {
		return errors.New("refusing to remove the whole copy")
	}
	p, err := c.File(rel)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(p); err != nil {
		return err
	}
	return os.RemoveAll(p)
}

// WriteFile replaces the content of rel (creating it if needed), keeping its
// mode when it exists.
func (c *Copy) WriteFile(rel string, data []byte) error {
	p, err := c.File(rel)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Lstat(p); err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", rel)
		}
		mode = st.Mode().Perm()
	}
	return os.WriteFile(p, data, mode)
}

// Rewrite replaces the content of rel with edit(content).
func (c *Copy) Rewrite(rel string, edit func([]byte) []byte) error {
	p, err := c.File(rel)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	return c.WriteFile(rel, edit(b))
}

// Glob returns the paths inside the copy, relative to it, that match pattern
// (filepath.Match syntax, relative to the copy).
func (c *Copy) Glob(pattern string) ([]string, error) {
	if !filepath.IsLocal(pattern) {
		return nil, fmt.Errorf("%q is not a local pattern", pattern)
	}
	m, err := filepath.Glob(filepath.Join(c.Path, pattern))
	if err != nil {
		return nil, err
	}
	for i := range m {
		m[i] = strings.TrimPrefix(m[i], c.Path+string(filepath.Separator))
	}
	return m, nil
}

// TarMember finds member in the tar file rel of the copy and returns the
// offset and size of its data, so that a test can corrupt the content of one
// layer of a `docker save` without touching any header.
func (c *Copy) TarMember(rel, member string) (offset, size int64, err error) {
	p, err := c.File(rel)
	if err != nil {
		return 0, 0, err
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return 0, 0, fmt.Errorf("no member %q in %s", member, rel)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("reading %s: %w", rel, err)
		}
		if h.Name == member {
			return cr.n, h.Size, nil
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
