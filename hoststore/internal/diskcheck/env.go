package diskcheck

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"sync"
	"syscall"

	"github.com/layercheck/layercheck/report"
	"golang.org/x/sync/errgroup"
)

// Checks are the check IDs a store's audit files the comparison's findings
// under: each store kind has its own (host-… for Docker, cs-… for
// containers-storage).
type Checks struct {
	FileCRC         report.Check // a file's CRC-64 or length differs from tar-split's record
	MissingFile     report.Check // a tar entry is absent from the directory
	UnsafePath      report.Check // a name or symlink leads out of the layer root
	TarSplit        report.Check // tar-split is corrupt or lists a path twice
	NotReproducible report.Check // entries tar-split cannot rebuild (benign)
	LayerTar        report.Check // the rebuilt stream is not a readable tar
	Lstat           report.Check // a header differs from lstat of its path
	Whiteout        report.Check // whiteouts and opaque markers vs the tar
	ExtraFile       report.Check // an entry on disk the tar lacks
}

// Layout says how a graph driver keeps a layer's files.
type Layout struct {
	// Overlay: each layer directory holds only the layer's own entries
	// (overlay2, fuse-overlayfs, containers-storage's overlay).
	Overlay bool
	// OverlayWhiteouts: whiteouts are 0/0 character devices and opaque
	// directories carry an overlay opaque xattr (not fuse-overlayfs).
	OverlayWhiteouts bool
	// FullRoot: each layer directory holds the complete rootfs of its
	// chain (vfs, btrfs, zfs).
	FullRoot bool
}

// Env is what stays the same for every layer of one audit.
type Env struct {
	Checks Checks
	Layout Layout
	// Product names the tool whose behaviour messages describe ("Docker",
	// "containers-storage").
	Product string
	// MaxPer bounds the findings of one check on one layer (0: 50).
	MaxPer int
	// Privileged: running as root, so trusted.* xattrs are visible.
	Privileged bool
	// XattrOK: /proc/self/fd resolves descriptors (see ProcUsable).
	XattrOK bool
	// Problem records something that could not be checked.
	Problem func(subj report.Subject, format string, args ...any)
	// DriverDir names the driver's directory in the one problem saying
	// opaque markers were not checked without root.
	DriverDir string

	unprivOnce sync.Once
	memoOnce   sync.Once
	memo       *chainMemo
}

func (e *Env) maxPer() int {
	if e.MaxPer <= 0 {
		return 50
	}
	return e.MaxPer
}

func (e *Env) product() string {
	if e.Product == "" {
		return "the store"
	}
	return e.Product
}

func (e *Env) problem(subj report.Subject, format string, args ...any) {
	if e.Problem != nil {
		e.Problem(subj, format, args...)
	}
}

func (e *Env) notPrivileged() {
	e.unprivOnce.Do(func() {
		e.problem(report.Subject{Path: e.DriverDir}, "not running with CAP_SYS_ADMIN (not root, or root with capabilities dropped): trusted.* xattrs (overlay's opaque markers) are invisible, so opaque directories were not checked")
	})
}

// Finding builds a finding with the check's registered severity.
func Finding(check report.Check, subj report.Subject, msg string, args ...any) report.Finding {
	return report.Finding{Check: check, Severity: report.SeverityOf(check), Subject: subj, Message: fmt.Sprintf(msg, args...)}
}

// With sets a finding's expected and actual values.
func With(f report.Finding, want, got string) report.Finding {
	f.Expected, f.Actual = want, got
	return f
}

func finding(check report.Check, subj report.Subject, msg string, args ...any) report.Finding {
	return Finding(check, subj, msg, args...)
}

func with(f report.Finding, want, got string) report.Finding { return With(f, want, got) }

// FindingList collects the findings of one image or layer: duplicates (same
// check, entry and message) are dropped, and past max findings of one check
// the rest are only counted.
type FindingList struct {
	list    []report.Finding
	perKind map[report.Check]int
	seen    map[string]bool
	over    map[report.Check]*report.Finding
	overN   map[report.Check]int
}

