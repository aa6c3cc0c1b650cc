// Command capture-stores regenerates the captures of real stores under
// fixtures/testdata/stores: an overlay2 and a vfs Docker data root, a
// containerd root and a podman graph root (containers-storage), each as
// <name>.tar.gz (storetar format: PAX xattrs, device nodes) with the tool's
// own answers in <name>.json.
//
// It runs as root (`make capture-stores`), with the daemons of the e2e
// harness: per driver a dockerd loads, imports, builds, pushes, removes and
// pulls back three tiny images and creates a container; the standalone
// containerd imports them with the overlayfs and native snapshotters and
// pulls one from the registry; podman (rootful, private roots, no daemon)
// loads the same save, pulls one back and creates a container. Every daemon
// is stopped before its store is captured, and runtime files (network state,
// swarm, temporary files, plugins) are left out. Captures differ from run to
// run (random IDs, times).
//
// Usage: capture-stores [-out DIR] [-drivers overlay2,vfs] [-stores docker,containerd,podman]
//
// -stores names the captures to write; the Docker images are made in any
// case (the other stores take them from its save and its registry push).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/layercheck/layercheck/e2e/harness"
	"github.com/layercheck/layercheck/e2e/storetar"
)

// dockerExcluded are top-level entries of a data root that are runtime state
// or unrelated to images: left out of the capture.
var dockerExcluded = []string{"network", "swarm", "tmp", "runtimes", "plugins", "trust", "buildkit", "builder", "volumes"}

func main() {
	out := flag.String("out", filepath.Join("fixtures", "testdata", "stores"), "output directory")
	drv := flag.String("drivers", "", "Docker storage drivers, comma-separated (default: overlay2 and vfs; overlay2 only where the kernel allows it)")
	stores := flag.String("stores", "docker,containerd,podman", "the captures to write, comma-separated")
	flag.Parse()
	want := map[string]bool{}
	for _, k := range strings.Split(*stores, ",") {
		switch k {
		case "docker", "containerd", "podman":
			want[k] = true
		default:
			fmt.Fprintf(os.Stderr, "capture-stores: -stores: unknown store %q (docker, containerd, podman)\n", k)
			os.Exit(2)
		}
	}
	if err := run(*out, *drv, want); err != nil {
		fmt.Fprintf(os.Stderr, "capture-stores: %v\n", err)
		os.Exit(1)
	}
}

func run(out, drivers string, want map[string]bool) (err error) {
	ctx := context.Background()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	env, err := harness.New(harness.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := env.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("teardown: %w", cerr)
		}
	}()
	list := []string{"overlay2", "vfs"}
	if drivers != "" {
		list = strings.Split(drivers, ",")
	} else if perr := harness.ProbeOverlay(env.Path("tmp")); perr != nil {
		env.Logf("no overlay2 capture, the kernel refuses overlay mounts: %v", perr)
		list = []string{"vfs"}
	}
	reg, err := env.StartRegistry()
	if err != nil {
		return err
	}
	var saves []string
	for _, d := range list {
		save, err := captureDocker(ctx, env, reg, d, out, want["docker"])
		if err != nil {
			return fmt.Errorf("docker %s: %w", d, err)
		}
		saves = append(saves, save)
	}
	save, driver := saves[len(saves)-1], list[len(list)-1]
	if want["containerd"] {
		if err := captureContainerd(ctx, env, reg, save, driver, out); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
	}
	if want["podman"] {
		pdrivers := []string{"overlay", "vfs"}
		if perr := harness.ProbeOverlay(env.Path("tmp")); perr != nil {
			env.Logf("no podman overlay capture, the kernel refuses overlay mounts: %v", perr)
			pdrivers = []string{"vfs"}
		}
		for _, pd := range pdrivers {
			if err := capturePodman(ctx, env, reg, save, driver, pd, out); err != nil {
				return fmt.Errorf("podman %s: %w", pd, err)
			}
		}
	}
	return nil
}

