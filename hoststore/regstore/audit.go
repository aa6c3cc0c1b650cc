package regstore

import (
	"context"
	"fmt"
	imageref "github.com/layercheck/layercheck/ref"
	"sort"
	"strings"
	"time"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Now is the clock the upload age is measured against (tests set it).
var Now = time.Now

// StaleUpload is the age past which an upload is reported.
const StaleUpload = 24 * time.Hour

// Audit implements store.Store: see the package documentation for what it
// checks. With Options.Images only the selected manifests, their links and
// blobs are checked (no orphans, uploads or empty repositories).
func (s *Store) Audit(ctx context.Context, b *report.Builder) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.load()
	a := &audit{s: s, b: b, whole: len(s.opts.Images) == 0, hashes: &hashes{}}
	if !a.whole {
		roots, err := s.selectTargets()
		if err != nil {
			return err
		}
		a.roots, a.sel = roots, s.withChildren(roots)
	}
	a.scanFindings()
	for _, name := range s.sc.names {
		if a.repoSelected(name) && s.repoMine(name) {
			a.checkRepo(s.sc.repos[name])
		}
	}
	if a.whole {
		a.orphans()
	}
	if err := a.verifyImages(ctx); err != nil {
		return err
	}
	return a.hashRest(ctx)
}

// audit is one Audit call's state.
type audit struct {
	s      *Store
	b      *report.Builder
	whole  bool
	roots  map[string]map[digest.Digest]bool // repository -> the selected manifests
	sel    map[string]map[digest.Digest]bool // the same with their index children
	hashes *hashes
}

func (a *audit) repoSelected(name string) bool { return a.whole || a.sel[name] != nil }

func (a *audit) add(check report.Check, sev report.Severity, subj report.Subject, msg, want, got string) {
	a.b.Add(report.Finding{Check: check, Severity: sev, Subject: subj, Message: msg, Expected: want, Actual: got})
}

// scanFindings reports what the walk found, each by the shard it belongs to.
func (a *audit) scanFindings() {
	s := a.s
	for _, f := range s.sc.findings {
		switch {
		case f.repo != "":
			if !a.repoSelected(f.repo) || !s.repoMine(f.repo) {
				continue
			}
		case !a.whole:
			continue
		case f.blob != "":
			if !s.blobMine(f.blob) {
				continue
			}
		default:
			if !s.pathMine(f.f.Subject.Path) {
				continue
			}
		}
		a.b.Add(f.f)
	}
	for _, p := range s.sc.problems {
		a.b.Problem(p.Subject, "%s", p.Message)
	}
}

// resolves says whether the repository serves d through links (its
// _layers, or its revisions for a manifest): the link exists, holds a
// digest, and that blob exists.
func (s *Store) resolves(links map[digest.Digest]*link, d digest.Digest) bool {
	l := links[d]
	return l != nil && l.target != "" && s.sc.blobs[l.target] != nil
}

