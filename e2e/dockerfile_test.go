//go:build e2e

package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/layercheck/layercheck/report"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/layercheck/layercheck/e2e/harness"
)

// TestDockerfile builds the repository's Dockerfile, unchanged, with the
// legacy builder of the suite's dockerd and no network, and runs the image.
//
// The golang:<GO_VERSION> base the Dockerfile names cannot be pulled here,
// so the test makes a stand-in with `docker import`: this machine's Go
// toolchain at /usr/local/go, the static busybox with its applets as /bin,
// the host's CA bundle, and a module cache holding exactly the module's
// dependencies (filled offline from the user's module cache), with
// GOPROXY=off so the Dockerfile's `go mod download` can only read that
// cache. The module cache is filled in a temporary directory from a copy
// of go.mod and go.sum, from the user's module cache first and the user's
// GOPROXY for what it lacks (a machine that ran only `make demo` holds no
// test-only modules), so the checkout is never written: the test fails if
// go.mod, go.sum or `git status` differ after it. Then: the image runs as
// 65534:65534 with /layercheck as entry
// point, its two layers hold only the CA bundle and the binary (read from
// a docker save that layercheck itself verifies), it verifies the bundled
// sample from a read-only bind mount without network, and --version
// prints the VERSION build argument.
func TestDockerfile(t *testing.T) {
	s := need(t)
	if s.LayercheckErr != nil {
		t.Skipf("no layercheck binary to verify the image's save with: %v", s.LayercheckErr)
	}
	d := s.Sets[s.Drivers[0]].Docker
	ctx := context.Background()
	before := checkoutState(t, s.RepoRoot)
	t.Cleanup(func() {
		if after := checkoutState(t, s.RepoRoot); after != before {
			t.Errorf("TestDockerfile changed the checkout (a test never writes into the source tree):\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	goVersion := dockerfileGoVersion(t, s.RepoRoot)
	builder := "golang:" + goVersion
	t0 := time.Now()
	importGoBuilder(t, s, d, builder)
	t.Logf("%s stand-in imported in %v", builder, time.Since(t0).Round(time.Second))

	// The build context is the committed tree (git archive HEAD) on stdin:
	// no bin/, no .git, nothing uncommitted.
	const tag = "lc/layercheck:e2e"
	t0 = time.Now()
	archive, err := exec.CommandContext(ctx, "git", "-C", s.RepoRoot, "archive", "--format=tar", "HEAD").Output()
	if err != nil {
		t.Fatalf("git archive HEAD: %v", err)
	}
	if _, err := dockerRun(ctx, s, d, bytes.NewReader(archive), 20*time.Minute,
		"build", "--network", "none", "--build-arg", "VERSION=e2e", "--tag", tag, "-"); err != nil {
		t.Fatalf("docker build of the repository's Dockerfile: %v", err)
	}
	t.Logf("image built in %v", time.Since(t0).Round(time.Second))

	// The config: non-root user, the binary as entry point.
	out, err := d.CLI(ctx, "image", "inspect", "--format", "{{json .Config}}", tag)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		User       string
		Entrypoint []string
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("decoding the image config %q: %v", out, err)
	}
	if cfg.User != "65534:65534" {
		t.Errorf("config User = %q, want 65534:65534", cfg.User)
	}
	if !slices.Equal(cfg.Entrypoint, []string{"/layercheck"}) {
		t.Errorf("config Entrypoint = %q, want [/layercheck]", cfg.Entrypoint)
	}

	// Its save: two layers, the CA bundle and the binary, nothing else; and
	// layercheck verifies the save clean.
	save := filepath.Join(t.TempDir(), "layercheck-image.tar")
	if _, err := d.CLI(ctx, "save", "-o", save, tag); err != nil {
		t.Fatal(err)
	}
	files := saveFiles(t, save)
	want := [][]string{
		{"etc/", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt"},
		{"layercheck"},
	}
	if len(files) != len(want) {
		t.Fatalf("the image has %d layers %q, want 2 (CA bundle, binary)", len(files), files)
	}
	for i := range want {
		if !slices.Equal(files[i], want[i]) {
			t.Errorf("layer %d holds %q, want %q", i, files[i], want[i])
		}
	}
	run := layercheck(t, s, "tar", save, "-o", "json")
	requireClean(t, "layercheck tar of the image's docker save", run)
	if n := len(run.Report.Images); n != 1 || len(run.Report.Images[0].Layers) != 2 {
		t.Errorf("layercheck tar of the save: %d images, want 1 with 2 layers", n)
	}

	// The image verifies the bundled sample from a read-only mount.
	sample := filepath.Join(s.RepoRoot, "testdata")
	out, err = d.CLI(ctx, "run", "--rm", "--network", "none", "-v", sample+":/work:ro", tag, "tar", "/work/sample.tar")
	if err != nil {
		t.Fatalf("docker run %s tar /work/sample.tar: %v\n%s", tag, err, out)
	}
	if !regexpOK.Match(out) {
		t.Errorf("docker run %s tar /work/sample.tar printed no OK verdict:\n%s", tag, out)
	}
	// As the DaemonSet runs it: root without privileges (every capability
	// dropped but DAC_READ_SEARCH), a read-only root filesystem, the data root
	// mounted read-only at its own path. A copy of this dockerd's data root
	// audits clean (overlay2 without CAP_SYS_ADMIN cannot see opaque markers:
	// a problem saying so, exit 3, is the one thing allowed); a byte flipped in
	// a copy is named.
	daemonSet := func(root string) ([]byte, error) {
		return d.CLI(ctx, "run", "--rm", "--network", "none", "--user", "0:0", "--cap-drop", "ALL", "--cap-add", "DAC_READ_SEARCH",
			"--read-only", "--tmpfs", "/tmp", "-v", root+":/var/lib/docker:ro", tag, "host", "--no-progress", "-o", "json")
	}
	clean := s.Env.Corrupt(t, d.DataRoot)
	out, err = daemonSet(clean.Path)
	var rep report.Report
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("the image's host audit printed no JSON report (%v): %v\n%s", err, jerr, out)
	}
	if rep.Summary.Errors != 0 || rep.Summary.Images == 0 {
		t.Errorf("the image's host audit of a copy of the data root: %d errors, %d images, want 0 and some", rep.Summary.Errors, rep.Summary.Images)
	}
	for _, p := range rep.Problems {
		if !strings.Contains(p.Message, "CAP_SYS_ADMIN") {
			t.Errorf("the image's host audit: problem %s: %s", p.Subject, p.Message)
		}
	}
	damaged := s.Env.Corrupt(t, d.DataRoot)
	rel, size := largestFile(t, damaged.Path, layerDir(t, damaged.Path, d.Driver, s.Sets[s.Drivers[0]].Image("layers").ChainIDs[0]))
	if err := damaged.FlipByte(rel, size/2); err != nil {
		t.Fatal(err)
	}
	out, err = daemonSet(damaged.Path)
	if err == nil || !strings.Contains(string(out), "host-file-crc") {
		t.Errorf("the image's host audit of a copy with %s flipped: err %v, no host-file-crc:\n%.2000s", rel, err, out)
	}

	out, err = d.CLI(ctx, "run", "--rm", "--network", "none", tag, "--version")
	if err != nil {
		t.Fatalf("docker run %s --version: %v", tag, err)
	}
	if v := strings.TrimSpace(string(out)); v != "e2e" {
		t.Errorf("--version printed %q, want e2e (the VERSION build argument)", v)
	}
}

// regexpOK matches the verdict line of a clean verification of the sample.
var regexpOK = regexp.MustCompile(`(?m)^OK: 1 image, 2 layers verified`)

// dockerRun runs the docker CLI against d with stdin and a timeout.
func dockerRun(ctx context.Context, s *Suite, d *harness.Docker, stdin io.Reader, timeout time.Duration, args ...string) ([]byte, error) {
	return s.Env.Run(ctx, harness.Cmd{Argv: append([]string{s.Env.Tools.Docker}, args...), Env: d.ClientEnv(), Stdin: stdin, Timeout: timeout})
}

// dockerfileGoVersion returns the default of the Dockerfile's ARG GO_VERSION.
func dockerfileGoVersion(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ARG GO_VERSION="); ok && v != "" {
			return v
		}
	}
	t.Fatal("the Dockerfile has no `ARG GO_VERSION=<default>`")
	return ""
}

// importGoBuilder makes the offline stand-in for the golang base image and
// tags it in d.
func importGoBuilder(t *testing.T, s *Suite, d *harness.Docker, tag string) {
	t.Helper()
	ctx := context.Background()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go toolchain to put in the builder image: %v", err)
	}
	goroot, err := exec.Command(gobin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	mods := fillModCache(t, s, gobin)
	busybox, err := s.Env.ReadBusybox()
	if err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(s.Env.Tools.Busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatalf("the host's CA bundle for the builder image: %v", err)
	}

	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeGoBuilder(pw, strings.TrimSpace(string(goroot)), mods, busybox, strings.Fields(string(list)), ca))
	}()
	defer pr.Close()
	_, err = dockerRun(ctx, s, d, pr, 10*time.Minute, "import",
		"--change", "ENV PATH=/usr/local/go/bin:/go/bin:/bin",
		"--change", "ENV GOPATH=/go",
		"--change", "ENV GOMODCACHE=/go/pkg/mod",
		"--change", "ENV GOCACHE=/tmp/go-build",
		"--change", "ENV GOPROXY=off",
		"--change", "ENV GOFLAGS=-mod=mod",
		"--change", "ENV GOTOOLCHAIN=local",
		"--change", "ENV HOME=/root",
		"-", tag)
	if err != nil {
		t.Fatalf("docker import of the %s stand-in: %v", tag, err)
	}
}

