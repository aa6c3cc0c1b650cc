package metrics

import (
	"bytes"
	"errors"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/layercheck/layercheck/report"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Store is what one round found in one store.
type Store struct {
	// Name identifies the store (the store label): how the report names
	// it, e.g. "/var/lib/docker (overlay2)" or "containerd:/var/lib/containerd".
	Name string
	// Kind is the kind of store (the kind label): docker, containerd,
	// containers-storage, registry; for a report of another command, the
	// command.
	Kind string
	// Report is the store's own report; nil when the store could not be
	// audited at all.
	Report *report.Report
	// Err says why the store's audit did not complete (it could not be
	// opened, it stopped part way); nil for a complete audit.
	Err error
	// Duration is how long the store's audit took; 0 when not measured.
	Duration time.Duration
}

// Audit is one round: every store audited, when, and for how long.
type Audit struct {
	Stores []Store
	// Start is when the round began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// Err says why the round as a whole failed (the stores could not be
	// found or opened); nil otherwise.
	Err error
}

// Complete says whether the round ran to its end: no error of its own and
// every store audited to its end. Findings and problems do not make a
// round incomplete; they are counted.
func (a Audit) Complete() bool {
	if a.Err != nil {
		return false
	}
	for _, s := range a.Stores {
		if s.Err != nil || s.Report == nil {
			return false
		}
	}
	return true
}

// FromReport makes a one-store Audit of a report as the commands other
// than host build it: the store is the report's Source, its kind the
// report's Command. err is the run's error (nil for a complete run).
func FromReport(rep *report.Report, start time.Time, d time.Duration, err error) Audit {
	s := Store{Report: rep, Err: err, Duration: d}
	if rep != nil {
		s.Name, s.Kind = rep.Source, rep.Command
	}
	return Audit{Stores: []Store{s}, Start: start, Duration: d}
}

// Exporter holds the metrics of the latest round, for a file and for
// scrapes. Its methods are safe for concurrent use: a loop updates it while
// an HTTP server reads it.
type Exporter struct {
	mu           sync.Mutex
	version      string
	rounds       int
	failed       int
	last         *Audit
	stores       []Store // of the latest round that audited any store
	lastComplete time.Time

	reg     *prometheus.Registry // layercheck_* only: the textfile and /metrics
	runtime *prometheus.Registry // go_* and process_*: /metrics only
}

// New returns an Exporter with no round yet; version is the build_info
// label.
func New(version string) *Exporter {
	e := &Exporter{version: version, reg: prometheus.NewPedanticRegistry(), runtime: prometheus.NewRegistry()}
	e.reg.MustRegister(collector{e})
	e.runtime.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return e
}

// Update records a round. The per-store series then describe a's stores; a
// round that audited no store at all (its Err says why) leaves the previous
// round's store series in place, so a failing round does not clear the
// findings an alert is firing on: layercheck_audit_complete 0 tells it.
func (e *Exporter) Update(a Audit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rounds++
	if !a.Complete() {
		e.failed++
	} else {
		e.lastComplete = a.Start.Add(a.Duration)
	}
	if len(a.Stores) > 0 || a.Err == nil {
		e.stores = append([]Store(nil), a.Stores...)
	}
	e.last = &a
}

// Gather returns the layercheck_* metric families, sorted by name: what
// WriteFile writes. It implements prometheus.Gatherer.
func (e *Exporter) Gather() ([]*dto.MetricFamily, error) { return e.reg.Gather() }

// Write writes the layercheck_* metrics in the Prometheus text format.
func (e *Exporter) Write(w io.Writer) error {
	mfs, err := e.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	if c, ok := enc.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// Text returns what Write writes.
func (e *Exporter) Text() ([]byte, error) {
	var b bytes.Buffer
	err := e.Write(&b)
	return b.Bytes(), err
}

// The metric families. Their names and labels are stable: alerts and
// dashboards depend on them (docs/kubernetes.md lists them).
var (
	storeLabels = []string{"store", "kind"}

	descBuildInfo     = prometheus.NewDesc("layercheck_build_info", "layercheck's version; always 1.", []string{"version"}, nil)
	descRounds        = prometheus.NewDesc("layercheck_audits_total", "Audit rounds run since the process started.", nil, nil)
	descFailed        = prometheus.NewDesc("layercheck_audit_failures_total", "Audit rounds that did not complete since the process started.", nil, nil)
	descComplete      = prometheus.NewDesc("layercheck_audit_complete", "1 if the latest audit round ran to its end over every store, 0 if it failed or stopped part way.", nil, nil)
	descDuration      = prometheus.NewDesc("layercheck_audit_duration_seconds", "How long the latest audit round took.", nil, nil)
	descLast          = prometheus.NewDesc("layercheck_audit_last_timestamp_seconds", "When the latest audit round ended, complete or not (Unix time).", nil, nil)
	descLastComplete  = prometheus.NewDesc("layercheck_audit_last_complete_timestamp_seconds", "When the latest complete audit round ended (Unix time); absent until one has.", nil, nil)
	descStoreComplete = prometheus.NewDesc("layercheck_store_audit_complete", "1 if the store's audit ran to its end, 0 if it could not be audited or stopped part way.", storeLabels, nil)
	descStoreDuration = prometheus.NewDesc("layercheck_store_audit_duration_seconds", "How long the store's audit took.", storeLabels, nil)
	descStoreImages   = prometheus.NewDesc("layercheck_store_images", "Images verified in the store (one per platform).", storeLabels, nil)
	descStoreLayers   = prometheus.NewDesc("layercheck_store_layers", "Layers verified in the store's images.", storeLabels, nil)
	descStoreBytes    = prometheus.NewDesc("layercheck_store_verified_bytes", "Bytes of layer content read and verified in the store.", storeLabels, nil)
	descStoreOrphan   = prometheus.NewDesc("layercheck_store_orphan_bytes", "Bytes on disk that no record of the store references (leaked directories, unrecorded blobs and snapshots).", storeLabels, nil)
	descStoreProblems = prometheus.NewDesc("layercheck_store_problems", "Things in the store that could not be checked (unreadable files, I/O errors).", storeLabels, nil)
	descStoreFindings = prometheus.NewDesc("layercheck_store_findings", "Findings in the store by severity; every severity is present, 0 when none.", append(storeLabels, "severity"), nil)
	descFindings      = prometheus.NewDesc("layercheck_findings", "Findings in the store by check and severity; present only for checks with findings.", append(storeLabels, "check", "severity"), nil)
	severities        = []report.Severity{report.Info, report.Warning, report.Error}
)

// collector emits the Exporter's state as constant metrics at each gather.
type collector struct{ e *Exporter }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuildInfo, descRounds, descFailed, descComplete, descDuration, descLast, descLastComplete,
		descStoreComplete, descStoreDuration, descStoreImages, descStoreLayers, descStoreBytes, descStoreOrphan, descStoreProblems,
		descStoreFindings, descFindings} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descBuildInfo, 1, e.version)
	ch <- prometheus.MustNewConstMetric(descRounds, prometheus.CounterValue, float64(e.rounds))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(e.failed))
	if e.last == nil {
		return
	}
	gauge(descComplete, boolValue(e.last.Complete()))
	gauge(descDuration, e.last.Duration.Seconds())
	gauge(descLast, unixSeconds(e.last.Start.Add(e.last.Duration)))
	if !e.lastComplete.IsZero() {
		gauge(descLastComplete, unixSeconds(e.lastComplete))
	}
	for _, s := range mergeStores(e.stores) {
		l := []string{s.Name, s.Kind}
		gauge(descStoreComplete, boolValue(s.Err == nil && s.Report != nil), l...)
		if s.Duration > 0 {
			gauge(descStoreDuration, s.Duration.Seconds(), l...)
		}
		if s.Report == nil {
			continue
		}
		sum := s.Report.Summary
		gauge(descStoreImages, float64(sum.Images), l...)
		gauge(descStoreLayers, float64(sum.Layers), l...)
		gauge(descStoreBytes, float64(sum.BytesRead), l...)
		gauge(descStoreProblems, float64(len(s.Report.Problems)), l...)
		bySeverity := map[report.Severity]int{}
		type key struct {
			check report.Check
			sev   report.Severity
		}
		byCheck := map[key]int{}
		var orphan int64
		for _, f := range s.Report.Findings {
			bySeverity[f.Severity]++
			byCheck[key{f.Check, f.Severity}]++
			if n, ok := f.OrphanBytes(); ok {
				orphan += n
			}
		}
		gauge(descStoreOrphan, float64(orphan), l...)
		for _, sev := range severities {
			gauge(descStoreFindings, float64(bySeverity[sev]), append(l, sev.String())...)
		}
		for k, n := range byCheck {
			gauge(descFindings, float64(n), append(l, string(k.check), k.sev.String())...)
		}
	}
}

// mergeStores joins stores of one name and kind (a name given twice would
// make duplicate series, which a registry refuses): their reports are
// merged, their errors and durations added up.
func mergeStores(in []Store) []Store {
	idx := map[[2]string]int{}
	var out []Store
	for _, s := range in {
		k := [2]string{s.Name, s.Kind}
		i, seen := idx[k]
		if !seen {
			idx[k] = len(out)
			out = append(out, s)
			continue
		}
		o := &out[i]
		o.Err = errors.Join(o.Err, s.Err)
		o.Duration += s.Duration
		switch {
		case o.Report == nil:
			o.Report = s.Report
		case s.Report != nil:
			if m, err := report.Merge(o.Report, s.Report); err == nil {
				o.Report = m
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
