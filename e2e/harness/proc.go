package harness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a long-running process the Env started (a daemon). It is stopped by
// its pid: SIGTERM, then SIGKILL after its grace period.
type Proc struct {
	Name    string        // short name, used for its pid and log files
	Pid     int           // process id
	LogPath string        // stdout and stderr of the process
	Grace   time.Duration // how long Stop waits after SIGTERM

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	pidFile string // written by the harness
	log     *os.File
}

// startProc starts argv in its own process group with Pdeathsig, so that the
// daemon gets SIGTERM if the test binary dies before it could stop it.
func (e *Env) startProc(name string, argv []string, env []string, grace time.Duration) (*Proc, error) {
	logPath := filepath.Join(e.Root, "logs", name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log of %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.Env = append(e.baseEnv(), env...)
	cmd.Dir = e.Root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, argv[0], err)
	}
	p := &Proc{
		Name:    name,
		Pid:     cmd.Process.Pid,
		LogPath: logPath,
		Grace:   grace,
		cmd:     cmd,
		done:    make(chan struct{}),
		pidFile: filepath.Join(e.Root, "pids", name+".pid"),
		log:     lf,
	}
	track(p.Pid, true)
	go func() {
		p.waitErr = cmd.Wait()
		track(p.Pid, false)
		lf.Close()
		close(p.done)
	}()
	if err := os.WriteFile(p.pidFile, []byte(strconv.Itoa(p.Pid)+"\n"), 0o644); err != nil {
		e.logf("writing pidfile of %s: %v", name, err)
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process, waits up to its grace period, then sends
// SIGKILL. It returns an error if the process did not end.
func (p *Proc) Stop() error {
	if p.Exited() {
		os.Remove(p.pidFile)
		return nil
	}
	_ = syscall.Kill(p.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(p.Grace):
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.Pid)
		}
	}
	os.Remove(p.pidFile)
	return nil
}

