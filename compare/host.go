package compare

import (
	"errors"
	"fmt"
	"strings"

	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/tarsplit"
	digest "github.com/opencontainers/go-digest"
)

// Check IDs of a comparison with a Docker host store. Expected values are
// the registry's (or the source's), actual values the host's.
const (
	TagMoved          report.Check = "compare-tag-moved"           // the host's tag now resolves to another digest in the registry
	LayerMissingLocal report.Check = "compare-layer-missing-local" // a layer of the registry's (source's) image is not in the host's layer store or content store
	LayerOnlyLocal    report.Check = "compare-layer-only-local"    // the host image has a layer the registry's image does not
	Layerdb           report.Check = "compare-layerdb"             // a layerdb record's diff or parent differs from what the source's bytes give
	TarSplit          report.Check = "compare-tarsplit"            // the tar-split of a layer differs from the host's tar-split.json.gz
	Distribution      report.Check = "compare-distribution"        // distribution/ metadata disagrees with the registry's layer digests
	HostImage         report.Check = "compare-host-image"          // the host store holds no image with the source's config digest
)

func init() {
	report.Register(
		report.CheckInfo{ID: TagMoved, Severity: report.Error, Title: "compare: the tag the host holds still resolves in the registry to the digest the host pulled (else the tag moved upstream: the local copy is stale, both digests are given)"},
		report.CheckInfo{ID: LayerMissingLocal, Severity: report.Error, Title: "compare: every layer (chainID) of the registry's or source's image is in the host's layer store (layerdb), or its compressed blob in the containerd content store (a warning when only the snapshot of its chainID holds it)"},
		report.CheckInfo{ID: LayerOnlyLocal, Severity: report.Error, Title: "compare: the host image has no layer beyond the registry's image"},
		report.CheckInfo{ID: Layerdb, Severity: report.Error, Title: "compare: each layerdb record's diff and parent equal the diffID and parent chainID computed from the source's bytes"},
		report.CheckInfo{ID: TarSplit, Severity: report.Error, Title: "compare: the tar-split captured from the source's layer equals the host's tar-split.json.gz entry by entry (names, sizes, CRCs, raw headers; a trailing empty segment is not a difference)"},
		report.CheckInfo{ID: Distribution, Severity: report.Warning, Title: "compare: distribution/diffid-by-digest and v2metadata-by-diffid agree with the registry's compressed layer digests (error when the pull cache maps a registry blob to another diffID)"},
		report.CheckInfo{ID: HostImage, Severity: report.Error, Title: "compare: the host store holds an image with the source's config digest (image ID)"},
	)
}

// HostReportImage describes a host image for the report: its references,
// config digest and layers (diffID, chainID, layerdb directory).
func HostReportImage(h *docker.HostImage) report.Image {
	im := report.Image{Name: h.Name(), Tags: append(append([]string(nil), h.RepoTags...), h.RepoDigests...), Platform: h.Platform(), ConfigDigest: h.ID.String(), Status: report.StatusOK}
	for i, d := range h.DiffIDs {
		l := report.Layer{Index: i, DiffID: d.String(), ChainID: h.ChainIDs[i].String(), Compression: "none", Status: report.StatusOK}
		if i < len(h.Layers) {
			l.Location = h.Layers[i].Dir
			if h.Layers[i].Size >= 0 {
				l.TarSize = h.Layers[i].Size
			}
		}
		im.Layers = append(im.Layers, l)
	}
	return im
}

// DiffIDLookup returns the diffID a host's distribution/diffid-by-digest
// maps a compressed blob digest to (docker.Store.DiffIDByDigest).
type DiffIDLookup func(blob digest.Digest) (diffID digest.Digest, ok bool, err error)

