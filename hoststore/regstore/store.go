package regstore

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/layercheck/layercheck/ref"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// defaultMaxFileSize bounds manifests, configs and other metadata files.
const defaultMaxFileSize = 16 << 20

// Is reports whether root holds a registry's filesystem storage.
func Is(root string) bool {
	fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(V2Dir)))
	return err == nil && fi.IsDir()
}

// Store is a registry storage opened read-only. Its tree is walked once, on
// first use, and kept in memory (names, links, sizes and parsed manifests;
// no layer content).
type Store struct {
	root string
	opts store.Options
	v2   *os.Root

	once sync.Once
	sc   *scan
	mans map[digest.Digest]*manifestDoc // by blob digest, read once
	cfgs map[digest.Digest]*verify.ImageConfig
	imgs []store.Image
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Selector = (*Store)(nil)
)

// SelectImages implements store.Selector: the root opened again with
// Options.Images set (its own scan, closed by the caller).
func (s *Store) SelectImages(images []string) (store.Store, error) {
	opts := s.opts
	opts.Images = append([]string(nil), images...)
	return Open(s.root, opts)
}

// Open opens root (the directory holding docker/registry/v2). It fails with
// store.ErrNotAStore when root holds no registry storage.
func Open(root string, opts store.Options) (*Store, error) {
	if !Is(root) {
		return nil, fmt.Errorf("%s: no %s directory: %w", root, V2Dir, store.ErrNotAStore)
	}
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = defaultMaxFileSize
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 1
	}
	if sh := opts.Shard; sh != nil && (sh.Count < 1 || sh.Index < 1 || sh.Index > sh.Count) {
		return nil, fmt.Errorf("invalid shard %d/%d", sh.Index, sh.Count)
	}
	v2, err := os.OpenRoot(filepath.Join(root, filepath.FromSlash(V2Dir)))
	if err != nil {
		return nil, fmt.Errorf("opening the registry storage: %w", err)
	}
	return &Store{root: root, opts: opts, v2: v2}, nil
}

// Kind implements store.Store.
func (s *Store) Kind() store.Kind { return store.Registry }

// Root implements store.Store.
func (s *Store) Root() string { return s.root }

// String implements store.Store.
func (s *Store) String() string { return "registry storage " + s.root }

// Close implements store.Store.
func (s *Store) Close() error { return s.v2.Close() }

// load walks the tree and reads every manifest revision once.
func (s *Store) load() {
	s.once.Do(func() {
		s.sc = scanStorage(s.v2)
		s.mans = map[digest.Digest]*manifestDoc{}
		s.cfgs = map[digest.Digest]*verify.ImageConfig{}
		for _, name := range s.sc.names {
			r := s.sc.repos[name]
			for _, l := range sortedLinks(r.revisions) {
				if l.target != "" {
					s.manifest(l.target)
				}
			}
		}
	})
}

// manifest returns the parsed manifest blob d (nil when blobs/ lacks it).
func (s *Store) manifest(d digest.Digest) *manifestDoc {
	if m, ok := s.mans[d]; ok {
		return m
	}
	b := s.sc.blobs[d]
	if b == nil {
		s.mans[d] = nil
		return nil
	}
	data, err := readSmall(s.v2, b.rel, s.opts.MaxFileSize)
	var m *manifestDoc
	if err != nil {
		m = &manifestDoc{d: d, size: b.size, bad: "cannot be read: " + err.Error()}
	} else {
		m = parseManifest(d, data)
	}
	s.mans[d] = m
	return m
}

// config returns the parsed image config d, nil when absent or unreadable.
func (s *Store) config(d digest.Digest) *verify.ImageConfig {
	if c, ok := s.cfgs[d]; ok {
		return c
	}
	var c *verify.ImageConfig
	if b := s.sc.blobs[d]; b != nil {
		if data, err := readSmall(s.v2, b.rel, s.opts.MaxFileSize); err == nil {
			c = &verify.ImageConfig{}
			if json.Unmarshal(data, c) != nil {
				c = nil
			}
		}
	}
	s.cfgs[d] = c
	return c
}

