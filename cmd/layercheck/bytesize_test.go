package main

import "testing"

// TestSizeFlags: size flags take bytes or a size with a unit; a bad size is
// a usage error naming it.
func TestSizeFlags(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "500MB": 500e6, "2GiB": 2 << 30, "1.5 kB": 1500, "64mib": 64 << 20} {
		if _, _, code := runCLI(t, "checks", "--max-layer-size", in); code != ExitOK {
			t.Errorf("--max-layer-size %s: exit %d", in, code)
		}
		var b byteSize
		if err := b.set(in); err != nil || int64(b) != want {
			t.Errorf("size %q = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, bad := range []string{"ten", "5XB", "-1"} {
		if _, errOut, code := runCLI(t, "checks", "--max-wasted-bytes", bad); code != ExitUsage || errOut == "" {
			t.Errorf("--max-wasted-bytes %s: exit %d, stderr %q", bad, code, errOut)
		}
	}
}
