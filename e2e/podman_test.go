//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/layercheck/layercheck/e2e/harness"
	"github.com/layercheck/layercheck/hoststore/cstorage"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store/storetest"
	"golang.org/x/sys/unix"
)

// These tests run layercheck on containers-storage graph roots that Debian's
// podman and buildah wrote (rootful, offline, private roots; overlay where the
// kernel mounts it, and vfs): `podman load` of the suite's docker saves,
// `podman pull` from the loopback registry of gzip and zstd pushes and of a
// dockerd push, a `buildah commit` and a `podman create`d container.

// podmanStore is one graph root and podman's own answers about it.
type podmanStore struct {
	p      *harness.Podman
	set    *harness.Set          // the dockerd set whose saves were loaded
	images []harness.PodmanImage // podman image inspect of every image, after every step
	pulled map[string]string     // what was pulled: "gzip", "zstd", "docker" -> registry reference
	ctrID  string                // the podman-created container, "" if create was refused
	wctr   string                // the buildah working container
	byName map[string]*harness.PodmanImage
}

// podmanImage returns the image podman knows under ref (a RepoTag).
func (ps *podmanStore) image(t *testing.T, ref string) harness.PodmanImage {
	t.Helper()
	img, ok := ps.byName[ref]
	if !ok {
		t.Fatalf("podman %s has no image %s", ps.p.Driver, ref)
	}
	return *img
}

// loadedID is the ID of a dockerd image of set as podman loads it: the
// same config, so the same ID (hex).
func loadedID(set *harness.Set, name string) string {
	return strings.TrimPrefix(set.Image(name).Inspect.ID, "sha256:")
}

// loaded returns the image podman loaded from the save of the set's image
// name.
func (ps *podmanStore) loaded(t *testing.T, name string) harness.PodmanImage {
	t.Helper()
	id := loadedID(ps.set, name)
	for _, img := range ps.images {
		if img.ID == id {
			return img
		}
	}
	t.Fatalf("podman %s has no image %s (%s)", ps.p.Driver, id, name)
	return harness.PodmanImage{}
}

// podmanPullKinds are the pulls of a podman store (podmanStore.pulled).
var podmanPullKinds = []string{"gzip", "zstd", "docker", "fresh"}

// writeUniqueSave writes a docker save of a two-layer image whose layers no
// other push of the suite has: a file saying text, and a second one.
func writeUniqueSave(path, tag, text string) error {
	layer := func(name, body string) ([]byte, error) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, err
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	l0, err := layer("unique.txt", text+"\n")
	if err != nil {
		return err
	}
	l1, err := layer("etc/second.txt", "second layer of "+text+"\n")
	if err != nil {
		return err
	}
	var save bytes.Buffer
	img := harness.SaveImage{
		RepoTags: []string{tag},
		Layers:   [][]byte{l0, l1},
		History:  []harness.HistoryStep{{CreatedBy: "layercheck e2e: unique file"}, {CreatedBy: "layercheck e2e: second file"}},
		Cmd:      []string{"/bin/sh"},
	}
	if err := harness.WriteDockerSave(&save, []harness.SaveImage{img}); err != nil {
		return err
	}
	return os.WriteFile(path, save.Bytes(), 0o644)
}

var (
	podmanOnce    sync.Once
	podmanStores  []*podmanStore
	podmanErr     error
	podmanSkipped = map[string]string{}
)

// podmanDrivers are the graph drivers the podman tests use, overlay first.
var podmanDrivers = []string{"overlay", "vfs"}

