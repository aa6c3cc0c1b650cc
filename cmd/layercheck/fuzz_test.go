package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/registryclient"
)

// FuzzRefsFile feeds arbitrary bytes to `layercheck remote -f FILE` as the
// reference list, then parses every reference as the command does. It must
// never panic; accepted references are trimmed, one word, free of comments
// and unique; a refused line is a usage error naming FILE:LINE.
func FuzzRefsFile(f *testing.F) {
	f.Add([]byte("nginx\n# comment\n\nghcr.io/o/a@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a # pinned\nnginx\n"))
	f.Add([]byte("a b\n"))
	f.Add([]byte("\xff\xfe\x00\r\n\t\n"))
	f.Add([]byte(strings.Repeat("x", 70000)))
	f.Add([]byte("localhost:5000/app:1\r\n[::1]:5000/x\n"))
	client, err := registryclient.NewClient(registryclient.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "refs.txt")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c := &remoteCmd{File: p}
		refs, err := c.refs()
		if err != nil {
			if _, ok := err.(*usageError); !ok {
				t.Fatalf("refs: %T %v, want a usage error", err, err)
			}
			if !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "no image reference") {
				t.Fatalf("refs error %q does not name the file", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range refs {
			if r == "" || r != strings.TrimSpace(r) || strings.ContainsAny(r, " \t#") {
				t.Fatalf("accepted reference %q", r)
			}
			if seen[r] {
				t.Fatalf("reference %q listed twice", r)
			}
			seen[r] = true
			if _, err := client.Open(r); err != nil && !strings.Contains(err.Error(), "reference") {
				t.Fatalf("Open(%q): error does not say it is the reference: %v", r, err)
			}
		}
	})
}
