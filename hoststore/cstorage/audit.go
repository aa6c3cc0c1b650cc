package cstorage

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// audit is one run of Store.Audit.
type audit struct {
	s     *Store
	b     *report.Builder
	m     *model
	env   *diskcheck.Env
	full  bool
	sel   []*imageRec
	scope map[*layerRec]bool
	store diskcheck.FindingList // findings of the store's files (JSON, orphans)
}

func (a *audit) maxPer() int { return 50 }

func finding(check report.Check, subj report.Subject, msg string, args ...any) report.Finding {
	return diskcheck.Finding(check, subj, msg, args...)
}

func with(f report.Finding, want, got string) report.Finding { return diskcheck.With(f, want, got) }

func (a *audit) add(f report.Finding)                       { a.store.Add(a.maxPer(), f) }
func (a *audit) layerFinding(l *layerRec, f report.Finding) { l.fs.Add(a.maxPer(), f) }
func (a *audit) imageFinding(im *imageRec, f report.Finding) {
	im.fs.Add(a.maxPer(), f)
}

// Audit implements store.Store: it checks the graph root (the images
// Options.Images selects and their layers, or everything with the
// store-wide checks) and adds images, findings and problems to b. Nothing
// under the root is written, renamed, mounted or locked: no *.lock file is
// opened, files are opened read-only after an lstat, layer files are read
// in place through os.Root.
func (s *Store) Audit(ctx context.Context, b *report.Builder) error {
	m, r, err := s.load()
	if err != nil {
		return err
	}
	defer r.Close()
	a := &audit{s: s, b: b, m: m, full: len(s.opts.Images) == 0, scope: map[*layerRec]bool{}}
	a.env = &diskcheck.Env{
		Checks: diskcheck.Checks{
			FileCRC: CSFileCRC, MissingFile: CSLayerMissingFile, UnsafePath: CSUnsafePath, TarSplit: CSTarSplit,
			NotReproducible: CSTarSplitNotReproducible, LayerTar: CSLayerTar, Lstat: CSLstatMismatch,
			Whiteout: CSWhiteout, ExtraFile: CSExtraFile,
		},
		Layout:     diskcheck.Layout{Overlay: s.driver == "overlay", OverlayWhiteouts: s.driver == "overlay", FullRoot: s.driver == "vfs"},
		Product:    "containers-storage",
		Privileged: diskcheck.SeesTrustedXattrs(),
		XattrOK:    diskcheck.ProcUsable(),
		Problem:    b.Problem,
		DriverDir:  s.driver,
	}
	if !a.env.XattrOK {
		b.Problem(report.Subject{}, "/proc/self/fd is not available: xattrs were not compared")
	}
	if err := a.selectImages(); err != nil {
		return err
	}
	a.checkLayers()
	a.checkImages()
	if a.full {
		a.checkContainers()
	}
	if err := a.runContent(ctx); err != nil {
		return err
	}
	if s.driver == "overlay" {
		a.checkOverlay()
	}
	// podman or CRI-O may have written while the audit ran: what is gone
	// or different now was not damage.
	var fresh *model
	if m.rec.changed(r) {
		fresh = newModel(s, r, loadRecords(r, s.driver, s.maxFile()))
		a.dropChanged(fresh)
	}
	if a.full {
		a.checkOrphans(fresh)
	}
	a.emit()
	return ctx.Err()
}

// selectImages resolves Options.Images and the layers in scope.
func (a *audit) selectImages() error {
	if a.full {
		a.sel = a.m.images
		return nil
	}
	seen := map[*imageRec]bool{}
	for _, q := range a.s.opts.Images {
		im, err := a.m.lookup(q)
		if err != nil {
			return err
		}
		if !seen[im] {
			seen[im] = true
			a.sel = append(a.sel, im)
		}
	}
	for _, im := range a.sel {
		for _, l := range im.chain {
			a.scope[l] = true
		}
		if im.top != nil {
			a.scope[im.top] = true
		}
	}
	return nil
}

func (a *audit) inScope(l *layerRec) bool { return a.full || a.scope[l] }

