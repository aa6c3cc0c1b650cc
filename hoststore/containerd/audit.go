package containerd

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// Audit opens the containerd root and audits it into b (see Store.Audit).
func Audit(ctx context.Context, root string, opts Options, b *report.Builder) error {
	st, err := Open(root, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Audit(ctx, b)
}

// auditor holds one audit's state.
type auditor struct {
	st       *Store
	b        *report.Builder
	vopts    verify.Options
	reads    *readTracker
	filtered bool // --image given: store-wide checks are skipped
	targets  []imgTarget
	byName   map[string]*imgTarget

	// Filled by the verifier run.
	layers        map[string]layerMeasure // by blob path
	digestFinding map[string]bool         // digests the verifier already reported as not matching

	// Filled by the image walk.
	refs       map[string]map[digest.Digest]bool // namespace -> digests the image graphs reference
	manifests  map[nsDigest]*manifestInfo
	indexes    map[nsDigest]*indexInfo
	wantDiffID map[digest.Digest]digest.Digest // layer digest -> diff_id a config expects
	chainMemo  map[string][]report.Finding     // "ns\x00sn\x00key" -> findings of that snapshot
	chainNames map[string]bool                 // "sn\x00backend name" checked through an image
	snapBroken map[string]bool                 // "ns\x00sn\x00key" has a missing-snapshot finding
	unrecorded map[string][]string             // image -> platforms whose manifest file only another namespace records

	mu sync.Mutex // guards layers while hashRest runs

	snap     *snapFiles // nil with NoSnapshotFiles
	snapOnce sync.Once
}

type imgTarget struct {
	ns   *namespace
	img  *imageRecord
	name string // "<ns>/<image>", the report's image name
}

type nsDigest struct {
	ns string
	d  digest.Digest
}

type layerMeasure struct {
	diffID       digest.Digest
	decompressOK bool
}

// Audit checks the selected namespaces and the store into b. It returns an
// error only when the audit could not run (cancellation, --image matching
// nothing); data problems are findings, unreadable parts are problems.
func (s *Store) Audit(ctx context.Context, b *report.Builder) error {
	vo := s.opts.Verify
	vo.Jobs, vo.Images, vo.Platforms = s.opts.Jobs, nil, s.opts.Platforms
	if vo.MaxManifestSize <= 0 {
		vo.MaxManifestSize = 4 << 20
	}
	a := &auditor{
		st: s, b: b, vopts: vo, reads: newReadTracker(vo.MaxManifestSize), filtered: len(s.opts.Images) > 0,
		byName: map[string]*imgTarget{}, layers: map[string]layerMeasure{}, digestFinding: map[string]bool{},
		refs: map[string]map[digest.Digest]bool{}, manifests: map[nsDigest]*manifestInfo{}, indexes: map[nsDigest]*indexInfo{},
		wantDiffID: map[digest.Digest]digest.Digest{}, chainMemo: map[string][]report.Finding{}, chainNames: map[string]bool{},
		snapBroken: map[string]bool{}, unrecorded: map[string][]string{},
	}
	if err := a.selectTargets(); err != nil {
		return err
	}
	if !s.opts.NoSnapshotFiles {
		a.snap = newSnapFiles(s)
		prev := a.vopts.LayerObservers
		a.vopts.LayerObservers = func(key string) []verify.Observer {
			var obs []verify.Observer
			if prev != nil {
				obs = prev(key)
			}
			a.planSnapshots()
			return append(obs, a.snap.observers(key)...)
		}
	}
	rep, err := a.runVerifier(ctx)
	if err != nil {
		return err
	}
	for i := range a.targets {
		a.walkImage(&a.targets[i])
	}
	a.forward(rep)
	a.recordChecks()
	if err := a.hashRest(ctx); err != nil {
		return err
	}
	a.uncompressedLabels()
	a.malformed()
	a.snapshotterProblems()
	if a.snap != nil {
		a.planSnapshots()
		a.snap.finish(a.b)
		if !a.filtered {
			a.activeSnapshots()
		}
	}
	if !a.filtered {
		a.orphans()
		a.snapshotterChecks()
		a.leases()
		a.unreferenced()
	}
	return ctx.Err()
}

func (a *auditor) add(check report.Check, subj report.Subject, msg, want, got string) {
	a.addSev(check, report.SeverityOf(check), subj, msg, want, got)
}

func (a *auditor) addSev(check report.Check, sev report.Severity, subj report.Subject, msg, want, got string) {
	a.b.Add(report.Finding{Check: check, Severity: sev, Subject: subj, Message: msg, Expected: want, Actual: got})
}

// metaPath names a record of meta.db for a finding's subject.
func metaPath(ns string, parts ...string) string {
	return "meta.db:v1/" + ns + "/" + strings.Join(parts, "/")
}

// selectTargets applies --image and reports unusable image records.
func (a *auditor) selectTargets() error {
	var all []string
	for _, n := range a.st.selected {
		ns := a.st.meta.Namespaces[n]
		names := make([]string, 0, len(ns.Images))
		for name := range ns.Images {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			img := ns.Images[name]
			all = append(all, targetName(n, name))
			if a.filtered && !a.matches(n, img) {
				continue
			}
			if len(img.Problems) > 0 {
				a.add(CheckImageTarget, report.Subject{Image: targetName(n, name), Path: metaPath(n, "images", name, "target")},
					"the image record's target is unusable: "+strings.Join(img.Problems, "; "), "", "")
				continue
			}
			a.targets = append(a.targets, imgTarget{ns: ns, img: img, name: targetName(n, name)})
		}
	}
	for i := range a.targets {
		a.byName[a.targets[i].name] = &a.targets[i]
	}
	if a.filtered && len(a.targets) == 0 {
		return fmt.Errorf("--image %s: %w; the selected namespaces hold: %s", strings.Join(a.st.opts.Images, ","), verify.ErrNoMatch, strings.Join(all, ", "))
	}
	return nil
}

// matches applies the --image rules of the verifier: the image name, the
// name with :latest, the name without docker.io/library/, "<ns>/<name>", or
// a prefix (4+ hex digits) of the target digest.
func (a *auditor) matches(ns string, img *imageRecord) bool {
	short := strings.TrimPrefix(strings.TrimPrefix(img.Name, "docker.io/"), "library/")
	for _, sel := range a.st.opts.Images {
		for _, n := range []string{img.Name, short, targetName(ns, img.Name)} {
			if n == sel || n == sel+":latest" {
				return true
			}
		}
		hex := strings.TrimPrefix(sel, "sha256:")
		if len(hex) >= 4 && strings.Trim(hex, "0123456789abcdef") == "" && img.Target.Digest.Validate() == nil &&
			strings.HasPrefix(img.Target.Digest.Encoded(), hex) {
			return true
		}
	}
	return false
}

// runVerifier verifies the targets with the shared engine into a private
// builder and returns its report; forward later passes it on, adjusted.
func (a *auditor) runVerifier(ctx context.Context) (*report.Report, error) {
	var ts []source.Target
	for _, t := range a.targets {
		d := t.img.Target
		ts = append(ts, source.Target{Name: t.name, Tags: []string{t.img.Name}, Descriptor: &d})
	}
	src := &storeSource{st: a.st, targets: ts, reads: a.reads}
	inner := &report.Builder{}
	if err := verify.New(a.vopts).Verify(ctx, src, inner); err != nil {
		return nil, err
	}
	rep := inner.Finish("", src.String(), "")
	bad := map[string]bool{}
	for _, f := range rep.Findings {
		switch f.Check {
		case report.ManifestDigest, report.ConfigDigest, report.LayerDigest, report.BlobDigest:
			a.digestFinding[f.Subject.Digest] = true
		case report.LayerDecompress, report.LayerLimit:
			bad[f.Subject.Path] = true
		}
	}
	for _, img := range rep.Images {
		for _, l := range img.Layers {
			if l.Location == "" || l.DiffID == "" {
				continue
			}
			a.layers[l.Location] = layerMeasure{diffID: digest.Digest(l.DiffID), decompressOK: !bad[l.Location]}
		}
	}
	return rep, nil
}

// hashRest reads every blob in scope that nothing has read yet: with the
// engine's pass when a content record claims its diffID (a
// containerd.io/uncompressed label), else by hashing it. A blob that does
// not hash to its name is a ctrd-blob-digest finding, unless the verifier
// already reported it.
func (a *auditor) hashRest(ctx context.Context) error {
	labelled := map[digest.Digest]bool{}
	for _, n := range a.st.selected {
		for d, rec := range a.st.meta.Namespaces[n].Blobs {
			if _, ok := rec.Labels[labelUncompressed]; ok {
				labelled[d] = true
			}
		}
	}
	var todo []*blobFile
	for d, f := range a.st.files {
		if !a.inScope(d) {
			continue
		}
		if st := a.reads.get(d); st != nil && st.full {
			continue
		}
		if _, ok := a.layers[f.Path]; ok {
			continue
		}
		todo = append(todo, f)
	}
	sort.Slice(todo, func(i, j int) bool {
		if todo[i].Size != todo[j].Size {
			return todo[i].Size > todo[j].Size
		}
		return todo[i].Path < todo[j].Path
	})
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.st.opts.Jobs)
	for _, f := range todo {
		g.Go(func() error {
			a.hashOne(gctx, f, labelled[f.Digest])
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Every hashed blob: compare with its name.
	var ds []digest.Digest
	for d := range a.st.files {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	for _, d := range ds {
		st := a.reads.get(d)
		if st == nil || st.sum == "" || st.sum == d || a.digestFinding[d.String()] {
			continue
		}
		a.add(CheckBlobDigest, report.Subject{Digest: d.String(), Path: a.st.files[d].Path},
			"the blob does not hash to its name: its bytes changed after containerd committed it", d.String(), st.sum.String())
	}
	return nil
}

// inScope tells whether a blob file is audited: with --image, what the
// selected images reference; with --namespace, what the selected
// namespaces record plus what no namespace records (orphans); else every
// file.
func (a *auditor) inScope(d digest.Digest) bool {
	if a.filtered {
		for _, refs := range a.refs {
			if refs[d] {
				return true
			}
		}
		return false
	}
	if len(a.st.opts.Namespaces) == 0 {
		return true
	}
	recorded := false
	for name, ns := range a.st.meta.Namespaces {
		if ns.Blobs[d] == nil {
			continue
		}
		if a.nsSelected(name) {
			return true
		}
		recorded = true
	}
	return !recorded
}

func (a *auditor) hashOne(ctx context.Context, f *blobFile, labelled bool) {
	r, err := openBlob(f.Path)
	if err != nil {
		a.b.Problem(report.Subject{Digest: f.Digest.String(), Path: f.Path}, "reading blob: %v", err)
		return
	}
	defer r.Close()
	if labelled && f.Digest.Algorithm() == digest.SHA256 {
		po := a.vopts.Pass
		po.NoTarWalk = true
		res, err := verify.Pass(ctx, r, po)
		if err != nil {
			if ctx.Err() == nil {
				a.b.Problem(report.Subject{Digest: f.Digest.String(), Path: f.Path}, "reading blob: %v", err)
			}
			return
		}
		a.progress(f.Path, res.StoredSize)
		a.reads.done(f.Digest, res.StoredDigest, nil)
		if res.DecompressErr == nil && res.LimitErr == nil {
			a.mu.Lock()
			a.layers[f.Path] = layerMeasure{diffID: res.DiffID, decompressOK: true}
			a.mu.Unlock()
		}
		return
	}
	h := f.Digest.Algorithm().Digester()
	n, err := io.Copy(h.Hash(), &ctxReader{ctx: ctx, r: r})
	if err != nil {
		if ctx.Err() == nil {
			a.b.Problem(report.Subject{Digest: f.Digest.String(), Path: f.Path}, "reading blob: %v", err)
		}
		return
	}
	a.progress(f.Path, n)
	a.reads.done(f.Digest, h.Digest(), nil)
}

func (a *auditor) progress(loc string, n int64) {
	if a.vopts.Progress != nil {
		a.vopts.Progress(loc, n)
	}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// recordChecks compares every content record of the selected namespaces
// with its file: present, same size.
func (a *auditor) recordChecks() {
	for _, n := range a.st.selected {
		ns := a.st.meta.Namespaces[n]
		for _, d := range sortedDigests(ns.Blobs) {
			rec := ns.Blobs[d]
			if a.filtered && !a.refs[n][d] {
				continue
			}
			subj := report.Subject{Digest: d.String(), Path: metaPath(n, "content", "blob", d.String())}
			f := a.st.files[d]
			if f == nil {
				a.add(CheckBlobMissing, subj, fmt.Sprintf("namespace %s records this blob (%d bytes) but its file %s does not exist", n, rec.Size, a.st.blobPath(d)), "", "")
				continue
			}
			if rec.HasSize && rec.Size != f.Size {
				subj.Path = f.Path
				a.add(CheckBlobSize, subj, fmt.Sprintf("the blob file's size differs from namespace %s's record", n), fmt.Sprint(rec.Size), fmt.Sprint(f.Size))
			}
		}
	}
}

func sortedDigests[V any](m map[digest.Digest]V) []digest.Digest {
	out := make([]digest.Digest, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

const labelUncompressed = "containerd.io/uncompressed"

// uncompressedLabels checks containerd.io/uncompressed against the diffID
// computed from the blob, or, when the blob could not be decompressed,
// against the diff_id a config expects.
func (a *auditor) uncompressedLabels() {
	for _, n := range a.st.selected {
		ns := a.st.meta.Namespaces[n]
		for _, d := range sortedDigests(ns.Blobs) {
			rec := ns.Blobs[d]
			label, ok := rec.Labels[labelUncompressed]
			if !ok || (a.filtered && !a.refs[n][d]) {
				continue
			}
			subj := report.Subject{Digest: d.String(), Path: metaPath(n, "content", "blob", d.String(), "labels", labelUncompressed)}
			if err := digest.Digest(label).Validate(); err != nil {
				a.add(CheckUncompressedLabel, subj, "the label is not a valid digest", "a digest", label)
				continue
			}
			var m layerMeasure
			var measured bool
			if f := a.st.files[d]; f != nil {
				m, measured = a.layers[f.Path]
			}
			switch {
			case measured && m.decompressOK:
				if m.diffID != digest.Digest(label) {
					a.add(CheckUncompressedLabel, subj, "the label differs from the digest of the decompressed blob (the diffID containerd unpacks by)", m.diffID.String(), label)
				}
			case a.wantDiffID[d] != "":
				if want := a.wantDiffID[d]; want != digest.Digest(label) {
					a.add(CheckUncompressedLabel, subj, "the label differs from the diff_id the image config gives this layer", want.String(), label)
				}
			}
		}
	}
}

// malformed reports records that could not be decoded.
func (a *auditor) malformed() {
	for _, m := range a.st.meta.Malformed {
		a.add(CheckMetadata, report.Subject{Path: "meta.db:" + m.Path}, m.Msg, "", "")
	}
	for _, name := range sortedKeys(a.st.snapshotters) {
		sn := a.st.snapshotters[name]
		for _, m := range sn.Malformed {
			a.add(CheckMetadata, report.Subject{Path: sn.Dir + "/metadata.db:" + m.Path}, m.Msg, "", "")
		}
	}
}

// snapshotterProblems reports snapshotters the selected namespaces use
// whose metadata could not be read.
func (a *auditor) snapshotterProblems() {
	used := map[string]bool{}
	for _, n := range a.st.selected {
		for sn, keys := range a.st.meta.Namespaces[n].Snapshots {
			if len(keys) > 0 {
				used[sn] = true
			}
		}
	}
	for _, name := range sortedKeys(used) {
		sn := a.st.snapshotters[name]
		switch {
		case sn == nil:
			a.b.Problem(report.Subject{Path: a.st.root}, "snapshotter %s has no directory %s%s under the root (a proxy or remote snapshotter?); its snapshots were not checked on disk", name, SnapshotterPrefix, name)
		case !sn.Read:
			a.b.Problem(report.Subject{Path: sn.Dir}, "snapshotter %s: %v; its snapshots were not checked", name, sn.Err)
		}
	}
}