// needPodman returns the suite and the podman stores, made once for the
// test binary. overlay is left out, with the reason logged, when the kernel
// refuses overlay mounts here or podman refuses the driver; vfs must work.
func needPodman(t *testing.T) (*Suite, []*podmanStore) {
	t.Helper()
	s := need(t)
	if _, _, err := harness.FindPodman(); err != nil {
		if required() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	podmanOnce.Do(func() {
		for _, drv := range podmanDrivers {
			if drv == "overlay" && s.Overlay != nil {
				podmanSkipped[drv] = "the kernel refuses overlay mounts here: " + s.Overlay.Error()
				s.Env.Logf("podman overlay skipped: %s", podmanSkipped[drv])
				continue
			}
			ps, err := makePodmanStore(s, drv)
			if err != nil && drv == "overlay" && ps == nil {
				podmanSkipped[drv] = err.Error()
				s.Env.Logf("podman overlay skipped, podman refuses the driver: %v", err)
				continue
			}
			if err != nil {
				podmanErr = fmt.Errorf("podman %s: %w", drv, err)
				return
			}
			podmanStores = append(podmanStores, ps)
		}
	})
	if podmanErr != nil {
		t.Fatal(podmanErr)
	}
	for drv, why := range podmanSkipped {
		t.Logf("podman %s skipped: %s", drv, why)
	}
	return s, podmanStores
}

// dockerSetFor picks the dockerd set whose saves a podman store loads: the
// daemon of the matching driver when it runs.
func dockerSetFor(s *Suite, drv string) *harness.Set {
	want := map[string]string{"overlay": "overlay2", "vfs": "vfs"}[drv]
	if set, ok := s.Sets[want]; ok && slices.Contains(s.Drivers, want) {
		return set
	}
	return s.Sets[s.Drivers[0]]
}

// makePodmanStore fills a new graph root. A nil store with an error means
// podman refused to start with the driver.
func makePodmanStore(s *Suite, drv string) (*podmanStore, error) {
	ctx := context.Background()
	p, err := s.Env.NewPodman(drv, drv)
	if err != nil {
		return nil, err
	}
	if err := p.Probe(ctx); err != nil {
		return nil, err
	}
	ps := &podmanStore{p: p, set: dockerSetFor(s, drv), pulled: map[string]string{}}
	pol := "--signature-policy=" + p.Policy

	// Images of the dockerd set, from their docker saves; multistage is
	// left out so that its pull below makes a new image.
	for _, name := range []string{"busybox", "rootfs", "layers", "crafted", "commit"} {
		if _, err := p.CLI(ctx, "load", pol, "--input", ps.set.Image(name).Save); err != nil {
			return ps, fmt.Errorf("podman load of %s: %w", name, err)
		}
	}
	// Pulls from the loopback registry:
	//   - gzip: skopeo pushes an image of its own with gzip layers (Docker
	//     schema 2). Its layers are new to the registry: skopeo 1.9 reuses a
	//     blob the registry already holds in another compression (its blob
	//     info cache knows the suite's zstd push of the layers image) and
	//     then writes an OCI manifest with zstd layers, whatever
	//     --dest-compress-format says.
	//   - zstd: skopeo pushes the layers image with zstd layers (OCI).
	//   - docker: dockerd's push of crafted, which podman loaded above:
	//     the image keeps both manifests.
	//   - fresh: dockerd's push of multistage, not loaded.
	gz := filepath.Join(p.Dir, "tmp", "gzip-save.tar")
	if err := writeUniqueSave(gz, "lc/podman-gzip:1", "podman "+drv); err != nil {
		return ps, err
	}
	pushes := []struct {
		kind, repo, save string
		extra            []string
	}{
		{"gzip", "gzip", gz, []string{"--dest-compress-format", "gzip"}},
		{"zstd", "layers-zstd", ps.set.Image("layers").Save, []string{"--dest-compress-format", "zstd", "--format", "oci"}},
	}
	for _, push := range pushes {
		remote := s.Registry.Ref("podman-" + drv + "/" + push.repo + ":1")
		args := append([]string{"--dest-tls-verify=false"}, push.extra...)
		if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+push.save, "docker://"+remote, args...); err != nil {
			return ps, fmt.Errorf("skopeo push (%s): %w", push.kind, err)
		}
		ps.pulled[push.kind] = remote
	}
	ps.pulled["docker"] = ps.set.Image("crafted").Remote
	ps.pulled["fresh"] = ps.set.Image("multistage").Remote
	for _, kind := range podmanPullKinds {
		if _, err := p.CLI(ctx, "pull", pol, "--tls-verify=false", "--quiet", ps.pulled[kind]); err != nil {
			return ps, fmt.Errorf("podman pull (%s): %w", kind, err)
		}
	}
	// buildah: a working container from a loaded image, a file copied in,
	// committed; the working container stays.
	out, err := p.BuildahCLI(ctx, "from", pol, "--pull=never", "--name", "lc-buildah-work", loadedID(ps.set, "busybox"))
	if err != nil {
		return ps, fmt.Errorf("buildah from: %w", err)
	}
	ps.wctr = strings.TrimSpace(string(out))
	added := filepath.Join(p.Dir, "tmp", "added.txt")
	if err := os.WriteFile(added, []byte("added by buildah copy\n"), 0o640); err != nil {
		return ps, err
	}
	steps := [][]string{
		{"copy", "--chown", "1000:1000", ps.wctr, added, "/added.txt"},
		{"config", "--label", "org.layercheck.e2e=buildah", "--env", "BUILT_BY=buildah", ps.wctr},
		{"commit", pol, "--quiet", ps.wctr, "localhost/lc/buildah:1"},
		{"umount", ps.wctr},
	}
	for _, st := range steps {
		if _, err := p.BuildahCLI(ctx, st...); err != nil {
			return ps, fmt.Errorf("buildah %s: %w", st[0], err)
		}
	}
	// A created container (never started: no runtime is needed).
	out, err = p.CLI(ctx, "create", "--name", "lc-created", "--network", "none", loadedID(ps.set, "layers"), "/bin/busybox", "true")
	if err != nil {
		s.Env.Logf("podman %s: create refused, the store has no podman container: %v", drv, err)
	} else {
		ps.ctrID = strings.TrimSpace(string(out))
	}
	if ps.images, err = p.AllImages(ctx); err != nil {
		return ps, err
	}
	ps.byName = map[string]*harness.PodmanImage{}
	for i := range ps.images {
		for _, n := range ps.images[i].RepoTags {
			ps.byName[n] = &ps.images[i]
		}
	}
	if m, _ := harness.MountsUnder(p.Root); len(m) > 0 {
		return ps, fmt.Errorf("podman/buildah left mounts under the graph root: %v", m)
	}
	s.Env.Logf("podman %s: %d images, containers: buildah %s, podman %q", drv, len(ps.images), ps.wctr, ps.ctrID)
	return ps, nil
}