// Host compares the image a registry serves (want, measured by the
// verifier: config digest, each layer's compressed digest, diffID and
// chainID) with an image of a Docker classic store (host, as
// docker.Store.LookupImage read it). repo is the registry repository as the
// host's distribution metadata names it (SourceRepository, e.g.
// docker.io/library/nginx); lookup may be nil.
func Host(subject string, want report.Image, host *docker.HostImage, repo string, lookup DiffIDLookup) Result {
	var res Result
	subj := report.Subject{Image: subject, Platform: want.Platform}
	got := HostReportImage(host)
	res.Pairs = append(res.Pairs, [2]report.Image{want, got})
	switch {
	case want.ConfigDigest == "":
		res.problem(subj, "the registry's config digest is unknown (see its findings): the image ID cannot be compared")
	case want.ConfigDigest != host.ID.String():
		res.add(Config, report.Error, subj, "the registry's config digest is not the host's image ID: a different image", want.ConfigDigest, host.ID.String())
	}
	if len(want.Layers) != len(host.DiffIDs) {
		res.add(LayerCountDiffers, report.Error, subj, "the number of layers differs", fmt.Sprintf("%d layers", len(want.Layers)), fmt.Sprintf("%d layers", len(host.DiffIDs)))
	}
	firstDiff := -1
	for i := 0; i < max(len(want.Layers), len(host.DiffIDs)); i++ {
		ls := subj
		ls.Layer = report.LayerIndex(i)
		switch {
		case i >= len(host.DiffIDs):
			s := ls
			s.Digest = want.Layers[i].Digest
			res.add(LayerMissingLocal, report.Error, s, fmt.Sprintf("the registry's layer %d is not part of the host image", i), want.Layers[i].DiffID, "absent")
			continue
		case i >= len(want.Layers):
			s := ls
			s.Path = host.Layers[i].Dir
			res.add(LayerOnlyLocal, report.Error, s, fmt.Sprintf("the host image's layer %d is not in the registry's image", i), "absent", host.DiffIDs[i].String())
			continue
		}
		wl, hl := want.Layers[i], host.Layers[i]
		hd := host.DiffIDs[i].String()
		switch {
		case wl.DiffID == "":
			res.problem(ls, "the registry layer's diffID is unknown (see its findings): layer %d cannot be compared", i)
			if firstDiff < 0 {
				firstDiff = i
			}
		case wl.DiffID != hd:
			s := ls
			s.Digest = wl.Digest
			res.add(DiffID, report.Error, s, fmt.Sprintf("layer %d differs: the registry's layer does not hash to the host's diffID", i), wl.DiffID, hd)
			if firstDiff < 0 {
				firstDiff = i
			}
		case wl.ChainID != "" && wl.ChainID != host.ChainIDs[i].String():
			msg := "same layer content on a different stack of lower layers"
			if firstDiff >= 0 {
				msg += fmt.Sprintf(" (layer %d differs)", firstDiff)
			}
			res.add(ChainID, report.Error, ls, msg, wl.ChainID, host.ChainIDs[i].String())
		}
		if !hl.Present {
			s := ls
			s.Digest, s.Path = hl.ChainID.String(), hl.Dir
			res.add(LayerMissingLocal, report.Error, s, fmt.Sprintf("the host image's layer %d (chainID) is not in the host's layer store", i), hl.ChainID.String(), "absent")
		} else {
			res.Findings = append(res.Findings, layerdbRecord(ls, hl, host.DiffIDs[i], parentOf(host.ChainIDs, i))...)
		}
		res.distribution(ls, wl, hl, host.DiffIDs[i], repo, lookup)
	}
	res.add(LayerDigestDiffers, report.Info, subj, "compressed layer digests cannot be compared with a classic-store image: Docker's graph-driver store keeps only each layer's uncompressed diffID (and a tar-split to rebuild the tar), never the compressed blob it pulled; the layers were compared by diffID and chainID, and the registry's blob digests with the host's distribution/ metadata", "", "")
	return res
}

func parentOf(chain []digest.Digest, i int) digest.Digest {
	if i == 0 {
		return ""
	}
	return chain[i-1]
}

// layerdbRecord checks one layerdb record against the diffID and parent
// chainID it should hold.
func layerdbRecord(subj report.Subject, hl docker.HostLayer, diffID, parent digest.Digest) []report.Finding {
	var out []report.Finding
	subj.Digest = hl.ChainID.String()
	if hl.Diff != diffID {
		s := subj
		s.Path = hl.Dir + "/diff"
		out = append(out, report.Finding{Check: Layerdb, Severity: report.Error, Subject: s, Message: "the layerdb record's diff is not the layer's diffID", Expected: diffID.String(), Actual: orAbsent(hl.Diff)})
	}
	if hl.Parent != parent {
		s := subj
		s.Path = hl.Dir + "/parent"
		out = append(out, report.Finding{Check: Layerdb, Severity: report.Error, Subject: s, Message: "the layerdb record's parent is not the chainID of the layers below", Expected: orAbsent(parent), Actual: orAbsent(hl.Parent)})
	}
	for _, p := range hl.Problems {
		s := subj
		s.Path = hl.Dir
		out = append(out, report.Finding{Check: Layerdb, Severity: report.Error, Subject: s, Message: "layerdb record unreadable as Docker writes it: " + p})
	}
	return out
}

func orAbsent(d digest.Digest) string {
	if d == "" {
		return "absent"
	}
	return d.String()
}

