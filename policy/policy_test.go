package policy

import (
	"testing"

	"github.com/layercheck/layercheck/report"
)

// TestPolicyPlatformMatching: --require-platforms matches as --platform
// selects (ref.PlatformSelected): a required platform without variant
// accepts any variant, arm64 without variant is arm64/v8, and a named
// variant must match. Host images carry the variant of their config.
func TestPolicyPlatformMatching(t *testing.T) {
	for _, c := range []struct {
		want, have string
		ok         bool
	}{
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm64/v8", "linux/arm64", true},
		{"linux/arm64/v8", "linux/arm64/v8", true},
		{"linux/arm", "linux/arm/v7", true},
		{"linux/arm/v7", "linux/arm/v6", false},
		{"linux/arm/v7", "linux/arm", false},
		{" linux/amd64 ", "linux/amd64", true},
		{"linux/amd64", "linux/amd64/v3", true},
		{"linux/amd64/v3", "linux/amd64", false},
		{"linux/arm", "linux/arm64", false},
		{"windows/amd64", "linux/amd64", false},
	} {
		rep := &report.Report{Images: []report.Image{{Name: "img", Platform: c.have}}}
		fs := platformFindings(rep, []string{c.want})
		if ok := len(fs) == 0; ok != c.ok {
			t.Errorf("--require-platforms %q against %q: satisfied = %v, want %v", c.want, c.have, ok, c.ok)
		}
	}
}

// TestApply: each policy adds its finding with its check ID, expected and
// actual values; the zero Policy adds nothing.
func TestApply(t *testing.T) {
	img := report.Image{Name: "img", Platform: "linux/amd64", ManifestMediaType: "application/vnd.docker.distribution.manifest.v2+json",
		Layers:   []report.Layer{{Index: 0, Size: 100, TarSize: 300, MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip"}},
		Analysis: &report.ImageAnalysis{WastedBytes: 50}}
	for _, c := range []struct {
		name string
		p    Policy
		refs []string
		want report.Check
	}{
		{"platforms", Policy{RequirePlatforms: []string{"linux/arm64"}}, nil, report.PolicyPlatforms},
		{"digest", Policy{RequireDigest: true}, []string{"nginx:1"}, report.PolicyDigestRef},
		{"layer size", Policy{MaxLayerSize: 299}, nil, report.PolicyLayerSize},
		{"media type", Policy{AllowedMediaTypes: []string{"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.image.rootfs.diff.tar.gzip"}}, nil, report.PolicyMediaType},
		{"wasted", Policy{MaxWastedBytes: 49}, nil, report.PolicyWasted},
		{"none", Policy{MaxLayerSize: 300, MaxWastedBytes: 50}, []string{"nginx@sha256:" + "0123456789012345678901234567890123456789012345678901234567890123"}, ""},
	} {
		rep := &report.Report{Images: []report.Image{img}}
		Apply(rep, c.p, c.refs)
		var got []report.Check
		for _, f := range rep.Findings {
			got = append(got, f.Check)
			if f.Severity != report.Error || f.Expected == "" || f.Actual == "" {
				t.Errorf("%s: finding %+v lacks severity error or expected/actual", c.name, f)
			}
		}
		if c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || got[0] != c.want) {
			t.Errorf("%s: findings %v, want %q", c.name, got, c.want)
		}
	}
	if err := (Policy{RequirePlatforms: []string{"linux"}}).Validate(); err == nil {
		t.Error("Validate accepts platform \"linux\"")
	}
}
