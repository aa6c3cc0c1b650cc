package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parseMetrics reads a Prometheus text file with the reference parser.
func parseMetrics(t *testing.T, r io.Reader) map[string]bool {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	out := map[string]bool{}
	for n := range fams {
		out[n] = true
	}
	return out
}

// TestHostPrometheusOutput: -o prometheus=FILE writes the round's metrics
// per store, parsed by Prometheus' own parser; a damaged store shows its
// error findings; without a file it is a usage error.
func TestHostPrometheusOutput(t *testing.T) {
	s := hostStore(t)
	prom := filepath.Join(t.TempDir(), "layercheck.prom")
	if _, errOut, code := runCLI(t, "host", "--root", s.Root, "--no-progress", "-o", "prometheus="+prom); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f, err := os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams := parseMetrics(t, f)
	for _, want := range []string{"layercheck_audit_complete", "layercheck_store_findings"} {
		if !fams[want] {
			t.Errorf("metric %s missing; have %v", want, fams)
		}
	}
	data, _ := os.ReadFile(prom)
	if !strings.Contains(string(data), `kind="docker"`) {
		t.Errorf("no store of kind docker in the metrics:\n%s", data)
	}
	if _, _, code := runCLI(t, "host", "--root", s.Root, "-o", "prometheus"); code != ExitUsage {
		t.Errorf("-o prometheus without a file: exit %d, want %d", code, ExitUsage)
	}
	if _, _, code := runCLI(t, "host", "--root", s.Root, "--metrics-listen", "127.0.0.1:0"); code != ExitUsage {
		t.Errorf("--metrics-listen without --interval: exit %d, want %d", code, ExitUsage)
	}
}

// TestHostInterval: host --interval audits round after round, serving the
// latest metrics on --metrics-listen, and stops with exit 0 when its context
// ends (SIGTERM).
func TestHostInterval(t *testing.T) {
	s := hostStore(t)
	dir := t.TempDir()
	prom := filepath.Join(dir, "layercheck.prom")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"host", "--root", s.Root, "--interval", "20ms", "--metrics-listen", addr, "-q", "-o", "prometheus=" + prom}, &out, &errb)
	}()
	// Wait (bounded) for a round's metrics to be served, then stop.
	var body string
	for i := 0; i < 300 && body == ""; i++ {
		time.Sleep(50 * time.Millisecond)
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "layercheck_audit_complete") {
			body = string(b)
		}
	}
	if body == "" {
		cancel()
		t.Fatalf("no metrics served; stderr %s", errb.String())
	}
	parseMetrics(t, strings.NewReader(body))
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("stopped: exit %d, want 0; stderr %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("host --interval did not stop when its context ended")
	}
	if _, err := os.Stat(prom); err != nil {
		t.Errorf("the metrics file was not written: %v", err)
	}
}
