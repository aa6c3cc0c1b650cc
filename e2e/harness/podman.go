package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Podman is Debian's podman and buildah, run rootful and offline on a
// containers-storage graph root of their own: --root, --runroot,
// --storage-driver, --tmpdir and a private containers.conf, storage.conf,
// registries.conf and signature policy, all below the Env's directory.
// podman and buildah have no daemon: every command is a process that ends,
// so there is nothing to stop; what they mounted (a buildah working
// container) is unmounted by Env.Close like any mount below Root.
type Podman struct {
	Driver  string // containers-storage graph driver: overlay or vfs
	Root    string // graph root (--root)
	RunRoot string // --runroot
	Dir     string // the directory holding both and the configuration
	Policy  string // signature policy (insecureAcceptAnything), for --signature-policy
	Podman  string // the podman binary
	Buildah string // the buildah binary

	env     *Env
	confEnv []string
}

// FindPodman looks up podman and buildah (Debian's packages, installed by
// scripts/e2e-install.sh).
func FindPodman() (podman, buildah string, err error) {
	var errs []error
	if podman, err = lookOptional("podman"); err != nil {
		errs = append(errs, err)
	}
	if buildah, err = lookOptional("buildah"); err != nil {
		errs = append(errs, err)
	}
	return podman, buildah, errors.Join(errs...)
}

// NewPodman prepares a private podman/buildah graph root with driver
// (overlay or vfs) under Root/podman-<name>. Nothing runs yet.
func (e *Env) NewPodman(name, driver string) (*Podman, error) {
	podman, buildah, err := FindPodman()
	if err != nil {
		return nil, err
	}
	dir := e.Path("podman-" + sanitize(name))
	p := &Podman{
		Driver: driver, Dir: dir, Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"),
		Policy: filepath.Join(dir, "conf", "policy.json"), Podman: podman, Buildah: buildah, env: e,
	}
	for _, d := range []string{p.Root, p.RunRoot, filepath.Join(dir, "conf", "net.d"), filepath.Join(dir, "tmp"), filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "conf")
	files := map[string]string{
		"policy.json":     `{"default":[{"type":"insecureAcceptAnything"}]}` + "\n",
		"auth.json":       `{"auths":{}}` + "\n", // podman pull refuses a REGISTRY_AUTH_FILE that does not exist
		"registries.conf": "unqualified-search-registries = []\nshort-name-mode = \"disabled\"\n",
		// storage.conf names the same roots as the flags: podman 4.3 refuses
		// to start ("runroot must be set") when the file it reads has none.
		"storage.conf": fmt.Sprintf("[storage]\ndriver = %q\ngraphroot = %q\nrunroot = %q\n", driver, p.Root, p.RunRoot),
		// No network configuration, events log or temporary file outside dir
		// (CNI would take /etc/cni/net.d/cni.lock).
		"containers.conf": fmt.Sprintf(`[containers]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
[network]
network_backend = "cni"
network_config_dir = %q
`, filepath.Join(dir, "tmp", "events.log"), filepath.Join(dir, "tmp"), filepath.Join(conf, "net.d")),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	p.confEnv = []string{
		"CONTAINERS_CONF=" + filepath.Join(conf, "containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + filepath.Join(conf, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + filepath.Join(conf, "registries.conf"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(conf, "auth.json"),
		"HOME=" + filepath.Join(dir, "home"),
		"TMPDIR=" + filepath.Join(dir, "tmp"),
	}
	return p, nil
}

// CLI runs podman with the private roots and configuration.
func (p *Podman) CLI(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{p.Podman,
		"--root", p.Root, "--runroot", p.RunRoot, "--storage-driver", p.Driver,
		"--cgroup-manager", "cgroupfs", "--events-backend", "file",
		"--tmpdir", filepath.Join(p.Dir, "tmp"),
	}, args...)
	return p.env.Run(ctx, Cmd{Argv: argv, Env: p.confEnv, Dir: p.Dir})
}

// BuildahCLI runs buildah with the private roots and configuration.
func (p *Podman) BuildahCLI(ctx context.Context, args ...string) ([]byte, error) {
	argv := append([]string{p.Buildah, "--root", p.Root, "--runroot", p.RunRoot, "--storage-driver", p.Driver}, args...)
	return p.env.Run(ctx, Cmd{Argv: argv, Env: p.confEnv, Dir: p.Dir})
}

// PodmanImage is what `podman image inspect` says about an image.
type PodmanImage struct {
	ID          string   `json:"Id"` // hex, no algorithm
	Digest      string   `json:"Digest"`
	RepoTags    []string `json:"RepoTags"`
	RepoDigests []string `json:"RepoDigests"`
	RootFS      struct {
		Layers []string `json:"Layers"`
	} `json:"RootFS"`
	ManifestType string `json:"ManifestType"`
}

// ConfigDigest is the image ID as a digest.
func (i PodmanImage) ConfigDigest() string { return "sha256:" + i.ID }

// InspectImages runs `podman image inspect` on refs.
func (p *Podman) InspectImages(ctx context.Context, refs ...string) ([]PodmanImage, error) {
	out, err := p.CLI(ctx, append([]string{"image", "inspect"}, refs...)...)
	if err != nil {
		return nil, err
	}
	var imgs []PodmanImage
	if err := json.Unmarshal(out, &imgs); err != nil {
		return nil, fmt.Errorf("podman image inspect: %w", err)
	}
	if len(imgs) != len(refs) {
		return nil, fmt.Errorf("podman image inspect of %d references gave %d images", len(refs), len(imgs))
	}
	return imgs, nil
}

// AllImages inspects every image of the store.
func (p *Podman) AllImages(ctx context.Context) ([]PodmanImage, error) {
	out, err := p.CLI(ctx, "images", "--all", "--quiet", "--no-trunc")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var ids []string
	for _, id := range strings.Fields(string(out)) {
		id = strings.TrimPrefix(id, "sha256:")
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("podman images: the store has no image")
	}
	return p.InspectImages(ctx, ids...)
}

// Probe checks that podman starts on the graph root with its driver: the
// overlay driver refuses to start where the kernel cannot mount overlay.
func (p *Podman) Probe(ctx context.Context) error {
	_, err := p.CLI(ctx, "images")
	return err
}
