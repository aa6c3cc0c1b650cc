// Package compare decides whether two verified sources hold the same image:
// an artifact (a docker save tarball or an OCI layout) against what a
// registry serves. It works on the report.Image results the verifier
// measured on each side (each layer read once per side) and turns every
// difference (manifest, config digest, layer count, diffID, chainID,
// compressed layer digest, platform present on one side only) into a
// report.Finding with a check ID of its own, expected = the registry's
// value, actual = the artifact's.
package compare