// tinyImages makes the three images of a capture on d and returns a save of
// all of them.
func tinyImages(ctx context.Context, env *harness.Env, reg *harness.Registry, d *harness.Docker) (map[string]string, string, error) {
	work, err := env.WorkDir("capture-" + d.Driver)
	if err != nil {
		return nil, "", err
	}
	how := map[string]string{}
	// import: the tricky rootfs without busybox.
	var rootfs bytes.Buffer
	if err := harness.WriteRootfs(&rootfs, nil); err != nil {
		return nil, "", err
	}
	rootfsTar := filepath.Join(work, "rootfs.tar")
	if err := os.WriteFile(rootfsTar, rootfs.Bytes(), 0o644); err != nil {
		return nil, "", err
	}
	if _, err := d.CLI(ctx, "import", "--change", "ENV PATH=/bin", rootfsTar, "lc/tiny-import:1"); err != nil {
		return nil, "", err
	}
	how["lc/tiny-import:1"] = "import"
	// load: three layers with a whiteout, an opaque directory and an empty layer.
	crafted, err := harness.CraftedImage("lc/tiny-crafted:1", nil)
	if err != nil {
		return nil, "", err
	}
	var save bytes.Buffer
	if err := harness.WriteDockerSave(&save, []harness.SaveImage{crafted}); err != nil {
		return nil, "", err
	}
	if _, err := d.CLIIn(ctx, "", &save, "load"); err != nil {
		return nil, "", err
	}
	how["lc/tiny-crafted:1"] = "load"
	// build: COPY and ENV on top of the loaded image (no RUN: no runtime).
	bctx := filepath.Join(work, "ctx")
	if err := os.MkdirAll(bctx, 0o755); err != nil {
		return nil, "", err
	}
	files := map[string]string{
		"Dockerfile": "FROM lc/tiny-crafted:1\nCOPY hello.txt /data/hello.txt\nENV BUILT=1\nCOPY hello.txt /etc/hello.txt\n",
		"hello.txt":  "hello from a build\n",
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(bctx, n), []byte(b), 0o644); err != nil {
			return nil, "", err
		}
	}
	if err := d.Build(ctx, "lc/tiny-built:1", bctx); err != nil {
		return nil, "", err
	}
	// push, remove and pull back: distribution metadata and RepoDigests.
	remote := reg.Ref(d.Driver + "/tiny-built:1")
	steps := [][]string{
		{"tag", "lc/tiny-built:1", remote},
		{"push", remote},
		{"rmi", "lc/tiny-built:1", remote},
		{"pull", remote},
		{"tag", remote, "lc/tiny-built:1"},
		{"create", "--name", "tiny-created", "--network", "none", "lc/tiny-built:1", "/bin/true"},
	}
	for _, s := range steps {
		if _, err := d.CLI(ctx, s...); err != nil {
			return nil, "", err
		}
	}
	how["lc/tiny-built:1"] = "build, push, rmi, pull"
	all := filepath.Join(work, "save-all.tar")
	if _, err := d.CLI(ctx, "save", "--output", all, "lc/tiny-import:1", "lc/tiny-crafted:1", "lc/tiny-built:1"); err != nil {
		return nil, "", err
	}
	return how, all, nil
}