// lockState describes every *.lock file under root: inode, size, mtime,
// ctime. Equal results before and after an audit mean it neither created,
// replaced nor wrote a lock file.
func lockState(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".lock") {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fmt.Sprintf("%s ino=%d size=%d mtime=%d.%09d ctime=%d.%09d", rel, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// holdLocks takes an exclusive POSIX write lock, as podman does while it
// writes, on every *.lock file under root and returns a function that drops
// them. An audit that took any lock would wait (and time out) or fail.
func holdLocks(t *testing.T, root string) func() {
	t.Helper()
	var files []*os.File
	release := func() {
		for _, f := range files {
			f.Close() // closing drops the process's POSIX locks
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".lock") || !d.Type().IsRegular() {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		files = append(files, f)
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
		if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
			return fmt.Errorf("locking %s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		release()
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no lock file under %s", root)
	}
	return release
}

// noWarnings fails the test on any warning finding: a clean real store has
// none (info notes are allowed).
func noWarnings(t *testing.T, what string, r *report.Report) {
	t.Helper()
	if r.Summary.Warnings != 0 {
		t.Errorf("%s: %d warnings on a clean store:\n%s", what, r.Summary.Warnings, hostFindingsText(r))
	}
}

// TestPodmanLive audits each live graph root: exit 0, no error or warning
// finding, no problem, and every image as podman inspects it (ID, digest,
// names, diffIDs). The tree is unchanged afterwards and no *.lock file was
// created or touched, though podman's locks are held during the audit.
func TestPodmanLive(t *testing.T) {
	s, stores := needPodman(t)
	for _, ps := range stores {
		t.Run(ps.p.Driver, func(t *testing.T) {
			root := ps.p.Root
			before, locks := storetest.TreeHash(t, root), lockState(t, root)
			release := holdLocks(t, root)
			run := layercheck(t, s, "host", "--root", root, "-o", "json")
			release()
			if d := storetest.Diff(before, storetest.TreeHash(t, root)); d != "" {
				t.Errorf("the audit changed the live graph root:\n%s", d)
			}
			if d := storetest.Diff(locks, lockState(t, root)); d != "" {
				t.Errorf("the audit created or touched lock files:\n%s", d)
			}
			requireClean(t, "layercheck host on the live podman "+ps.p.Driver+" root", run)
			noWarnings(t, "layercheck host", run.Report)
			checkPodmanImages(t, run.Report, ps.images)
			if len(run.Report.Images) != len(ps.images) {
				t.Errorf("the report has %d images, podman %d", len(run.Report.Images), len(ps.images))
			}

			// The pulls are what they claim to be.
			for kind, want := range map[string]string{"gzip": "application/vnd.docker.distribution.manifest.v2+json", "zstd": "application/vnd.oci.image.manifest.v1+json"} {
				if got := ps.image(t, ps.pulled[kind]).ManifestType; got != want {
					t.Errorf("the %s pull is a %s, want %s", kind, got, want)
				}
			}

			// One image by name.
			img := ps.image(t, ps.pulled["zstd"])
			one := layercheck(t, s, "host", "--root", root, "-o", "json", ps.pulled["zstd"])
			requireClean(t, "layercheck host IMAGE", one)
			if len(one.Report.Images) != 1 {
				t.Errorf("host %s: %d images in the report, want 1", ps.pulled["zstd"], len(one.Report.Images))
			}
			checkPodmanImages(t, one.Report, []harness.PodmanImage{img})
		})
	}
}

// checkPodmanImages compares each image podman inspected with the report:
// config digest (the image ID), manifest digest, names and diffIDs.
func checkPodmanImages(t *testing.T, r *report.Report, imgs []harness.PodmanImage) {
	t.Helper()
	for _, pi := range imgs {
		img := findImage(r, pi.ConfigDigest())
		if img == nil {
			t.Errorf("podman image %s %v is not in the report", pi.ID, pi.RepoTags)
			continue
		}
		// The report names the manifest containers-storage keeps as the
		// image's instance (the "manifest" item, which containers/image
		// rewrites on every pull: what podman push and save send), podman's
		// Digest the image's digest (images.json "digest", set when the
		// image was first stored). They differ for an image stored twice
		// (loaded, then pulled): both must be among podman's RepoDigests.
		if img.ManifestDigest != pi.Digest {
			if !slices.ContainsFunc(pi.RepoDigests, func(rd string) bool { return strings.HasSuffix(rd, "@"+img.ManifestDigest) }) {
				t.Errorf("image %s: manifest digest %s, podman says %s (repo digests %v)", pi.ID, img.ManifestDigest, pi.Digest, pi.RepoDigests)
			} else {
				t.Logf("image %s %v: the report's manifest %s (the \"manifest\" item), podman's Digest %s", pi.ID, pi.RepoTags, img.ManifestDigest, pi.Digest)
			}
		}
		var diffIDs []string
		for _, l := range img.Layers {
			diffIDs = append(diffIDs, l.DiffID)
		}
		if !slices.Equal(diffIDs, pi.RootFS.Layers) {
			t.Errorf("image %s: diffIDs %v, podman says %v", pi.ID, diffIDs, pi.RootFS.Layers)
		}
		tags := append([]string(nil), img.Tags...)
		want := append([]string(nil), pi.RepoTags...)
		sort.Strings(tags)
		sort.Strings(want)
		if !slices.Equal(tags, want) {
			t.Errorf("image %s: names %v, podman says %v", pi.ID, tags, want)
		}
	}
}

// csRecords are the parts of a graph root's records the corruption table
// needs, read from the live root (only read).
type csRecords struct {
	drv    string
	layers map[string]csLayer // by ID
	images map[string]csImage // by ID
}

type csLayer struct {
	ID         string `json:"id"`
	Parent     string `json:"parent"`
	DiffDigest string `json:"diff-digest"`
}

type csImage struct {
	ID    string   `json:"id"`
	Layer string   `json:"layer"`
	Names []string `json:"names"`
}

func readCSRecords(t *testing.T, root, drv string) *csRecords {
	t.Helper()
	rec := &csRecords{drv: drv, layers: map[string]csLayer{}, images: map[string]csImage{}}
	var layers []csLayer
	var images []csImage
	for _, f := range []struct {
		rel string
		v   any
	}{{drv + "-layers/layers.json", &layers}, {drv + "-images/images.json", &images}} {
		b, err := os.ReadFile(filepath.Join(root, f.rel))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, f.v); err != nil {
			t.Fatalf("%s: %v", f.rel, err)
		}
	}
	for _, l := range layers {
		rec.layers[l.ID] = l
	}
	for _, im := range images {
		rec.images[im.ID] = im
	}
	return rec
}

// chain returns the layers of an image, base first.
func (rec *csRecords) chain(t *testing.T, imageID string) []csLayer {
	t.Helper()
	im, ok := rec.images[imageID]
	if !ok {
		t.Fatalf("no image %s in images.json", imageID)
	}
	var out []csLayer
	for id := im.Layer; id != ""; {
		l, ok := rec.layers[id]
		if !ok || len(out) > 1000 {
			t.Fatalf("the chain of image %s breaks at layer %s", imageID, id)
		}
		out = append([]csLayer{l}, out...)
		id = l.Parent
	}
	return out
}

// dir is the directory holding a layer's files, relative to the root.
func (rec *csRecords) dir(id string) string {
	if rec.drv == "overlay" {
		return filepath.Join("overlay", id, "diff")
	}
	return filepath.Join("vfs", "dir", id)
}

// bigData is the file of an image's big-data item, relative to the root:
// containers-storage keeps a key of lower-case letters, digits and dots as
// it is ("manifest") and any other as "=" and its base64.
func (rec *csRecords) bigData(imageID, key string) string {
	name := key
	if strings.Trim(key, ".0123456789abcdefghijklmnopqrstuvwxyz") != "" {
		name = "=" + base64.StdEncoding.EncodeToString([]byte(key))
	}
	return filepath.Join(rec.drv+"-images", imageID, name)
}

// podmanCase is one corruption of a copy of a real graph root.
type podmanCase struct {
	name    string
	drivers []string // nil: every driver
	apply   func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect
}

func podmanCorruptionCases() []podmanCase {
	base := func(t *testing.T, rec *csRecords, img harness.PodmanImage) csLayer {
		return rec.chain(t, img.ID)[0]
	}
	return []podmanCase{
		{name: "flipped byte in a file", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			l := base(t, rec, img)
			hostMust(t, c.FlipByte(filepath.Join(rec.dir(l.ID), "etc", "passwd"), 3))
			return []expect{{check: cstorage.CSFileCRC, entry: "etc/passwd"}, {check: cstorage.CSLayerDiffID, digest: l.ID}}
		}},
		{name: "truncated file", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			l := base(t, rec, img)
			hostMust(t, c.Truncate(filepath.Join(rec.dir(l.ID), "bin", "busybox"), 50000))
			return []expect{{check: cstorage.CSFileCRC, entry: "bin/busybox"}, {check: cstorage.CSLstatMismatch, entry: "bin/busybox"}, {check: cstorage.CSLayerDiffID, digest: l.ID}}
		}},
		{name: "deleted file", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			l := base(t, rec, img)
			hostMust(t, c.Remove(filepath.Join(rec.dir(l.ID), "etc", "group")))
			return []expect{{check: cstorage.CSLayerMissingFile, entry: "etc/group"}}
		}},
		{name: "added file", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			l := base(t, rec, img)
			hostMust(t, c.WriteFile(filepath.Join(rec.dir(l.ID), "etc", "EVIL"), []byte("evil\n")))
			return []expect{{check: cstorage.CSExtraFile, entry: "etc/EVIL"}}
		}},
		{name: "chmod", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			l := base(t, rec, img)
			p, err := c.File(filepath.Join(rec.dir(l.ID), "data", "empty"))
			hostMust(t, err)
			hostMust(t, os.Chmod(p, 0o755|os.ModeSetuid))
			return []expect{{check: cstorage.CSLstatMismatch, entry: "data/empty"}}
		}},
		{name: "edited diff-digest", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			chain := rec.chain(t, img.ID)
			l, other := chain[1], chain[0]
			rel := rec.drv + "-layers/layers.json"
			hostMust(t, c.Rewrite(rel, func(b []byte) []byte {
				old := `"diff-digest":"` + l.DiffDigest + `"`
				if !strings.Contains(string(b), old) {
					t.Fatalf("%s has no %s", rel, old)
				}
				return []byte(strings.Replace(string(b), old, `"diff-digest":"`+other.DiffDigest+`"`, 1))
			}))
			return []expect{{check: cstorage.CSLayerDiffID}, {check: cstorage.CSImageConfig}}
		}},
		{name: "deleted tar-split", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			l := base(t, rec, img)
			hostMust(t, c.Remove(filepath.Join(rec.drv+"-layers", l.ID+".tar-split.gz")))
			return []expect{{check: cstorage.CSTarSplit, path: l.ID + ".tar-split.gz"}}
		}},
		{name: "deleted layer directory", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			chain := rec.chain(t, img.ID)
			l := chain[len(chain)-1]
			dir := rec.dir(l.ID)
			want := []expect{{check: cstorage.CSLayerDir, path: l.ID}}
			if rec.drv == "overlay" {
				dir = filepath.Dir(dir)
				want = append(want, expect{check: cstorage.CSOverlayLink})
			}
			hostMust(t, c.Remove(dir))
			return want
		}},
		{name: "edited config big data", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			hostMust(t, c.Rewrite(rec.bigData(img.ID, img.ConfigDigest()), func(b []byte) []byte { return append(b, ' ') }))
			return []expect{{check: cstorage.CSImageBigData}, {check: cstorage.CSImageConfig}}
		}},
		{name: "edited manifest big data", apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			hostMust(t, c.Rewrite(rec.bigData(img.ID, "manifest"), func(b []byte) []byte { return append(b, ' ') }))
			return []expect{{check: cstorage.CSImageBigData}}
		}},
		{name: "undone whiteout", drivers: []string{"overlay"}, apply: func(t *testing.T, c *harness.Copy, rec *csRecords, img harness.PodmanImage) []expect {
			// The layers image's second layer removed etc/deleteme: overlay
			// keeps a 0/0 character device.
			l := rec.chain(t, img.ID)[1]
			hostMust(t, c.Remove(filepath.Join(rec.dir(l.ID), "etc", "deleteme")))
			return []expect{{check: cstorage.CSWhiteout}}
		}},
	}
}