// checkRepo checks one repository's links, tags, manifests and uploads.
func (a *audit) checkRepo(r *repo) {
	s := a.s
	selected := func(d digest.Digest) bool { return a.whole || a.sel[r.name][d] }
	for _, l := range sortedLinks(r.revisions) {
		if l.target == "" || !selected(l.dir) {
			continue
		}
		if s.sc.blobs[l.target] == nil {
			a.add(CheckRegLinkDangling, report.Error, repoSubject(r.name, l.rel, l.dir),
				fmt.Sprintf("manifest revision of %s names a blob absent from blobs/: a pull of %s@%s fails (manifest unknown)", r.name, r.name, l.dir), "blobs/"+blobRel(l.target), "absent")
		}
	}
	if a.whole {
		for _, l := range sortedLinks(r.layers) {
			if l.target != "" && s.sc.blobs[l.target] == nil {
				a.add(CheckRegLinkDangling, report.Warning, repoSubject(r.name, l.rel, l.dir),
					"layer link names a blob absent from blobs/ (a leftover once no manifest uses it; see regstore-ref-missing for those that do)", "blobs/"+blobRel(l.target), "absent")
			}
		}
	}
	for _, t := range sortedTags(r) {
		if !a.whole && (t.current == nil || !selected(t.current.target)) {
			continue
		}
		subj := report.Subject{Image: r.name + ":" + t.name, Path: V2Dir + "/repositories/" + r.name + "/_manifests/tags/" + t.name}
		switch {
		case t.current == nil:
			a.add(CheckRegTagDangling, report.Error, subj, "tag has no current/link: the registry lists the tag but cannot serve it", "current/link", "absent")
		case t.current.target == "":
			// regstore-link-invalid said it
		case r.revisions[t.current.target] == nil || r.revisions[t.current.target].target == "":
			subj.Digest = t.current.target.String()
			a.add(CheckRegTagDangling, report.Error, subj, "tag names a manifest that is not a revision of the repository: a pull of the tag fails (manifest unknown)",
				"_manifests/revisions/"+digestRel(t.current.target)+"/link", "absent")
		case !s.resolves(r.revisions, t.current.target):
			subj.Digest = t.current.target.String()
			a.add(CheckRegTagDangling, report.Error, subj, "tag names a revision whose blob is gone: a pull of the tag fails", "blobs/"+blobRel(r.revisions[t.current.target].target), "absent")
		}
		if a.whole {
			for _, l := range t.index {
				if l.target != "" && s.sc.blobs[l.target] == nil {
					a.add(CheckRegLinkDangling, report.Warning, repoSubject(r.name+":"+t.name, l.rel, l.dir),
						"tag history entry names a blob absent from blobs/ (left by a manifest deletion and garbage collection)", "blobs/"+blobRel(l.target), "absent")
				}
			}
		}
	}
	for _, l := range sortedLinks(r.revisions) {
		if l.target == "" || !selected(l.dir) {
			continue
		}
		m := s.revision(r, l.dir)
		if m == nil {
			continue
		}
		if m.bad != "" {
			msg := m.bad
			if r.hasLayers {
				msg += "; registry garbage-collect stops at this manifest"
			}
			a.add(CheckRegManifestInvalid, report.Error, report.Subject{Image: r.name + "@" + l.dir.String(), Digest: l.dir.String(), Path: V2Dir + "/blobs/" + blobRel(l.target)},
				msg, "a schema 1 or 2 manifest of a media type the registry serves", "")
			continue
		}
		a.checkRefs(r, l.dir, m)
	}
	if !a.whole {
		return
	}
	now := Now()
	for _, u := range r.uploads {
		if age := now.Sub(u.started); age > StaleUpload {
			a.add(CheckRegUploadStale, report.Warning, repoSubject(r.name, u.rel, ""),
				fmt.Sprintf("upload started %s ago (%s) and never finished: %d bytes", age.Round(time.Hour), u.started.UTC().Format(time.RFC3339), u.size),
				"finished or removed within "+StaleUpload.String(), fmt.Sprintf("%d bytes", u.size))
		}
	}
	if r.hasLayers && len(r.revisions) == 0 && len(r.tags) == 0 {
		a.add(CheckRegRepoEmpty, report.Warning, repoSubject(r.name, "repositories/"+r.name, ""),
			fmt.Sprintf("repository holds no manifest revision and no tag (%d bytes of links and uploads)", r.bytes), "a manifest revision", fmt.Sprintf("%d bytes", r.bytes))
	}
}