// captureDocker makes the tiny images on a dockerd with driver and, when
// write is set, captures its data root. It returns the save of the images.
func captureDocker(ctx context.Context, env *harness.Env, reg *harness.Registry, driver, out string, write bool) (string, error) {
	d, err := env.StartDocker(driver)
	if err != nil {
		return "", err
	}
	how, save, err := tinyImages(ctx, env, reg, d)
	if err != nil || !write {
		return save, err
	}
	truth := &storetar.Truth{
		Kind:     "docker",
		Driver:   driver,
		Version:  d.Version,
		Capture:  "docker-" + driver + ".tar.gz",
		Root:     "the Docker data root (--data-root); containerd/daemon is the root of the containerd dockerd used",
		Excluded: dockerExcluded,
		Notes: []string{
			"made by `make capture-stores` (e2e/cmd/capture-stores); the daemon was stopped before the capture",
			"lc/tiny-crafted:1 was loaded from a save written by the e2e harness: layer 1 has a whiteout (etc/deleteme), an opaque directory (opq/) and a copied-up hardlink; layer 2 is an empty tar",
			"lc/tiny-import:1 and the base layer of lc/tiny-crafted:1 are the same tar, stored once",
		},
	}
	db, err := d.LayerDB()
	if err != nil {
		return "", err
	}
	refs := make([]string, 0, len(how))
	for r := range how {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		ins, err := d.InspectImage(ctx, ref)
		if err != nil {
			return "", err
		}
		chain, err := harness.ChainIDs(db, ins.RootFS.Layers)
		if err != nil {
			return "", err
		}
		var cache []string
		for _, c := range chain {
			cache = append(cache, db[c].CacheID)
		}
		truth.Images = append(truth.Images, storetar.TruthImage{
			Ref: ref, ID: ins.ID, RepoTags: ins.RepoTags, RepoDigests: ins.RepoDigests,
			DiffIDs: ins.RootFS.Layers, ChainIDs: chain, CacheIDs: cache,
			Pulled: strings.Contains(how[ref], "pull"), How: how[ref],
		})
	}
	ci, err := d.InspectContainer(ctx, "tiny-created")
	if err != nil {
		return "", err
	}
	mounts := filepath.Join(d.DataRoot, "image", driver, "layerdb", "mounts", ci.ID)
	read := func(n string) string {
		b, _ := os.ReadFile(filepath.Join(mounts, n))
		return strings.TrimSpace(string(b))
	}
	truth.Containers = append(truth.Containers, storetar.TruthContainer{
		Name: "tiny-created", ID: ci.ID, Image: ci.Image, Status: ci.State.Status,
		MountID: read("mount-id"), InitID: read("init-id"),
	})
	if err := d.Stop(); err != nil {
		return "", fmt.Errorf("stopping dockerd before the capture: %w", err)
	}
	if err := capture(d.DataRoot, filepath.Join(out, truth.Capture), dockerExcluded); err != nil {
		return "", err
	}
	return save, storetar.WriteTruth(filepath.Join(out, "docker-"+driver+".json"), truth)
}

func captureContainerd(ctx context.Context, env *harness.Env, reg *harness.Registry, save, driver, out string) error {
	c, err := env.StartContainerd()
	if err != nil {
		return err
	}
	snap := "overlayfs"
	if harness.ProbeOverlay(env.Path("tmp")) != nil {
		snap = "native"
	}
	truth := &storetar.Truth{
		Kind:     "containerd",
		Version:  containerdVersion(ctx, c),
		Capture:  "containerd.tar.gz",
		Root:     "the containerd root (root = in config.toml)",
		Excluded: []string{},
		Notes: []string{
			"made by `make capture-stores` (e2e/cmd/capture-stores); containerd was stopped before the capture",
			"namespace default: ctr images import of a docker save (dockerd " + driver + ") with the " + snap + " snapshotter; namespace native: the same with the native snapshotter; namespace pulled: ctr images pull from the registry",
		},
	}
	type step struct{ ns, snap, how string }
	if err := c.Import(ctx, "default", snap, save); err != nil {
		return err
	}
	if err := c.Import(ctx, "native", "native", save); err != nil {
		return err
	}
	if _, err := c.Ctr(ctx, "pulled", "images", "pull", "--plain-http", "--snapshotter", snap, reg.Ref(driver+"/tiny-built:1")); err != nil {
		return err
	}
	for _, s := range []step{{"default", snap, "import of a docker save"}, {"native", "native", "import of a docker save"}, {"pulled", snap, "pull"}} {
		imgs, err := c.Images(ctx, s.ns)
		if err != nil {
			return err
		}
		for _, im := range imgs {
			truth.CtrImages = append(truth.CtrImages, storetar.TruthCtrImage{
				Namespace: s.ns, Name: im.Name, MediaType: im.MediaType, Digest: im.Digest, Snapshotter: s.snap, How: s.how,
			})
		}
	}
	if err := c.Stop(); err != nil {
		return fmt.Errorf("stopping containerd before the capture: %w", err)
	}
	if err := capture(c.Root, filepath.Join(out, truth.Capture), nil); err != nil {
		return err
	}
	return storetar.WriteTruth(filepath.Join(out, "containerd.json"), truth)
}

