// Package storetest is the conformance suite every store.Store backend
// passes, in the manner of containerd's content testsuite: one set of claims
// (listing, lookup by name, ID and prefix, a clean audit of a clean store,
// nothing written under the root, rebuilt layers hashing to their diffIDs)
// run against each backend on stores its own builder lays out and on captures
// of real stores. It is imported only by tests.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Case is one store to run the suite on.
type Case struct {
	// Name names the case in subtests.
	Name string
	// Kind is the kind the store must say it is.
	Kind store.Kind
	// Root is the store's root directory (hashed before and after).
	Root string
	// Open opens the store with the given options (called several times).
	Open func(t *testing.T, opts store.Options) store.Store
	// Images are the images the store must list, by ID, with at least
	// the names and diffIDs given here. Other images may exist.
	Images []store.Image
	// AllowFindings are check IDs a clean audit may report at warning or
	// info severity (a real capture's dangling images, for example).
	AllowFindings []report.Check
}

// Run runs the conformance suite on c.
func Run(t *testing.T, c Case) {
	t.Helper()
	ctx := context.Background()
	before := TreeHash(t, c.Root)

	t.Run(c.Name+"/kind", func(t *testing.T) {
		s := c.Open(t, store.Options{})
		defer s.Close()
		if s.Kind() != c.Kind {
			t.Errorf("Kind() = %q, want %q", s.Kind(), c.Kind)
		}
		if !strings.Contains(s.String(), s.Root()) {
			t.Errorf("String() = %q does not name the root %q", s.String(), s.Root())
		}
	})

	t.Run(c.Name+"/images", func(t *testing.T) {
		s := c.Open(t, store.Options{})
		defer s.Close()
		got, err := s.Images(ctx)
		if err != nil {
			t.Fatalf("Images: %v", err)
		}
		byID := map[digest.Digest]store.Image{}
		for _, im := range got {
			byID[im.ID] = im
			checkChain(t, im)
		}
		for _, want := range c.Images {
			im, ok := byID[want.ID]
			if !ok {
				t.Errorf("Images() lacks %s (%v)", want.ID, want.Names)
				continue
			}
			for _, n := range want.Names {
				if !contains(im.Names, n) {
					t.Errorf("image %s: Names = %v, want %q among them", want.ID, im.Names, n)
				}
			}
			if len(want.Layers) > 0 {
				if len(im.Layers) != len(want.Layers) {
					t.Errorf("image %s: %d layers, want %d", want.ID, len(im.Layers), len(want.Layers))
					continue
				}
				for i, l := range want.Layers {
					if l.DiffID != "" && im.Layers[i].DiffID != l.DiffID {
						t.Errorf("image %s layer %d: diffID %s, want %s", want.ID, i, im.Layers[i].DiffID, l.DiffID)
					}
					if l.Digest != "" && im.Layers[i].Digest != l.Digest {
						t.Errorf("image %s layer %d: digest %s, want %s", want.ID, i, im.Layers[i].Digest, l.Digest)
					}
				}
			}
		}
	})

	t.Run(c.Name+"/lookup", func(t *testing.T) {
		s := c.Open(t, store.Options{})
		defer s.Close()
		for _, want := range c.Images {
			queries := append([]string{want.ID.String(), want.ID.Encoded()[:12]}, want.Names...)
			for _, q := range queries {
				im, err := s.Lookup(ctx, q)
				if err != nil {
					t.Errorf("Lookup(%q): %v", q, err)
					continue
				}
				if im.ID != want.ID {
					t.Errorf("Lookup(%q).ID = %s, want %s", q, im.ID, want.ID)
				}
				checkChain(t, *im)
			}
		}
		if _, err := s.Lookup(ctx, "no-such-image-here:never"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Lookup of a missing image: err = %v, want store.ErrNotFound", err)
		}
	})

	t.Run(c.Name+"/audit-clean", func(t *testing.T) {
		s := c.Open(t, store.Options{Jobs: 2})
		defer s.Close()
		b := &report.Builder{}
		if err := s.Audit(ctx, b); err != nil {
			t.Fatalf("Audit: %v", err)
		}
		rep := b.Finish("host", s.String(), "test")
		for _, p := range rep.Problems {
			t.Errorf("problem on a clean store: %s: %s", p.Subject, p.Message)
		}
		for _, f := range rep.Findings {
			if f.Severity == report.Error || (f.Severity == report.Warning && !containsCheck(c.AllowFindings, f.Check)) {
				t.Errorf("finding on a clean store: %s %s %s: %s", f.Severity, f.Check, f.Subject, f.Message)
			}
		}
		ids := map[string]bool{}
		for _, im := range rep.Images {
			ids[im.ConfigDigest] = true
		}
		for _, want := range c.Images {
			if !ids[want.ID.String()] {
				t.Errorf("the audit's report lists no image %s", want.ID)
			}
		}
	})

	t.Run(c.Name+"/audit-cold", func(t *testing.T) {
		// From a cold page cache the host audits read ahead (the files a
		// layer rebuild comes to next): the report must not change.
		audit := func() string {
			s := c.Open(t, store.Options{Jobs: 2})
			defer s.Close()
			b := &report.Builder{}
			if err := s.Audit(ctx, b); err != nil {
				t.Fatalf("Audit: %v", err)
			}
			return ReportText(b.Finish("host", s.String(), "test"))
		}
		warm := audit()
		if !EvictPageCache(t, c.Root) {
			t.Skip("the page cache of this filesystem cannot be dropped file by file (posix_fadvise DONTNEED): no cold audit to compare")
		}
		if cold := audit(); cold != warm {
			t.Errorf("the audit from a cold page cache differs:\n--- warm\n%s--- cold\n%s", warm, cold)
		}
	})

	t.Run(c.Name+"/audit-selected", func(t *testing.T) {
		if len(c.Images) == 0 {
			t.Skip("no image to select")
		}
		want := c.Images[0]
		sel := want.ID.String()
		if len(want.Names) > 0 {
			sel = want.Names[0]
		}
		s := c.Open(t, store.Options{Images: []string{sel}, Jobs: 2})
		defer s.Close()
		b := &report.Builder{}
		if err := s.Audit(ctx, b); err != nil {
			t.Fatalf("Audit: %v", err)
		}
		rep := b.Finish("host", s.String(), "test")
		found := false
		for _, im := range rep.Images {
			found = found || im.ConfigDigest == want.ID.String()
		}
		if !found {
			t.Errorf("a selected audit of %s does not report it", want.ID)
		}
	})

	t.Run(c.Name+"/layers", func(t *testing.T) {
		s := c.Open(t, store.Options{})
		defer s.Close()
		lr, ok := s.(store.LayerReader)
		if !ok {
			t.Skip("the store gives no layer streams")
		}
		for _, want := range c.Images {
			im, err := s.Lookup(ctx, want.ID.String())
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			for i, l := range im.Layers {
				if !l.Present {
					continue
				}
				rc, err := lr.OpenLayer(ctx, l.ChainID)
				if err != nil {
					t.Errorf("OpenLayer(%s) (image %s layer %d): %v", l.ChainID, im.ID, i, err)
					continue
				}
				h := sha256.New()
				_, err = io.Copy(h, rc)
				rc.Close()
				if err != nil {
					t.Errorf("reading layer %d of %s: %v", i, im.ID, err)
					continue
				}
				if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != l.DiffID {
					t.Errorf("layer %d of %s: stream hashes to %s, want diffID %s", i, im.ID, got, l.DiffID)
				}
			}
		}
	})

	t.Run(c.Name+"/read-only", func(t *testing.T) {
		after := TreeHash(t, c.Root)
		if d := diff(before, after); d != "" {
			t.Errorf("the store changed under the suite:\n%s", d)
		}
	})
}

