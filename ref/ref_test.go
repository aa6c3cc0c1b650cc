package ref

import (
	"testing"

	digest "github.com/opencontainers/go-digest"
)

const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, full, familiar, name string }{
		{"nginx", "docker.io/library/nginx:latest", "nginx:latest", "docker.io/library/nginx"},
		{"nginx:1.25", "docker.io/library/nginx:1.25", "nginx:1.25", "docker.io/library/nginx"},
		{"docker.io/library/nginx", "docker.io/library/nginx:latest", "nginx:latest", "docker.io/library/nginx"},
		{"index.docker.io/library/nginx:1", "docker.io/library/nginx:1", "nginx:1", "docker.io/library/nginx"},
		{"grafana/grafana", "docker.io/grafana/grafana:latest", "grafana/grafana:latest", "docker.io/grafana/grafana"},
		{"localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app"},
		{"127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest", "127.0.0.1:5000/a/b:latest", "127.0.0.1:5000/a/b"},
		{"ghcr.io/o/a@" + d1, "ghcr.io/o/a@" + d1, "ghcr.io/o/a@" + d1, "ghcr.io/o/a"},
		{"app:1@" + d1, "docker.io/library/app:1@" + d1, "app:1@" + d1, "docker.io/library/app"},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if r.String() != tc.full || r.Familiar() != tc.familiar || r.Name() != tc.name {
			t.Errorf("Parse(%q) = %q / %q / %q, want %q / %q / %q", tc.in, r.String(), r.Familiar(), r.Name(), tc.full, tc.familiar, tc.name)
		}
	}
	for _, bad := range []string{"", "UPPER", "a@sha256:12", "a:b:c/d"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", bad)
		}
	}
}

func TestMatch(t *testing.T) {
	id := digest.Digest("sha256:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")
	names := []string{"docker.io/library/nginx:1.25", "localhost:5000/app@" + d1}
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{"nginx:1.25", true},
		{"docker.io/library/nginx:1.25", true},
		{"nginx", false}, // nginx means nginx:latest
		{"nginx:1.24", false},
		{"localhost:5000/app", true}, // a bare repository selects its digest-only name
		{"localhost:5000/app@" + d1, true},
		{"localhost:5000/app:1", false},
		{"abcdef01", true},
		{"sha256:abcdef01", true},
		{"abc", false}, // too short for a prefix
		{"abcdef02", false},
		{id.String(), true},
	} {
		if got := Match(tc.sel, names, id); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.sel, got, tc.want)
		}
	}
}

func TestHasRegistryHost(t *testing.T) {
	for s, want := range map[string]bool{
		"localhost:5000/app:1": true, "ghcr.io/o/a": true, "localhost/app": true, "[::1]:5000/a": true,
		"nginx": false, "grafana/grafana": false, "nginx:1": false,
	} {
		if HasRegistryHost(s) != want {
			t.Errorf("HasRegistryHost(%q) = %v", s, !want)
		}
	}
}

func TestPlatform(t *testing.T) {
	p, err := ParsePlatform("linux/arm64/v8")
	if err != nil || p.String() != "linux/arm64/v8" {
		t.Fatalf("ParsePlatform = %v, %v", p, err)
	}
	for _, bad := range []string{"linux", "linux/", "a/b/c/d", "/amd64"} {
		if _, err := ParsePlatform(bad); err == nil {
			t.Errorf("ParsePlatform(%q) succeeded", bad)
		}
	}
	for _, tc := range []struct {
		sels []string
		plat string
		want bool
	}{
		{nil, "linux/amd64", true},
		{[]string{"linux/arm"}, "linux/arm/v7", true},
		{[]string{"linux/arm64/v8"}, "linux/arm64", true},
		{[]string{"linux/amd64"}, "linux/arm64", false},
		{[]string{"linux/amd64"}, "", true}, // an unknown platform is never filtered out
	} {
		if got := PlatformSelected(tc.sels, tc.plat); got != tc.want {
			t.Errorf("PlatformSelected(%v, %q) = %v", tc.sels, tc.plat, got)
		}
	}
	if !SamePlatform("linux/arm64", "linux/arm64/v8") || SamePlatform("linux/arm64", "linux/amd64") {
		t.Error("SamePlatform")
	}
}