// Add records f unless it repeats one already held or its check is over max.
func (l *FindingList) Add(max int, f report.Finding) {
	if l.seen == nil {
		l.seen, l.perKind = map[string]bool{}, map[report.Check]int{}
		l.over, l.overN = map[report.Check]*report.Finding{}, map[report.Check]int{}
	}
	key := string(f.Check) + "\x00" + f.Subject.Entry + "\x00" + f.Subject.Path + "\x00" + f.Message
	if l.seen[key] {
		return
	}
	l.seen[key] = true
	if l.perKind[f.Check] >= max {
		l.overN[f.Check]++
		if l.over[f.Check] == nil || f.Severity > l.over[f.Check].Severity {
			c := f
			l.over[f.Check] = &c
		}
		return
	}
	l.perKind[f.Check]++
	l.list = append(l.list, f)
}

// All returns the findings, with one summary finding per check that went
// over the limit.
func (l *FindingList) All() []report.Finding {
	out := append([]report.Finding(nil), l.list...)
	checks := make([]string, 0, len(l.over))
	for c := range l.over {
		checks = append(checks, string(c))
	}
	sort.Strings(checks)
	for _, c := range checks {
		f := *l.over[report.Check(c)]
		f.Subject.Entry = ""
		f.Expected, f.Actual = "", ""
		f.Message = fmt.Sprintf("%d more %s findings here (only the first %d are listed)", l.overN[report.Check(c)], c, l.perKind[report.Check(c)])
		out = append(out, f)
	}
	return out
}

// Len is the number of findings held (not counting those over the limit).
func (l *FindingList) Len() int { return len(l.list) }

// SortedKeys returns the keys of m, sorted.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ErrNotRegular: a metadata path is not a regular file (a directory, a
// symlink, a FIFO or a device).
var ErrNotRegular = fmt.Errorf("not a regular file")

// OpenRegular opens the regular file p inside r read-only. The path is
// checked with lstat first, so a symlink or special file is refused without
// being opened; O_NONBLOCK keeps a file swapped for a FIFO in the meantime
// from blocking, and the opened file is checked again.
func OpenRegular(r *os.Root, p string) (*os.File, error) {
	fi, err := r.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", p, ErrNotRegular, TypeName(fi.Mode()))
	}
	f, err := r.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi2, err := f.Stat()
	if err != nil || !fi2.Mode().IsRegular() || !os.SameFile(fi, fi2) {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s: %w (changed while opening)", p, ErrNotRegular)
		}
		return nil, err
	}
	return f, nil
}

// ErrTooLarge: a metadata file exceeds the limit it is read with.
var ErrTooLarge = fmt.Errorf("file too large")

// ReadRegular reads the regular file p inside r, at most max bytes.
func ReadRegular(r *os.Root, p string, max int64) ([]byte, error) {
	f, err := OpenRegular(r, p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w (over %d bytes)", p, ErrTooLarge, max)
	}
	return data, nil
}

func typeName(m fs.FileMode) string { return TypeName(m) }

// HumanSize renders a byte count: "12.3 MiB (12897484 bytes)".
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTPE"[exp], n)
}

// DuSize is the size of the directory start inside root as du counts
// apparent sizes: non-directories with size > 0, each inode once. It does
// not cross into other mounted filesystems (a container's merged/ view).
func DuSize(root *os.Root, start string) int64 {
	var total int64
	var dev uint64
	inodes := map[uint64]bool{}
	_ = fs.WalkDir(root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, _ := StatOf(fi)
		if p == start {
			dev = st.Dev
		} else if st.Dev != dev {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && fi.Size() > 0 && (st.Nlink <= 1 || !inodes[st.Ino]) {
			total += fi.Size()
			if st.Nlink > 1 {
				inodes[st.Ino] = true
			}
		}
		return nil
	})
	return total
}

func sortedKeys[V any](m map[string]V) []string { return SortedKeys(m) }

// ReadDir lists the directory p inside r, sorted by name; name names it in
// errors. A missing directory gives an error matching fs.ErrNotExist, a
// symlink or file in its place is refused.
func ReadDir(r *os.Root, p, name string) ([]fs.DirEntry, error) {
	fi, err := r.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory (%s)", name, TypeName(fi.Mode()))
	}
	f, err := r.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	if err != nil {
		return ents, fmt.Errorf("listing %s: %w", name, err)
	}
	return ents, nil
}

// Parallel runs fn on every item, jobs at a time (0: 1), and stops at the
// first error (cancellation): the layer pool of the store audits.
func Parallel[T any](ctx context.Context, jobs int, items []T, fn func(context.Context, T) error) error {
	if jobs <= 0 {
		jobs = 1
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(jobs)
	for _, it := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, it) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