// checkChain checks that an image's chainIDs are those of its diffIDs.
func checkChain(t *testing.T, im store.Image) {
	t.Helper()
	var diffIDs []digest.Digest
	for _, l := range im.Layers {
		diffIDs = append(diffIDs, l.DiffID)
	}
	for i, c := range verify.ChainIDs(diffIDs) {
		if im.Layers[i].ChainID != c {
			t.Errorf("image %s layer %d: chainID %s, want %s", im.ID, i, im.Layers[i].ChainID, c)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsCheck(list []report.Check, c report.Check) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// Diff lists the lines of two TreeHash results that differ ("- " only in
// a, "+ " only in b); "" when they are equal.
func Diff(a, b []string) string { return diff(a, b) }

func diff(a, b []string) string {
	in := map[string]int{}
	for _, x := range a {
		in[x]++
	}
	for _, x := range b {
		in[x]--
	}
	var out []string
	for k, v := range in {
		switch {
		case v > 0:
			out = append(out, "- "+k)
		case v < 0:
			out = append(out, "+ "+k)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TreeHash describes every path under root: type, mode, owner, size,
// mtime, device, link count, symlink target, content hash and xattrs. Two
// equal results mean nothing under root was written, renamed or touched.
func TreeHash(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d mtime=%d.%09d rdev=%d nlink=%d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Rdev, st.Nlink)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" sha256=%x", h.Sum(nil))
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			line += xattrs(p)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("hashing the tree %s: %v", root, err)
	}
	sort.Strings(out)
	return out
}

func xattrs(p string) string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	keys := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
	sort.Strings(keys)
	var s strings.Builder
	for _, k := range keys {
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			continue
		}
		fmt.Fprintf(&s, " xattr:%s=%q", k, v[:m])
	}
	return s.String()
}

// ReportText is a report's findings and problems, one per line, in the
// report's order: two audits of the same store compare equal.
func ReportText(r *report.Report) string {
	var b strings.Builder
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "%s %s [%s] %s (expected %q, actual %q)\n", f.Severity, f.Check, f.Subject, f.Message, f.Expected, f.Actual)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM [%s] %s\n", p.Subject, p.Message)
	}
	return b.String()
}

// EvictPageCache drops the cached pages of every regular file under root
// (fdatasync, then posix_fadvise DONTNEED: nothing under root changes), so
// that the next reads come from the disk, as after a reboot. It reports
// whether that worked here: false where the filesystem keeps its pages
// (tmpfs).
func EvictPageCache(t testing.TB, root string) bool {
	t.Helper()
	var sample string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if err := dropPages(p); err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && sample == "" && fi.Size() > 0 {
			sample = p
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dropping the page cache under %s: %v", root, err)
	}
	return sample != "" && Cold(t, sample)
}

// EvictFile drops the cached pages of the regular file p, as
// EvictPageCache does for a tree, and reports whether it is cold now.
func EvictFile(t testing.TB, p string) bool {
	t.Helper()
	if err := dropPages(p); err != nil {
		t.Fatal(err)
	}
	return Cold(t, p)
}

// dropPages writes back and drops the cached pages of the regular file p
// (fdatasync, posix_fadvise DONTNEED); its contents and times stay.
func dropPages(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fdatasync(fd); err != nil {
		return fmt.Errorf("fdatasync %s: %w", p, err)
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("fadvise %s: %w", p, err)
	}
	return nil
}

// Cold reports whether the first page of the file p is not in the page
// cache (mincore; a read with RWF_NOWAIT would start reading it).
func Cold(t testing.TB, p string) bool {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, 1, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	var vec [1]byte
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore %s: %v", p, e)
	}
	return vec[0]&1 == 0
}
