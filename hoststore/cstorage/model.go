package cstorage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// maxDepth bounds a parent chain (containers-storage has no limit of its
// own; overlay's lower file fits about 500 links).
const maxDepth = 500

// layerRec is one layer record, linked.
type layerRec struct {
	layerJSON
	file     string // the JSON file that holds it
	parent   *layerRec
	chainOK  bool          // the parent chain resolves without a cycle
	diffID   digest.Digest // valid diff-digest, or ""
	chainID  digest.Digest // chainID of the diff-digests down the chain, "" if any is missing
	dir      bool          // the driver directory exists
	tarSplit bool          // <id>.tar-split.gz is a regular file
	fs       diskcheck.FindingList
	res      *diskcheck.Result
	skip     bool // a duplicate record of the same ID (the first one counts)
}

// imageRec is one image record, linked.
type imageRec struct {
	rec         imageJSON
	names       []string // normalized, sorted
	repoDigests []string
	manifest    digest.Digest // digest of the "manifest" item (the instance), or the image's digest
	top         *layerRec
	chain       []*layerRec // base first; nil when the top layer is missing
	chainOK     bool
	config      *imageConfig
	configKey   string
	fs          diskcheck.FindingList
}

// imageConfig is the part of an image config the audit reads.
type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

func (c *imageConfig) platform() string {
	if c == nil || c.OS == "" {
		return ""
	}
	p := c.OS + "/" + c.Architecture
	if c.Variant != "" {
		p += "/" + c.Variant
	}
	return p
}

// model is the store's records, linked: layers by ID, images with their
// chains, containers.
type model struct {
	s         *Store
	r         *os.Root
	rec       *records
	layers    map[string]*layerRec // by ID
	layerList []*layerRec          // in file order, duplicates skipped
	images    []*imageRec
	byID      map[string]*imageRec
}

func newModel(s *Store, r *os.Root, rec *records) *model {
	m := &model{s: s, r: r, rec: rec, layers: map[string]*layerRec{}, byID: map[string]*imageRec{}}
	for i := range rec.layers {
		l := &layerRec{layerJSON: rec.layers[i], file: rec.layerFile[i]}
		if m.layers[l.ID] != nil {
			l.skip = true
			continue
		}
		m.layers[l.ID] = l
		m.layerList = append(m.layerList, l)
		if d, ok := parseDigest(l.DiffDigest); ok {
			l.diffID = d
		}
		if idRe.MatchString(l.ID) {
			l.dir = m.isDir(m.layerRoot(l.ID))
			fi, err := r.Lstat(tarSplitRel(s.driver, l.ID))
			l.tarSplit = err == nil && fi.Mode().IsRegular()
		}
	}
	for _, l := range m.layerList {
		l.parent = m.layers[l.Parent]
	}
	for _, l := range m.layerList {
		l.chainOK, l.chainID = m.resolve(l)
	}
	for i := range rec.images {
		im := &imageRec{rec: rec.images[i]}
		if m.byID[im.rec.ID] != nil {
			continue
		}
		m.byID[im.rec.ID] = im
		m.images = append(m.images, im)
		m.linkImage(im)
	}
	sort.SliceStable(m.images, func(i, j int) bool { return m.images[i].rec.ID < m.images[j].rec.ID })
	return m
}

// resolve walks l's parents: ok when every parent exists and there is no
// cycle; the chainID when every layer has a diff-digest.
func (m *model) resolve(l *layerRec) (bool, digest.Digest) {
	var diffs []digest.Digest
	seen := map[*layerRec]bool{}
	p := l
	for ; p != nil; p = p.parent {
		if seen[p] || len(seen) > maxDepth {
			return false, ""
		}
		seen[p] = true
		diffs = append(diffs, p.diffID)
		if p.Parent != "" && p.parent == nil {
			return false, ""
		}
	}
	for i, j := 0, len(diffs)-1; i < j; i, j = i+1, j-1 {
		diffs[i], diffs[j] = diffs[j], diffs[i]
	}
	for _, d := range diffs {
		if d == "" {
			return true, ""
		}
	}
	ids := verify.ChainIDs(diffs)
	return true, ids[len(ids)-1]
}

