package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Docker is a dockerd the Env started, with its own data root, exec root,
// socket, pidfile, daemon.json and containerd. Networking is off
// (--bridge=none, no iptables): containers run with --network none.
type Docker struct {
	Driver    string // storage driver: overlay2, vfs, btrfs or fuse-overlayfs
	Dir       string // everything of this daemon is below it
	DataRoot  string // --data-root
	ExecRoot  string // --exec-root
	Socket    string // API socket path
	Host      string // unix://<Socket>
	PIDFile   string // --pidfile written by dockerd
	ClientDir string // DOCKER_CONFIG of the CLI
	Version   string // dockerd --version, e.g. 20.10.24+dfsg1
	// CgroupParent is the cgroup (in every hierarchy) below which the
	// daemon's containers run; the Env removes it on Close.
	CgroupParent string
	Daemon       *Proc
	Containerd   *Containerd // the containerd dockerd talks to (root under DataRoot/containerd/daemon)

	env *Env
}

var dockerVersionRE = regexp.MustCompile(`version ([0-9]+)\.([0-9]+)\.([0-9]+)[^,\s]*`)

func (e *Env) dockerdVersion() (string, int, error) {
	out, err := e.Run(context.Background(), Cmd{Argv: []string{e.Tools.Dockerd, "--version"}, Timeout: 30 * time.Second})
	if err != nil {
		return "", 0, err
	}
	m := dockerVersionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", 0, fmt.Errorf("cannot parse %q", strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	return strings.TrimPrefix(m[0], "version "), major, nil
}

// StartDocker starts a dockerd with the given storage driver ("vfs",
// "overlay2", "btrfs", "fuse-overlayfs"). For btrfs the data root is a btrfs
// filesystem on a sparse loop file in the daemon's directory (see mountBtrfs),
// unmounted and detached on Close or by Reap. Its containerd runs from the harness too, with the root and
// state dockerd would give its own (DataRoot/containerd/daemon,
// ExecRoot/containerd/daemon), so the data root looks like a stock one. It is
// started once per driver; later calls return it.
func (e *Env) StartDocker(driver string) (*Docker, error) {
	e.mu.Lock()
	if d := e.dockers[driver]; d != nil {
		e.mu.Unlock()
		return d, nil
	}
	e.mu.Unlock()
	version, major, err := e.dockerdVersion()
	if err != nil {
		return nil, fmt.Errorf("dockerd version: %w", err)
	}
	dir := e.Path("docker-" + driver)
	d := &Docker{
		Driver:    driver,
		Dir:       dir,
		DataRoot:  filepath.Join(dir, "data"),
		ExecRoot:  filepath.Join(dir, "exec"),
		Socket:    filepath.Join(dir, "docker.sock"),
		PIDFile:   filepath.Join(dir, "docker.pid"),
		ClientDir: filepath.Join(dir, "client"),
		Version:   version,
		env:       e,
	}
	d.Host = "unix://" + d.Socket
	d.CgroupParent = e.cgroupName(driver)
	if driver == "btrfs" {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, err
		}
		if err := e.mountBtrfs(dir, d.DataRoot); err != nil {
			return nil, err
		}
	}
	for _, p := range []string{d.DataRoot, d.ExecRoot, d.ClientDir} {
		if err := os.MkdirAll(p, 0o711); err != nil {
			return nil, err
		}
	}
	// The CLI reads its config from DOCKER_CONFIG; an empty one keeps it away
	// from the user's credentials and contexts.
	if err := os.WriteFile(filepath.Join(d.ClientDir, "config.json"), []byte("{}\n"), 0o600); err != nil {
		return nil, err
	}
	cfg := map[string]any{}
	if major < 23 {
		// dockerd up to 22 writes its libtrust key to /etc/docker/key.json
		// unless told otherwise; later versions have no such key.
		cfg["deprecated-key-path"] = filepath.Join(dir, "key.json")
	}
	cfgPath := filepath.Join(dir, "daemon.json")
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	ctdSock := filepath.Join(d.ExecRoot, "containerd", "containerd.sock")
	ctd, err := e.startContainerd("containerd-"+driver, filepath.Join(dir, "containerd"),
		filepath.Join(d.DataRoot, "containerd", "daemon"), filepath.Join(d.ExecRoot, "containerd", "daemon"), ctdSock)
	if err != nil {
		return nil, err
	}
	d.Containerd = ctd
	argv := []string{e.Tools.Dockerd,
		"--config-file", cfgPath,
		"--data-root", d.DataRoot,
		"--exec-root", d.ExecRoot,
		"--host", d.Host,
		"--pidfile", d.PIDFile,
		"--containerd", ctdSock,
		"--storage-driver", driver,
		"--iptables=false", "--ip6tables=false", "--ip-masq=false", "--ip-forward=false",
		"--bridge=none", "--userland-proxy=false",
		"--cgroup-parent", "/" + d.CgroupParent,
		"--log-level", "warn",
	}
	if err := e.recordCgroup(d.CgroupParent); err != nil {
		_ = ctd.Stop()
		return nil, err
	}
	p, err := e.startProc("dockerd-"+driver, argv, nil, 60*time.Second)
	if err != nil {
		_ = ctd.Stop()
		return nil, err
	}
	d.Daemon = p
	err = waitFor(90*time.Second, p, "dockerd ("+driver+") to answer on "+d.Socket, func() error {
		if _, err := os.Stat(d.Socket); err != nil {
			return err
		}
		out, err := d.CLI(context.Background(), "info", "--format", "{{.Driver}}")
		if err != nil {
			return err
		}
		if got := strings.TrimSpace(string(out)); got != driver {
			return fmt.Errorf("dockerd runs storage driver %q, want %q", got, driver)
		}
		return nil
	})
	if err != nil {
		_ = p.Stop()
		_ = ctd.Stop()
		return nil, err
	}
	e.mu.Lock()
	e.dockers[driver] = d
	e.mu.Unlock()
	return d, nil
}