// distribution checks the host's distribution/ metadata of one layer against
// the registry's compressed digest of it.
func (r *Result) distribution(subj report.Subject, wl report.Layer, hl docker.HostLayer, diffID digest.Digest, repo string, lookup DiffIDLookup) {
	blob := digest.Digest(wl.Digest)
	if blob.Validate() != nil || wl.DiffID == "" {
		return
	}
	subj.Digest = wl.Digest
	if lookup != nil {
		got, ok, err := lookup(blob)
		switch {
		case err != nil:
			r.problem(subj, "reading distribution/diffid-by-digest of %s: %v", blob, err)
		case ok && got.String() != wl.DiffID:
			s := subj
			s.Path = "distribution/diffid-by-digest/sha256/" + blob.Encoded()
			r.add(Distribution, report.Error, s, "the host's pull cache maps the registry's layer blob to another diffID; a pull would reuse the wrong layer (and then fail)", wl.DiffID, got.String())
		}
	}
	if wl.DiffID != diffID.String() || repo == "" {
		return
	}
	var same []string
	for _, m := range hl.Distribution {
		if m.SourceRepository != repo {
			continue
		}
		if m.Digest == blob {
			return
		}
		same = append(same, m.Digest.String())
	}
	if len(same) > 0 {
		s := subj
		s.Path = "distribution/v2metadata-by-diffid/sha256/" + diffID.Encoded()
		r.add(Distribution, report.Warning, s, fmt.Sprintf("the host recorded this layer from %s as other compressed blobs; the registry now serves it recompressed (same content, new bytes) or it was pushed elsewhere", repo), wl.Digest, strings.Join(same, ", "))
	}
}

// LayerStore checks a source's layers against a host's layer store: each
// chainID is in layerdb (missing: LayerMissingLocal) with the source's
// diffID as diff and the chainID below as parent (else Layerdb). layers are
// the host's records of want's chainIDs, in order (docker.Store.Layer).
func LayerStore(subj report.Subject, want report.Image, layers []docker.HostLayer) Result {
	var res Result
	for i, wl := range want.Layers {
		ls := subj
		ls.Layer = report.LayerIndex(i)
		if i >= len(layers) || wl.DiffID == "" || wl.ChainID == "" {
			res.problem(ls, "the source's diffID or chainID of layer %d is unknown (see its findings): its layer store record cannot be checked", i)
			continue
		}
		hl := layers[i]
		if !hl.Present {
			s := ls
			s.Digest, s.Path = wl.ChainID, hl.Dir
			res.add(LayerMissingLocal, report.Error, s, fmt.Sprintf("layer %d's chainID is not in the host's layer store", i), wl.ChainID, "absent")
			continue
		}
		var parent digest.Digest
		if i > 0 {
			parent = digest.Digest(want.Layers[i-1].ChainID)
		}
		res.Findings = append(res.Findings, layerdbRecord(ls, hl, digest.Digest(wl.DiffID), parent)...)
	}
	return res
}

// TarSplitResult turns the comparison of a layer's captured tar-split (a,
// from the registry's or source's bytes) with the host's tar-split.json.gz
// (b, at path) into a finding naming the first difference, or a problem
// when the comparison could not be finished. ok reports equality.
func TarSplitResult(subj report.Subject, path string, d *tarsplit.Diff) (f *report.Finding, prob *report.Problem) {
	subj.Path = path
	if d.Count > 0 {
		first := d.First()
		s := subj
		s.Entry = first.Name
		msg := fmt.Sprintf("the layer's tar-split differs from the host's tar-split.json.gz: %d differences; the first, at entry %d, is the %s", d.Count, first.Position, fieldName(first.Field))
		if first.Name != "" {
			if first.Field == "segment" {
				msg += fmt.Sprintf(" after %q", first.Name)
			} else {
				msg += fmt.Sprintf(" of %q", first.Name)
			}
		}
		if d.Err != nil {
			msg += fmt.Sprintf(" (the comparison stopped early: %v)", d.Err)
		}
		return &report.Finding{Check: TarSplit, Severity: report.Error, Subject: s, Message: msg, Expected: first.A, Actual: first.B}, nil
	}
	if d.Err != nil {
		var fe *tarsplit.FormatError
		if errors.As(d.Err, &fe) {
			return &report.Finding{Check: TarSplit, Severity: report.Error, Subject: subj, Message: fmt.Sprintf("the host's tar-split.json.gz is corrupt: %v", d.Err)}, nil
		}
		return nil, &report.Problem{Subject: subj, Message: fmt.Sprintf("the tar-splits could not be compared: %v", d.Err)}
	}
	return nil, nil
}

func fieldName(f string) string {
	switch f {
	case "segment":
		return "raw header or padding bytes (segment)"
	case "crc":
		return "file content (CRC-64)"
	case "missing-in-a":
		return "entry the source's layer lacks"
	case "missing-in-b":
		return "entry the host's tar-split lacks"
	}
	return f
}