// checkLayers checks the layer records: the files parse, IDs and names are
// unique, parents resolve, flags, the driver directory and the tar-split.
func (a *audit) checkLayers() {
	m := a.m
	for _, f := range sortedKeys(m.rec.layerErr) {
		a.add(finding(CSLayersJSON, report.Subject{Path: f}, "%v; containers-storage refuses to load the layer store", m.rec.layerErr[f]))
	}
	if !m.rec.haveLayers && len(m.rec.layerErr) == 0 && m.rec.haveImages {
		a.add(finding(CSLayersJSON, report.Subject{Path: layersFile(a.s.driver)}, "the image store exists but the layer store has no layers.json"))
	}
	ids := map[string]string{}
	names := map[string]string{}
	for i, l := range m.rec.layers {
		file := m.rec.layerFile[i]
		if prev, ok := ids[l.ID]; ok {
			rec := m.layers[l.ID]
			f := with(finding(CSLayerDuplicate, report.Subject{Digest: l.ID, Path: file}, "two layer records have the same ID; containers-storage skips the second"), "one record (in "+prev+")", "another in "+file)
			if rec != nil {
				a.layerFinding(rec, f)
			} else {
				a.add(f)
			}
			continue
		}
		ids[l.ID] = file
		rec := m.layers[l.ID]
		if !idRe.MatchString(l.ID) {
			a.layerFinding(rec, with(finding(CSLayersJSON, report.Subject{Digest: l.ID, Path: file}, "layer record %d has an ID that names no directory", i), "64 lowercase hex digits", fmt.Sprintf("%q", l.ID)))
			continue
		}
		for _, n := range l.Names {
			if other, ok := names[n]; ok && other != l.ID {
				a.layerFinding(rec, with(finding(CSLayerDuplicate, rec.subject(file), "the layer name %q is held by two layers; containers-storage drops it from one at the next write", n), "one layer", other+" and "+l.ID))
			}
			names[n] = l.ID
		}
		if !a.inScope(rec) {
			continue
		}
		for field, v := range map[string]string{"diff-digest": l.DiffDigest, "compressed-diff-digest": l.CompressedDigest, "toc-digest": l.TOCDigest} {
			if _, ok := parseDigest(v); v != "" && !ok {
				a.layerFinding(rec, with(finding(CSLayersJSON, rec.subject(file), "%s is not a digest", field), "<algorithm>:<hex>", fmt.Sprintf("%q", v)))
			}
		}
		switch {
		case l.Parent != "" && rec.parent == nil:
			a.layerFinding(rec, with(finding(CSLayerParent, rec.subject(file), "the parent layer is not recorded (dangling parent); the layer cannot be mounted or pushed"), l.Parent, "absent"))
		case !rec.chainOK:
			a.layerFinding(rec, finding(CSLayerParent, rec.subject(file), "the parent chain has a cycle or is deeper than %d layers", maxDepth))
		}
		if v, ok := l.Flags["incomplete"]; ok && v != false {
			a.layerFinding(rec, finding(CSLayerIncomplete, rec.subject(file), "the layer is flagged incomplete (an interrupted pull, load or commit); containers-storage deletes it at its next write"))
		}
		if !rec.dir {
			a.layerFinding(rec, with(finding(CSLayerDir, rec.subject(a.m.layerDir(l.ID)), "the layer's driver directory is missing"), "directory", "absent"))
		}
		switch {
		case rec.diffID != "" && !rec.tarSplit:
			a.layerFinding(rec, with(finding(CSTarSplit, rec.subject(tarSplitRel(a.s.driver, l.ID)),
				"the layer records a diff-digest but has no tar-split; containers-storage falls back to a fresh diff of the directory, which does not reproduce the layer's stream"), "regular file", a.describe(tarSplitRel(a.s.driver, l.ID))))
		case rec.diffID == "" && l.TOCDigest != "":
			a.layerFinding(rec, finding(CSLayerTOC, rec.subject(file), "the layer was pulled partially (zstd:chunked or eStargz) and is recorded by its toc-digest only: there is no diffID to check its rebuilt stream against; headers and files are still compared"))
		}
	}
}

