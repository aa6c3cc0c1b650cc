package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// MountsUnder returns the mount points at or below dir, deepest first, as
// /proc/self/mountinfo lists them.
func MountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	defer f.Close()
	return parseMountsUnder(bufio.NewScanner(f), filepath.Clean(dir))
}

func parseMountsUnder(sc *bufio.Scanner, dir string) ([]string, error) {
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	seen := map[string]bool{}
	var out []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if within(dir, mp) && !seen[mp] {
			seen[mp] = true
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := strings.Count(out[i], "/"), strings.Count(out[j], "/")
		if di != dj {
			return di > dj
		}
		return out[i] > out[j]
	})
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// UnmountUnder unmounts every mount at or below dir, deepest first: overlay
// mounts of containers, the data root's own bind mount, network namespace
// files. A mount that is busy is detached lazily. The same mount point may be
// stacked several times; it loops until mountinfo shows none.
func UnmountUnder(dir string) error {
	var errs []error
	for round := 0; round < 10; round++ {
		mps, err := MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, mp := range mps {
			if err := unix.Unmount(mp, 0); err != nil {
				if err2 := unix.Unmount(mp, unix.MNT_DETACH); err2 != nil && !errors.Is(err2, unix.EINVAL) && !errors.Is(err2, unix.ENOENT) {
					errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err2))
				}
			}
		}
	}
	if mps, _ := MountsUnder(dir); len(mps) > 0 {
		errs = append(errs, fmt.Errorf("still mounted: %v", mps))
	}
	return errors.Join(errs...)
}

// ProbeOverlay reports whether the kernel can mount overlayfs with its upper
// directory on the filesystem of dir (what dockerd's overlay2 driver and
// containerd's overlayfs snapshotter need). It mounts a tiny overlay below dir
// and unmounts it again.
func ProbeOverlay(dir string) error {
	p, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(p)
	lower, upper, work, merged := filepath.Join(p, "l"), filepath.Join(p, "u"), filepath.Join(p, "w"), filepath.Join(p, "m")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "f"), []byte("lower"), 0o644); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting overlay on %s: %w", dir, err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	// A whiteout in the upper dir must hide the lower file: that is what
	// overlay2 layers rely on.
	if err := os.Remove(filepath.Join(merged, "f")); err != nil {
		return fmt.Errorf("removing through the overlay: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "f"), &st); err != nil {
		return fmt.Errorf("overlay wrote no whiteout: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("overlay whiteout is not a character device (mode %o)", st.Mode)
	}
	if err := unix.Unmount(merged, 0); err != nil {
		return fmt.Errorf("unmounting the overlay probe: %w", err)
	}
	return nil
}
