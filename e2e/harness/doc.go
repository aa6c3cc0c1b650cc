// Package harness runs the real container tools that layercheck's end-to-end
// suite checks against: dockerd (vfs and overlay2, and where this machine
// allows them btrfs on a loop-mounted image file and fuse-overlayfs), the
// distribution registry
// (Debian's docker-registry), a standalone containerd, skopeo and ctr.
//
// An Env owns one temporary directory. Every daemon it starts gets its own
// root, state, socket and pidfile under that directory, listens on loopback or
// a unix socket only, and is stopped by its pid when the Env closes: on normal
// exit, on SIGINT/SIGTERM, and (through Pdeathsig, then Reap) when the test
// binary dies. Close also kills, by pid, any process left whose command line,
// root or working directory lies under the Env's directory (container
// processes, shims), unmounts every mount below it, detaches the loop devices
// of image files below it (the btrfs daemon's) and removes it.
//
// The package also builds the suite's images (images.go), records the daemons'
// own answers as ground truth (GroundTruth), and copies stores so tests can
// corrupt a copy and never the live store (Env.Corrupt).
//
// Nothing here is used by layercheck itself; it needs root and the Debian
// packages that scripts/e2e-install.sh installs.
package harness
