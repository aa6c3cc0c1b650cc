package dockerarchive

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestEntry is one image of a docker save manifest.json.
type manifestEntry struct {
	Config       string
	RepoTags     []string
	Layers       []string
	Parent       string
	LayerSources map[digest.Digest]ocispec.Descriptor
}

// Targets implements source.Source. Every manifest.json entry is a Target
// with Image set, in manifest.json order; then, when the archive holds an
// index.json (Docker 25+ saves, OCI archives), every index.json descriptor is
// a Target too (their blobs are the same members, with the same Keys). A
// manifest.json that is null, empty or not a list of entries is reported as
// an ArchiveManifest finding and gives no targets. Targets is computed once;
// later calls return the same result.
func (a *Archive) Targets(ctx context.Context) ([]source.Target, error) {
	if err := a.checkReady(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	done, ts, err := a.targetsDone, a.targets, a.targetsErr
	a.mu.Unlock()
	if !done {
		ts, err = a.computeTargets(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err() // not cached: a later call may finish
		}
		a.mu.Lock()
		if a.targetsDone { // a concurrent call finished first
			ts, err = a.targets, a.targetsErr
		} else {
			a.targetsDone, a.targets, a.targetsErr = true, ts, err
		}
		a.mu.Unlock()
	}
	if err != nil {
		return nil, err
	}
	out := make([]source.Target, len(ts))
	copy(out, ts)
	return out, nil
}

func (a *Archive) computeTargets(ctx context.Context) ([]source.Target, error) {
	var ts []source.Target
	var fs []report.Finding
	if a.has(manifestFile) {
		data, err := a.readMeta(ctx, manifestFile)
		if err != nil {
			return nil, err
		}
		entries, raws, efs := parseManifest(data)
		fs = append(fs, efs...)
		for i, e := range entries {
			t, tfs := a.imageTarget(ctx, i, e, raws[i])
			ts = append(ts, t)
			fs = append(fs, tfs...)
		}
	}
	if a.has(indexFile) {
		data, err := a.readMeta(ctx, indexFile)
		if err != nil {
			return nil, err
		}
		its, ifs := source.ParseIndexJSON(data, indexFile)
		ts = append(ts, its...)
		fs = append(fs, ifs...)
	}
	a.note(fs...)
	return ts, nil
}

// parseManifest decodes manifest.json entry by entry. It returns the entries
// that decode, their raw bytes, and findings for the rest.
func parseManifest(data []byte) ([]manifestEntry, [][]byte, []report.Finding) {
	var fs []report.Finding
	add := func(msg string) {
		fs = append(fs, report.Finding{Check: report.ArchiveManifest, Severity: report.Error, Subject: report.Subject{Path: manifestFile}, Message: msg})
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		add("manifest.json is empty: it lists no images")
		return nil, nil, fs
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(trimmed, &raws); err != nil {
		add(fmt.Sprintf("manifest.json is not a JSON list of images: %v", err))
		return nil, nil, fs
	}
	if raws == nil {
		add("manifest.json is null: it lists no images")
		return nil, nil, fs
	}
	if len(raws) == 0 {
		add("manifest.json is an empty list: it lists no images")
		return nil, nil, fs
	}
	if k := source.DuplicateKey(trimmed); k != "" {
		fs = append(fs, report.Finding{Check: report.ArchiveManifest, Severity: report.Warning, Subject: report.Subject{Path: manifestFile},
			Message: fmt.Sprintf("manifest.json: key %q appears twice in one object; read as encoding/json does (the last value wins), while other tools may read the first", k)})
	}
	var entries []manifestEntry
	var kept [][]byte
	for i, raw := range raws {
		var e manifestEntry
		if err := json.Unmarshal(raw, &e); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			why := "null"
			if err != nil {
				why = err.Error()
			}
			add(fmt.Sprintf("manifest.json[%d] is not an image entry: %s", i, why))
			continue
		}
		entries = append(entries, e)
		kept = append(kept, []byte(raw))
	}
	return entries, kept, fs
}

// imageTarget turns manifest.json[i] into a Target with Image set.
func (a *Archive) imageTarget(ctx context.Context, i int, e manifestEntry, raw []byte) (source.Target, []report.Finding) {
	var fs []report.Finding
	entry := fmt.Sprintf("manifest.json[%d]", i)

	cfgDigest := impliedConfigDigest(e.Config)
	name := entry
	switch {
	case len(e.RepoTags) > 0 && e.RepoTags[0] != "":
		name = e.RepoTags[0]
	case cfgDigest != "":
		name = cfgDigest.String()
	}
	subject := func(p string) report.Subject { return report.Subject{Image: name, Path: p} }

	ref := func(field, p string, implied digest.Digest) source.Ref {
		r := source.Ref{Desc: ocispec.Descriptor{Digest: implied, Size: -1}}
		if p == "" {
			r.Missing = fmt.Sprintf("%s names no %s", entry, field)
			fs = append(fs, report.Finding{Check: report.ArchiveManifest, Severity: report.Error, Subject: subject(manifestFile), Message: r.Missing})
			return r
		}
		clean, ok := cleanName(p)
		if !ok || clean == "" {
			r.Missing = fmt.Sprintf("%s names %s %q, an unsafe path outside the archive; not opened", entry, field, p)
			fs = append(fs, report.Finding{Check: report.ArchiveUnsafePath, Severity: report.Error, Subject: subject(p), Message: r.Missing})
			return r
		}
		b, why, unsafe := a.lookup(clean)
		if b == nil {
			r.Missing = fmt.Sprintf("%s names %s %q, which is %s", entry, field, p, why)
			if unsafe {
				fs = append(fs, report.Finding{Check: report.ArchiveUnsafePath, Severity: report.Error, Subject: subject(clean), Message: r.Missing})
			}
			return r
		}
		r.Blob = b
		return r
	}

	img := &source.Image{Manifest: raw}
	img.Config = ref("Config", e.Config, cfgDigest)

	var diffIDs []digest.Digest
	if len(e.LayerSources) > 0 && img.Config.Blob != nil {
		diffIDs = readDiffIDs(ctx, img.Config.Blob, a.opts.MaxManifestSize)
	}
	for j, lp := range e.Layers {
		field := fmt.Sprintf("Layers[%d]", j)
		implied := impliedLayerDigest(lp)
		r := ref(field, lp, implied)
		if ls, ok := layerSource(e.LayerSources, j, diffIDs, implied); ok {
			r.Desc.MediaType, r.Desc.Digest, r.Desc.Size = ls.MediaType, ls.Digest, ls.Size
		}
		img.Layers = append(img.Layers, r)
	}
	return source.Target{Name: name, Tags: nonEmpty(e.RepoTags), Image: img}, fs
}

// layerSource returns the LayerSources descriptor of layer j when it
// describes the stored member itself. It is found by the config's diff_ids
// when they could be read, else by the digest the member name claims
// (Docker 25+ names layers by their diffID). Docker 25+ records the stored
// tar (digest = diffID) for every layer; older Docker and go-containerregistry
// record only foreign or non-distributable layers, with the descriptor of the
// compressed registry blob the stored tar came from. Such a descriptor says
// nothing checkable about the stored bytes (their diffID still is checked),
// so it is not used.
func layerSource(ls map[digest.Digest]ocispec.Descriptor, j int, diffIDs []digest.Digest, implied digest.Digest) (ocispec.Descriptor, bool) {
	if len(ls) == 0 {
		return ocispec.Descriptor{}, false
	}
	key := implied
	if j < len(diffIDs) {
		key = diffIDs[j]
	}
	if key == "" {
		return ocispec.Descriptor{}, false
	}
	d, ok := ls[key]
	if !ok || isForeign(d) || d.Digest == "" {
		return ocispec.Descriptor{}, false
	}
	if d.Digest != key && d.Digest != implied {
		return ocispec.Descriptor{}, false
	}
	return d, true
}

// isForeign reports whether a descriptor is of a foreign or non-distributable
// layer, fetched from its URLs rather than stored.
func isForeign(d ocispec.Descriptor) bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, "foreign") || strings.Contains(d.MediaType, "nondistributable")
}