// tail returns the last n bytes of the process log, for error messages.
func (p *Proc) tail(n int) string {
	return tailFile(p.LogPath, n)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ProcInfo describes a process found under an Env's directory.
type ProcInfo struct {
	Pid     int
	Cmdline string
	Why     string // which link ties it to the directory
}

// ProcessesUnder lists the processes that belong to an Env rooted at dir:
// those whose command line mentions dir or whose working directory or
// executable lies below it (daemons, shims), those in another mount namespace
// whose root mount comes from below dir (container processes, even orphaned
// ones), the descendants of all these, and orphans this process adopted as a
// subreaper.
func ProcessesUnder(dir string) []ProcInfo {
	dir = filepath.Clean(dir)
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	selfNS, _ := os.Readlink("/proc/self/ns/mnt")
	// Never this process nor its ancestors (a `go run` whose arguments name
	// the directory, the shell of a Makefile recipe).
	ancestors := map[int]bool{self: true}
	for p := os.Getppid(); p > 1 && !ancestors[p]; {
		ancestors[p] = true
		_, pp, ok := procStat(p)
		if !ok {
			break
		}
		p = pp
	}
	type proc struct {
		pid, ppid int
		cmdline   string
	}
	var all []proc
	why := map[int]string{}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || ancestors[pid] {
			continue
		}
		st, ppid, ok := procStat(pid)
		if !ok || st == 'Z' || st == 'X' {
			continue // zombies cannot be killed; reapZombies collects ours
		}
		base := filepath.Join("/proc", ent.Name())
		raw, err := os.ReadFile(filepath.Join(base, "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.TrimSpace(string(bytes.ReplaceAll(raw, []byte{0}, []byte{' '})))
		all = append(all, proc{pid, ppid, cmdline})
		switch {
		case strings.Contains(cmdline, dir+string(filepath.Separator)) || strings.HasSuffix(cmdline, dir):
			why[pid] = "command line"
		case ppid == self && !isTracked(pid):
			why[pid] = "orphan adopted by the harness"
		}
		for _, l := range []string{"cwd", "exe"} {
			if why[pid] != "" {
				break
			}
			if target, err := os.Readlink(filepath.Join(base, l)); err == nil && within(dir, target) {
				why[pid] = l + " " + target
			}
		}
		if why[pid] == "" {
			if ns, err := os.Readlink(filepath.Join(base, "ns", "mnt")); err == nil && ns != selfNS && rootMountUnder(pid, dir) {
				why[pid] = "container root below the directory"
			}
		}
	}
	// Descendants of what was found.
	for changed := true; changed; {
		changed = false
		for _, p := range all {
			if why[p.pid] == "" && why[p.ppid] != "" {
				why[p.pid] = fmt.Sprintf("child of %d", p.ppid)
				changed = true
			}
		}
	}
	var out []ProcInfo
	for _, p := range all {
		if w := why[p.pid]; w != "" {
			out = append(out, ProcInfo{Pid: p.pid, Cmdline: p.cmdline, Why: w})
		}
	}
	return out
}

// rootMountUnder reports whether the root mount of pid's mount namespace
// comes from below dir: a bind mount of a vfs directory shows the path as its
// root, an overlay names its layer directories in its options.
func rootMountUnder(pid int, dir string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "mountinfo"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || unescapeMount(f[4]) != "/" {
			continue
		}
		if within(dir, unescapeMount(f[3])) || strings.Contains(line, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func within(dir, p string) bool {
	p = strings.TrimSuffix(p, " (deleted)")
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+4 > len(b) {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// ShimSocket returns the socket a containerd-shim-runc-v2 process listens
// on, from its command line: containerd 1.6 puts it at
// /run/containerd/s/<sha256 of address/namespace/id>, whatever containerd's
// own state directory is. "" if cmdline is not a v2 shim's.
func ShimSocket(cmdline string) string {
	f := strings.Fields(cmdline)
	if len(f) == 0 || !strings.HasPrefix(filepath.Base(f[0]), "containerd-shim-runc-v2") {
		return ""
	}
	var address, ns, id string
	for i := 1; i+1 < len(f); i++ {
		switch f[i] {
		case "-address":
			address = f[i+1]
		case "-namespace":
			ns = f[i+1]
		case "-id":
			id = f[i+1]
		}
	}
	if address == "" || ns == "" || id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))
}

// killUnder kills, by pid, every process ProcessesUnder(dir) finds, and waits
// for them to go. It returns what it had to kill.
func killUnder(dir string, timeout time.Duration) ([]ProcInfo, error) {
	found := ProcessesUnder(dir)
	for _, p := range found {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	// A shim killed by SIGKILL leaves its socket behind.
	defer func() {
		for _, p := range found {
			if sock := ShimSocket(p.Cmdline); sock != "" {
				if st, err := os.Lstat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
					os.Remove(sock)
				}
			}
		}
	}()
	deadline := time.Now().Add(timeout)
	for {
		reapZombies()
		left := ProcessesUnder(dir)
		if len(left) == 0 {
			return found, nil
		}
		if time.Now().After(deadline) {
			return found, fmt.Errorf("processes still alive under %s: %v", dir, left)
		}
		for _, p := range left {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// becomeSubreaper makes orphaned descendants (containerd shims, container
// processes whose shim died) children of this process, so that they can be
// reaped instead of lingering as zombies of pid 1.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// reapZombies waits for every zombie child of this process that no exec.Cmd
// waits for (adopted orphans). Children started with os/exec are still alive
// or already reaped by their own Wait; only zombies are touched, by pid.
func reapZombies() {
	self := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		st, ppid, ok := procStat(pid)
		if !ok || ppid != self || st != 'Z' {
			continue
		}
		if isTracked(pid) {
			continue
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}

// trackedPids holds the pids of processes started through os/exec, whose own
// Wait must collect them; reapZombies leaves them alone.
var (
	trackMu     sync.Mutex
	trackedPids = map[int]bool{}
)

func isTracked(pid int) bool {
	trackMu.Lock()
	defer trackMu.Unlock()
	return trackedPids[pid]
}

func track(pid int, on bool) {
	trackMu.Lock()
	defer trackMu.Unlock()
	if on {
		trackedPids[pid] = true
	} else {
		delete(trackedPids, pid)
	}
}
