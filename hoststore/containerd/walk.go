package containerd

import (
	"encoding/json"
	"fmt"
	imageref "github.com/layercheck/layercheck/ref"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Label prefixes (containerd core/metadata/gc.go, pkg/labels).
const (
	gcRefContent  = "containerd.io/gc.ref.content."
	gcRefSnapshot = "containerd.io/gc.ref.snapshot."
	gcRoot        = "containerd.io/gc.root"
	maxDepth      = 8
)

// manifestInfo is what the walk learned about one image manifest, used to
// tell layers containerd never fetched from layers that were lost.
type manifestInfo struct {
	childOfIndex  bool
	layers        int
	layersPresent int  // layers whose blob file exists
	unpacked      bool // the config has a gc.ref.snapshot label
	chainOK       bool // a labelled snapshotter holds the whole chain
	layerLabels   bool // the manifest record has gc.ref.content.l.* labels
}

// indexInfo lists the image (non-attestation) children of an index.
type indexInfo struct {
	children []childInfo
}

type childInfo struct {
	d        digest.Digest
	platform string
	present  bool
}

// imageConfig is the part of an image config the audit reads.
type imageConfig = verify.ImageConfig

func (a *auditor) ref(ns string, d digest.Digest) {
	m := a.refs[ns]
	if m == nil {
		m = map[digest.Digest]bool{}
		a.refs[ns] = m
	}
	m[d] = true
}

// small returns the bytes of a small blob: from what the verifier read, or
// read here (and hashed, so hashRest need not read it again).
func (a *auditor) small(d digest.Digest) ([]byte, bool) {
	if st := a.reads.get(d); st != nil && st.data != nil {
		return st.data, true
	}
	f := a.st.files[d]
	if f == nil || f.Size > a.reads.limit {
		return nil, false
	}
	r, err := openBlob(f.Path)
	if err != nil {
		return nil, false
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, a.reads.limit+1))
	if err != nil || int64(len(data)) > a.reads.limit {
		return nil, false
	}
	a.reads.done(d, d.Algorithm().FromBytes(data), data)
	return data, true
}

func (a *auditor) walkImage(t *imgTarget) {
	a.walk(t, t.img.Target, 0, "", false, false)
}