// Docker returns the daemon running driver, or nil if none was started.
func (e *Env) Docker(driver string) *Docker {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dockers[driver]
}

// Dockers returns the started daemons.
func (e *Env) Dockers() []*Docker {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*Docker
	for _, drv := range []string{"overlay2", "vfs"} {
		if d := e.dockers[drv]; d != nil {
			out = append(out, d)
		}
	}
	for drv, d := range e.dockers {
		if drv != "overlay2" && drv != "vfs" {
			out = append(out, d)
		}
	}
	return out
}

// ClientEnv is the environment the docker CLI runs with.
func (d *Docker) ClientEnv() []string {
	return []string{"DOCKER_HOST=" + d.Host, "DOCKER_CONFIG=" + d.ClientDir, "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false"}
}

// CLI runs the docker client against this daemon and returns its stdout.
func (d *Docker) CLI(ctx context.Context, args ...string) ([]byte, error) {
	return d.env.Run(ctx, Cmd{Argv: append([]string{d.env.Tools.Docker}, args...), Env: d.ClientEnv()})
}

// CLIIn runs the docker client with stdin and a working directory.
func (d *Docker) CLIIn(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	return d.env.Run(ctx, Cmd{Argv: append([]string{d.env.Tools.Docker}, args...), Env: d.ClientEnv(), Dir: dir, Stdin: stdin})
}

// Build runs the legacy builder (DOCKER_BUILDKIT=0) on contextDir, without
// network, and tags the result.
func (d *Docker) Build(ctx context.Context, tag, contextDir string, extra ...string) error {
	args := append([]string{"build", "--network", "none", "--tag", tag}, extra...)
	_, err := d.CLIIn(ctx, contextDir, nil, append(args, ".")...)
	return err
}

// ImageInspect is the part of `docker image inspect` the suite uses.
type ImageInspect struct {
	ID          string   `json:"Id"`
	RepoTags    []string `json:"RepoTags"`
	RepoDigests []string `json:"RepoDigests"`
	Parent      string   `json:"Parent"`
	Created     string   `json:"Created"`
	Size        int64    `json:"Size"`
	GraphDriver struct {
		Name string            `json:"Name"`
		Data map[string]string `json:"Data"`
	} `json:"GraphDriver"`
	RootFS struct {
		Type   string   `json:"Type"`
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
}

// InspectImage returns `docker image inspect ref`.
func (d *Docker) InspectImage(ctx context.Context, ref string) (ImageInspect, error) {
	out, err := d.CLI(ctx, "image", "inspect", ref)
	if err != nil {
		return ImageInspect{}, err
	}
	var v []ImageInspect
	if err := json.Unmarshal(out, &v); err != nil {
		return ImageInspect{}, fmt.Errorf("decoding image inspect of %s: %w", ref, err)
	}
	if len(v) != 1 {
		return ImageInspect{}, fmt.Errorf("image inspect of %s returned %d images", ref, len(v))
	}
	return v[0], nil
}

// ContainerInspect is the part of `docker container inspect` the suite uses.
type ContainerInspect struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	Image string `json:"Image"`
	State struct {
		Status   string `json:"Status"`
		Running  bool   `json:"Running"`
		ExitCode int    `json:"ExitCode"`
	} `json:"State"`
	GraphDriver struct {
		Name string            `json:"Name"`
		Data map[string]string `json:"Data"`
	} `json:"GraphDriver"`
}

