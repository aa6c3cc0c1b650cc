package harness

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure an Env.
type Options struct {
	// Dir is the directory the Env owns. Empty: a new directory under
	// os.TempDir(). The environment variable LAYERCHECK_E2E_WORKDIR overrides
	// it (the Makefile sets it so that it can reap the directory after a crash).
	Dir string
	// Keep leaves the directory in place on Close (daemons are still stopped
	// and mounts removed), for debugging; LAYERCHECK_E2E_KEEP=1 sets it.
	Keep bool
	// Logf receives progress messages. Nil: os.Stderr.
	Logf func(format string, args ...any)
}

// Tools are the absolute paths of the programs the harness runs.
type Tools struct {
	Dockerd    string // dockerd from docker.io
	Docker     string // docker CLI; the one packaged with dockerd when present
	Containerd string
	Ctr        string
	Registry   string // docker-registry (distribution v2)
	Skopeo     string
	Runc       string
	Busybox    string // a statically linked busybox
}

// FindTools looks up every tool. The error lists all that are missing.
func FindTools() (Tools, error) {
	var t Tools
	var missing []string
	look := func(dst *string, names ...string) {
		for _, n := range names {
			if filepath.IsAbs(n) {
				if st, err := os.Stat(n); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					*dst = n
					return
				}
				continue
			}
			if p, err := exec.LookPath(n); err == nil {
				*dst, _ = filepath.Abs(p)
				return
			}
			for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
				p := filepath.Join(dir, n)
				if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
					*dst = p
					return
				}
			}
		}
		missing = append(missing, names[len(names)-1])
	}
	look(&t.Dockerd, "dockerd")
	// The Debian client matches the Debian daemon's API version; a newer
	// client elsewhere on PATH negotiates down, but prefer the packaged one.
	if c := os.Getenv("LAYERCHECK_E2E_DOCKER"); c != "" {
		look(&t.Docker, c)
	} else {
		look(&t.Docker, "/usr/bin/docker", "docker")
	}
	look(&t.Containerd, "containerd")
	look(&t.Ctr, "ctr")
	look(&t.Registry, "docker-registry")
	look(&t.Skopeo, "skopeo")
	look(&t.Runc, "runc")
	look(&t.Busybox, "/bin/busybox", "busybox")
	if t.Busybox != "" {
		if err := checkStatic(t.Busybox); err != nil {
			missing = append(missing, "busybox-static ("+err.Error()+")")
			t.Busybox = ""
		}
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("missing tools: %s (install them with scripts/e2e-install.sh)", strings.Join(missing, ", "))
	}
	return t, nil
}

// checkStatic fails if the ELF file at path asks for a dynamic loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// Env is one set of daemons and their files under one directory.
type Env struct {
	Root  string // the directory the Env owns
	Tools Tools

	opts       Options
	mu         sync.Mutex
	procs      []*Proc
	dockers    map[string]*Docker
	registry   *Registry
	containerd *Containerd
	copies     int
	runDirs    []string // directories outside Root that daemons create and the Env removes if it made them
	cgroups    []string // cgroup parents of the dockerds' containers

	closeOnce sync.Once
	closeErr  error
	sigCh     chan os.Signal
	stopSig   chan struct{}
}

// runtimeDirs are created by dockerd (plugin sockets) and containerd shims
// (shim sockets) at fixed places, whatever their roots are.
var runtimeDirs = []string{"/run/docker", "/run/containerd"}

