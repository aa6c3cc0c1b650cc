package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

// policy holds the CI policy flags. They are applied to the finished report
// before any output is written, and each violation is an error finding with
// a policy-* check ID, so it fails the run (exit 1) like any other.
type policy struct {
	RequirePlatforms  []string `help:"Fail unless every listed platform (os/arch[/variant]) is among the verified images of each image name or reference; a platform without variant accepts any variant." sep:"," placeholder:"OS/ARCH[/VARIANT],…"`
	RequireDigest     bool     `help:"Refuse tag-only references: every reference of remote (and of remote reports given to merge) must be pinned by digest (NAME@sha256:…). Archives, layouts and stores are addressed by content and have no references to refuse."`
	MaxLayerSize      int64    `default:"0" help:"Fail on any layer whose stored or uncompressed size is above this many bytes (0: no limit)." placeholder:"BYTES"`
	AllowedMediaTypes []string `help:"Fail on any manifest or layer media type outside this list (give both the manifest and the layer types you accept). Images and layers that declare no media type (legacy docker save) are not judged." sep:"," placeholder:"TYPE,…"`
	MaxWastedBytes    int64    `default:"0" help:"Fail on any image whose wasted bytes (files later layers overwrite or delete, measured as dive does) are above this many bytes; implies --analyze (0: no limit)." placeholder:"BYTES"`
}

// validate checks the policy flags before anything is verified.
func (p *policy) validate() error {
	for _, pl := range p.RequirePlatforms {
		if _, err := parsePlatform(pl); err != nil {
			return &usageError{msg: fmt.Sprintf("--require-platforms: %v", err)}
		}
	}
	if p.MaxLayerSize < 0 {
		return &usageError{msg: fmt.Sprintf("--max-layer-size: %d is negative (0 means no limit)", p.MaxLayerSize)}
	}
	if p.MaxWastedBytes < 0 {
		return &usageError{msg: fmt.Sprintf("--max-wasted-bytes: %d is negative (0 means no limit)", p.MaxWastedBytes)}
	}
	for _, mt := range p.AllowedMediaTypes {
		if strings.TrimSpace(mt) == "" {
			return &usageError{msg: "--allowed-media-types: empty media type in the list"}
		}
	}
	return nil
}

// applyPolicies adds the findings of every policy flag to rep and
// normalizes it again (statuses, order, summary). refs are the image
// references the user gave (remote), judged by --require-digest; nil when
// the inputs are not references.
func applyPolicies(rep *report.Report, p *policy, refs []string) {
	var fs []report.Finding
	fs = append(fs, platformFindings(rep, p.RequirePlatforms)...)
	if p.RequireDigest {
		fs = append(fs, digestRefFindings(refs)...)
	}
	fs = append(fs, layerSizeFindings(rep, p.MaxLayerSize)...)
	fs = append(fs, mediaTypeFindings(rep, p.AllowedMediaTypes)...)
	wfs, wps := wastedFindings(rep, p.MaxWastedBytes)
	fs = append(fs, wfs...)
	if len(fs) == 0 && len(wps) == 0 {
		return
	}
	rep.Findings = append(rep.Findings, fs...)
	rep.Problems = append(rep.Problems, wps...)
	rep.Normalize()
}

// policyRefs returns the references a command verified: the names given to
// remote, none for the other commands.
func policyRefs(command string, names []string) []string {
	if command == "remote" {
		return names
	}
	return nil
}

// platform is a parsed os/arch[/variant].
type platform struct{ os, arch, variant string }

func parsePlatform(s string) (platform, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return platform{}, fmt.Errorf("platform %q is not os/arch[/variant]", s)
	}
	p := platform{os: parts[0], arch: parts[1]}
	if len(parts) == 3 {
		p.variant = parts[2]
	}
	return p, nil
}

