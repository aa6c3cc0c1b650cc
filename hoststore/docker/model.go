package docker

import (
	"context"
	"errors"
	"io/fs"
	"sort"

	"github.com/layercheck/layercheck/ref"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	digest "github.com/opencontainers/go-digest"
)

var _ store.Store = (*Store)(nil)

// Kind implements store.Store.
func (s *Store) Kind() store.Kind { return store.Docker }

// Close implements store.Store: a Docker store holds nothing open.
func (s *Store) Close() error { return nil }

// Lookup implements store.Store with LookupImage.
func (s *Store) Lookup(_ context.Context, name string) (*store.Image, error) {
	h, err := s.LookupImage(name)
	if err != nil {
		return nil, err
	}
	im := h.StoreImage()
	return &im, nil
}

// Images implements store.Store: every image of imagedb (or the ones
// Options.Images selects), read as LookupImage reads one.
func (s *Store) Images(ctx context.Context) ([]store.Image, error) {
	a, err := newAudit(s, &report.Builder{})
	if err != nil {
		return nil, err
	}
	defer a.close()
	repos, err := a.readRepositories()
	if err != nil {
		return nil, err
	}
	ids := map[digest.Digest]bool{}
	if len(s.opts.Images) > 0 {
		for _, sel := range s.opts.Images {
			id, err := a.resolveImage(sel, repos)
			if err != nil {
				return nil, err
			}
			ids[id] = true
		}
	} else {
		ents, err := a.readDir(a.imgRel + "/imagedb/content/sha256")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range ents {
			if hex64.MatchString(e.Name()) {
				ids[digest.NewDigestFromEncoded(digest.SHA256, e.Name())] = true
			}
		}
	}
	var out []store.Image
	for id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := a.lookupID(id, repos)
		if err != nil {
			return nil, err
		}
		out = append(out, h.StoreImage())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// StoreImage is the store model's view of the image: references
// normalised, layers with their diffIDs and chainIDs (a classic store keeps
// no compressed digests).
func (h *HostImage) StoreImage() store.Image {
	im := store.Image{ID: h.ID, Platform: h.Platform()}
	for _, t := range h.RepoTags {
		im.Names = append(im.Names, ref.Normalize(t))
	}
	for _, d := range h.RepoDigests {
		im.RepoDigests = append(im.RepoDigests, ref.Normalize(d))
	}
	sort.Strings(im.Names)
	sort.Strings(im.RepoDigests)
	for i, l := range h.Layers {
		im.Layers = append(im.Layers, store.Layer{DiffID: h.DiffIDs[i], ChainID: l.ChainID, Size: l.Size, Present: l.Present})
	}
	return im
}

// Select returns the store restricted to some images (Options.Images), for
// an audit of just those, without opening the data root again.
func (s *Store) Select(images []string) *Store {
	c := *s
	c.opts.Images = append([]string(nil), images...)
	return &c
}
