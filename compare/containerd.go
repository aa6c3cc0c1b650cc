package compare

import (
	"fmt"
	"strings"

	"github.com/layercheck/layercheck/report"
)

// StoreLayer is one layer of a containerd host image as the host's records
// declare it: the manifest's compressed blob descriptor, the config's
// diffID and the chainID computed from it, whether the content store holds
// the blob and which snapshotters hold the chainID.
type StoreLayer struct {
	Digest       string
	Size         int64
	DiffID       string
	ChainID      string
	Blob         bool
	Snapshotters []string
}

// StorePlatform is one platform manifest of a containerd host image.
type StorePlatform struct {
	Platform       string
	ManifestDigest string
	Layers         []StoreLayer
}

// ContainerdImage is a containerd host image (a meta.db image record and
// what its target reaches in the content store) for Containerd.
type ContainerdImage struct {
	// Target is the digest the image record names: what was pulled (the
	// index digest for a multi-platform image).
	Target string
	// TargetIsIndex tells whether Target is an index.
	TargetIsIndex bool
	// Platforms are the platform manifests compared with the registry.
	Platforms []StorePlatform
}

// Containerd compares what a registry serves (want, measured by the
// verifier) with an image of a containerd content store: got is what the
// verifier measured on the host's blobs (the containerd audit's images of
// the compared platforms), host what the host's records declare. Both sides
// keep compressed blobs, so the comparison is by content digest: the
// target digest, each platform's manifest and config digests, every
// compressed layer digest, diffID and chainID. A layer whose blob is not in
// the content store is compare-layer-missing-local (an error, or a warning
// when a snapshot of its chainID holds the unpacked layer); its declared
// digest and diffID are compared instead of measured ones.
func Containerd(subject string, want, got []report.Image, host ContainerdImage) Result {
	var res Result
	subj := report.Subject{Image: subject}
	if len(want) > 0 && host.Target != "" {
		regTop, regIndex := want[0].ManifestDigest, false
		if want[0].IndexDigest != "" {
			regTop, regIndex = want[0].IndexDigest, true
		}
		// Two indexes or two manifests are compared by Images (index and
		// manifest digests); an index on one side only is a different target.
		if regTop != "" && regTop != host.Target && regIndex != host.TargetIsIndex {
			what := map[bool]string{true: "an index", false: "a single manifest"}
			s := subj
			s.Digest = host.Target
			res.add(Manifest, report.Error, s, fmt.Sprintf("the host image's target (the digest it was pulled as, %s) is not what the registry serves (%s)", what[host.TargetIsIndex], what[regIndex]), regTop, host.Target)
		}
	}
	byManifest := map[string]StorePlatform{}
	for _, p := range host.Platforms {
		byManifest[p.ManifestDigest] = p
	}
	filled := make([]report.Image, 0, len(got))
	for _, g := range got {
		p, ok := byManifest[g.ManifestDigest]
		if !ok {
			filled = append(filled, g)
			continue
		}
		g.Layers = append([]report.Layer(nil), g.Layers...)
		for i := range g.Layers {
			if i >= len(p.Layers) || g.Layers[i].Digest != "" {
				continue
			}
			sl := p.Layers[i]
			ls := report.Subject{Image: subject, Platform: g.Platform, Layer: report.LayerIndex(i), Digest: sl.Digest}
			if sl.Blob {
				continue // present but unreadable: the verifier's findings and problems say why
			}
			if len(sl.Snapshotters) > 0 {
				res.add(LayerMissingLocal, report.Warning, ls, fmt.Sprintf("layer %d's compressed blob is not in the content store, but the %s snapshot of its chainID holds the unpacked layer (discarded after unpacking); compared by the digest and diffID the host's manifest and config declare", i, strings.Join(sl.Snapshotters, ", ")), sl.Digest, "absent")
			} else {
				res.add(LayerMissingLocal, report.Error, ls, fmt.Sprintf("layer %d's compressed blob is not in the content store and no snapshot holds its chainID: the host does not have this layer", i), sl.Digest, "absent")
			}
			// Compare what the host declares for the absent layer.
			g.Layers[i].Digest, g.Layers[i].DiffID, g.Layers[i].Compression = sl.Digest, sl.DiffID, "declared"
			if g.Layers[i].ChainID == "" {
				g.Layers[i].ChainID = sl.ChainID
			}
		}
		filled = append(filled, g)
	}
	r := images(subject, "host", want, filled)
	res.Findings = append(res.Findings, r.Findings...)
	res.Problems = append(res.Problems, r.Problems...)
	res.Pairs = r.Pairs
	if len(res.Pairs) > 0 {
		res.add(LayerDigestDiffers, report.Info, subj, "compared by content digest: the containerd content store keeps the compressed blobs it pulled, so the target, manifest, config and compressed layer digests are compared with the registry's, and every local blob was re-hashed by the verifier (a local blob that no longer hashes to its name is named by its own finding)", "", "")
	}
	return res
}