// chainOf lists l and its parents, base first (l must resolve).
func chainOf(l *layerRec) []*layerRec {
	var out []*layerRec
	for p := l; p != nil && len(out) <= maxDepth; p = p.parent {
		out = append(out, p)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func (m *model) linkImage(im *imageRec) {
	for _, n := range im.rec.Names {
		if nn, ok := normalize(n); ok {
			im.names = append(im.names, nn)
		} else {
			im.names = append(im.names, n)
		}
	}
	sort.Strings(im.names)
	im.manifest = digest.Digest(im.rec.BigDataDigests["manifest"])
	if _, ok := parseDigest(string(im.manifest)); !ok {
		im.manifest, _ = parseDigest(im.rec.Digest)
	}
	if l := m.layers[im.rec.TopLayer]; l != nil {
		im.top = l
		im.chainOK = l.chainOK
		if l.chainOK {
			im.chain = chainOf(l)
		}
	}
	// The config is the big-data item keyed by a digest (sha256:<config
	// digest>); read it when it is small enough.
	for _, k := range im.rec.BigDataNames {
		if _, ok := parseDigest(k); ok {
			im.configKey = k
			break
		}
	}
	if im.configKey != "" {
		if b, err := diskcheck.ReadRegular(m.r, m.bigDataRel(im.rec.ID, im.configKey), m.s.maxFile()); err == nil {
			var c imageConfig
			if json.Unmarshal(b, &c) == nil {
				im.config = &c
			}
		}
	}
	im.repoDigests = m.repoDigests(im)
}

// repoDigests are every digest of the image (its digest and its
// manifests') under every repository it is named in, as podman's
// RepoDigests. containers-storage does not record which manifest came from
// which repository, so each repository's digests are ordered by how likely
// a registry serves them under it, the likeliest first (compare takes the
// first of the repository it compares with):
//
//  1. manifests whose layer digests are not the uncompressed diffIDs (a
//     registry's; a docker-archive load or a commit records a manifest of
//     the uncompressed layers, which no registry served);
//  2. among those, the "manifest" item first: containers/image rewrites it
//     on every pull into an existing image, so it is the last manifest
//     stored; then the image's digest (the first one stored); then the
//     others by digest.
func (m *model) repoDigests(im *imageRec) []string {
	type cand struct {
		d    string
		rank int
	}
	var cands []cand
	add := func(d string, rank int) {
		if _, ok := parseDigest(d); !ok {
			return
		}
		for _, c := range cands {
			if c.d == d {
				return
			}
		}
		if m.localManifest(im, d) {
			rank += 10
		}
		cands = append(cands, cand{d, rank})
	}
	add(im.rec.BigDataDigests["manifest"], 0)
	add(im.rec.Digest, 1)
	for _, k := range sortedKeys(im.rec.BigDataDigests) {
		if strings.HasPrefix(k, "manifest") {
			add(im.rec.BigDataDigests[k], 2)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].rank < cands[j].rank })
	var out []string
	seen := map[string]bool{}
	for _, n := range im.names {
		repo := repoOf(n)
		for _, c := range cands {
			rd := repo + "@" + c.d
			if !seen[rd] {
				seen[rd] = true
				out = append(out, rd)
			}
		}
	}
	return out
}

// localManifest reports whether the image's manifest of digest d lists the
// uncompressed diffIDs as its layer digests: the manifest containers/image
// records for a docker-archive load or a commit, which no registry served.
// A manifest it cannot read or parse is not local.
func (m *model) localManifest(im *imageRec, d string) bool {
	if im.config == nil || len(im.config.RootFS.DiffIDs) == 0 {
		return false
	}
	key := "manifest-" + d
	if _, ok := im.rec.BigDataDigests[key]; !ok {
		if im.rec.BigDataDigests["manifest"] != d {
			return false
		}
		key = "manifest"
	}
	b, err := diskcheck.ReadRegular(m.r, m.bigDataRel(im.rec.ID, key), m.s.maxFile())
	if err != nil {
		return false
	}
	var mf struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if json.Unmarshal(b, &mf) != nil || len(mf.Layers) != len(im.config.RootFS.DiffIDs) {
		return false
	}
	for i, l := range mf.Layers {
		if l.Digest != im.config.RootFS.DiffIDs[i] {
			return false
		}
	}
	return true
}

// storeImage is the store model's view of an image.
func (m *model) storeImage(im *imageRec) store.Image {
	id := digest.NewDigestFromEncoded(digest.SHA256, im.rec.ID)
	out := store.Image{ID: id, Names: im.names, RepoDigests: im.repoDigests, Manifest: im.manifest, Platform: im.config.platform()}
	var diffs []digest.Digest
	for _, l := range im.chain {
		diffs = append(diffs, l.diffID)
	}
	if im.config != nil && (im.chain == nil || contains(stringsOf(diffs), "")) {
		diffs = nil
		for _, s := range im.config.RootFS.DiffIDs {
			d, _ := parseDigest(s)
			diffs = append(diffs, d)
		}
	}
	var chain []digest.Digest
	if len(diffs) > 0 && !contains(stringsOf(diffs), "") {
		chain = verify.ChainIDs(diffs)
	}
	for i, d := range diffs {
		sl := store.Layer{DiffID: d, Size: -1}
		if chain != nil {
			sl.ChainID = chain[i]
		}
		if i < len(im.chain) && len(im.chain) == len(diffs) {
			l := im.chain[i]
			if cd, ok := parseDigest(l.CompressedDigest); ok {
				sl.Digest = cd
			}
			if l.DiffSize != nil && l.diffID != "" {
				sl.Size = *l.DiffSize
			}
			sl.Present = l.dir && (l.tarSplit || l.diffID == "")
		}
		out.Layers = append(out.Layers, sl)
	}
	return out
}

func stringsOf(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d)
	}
	return out
}

// layerRoot is the directory holding a layer's files, relative to the root.
func (m *model) layerRoot(id string) string {
	if m.s.driver == "vfs" {
		return "vfs/dir/" + id
	}
	return m.s.driver + "/" + id + "/diff"
}

// layerDir is the driver's directory of a layer, relative to the root.
func (m *model) layerDir(id string) string {
	if m.s.driver == "vfs" {
		return "vfs/dir/" + id
	}
	return m.s.driver + "/" + id
}

// fileRoots are the absolute directories a layer's files are read from:
// its own, then (overlay, as the driver's DiffGetter) its parents', nearest
// first.
func (m *model) fileRoots(l *layerRec) []string {
	abs := func(rel string) string { return filepath.Join(m.s.root, filepath.FromSlash(rel)) }
	out := []string{abs(m.layerRoot(l.ID))}
	if m.s.driver == "vfs" {
		return out
	}
	for n, p := 0, l.parent; p != nil && n <= maxDepth; n, p = n+1, p.parent {
		if p.dir {
			out = append(out, abs(m.layerRoot(p.ID)))
		}
	}
	return out
}

func (m *model) bigDataRel(imageID, key string) string {
	return m.s.driver + "-images/" + imageID + "/" + bigDataName(key)
}

func (m *model) isDir(rel string) bool {
	fi, err := m.r.Lstat(rel)
	return err == nil && fi.IsDir()
}

// subject names a layer in findings.
func (l *layerRec) subject(path string) report.Subject {
	return report.Subject{Digest: l.ID, Path: path}
}
