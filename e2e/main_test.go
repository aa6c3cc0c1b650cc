//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layercheck/layercheck/e2e/harness"
)

// Suite is everything TestMain set up once for the whole test binary.
type Suite struct {
	Env        *harness.Env
	Registry   *harness.Registry
	Containerd *harness.Containerd
	Drivers    []string // dockerd storage drivers running, overlay2 first
	// HostDrivers are the optional drivers running (btrfs, fuse-overlayfs:
	// harness.OptionalDrivers). Their daemons build the standard set too, but
	// only the host tests (host_test.go) audit them; the other tests range
	// over Drivers. Sets holds their sets as well.
	HostDrivers []string
	// DriversSkipped says why an optional driver does not run here.
	DriversSkipped map[string]string
	Sets           map[string]*harness.Set  // by driver
	Overlay        error                    // why overlay mounts do not work here, nil if they do
	Copies         map[string]*SkopeoCopies // by driver
	// CtrNamespaces maps a driver to the containerd namespaces holding its
	// images: "<driver>" (docker save import, default snapshotter),
	// "<driver>-native" (native snapshotter), "<driver>-oci" (oci-archive
	// import), "<driver>-zstd" (pull of the zstd push).
	CtrNamespaces map[string][]string
	Snapshotter   string // snapshotter of the "<driver>" namespaces

	Layercheck    string // path of the layercheck binary, "" if cmd/layercheck does not exist
	LayercheckErr error  // why it could not be built
	RepoRoot      string
}

// SkopeoCopies are the skopeo outputs of one driver's images.
type SkopeoCopies struct {
	LayoutGzip  string            // OCI layout, gzip layers, one tag per image name
	LayoutZstd  string            // OCI layout, zstd layers
	OCIArchives map[string]string // image name -> oci-archive file
	ZstdRemote  map[string]string // image name -> registry ref of the zstd OCI push
}

// CopiedImages are the images of a set that skopeo copies.
var CopiedImages = []string{"busybox", "rootfs", "layers", "crafted"}

var (
	suite    *Suite
	setupErr error
	skipWhy  string
)

// required: under `make e2e` (LAYERCHECK_E2E_REQUIRE=1) a missing tool or
// lack of root fails the suite instead of skipping it.
func required() bool { return os.Getenv("LAYERCHECK_E2E_REQUIRE") == "1" }

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	start := time.Now()
	var env *harness.Env
	switch {
	case os.Geteuid() != 0:
		skipWhy = "the e2e suite needs root (dockerd, containerd, mounts); run `make e2e` as root"
	default:
		if _, err := harness.FindTools(); err != nil {
			skipWhy = err.Error()
			break
		}
		var err error
		env, err = harness.New(harness.Options{})
		if err != nil {
			setupErr = err
			break
		}
		suite, setupErr = setup(env)
		if setupErr != nil {
			fmt.Fprintf(os.Stderr, "e2e: setup failed after %v: %v\n", time.Since(start).Round(time.Second), setupErr)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: setup done in %v\n", time.Since(start).Round(time.Second))
		}
	}
	if skipWhy != "" && required() {
		setupErr, skipWhy = errors.New(skipWhy), ""
	}
	code := m.Run()
	if env != nil {
		if err := env.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: teardown left something behind: %v\n", err)
			code = 1
		} else if left := harness.ProcessesUnder(env.Root); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "e2e: processes left after teardown: %v\n", left)
			code = 1
		} else {
			fmt.Fprintf(os.Stderr, "e2e: teardown clean (no process, no mount left) after %v in all\n", time.Since(start).Round(time.Second))
		}
	}
	return code
}

// need returns the suite or ends the test: skipped when the suite cannot run
// here (not root, tools missing), failed when its setup failed.
func need(t *testing.T) *Suite {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	if setupErr != nil {
		t.Fatalf("e2e setup failed: %v", setupErr)
	}
	return suite
}

