package storetar

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// ExtractCapture restores fixtures/testdata/stores/<name>.tar.gz (a real
// store the e2e harness captured) into a new temporary directory and returns
// it with its ground truth. It skips the test when the capture is absent or
// when not running as root (device nodes, trusted.* xattrs and owners need
// it). Tests only.
func ExtractCapture(t testing.TB, name string) (string, *Truth) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	base := filepath.Join(filepath.Dir(file), "..", "..", "fixtures", "testdata", "stores", name)
	f, err := os.Open(base + ".tar.gz")
	if err != nil {
		t.Skipf("store capture %s.tar.gz absent (written by `make capture-stores`): %v", name, err)
	}
	defer f.Close()
	if os.Geteuid() != 0 {
		t.Skip("extracting store captures needs root (device nodes, trusted.* xattrs, owners)")
	}
	truth, err := ReadTruth(base + ".json")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(root, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := Extract(f, root); err != nil {
		t.Fatalf("extracting %s: %v", name, err)
	}
	return root, truth
}