// readDiffIDs reads rootfs.diff_ids of a config, or nil if it cannot.
func readDiffIDs(ctx context.Context, b source.Blob, limit int64) []digest.Digest {
	data, err := source.ReadAll(ctx, b, limit)
	if err != nil {
		return nil
	}
	var cfg struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if json.Unmarshal(data, &cfg) != nil {
		return nil
	}
	return cfg.RootFS.DiffIDs
}

// impliedConfigDigest is the digest a config's member name claims:
// <hex>.json (legacy saves), blobs/<alg>/<hex> (Docker 25+), or a name that
// is itself a digest (sha256:<hex>, ggcr and kaniko).
func impliedConfigDigest(p string) digest.Digest {
	clean, ok := cleanName(p)
	if !ok {
		return ""
	}
	if d, ok := blobDigest(clean); ok {
		return d
	}
	if hex, ok := strings.CutSuffix(path.Base(clean), ".json"); ok && isSHA256Hex(hex) {
		return digest.NewDigestFromEncoded(digest.SHA256, hex)
	}
	if d := digest.Digest(path.Base(clean)); d.Validate() == nil {
		return d
	}
	return ""
}

// impliedLayerDigest is the digest of the stored bytes a layer's member name
// claims: blobs/<alg>/<hex>, or <hex>.tar.gz as written by go-containerregistry
// (crane, kaniko, ko) and jib, which name a layer by its compressed digest.
// <v1id>/layer.tar claims nothing (the v1 id is not a content digest).
func impliedLayerDigest(p string) digest.Digest {
	clean, ok := cleanName(p)
	if !ok {
		return ""
	}
	if d, ok := blobDigest(clean); ok {
		return d
	}
	if hex, ok := strings.CutSuffix(clean, ".tar.gz"); ok && isSHA256Hex(hex) {
		return digest.NewDigestFromEncoded(digest.SHA256, hex)
	}
	return ""
}

func nonEmpty(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
