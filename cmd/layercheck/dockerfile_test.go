package main

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// dockerfileLines returns the instructions of the repository's Dockerfile
// (comments and blank lines dropped).
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestDockerfileShape: a golang builder, a FROM scratch final stage with
// the binary as entry point, CA certificates from the builder and a
// non-root user.
func TestDockerfileShape(t *testing.T) {
	lines := dockerfileLines(t)
	final := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			final = i
		}
	}
	if final < 0 || !strings.HasPrefix(lines[0], "ARG GO_VERSION") && !strings.HasPrefix(lines[0], "FROM golang:") {
		t.Fatalf("Dockerfile does not start with a golang builder: %q", lines)
	}
	stage := strings.Join(lines[final:], "\n")
	for _, want := range []string{
		"FROM scratch",
		"COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt",
		"COPY --from=build /out/layercheck /layercheck",
		`ENTRYPOINT ["/layercheck"]`,
	} {
		if !strings.Contains(stage, want) {
			t.Errorf("final stage lacks %q:\n%s", want, stage)
		}
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)$`).FindStringSubmatch(stage)
	if user == nil || user[1] == "0" || strings.HasPrefix(user[1], "0:") || user[1] == "root" {
		t.Errorf("final stage has no non-root USER:\n%s", stage)
	}
}

// TestDockerfileBuild runs the builder stage's go build line, as the
// Dockerfile writes it, from the repository root (no Docker daemon and no
// golang base image are needed), and checks the binary is static (what a
// FROM scratch image needs) and reports the version passed in.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image is linux")
	}
	var build string
	for _, l := range dockerfileLines(t) {
		if strings.HasPrefix(l, "RUN CGO_ENABLED=0 go build ") {
			build = strings.TrimPrefix(l, "RUN ")
		}
	}
	if build == "" {
		t.Fatal("no `RUN CGO_ENABLED=0 go build` line in the Dockerfile")
	}
	out := t.TempDir()
	build = strings.ReplaceAll(build, "/out/", out+"/")
	build = strings.ReplaceAll(build, "${VERSION}", "v9.9.9-test")
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	bin := filepath.Join(out, "layercheck")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader: it would not run FROM scratch")
		}
	}
	v, err := exec.Command(bin, "--version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "v9.9.9-test" {
		t.Errorf("--version = %q (%v), want v9.9.9-test", v, err)
	}
}

// TestGoInstallable guards `go install
// github.com/layercheck/layercheck/cmd/layercheck@latest`: the module path
// is the import path, the command is a main package at cmd/layercheck, and
// go.mod has no replace or exclude directive (go install pkg@version
// refuses a main module that has them).
func TestGoInstallable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if strings.TrimSpace(lines[0]) != "module github.com/layercheck/layercheck" {
		t.Errorf("go.mod starts with %q, want module github.com/layercheck/layercheck", lines[0])
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && (f[0] == "replace" || f[0] == "exclude") {
			t.Errorf("go.mod:%d: %q: go install …@latest refuses modules with replace or exclude directives", i+1, l)
		}
	}
	src, err := os.ReadFile("main.go")
	if err != nil || !strings.Contains(string(src), "\npackage main\n") && !strings.HasPrefix(string(src), "package main\n") {
		t.Errorf("cmd/layercheck/main.go is not package main (%v)", err)
	}
}