// capturePodman loads the save of the tiny images into a podman graph root
// with driver drv (overlay or vfs), pulls the built one back from the
// registry, creates a container and captures the graph root.
func capturePodman(ctx context.Context, env *harness.Env, reg *harness.Registry, save, dockerDriver, drv, out string) error {
	p, err := env.NewPodman("capture-"+drv, drv)
	if err != nil {
		return err
	}
	if err := p.Probe(ctx); err != nil {
		return err
	}
	pol := "--signature-policy=" + p.Policy
	remote := reg.Ref(dockerDriver + "/tiny-built:1")
	if _, err := p.CLI(ctx, "load", pol, "--input", save); err != nil {
		return err
	}
	if _, err := p.CLI(ctx, "pull", pol, "--tls-verify=false", "--quiet", remote); err != nil {
		return err
	}
	imgs, err := p.AllImages(ctx)
	if err != nil {
		return err
	}
	truth := &storetar.Truth{
		Kind:     "containers-storage",
		Driver:   drv,
		Version:  podmanVersion(ctx, p),
		Capture:  "podman-" + drv + ".tar.gz",
		Root:     "the podman graph root (--root); its run root (--runroot) is not captured",
		Excluded: []string{},
		Notes: []string{
			"made by `make capture-stores` (e2e/cmd/capture-stores): rootful podman with private roots and configuration, no daemon",
			"podman load of the docker save of the three tiny images (dockerd " + dockerDriver + "), then podman pull of " + remote + " (the built image, pushed by that dockerd), then podman create of a container (never started) when podman could",
		},
	}
	for _, im := range imgs {
		how := "load"
		for _, t := range im.RepoTags {
			if strings.HasPrefix(t, remote[:strings.Index(remote, "/")]) {
				how = "load, pull"
			}
		}
		r := im.ID
		if len(im.RepoTags) > 0 {
			r = im.RepoTags[0]
		}
		truth.Images = append(truth.Images, storetar.TruthImage{
			Ref: r, ID: im.ConfigDigest(), RepoTags: im.RepoTags, RepoDigests: im.RepoDigests,
			DiffIDs: im.RootFS.Layers, Pulled: how != "load", How: how,
		})
		if strings.Contains(strings.Join(im.RepoTags, " "), "tiny-built") {
			if b, err := p.CLI(ctx, "create", "--name", "tiny-created", "--network", "none", im.ID, "/bin/true"); err != nil {
				env.Logf("podman create refused, the capture has no container: %v", err)
			} else {
				truth.Containers = append(truth.Containers, storetar.TruthContainer{Name: "tiny-created", ID: strings.TrimSpace(string(b)), Image: im.ConfigDigest(), Status: "created"})
			}
		}
	}
	sort.Slice(truth.Images, func(i, j int) bool { return truth.Images[i].Ref < truth.Images[j].Ref })
	if err := capture(p.Root, filepath.Join(out, truth.Capture), nil); err != nil {
		return err
	}
	return storetar.WriteTruth(filepath.Join(out, "podman-"+drv+".json"), truth)
}

func podmanVersion(ctx context.Context, p *harness.Podman) string {
	b, err := p.CLI(ctx, "--version")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b)) // "podman version 4.3.1"
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func containerdVersion(ctx context.Context, c *harness.Containerd) string {
	b, err := c.Ctr(ctx, "", "version")
	if err != nil {
		return ""
	}
	// The server section comes last: "Server:\n  Version:  1.6.20~ds1".
	v := ""
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Version:" {
			v = f[1]
		}
	}
	return v
}

func capture(root, path string, excluded []string) error {
	ex := map[string]bool{}
	for _, e := range excluded {
		ex[e] = true
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = storetar.Capture(f, root, storetar.Options{Exclude: func(rel string) bool { return ex[rel] }})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	st, _ := os.Stat(path)
	fmt.Fprintf(os.Stderr, "capture-stores: wrote %s (%d KiB) at %s\n", path, st.Size()/1024, time.Now().Format(time.RFC3339))
	return nil
}