// InspectContainer returns `docker container inspect name`.
func (d *Docker) InspectContainer(ctx context.Context, name string) (ContainerInspect, error) {
	out, err := d.CLI(ctx, "container", "inspect", name)
	if err != nil {
		return ContainerInspect{}, err
	}
	var v []ContainerInspect
	if err := json.Unmarshal(out, &v); err != nil {
		return ContainerInspect{}, fmt.Errorf("decoding container inspect of %s: %w", name, err)
	}
	if len(v) != 1 {
		return ContainerInspect{}, fmt.Errorf("container inspect of %s returned %d containers", name, len(v))
	}
	return v[0], nil
}

// LayerDB is the layer store's view of one layer, read from
// DataRoot/image/<driver>/layerdb/sha256/<chainID>/.
type LayerDB struct {
	ChainID string
	DiffID  string
	Parent  string // chainID of the parent, "" for a base layer
	CacheID string // the driver's directory name
	Size    string
}

// LayerDB reads every layer of the layer store, keyed by chainID.
func (d *Docker) LayerDB() (map[string]LayerDB, error) {
	return ReadLayerDB(d.DataRoot, d.Driver)
}

// ReadLayerDB reads the layer store of a Docker data root, keyed by chainID.
func ReadLayerDB(dataRoot, driver string) (map[string]LayerDB, error) {
	dir := filepath.Join(dataRoot, "image", driver, "layerdb", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading layerdb: %w", err)
	}
	out := map[string]LayerDB{}
	for _, ent := range ents {
		if !ent.IsDir() || strings.HasSuffix(ent.Name(), "-missing") {
			continue
		}
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, ent.Name(), name))
			return strings.TrimSpace(string(b))
		}
		l := LayerDB{ChainID: "sha256:" + ent.Name(), DiffID: read("diff"), Parent: read("parent"), CacheID: read("cache-id"), Size: read("size")}
		out[l.ChainID] = l
	}
	return out, nil
}

// ChainIDs returns the chainIDs of the layers of diffIDs as the daemon's layer
// store records them: layer i is the layerdb entry whose diff is diffIDs[i]
// and whose parent is the entry found for layer i-1. Nothing is computed.
func ChainIDs(db map[string]LayerDB, diffIDs []string) ([]string, error) {
	var chain []string
	parent := ""
	for i, diff := range diffIDs {
		var found []string
		for _, l := range db {
			if l.DiffID == diff && l.Parent == parent {
				found = append(found, l.ChainID)
			}
		}
		if len(found) != 1 {
			return nil, fmt.Errorf("layer %d (diff %s, parent %q): %d layerdb entries", i, diff, parent, len(found))
		}
		chain = append(chain, found[0])
		parent = found[0]
	}
	return chain, nil
}

// Stop kills the daemon's running containers (so that shutdown does not wait
// for their stop timeout), then stops dockerd and its containerd by pid.
func (d *Docker) Stop() error {
	if d == nil || d.Daemon == nil {
		return nil
	}
	var errs []error
	if !d.Daemon.Exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := d.CLI(ctx, "ps", "--quiet", "--no-trunc")
		if err == nil {
			for _, id := range strings.Fields(string(out)) {
				if _, err := d.CLI(ctx, "kill", id); err != nil {
					errs = append(errs, fmt.Errorf("killing container %s: %w", id, err))
				}
			}
		}
		cancel()
	}
	if err := d.Daemon.Stop(); err != nil {
		errs = append(errs, err)
	}
	if err := d.Containerd.Stop(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Running reports whether dockerd is up.
func (d *Docker) Running() bool { return d.Daemon != nil && !d.Daemon.Exited() }

// ImageIDs lists the IDs of all images of the daemon.
func (d *Docker) ImageIDs(ctx context.Context) ([]string, error) {
	out, err := d.CLI(ctx, "images", "--all", "--quiet", "--no-trunc")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for _, id := range strings.Fields(string(out)) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}