// checkRefs checks that every blob manifest m references exists and is
// linked in r the way a pull reads it.
func (a *audit) checkRefs(r *repo, md digest.Digest, m *manifestDoc) {
	s := a.s
	mpath := V2Dir + "/blobs/" + blobRel(m.d)
	ref := func(role string, d digest.Digest, viaRevisions bool, sev report.Severity, urls []string) {
		if d.Validate() != nil {
			return // the verifier reports an invalid digest
		}
		links, where := r.layers, "_layers/"
		if viaRevisions {
			links, where = r.revisions, "_manifests/revisions/"
		}
		if s.resolves(links, d) {
			return
		}
		subj := report.Subject{Image: r.name + "@" + md.String(), Digest: d.String(), Path: mpath}
		switch {
		case s.sc.blobs[d] == nil && len(urls) > 0:
			return // a foreign layer, fetched from its URLs
		case s.sc.blobs[d] == nil:
			a.add(CheckRegRefMissing, sev, subj, fmt.Sprintf("%s of manifest %s is absent from blobs/: a pull fails", role, md), "blobs/"+blobRel(d), "absent")
		default:
			a.add(CheckRegRefUnlinked, sev, subj, fmt.Sprintf("%s of manifest %s is in blobs/ but not linked in repository %s: a pull fails with blob unknown", role, md, r.name),
				"repositories/"+r.name+"/"+where+digestRel(d)+"/link", "absent or naming no blob")
		}
	}
	switch m.kind {
	case kindImage:
		ref("config", m.config.Digest, false, report.Error, nil)
		for i, l := range m.layers {
			ref(fmt.Sprintf("layer %d", i), l.Digest, false, report.Error, l.URLs)
		}
	case kindIndex:
		for i, c := range m.children {
			ref(fmt.Sprintf("manifests[%d] (%s)", i, nonEmpty(imageref.PlatformOf(c.Platform), c.MediaType)), c.Digest, true, report.Error, nil)
		}
	case kindSchema1:
		for i, d := range m.fsLayers {
			ref(fmt.Sprintf("fsLayers[%d]", i), d, false, report.Error, nil)
		}
	}
	if m.subject != nil {
		ref("subject", m.subject.Digest, true, report.Warning, nil)
	}
}