// describe says what is at rel: "absent" or its type.
func (a *audit) describe(rel string) string {
	fi, err := a.m.r.Lstat(rel)
	if err != nil {
		return "absent"
	}
	return diskcheck.TypeName(fi.Mode())
}

// runContent rebuilds every layer in scope once, in parallel.
func (a *audit) runContent(ctx context.Context) error {
	var todo []*layerRec
	for _, l := range a.m.layerList {
		if a.inScope(l) && l.tarSplit && l.dir && idRe.MatchString(l.ID) {
			todo = append(todo, l)
		}
	}
	sort.SliceStable(todo, func(i, j int) bool { return size(todo[i]) > size(todo[j]) })
	if a.s.driver != "overlay" {
		// Full-rootfs drivers: parents first, so each layer's tar-split is
		// decoded once, by its own rebuild, before the layers above replay it.
		sort.SliceStable(todo, func(i, j int) bool { return len(chainOf(todo[i])) < len(chainOf(todo[j])) })
	}
	return diskcheck.Parallel(ctx, a.s.opts.Jobs, todo, a.checkContent)
}

func size(l *layerRec) int64 {
	if l.DiffSize != nil {
		return *l.DiffSize
	}
	return 0
}

// checkContent rebuilds one layer and compares it with its directory.
func (a *audit) checkContent(ctx context.Context, l *layerRec) error {
	m := a.m
	tsRel := tarSplitRel(a.s.driver, l.ID)
	rootRel := m.layerRoot(l.ID)
	dl := &diskcheck.Layer{
		Digest:      l.ID,
		Root:        filepath.Join(a.s.root, filepath.FromSlash(rootRel)),
		RootRel:     rootRel,
		TarSplit:    a.tarSplit(l),
		TarSplitRel: tsRel,
		UID:         toHost(l.UIDMap),
		GID:         toHost(l.GIDMap),
		MaxTarSize:  a.s.opts.Verify.Pass.MaxTarSize,
	}
	if a.s.driver == "overlay" {
		dl.Lowers = m.fileRoots(l)[1:]
	} else if l.chainOK {
		for _, c := range chainOf(l) {
			cl := diskcheck.ChainLayer{Digest: c.ID}
			if c.tarSplit {
				cl.TarSplit = a.tarSplit(c)
			}
			dl.Chain = append(dl.Chain, cl)
		}
	}
	r, err := diskcheck.Check(ctx, a.env, dl)
	if err != nil {
		return err
	}
	if p := a.s.opts.Verify.Progress; p != nil {
		p(rootRel, r.Stats.BytesWritten)
	}
	l.res = r
	if r.Complete {
		res := r.Pass
		if l.diffID != "" && res.DiffID != l.diffID {
			a.layerFinding(l, with(finding(CSLayerDiffID, l.subject(l.file), "%s (diff-digest); podman push and save produce other bytes", diskcheck.DiffIDMismatch(r)), l.diffID.String(), res.DiffID.String()))
		}
		if l.DiffSize != nil && *l.DiffSize >= 0 && res.TarSize != *l.DiffSize && (l.diffID != "" || l.TOCDigest != "") {
			a.layerFinding(l, with(finding(CSLayerDiffSize, l.subject(l.file), "the tar rebuilt from tar-split and the layer directory is not diff-size bytes long"), fmt.Sprint(*l.DiffSize), fmt.Sprint(res.TarSize)))
		}
		if res.LimitErr != nil {
			a.b.Problem(l.subject(rootRel), "the rebuilt layer was not read to its end: %v", res.LimitErr)
		}
	}
	for _, f := range r.Findings {
		a.layerFinding(l, f)
	}
	return ctx.Err()
}

// tarSplit opens a layer's tar-split (a regular file, read-only).
func (a *audit) tarSplit(l *layerRec) diskcheck.Opener {
	rel := tarSplitRel(a.s.driver, l.ID)
	return func() (io.ReadCloser, error) { return diskcheck.OpenRegular(a.m.r, rel) }
}

