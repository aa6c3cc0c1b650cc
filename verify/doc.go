// Package verify is layercheck's engine. Pass reads one layer exactly once:
// it hashes and counts the stored bytes, detects the compression by its magic
// bytes, decompresses (klauspost/pgzip, klauspost/compress/zstd), hashes and
// counts the tar stream (the diffID) and walks the tar headers to the end.
// Observers and taps attach to that pass (tar-split capture, analysis) without
// a second read.
//
// Verifier walks the Targets of a source.Source (manifests, indexes, configs,
// docker-save records), runs one Pass per distinct layer blob in parallel
// with bounded memory, and turns every disagreement between what was claimed
// and what was measured into a report.Finding. It knows sources only through
// the interfaces of package source. With Options.Analysis, a LayerAnalyzer
// observes each layer's pass and AnalyzeImage combines them per image, in
// layer order, into report.ImageAnalysis (analysis.go).
package verify
