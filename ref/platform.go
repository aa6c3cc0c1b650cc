package ref

import (
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platform is a parsed os/arch[/variant].
type Platform struct{ OS, Architecture, Variant string }

// ParsePlatform parses os/arch[/variant].
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return Platform{}, fmt.Errorf("platform %q is not os/arch[/variant]", s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// String renders os/arch[/variant], or "" when the platform is unknown.
func (p Platform) String() string {
	if p.OS == "" && p.Architecture == "" {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// PlatformOf renders an OCI platform as os/arch[/variant] ("" for nil).
func PlatformOf(p *ocispec.Platform) string {
	if p == nil {
		return ""
	}
	return Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant}.String()
}

// PlatformSelected matches a platform against selectors, treating a missing
// variant in a selector as a wildcard and arm64's v8 as its default. No
// selectors select everything; an unknown platform ("") is always selected,
// since there is nothing to filter it by.
func PlatformSelected(sels []string, plat string) bool {
	if len(sels) == 0 || plat == "" {
		return len(sels) == 0 || plat == ""
	}
	for _, sel := range sels {
		if sel == plat || strings.HasPrefix(plat, sel+"/") || sel == plat+"/v8" && strings.HasSuffix(plat, "arm64") {
			return true
		}
	}
	return false
}

// SamePlatform reports whether two rendered platforms are the same, arm64
// and arm64/v8 being one.
func SamePlatform(a, b string) bool {
	return a == b || strings.TrimSuffix(a, "/v8") == strings.TrimSuffix(b, "/v8")
}
