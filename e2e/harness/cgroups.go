package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// cgroupName is the cgroup parent of a dockerd's containers: one per Env and
// driver, so that teardown removes exactly the cgroups the Env's containers
// used (dockerd's default parent, /docker, is shared and stays behind).
func (e *Env) cgroupName(driver string) string {
	return sanitize(filepath.Base(e.Root)) + "-" + driver
}

// recordCgroup notes a cgroup parent in Root/cgroups for Reap.
func (e *Env) recordCgroup(name string) error {
	e.mu.Lock()
	e.cgroups = append(e.cgroups, name)
	list := strings.Join(e.cgroups, "\n") + "\n"
	e.mu.Unlock()
	return os.WriteFile(filepath.Join(e.Root, "cgroups"), []byte(list), 0o644)
}

// cgroupMounts lists the mount points of the cgroup hierarchies (v1 and v2).
func cgroupMounts() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fs := strings.Fields(post)
		f := strings.Fields(pre)
		if len(fs) > 0 && (fs[0] == "cgroup" || fs[0] == "cgroup2") && len(f) >= 5 {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out, sc.Err()
}

// removeCgroups removes the cgroup parent name, with every cgroup below it,
// from every hierarchy, deepest first. A cgroup that still has processes
// cannot be removed and is reported.
func removeCgroups(name string) error {
	if name == "" || strings.Contains(name, "/") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("refusing to remove cgroup %q", name)
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		top := filepath.Join(m, name)
		var dirs []string
		err := filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