func sortedLinks(m map[digest.Digest]*link) []*link {
	out := make([]*link, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out
}

func sortedTags(r *repo) []*tag {
	out := make([]*tag, 0, len(r.tags))
	for _, t := range r.tags {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// revision returns the manifest the repository serves as d: its revision
// link must name a blob that exists (what the registry reads for repo@d).
func (s *Store) revision(r *repo, d digest.Digest) *manifestDoc {
	l := r.revisions[d]
	if l == nil || l.target == "" || s.sc.blobs[l.target] == nil {
		return nil
	}
	return s.manifest(l.target)
}

// tagsOf maps each manifest digest to the tags whose current link names it.
func tagsOf(r *repo) map[digest.Digest][]string {
	out := map[digest.Digest][]string{}
	for _, t := range sortedTags(r) {
		if t.current != nil && t.current.target != "" {
			out[t.current.target] = append(out[t.current.target], t.name)
		}
	}
	return out
}

// repoMine says whether repository name is this shard's.
func (s *Store) repoMine(name string) bool {
	sh := s.opts.Shard
	if sh == nil || sh.Count <= 1 {
		return true
	}
	i := sort.SearchStrings(s.sc.names, name)
	if i >= len(s.sc.names) || s.sc.names[i] != name {
		h := fnv.New64a()
		h.Write([]byte(name))
		return int(h.Sum64()%uint64(sh.Count)) == sh.Index-1
	}
	return i%sh.Count == sh.Index-1
}

// blobMine says whether the blob d is this shard's to hash and report.
func (s *Store) blobMine(d digest.Digest) bool {
	sh := s.opts.Shard
	if sh == nil || sh.Count <= 1 {
		return true
	}
	enc := d.Encoded()
	if len(enc) > 16 {
		enc = enc[:16]
	}
	n, err := strconv.ParseUint(enc, 16, 64)
	if err != nil {
		h := fnv.New64a()
		h.Write([]byte(d))
		n = h.Sum64()
	}
	return int(n%uint64(sh.Count)) == sh.Index-1
}

// pathMine assigns findings about paths that name no blob (bad names under
// blobs/) to one shard.
func (s *Store) pathMine(p string) bool {
	sh := s.opts.Shard
	if sh == nil || sh.Count <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(p))
	return int(h.Sum64()%uint64(sh.Count)) == sh.Index-1
}

// imageEntry is one image manifest of one repository, with what names it.
type imageEntry struct {
	repo   string
	m      *manifestDoc
	tags   []string // repo:tag
	digs   []string // repo@digest (the manifest's, and its indexes')
	plat   string
	config *verify.ImageConfig
}

// model lists every image manifest of every repository: each revision that
// is an image manifest, and each image manifest an index revision names.
func (s *Store) model() []imageEntry {
	s.load()
	var out []imageEntry
	for _, name := range s.sc.names {
		r := s.sc.repos[name]
		tags := tagsOf(r)
		byDigest := map[digest.Digest]int{}
		add := func(m *manifestDoc, names []string, dig string, plat *ocispec.Platform) {
			if m == nil || m.bad != "" || m.kind != kindImage || !isImageConfig(m.config.MediaType) || m.artifact != "" {
				return
			}
			i, ok := byDigest[m.d]
			if !ok {
				i = len(out)
				byDigest[m.d] = i
				out = append(out, imageEntry{repo: name, m: m, config: s.config(m.config.Digest)})
				if c := out[i].config; c != nil {
					out[i].plat = ref.PlatformOf(&ocispec.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant})
				} else {
					out[i].plat = ref.PlatformOf(plat)
				}
			}
			e := &out[i]
			for _, t := range names {
				e.tags = appendNew(e.tags, name+":"+t)
			}
			e.digs = appendNew(e.digs, name+"@"+dig)
		}
		for _, l := range sortedLinks(r.revisions) {
			m := s.revision(r, l.dir)
			if m == nil {
				continue
			}
			add(m, tags[l.dir], l.dir.String(), nil)
			if m.kind == kindIndex && m.bad == "" {
				for _, c := range m.children {
					if verify.IsAttestation(c) || !ref.PlatformSelected(s.opts.Platforms, ref.PlatformOf(c.Platform)) {
						continue
					}
					add(s.revision(r, c.Digest), tags[l.dir], l.dir.String(), c.Platform)
				}
			}
		}
	}
	return out
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Images implements store.Store: one Image per distinct manifest (the same
// manifest in several repositories is one image with all their names).
func (s *Store) Images(ctx context.Context) ([]store.Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	all := s.images()
	if len(s.opts.Images) == 0 {
		return all, nil
	}
	var out []store.Image
	for _, im := range all {
		for _, sel := range s.opts.Images {
			if matchImage(im, sel) {
				out = append(out, im)
				break
			}
		}
	}
	return out, nil
}

func (s *Store) images() []store.Image {
	if s.imgs != nil {
		return s.imgs
	}
	byManifest := map[digest.Digest]*store.Image{}
	var order []digest.Digest
	for _, e := range s.model() {
		im := byManifest[e.m.d]
		if im == nil {
			im = &store.Image{ID: e.m.config.Digest, Manifest: e.m.d, Platform: e.plat}
			var diffIDs []digest.Digest
			if e.config != nil && e.config.RootFS != nil {
				for _, d := range e.config.RootFS.DiffIDs {
					diffIDs = append(diffIDs, digest.Digest(d))
				}
			}
			chain := verify.ChainIDs(diffIDs)
			for i, l := range e.m.layers {
				sl := store.Layer{Digest: l.Digest, Size: -1, Present: s.sc.blobs[l.Digest] != nil}
				if i < len(diffIDs) {
					sl.DiffID, sl.ChainID = diffIDs[i], chain[i]
				}
				im.Layers = append(im.Layers, sl)
			}
			byManifest[e.m.d] = im
			order = append(order, e.m.d)
		}
		for _, t := range e.tags {
			im.Names = appendNew(im.Names, t)
		}
		for _, d := range e.digs {
			im.RepoDigests = appendNew(im.RepoDigests, d)
		}
	}
	out := []store.Image{}
	for _, d := range order {
		im := byManifest[d]
		sort.Strings(im.Names)
		sort.Strings(im.RepoDigests)
		out = append(out, *im)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		return out[i].Manifest < out[j].Manifest
	})
	s.imgs = out
	return out
}

// stripHost drops a registry host (a first component with a dot, a colon
// or "localhost") and docker.io's implied namespace spelling.
func stripHost(name string) string {
	first, rest, ok := strings.Cut(name, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return rest
	}
	return name
}

// matchImage matches a selector: repo:tag, repo (tag latest), repo@digest,
// an image ID or a unique hex prefix of one (4 digits at least).
func matchImage(im store.Image, sel string) bool {
	sel = stripHost(sel)
	for _, n := range im.Names {
		if n == sel || n == sel+":latest" {
			return true
		}
	}
	for _, d := range im.RepoDigests {
		if d == sel {
			return true
		}
	}
	if sel == im.ID.String() || sel == im.Manifest.String() {
		return true
	}
	hex := strings.TrimPrefix(sel, "sha256:")
	return len(hex) >= 4 && strings.Trim(hex, "0123456789abcdef") == "" && strings.HasPrefix(im.ID.Encoded(), hex)
}

// Lookup implements store.Store.
func (s *Store) Lookup(ctx context.Context, name string) (*store.Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var found []store.Image
	for _, im := range s.images() {
		if matchImage(im, name) {
			found = append(found, im)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("%s in %s: %w", name, s, store.ErrNotFound)
	case len(found) > 1:
		if im := pickPlatform(found, s.opts.Platforms); im != nil {
			return im, nil
		}
		var ms []string
		for _, im := range found {
			ms = append(ms, im.Manifest.String())
		}
		return nil, fmt.Errorf("%s in %s names the manifests %s: %w", name, s, strings.Join(ms, ", "), store.ErrAmbiguous)
	}
	return &found[0], nil
}

// pickPlatform chooses among the images a name of an index names: the one
// of the selected platform, else of the host's, as a pull would. It gives
// nil when that does not single one out.
func pickPlatform(found []store.Image, platforms []string) *store.Image {
	want := platforms
	if len(want) == 0 {
		want = []string{runtime.GOOS + "/" + runtime.GOARCH}
	}
	var pick *store.Image
	for i := range found {
		if ref.PlatformSelected(want, found[i].Platform) {
			if pick != nil {
				return nil
			}
			pick = &found[i]
		}
	}
	return pick
}

// subject helps findings name a repository's object.
func repoSubject(repoName, rel string, d digest.Digest) report.Subject {
	s := report.Subject{Image: repoName}
	if rel != "" {
		s.Path = V2Dir + "/" + rel
	}
	if d != "" {
		s.Digest = d.String()
	}
	return s
}
