package docker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

// Options configure an audit.
type Options struct {
	// Driver selects the graph driver when image/ holds several driver
	// directories (a host that switched drivers); empty: the only one.
	Driver string
	// Images selects images by reference ("nginx:latest", "nginx",
	// "nginx@sha256:…") or by image ID prefix ("sha256:ab12", "ab12"). Empty:
	// audit everything (every image, layer, container layer and leftover).
	Images []string
	// Jobs is how many layers are rebuilt at once (0: 1).
	Jobs int
	// MaxFileSize bounds every metadata file read into memory (configs,
	// repositories.json, container configs) (0: 16 MiB).
	MaxFileSize int64
	// Pass sets the limits of the pass over each rebuilt layer; its
	// Observers and Taps are not used.
	Pass verify.PassOptions
	// MaxFindingsPerCheck bounds the findings of one check on one layer or
	// directory; the rest are summed up in one more finding (0: 50).
	MaxFindingsPerCheck int
	// Progress is called after each layer with the bytes rebuilt. It may be
	// called from several goroutines at once.
	Progress func(location string, bytes int64)
	// Analysis, when set, runs the layer analysis (verify.LayerAnalyzer) in
	// the pass over each rebuilt layer, once per layer however many images
	// share it, and adds each selected image's analysis, combined base
	// layer first as the verifier does, to its report.Image.
	Analysis *verify.AnalysisOptions
}

// Drivers are the graph drivers whose stores layercheck audits.
var Drivers = []string{"overlay2", "fuse-overlayfs", "vfs", "btrfs", "zfs"}

// ErrNotDockerRoot is returned by Open for a directory that is not a Docker
// graph-driver data root (no image/<driver> directory). A Docker daemon using
// the containerd image store keeps its images under containerd's root instead.
var ErrNotDockerRoot = errors.New("not a Docker graph-driver data root")

// ErrUnsupportedDriver is returned by Open for a graph driver layercheck does
// not audit (aufs, devicemapper, windowsfilter…).
var ErrUnsupportedDriver = errors.New("graph driver not supported")

// Store is a Docker graph-driver data root opened for a read-only audit.
type Store struct {
	root   string // absolute data root
	driver string
	opts   Options
}

// Open finds the graph driver of the data root at root from its image/<driver>
// directory. It reads only directory listings; nothing is opened for writing,
// now or later.
func Open(root string, opts Options) (*Store, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("auditing a Docker host store: %w on %s (Linux only)", ErrUnsupportedDriver, runtime.GOOS)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening Docker data root %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("opening Docker data root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening Docker data root %s: not a directory", abs)
	}
	ents, err := os.ReadDir(filepath.Join(abs, "image"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			hint := ""
			if _, cerr := os.Stat(filepath.Join(abs, "containerd")); cerr == nil {
				hint = " (a Docker daemon using the containerd image store keeps images in containerd's store)"
			}
			return nil, fmt.Errorf("%s has no image/ directory: %w%s", abs, ErrNotDockerRoot, hint)
		}
		return nil, fmt.Errorf("opening Docker data root %s: %w", abs, err)
	}
	var found, unsupported []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if knownDriver(e.Name()) {
			found = append(found, e.Name())
		} else {
			unsupported = append(unsupported, e.Name())
		}
	}
	s := &Store{root: abs, opts: opts}
	switch {
	case opts.Driver != "":
		if !knownDriver(opts.Driver) {
			return nil, fmt.Errorf("graph driver %q: %w (layercheck audits %s)", opts.Driver, ErrUnsupportedDriver, strings.Join(Drivers, ", "))
		}
		if fi, err := os.Stat(filepath.Join(abs, "image", opts.Driver)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s has no image/%s directory: %w", abs, opts.Driver, ErrNotDockerRoot)
		}
		s.driver = opts.Driver
	case len(found) == 1:
		s.driver = found[0]
	case len(found) > 1:
		// A host that switched drivers keeps the old image/<driver>; the
		// one whose driver directory exists is normally the live one.
		var live []string
		for _, d := range found {
			if fi, err := os.Stat(filepath.Join(abs, d)); err == nil && fi.IsDir() {
				live = append(live, d)
			}
		}
		if len(live) != 1 {
			return nil, fmt.Errorf("%s holds image stores for several graph drivers (%s); choose one with the driver option", abs, strings.Join(found, ", "))
		}
		s.driver = live[0]
	case len(unsupported) > 0:
		return nil, fmt.Errorf("%s: image store of graph driver %s: %w (layercheck audits %s)", abs, strings.Join(unsupported, ", "), ErrUnsupportedDriver, strings.Join(Drivers, ", "))
	default:
		return nil, fmt.Errorf("%s has no image/<driver> directory: %w", abs, ErrNotDockerRoot)
	}
	return s, nil
}

