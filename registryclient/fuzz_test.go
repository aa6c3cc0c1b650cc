package registryclient

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
)

// FuzzReference feeds arbitrary strings to the reference parser (Open) and
// the mirror parser. Parsing must never panic; an accepted reference must
// name a repository, parse again from its canonical form to the same thing,
// and, when it pins a digest, pin a valid one (a bad digest is a usage error
// found before any request, not a network failure later).
func FuzzReference(f *testing.F) {
	for _, s := range []string{
		"nginx", "nginx:1.27", "docker.io/library/nginx:latest", "localhost:5000/app", "127.0.0.1:5000/a/b:c",
		"[::1]:5000/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
		"ghcr.io/o/a@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
		"ghcr.io/o/a:tag@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
		"a@sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A",
		"a@sha512:" + strings.Repeat("ab", 64), "UPPER/case", "a//b", "a:b:c", "https://mirror.example", "http://[::1]:80/",
		"user:pass@host/x", "  nginx  ", "", "#", "a b",
	} {
		f.Add(s)
	}
	c, err := NewClient(Options{Mirrors: []string{"https://mirror.example"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if m, err := parseMirror(ref); err == nil {
			if m.host == "" || (m.scheme != "http" && m.scheme != "https") {
				t.Fatalf("parseMirror(%q) accepted %+v", ref, m)
			}
		}
		s, err := c.Open(ref)
		if err != nil {
			if !strings.Contains(err.Error(), "reference") && !strings.Contains(err.Error(), "mirror") {
				t.Fatalf("Open(%q) error does not say what was wrong: %v", ref, err)
			}
			return
		}
		if s.ref.Context().RepositoryStr() == "" || s.ref.Context().RegistryStr() == "" {
			t.Fatalf("Open(%q) accepted a reference without repository or registry: %q", ref, s.ref.Name())
		}
		if len(s.eps) == 0 {
			t.Fatalf("Open(%q): no endpoint", ref)
		}
		if d, ok := s.ref.(name.Digest); ok {
			if err := digest.Digest(d.DigestStr()).Validate(); err != nil {
				t.Fatalf("Open(%q) accepted digest %q that does not validate: %v", ref, d.DigestStr(), err)
			}
		}
		again, err := c.Open(s.ref.Name())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", s.ref.Name(), ref, err)
		}
		if again.ref.Name() != s.ref.Name() {
			t.Fatalf("%q → %q → %q: canonical form is not stable", ref, s.ref.Name(), again.ref.Name())
		}
		_ = s.String()
	})
}
