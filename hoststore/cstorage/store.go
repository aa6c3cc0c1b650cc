package cstorage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	"github.com/layercheck/layercheck/tarsplit"
	digest "github.com/opencontainers/go-digest"
)

// Drivers are the graph drivers whose stores layercheck audits.
var Drivers = []string{"overlay", "vfs"}

// ErrUnsupportedDriver is returned by Open for a graph root whose driver
// layercheck does not audit (btrfs, zfs, aufs, devmapper…).
var ErrUnsupportedDriver = errors.New("containers-storage graph driver not supported")

// Store is a containers-storage graph root opened for a read-only audit.
// It holds no open files between calls.
type Store struct {
	root   string
	driver string
	opts   store.Options
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.LayerReader = (*Store)(nil)
	_ store.Selector    = (*Store)(nil)
)

// SelectImages implements store.Selector: the same root with Options.Images
// set (the store holds nothing open).
func (s *Store) SelectImages(images []string) (store.Store, error) {
	c := *s
	c.opts.Images = append([]string(nil), images...)
	return &c, nil
}

// Is reports whether root holds a containers-storage graph root: a
// <driver>-layers/layers.json or <driver>-images/images.json of any driver.
func Is(root string) bool {
	return len(driversIn(root)) > 0
}

// driversIn lists the drivers root holds metadata for, sorted.
func driversIn(root string) []string {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range ents {
		n := e.Name()
		for _, suf := range []string{"-layers", "-images"} {
			d, ok := strings.CutSuffix(n, suf)
			if !ok || d == "" || !e.IsDir() {
				continue
			}
			file := "layers.json"
			if suf == "-images" {
				file = "images.json"
			}
			if fi, err := os.Lstat(filepath.Join(root, n, file)); err == nil && fi.Mode().IsRegular() {
				seen[d] = true
			}
		}
	}
	return sortedKeys(seen)
}

// Open opens the graph root at root. It finds the driver from the
// <driver>-layers and <driver>-images directories (opts.Driver chooses
// when there are several) and refuses drivers other than overlay and vfs.
// Nothing is opened for writing, now or later, and no lock is taken.
func Open(root string, opts store.Options) (*Store, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("auditing a containers-storage graph root: %w on %s (Linux only)", ErrUnsupportedDriver, runtime.GOOS)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening containers-storage root %s: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("opening containers-storage root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("opening containers-storage root %s: not a directory", abs)
	}
	found := driversIn(abs)
	s := &Store{root: abs, opts: opts}
	switch {
	case opts.Driver != "":
		if !known(opts.Driver) {
			return nil, fmt.Errorf("containers-storage driver %q: %w (layercheck audits %s)", opts.Driver, ErrUnsupportedDriver, strings.Join(Drivers, ", "))
		}
		if !contains(found, opts.Driver) {
			return nil, fmt.Errorf("%s has no %s-layers/layers.json or %s-images/images.json: %w", abs, opts.Driver, opts.Driver, store.ErrNotAStore)
		}
		s.driver = opts.Driver
	case len(found) == 0:
		return nil, fmt.Errorf("%s has no <driver>-layers/layers.json or <driver>-images/images.json: %w", abs, store.ErrNotAStore)
	default:
		var ok []string
		for _, d := range found {
			if known(d) {
				ok = append(ok, d)
			}
		}
		switch len(ok) {
		case 0:
			return nil, fmt.Errorf("%s: containers-storage graph root of driver %s: %w (layercheck audits %s)", abs, strings.Join(found, ", "), ErrUnsupportedDriver, strings.Join(Drivers, ", "))
		case 1:
			s.driver = ok[0]
		default:
			return nil, fmt.Errorf("%s holds containers-storage metadata of several drivers (%s); choose one with the driver option", abs, strings.Join(ok, ", "))
		}
	}
	return s, nil
}

func known(d string) bool { return contains(Drivers, d) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Kind implements store.Store.
func (s *Store) Kind() store.Kind { return store.ContainersStorage }

// Root implements store.Store.
func (s *Store) Root() string { return s.root }

// Driver is the graph driver audited.
func (s *Store) Driver() string { return s.driver }

// String names the store: "containers-storage /var/lib/containers/storage (overlay)".
func (s *Store) String() string { return "containers-storage " + s.root + " (" + s.driver + ")" }

// Close implements store.Store; the store holds nothing open.
func (s *Store) Close() error { return nil }

func (s *Store) maxFile() int64 {
	if s.opts.MaxFileSize > 0 {
		return s.opts.MaxFileSize
	}
	return 16 << 20
}

// load reads the records and links them (no layer content is read).
func (s *Store) load() (*model, *os.Root, error) {
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, nil, fmt.Errorf("opening containers-storage root: %w", err)
	}
	m := newModel(s, r, loadRecords(r, s.driver, s.maxFile()))
	return m, r, nil
}

