package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestHandler(t *testing.T) {
	e := New("test")
	e.Update(FromReport(damagedStore(), start, time.Second, nil))
	srv := httptest.NewServer(e.Handler())
	defer srv.Close()

	res, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %s", res.Status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q, want the text format for a plain GET", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("reference parser: %v", err)
	}
	expect(t, mfs, "layercheck_store_findings", map[string]string{"severity": "error"}, 2)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("/metrics lacks %s (the scrape target reports its own memory and CPU)", name)
		}
	}

	// The textfile never carries go_* or process_*: node-exporter has its own.
	text, _ := e.Text()
	if strings.Contains(string(text), "go_goroutines") || strings.Contains(string(text), "process_") {
		t.Error("the textfile carries runtime metrics, which would collide with node-exporter's")
	}

	res, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz: %s %q", res.Status, body)
	}

	res, err = http.Get(srv.URL + "/other")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("/other: %s, want 404", res.Status)
	}
}

// TestServe: Serve answers on its listener and returns nil once ctx is
// cancelled.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New("test").Serve(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not stop")
	}
}
