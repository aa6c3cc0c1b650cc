// Package report is layercheck's result model: findings with stable check IDs,
// per-image and per-layer results, the summary and verdict, and the writers
// that render a Report (text table, JSON, SARIF, JUnit), the layer analysis
// model and its table (analysis.go), and the shard record of a split run
// (shard.go).
//
// It is a leaf package: it imports only the standard library, so every other
// package can produce findings without import cycles. A Finding is a data
// problem (a corrupt layer, a wrong digest); it is not an error. Problems that
// stop layercheck from checking something at all are recorded as Errors.
package report
