//go:build e2e

// Package fleet is the end-to-end test of layercheck's metrics with the real
// Prometheus tools (Debian's prometheus-node-exporter and prometheus) on
// loopback: the textfile written by report/metrics read by node-exporter's
// textfile collector, and the /metrics handler scraped by prometheus. It
// runs apart from package e2e, with an Env of its own, because it needs no
// container daemon.
package fleet
