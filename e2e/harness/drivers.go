package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OptionalDrivers are the dockerd storage drivers the suite runs when this
// machine allows them: btrfs needs the kernel's btrfs, mkfs.btrfs and a loop
// device; fuse-overlayfs needs /dev/fuse and the fuse-overlayfs binary. When
// one is refused the suite logs why and runs without it.
var OptionalDrivers = []string{"btrfs", "fuse-overlayfs"}

// IsOptionalDriver reports whether driver is one of OptionalDrivers.
func IsOptionalDriver(driver string) bool {
	for _, d := range OptionalDrivers {
		if d == driver {
			return true
		}
	}
	return false
}

// btrfsImageSize is the size of the sparse loop file a btrfs dockerd's data
// root lives on; only the blocks written take space.
const btrfsImageSize = 2 << 30

// lookOptional finds an optional tool on PATH or in the sbin directories.
func lookOptional(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (install it with scripts/e2e-install.sh)", name)
}

// ProbeDriver reports whether dockerd can run the optional storage driver
// here, without starting it. fuse-overlayfs is probed by mounting a tiny
// overlay below dir (and unmounting it); btrfs by its tools and the kernel's
// list of filesystems (the loop mount itself is tried by StartDocker).
func (e *Env) ProbeDriver(driver, dir string) error {
	switch driver {
	case "btrfs":
		if _, err := lookOptional("mkfs.btrfs"); err != nil {
			return err
		}
		if err := kernelHasFS("btrfs"); err != nil {
			return err
		}
		if _, err := os.Stat("/dev/loop-control"); err != nil {
			return fmt.Errorf("no loop devices: %w", err)
		}
		return nil
	case "fuse-overlayfs":
		return e.probeFuseOverlay(dir)
	}
	return fmt.Errorf("storage driver %q is not optional", driver)
}

// kernelHasFS checks /proc/filesystems; a module that is not loaded yet may
// still load on mount, so an absent entry is not final, but it is what the
// suite can check without mounting.
func kernelHasFS(fs string) error {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return fmt.Errorf("reading /proc/filesystems: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == fs {
			return nil
		}
	}
	return fmt.Errorf("the kernel lists no %s filesystem in /proc/filesystems", fs)
}

// probeFuseOverlay mounts a fuse-overlayfs with one lower file below dir,
// deletes the file through it and unmounts it again.
func (e *Env) probeFuseOverlay(dir string) error {
	bin, err := lookOptional("fuse-overlayfs")
	if err != nil {
		return err
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse: %w", err)
	}
	p, err := os.MkdirTemp(dir, "fuse-probe-")
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
	// fuse-overlayfs forks into the background once mounted.
	if _, err := e.Run(context.Background(), Cmd{Argv: []string{bin, "-o", opts, merged}, Timeout: 30 * time.Second}); err != nil {
		return fmt.Errorf("mounting fuse-overlayfs: %w", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	if err := os.Remove(filepath.Join(merged, "f")); err != nil {
		return fmt.Errorf("removing through fuse-overlayfs: %w", err)
	}
	if _, err := os.Stat(filepath.Join(merged, "f")); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fuse-overlayfs still shows a removed file (%v)", err)
	}
	if err := unix.Unmount(merged, 0); err != nil {
		return fmt.Errorf("unmounting the fuse-overlayfs probe: %w", err)
	}
	return nil
}

// mountBtrfs makes a sparse btrfs image file in dir, attaches it to a free
// loop device and mounts it at mountpoint. Teardown (and Reap) unmount it and
// detach every loop device whose backing file is below the Env's directory.
func (e *Env) mountBtrfs(dir, mountpoint string) error {
	mkfs, err := lookOptional("mkfs.btrfs")
	if err != nil {
		return err
	}
	img := filepath.Join(dir, "btrfs.img")
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("creating the btrfs image: %w", err)
	}
	err = f.Truncate(btrfsImageSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sizing the btrfs image %s: %w", img, err)
	}
	if _, err := e.Run(context.Background(), Cmd{Argv: []string{mkfs, "-q", img}, Timeout: 2 * time.Minute}); err != nil {
		return fmt.Errorf("mkfs.btrfs: %w", err)
	}
	if err := os.MkdirAll(mountpoint, 0o711); err != nil {
		return err
	}
	out, err := e.Run(context.Background(), Cmd{Argv: []string{"losetup", "--find", "--show", img}, Timeout: time.Minute})
	if err != nil {
		return fmt.Errorf("attaching %s to a loop device: %w", img, err)
	}
	loop := strings.TrimSpace(string(out))
	if err := unix.Mount(loop, mountpoint, "btrfs", 0, ""); err != nil {
		_ = detachLoop(loop)
		return fmt.Errorf("mounting btrfs from %s at %s: %w", loop, mountpoint, err)
	}
	return nil
}

// LoopsUnder returns the loop devices (/dev/loopN) whose backing file is at
// or below dir.
func LoopsUnder(dir string) []string {
	dir = filepath.Clean(dir)
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		back := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
		if within(dir, back) {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return out
}

// LoopsGoneUnder waits up to timeout for the loop devices on files below
// dir to go, and returns those still there: the kernel releases a detached
// device asynchronously once its last user has closed it, which on a busy
// machine takes a moment after the unmount.
func LoopsGoneUnder(dir string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		l := LoopsUnder(dir)
		if len(l) == 0 || time.Now().After(deadline) {
			return l
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// DetachLoopsUnder detaches every loop device whose backing file is below
// dir. Their filesystems must be unmounted first (UnmountUnder); a device
// still in use is detached by the kernel when its last user goes
// (LOOP_CLR_FD sets autoclear then).
func DetachLoopsUnder(dir string) error {
	var errs []error
	for _, l := range LoopsUnder(dir) {
		if err := detachLoop(l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func detachLoop(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("opening %s: %w", dev, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detaching %s: %w", dev, err)
	}
	return nil
}

// LookTool finds an optional tool (umoci, ...) on PATH or in the system
// binary directories.
func LookTool(name string) (string, error) { return lookOptional(name) }