func knownDriver(d string) bool {
	for _, k := range Drivers {
		if k == d {
			return true
		}
	}
	return false
}

// Root returns the absolute data root.
func (s *Store) Root() string { return s.root }

// Driver returns the graph driver audited.
func (s *Store) Driver() string { return s.driver }

// String names the store for reports: "/var/lib/docker (overlay2)".
func (s *Store) String() string { return s.root + " (" + s.driver + ")" }

// Audit checks the store and adds images, findings and problems to b. It
// returns an error only when the store could not be audited at all (the
// selection matches nothing, cancellation); everything wrong with the data
// is a finding, and what could not be read is a problem.
//
// Nothing under the data root is written, renamed, mounted or locked: files
// are opened read-only, BuildKit's database is read from a private copy.
func (s *Store) Audit(ctx context.Context, b *report.Builder) error {
	a, err := newAudit(s, b)
	if err != nil {
		return err
	}
	defer a.close()
	return a.run(ctx)
}

// driverLayout says where a graph driver keeps a cache-id's data.
type driverLayout struct {
	name string
	// dirRel is the directory whose entries are cache-ids (and mount-ids).
	dirRel string
	// overlay: overlay2 and fuse-overlayfs (<id>/diff, link, lower, l/).
	overlay bool
	// fullRoot: each cache dir holds the complete rootfs (vfs, btrfs, zfs).
	fullRoot bool
	// overlayWhiteouts: whiteouts are 0/0 char devices and opaque xattrs
	// (overlay2); fuse-overlayfs keeps the .wh. files.
	overlayWhiteouts bool
}

func layoutOf(driver string) driverLayout {
	switch driver {
	case "overlay2":
		return driverLayout{name: driver, dirRel: "overlay2", overlay: true, overlayWhiteouts: true}
	case "fuse-overlayfs":
		return driverLayout{name: driver, dirRel: "fuse-overlayfs", overlay: true}
	case "vfs":
		return driverLayout{name: driver, dirRel: "vfs/dir", fullRoot: true}
	case "btrfs":
		return driverLayout{name: driver, dirRel: "btrfs/subvolumes", fullRoot: true}
	case "zfs":
		return driverLayout{name: driver, dirRel: "zfs/graph", fullRoot: true}
	}
	return driverLayout{name: driver, dirRel: driver}
}

// cacheDir is the driver directory of id, relative to the data root.
func (d driverLayout) cacheDir(id string) string { return d.dirRel + "/" + id }

// layerRoot is the directory holding a cache-id's files.
func (d driverLayout) layerRoot(id string) string {
	if d.overlay {
		return d.dirRel + "/" + id + "/diff"
	}
	return d.dirRel + "/" + id
}

// userns returns the uid/gid offsets of a --userns-remap data root, whose
// directory is named <uid>.<gid> after the remapped root user.
func userns(root string) (uid, gid int) {
	m := regexp.MustCompile(`^(\d+)\.(\d+)$`).FindStringSubmatch(filepath.Base(root))
	if m == nil {
		return 0, 0
	}
	u, err1 := strconv.Atoi(m[1])
	g, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return u, g
}

func sortedKeys[V any](m map[string]V) []string { return diskcheck.SortedKeys(m) }