// drivers returns the dockerd storage drivers to run: the full-suite ones
// (overlay2 when the kernel mounts overlay here, and vfs) and the optional
// ones this machine allows (harness.OptionalDrivers; why one is refused goes
// to skipped and the log, and the run goes on without it).
// LAYERCHECK_E2E_DRIVERS selects drivers explicitly; an optional driver named
// there must work.
func drivers(env *harness.Env) (full, optional []string, skipped map[string]string, err error) {
	skipped = map[string]string{}
	if v := os.Getenv("LAYERCHECK_E2E_DRIVERS"); v != "" {
		for _, drv := range strings.Split(v, ",") {
			drv = strings.TrimSpace(drv)
			if !harness.IsOptionalDriver(drv) {
				full = append(full, drv)
				continue
			}
			if err := env.ProbeDriver(drv, env.Path("tmp")); err != nil {
				return nil, nil, nil, fmt.Errorf("storage driver %s (LAYERCHECK_E2E_DRIVERS) cannot run here: %w", drv, err)
			}
			optional = append(optional, drv)
		}
		return full, optional, skipped, nil
	}
	if err := harness.ProbeOverlay(env.Path("tmp")); err != nil {
		env.Logf("overlay2 skipped, the kernel refuses overlay mounts here: %v", err)
		full = []string{"vfs"}
	} else {
		full = []string{"overlay2", "vfs"}
	}
	for _, drv := range harness.OptionalDrivers {
		if err := env.ProbeDriver(drv, env.Path("tmp")); err != nil {
			env.Logf("optional storage driver %s skipped: %v", drv, err)
			skipped[drv] = err.Error()
			continue
		}
		optional = append(optional, drv)
	}
	return full, optional, skipped, nil
}

