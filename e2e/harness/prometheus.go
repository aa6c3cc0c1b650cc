package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PrometheusTools are Debian's prometheus-node-exporter, prometheus and
// promtool, for the metrics tests. They are looked up apart from Tools: only
// those tests need them.
type PrometheusTools struct {
	NodeExporter string
	Prometheus   string
	Promtool     string
}

// FindPrometheusTools looks them up; the error names those missing.
func FindPrometheusTools() (PrometheusTools, error) {
	var t PrometheusTools
	var missing []string
	for _, x := range []struct {
		dst  *string
		name string
	}{{&t.NodeExporter, "prometheus-node-exporter"}, {&t.Prometheus, "prometheus"}, {&t.Promtool, "promtool"}} {
		p, err := exec.LookPath(x.name)
		if err != nil {
			missing = append(missing, x.name)
			continue
		}
		*x.dst = p
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("missing %s (Debian packages prometheus-node-exporter, prometheus; scripts/e2e-install.sh)", strings.Join(missing, ", "))
	}
	return t, nil
}

// NodeExporter is a prometheus-node-exporter on 127.0.0.1 with only its
// textfile collector, reading one directory.
type NodeExporter struct {
	Proc *Proc
	Addr string
}

// StartNodeExporter starts node-exporter with --collector.textfile.directory dir.
func (e *Env) StartNodeExporter(bin, dir string) (*NodeExporter, error) {
	p, addr, err := e.startOnFreePort("node-exporter", 10*time.Second, func(addr string) []string {
		return []string{bin, "--web.listen-address=" + addr, "--collector.disable-defaults", "--collector.textfile", "--collector.textfile.directory=" + dir}
	}, "/metrics")
	if err != nil {
		return nil, err
	}
	return &NodeExporter{Proc: p, Addr: addr}, nil
}

// startOnFreePort starts a daemon listening on a free port of 127.0.0.1 and
// waits until GET readyPath answers 200; another process may take the port
// first, so it tries three times.
func (e *Env) startOnFreePort(name string, grace time.Duration, argv func(addr string) []string, readyPath string) (*Proc, string, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freePort()
		if err != nil {
			return nil, "", err
		}
		p, err := e.startProc(name, argv(addr), nil, grace)
		if err != nil {
			return nil, "", err
		}
		lastErr = waitFor(60*time.Second, p, name+" to answer on "+addr+readyPath, func() error {
			_, err := HTTPGet("http://" + addr + readyPath)
			return err
		})
		if lastErr == nil {
			return p, addr, nil
		}
		_ = p.Stop()
	}
	return nil, "", lastErr
}

// Prometheus is a prometheus server on 127.0.0.1 scraping static targets.
type Prometheus struct {
	Proc *Proc
	Addr string
	Dir  string
}

// StartPrometheus starts prometheus with its own config and TSDB below the
// Env, scraping targets (host:port, path /metrics) every interval as job
// "layercheck".
func (e *Env) StartPrometheus(bin string, targets []string, interval time.Duration) (*Prometheus, error) {
	dir, err := e.WorkDir("prometheus")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n  - job_name: layercheck\n    static_configs:\n      - targets: [%s]\n",
		interval, interval, strings.Join(quoteAll(targets), ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p, addr, err := e.startOnFreePort("prometheus", 20*time.Second, func(addr string) []string {
		return []string{bin, "--config.file=" + cfgPath, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr, "--web.console.templates=" + dir, "--web.console.libraries=" + dir}
	}, "/-/ready")
	if err != nil {
		return nil, err
	}
	return &Prometheus{Proc: p, Addr: addr, Dir: dir}, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// Sample is one element of an instant query's vector.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // [unix time, "value"]
}

// Query runs an instant PromQL query through the HTTP API.
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	b, err := HTTPGet("http://" + p.Addr + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	var res struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string   `json:"resultType"`
			Result     []Sample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	if res.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, res.Error)
	}
	return res.Data.Result, nil
}

// Stop stops the process by its pid.
func (n *NodeExporter) Stop() error { return n.Proc.Stop() }

// Stop stops the process by its pid.
func (p *Prometheus) Stop() error { return p.Proc.Stop() }

// HTTPGet returns the body of a 200 answer to GET url, with a 10 s timeout.
func HTTPGet(u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, errors.New("GET " + u + ": " + resp.Status)
	}
	return b, nil
}
