package metrics

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/layercheck/layercheck/report"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const orphanCheck report.Check = "test-metrics-orphan"

func init() { report.RegisterOrphan(orphanCheck) }

// damagedStore is a store report with two images, findings of two checks
// and every severity, an orphan of 4096 bytes and a problem.
func damagedStore() *report.Report {
	b := &report.Builder{}
	b.AddImage(report.Image{Name: "nginx:1", Layers: []report.Layer{{Index: 0, Size: 1000}, {Index: 1, Size: 24}}})
	b.AddImage(report.Image{Name: "busybox:1", Layers: []report.Layer{{Index: 0, Size: 500}}})
	b.Add(
		report.Finding{Check: "host-file-crc", Severity: report.Error, Subject: report.Subject{Image: "nginx:1", Layer: report.LayerIndex(1), Entry: "etc/a"}},
		report.Finding{Check: "host-file-crc", Severity: report.Error, Subject: report.Subject{Image: "nginx:1", Layer: report.LayerIndex(1), Entry: "etc/b"}},
		report.Finding{Check: "host-leftover", Severity: report.Warning, Subject: report.Subject{Path: "image/overlay2/.tmp-x"}},
		report.Finding{Check: orphanCheck, Severity: report.Info, Subject: report.Subject{Path: "overlay2/aaa"}, Actual: "4096"},
		report.Finding{Check: orphanCheck, Severity: report.Info, Subject: report.Subject{Path: "overlay2/bbb"}, Actual: ""},
	)
	b.Problem(report.Subject{Path: "image/overlay2/repositories.json"}, "permission denied")
	return b.Finish("host", "/var/lib/docker (overlay2)", "test")
}

func cleanStore() *report.Report {
	b := &report.Builder{}
	b.AddImage(report.Image{Name: "pause:3", Layers: []report.Layer{{Index: 0, Size: 300}}})
	return b.Finish("host", "containerd:/var/lib/containerd", "test")
}

// parse reads exposition text with the reference parser, refusing names
// that are not valid in the classic (pre-UTF-8) scheme.
func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("reference parser refuses the text: %v\n%s", err, text)
	}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "layercheck_") {
			t.Errorf("metric %s is not prefixed layercheck_", name)
		}
		if mf.GetHelp() == "" {
			t.Errorf("metric %s has no HELP", name)
		}
	}
	return mfs
}

// value finds the sample of family name whose labels include want; ok is
// false when there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		}
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