// New creates the Env's directory, becomes a child subreaper (so orphaned
// shims and container processes can be reaped) and installs a SIGINT/SIGTERM
// handler that tears everything down. It must run as root.
func New(opts Options) (*Env, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the e2e harness must run as root (dockerd, containerd, mounts)")
	}
	tools, err := FindTools()
	if err != nil {
		return nil, err
	}
	if d := os.Getenv("LAYERCHECK_E2E_WORKDIR"); d != "" && opts.Dir == "" {
		opts.Dir = d
	}
	if os.Getenv("LAYERCHECK_E2E_KEEP") == "1" {
		opts.Keep = true
	}
	root := opts.Dir
	if root == "" {
		reapStale(os.TempDir())
		root, err = os.MkdirTemp("", "lce2e-")
		if err != nil {
			return nil, fmt.Errorf("creating the e2e directory: %w", err)
		}
	} else if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("creating the e2e directory: %w", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// Unix socket paths are limited to 107 bytes; the deepest one the harness
	// makes is about 50 bytes below Root.
	if len(root) > 50 {
		return nil, fmt.Errorf("e2e directory %s is too long for unix socket paths (max 50 bytes); set TMPDIR or LAYERCHECK_E2E_WORKDIR to a shorter path", root)
	}
	e := &Env{Root: root, Tools: tools, opts: opts, dockers: map[string]*Docker{}, stopSig: make(chan struct{})}
	for _, d := range []string{"logs", "pids", "tmp", "work"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, err
	}
	for _, d := range runtimeDirs {
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) {
			e.runDirs = append(e.runDirs, d)
		}
	}
	// Reap removes them too if this process dies.
	if err := os.WriteFile(filepath.Join(root, "rundirs"), []byte(strings.Join(e.runDirs, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := becomeSubreaper(); err != nil {
		e.logf("cannot become child subreaper (orphans go to pid 1): %v", err)
	}
	e.sigCh = make(chan os.Signal, 1)
	signal.Notify(e.sigCh, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case sig := <-e.sigCh:
			e.logf("received %v: stopping every daemon of %s", sig, e.Root)
			if err := e.Close(); err != nil {
				e.logf("teardown: %v", err)
			}
			code := 130
			if sig == syscall.SIGTERM {
				code = 143
			}
			os.Exit(code)
		case <-e.stopSig:
		}
	}()
	e.logf("e2e directory %s", root)
	return e, nil
}

func (e *Env) logf(format string, args ...any) {
	if e.opts.Logf != nil {
		e.opts.Logf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
}

// Logf writes a progress message through the Env's logger.
func (e *Env) Logf(format string, args ...any) { e.logf(format, args...) }

// Path joins elements below the Env's directory.
func (e *Env) Path(elem ...string) string {
	return filepath.Join(append([]string{e.Root}, elem...)...)
}

// WorkDir returns a new empty directory below Root/work for a test's files.
func (e *Env) WorkDir(name string) (string, error) {
	return os.MkdirTemp(e.Path("work"), sanitize(name)+"-")
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// baseEnv is the environment of every tool: the caller's, without anything
// that would point a client at another daemon or config.
func (e *Env) baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "DOCKER_"), strings.HasPrefix(k, "CONTAINERD_"),
			k == "TMPDIR", k == "XDG_RUNTIME_DIR", k == "REGISTRY_AUTH_FILE", k == "CONTAINERS_CONF":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "TMPDIR="+e.Path("tmp"))
}

// RunError is a failed tool run.
type RunError struct {
	Argv   []string
	Stderr string
	Err    error
}

func (r *RunError) Error() string {
	return fmt.Sprintf("running %s: %v: %s", strings.Join(r.Argv, " "), r.Err, strings.TrimSpace(r.Stderr))
}

func (r *RunError) Unwrap() error { return r.Err }

