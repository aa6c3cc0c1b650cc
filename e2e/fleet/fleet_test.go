//go:build e2e

package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/layercheck/layercheck/e2e/harness"
	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/report/metrics"
	"github.com/layercheck/layercheck/schedule"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

var (
	env     *harness.Env
	tools   harness.PrometheusTools
	skipWhy string
)

func TestMain(m *testing.M) {
	switch {
	case os.Geteuid() != 0:
		skipWhy = "the e2e suite runs as root"
	default:
		var err error
		if tools, err = harness.FindPrometheusTools(); err != nil {
			skipWhy = err.Error()
			break
		}
		dir := ""
		if w := os.Getenv("LAYERCHECK_E2E_WORKDIR"); w != "" {
			dir = w + "-fleet" // beside package e2e's directory, never inside it
		}
		if env, err = harness.New(harness.Options{Dir: dir}); err != nil {
			fmt.Fprintf(os.Stderr, "e2e/fleet: %v\n", err)
			os.Exit(1)
		}
	}
	if skipWhy != "" && os.Getenv("LAYERCHECK_E2E_REQUIRE") == "1" {
		fmt.Fprintf(os.Stderr, "e2e/fleet: %s\n", skipWhy)
		os.Exit(1)
	}
	code := m.Run()
	if env != nil {
		if err := env.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e/fleet: teardown: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func need(t *testing.T) {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
}

// damagedStore builds a Docker store with the project's own builder, flips a
// byte of a layer's file and leaks a 4096-byte graph-driver directory.
func damagedStore(t *testing.T) string {
	s := dockertest.Build(t, dockertest.DefaultSpec("vfs", true))
	p := s.Path(s.Layers["L0"].Dir + "/etc/hello")
	b, err := os.ReadFile(p)
	if err != nil || len(b) == 0 {
		t.Fatalf("reading %s: %v", p, err)
	}
	b[0] ^= 0x20
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dockertest.WriteFile(t, s.Path(s.LayerRoot(dockertest.HexID("orphan"))+"/leaked"), make([]byte, 4096), 0o644)
	return s.Root
}

// auditStore audits a Docker root as `layercheck host --root` does, one
// store of a round.
func auditStore(root string) func(context.Context) (metrics.Store, error) {
	return func(ctx context.Context) (metrics.Store, error) {
		start := time.Now()
		st, err := docker.Open(root, docker.Options{Jobs: 2})
		if err != nil {
			return metrics.Store{Name: root, Kind: "docker", Err: err}, err
		}
		b := &report.Builder{}
		err = st.Audit(ctx, b)
		rep := b.Finish("host", st.String(), "e2e")
		return metrics.Store{Name: st.String(), Kind: "docker", Report: rep, Err: err, Duration: time.Since(start)}, err
	}
}

// loop runs rounds of audit through schedule.Run into exp, calling each
// after every publish, until rounds have been published.
func loop(t *testing.T, exp *metrics.Exporter, rounds int, audit func(context.Context) (metrics.Store, error), each func(schedule.Round[metrics.Store]) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := schedule.Run(ctx, 50*time.Millisecond, audit, func(r schedule.Round[metrics.Store]) error {
		exp.Update(metrics.Audit{Stores: []metrics.Store{r.Value}, Start: r.Start, Duration: r.Duration})
		if err := each(r); err != nil {
			return err
		}
		if r.N == rounds {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != context.Canceled {
		t.Fatalf("the loop ended without publishing %d rounds: %v", rounds, ctx.Err())
	}
}

func parse(t *testing.T, b []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parsing exposition: %v\n%s", err, b)
	}
	return mfs
}

func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	mf := mfs[name]
next:
	for _, m := range mf.GetMetric() {
		for k, v := range labels {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	t.Fatalf("no sample %s%v", name, labels)
	return 0
}

// TestNodeExporterTextfile: three rounds of the loop write the textfile
// atomically while the real node-exporter's textfile collector serves it:
// its /metrics carries layercheck's series and node_textfile_scrape_error 0
// after every round.
func TestNodeExporterTextfile(t *testing.T) {
	need(t)
	root := damagedStore(t)
	textDir, err := env.WorkDir("textfile")
	if err != nil {
		t.Fatal(err)
	}
	ne, err := env.StartNodeExporter(tools.NodeExporter, textDir)
	if err != nil {
		t.Fatal(err)
	}
	defer ne.Stop()
	exp := metrics.New("e2e")
	path := filepath.Join(textDir, "layercheck.prom")
	var last map[string]*dto.MetricFamily
	loop(t, exp, 3, auditStore(root), func(r schedule.Round[metrics.Store]) error {
		if r.Err != nil {
			return fmt.Errorf("round %d: %w", r.N, r.Err)
		}
		if err := exp.WriteFile(path); err != nil {
			return err
		}
		b, err := harness.HTTPGet("http://" + ne.Addr + "/metrics")
		if err != nil {
			return err
		}
		last = parse(t, b)
		if v := value(t, last, "node_textfile_scrape_error", nil); v != 0 {
			return fmt.Errorf("round %d: node_textfile_scrape_error %v; node-exporter log:\n%s", r.N, v, readFile(ne.Proc.LogPath))
		}
		if v := value(t, last, "layercheck_audits_total", nil); v != float64(r.N) {
			return fmt.Errorf("round %d: node-exporter serves layercheck_audits_total %v", r.N, v)
		}
		return nil
	})
	store := map[string]string{"kind": "docker", "store": root + " (vfs)"}
	if v := value(t, last, "layercheck_store_findings", with(store, "severity", "error")); v < 1 {
		t.Errorf("error findings %v, want the flipped byte", v)
	}
	// etc/hello and its hard link etc/hard share the flipped byte.
	if v := value(t, last, "layercheck_findings", with(store, "check", string(docker.FileCRC), "severity", "error")); v < 1 {
		t.Errorf("%s findings %v, want the flipped byte", docker.FileCRC, v)
	}
	if v := value(t, last, "layercheck_store_orphan_bytes", store); v != 4096 {
		t.Errorf("orphan bytes %v, want 4096", v)
	}
	if v := value(t, last, "layercheck_audit_complete", nil); v != 1 {
		t.Errorf("layercheck_audit_complete %v", v)
	}
	if v := value(t, last, "node_textfile_mtime_seconds", map[string]string{"file": path}); v <= 0 {
		t.Errorf("node_textfile_mtime_seconds %v", v)
	}
	ents, _ := os.ReadDir(textDir)
	if len(ents) != 1 {
		t.Errorf("textfile directory holds %d entries, want only layercheck.prom", len(ents))
	}
}

// TestPrometheusScrape: the real prometheus scrapes the handler on loopback
// while rounds go on (the second one failing) and records layercheck's
// series.
func TestPrometheusScrape(t *testing.T) {
	need(t)
	root := damagedStore(t)
	exp := metrics.New("e2e")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- exp.Serve(sctx, ln) }()
	defer func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	prom, err := env.StartPrometheus(tools.Prometheus, []string{ln.Addr().String()}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Stop()

	audit := auditStore(root)
	n := 0
	failing := func(ctx context.Context) (metrics.Store, error) {
		n++
		if n == 2 {
			return metrics.Store{Name: root + " (vfs)", Kind: "docker", Err: errors.New("simulated I/O error")}, errors.New("simulated I/O error")
		}
		return audit(ctx)
	}
	ctx := context.Background()
	// After each round, wait until prometheus has scraped what it published.
	loop(t, exp, 3, failing, func(r schedule.Round[metrics.Store]) error {
		want := "1"
		if r.Err != nil {
			want = "0"
		}
		return waitQuery(ctx, prom, fmt.Sprintf(`layercheck_audits_total == %d and on() layercheck_audit_complete == %s`, r.N, want))
	})
	res, err := prom.Query(ctx, `layercheck_store_findings{severity="error",job="layercheck"}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Metric["store"] != root+" (vfs)" || res[0].Metric["kind"] != "docker" || sampleValue(res[0]) < 1 {
		t.Errorf("prometheus holds %+v, want the store's error findings", res)
	}
	res, err = prom.Query(ctx, `layercheck_audit_failures_total`)
	if err != nil || len(res) != 1 || sampleValue(res[0]) != 1 {
		t.Errorf("layercheck_audit_failures_total in prometheus: %+v, %v; want 1", res, err)
	}
	res, err = prom.Query(ctx, `up{job="layercheck"}`)
	if err != nil || len(res) != 1 || sampleValue(res[0]) != 1 {
		t.Errorf("up: %+v, %v", res, err)
	}
}

// waitQuery polls an instant query until it returns a sample (60 s at most).
func waitQuery(ctx context.Context, p *harness.Prometheus, expr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := p.Query(ctx, expr)
		if err == nil && len(res) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus: %q returned nothing for 60 s (last error %v)", expr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func sampleValue(s harness.Sample) float64 {
	v, _ := s.Value[1].(string)
	f, _ := strconv.ParseFloat(v, 64)
	return f
}

func with(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
