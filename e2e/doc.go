// Package e2e is layercheck's real-daemon end-to-end suite. Its tests carry the
// build tag e2e and run as root: `make e2e` installs the Debian packages they
// need (scripts/e2e-install.sh) and runs `go test -tags e2e ./e2e/...`.
//
// TestMain starts, once per test binary, a dockerd per storage driver (vfs, and
// overlay2 where the kernel allows it), a distribution registry and a
// standalone containerd, all on loopback with private roots under one temporary
// directory (see package harness). It builds a small set of images with the
// real tools, pushes, pulls, saves, copies them with skopeo and imports them
// into containerd, and records the daemons' own answers (image IDs, diffIDs,
// chainIDs, repo digests, registry manifests) as ground truth. The tests then
// compare layercheck's JSON reports with that ground truth.
//
// Later issues add their cases as e2e/<area>_test.go files using the same
// suite. The package holds no code outside its tests.
package e2e