// fillModCache returns a fresh module cache holding exactly what the
// Dockerfile's `go mod download` needs: every module go.mod requires, test-
// only ones included. It runs `go mod download` on a copy of go.mod and
// go.sum in a temporary directory, reading the user's module cache first and
// the user's GOPROXY for the rest, so nothing in the checkout changes. The
// copy of go.sum must come out unchanged: the stand-in builds with
// GOPROXY=off, where a missing checksum cannot be looked up.
func fillModCache(t *testing.T, s *Suite, gobin string) string {
	t.Helper()
	goenv := func(name string) string {
		out, err := exec.Command(gobin, "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	proxy := "file://" + filepath.ToSlash(filepath.Join(goenv("GOMODCACHE"), "cache", "download"))
	if p := goenv("GOPROXY"); p != "" && p != "off" {
		proxy += "," + p
	}
	tmp := t.TempDir()
	mods, modDir := filepath.Join(tmp, "mod"), filepath.Join(tmp, "module")
	if err := os.Mkdir(modDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sums := map[string][]byte{}
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(s.RepoRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		sums[name] = b
		if err := os.WriteFile(filepath.Join(modDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Env.Run(context.Background(), harness.Cmd{
		Argv: []string{gobin, "mod", "download"},
		Dir:  modDir,
		// -modcacherw: TempDir can remove the cache.
		Env: []string{"GOFLAGS=-mod=mod -modcacherw", "GOMODCACHE=" + mods, "GOPROXY=" + proxy, "GOTOOLCHAIN=local",
			"GOWORK=off", "TMPDIR=" + os.TempDir()},
		Timeout: 10 * time.Minute,
	})
	if err != nil {
		t.Fatalf("filling a module cache for the builder (GOPROXY=%s): %v", proxy, err)
	}
	got, err := os.ReadFile(filepath.Join(modDir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sums["go.sum"]) {
		t.Fatalf("go.sum lacks checksums that `go mod download` needs (the Dockerfile's `RUN go mod download` cannot add them offline); run `go mod download` and commit go.sum. It added:\n%s",
			addedLines(sums["go.sum"], got))
	}
	return mods
}

// addedLines returns the lines of after that before lacks.
func addedLines(before, after []byte) string {
	had := map[string]bool{}
	for _, l := range strings.Split(string(before), "\n") {
		had[l] = true
	}
	var out []string
	for _, l := range strings.Split(string(after), "\n") {
		if !had[l] {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkoutState describes what a test must not change in the checkout at
// root: the hashes of go.mod and go.sum and `git status --porcelain`.
func checkoutState(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s sha256:%x\n", name, sha256.Sum256(data))
	}
	status, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=all").Output()
	if err != nil {
		t.Fatalf("git status in %s: %v", root, err)
	}
	b.Write(status)
	return b.String()
}

// writeGoBuilder writes the builder's root filesystem as a tar: GOROOT at
// usr/local/go (without its test suite and API lists), the module cache at
// go/pkg/mod, busybox and its applets in bin, the CA bundle, tmp and root.
func writeGoBuilder(w io.Writer, goroot, mods string, busybox []byte, applets []string, ca []byte) error {
	tw := tar.NewWriter(w)
	mtime := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: mtime}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []struct {
		name string
		mode int64
	}{{"bin", 0o755}, {"etc", 0o755}, {"etc/ssl", 0o755}, {"etc/ssl/certs", 0o755}, {"go", 0o755}, {"go/pkg", 0o755},
		{"root", 0o700}, {"tmp", 0o1777}, {"usr", 0o755}, {"usr/local", 0o755}} {
		if err := dir(d.name, d.mode); err != nil {
			return err
		}
	}
	if err := file("etc/ssl/certs/ca-certificates.crt", 0o644, ca); err != nil {
		return err
	}
	if err := file("bin/busybox", 0o755, busybox); err != nil {
		return err
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: mtime}); err != nil {
			return err
		}
	}
	if err := copyTree(tw, goroot, "usr/local/go", func(rel string) bool {
		return rel == "test" || rel == "api" || rel == "doc"
	}); err != nil {
		return fmt.Errorf("GOROOT %s: %w", goroot, err)
	}
	if err := copyTree(tw, mods, "go/pkg/mod", func(string) bool { return false }); err != nil {
		return fmt.Errorf("module cache: %w", err)
	}
	return tw.Close()
}

// copyTree adds the tree at src to tw below prefix, skipping the
// slash-separated relative paths skip returns true for.
func copyTree(tw *tar.Writer, src, prefix string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && skip(rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = path.Join(prefix, rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}

// saveFiles returns, for each layer of the only image of a docker save
// archive (base first), the names of the entries of its tar.
func saveFiles(t *testing.T, save string) [][]string {
	t.Helper()
	m, err := harness.DockerSaveLayers(save)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 {
		t.Fatalf("the save holds %d images, want 1", len(m))
	}
	members := map[string][]string{}
	for _, l := range m[0].Layers {
		members[l] = nil
	}
	f, err := os.Open(save)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", save, err)
		}
		if _, ok := members[h.Name]; !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		lr := tar.NewReader(tr)
		names := []string{}
		for {
			lh, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reading layer %s of %s: %v", h.Name, save, err)
			}
			names = append(names, lh.Name)
		}
		slices.Sort(names)
		members[h.Name] = names
	}
	out := make([][]string, len(m[0].Layers))
	for i, l := range m[0].Layers {
		if members[l] == nil {
			t.Fatalf("layer %s of manifest.json is not a regular member of %s", l, save)
		}
		out[i] = members[l]
	}
	return out
}