// TestPodmanCorruptions damages a copy of each graph root (podman has no
// daemon: nothing writes to it meanwhile) and expects each damage's finding
// with its check ID, on the layers image podman loaded from the docker save.
func TestPodmanCorruptions(t *testing.T) {
	s, stores := needPodman(t)
	for _, ps := range stores {
		t.Run(ps.p.Driver, func(t *testing.T) {
			rec := readCSRecords(t, ps.p.Root, ps.p.Driver)
			img := ps.loaded(t, "layers")
			if len(img.RootFS.Layers) < 3 {
				t.Fatalf("the layers image has %d layers", len(img.RootFS.Layers))
			}
			clean := layercheck(t, s, "host", "--root", s.Env.Corrupt(t, ps.p.Root).Path, "-o", "json")
			requireClean(t, "layercheck host on an untouched copy", clean)
			noWarnings(t, "layercheck host on an untouched copy", clean.Report)
			for _, pc := range podmanCorruptionCases() {
				if pc.drivers != nil && !slices.Contains(pc.drivers, ps.p.Driver) {
					continue
				}
				t.Run(strings.ReplaceAll(pc.name, " ", "_"), func(t *testing.T) {
					c := s.Env.Corrupt(t, ps.p.Root)
					wants := pc.apply(t, c, rec, img)
					run := layercheck(t, s, "host", "--root", c.Path, "-o", "json")
					if run.Code != 1 {
						t.Errorf("exit %d, want 1; stderr: %.2000s", run.Code, run.Stderr)
					}
					if run.Report == nil {
						t.Fatal("no JSON report")
					}
					for _, w := range wants {
						found := false
						for _, f := range run.Report.Findings {
							if w.match(f) {
								found = true
							}
						}
						if !found {
							t.Errorf("no finding %s; got:\n%s", w, podmanFindingsText(run.Report))
						}
					}
					t.Logf("findings:\n%s", podmanFindingsText(run.Report))
				})
			}
		})
	}
}