// platformFindings reports, per image name (the reference of remote, the
// name or tag of an archive image), each required platform none of its
// verified images has. Names with no verified image are left alone: what
// stopped them is already a problem of the report.
func platformFindings(rep *report.Report, required []string) []report.Finding {
	if len(required) == 0 {
		return nil
	}
	var names []string
	have := map[string][]string{}
	for _, img := range rep.Images {
		if _, ok := have[img.Name]; !ok {
			names = append(names, img.Name)
			have[img.Name] = []string{}
		}
		if img.Platform != "" && !slices.Contains(have[img.Name], img.Platform) {
			have[img.Name] = append(have[img.Name], img.Platform)
		}
	}
	var fs []report.Finding
	for _, name := range names {
		for _, req := range required {
			want := strings.TrimSpace(req)
			if _, err := parsePlatform(want); err != nil {
				continue // validate refused it before
			}
			// A required platform without variant accepts any variant, and
			// arm64 without variant is arm64/v8, as --platform selects.
			found := false
			for _, h := range have[name] {
				if verify.PlatformSelected([]string{want}, h) {
					found = true
					break
				}
			}
			if found {
				continue
			}
			actual := strings.Join(have[name], ", ")
			if actual == "" {
				actual = "no platform"
			}
			fs = append(fs, report.Finding{
				Check:    report.PolicyPlatforms,
				Severity: report.Error,
				Subject:  report.Subject{Image: name},
				Message:  fmt.Sprintf("required platform %s is not among the verified images (--require-platforms)", strings.TrimSpace(req)),
				Expected: strings.TrimSpace(req),
				Actual:   actual,
			})
		}
	}
	return fs
}

// digestRefFindings is the --require-digest check of image references: one
// error finding for each reference not pinned by a sha256 digest. The remote
// command may call it on the references it parsed.
func digestRefFindings(refs []string) []report.Finding {
	var fs []report.Finding
	for _, ref := range refs {
		if pinnedByDigest(ref) {
			continue
		}
		fs = append(fs, report.Finding{
			Check:    report.PolicyDigestRef,
			Severity: report.Error,
			Subject:  report.Subject{Image: ref},
			Message:  "reference names a tag, not a digest (--require-digest)",
			Expected: "NAME@sha256:<64 hex>",
			Actual:   ref,
		})
	}
	return fs
}

// pinnedByDigest reports whether ref ends in @sha256:<digest>.
func pinnedByDigest(ref string) bool {
	i := strings.LastIndex(ref, "@")
	return i > 0 && strings.HasPrefix(ref[i+1:], "sha256:") && len(ref[i+1:]) > len("sha256:")
}

// layerSizeFindings reports every layer whose stored or uncompressed size is
// above max (0: no limit).
func layerSizeFindings(rep *report.Report, max int64) []report.Finding {
	if max <= 0 {
		return nil
	}
	var fs []report.Finding
	for _, img := range rep.Images {
		for _, l := range img.Layers {
			if l.Size <= max && l.TarSize <= max {
				continue
			}
			fs = append(fs, report.Finding{
				Check:    report.PolicyLayerSize,
				Severity: report.Error,
				Subject:  report.Subject{Image: img.Name, Platform: img.Platform, Layer: report.LayerIndex(l.Index), Digest: l.Digest},
				Message:  fmt.Sprintf("layer is larger than --max-layer-size %d bytes", max),
				Expected: fmt.Sprintf("at most %d bytes stored and uncompressed", max),
				Actual:   fmt.Sprintf("%d bytes stored, %d bytes uncompressed", l.Size, l.TarSize),
			})
		}
	}
	return fs
}

// mediaTypeFindings reports every manifest and layer media type outside
// allowed (empty: any). Objects that declare no media type are not judged.
func mediaTypeFindings(rep *report.Report, allowed []string) []report.Finding {
	if len(allowed) == 0 {
		return nil
	}
	ok := map[string]bool{}
	for _, mt := range allowed {
		ok[strings.TrimSpace(mt)] = true
	}
	list := strings.Join(allowed, ", ")
	var fs []report.Finding
	for _, img := range rep.Images {
		if mt := img.ManifestMediaType; mt != "" && !ok[mt] {
			fs = append(fs, report.Finding{
				Check:    report.PolicyMediaType,
				Severity: report.Error,
				Subject:  report.Subject{Image: img.Name, Platform: img.Platform, Digest: img.ManifestDigest},
				Message:  fmt.Sprintf("manifest media type %s is not allowed (--allowed-media-types)", mt),
				Expected: list,
				Actual:   mt,
			})
		}
		for _, l := range img.Layers {
			if l.MediaType == "" || ok[l.MediaType] {
				continue
			}
			fs = append(fs, report.Finding{
				Check:    report.PolicyMediaType,
				Severity: report.Error,
				Subject:  report.Subject{Image: img.Name, Platform: img.Platform, Layer: report.LayerIndex(l.Index), Digest: l.Digest},
				Message:  fmt.Sprintf("layer media type %s is not allowed (--allowed-media-types)", l.MediaType),
				Expected: list,
				Actual:   l.MediaType,
			})
		}
	}
	return fs
}