func setup(env *harness.Env) (*Suite, error) {
	ctx := context.Background()
	s := &Suite{Env: env, Sets: map[string]*harness.Set{}, Copies: map[string]*SkopeoCopies{}, CtrNamespaces: map[string][]string{}}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	s.RepoRoot = root
	s.Overlay = harness.ProbeOverlay(env.Path("tmp"))
	s.Snapshotter = "overlayfs"
	if s.Overlay != nil {
		s.Snapshotter = "native"
	}
	if s.Drivers, s.HostDrivers, s.DriversSkipped, err = drivers(env); err != nil {
		return nil, err
	}
	explicit := os.Getenv("LAYERCHECK_E2E_DRIVERS") != ""

	// The layercheck binary builds while the daemons work.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Layercheck, s.LayercheckErr = buildLayercheck(env, root)
	}()
	defer wg.Wait()

	if s.Registry, err = env.StartRegistry(); err != nil {
		return nil, err
	}
	if s.Containerd, err = env.StartContainerd(); err != nil {
		return nil, err
	}
	// Both daemons build at once: the steps are mostly waiting on I/O.
	var mu sync.Mutex
	var errs []error
	var bwg sync.WaitGroup
	var hostDrivers []string
	for _, drv := range append(append([]string(nil), s.Drivers...), s.HostDrivers...) {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			t0 := time.Now()
			d, err := env.StartDocker(drv)
			if err != nil && harness.IsOptionalDriver(drv) && !explicit {
				// The probe passed but dockerd (or the btrfs loop mount)
				// refused: this machine cannot run it; go on without it.
				env.Logf("optional storage driver %s skipped, dockerd does not start with it: %v", drv, err)
				mu.Lock()
				s.DriversSkipped[drv] = err.Error()
				mu.Unlock()
				return
			}
			if err == nil {
				var set *harness.Set
				set, err = harness.BuildStandardSet(ctx, d, s.Registry)
				if err == nil {
					mu.Lock()
					s.Sets[drv] = set
					if harness.IsOptionalDriver(drv) {
						hostDrivers = append(hostDrivers, drv)
					}
					mu.Unlock()
				}
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("dockerd %s: %w", drv, err))
				mu.Unlock()
				return
			}
			env.Logf("dockerd %s (%s): images built, pushed, pulled and saved in %v", drv, d.Version, time.Since(t0).Round(time.Second))
		}()
	}
	bwg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// In harness.OptionalDrivers order, whichever finished first.
	s.HostDrivers = nil
	for _, drv := range harness.OptionalDrivers {
		if slices.Contains(hostDrivers, drv) {
			s.HostDrivers = append(s.HostDrivers, drv)
		}
	}
	// Each daemon pulls the other's layers image: overlay2 opaque directories
	// land in a vfs store and vfs per-file whiteouts in an overlay2 store.
	if len(s.Drivers) > 1 {
		for _, drv := range s.Drivers {
			for _, other := range s.Drivers {
				if other == drv {
					continue
				}
				if err := s.Sets[drv].AddPulled(ctx, "cross-"+other, s.Sets[other].Image("layers").Remote); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, drv := range s.Drivers {
		if err := s.skopeoCopies(ctx, drv); err != nil {
			return nil, err
		}
		if err := s.containerdImports(ctx, drv); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Suite) skopeoCopies(ctx context.Context, drv string) error {
	set := s.Sets[drv]
	c := &SkopeoCopies{
		LayoutGzip:  filepath.Join(set.Work, "layout-gzip"),
		LayoutZstd:  filepath.Join(set.Work, "layout-zstd"),
		OCIArchives: map[string]string{},
		ZstdRemote:  map[string]string{},
	}
	for _, name := range CopiedImages {
		img := set.Image(name)
		src := "docker-archive:" + img.Save
		if err := s.Env.SkopeoCopy(ctx, src, "oci:"+c.LayoutGzip+":"+name); err != nil {
			return fmt.Errorf("skopeo gzip layout of %s (%s): %w", name, drv, err)
		}
		if err := s.Env.SkopeoCopy(ctx, src, "oci:"+c.LayoutZstd+":"+name, "--dest-compress-format", "zstd"); err != nil {
			return fmt.Errorf("skopeo zstd layout of %s (%s): %w", name, drv, err)
		}
		arch := filepath.Join(set.Work, "oci-archive-"+name+".tar")
		if err := s.Env.SkopeoCopy(ctx, src, "oci-archive:"+arch+":"+name); err != nil {
			return fmt.Errorf("skopeo oci-archive of %s (%s): %w", name, drv, err)
		}
		c.OCIArchives[name] = arch
	}
	remote := s.Registry.Ref(drv + "/layers-zstd:1")
	if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+set.Image("layers").Save, "docker://"+remote,
		"--dest-compress-format", "zstd", "--format", "oci", "--dest-tls-verify=false"); err != nil {
		return fmt.Errorf("skopeo zstd push (%s): %w", drv, err)
	}
	c.ZstdRemote["layers"] = remote
	s.Copies[drv] = c
	return nil
}

func (s *Suite) containerdImports(ctx context.Context, drv string) error {
	set, c := s.Sets[drv], s.Copies[drv]
	if err := s.Containerd.Import(ctx, drv, s.Snapshotter, set.SaveAll); err != nil {
		return fmt.Errorf("ctr import of the %s save: %w", drv, err)
	}
	if err := s.Containerd.Import(ctx, drv+"-native", "native", set.SaveAll); err != nil {
		return fmt.Errorf("ctr import (native) of the %s save: %w", drv, err)
	}
	if err := s.Containerd.Import(ctx, drv+"-oci", s.Snapshotter, c.OCIArchives["layers"], "--index-name", "lc/layers-oci:1"); err != nil {
		return fmt.Errorf("ctr import of the %s oci-archive: %w", drv, err)
	}
	if _, err := s.Containerd.Ctr(ctx, drv+"-zstd", "images", "pull", "--plain-http", "--snapshotter", s.Snapshotter, c.ZstdRemote["layers"]); err != nil {
		return fmt.Errorf("ctr pull of the %s zstd image: %w", drv, err)
	}
	s.CtrNamespaces[drv] = []string{drv, drv + "-native", drv + "-oci", drv + "-zstd"}
	return nil
}

// repoRoot finds the module root from the test's working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// errNoCLI means cmd/layercheck does not exist yet.
var errNoCLI = errors.New("cmd/layercheck has no Go files yet")

// buildLayercheck builds cmd/layercheck into the Env's directory.
func buildLayercheck(env *harness.Env, root string) (string, error) {
	files, _ := filepath.Glob(filepath.Join(root, "cmd", "layercheck", "*.go"))
	var src []string
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			src = append(src, f)
		}
	}
	if len(src) == 0 {
		return "", errNoCLI
	}
	out := env.Path("bin", "layercheck")
	gobin := "go"
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	_, err := env.Run(context.Background(), harness.Cmd{
		Argv:    []string{gobin, "build", "-o", out, "./cmd/layercheck"},
		Dir:     root,
		Timeout: 10 * time.Minute,
		// The Env's TMPDIR would put the go build cache's temp files there; the
		// module and build caches stay the user's.
		Env: []string{"TMPDIR=" + os.TempDir()},
	})
	if err != nil {
		return "", err
	}
	return out, nil
}