// walk follows a descriptor through indexes and manifests. refOnly walks
// only record what is referenced (attestations, deselected platforms).
func (a *auditor) walk(t *imgTarget, desc ocispec.Descriptor, depth int, platform string, childOfIndex, refOnly bool) {
	if depth > maxDepth || desc.Digest.Validate() != nil {
		return
	}
	a.ref(t.ns.Name, desc.Digest)
	if !refOnly && !childOfIndex {
		a.recordCheck(t, desc.Digest, report.Subject{Image: t.name, Platform: platform}, "image's target")
	}
	data, ok := a.small(desc.Digest)
	if !ok {
		return
	}
	var head struct {
		MediaType string          `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if json.Unmarshal(data, &head) != nil {
		return
	}
	mt := desc.MediaType
	if mt == "" {
		mt = head.MediaType
	}
	switch {
	case isIndexType(mt) || (!isManifestType(mt) && head.Manifests != nil):
		a.walkIndex(t, desc, data, depth, refOnly)
	case isManifestType(mt) || head.Config != nil:
		a.walkManifest(t, desc, data, platform, childOfIndex, refOnly)
	}
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == verify.MediaTypeDockerList
}

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == verify.MediaTypeDockerManifest
}

// platformSelected follows the verifier's --platform matching.
func (a *auditor) platformSelected(plat string) bool {
	return imageref.PlatformSelected(a.st.opts.Platforms, plat)
}

func (a *auditor) walkIndex(t *imgTarget, desc ocispec.Descriptor, data []byte, depth int, refOnly bool) {
	var idx ocispec.Index
	if json.Unmarshal(data, &idx) != nil {
		return
	}
	if !refOnly {
		a.indexLabels(t, desc.Digest, idx.Manifests)
	}
	info := &indexInfo{}
	for i, c := range idx.Manifests {
		if c.Digest.Validate() != nil {
			continue
		}
		if verify.IsAttestation(c) {
			a.walk(t, c, depth+1, "", true, true)
			continue
		}
		plat := imageref.PlatformOf(c.Platform)
		sel := a.platformSelected(plat)
		if plat == "" {
			plat = fmt.Sprintf("manifests[%d]", i)
		}
		info.children = append(info.children, childInfo{d: c.Digest, platform: plat, present: a.st.files[c.Digest] != nil})
		a.walk(t, c, depth+1, plat, true, refOnly || !sel)
	}
	a.indexes[nsDigest{t.ns.Name, desc.Digest}] = info
}

func (a *auditor) walkManifest(t *imgTarget, desc ocispec.Descriptor, data []byte, platform string, childOfIndex, refOnly bool) {
	var m ocispec.Manifest
	if json.Unmarshal(data, &m) != nil {
		return
	}
	children := append([]ocispec.Descriptor{m.Config}, m.Layers...)
	for _, c := range children {
		if c.Digest.Validate() == nil {
			a.ref(t.ns.Name, c.Digest)
		}
	}
	if refOnly {
		return
	}
	var cfg *imageConfig
	if m.Config.Digest.Validate() == nil {
		if cdata, ok := a.small(m.Config.Digest); ok {
			cfg = &imageConfig{}
			if json.Unmarshal(cdata, cfg) != nil {
				cfg = nil
			}
		}
	}
	if platform == "" && cfg != nil {
		platform = imageref.PlatformOf(&ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	}
	subj := report.Subject{Image: t.name, Platform: platform}
	if childOfIndex && t.ns.Blobs[desc.Digest] == nil {
		// Not pulled into this namespace; the file is another namespace's.
		if a.st.files[desc.Digest] != nil {
			a.unrecorded[t.name] = append(a.unrecorded[t.name], platform)
		}
		return
	}
	a.manifestLabels(t, desc.Digest, children, subj)
	if !isImageConfigType(m.Config.MediaType) {
		return // an artifact: the verifier lists it; nothing to unpack
	}
	mi := &manifestInfo{childOfIndex: childOfIndex, layers: len(m.Layers)}
	if rec := t.ns.Blobs[m.Config.Digest]; rec != nil {
		mi.unpacked = len(labelsWithPrefix(rec.Labels, gcRefSnapshot)) > 0
	}
	// Other platforms of an index are fetched partly or not at all
	// unless unpacked; a missing record there is how containerd works.
	required := !childOfIndex || mi.unpacked
	if required {
		a.recordCheck(t, m.Config.Digest, subj, "config")
	}
	// The layers' record checks wait until the snapshots are known: an
	// image whose layers were discarded after unpacking has no layer
	// records on purpose, even where another namespace keeps the files.
	var noRecord []func()
	defer func() {
		if !mi.discarded() {
			for _, f := range noRecord {
				f()
			}
		}
	}()
	for i, l := range m.Layers {
		if l.Digest.Validate() != nil {
			continue
		}
		ls := subj
		ls.Layer = report.LayerIndex(i)
		if required {
			d := l.Digest
			noRecord = append(noRecord, func() { a.recordCheck(t, d, ls, "layer") })
		}
		if a.st.files[l.Digest] != nil {
			mi.layersPresent++
		}
	}
	if rec := t.ns.Blobs[desc.Digest]; rec != nil {
		mi.layerLabels = len(labelsWithPrefix(rec.Labels, gcRefContent+"l.")) > 0
	}
	a.manifests[nsDigest{t.ns.Name, desc.Digest}] = mi
	if cfg == nil || cfg.RootFS == nil {
		return
	}
	diffIDs := make([]digest.Digest, 0, len(cfg.RootFS.DiffIDs))
	for _, s := range cfg.RootFS.DiffIDs {
		d := digest.Digest(s)
		if d.Validate() != nil {
			return // the verifier reports config-rootfs
		}
		diffIDs = append(diffIDs, d)
	}
	if len(diffIDs) == len(m.Layers) {
		for i, l := range m.Layers {
			a.wantDiffID[l.Digest] = diffIDs[i]
		}
	}
	a.snapshots(t, mi, m.Config.Digest, diffIDs, subj)
}

func isImageConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == verify.MediaTypeDockerConfig || mt == ""
}

// recordCheck reports a blob whose file exists but whose namespace has no
// content record: containerd does not see it in that namespace.
func (a *auditor) recordCheck(t *imgTarget, d digest.Digest, subj report.Subject, what string) {
	if a.st.files[d] == nil || t.ns.Blobs[d] != nil {
		return
	}
	subj.Digest = d.String()
	subj.Path = metaPath(t.ns.Name, "content", "blob", d.String())
	a.add(CheckBlobRecord, subj, fmt.Sprintf("the %s's file is in the content store, but namespace %s has no record of it: containerd treats it as missing", what, t.ns.Name), "", "")
}

// childLabelKeys computes the gc.ref.content label keys (after the
// "containerd.io/gc.ref.content." prefix) containerd gives a parent's
// children: images.SetChildrenMappedLabels with images.ChildGCLabels.
func childLabelKeys(children []ocispec.Descriptor) []string {
	counts := map[string]int{}
	keys := make([]string, len(children))
	for i, ch := range children {
		var prefix string
		switch {
		case ch.Annotations["containerd.io/manifest.subject"] != "":
			prefix = "referrer.sha256."
		case isKnownConfig(ch.MediaType):
			prefix = "config"
		case isManifestType(ch.MediaType):
			prefix = "m."
		case isLayerType(ch.MediaType):
			prefix = "l."
		}
		idx := counts[prefix]
		counts[prefix] = idx + 1
		switch {
		case strings.HasSuffix(prefix, ".sha256."):
			keys[i] = prefix + ch.Digest.Encoded()[:min(12, len(ch.Digest.Encoded()))]
		case idx > 0 || prefix == "" || strings.HasSuffix(prefix, "."):
			keys[i] = prefix + strconv.Itoa(idx)
		default:
			keys[i] = prefix
		}
	}
	return keys
}

func isKnownConfig(mt string) bool {
	switch mt {
	case verify.MediaTypeDockerConfig, ocispec.MediaTypeImageConfig,
		"application/vnd.containerd.container.criu.checkpoint.criu.tar",
		"application/vnd.containerd.container.checkpoint.config.v1+proto":
		return true
	}
	return false
}

// plainChildKey tells a manifest child key ("config", "l.<n>") from other
// gc.ref.content labels (Docker's "moby/container.config", referrers).
func plainChildKey(k string) bool {
	if k == "config" {
		return true
	}
	rest, ok := strings.CutPrefix(k, "l.")
	if !ok {
		return false
	}
	_, err := strconv.Atoi(rest)
	return err == nil
}

// manifestLabels checks a manifest record's gc.ref.content labels against
// the manifest's config and layers, key by key.
func (a *auditor) manifestLabels(t *imgTarget, md digest.Digest, children []ocispec.Descriptor, subj report.Subject) {
	rec := t.ns.Blobs[md]
	if rec == nil {
		return
	}
	actual := labelsWithPrefix(rec.Labels, gcRefContent)
	keys := childLabelKeys(children)
	expected := map[string]int{}
	layerLabels := false
	for k := range actual {
		if strings.HasPrefix(k, "l.") {
			layerLabels = true
		}
	}
	for i, k := range keys {
		if children[i].Digest.Validate() != nil {
			continue
		}
		expected[k] = i
		want := children[i].Digest.String()
		s := subj
		s.Digest = want
		s.Path = metaPath(t.ns.Name, "content", "blob", md.String(), "labels", gcRefContent+k)
		what := "the config"
		if i > 0 {
			what = fmt.Sprintf("layer %d", i-1)
			s.Layer = report.LayerIndex(i - 1)
		}
		got, ok := actual[k]
		switch {
		case ok && got != want:
			a.add(CheckGCLabel, s, fmt.Sprintf("the manifest's label %s%s does not name %s: garbage collection protects the wrong blob", gcRefContent, k, what), want, got)
		case !ok && strings.HasPrefix(k, "l.") && !layerLabels:
			// No layer labels at all: pulled with discard_unpacked_layers.
		case !ok:
			a.addSev(CheckGCLabel, report.Warning, s, fmt.Sprintf("no %s%s label on the manifest: garbage collection does not protect %s", gcRefContent, k, what), want, "")
		}
	}
	for _, k := range sortedKeys(actual) {
		if _, ok := expected[k]; ok || !plainChildKey(k) {
			continue
		}
		s := subj
		s.Path = metaPath(t.ns.Name, "content", "blob", md.String(), "labels", gcRefContent+k)
		a.addSev(CheckGCLabel, report.Warning, s, fmt.Sprintf("the manifest's label %s%s names no child of the manifest (it has %d layers)", gcRefContent, k, len(children)-1), "", actual[k])
	}
}

// indexLabels checks an index record's gc.ref.content labels: each m.*
// label names a manifest of the index, and each child present in the
// namespace is named by some label. (An import labels only the platforms
// it kept, so positions need not match.)
func (a *auditor) indexLabels(t *imgTarget, id digest.Digest, children []ocispec.Descriptor) {
	rec := t.ns.Blobs[id]
	if rec == nil {
		return
	}
	actual := labelsWithPrefix(rec.Labels, gcRefContent)
	listed := map[string]bool{}
	for _, c := range children {
		listed[c.Digest.String()] = true
	}
	named := map[string]bool{}
	for _, k := range sortedKeys(actual) {
		v := actual[k]
		named[v] = true
		if strings.HasPrefix(k, "m.") && !listed[v] {
			a.add(CheckGCLabel, report.Subject{Image: t.name, Digest: v, Path: metaPath(t.ns.Name, "content", "blob", id.String(), "labels", gcRefContent+k)},
				"the index's label names a manifest the index does not list", "one of the index's manifests", v)
		}
	}
	for i, c := range children {
		if c.Digest.Validate() != nil || named[c.Digest.String()] || a.st.files[c.Digest] == nil || t.ns.Blobs[c.Digest] == nil {
			continue
		}
		a.addSev(CheckGCLabel, report.Warning, report.Subject{Image: t.name, Digest: c.Digest.String(), Path: metaPath(t.ns.Name, "content", "blob", id.String(), "labels")},
			fmt.Sprintf("no gc.ref.content label on the index names manifests[%d]: garbage collection does not protect it", i), c.Digest.String(), "")
	}
}

// snapshots checks the config's snapshot labels and each labelled
// snapshotter's chain for the image's chainIDs.
func (a *auditor) snapshots(t *imgTarget, mi *manifestInfo, cfgDigest digest.Digest, diffIDs []digest.Digest, subj report.Subject) {
	if len(diffIDs) == 0 {
		return
	}
	chain := verify.ChainIDs(diffIDs)
	top := chain[len(chain)-1]
	var labels map[string]string
	if rec := t.ns.Blobs[cfgDigest]; rec != nil {
		labels = labelsWithPrefix(rec.Labels, gcRefSnapshot)
	}
	if len(labels) == 0 {
		mi.unpacked = false
		found := false
		for _, sn := range sortedKeys(t.ns.Snapshots) {
			if t.ns.Snapshots[sn][top.String()] != nil {
				found = true
				a.checkChain(t, sn, chain, subj)
			}
		}
		if !found && mi.layers > 0 && mi.layersPresent == mi.layers {
			s := subj
			s.Digest = top.String()
			a.add(CheckNotUnpacked, s, "the image is not unpacked: its config has no gc.ref.snapshot label and no snapshotter holds its chainID", "", "")
		}
		return
	}
	mi.unpacked = true
	for _, sn := range sortedKeys(labels) {
		if v := labels[sn]; v != top.String() {
			s := subj
			s.Digest = cfgDigest.String()
			s.Path = metaPath(t.ns.Name, "content", "blob", cfgDigest.String(), "labels", gcRefSnapshot+sn)
			a.add(CheckGCLabel, s, "the config's snapshot label is not the ChainID of its diff_ids", top.String(), v)
		}
		if a.checkChain(t, sn, chain, subj) {
			mi.chainOK = true
		}
	}
}

// checkChain reports the findings of every snapshot of the chain in one
// snapshotter, for this image; it returns false when a snapshot is missing.
func (a *auditor) checkChain(t *imgTarget, sn string, chain []digest.Digest, subj report.Subject) bool {
	intact := true
	for i := len(chain) - 1; i >= 0; i-- {
		fs, broken := a.snapshotFindings(t.ns, sn, chain, i)
		if broken {
			intact = false
		}
		for _, f := range fs {
			f.Subject.Image, f.Subject.Platform, f.Subject.Layer = subj.Image, subj.Platform, report.LayerIndex(i)
			a.b.Add(f)
		}
	}
	return intact
}

func (a *auditor) snapshotFindings(ns *namespace, sn string, chain []digest.Digest, i int) ([]report.Finding, bool) {
	key := chain[i].String()
	memo := ns.Name + "\x00" + sn + "\x00" + key
	if fs, ok := a.chainMemo[memo]; ok {
		return fs, a.snapBroken[memo]
	}
	var fs []report.Finding
	broken := false
	mk := func(check report.Check, path, msg, want, got string) {
		fs = append(fs, report.Finding{Check: check, Severity: report.SeverityOf(check), Subject: report.Subject{Digest: key, Path: path}, Message: msg, Expected: want, Actual: got})
		if check == CheckSnapshotMissing {
			broken = true
		}
	}
	defer func() {
		a.chainMemo[memo], a.snapBroken[memo] = fs, broken
	}()
	path := metaPath(ns.Name, "snapshots", sn, key)
	keys := ns.Snapshots[sn]
	rec := keys[key]
	if rec == nil {
		mk(CheckSnapshotMissing, path, fmt.Sprintf("namespace %s has no %s snapshot for this layer's chainID", ns.Name, sn), key, "")
		return fs, broken
	}
	wantParent := ""
	if i > 0 {
		wantParent = chain[i-1].String()
	}
	if rec.Parent != wantParent {
		mk(CheckSnapshotChain, path+"/parent", "the snapshot's parent is not the chainID of the layers below it", wantParent, rec.Parent)
	}
	snt := a.st.snapshotters[sn]
	if snt == nil || !snt.Read {
		return fs, broken // reported once as a problem
	}
	a.chainNames[sn+"\x00"+rec.Name] = true
	bs := snt.Snapshots[rec.Name]
	bpath := snt.Dir + "/metadata.db:v1/snapshots/" + rec.Name
	if bs == nil {
		mk(CheckSnapshotMissing, bpath, fmt.Sprintf("the %s snapshotter has no snapshot named %q", sn, rec.Name), rec.Name, "")
		return fs, broken
	}
	if bs.Kind != kindCommitted {
		mk(CheckSnapshotChain, bpath+"/kind", "an image layer's snapshot is not committed", "committed", kindName(bs.Kind))
	}
	if rec.Parent != "" {
		if pr := keys[rec.Parent]; pr != nil && bs.Parent != pr.Name {
			mk(CheckSnapshotChain, bpath+"/parent", "the snapshotter's parent differs from meta.db's parent snapshot", pr.Name, bs.Parent)
		}
	} else if bs.Parent != "" {
		mk(CheckSnapshotChain, bpath+"/parent", "the base layer's snapshot has a parent in the snapshotter", "", bs.Parent)
	}
	if bs.HasID {
		if dir, known := snt.dataDir(bs.ID); known && !isDir(dir) {
			mk(CheckSnapshotMissing, dir, fmt.Sprintf("the directory of snapshot %s (id %d) does not exist: the layer's files are gone", rec.Name, bs.ID), dir, "")
		}
	}
	return fs, broken
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// forward passes the verifier's report on to the caller's builder,
// turning what containerd deliberately did not fetch into ctrd-not-pulled
// information: other platforms of an index, layers of platforms that were
// not unpacked, layers discarded after unpacking.
func (a *auditor) forward(rep *report.Report) {
	type key struct{ name, platform string }
	imgs := map[key]*report.Image{}
	for i := range rep.Images {
		imgs[key{rep.Images[i].Name, rep.Images[i].Platform}] = &rep.Images[i]
	}
	drop := map[key]bool{}
	absent := map[string][]string{}
	notes := map[key][]string{}
	var keep []report.Finding
	for _, f := range rep.Findings {
		k := key{f.Subject.Image, f.Subject.Platform}
		t := a.byName[f.Subject.Image]
		if t != nil && f.Check == report.ManifestMissing && a.childNotPulled(t, digest.Digest(f.Subject.Digest)) {
			absent[f.Subject.Image] = append(absent[f.Subject.Image], f.Subject.Platform)
			if img := imgs[k]; img != nil && len(img.Layers) == 0 && img.ConfigDigest == "" {
				drop[k] = true
			}
			continue
		}
		if t != nil && f.Check == report.LayerMissing && t.ns.Blobs[digest.Digest(f.Subject.Digest)] == nil {
			if img := imgs[k]; img != nil {
				if why := a.manifests[nsDigest{t.ns.Name, digest.Digest(img.ManifestDigest)}].notPulled(); why != "" {
					notes[k] = append(notes[k], why)
					continue
				}
			}
		}
		keep = append(keep, f)
	}
	for _, img := range rep.Images {
		if !drop[key{img.Name, img.Platform}] {
			a.b.AddImage(img)
		}
	}
	a.b.Add(keep...)
	for _, p := range rep.Problems {
		a.b.Problem(p.Subject, "%s", p.Message)
	}
	for _, name := range sortedKeys(absent) {
		ps := absent[name]
		sort.Strings(ps)
		subj := report.Subject{Image: name}
		if t := a.byName[name]; t != nil {
			subj.Digest = t.img.Target.Digest.String()
		}
		a.add(CheckNotPulled, subj, fmt.Sprintf("%d platform manifests of the index are not in the content store (containerd pulls only the platforms asked for): %s", len(ps), strings.Join(ps, ", ")), "", "")
	}
	for _, name := range sortedKeys(a.unrecorded) {
		ps := a.unrecorded[name]
		sort.Strings(ps)
		t := a.byName[name]
		a.add(CheckNotPulled, report.Subject{Image: name, Digest: t.img.Target.Digest.String()},
			fmt.Sprintf("%d platform manifests of the index are not recorded in namespace %s (not pulled there); their files, which another namespace holds, were verified: %s",
				len(ps), t.ns.Name, strings.Join(ps, ", ")), "", "")
	}
	for k, whys := range notes {
		a.add(CheckNotPulled, report.Subject{Image: k.name, Platform: k.platform},
			fmt.Sprintf("%d of the %d layers are not in the content store, and namespace %s has no record of them: %s", len(whys),
				len(imgs[k].Layers), a.byName[k.name].ns.Name, whys[0]), "", "")
	}
}

// childNotPulled tells whether d is an absent child of an index of this
// image while some sibling platform is present.
func (a *auditor) childNotPulled(t *imgTarget, d digest.Digest) bool {
	for k, info := range a.indexes {
		if k.ns != t.ns.Name {
			continue
		}
		hasD, anyPresent := false, false
		for _, c := range info.children {
			if c.d == d && !c.present {
				hasD = true
			}
			if c.present {
				anyPresent = true
			}
		}
		if hasD && anyPresent {
			return true
		}
	}
	return false
}

// discarded tells whether the layers were discarded after unpacking
// (discard_unpacked_layers): unpacked, the whole chain in a snapshotter, and
// no gc.ref.content label on the manifest protects a layer.
func (mi *manifestInfo) discarded() bool {
	return mi != nil && mi.unpacked && mi.chainOK && !mi.layerLabels
}

// notPulled explains why a layer with no content record is absent when
// that is how containerd works rather than a loss; "" otherwise.
func (mi *manifestInfo) notPulled() string {
	switch {
	case mi == nil:
		return ""
	case mi.childOfIndex && !mi.unpacked:
		return "containerd fetched this platform's manifest and config only (it pulls the layers of the platforms it unpacks)"
	case mi.discarded():
		return "they were discarded after unpacking (discard_unpacked_layers); the snapshots are intact"
	}
	return ""
}
