package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Containerd is a containerd daemon the Env started: either the standalone one
// (StartContainerd) or the one a Docker daemon uses.
type Containerd struct {
	Name   string // "containerd" or "containerd-<driver>"
	Root   string // persistent root: content store, meta.db, snapshotters
	State  string // runtime state (sockets of tasks, shims)
	Socket string // gRPC socket path
	Config string // config.toml path
	Proc   *Proc

	env *Env
}

// containerdConfig writes a minimal config: only the CRI plugin is disabled,
// so the root holds what a stock containerd writes. The opt plugin and the
// temporary mount directory are kept inside the Env (a stock containerd would
// write /opt/containerd).
func containerdConfig(root, state, socket, opt, tmp string) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
temp = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
oom_score = 0

[grpc]
  address = %q

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
  [plugins."io.containerd.runtime.v1.linux"]
    runtime_root = %q
`, root, state, tmp, socket, opt, filepath.Join(state, "runc-v1"))
}

// startContainerd starts a containerd with the given directories; dir holds
// its config, opt and temporary directories.
func (e *Env) startContainerd(name, dir, root, state, socket string) (*Containerd, error) {
	for _, d := range []string{dir, root, state, filepath.Dir(socket), filepath.Join(dir, "opt"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	c := &Containerd{Name: name, Root: root, State: state, Socket: socket, Config: filepath.Join(dir, "containerd.toml"), env: e}
	cfg := containerdConfig(root, state, socket, filepath.Join(dir, "opt"), filepath.Join(dir, "tmp"))
	if err := os.WriteFile(c.Config, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", c.Config, err)
	}
	p, err := e.startProc(name, []string{e.Tools.Containerd, "--config", c.Config}, nil, 20*time.Second)
	if err != nil {
		return nil, err
	}
	c.Proc = p
	err = waitFor(30*time.Second, p, name+" to answer on "+socket, func() error {
		if _, err := os.Stat(socket); err != nil {
			return err
		}
		_, err := c.Ctr(context.Background(), "", "version")
		return err
	})
	if err != nil {
		_ = p.Stop()
		return nil, err
	}
	return c, nil
}

// StartContainerd starts the standalone containerd with its root, state and
// socket under Root/containerd. It is started once; later calls return it.
func (e *Env) StartContainerd() (*Containerd, error) {
	e.mu.Lock()
	if c := e.containerd; c != nil {
		e.mu.Unlock()
		return c, nil
	}
	e.mu.Unlock()
	dir := e.Path("containerd")
	c, err := e.startContainerd("containerd", dir, filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "containerd.sock"))
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.containerd = c
	e.mu.Unlock()
	return c, nil
}

// Containerd returns the standalone containerd, or nil before StartContainerd.
func (e *Env) Containerd() *Containerd {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.containerd
}

// Ctr runs `ctr` against this containerd in namespace ns (empty: ctr's default).
func (c *Containerd) Ctr(ctx context.Context, ns string, args ...string) ([]byte, error) {
	argv := []string{c.env.Tools.Ctr, "--address", c.Socket}
	if ns != "" {
		argv = append(argv, "--namespace", ns)
	}
	return c.env.Run(ctx, Cmd{Argv: append(argv, args...)})
}

// Import runs `ctr images import` of a docker-save or OCI archive into
// namespace ns, unpacking into snapshotter (empty: containerd's default).
func (c *Containerd) Import(ctx context.Context, ns, snapshotter, archive string, extra ...string) error {
	args := []string{"images", "import"}
	if snapshotter != "" {
		args = append(args, "--snapshotter", snapshotter)
	}
	args = append(args, extra...)
	args = append(args, archive)
	_, err := c.Ctr(ctx, ns, args...)
	return err
}

// CtrImage is one line of `ctr images ls`.
type CtrImage struct {
	Name      string
	MediaType string
	Digest    string // digest of the manifest or index the name points to
	Size      string
	Platforms string
}

// Images lists the images of namespace ns.
func (c *Containerd) Images(ctx context.Context, ns string) ([]CtrImage, error) {
	out, err := c.Ctr(ctx, ns, "images", "ls")
	if err != nil {
		return nil, err
	}
	return parseCtrImages(out), nil
}

// parseCtrImages reads the table `ctr images ls` prints:
// REF TYPE DIGEST SIZE PLATFORMS LABELS, where SIZE is "1.2 MiB" (two fields).
func parseCtrImages(out []byte) []CtrImage {
	var imgs []CtrImage
	sc := bufio.NewScanner(bytes.NewReader(out))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		imgs = append(imgs, CtrImage{Name: f[0], MediaType: f[1], Digest: f[2], Size: f[3] + " " + f[4], Platforms: f[5]})
	}
	return imgs
}

// Stop stops the daemon by its pid.
func (c *Containerd) Stop() error {
	if c == nil || c.Proc == nil {
		return nil
	}
	return c.Proc.Stop()
}

// Pid returns the daemon's pid.
func (c *Containerd) Pid() string { return strconv.Itoa(c.Proc.Pid) }
