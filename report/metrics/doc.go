// Package metrics turns audit results into Prometheus metrics: per store and
// per check the findings by severity, the images, layers and bytes verified,
// the orphan bytes, the problems, and for the audit as a whole its duration,
// whether it completed and when it last did. It writes them in the
// Prometheus text format to a file, atomically, for node-exporter's textfile
// collector (`-o prometheus=FILE`), and serves them over HTTP on /metrics
// beside a /healthz liveness endpoint (`--metrics-listen`).
//
// The format and the exposition are the Prometheus project's own packages
// (client_golang's registry and promhttp, common/expfmt); this package only
// decides the metric families, which are stable: they are documented in
// docs/kubernetes.md and alerts depend on them.
//
// It is not a report writer of package report (that one imports only the
// standard library), it runs no audit and no loop (package schedule does),
// and it keeps no history beyond what the gauges need: the latest round, and
// the time of the latest complete one.
package metrics
