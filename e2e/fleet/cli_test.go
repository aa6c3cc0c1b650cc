//go:build e2e

package fleet

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/layercheck/layercheck/e2e/harness"
)

// buildCLI builds the layercheck binary into dir.
func buildCLI(t *testing.T, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	out := filepath.Join(dir, "layercheck")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/layercheck")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestHostIntervalCLI: `layercheck host --interval` itself, as the DaemonSet
// runs it: rounds over a damaged Docker store write the textfile the real
// node-exporter serves and the /metrics the real prometheus scrapes; SIGTERM
// stops it with exit 0.
func TestHostIntervalCLI(t *testing.T) {
	need(t)
	root := damagedStore(t)
	textDir, err := env.WorkDir("textfile-cli")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildCLI(t, t.TempDir())
	ne, err := env.StartNodeExporter(tools.NodeExporter, textDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ne.Stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	prom, err := env.StartPrometheus(tools.Prometheus, []string{addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Stop()

	cmd := exec.Command(bin, "host", "--root", root, "--interval", "300ms", "-q", "--no-progress",
		"--metrics-listen", addr, "-o", "prometheus="+filepath.Join(textDir, "layercheck.prom"))
	logf, err := os.Create(filepath.Join(t.TempDir(), "layercheck.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ctx := context.Background()
	// Three rounds seen by both node-exporter (the textfile) and prometheus
	// (the endpoint).
	if err := waitQuery(ctx, prom, `layercheck_audits_total >= 3 and on() layercheck_audit_complete == 1`); err != nil {
		t.Fatalf("%v\nlayercheck: %s", err, readFile(logf.Name()))
	}
	b, err := harness.HTTPGet("http://" + ne.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, b)
	if v := value(t, mfs, "node_textfile_scrape_error", nil); v != 0 {
		t.Errorf("node_textfile_scrape_error %v", v)
	}
	if v := value(t, mfs, "layercheck_audits_total", nil); v < 3 {
		t.Errorf("node-exporter serves layercheck_audits_total %v, want at least 3", v)
	}
	store := map[string]string{"kind": "docker", "store": root + " (vfs)"}
	if v := value(t, mfs, "layercheck_store_findings", with(store, "severity", "error")); v < 1 {
		t.Errorf("error findings %v, want the flipped byte", v)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("layercheck host --interval after SIGTERM: %v (want exit 0)\n%s", err, readFile(logf.Name()))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("layercheck host --interval did not stop on SIGTERM\n%s", readFile(logf.Name()))
	}
}