func expect(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(mfs, name, labels)
	if !ok {
		t.Errorf("%s%v: no sample", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func absent(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels map[string]string) {
	t.Helper()
	if v, ok := value(mfs, name, labels); ok {
		t.Errorf("%s%v = %v, want no sample", name, labels, v)
	}
}

var start = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestStoresWithFindings(t *testing.T) {
	e := New("v1.2.3")
	e.Update(Audit{
		Start: start, Duration: 90 * time.Second,
		Stores: []Store{
			{Name: "/var/lib/docker (overlay2)", Kind: "docker", Report: damagedStore(), Duration: 60 * time.Second},
			{Name: "containerd:/var/lib/containerd", Kind: "containerd", Report: cleanStore(), Duration: 30 * time.Second},
		},
	})
	text, err := e.Text()
	if err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, text)
	docker := map[string]string{"store": "/var/lib/docker (overlay2)", "kind": "docker"}
	ctrd := map[string]string{"store": "containerd:/var/lib/containerd", "kind": "containerd"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	expect(t, mfs, "layercheck_build_info", map[string]string{"version": "v1.2.3"}, 1)
	expect(t, mfs, "layercheck_audits_total", nil, 1)
	expect(t, mfs, "layercheck_audit_failures_total", nil, 0)
	expect(t, mfs, "layercheck_audit_complete", nil, 1)
	expect(t, mfs, "layercheck_audit_duration_seconds", nil, 90)
	end := float64(start.Add(90 * time.Second).Unix())
	expect(t, mfs, "layercheck_audit_last_timestamp_seconds", nil, end)
	expect(t, mfs, "layercheck_audit_last_complete_timestamp_seconds", nil, end)

	expect(t, mfs, "layercheck_store_audit_complete", docker, 1)
	expect(t, mfs, "layercheck_store_audit_duration_seconds", docker, 60)
	expect(t, mfs, "layercheck_store_images", docker, 2)
	expect(t, mfs, "layercheck_store_layers", docker, 3)
	expect(t, mfs, "layercheck_store_verified_bytes", docker, 1524)
	expect(t, mfs, "layercheck_store_orphan_bytes", docker, 4096)
	expect(t, mfs, "layercheck_store_problems", docker, 1)
	expect(t, mfs, "layercheck_store_findings", with(docker, "severity", "error"), 2)
	expect(t, mfs, "layercheck_store_findings", with(docker, "severity", "warning"), 1)
	expect(t, mfs, "layercheck_store_findings", with(docker, "severity", "info"), 2)
	expect(t, mfs, "layercheck_findings", with(docker, "check", "host-file-crc", "severity", "error"), 2)
	expect(t, mfs, "layercheck_findings", with(docker, "check", "host-leftover", "severity", "warning"), 1)
	expect(t, mfs, "layercheck_findings", with(docker, "check", string(orphanCheck), "severity", "info"), 2)

	expect(t, mfs, "layercheck_store_audit_complete", ctrd, 1)
	expect(t, mfs, "layercheck_store_images", ctrd, 1)
	expect(t, mfs, "layercheck_store_orphan_bytes", ctrd, 0)
	expect(t, mfs, "layercheck_store_problems", ctrd, 0)
	for _, sev := range []string{"error", "warning", "info"} {
		expect(t, mfs, "layercheck_store_findings", with(ctrd, "severity", sev), 0)
	}
	absent(t, mfs, "layercheck_findings", ctrd)

	for name, typ := range map[string]dto.MetricType{"layercheck_audits_total": dto.MetricType_COUNTER, "layercheck_store_findings": dto.MetricType_GAUGE} {
		if got := mfs[name].GetType(); got != typ {
			t.Errorf("%s is a %v, want %v", name, got, typ)
		}
	}
	// Every family is named in the stable list of docs/kubernetes.md.
	var names []string
	for n := range mfs {
		names = append(names, n)
	}
	sort.Strings(names)
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !bytes.Contains(docs, []byte("`"+n+"`")) {
			t.Errorf("docs/kubernetes.md does not document %s", n)
		}
	}
}

// TestIncompleteAudit: a round that fails part way is published as
// incomplete, the last complete time stays that of the round before, and a
// round that audited no store keeps the previous store series.
func TestIncompleteAudit(t *testing.T) {
	e := New("test")
	text := func() map[string]*dto.MetricFamily {
		t.Helper()
		b, err := e.Text()
		if err != nil {
			t.Fatal(err)
		}
		return parse(t, b)
	}

	// Before any round: only the build info and the zero counters.
	mfs := text()
	expect(t, mfs, "layercheck_audits_total", nil, 0)
	absent(t, mfs, "layercheck_audit_complete", nil)
	absent(t, mfs, "layercheck_audit_last_complete_timestamp_seconds", nil)

	// Round 1 fails: one store audited part way, one not at all.
	partial := damagedStore()
	e.Update(Audit{Start: start, Duration: time.Minute, Stores: []Store{
		{Name: "/var/lib/docker (overlay2)", Kind: "docker", Report: partial, Err: errors.New("layer read: input/output error")},
		{Name: "/var/lib/containers/storage", Kind: "containers-storage", Err: errors.New("permission denied")},
	}})
	mfs = text()
	docker := map[string]string{"store": "/var/lib/docker (overlay2)"}
	cs := map[string]string{"store": "/var/lib/containers/storage", "kind": "containers-storage"}
	expect(t, mfs, "layercheck_audit_complete", nil, 0)
	expect(t, mfs, "layercheck_audit_failures_total", nil, 1)
	absent(t, mfs, "layercheck_audit_last_complete_timestamp_seconds", nil)
	expect(t, mfs, "layercheck_store_audit_complete", docker, 0)
	expect(t, mfs, "layercheck_store_findings", map[string]string{"store": "/var/lib/docker (overlay2)", "severity": "error"}, 2)
	expect(t, mfs, "layercheck_store_audit_complete", cs, 0)
	absent(t, mfs, "layercheck_store_images", cs)

	// Round 2 completes.
	t2 := start.Add(time.Hour)
	e.Update(Audit{Start: t2, Duration: 2 * time.Minute, Stores: []Store{{Name: "/var/lib/docker (overlay2)", Kind: "docker", Report: cleanStore()}}})
	mfs = text()
	expect(t, mfs, "layercheck_audit_complete", nil, 1)
	expect(t, mfs, "layercheck_audit_last_complete_timestamp_seconds", nil, float64(t2.Add(2*time.Minute).Unix()))
	absent(t, mfs, "layercheck_store_audit_complete", cs)

	// Round 3 fails before any store: the store series of round 2 stay.
	t3 := t2.Add(time.Hour)
	e.Update(Audit{Start: t3, Duration: time.Second, Err: errors.New("no store found under /var/lib")})
	mfs = text()
	expect(t, mfs, "layercheck_audits_total", nil, 3)
	expect(t, mfs, "layercheck_audit_failures_total", nil, 2)
	expect(t, mfs, "layercheck_audit_complete", nil, 0)
	expect(t, mfs, "layercheck_audit_last_timestamp_seconds", nil, float64(t3.Add(time.Second).Unix()))
	expect(t, mfs, "layercheck_audit_last_complete_timestamp_seconds", nil, float64(t2.Add(2*time.Minute).Unix()))
	expect(t, mfs, "layercheck_store_audit_complete", docker, 1)
	expect(t, mfs, "layercheck_store_images", docker, 1)
}

// TestFromReport: any command's report becomes a one-store audit, and a
// store named twice is one set of series.
func TestFromReport(t *testing.T) {
	rep := damagedStore()
	rep.Command, rep.Source = "remote", "registry.example/app:1"
	a := FromReport(rep, start, time.Second, nil)
	if !a.Complete() {
		t.Fatal("a report without error is a complete audit")
	}
	e := New("test")
	a.Stores = append(a.Stores, Store{Name: rep.Source, Kind: "remote", Report: cleanStore()})
	e.Update(a)
	b, err := e.Text()
	if err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, b)
	l := map[string]string{"store": "registry.example/app:1", "kind": "remote"}
	expect(t, mfs, "layercheck_store_images", l, 3)
	expect(t, mfs, "layercheck_store_orphan_bytes", l, 4096)
	if a := FromReport(nil, start, 0, errors.New("x")); a.Complete() {
		t.Error("a failed run is complete")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "layercheck.prom")
	e := New("test")
	e.Update(FromReport(damagedStore(), start, time.Second, nil))
	if err := e.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.Text()
	if !bytes.Equal(first, want) {
		t.Fatalf("file holds\n%s\nwant\n%s", first, want)
	}
	parse(t, first)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644 (node-exporter may run as another user)", fi.Mode().Perm())
	}

	// A reader holding the old file keeps reading it whole while the new
	// one replaces it (rename, not rewrite in place).
	old, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	e.Update(FromReport(cleanStore(), start.Add(time.Hour), time.Second, nil))
	if err := e.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	var kept bytes.Buffer
	if _, err := kept.ReadFrom(old); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kept.Bytes(), first) {
		t.Error("the file was rewritten in place, not replaced")
	}
	second, _ := os.ReadFile(path)
	if bytes.Equal(second, first) {
		t.Error("the second write did not replace the file")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only layercheck.prom (no temporary file left)", names)
	}

	// A directory that does not exist: an error naming the path, nothing written.
	bad := filepath.Join(dir, "missing", "layercheck.prom")
	if err := e.WriteFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("WriteFile(%s) = %v, want an error naming it", bad, err)
	}
}

// TestWriteFileFailureLeavesNoTemp: when the rename fails (the target is a
// directory), the old content stays and no temporary file is left.
func TestWriteFileFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "layercheck.prom")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := New("test").WriteFile(target); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary file left behind: %d entries", len(ents))
	}
}