// manifestJSON is the part of a manifest the audit reads.
type manifestJSON struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	Config        struct {
		Digest string `json:"digest"`
	} `json:"config"`
	Layers []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"layers"`
	Manifests []json.RawMessage `json:"manifests"`
}

// checkImages checks the image records and their big data.
func (a *audit) checkImages() {
	m := a.m
	file := imagesFile(a.s.driver)
	if m.rec.imagesErr != nil {
		a.add(finding(CSImagesJSON, report.Subject{Path: file}, "%v; containers-storage refuses to load the image store", m.rec.imagesErr))
	}
	ids := map[string]bool{}
	names := map[string]string{}
	for i, rec := range m.rec.images {
		im := m.byID[rec.ID]
		if ids[rec.ID] {
			a.imageFinding(im, finding(CSImagesJSON, report.Subject{Digest: rec.ID, Path: file}, "two image records have the same ID"))
			continue
		}
		ids[rec.ID] = true
		if !idRe.MatchString(rec.ID) {
			a.imageFinding(im, with(finding(CSImagesJSON, report.Subject{Digest: rec.ID, Path: file}, "image record %d has an ID that names no directory", i), "64 lowercase hex digits", fmt.Sprintf("%q", rec.ID)))
			continue
		}
		for _, n := range rec.Names {
			if other, ok := names[n]; ok && other != rec.ID {
				a.imageFinding(im, with(finding(CSImageNames, report.Subject{Digest: rec.ID, Path: file, Entry: n}, "the name %q is held by two images; containers-storage drops it from one at the next write", n), "one image", other+" and "+rec.ID))
			}
			names[n] = rec.ID
		}
	}
	for _, im := range a.sel {
		if idRe.MatchString(im.rec.ID) {
			a.checkImage(im)
		}
	}
}

func (a *audit) checkImage(im *imageRec) {
	m := a.m
	file := imagesFile(a.s.driver)
	subj := report.Subject{Digest: "sha256:" + im.rec.ID, Path: file}
	switch {
	case im.rec.TopLayer == "":
		if im.config != nil && len(im.config.RootFS.DiffIDs) > 0 {
			a.imageFinding(im, with(finding(CSImageLayer, subj, "the image record names no top layer, but its config lists %d layers", len(im.config.RootFS.DiffIDs)), "a top layer", "none"))
		}
	case im.top == nil:
		a.imageFinding(im, with(finding(CSImageLayer, subj, "the image's top layer is not in the layer store; podman cannot run, save or push the image"), im.rec.TopLayer, "absent"))
	case !im.chainOK:
		a.imageFinding(im, finding(CSImageLayer, subj, "the parent chain of the image's top layer %s does not resolve (a layer below is missing or the chain has a cycle)", report.Short(im.rec.TopLayer)))
	}
	for _, id := range im.rec.MappedLayers {
		if m.layers[id] == nil {
			a.imageFinding(im, with(finding(CSImageLayer, subj, "a mapped top layer (an ID-mapped copy) is not in the layer store"), id, "absent"))
		}
	}
	// Big data: every item exists with its recorded size and digest.
	data := map[string][]byte{} // the manifest items and the config, kept to parse
	manifestDigests := map[string]bool{}
	for _, key := range im.rec.BigDataNames {
		rel := m.bigDataRel(im.rec.ID, key)
		bsubj := report.Subject{Digest: "sha256:" + im.rec.ID, Path: rel, Entry: key}
		keep := strings.HasPrefix(key, "manifest") || key == im.configKey
		n, sum, b, err := a.hashFile(rel, keep)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				a.imageFinding(im, with(finding(CSImageBigData, bsubj, "the image's big-data item %q is missing", key), "regular file", "absent"))
			} else {
				a.imageFinding(im, finding(CSImageBigData, bsubj, "the image's big-data item %q cannot be read: %v", key, err))
			}
			continue
		}
		if keep {
			data[key] = b
		}
		if want, ok := im.rec.BigDataSizes[key]; ok && want != n {
			a.imageFinding(im, with(finding(CSImageBigData, bsubj, "the big-data item %q is not the size images.json records", key), fmt.Sprint(want), fmt.Sprint(n)))
		}
		got := digest.NewDigestFromBytes(digest.SHA256, sum)
		want, ok := im.rec.BigDataDigests[key]
		if strings.HasPrefix(key, "manifest") {
			manifestDigests[want] = true
		}
		if ok && string(got) != want && !(strings.HasPrefix(key, "manifest") && schema1(b)) {
			a.imageFinding(im, with(finding(CSImageBigData, bsubj, "the big-data item %q does not hash to the digest images.json records", key), want, got.String()))
		}
	}
	if im.rec.Digest != "" && len(manifestDigests) > 0 && !manifestDigests[im.rec.Digest] {
		a.imageFinding(im, with(finding(CSImageDigest, subj, "the image's digest is not the digest of any manifest it keeps"), im.rec.Digest, strings.Join(sortedKeys(manifestDigests), ", ")))
	}
	// The config hashes to the image ID; its diff_ids are the chain's.
	if im.configKey == "" {
		if len(im.rec.BigDataNames) > 0 {
			a.imageFinding(im, with(finding(CSImageConfig, subj, "the image keeps no config (no big-data item keyed by a digest)"), "sha256:"+im.rec.ID, "none"))
		}
	} else if b, ok := data[im.configKey]; ok {
		cd := digest.FromBytes(b)
		if cd.String() != im.configKey {
			a.imageFinding(im, with(finding(CSImageConfig, report.Subject{Digest: "sha256:" + im.rec.ID, Path: m.bigDataRel(im.rec.ID, im.configKey)}, "the config does not hash to the digest it is filed under"), im.configKey, cd.String()))
		} else if cd.Encoded() != im.rec.ID && !a.tocImageID(im) {
			a.imageFinding(im, with(finding(CSImageConfig, subj, "the image ID is not the digest of its config"), cd.Encoded(), im.rec.ID))
		}
		if im.config == nil {
			a.imageFinding(im, finding(CSImageConfig, report.Subject{Digest: "sha256:" + im.rec.ID, Path: m.bigDataRel(im.rec.ID, im.configKey)}, "the config is not valid JSON"))
		} else if im.chain != nil {
			a.compareDiffIDs(im, subj)
		}
	}
	if b, ok := data["manifest"]; ok && im.chain != nil {
		a.checkManifest(im, b)
	}
}

// tocImageID: an image with a layer pulled by its TOC gets another ID
// (containers/image storage_dest computeID: "@With TOC:" and each layer's
// toc-digest or "", joined by "|").
func (a *audit) tocImageID(im *imageRec) bool {
	var in strings.Builder
	toc := false
	for _, l := range im.chain {
		if l.TOCDigest != "" && l.diffID == "" {
			toc = true
			in.WriteString(l.TOCDigest)
		}
		in.WriteString("|")
	}
	return toc && digest.FromString("@With TOC:"+in.String()).Encoded() == im.rec.ID
}

func (a *audit) compareDiffIDs(im *imageRec, subj report.Subject) {
	want := im.config.RootFS.DiffIDs
	if len(want) != len(im.chain) {
		a.imageFinding(im, with(finding(CSImageConfig, subj, "the config's diff_ids and the layer chain of the image differ in length"), fmt.Sprintf("%d layers (config)", len(want)), fmt.Sprintf("%d layers (chain from %s)", len(im.chain), report.Short(im.rec.TopLayer))))
		return
	}
	for i, l := range im.chain {
		if l.diffID == "" {
			continue // a partial pull: no diff-digest recorded
		}
		if want[i] != l.diffID.String() {
			s := subj
			s.Layer = report.LayerIndex(i)
			a.imageFinding(im, with(finding(CSImageConfig, s, "the config's diff_id differs from the diff-digest of layer %s", report.Short(l.ID)), want[i], l.diffID.String()))
		}
	}
}

// checkManifest compares the instance manifest with the chain.
func (a *audit) checkManifest(im *imageRec, b []byte) {
	subj := report.Subject{Digest: "sha256:" + im.rec.ID, Path: a.m.bigDataRel(im.rec.ID, "manifest")}
	var mf manifestJSON
	if err := json.Unmarshal(b, &mf); err != nil {
		a.imageFinding(im, finding(CSImageManifest, subj, "the manifest is not valid JSON: %v", err))
		return
	}
	if mf.SchemaVersion != 2 || len(mf.Manifests) > 0 {
		return // schema 1 lists layers top first with empty ones; an index names no layers
	}
	if im.configKey != "" && mf.Config.Digest != im.configKey {
		a.imageFinding(im, with(finding(CSImageManifest, subj, "the manifest names another config than the image keeps"), im.configKey, mf.Config.Digest))
	}
	if len(mf.Layers) != len(im.chain) {
		a.imageFinding(im, with(finding(CSImageManifest, subj, "the manifest lists another number of layers than the image's chain has"), fmt.Sprintf("%d (chain)", len(im.chain)), fmt.Sprintf("%d (manifest)", len(mf.Layers))))
		return
	}
	for i, ml := range mf.Layers {
		l := im.chain[i]
		if l.CompressedDigest == "" || l.CompressedDigest == ml.Digest {
			continue
		}
		s := subj
		s.Layer = report.LayerIndex(i)
		a.imageFinding(im, with(finding(CSImageBlob, s, "layer %s was stored from another blob than this image's manifest names (the layer is shared with an image pulled or loaded in another compression); compare uses the manifest's digest", report.Short(l.ID)), ml.Digest, l.CompressedDigest))
	}
}

// schema1 reports whether a manifest is a signed schema 1 manifest, whose
// digest containers/image computes without the signatures.
func schema1(b []byte) bool {
	var v struct {
		SchemaVersion int `json:"schemaVersion"`
	}
	return json.Unmarshal(b, &v) == nil && v.SchemaVersion == 1
}

// hashFile hashes a regular file inside the root; with keep it also
// returns the bytes when they fit the metadata limit.
func (a *audit) hashFile(rel string, keep bool) (int64, []byte, []byte, error) {
	f, err := diskcheck.OpenRegular(a.m.r, rel)
	if err != nil {
		return 0, nil, nil, err
	}
	defer f.Close()
	h := sha256.New()
	var w io.Writer = h
	var buf *limitedBuffer
	if keep {
		buf = &limitedBuffer{max: a.s.maxFile()}
		w = io.MultiWriter(h, buf)
	}
	n, err := io.Copy(w, f)
	if err != nil {
		return n, nil, nil, err
	}
	var b []byte
	if buf != nil && !buf.over {
		b = buf.b
	}
	return n, h.Sum(nil), b, nil
}

// limitedBuffer keeps what is written up to max bytes.
type limitedBuffer struct {
	b    []byte
	max  int64
	over bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if !l.over {
		if int64(len(l.b)+len(p)) > l.max {
			l.over, l.b = true, nil
		} else {
			l.b = append(l.b, p...)
		}
	}
	return len(p), nil
}

// checkContainers checks that each container's layer and image exist.
func (a *audit) checkContainers() {
	m := a.m
	for _, f := range sortedKeys(m.rec.contErr) {
		a.add(finding(CSContainersJSON, report.Subject{Path: f}, "%v; containers-storage refuses to load the container store", m.rec.contErr[f]))
	}
	for i, c := range m.rec.containers {
		subj := report.Subject{Digest: c.ID, Path: m.rec.contFile[i]}
		if len(c.Names) > 0 {
			subj.Entry = c.Names[0]
		}
		if m.layers[c.LayerID] == nil {
			a.add(with(finding(CSContainer, subj, "the container's layer is not in the layer store; the container cannot start"), c.LayerID, "absent"))
		}
		if c.ImageID != "" && m.byID[c.ImageID] == nil {
			a.add(with(finding(CSContainer, subj, "the container's image is not in the image store"), c.ImageID, "absent"))
		}
	}
}

// checkOverlay checks the overlay driver's link files, l/ symlinks and
// lower files.
func (a *audit) checkOverlay() {
	m := a.m
	links := map[string]string{} // layer ID -> link name
	for _, l := range m.layerList {
		if !l.dir || !idRe.MatchString(l.ID) {
			continue
		}
		b, err := diskcheck.ReadRegular(m.r, "overlay/"+l.ID+"/link", 4096)
		if err != nil {
			if a.inScope(l) {
				a.layerFinding(l, with(finding(CSOverlayLink, l.subject("overlay/"+l.ID+"/link"), "the layer's link file is unreadable: %v; its children cannot be mounted", err), "26-character link name", "unreadable"))
			}
			continue
		}
		links[l.ID] = strings.TrimSpace(string(b))
	}
	for _, l := range m.layerList {
		link, ok := links[l.ID]
		if !ok || !a.inScope(l) {
			continue
		}
		rel := "overlay/l/" + link
		want := "../" + l.ID + "/diff"
		if link == "" || strings.ContainsAny(link, "/\x00") || link == "." || link == ".." {
			a.layerFinding(l, with(finding(CSOverlayLink, l.subject("overlay/"+l.ID+"/link"), "the link file does not hold a link name"), "26-character link name", fmt.Sprintf("%q", link)))
			continue
		}
		got, err := m.r.Readlink(rel)
		switch {
		case err != nil:
			a.layerFinding(l, with(finding(CSOverlayLink, l.subject(rel), "the l/ symlink of the layer's link is missing; its children cannot be mounted"), want, "absent"))
		case got != want:
			a.layerFinding(l, with(finding(CSOverlayLink, l.subject(rel), "the l/ symlink of the layer's link points elsewhere"), want, got))
		}
		if l.parent == nil || !l.chainOK {
			continue
		}
		var exp []string
		for p := l.parent; p != nil && len(exp) <= maxDepth; p = p.parent {
			exp = append(exp, "l/"+links[p.ID])
		}
		lrel := "overlay/" + l.ID + "/lower"
		b, err := diskcheck.ReadRegular(m.r, lrel, 1<<20)
		if err != nil {
			a.layerFinding(l, with(finding(CSOverlayLower, l.subject(lrel), "the layer has a parent but its lower file is unreadable: %v", err), strings.Join(exp, ":"), "unreadable"))
			continue
		}
		got2 := strings.TrimSpace(string(b))
		if got2 != strings.Join(exp, ":") {
			a.layerFinding(l, with(finding(CSOverlayLower, l.subject(lrel), "the lower file does not list the links of the parent chain, nearest first"), strings.Join(exp, ":"), got2))
		}
	}
	if !a.full {
		return
	}
	// Every l/ symlink points at a layer's diff/.
	ents, err := diskcheck.ReadDir(m.r, "overlay/l", "overlay/l")
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.b.Problem(report.Subject{Path: "overlay/l"}, "%v", err)
		}
		return
	}
	for _, e := range ents {
		rel := "overlay/l/" + e.Name()
		target, err := m.r.Readlink(rel)
		if err != nil {
			a.add(with(finding(CSOverlayLink, report.Subject{Path: rel}, "an entry of overlay/l is not a symlink"), "symlink", diskcheck.TypeName(e.Type())))
			continue
		}
		id, ok := strings.CutPrefix(target, "../")
		id, ok2 := strings.CutSuffix(id, "/diff")
		if !ok || !ok2 || !idRe.MatchString(id) {
			a.add(with(finding(CSOverlayLink, report.Subject{Path: rel}, "an l/ symlink does not point at a layer's diff directory"), "../<layer ID>/diff", target))
			continue
		}
		if !m.isDir("overlay/" + id + "/diff") {
			a.add(with(finding(CSOverlayLink, report.Subject{Path: rel}, "an l/ symlink points at a layer directory that does not exist (dangling)"), "overlay/"+id+"/diff", "absent"))
		}
	}
}

// dropChanged forgets the findings of layers and images whose records
// changed or went away while the audit ran (podman rmi, a pull): they
// describe a state the store has left, not damage.
func (a *audit) dropChanged(fresh *model) {
	for _, l := range a.m.layerList {
		n := fresh.layers[l.ID]
		if n == nil || n.Parent != l.Parent || n.DiffDigest != l.DiffDigest || !equalFlags(n, l) {
			if l.fs.Len() > 0 {
				a.b.Problem(l.subject(l.file), "layer %s changed while it was audited (podman or CRI-O wrote the store); its findings were dropped", report.Short(l.ID))
			}
			l.fs = diskcheck.FindingList{}
		}
	}
	for _, im := range a.m.images {
		n := fresh.byID[im.rec.ID]
		if n == nil || n.rec.TopLayer != im.rec.TopLayer || len(n.rec.BigDataNames) != len(im.rec.BigDataNames) {
			im.fs = diskcheck.FindingList{}
		}
	}
}

func equalFlags(a, b *layerRec) bool {
	_, x := a.Flags["incomplete"]
	_, y := b.Flags["incomplete"]
	return x == y
}

// checkOrphans reports driver directories, big-data directories and
// tar-splits that no record names (warnings, with their sizes).
func (a *audit) checkOrphans(fresh *model) {
	m := a.m
	knownLayer := func(id string) bool {
		return m.layers[id] != nil || (fresh != nil && fresh.layers[id] != nil)
	}
	knownImage := func(id string) bool {
		return m.byID[id] != nil || (fresh != nil && fresh.byID[id] != nil)
	}
	driverDir := "overlay"
	if a.s.driver == "vfs" {
		driverDir = "vfs/dir"
	}
	hint := "podman system prune --external does not remove it; after checking nothing uses it, it can be deleted while podman is stopped"
	a.orphanDirs(driverDir, knownLayer, "a layer directory that no layer record names", hint)
	a.orphanDirs(a.s.driver+"-images", knownImage, "an image big-data directory that no image record names", hint)
	a.orphanDirs(a.s.driver+"-layers", knownLayer, "a layer big-data directory that no layer record names", hint)
	dir := a.s.driver + "-layers"
	ents, err := diskcheck.ReadDir(m.r, dir, dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".tar-split.gz")
		if !ok || !idRe.MatchString(id) || knownLayer(id) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		a.add(with(finding(CSOrphanTarSplit, report.Subject{Digest: id, Path: dir + "/" + e.Name()}, "a tar-split of no layer record (left by an interrupted delete or pull); %s", hint), "a layer record", "none, "+diskcheck.HumanSize(fi.Size())))
	}
}

func (a *audit) orphanDirs(dir string, known func(string) bool, what, hint string) {
	ents, err := diskcheck.ReadDir(a.m.r, dir, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.b.Problem(report.Subject{Path: dir}, "%v", err)
		}
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !idRe.MatchString(e.Name()) || known(e.Name()) {
			continue
		}
		rel := dir + "/" + e.Name()
		a.add(with(finding(CSOrphanDir, report.Subject{Digest: e.Name(), Path: rel}, "%s; %s", what, hint), "a record", "none, "+diskcheck.HumanSize(diskcheck.DuSize(a.m.r, rel))))
	}
}

// emit writes the selected images with their layers and the findings.
func (a *audit) emit() {
	reported := map[*layerRec]bool{}
	for _, im := range a.sel {
		name := "sha256:" + im.rec.ID
		if len(im.names) > 0 {
			name = im.names[0]
		}
		ri := report.Image{Name: name, Tags: im.names, Platform: im.config.platform(), ConfigDigest: "sha256:" + im.rec.ID, ManifestDigest: string(im.manifest)}
		for _, f := range im.fs.All() {
			f.Subject.Image = name
			a.b.Add(f)
		}
		si := a.m.storeImage(im)
		for i, l := range im.chain {
			rl := report.Layer{Index: i, Location: a.m.layerRoot(l.ID)}
			if i < len(si.Layers) {
				rl.DiffID, rl.ChainID = si.Layers[i].DiffID.String(), si.Layers[i].ChainID.String()
			}
			if l.res != nil && l.res.Complete {
				rl.DiffID = l.res.Pass.DiffID.String()
				rl.Size, rl.TarSize, rl.Entries = l.res.Pass.TarSize, l.res.Pass.TarSize, l.res.Pass.Entries
			}
			if !reported[l] {
				reported[l] = true
				for _, f := range l.fs.All() {
					f.Subject.Image = name
					f.Subject.Layer = report.LayerIndex(i)
					a.b.Add(f)
				}
			}
			ri.Layers = append(ri.Layers, rl)
		}
		a.b.AddImage(ri)
	}
	for _, l := range a.m.layerList {
		if !reported[l] && a.inScope(l) {
			a.b.Add(l.fs.All()...)
		}
	}
	a.b.Add(a.store.All()...)
}