func nonEmpty(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// digestRel is <alg>/<hex>; blobRel is <alg>/<xx>/<hex>/data.
func digestRel(d digest.Digest) string { return string(d.Algorithm()) + "/" + d.Encoded() }

func blobRel(d digest.Digest) string {
	enc := d.Encoded()
	if len(enc) < 2 {
		return digestRel(d)
	}
	return string(d.Algorithm()) + "/" + enc[:2] + "/" + enc + "/data"
}

// markSet is what registry garbage-collect marks without
// --delete-untagged: in every repository it enumerates (a _layers
// directory), every revision whose link and blob resolve, and what its
// manifest references (config and layers, index children, blobSums).
func (s *Store) markSet() map[digest.Digest]bool {
	marked := map[digest.Digest]bool{}
	for _, name := range s.sc.names {
		r := s.sc.repos[name]
		if !r.hasLayers {
			continue
		}
		all := append(sortedLinks(r.revisions), r.strayLink...)
		for _, l := range all {
			if !strings.Contains(l.rel, "/_manifests/revisions/") || l.target == "" {
				continue
			}
			l2 := r.revisions[l.target]
			if l2 == nil || l2.target == "" || s.sc.blobs[l2.target] == nil {
				continue
			}
			marked[l.target] = true
			if m := s.manifest(l2.target); m != nil && m.bad == "" {
				for _, d := range m.references() {
					marked[d] = true
				}
			}
		}
	}
	return marked
}

// Orphans lists the blobs registry garbage-collect --dry-run lists as
// "blob eligible for deletion" (without --delete-untagged), sorted.
func (s *Store) Orphans() []digest.Digest {
	s.load()
	marked := s.markSet()
	var out []digest.Digest
	for d := range s.sc.blobs {
		if !marked[d] {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// orphans reports the unmarked blobs of this shard.
func (a *audit) orphans() {
	for _, d := range a.s.Orphans() {
		if !a.s.blobMine(d) {
			continue
		}
		bf := a.s.sc.blobs[d]
		a.add(CheckRegBlobOrphan, report.Warning, report.Subject{Digest: d.String(), Path: V2Dir + "/" + bf.rel},
			fmt.Sprintf("blob no manifest revision references: registry garbage-collect deletes it (%d bytes)", bf.size), "referenced by a manifest revision", fmt.Sprintf("%d bytes", bf.size))
	}
}

// selectTargets resolves Options.Images to manifest revisions.
func (s *Store) selectTargets() (map[string]map[digest.Digest]bool, error) {
	out := map[string]map[digest.Digest]bool{}
	add := func(repoName string, d digest.Digest) {
		if out[repoName] == nil {
			out[repoName] = map[digest.Digest]bool{}
		}
		out[repoName][d] = true
	}
	for _, raw := range s.opts.Images {
		sel := stripHost(raw)
		found := false
		if repoName, ds, ok := strings.Cut(sel, "@"); ok {
			if r := s.sc.repos[repoName]; r != nil && r.revisions[digest.Digest(ds)] != nil {
				add(repoName, digest.Digest(ds))
				found = true
			}
		} else {
			repoName, t := sel, "latest"
			if i := strings.LastIndexByte(sel, ':'); i > strings.LastIndexByte(sel, '/') {
				repoName, t = sel[:i], sel[i+1:]
			}
			if r := s.sc.repos[repoName]; r != nil && r.tags[t] != nil && r.tags[t].current != nil && r.tags[t].current.target != "" {
				add(repoName, r.tags[t].current.target)
				found = true
			}
		}
		if !found {
			for _, im := range s.images() {
				if !matchImage(im, raw) {
					continue
				}
				for _, rd := range im.RepoDigests {
					repoName, _, _ := strings.Cut(rd, "@")
					if r := s.sc.repos[repoName]; r != nil && r.revisions[im.Manifest] != nil {
						add(repoName, im.Manifest)
						found = true
					}
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("--image %s: %w in %s", raw, store.ErrNotFound, s)
		}
	}
	return out, nil
}

// withChildren adds to each selected index its children the repository holds.
func (s *Store) withChildren(roots map[string]map[digest.Digest]bool) map[string]map[digest.Digest]bool {
	out := map[string]map[digest.Digest]bool{}
	for repoName, ds := range roots {
		r := s.sc.repos[repoName]
		out[repoName] = map[digest.Digest]bool{}
		for d := range ds {
			out[repoName][d] = true
			if m := s.revision(r, d); m != nil && m.kind == kindIndex {
				for _, c := range m.children {
					if r.revisions[c.Digest] != nil {
						out[repoName][c.Digest] = true
					}
				}
			}
		}
	}
	return out
}

// targets are the manifest revisions of r the verifier checks: in a whole
// audit every revision that is tagged or not a child of an index revision
// (children are verified through their index); else the selected roots.
func (a *audit) targets(r *repo) []source.Target {
	s := a.s
	tags := tagsOf(r)
	child := map[digest.Digest]bool{}
	for _, l := range r.revisions {
		if m := s.revision(r, l.dir); m != nil && m.bad == "" && m.kind == kindIndex {
			for _, c := range m.children {
				child[c.Digest] = true
			}
		}
	}
	var out []source.Target
	for _, l := range sortedLinks(r.revisions) {
		m := s.revision(r, l.dir)
		if m == nil || m.bad != "" {
			continue
		}
		if !a.whole && !a.roots[r.name][l.dir] {
			continue
		}
		if a.whole && child[l.dir] && len(tags[l.dir]) == 0 {
			continue
		}
		t := source.Target{Name: r.name + "@" + l.dir.String(),
			Descriptor: &ocispec.Descriptor{MediaType: m.served, Digest: l.dir, Size: m.size}}
		for _, tg := range tags[l.dir] {
			t.Tags = append(t.Tags, r.name+":"+tg)
		}
		if len(t.Tags) > 0 {
			t.Name = t.Tags[0]
		}
		out = append(out, t)
	}
	return out
}

// verifyImages runs the verifier over one source per repository, sharing
// one blob scope, reading only this shard's blobs.
func (a *audit) verifyImages(ctx context.Context) error {
	s := a.s
	var srcs []source.Source
	for _, name := range s.sc.names {
		if !a.repoSelected(name) {
			continue
		}
		r := s.sc.repos[name]
		if ts := a.targets(r); len(ts) > 0 {
			srcs = append(srcs, &repoSource{s: s, r: r, h: a.hashes, targets: ts})
		}
	}
	if len(srcs) == 0 {
		return nil
	}
	vo := s.opts.Verify
	vo.Jobs, vo.Platforms, vo.Images = s.opts.Jobs, s.opts.Platforms, nil
	if vo.MaxManifestSize <= 0 {
		vo.MaxManifestSize = s.opts.MaxFileSize
	}
	vo.ReadBlob = func(b source.Blob) bool { return s.blobMine(digest.Digest(b.Key())) }
	prev := vo.Measured
	vo.Measured = func(b source.Blob, res *verify.PassResult, err error) {
		a.measured(digest.Digest(b.Key()), res, err)
		if prev != nil {
			prev(b, res, err)
		}
	}
	for i, err := range verify.New(vo).VerifyAll(ctx, srcs, a.b) {
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.b.Problem(report.Subject{Image: srcs[i].(*repoSource).r.name}, "%v", err)
	}
	return ctx.Err()
}

func (a *audit) measured(d digest.Digest, res *verify.PassResult, err error) {
	switch {
	case err != nil:
		a.hashes.fail(d, err)
	case res != nil:
		a.hashes.set(d, res.StoredDigest)
	}
}

// hashRest hashes this shard's blobs the verifier did not read (configs,
// manifests, orphans, artifacts' blobs the verifier skipped) and reports
// every blob that does not hash to its path.
func (a *audit) hashRest(ctx context.Context) error {
	s := a.s
	var mine []*blobFile
	want := a.wanted()
	for d, bf := range s.sc.blobs {
		if s.blobMine(d) && (a.whole || want[d]) {
			mine = append(mine, bf)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].rel < mine[j].rel })
	var pending []*blobFile
	for _, bf := range mine {
		if _, _, ok := a.hashes.measured(bf.d); ok {
			continue
		}
		if m := s.mans[bf.d]; m != nil && m.measured != "" {
			a.hashes.set(bf.d, m.measured) // read whole already
			continue
		}
		pending = append(pending, bf)
	}
	sort.SliceStable(pending, func(i, j int) bool { return pending[i].size > pending[j].size })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opts.Jobs)
	for _, bf := range pending {
		g.Go(func() error {
			blob := &regBlob{s: s, f: bf, h: a.hashes}
			rc, err := blob.Open(gctx)
			if err != nil {
				a.hashes.fail(bf.d, err)
				return gctx.Err()
			}
			defer rc.Close()
			opts := s.opts.Verify.Pass
			opts.NoTarWalk, opts.Observers, opts.Taps = true, nil, nil
			res, err := verify.Pass(gctx, rc, opts)
			a.measured(bf.d, res, err)
			if s.opts.Verify.Progress != nil && res != nil {
				s.opts.Verify.Progress(blob.Location(), res.StoredSize)
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, bf := range mine {
		subj := report.Subject{Digest: bf.d.String(), Path: V2Dir + "/" + bf.rel}
		got, err, ok := a.hashes.measured(bf.d)
		switch {
		case err != nil:
			a.b.Problem(subj, "reading blob: %v", err)
		case !ok:
		case !bf.d.Algorithm().Available():
			a.b.Problem(subj, "digest algorithm %s is not supported", bf.d.Algorithm())
		case got.Algorithm() != bf.d.Algorithm():
			a.b.Problem(subj, "blob was not read to its end; its %s digest is unknown", bf.d.Algorithm())
		case got != bf.d:
			a.add(CheckRegBlobDigest, report.Error, subj, fmt.Sprintf("blob data does not hash to the digest of its path (%d bytes): every pull of it fails verification", bf.size), bf.d.String(), got.String())
		}
	}
	return nil
}

// wanted is, for a selected audit, every blob the selected manifests use.
func (a *audit) wanted() map[digest.Digest]bool {
	if a.whole {
		return nil
	}
	s := a.s
	out := map[digest.Digest]bool{}
	for repoName, ds := range a.sel {
		r := s.sc.repos[repoName]
		for d := range ds {
			l := r.revisions[d]
			if l == nil || l.target == "" {
				continue
			}
			out[l.target] = true
			if m := s.revision(r, d); m != nil && m.bad == "" {
				for _, x := range m.references() {
					if r.revisions[x] == nil { // children are selected themselves
						out[x] = true
					}
				}
			}
		}
	}
	return out
}