// ExitCode returns the exit status of the failed run, or -1.
func (r *RunError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(r.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// Cmd describes one tool run.
type Cmd struct {
	Argv    []string
	Env     []string  // added to the base environment
	Stdin   io.Reader // nil: empty
	Dir     string    // working directory; empty: Root
	Timeout time.Duration
}

// Run runs a tool to completion and returns its stdout. A failure returns a
// *RunError that carries stderr. The default timeout is 5 minutes.
func (e *Env) Run(ctx context.Context, c Cmd) ([]byte, error) {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(e.baseEnv(), c.Env...)
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = e.Root
	}
	cmd.Stdin = c.Stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, &RunError{Argv: c.Argv, Err: err}
	}
	track(cmd.Process.Pid, true)
	err := cmd.Wait()
	track(cmd.Process.Pid, false)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return stdout.Bytes(), &RunError{Argv: c.Argv, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// Close stops every daemon by its pid (Docker daemons first, after killing
// their running containers), kills any process left under Root, unmounts
// every mount below Root and removes Root (unless Options.Keep). It is safe to
// call more than once and from several goroutines; the first call does the
// work and every call returns its result. The error also reports anything
// that could not be cleaned up.
func (e *Env) Close() error {
	e.closeOnce.Do(func() {
		signal.Stop(e.sigCh)
		select {
		case <-e.stopSig:
		default:
			close(e.stopSig)
		}
		e.closeErr = e.teardown()
	})
	return e.closeErr
}

func (e *Env) teardown() error {
	var errs []error
	e.mu.Lock()
	dockers := make([]*Docker, 0, len(e.dockers))
	for _, d := range e.dockers {
		dockers = append(dockers, d)
	}
	reg, ctd := e.registry, e.containerd
	e.mu.Unlock()
	sort.Slice(dockers, func(i, j int) bool { return dockers[i].Driver < dockers[j].Driver })
	for _, d := range dockers {
		if err := d.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if ctd != nil {
		if err := ctd.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if reg != nil {
		if err := reg.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	// Anything the Env started and that is still up (a daemon whose start
	// failed half-way, for instance).
	e.mu.Lock()
	procs := append([]*Proc(nil), e.procs...)
	e.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if killed, err := killUnder(e.Root, 15*time.Second); err != nil {
		errs = append(errs, err)
	} else if len(killed) > 0 {
		for _, p := range killed {
			e.logf("killed leftover pid %d (%s): %s", p.Pid, p.Why, p.Cmdline)
		}
	}
	reapZombies()
	if err := UnmountUnder(e.Root); err != nil {
		errs = append(errs, err)
	} else if err := DetachLoopsUnder(e.Root); err != nil {
		errs = append(errs, err)
	}
	e.mu.Lock()
	cgroups := append([]string(nil), e.cgroups...)
	e.mu.Unlock()
	for _, cg := range cgroups {
		if err := removeCgroups(cg); err != nil {
			errs = append(errs, err)
		}
	}
	if left := ProcessesUnder(e.Root); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes left under %s: %v", e.Root, left))
	}
	if m, err := MountsUnder(e.Root); err == nil && len(m) > 0 {
		errs = append(errs, fmt.Errorf("mounts left under %s: %v", e.Root, m))
	}
	if l := LoopsGoneUnder(e.Root, 20*time.Second); len(l) > 0 {
		errs = append(errs, fmt.Errorf("loop devices left on files under %s: %v", e.Root, l))
	}
	if !e.opts.Keep && len(errs) == 0 {
		if err := os.RemoveAll(e.Root); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", e.Root, err))
		}
	} else if e.opts.Keep {
		e.logf("kept %s", e.Root)
	}
	for _, d := range e.runDirs {
		if err := removeEmptyTree(d); err != nil {
			e.logf("leaving %s: %v", d, err)
		}
	}
	return errors.Join(errs...)
}

// removeEmptyTree removes dir if it holds only directories.
func removeEmptyTree(dir string) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(files) > 0 {
		return fmt.Errorf("not empty: %v", files)
	}
	return os.RemoveAll(dir)
}

// Reap cleans up after an Env whose process died without closing it: it kills
// by pid every process under dir (daemons first, through their pidfiles),
// unmounts everything below dir and removes it. It reports what it had to
// clean; a nil slice means dir was already clean.
func Reap(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var did []string
	// Daemons first, gently, so that they unmount what they mounted.
	pidfiles, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	for _, pf := range pidfiles {
		b, err := os.ReadFile(pf)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		if !pidUnder(pid, dir) {
			continue // the pid was reused by something else
		}
		did = append(did, fmt.Sprintf("SIGTERM pid %d (%s)", pid, filepath.Base(pf)))
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if len(did) > 0 {
		// dockerd and containerd stop their children and unmount on SIGTERM.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			alive := false
			for _, pf := range pidfiles {
				b, _ := os.ReadFile(pf)
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pidUnder(pid, dir) {
					alive = true
				}
			}
			if !alive {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	killed, kerr := killUnder(dir, 15*time.Second)
	for _, p := range killed {
		did = append(did, fmt.Sprintf("SIGKILL pid %d (%s): %s", p.Pid, p.Why, p.Cmdline))
	}
	mounts, _ := MountsUnder(dir)
	for _, m := range mounts {
		did = append(did, "unmount "+m)
	}
	uerr := UnmountUnder(dir)
	// The btrfs dockerd's loop device, once its filesystem is unmounted.
	for _, l := range LoopsUnder(dir) {
		did = append(did, "detach "+l)
	}
	if uerr == nil {
		uerr = DetachLoopsUnder(dir)
	}
	var cgerrs []error
	if b, err := os.ReadFile(filepath.Join(dir, "cgroups")); err == nil {
		for _, cg := range strings.Fields(string(b)) {
			if mounts, _ := cgroupMounts(); len(mounts) > 0 {
				for _, m := range mounts {
					if _, err := os.Stat(filepath.Join(m, cg)); err == nil {
						did = append(did, "remove cgroup "+filepath.Join(m, cg))
					}
				}
			}
			cgerrs = append(cgerrs, removeCgroups(cg))
		}
	}
	var runDirs []string
	if b, err := os.ReadFile(filepath.Join(dir, "rundirs")); err == nil {
		runDirs = strings.Fields(string(b))
	}
	var rerr error
	if uerr == nil {
		rerr = os.RemoveAll(dir)
	}
	for _, d := range runDirs {
		if _, err := os.Lstat(d); err == nil {
			if removeEmptyTree(d) == nil {
				did = append(did, "removed "+d)
			}
		}
	}
	return did, errors.Join(append(cgerrs, kerr, uerr, rerr)...)
}

func pidUnder(pid int, dir string) bool {
	for _, p := range ProcessesUnder(dir) {
		if p.Pid == pid {
			return true
		}
	}
	return false
}

// reapStale reaps directories of earlier Envs under tmp whose owner process is
// gone (a test binary killed by a timeout, say).
func reapStale(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "lce2e-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // still running
		}
		did, err := Reap(d)
		for _, s := range did {
			fmt.Fprintf(os.Stderr, "e2e: stale %s: %s\n", d, s)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: reaping stale %s: %v\n", d, err)
		}
	}
}

// waitFor polls cond every 100ms until it returns nil, the process p exits,
// or the timeout passes.
func waitFor(timeout time.Duration, p *Proc, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = cond(); last == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before %s (%v); log %s:\n%s", p.Name, what, p.waitErr, p.LogPath, p.tail(3000))
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("timed out after %v waiting for %s: %v", timeout, what, last)
			if p != nil {
				msg += fmt.Sprintf("; log %s:\n%s", p.LogPath, p.tail(3000))
			}
			return errors.New(msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