// podmanFindingsText lists a report's errors, warnings and problems (the
// info notes on shared layers would drown them).
func podmanFindingsText(r *report.Report) string {
	cp := *r
	cp.Findings = slices.DeleteFunc(slices.Clone(r.Findings), func(f report.Finding) bool { return f.Severity < report.Warning })
	return hostFindingsText(&cp)
}

// TestPodmanCompare compares pulled images with their registry sources (and
// compare store checks a save and a reference against the graph root):
// identical (exit 0); after another image is pushed under the tag, exit 1
// with compare-tag-moved.
func TestPodmanCompare(t *testing.T) {
	s, stores := needPodman(t)
	ctx := context.Background()
	for _, ps := range stores {
		t.Run(ps.p.Driver, func(t *testing.T) {
			for _, kind := range podmanPullKinds {
				ref := ps.pulled[kind]
				run := layercheck(t, s, "compare", "host", "--root", ps.p.Root, "-o", "json", ref)
				requireClean(t, "layercheck compare host "+kind+" "+ref, run)
				if findImage(run.Report, ps.image(t, ref).ConfigDigest()) == nil {
					t.Errorf("compare %s: the report lacks the image %s:\n%s", ref, ps.image(t, ref).ID, hostFindingsText(run.Report))
				}
			}

			// A tag of its own, pulled, then moved by a push of another image.
			remote := s.Registry.Ref("podman-" + ps.p.Driver + "/moved:1")
			if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+ps.set.Image("rootfs").Save, "docker://"+remote, "--dest-tls-verify=false"); err != nil {
				t.Fatal(err)
			}
			if _, err := ps.p.CLI(ctx, "pull", "--signature-policy="+ps.p.Policy, "--tls-verify=false", "--quiet", remote); err != nil {
				t.Fatal(err)
			}
			imgs, err := ps.p.InspectImages(ctx, remote)
			if err != nil {
				t.Fatal(err)
			}
			pulled := imgs[0].Digest
			run := layercheck(t, s, "compare", "host", "--root", ps.p.Root, "-o", "json", remote)
			requireClean(t, "layercheck compare host before the move", run)
			// compare store against the graph root: the image's docker
			// save and its registry reference, found by config digest and
			// equal by content; --deep audits the image from disk too.
			for _, args := range [][]string{{ps.set.Image("rootfs").Save}, {"--deep", "docker://" + remote}} {
				run := layercheck(t, s, append([]string{"compare", "store", "--root", ps.p.Root, "-o", "json"}, args...)...)
				requireClean(t, "layercheck compare store "+strings.Join(args, " "), run)
			}
			if err := s.Env.SkopeoCopy(ctx, "docker-archive:"+ps.set.Image("busybox").Save, "docker://"+remote, "--dest-tls-verify=false"); err != nil {
				t.Fatal(err)
			}
			m, err := s.Registry.Manifest(ctx, "podman-"+ps.p.Driver+"/moved", "1")
			if err != nil {
				t.Fatal(err)
			}
			if m.Digest == pulled {
				t.Fatal("the tag did not move")
			}
			run = layercheck(t, s, "compare", "host", "--root", ps.p.Root, "-o", "json", remote)
			if run.Code != 1 {
				t.Fatalf("exit %d after the tag moved, want 1; stderr %s\n%s", run.Code, run.Stderr, hostFindingsText(run.Report))
			}
			moved := compareFindings(run.Report, "compare-tag-moved", report.Error)
			if len(moved) != 1 || moved[0].Expected != m.Digest || moved[0].Actual != pulled {
				t.Fatalf("compare-tag-moved = %+v, want registry %s, host %s", moved, m.Digest, pulled)
			}
			if run.Report.Summary.Errors != 1 {
				t.Errorf("compared with the pulled digest the image is the same, yet:\n%s", hostFindingsText(run.Report))
			}
		})
	}
}
