package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/layercheck/layercheck/ref"
	"github.com/layercheck/layercheck/report"
)

// Policy is what a CI run requires of the images it verified. The zero
// value requires nothing.
type Policy struct {
	// RequirePlatforms: every listed os/arch[/variant] is among the
	// verified images of each image name (a platform without variant
	// accepts any variant).
	RequirePlatforms []string
	// RequireDigest: every reference is pinned by digest.
	RequireDigest bool
	// MaxLayerSize bounds each layer's stored and uncompressed size in
	// bytes (0: no limit).
	MaxLayerSize int64
	// AllowedMediaTypes lists the manifest and layer media types accepted
	// (empty: any).
	AllowedMediaTypes []string
	// MaxWastedBytes bounds each image's wasted bytes, dive's measure (0:
	// no limit); the report needs the layer analysis.
	MaxWastedBytes int64
}

// Validate checks a policy before anything is verified.
func (p Policy) Validate() error {
	for _, pl := range p.RequirePlatforms {
		if _, err := ref.ParsePlatform(pl); err != nil {
			return fmt.Errorf("--require-platforms: %w", err)
		}
	}
	if p.MaxLayerSize < 0 {
		return fmt.Errorf("--max-layer-size: %d is negative (0 means no limit)", p.MaxLayerSize)
	}
	if p.MaxWastedBytes < 0 {
		return fmt.Errorf("--max-wasted-bytes: %d is negative (0 means no limit)", p.MaxWastedBytes)
	}
	for _, mt := range p.AllowedMediaTypes {
		if strings.TrimSpace(mt) == "" {
			return fmt.Errorf("--allowed-media-types: empty media type in the list")
		}
	}
	return nil
}

// Apply adds the findings of every policy to rep and normalizes it again
// (statuses, order, summary). refs are the image references the user gave
// (remote), judged by RequireDigest; nil when the inputs are not
// references. It is a pure function of the report: nothing is read again.
func Apply(rep *report.Report, p Policy, refs []string) {
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
			if _, err := ref.ParsePlatform(want); err != nil {
				continue // validate refused it before
			}
			// A required platform without variant accepts any variant, and
			// arm64 without variant is arm64/v8, as --platform selects.
			found := false
			for _, h := range have[name] {
				if ref.PlatformSelected([]string{want}, h) {
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
	for _, r := range refs {
		if pinnedByDigest(r) {
			continue
		}
		fs = append(fs, report.Finding{
			Check:    report.PolicyDigestRef,
			Severity: report.Error,
			Subject:  report.Subject{Image: r},
			Message:  "reference names a tag, not a digest (--require-digest)",
			Expected: "NAME@sha256:<64 hex>",
			Actual:   r,
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

// wastedFindings is --max-wasted-bytes: an error finding for each image
// whose analysis shows more wasted bytes than max (0: no limit). An image
// with layers but no analysis (a merged report written without --analyze)
// cannot be judged: that is a problem, not a pass.
func wastedFindings(rep *report.Report, max int64) ([]report.Finding, []report.Problem) {
	if max <= 0 {
		return nil, nil
	}
	var fs []report.Finding
	var ps []report.Problem
	for _, img := range rep.Images {
		a := img.Analysis
		if a == nil {
			if len(img.Layers) > 0 {
				ps = append(ps, report.Problem{Subject: report.Subject{Image: img.Name, Platform: img.Platform},
					Message: "--max-wasted-bytes: the report holds no layer analysis for this image (verify with --analyze)"})
			}
			continue
		}
		if a.WastedBytes <= max {
			continue
		}
		bound := ""
		if a.Truncated {
			bound = " at least"
		}
		fs = append(fs, report.Finding{
			Check:    report.PolicyWasted,
			Severity: report.Error,
			Subject:  report.Subject{Image: img.Name, Platform: img.Platform, Digest: img.ManifestDigest},
			Message:  fmt.Sprintf("image wastes%s %d bytes in files later layers overwrite or delete (dive's measure, efficiency %.1f%%), more than --max-wasted-bytes %d", bound, a.WastedBytes, a.Efficiency*100, max),
			Expected: fmt.Sprintf("at most %d wasted bytes", max),
			Actual:   fmt.Sprintf("%d wasted bytes", a.WastedBytes),
		})
	}
	return fs, ps
}