// Images implements store.Store: every image (or the Options.Images
// selection), from the records and the configs, without layer content.
func (s *Store) Images(ctx context.Context) ([]store.Image, error) {
	m, r, err := s.load()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	imgs := m.images
	if len(s.opts.Images) > 0 {
		imgs = nil
		for _, q := range s.opts.Images {
			im, err := m.lookup(q)
			if err != nil {
				return nil, err
			}
			imgs = append(imgs, im)
		}
	}
	var out []store.Image
	seen := map[*imageRec]bool{}
	for _, im := range imgs {
		if !seen[im] {
			seen[im] = true
			out = append(out, m.storeImage(im))
		}
	}
	return out, ctx.Err()
}

// Lookup implements store.Store: by name (nginx is
// docker.io/library/nginx:latest, a bare name also matches localhost/), by
// repo@digest, by image ID or by a unique ID prefix.
func (s *Store) Lookup(ctx context.Context, q string) (*store.Image, error) {
	m, r, err := s.load()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	im, err := m.lookup(q)
	if err != nil {
		return nil, err
	}
	out := m.storeImage(im)
	return &out, ctx.Err()
}

// OpenLayer implements store.LayerReader: the layer whose chainID (of the
// diff-digests down its parent chain) is chainID, rebuilt from its
// tar-split and its directory exactly as containers-storage's Diff does,
// without mounting.
func (s *Store) OpenLayer(ctx context.Context, chainID digest.Digest) (io.ReadCloser, error) {
	m, r, err := s.load()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var l *layerRec
	for _, c := range m.layerList {
		if c.chainID == chainID {
			l = c
			break
		}
	}
	if l == nil {
		return nil, fmt.Errorf("layer with chainID %s: %w", chainID, fs.ErrNotExist)
	}
	ts, err := diskcheck.OpenRegular(r, tarSplitRel(s.driver, l.ID))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.ID, err)
	}
	dirs := m.fileRoots(l)
	var openers []tarsplit.FileOpener
	var roots []*tarsplit.Root
	for _, d := range dirs {
		o, err := tarsplit.RootOpener(d)
		if err != nil {
			continue
		}
		roots = append(roots, o)
		openers = append(openers, o)
	}
	if len(openers) == 0 {
		ts.Close()
		return nil, fmt.Errorf("layer %s: no layer directory %s", l.ID, m.layerRoot(l.ID))
	}
	pr, pw := io.Pipe()
	go func() {
		defer ts.Close()
		defer func() {
			for _, o := range roots {
				o.Close()
			}
		}()
		st, err := tarsplit.Assemble(ctx, ts, tarsplit.ChainOpener(openers...), pw)
		if err == nil && !st.OK() {
			err = fmt.Errorf("layer %s: the files differ from what tar-split records: %v", l.ID, st.Problems[0])
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// normalize turns a reference into containers-storage's form:
// docker.io/library/nginx:latest, repo@sha256:…; ok is false for a string
// that is not a reference.
func normalize(ref string) (string, bool) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", false
	}
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	repo := reg + "/" + r.Context().RepositoryStr()
	switch v := r.(type) {
	case name.Digest:
		return repo + "@" + v.DigestStr(), true
	case name.Tag:
		return repo + ":" + v.TagStr(), true
	}
	return repo, true
}

// repoOf is the repository of a normalized name (without tag or digest).
func repoOf(n string) string {
	if i := strings.IndexByte(n, '@'); i >= 0 {
		n = n[:i]
	}
	if i := strings.LastIndexByte(n, ':'); i > strings.LastIndexByte(n, '/') {
		n = n[:i]
	}
	return n
}

// lookup resolves a query to one image.
func (m *model) lookup(q string) (*imageRec, error) {
	q = strings.TrimSpace(q)
	var hits []*imageRec
	add := func(im *imageRec) {
		for _, h := range hits {
			if h == im {
				return
			}
		}
		hits = append(hits, im)
	}
	cands := []string{q}
	if n, ok := normalize(q); ok {
		cands = append(cands, n)
		if !strings.Contains(strings.SplitN(q, "@", 2)[0], "/") {
			if ln, ok := normalize("localhost/" + q); ok {
				cands = append(cands, ln)
			}
		}
	}
	for _, c := range cands {
		for _, im := range m.images {
			if contains(im.rec.Names, c) || contains(im.names, c) || contains(im.repoDigests, c) {
				add(im)
			}
		}
		if len(hits) > 0 {
			break
		}
	}
	if len(hits) == 0 {
		p := strings.TrimPrefix(q, "sha256:")
		if p != "" && len(p) <= 64 && strings.Trim(p, "0123456789abcdef") == "" {
			for _, im := range m.images {
				if strings.HasPrefix(im.rec.ID, p) {
					add(im)
				}
			}
		}
	}
	switch len(hits) {
	case 0:
		return nil, fmt.Errorf("image %q: %w (%s)", q, store.ErrNotFound, m.s)
	case 1:
		return hits[0], nil
	}
	ids := make([]string, 0, len(hits))
	for _, h := range hits {
		ids = append(ids, report.Short(h.rec.ID))
	}
	sort.Strings(ids)
	return nil, fmt.Errorf("image %q: %w: %s", q, store.ErrAmbiguous, strings.Join(ids, ", "))
}
