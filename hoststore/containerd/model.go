package containerd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"

	"github.com/layercheck/layercheck/ref"
	"github.com/layercheck/layercheck/store"
)

var (
	_ store.Store    = (*Store)(nil)
	_ store.Selector = (*Store)(nil)
)

// SelectImages implements store.Selector: Select with the store's own
// namespaces.
func (s *Store) SelectImages(images []string) (store.Store, error) {
	return s.Select(s.opts.Namespaces, images)
}

// Kind implements store.Store.
func (s *Store) Kind() store.Kind { return store.Containerd }

// Images implements store.Store: one store.Image per platform manifest the
// content store holds, for every image record of the selected namespaces
// (and of Options.Images, when set).
func (s *Store) Images(ctx context.Context) ([]store.Image, error) {
	var out []store.Image
	for _, n := range s.selected {
		ns := s.meta.Namespaces[n]
		for _, name := range sortedKeys(ns.Images) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rec := ns.Images[name]
			if len(s.opts.Images) > 0 && !s.selects(n, rec) {
				continue
			}
			if len(rec.Problems) > 0 {
				continue // Audit reports the record
			}
			h := &HostImage{Namespace: n, Name: rec.Name, Target: rec.Target, Labels: rec.Labels}
			s.resolve(h, rec.Target, "", 0)
			for _, p := range h.Platforms {
				if ref.PlatformSelected(s.opts.Platforms, p.Platform) {
					out = append(out, h.storeImage(p))
				}
			}
		}
	}
	return out, nil
}

func (s *Store) selects(ns string, rec *imageRecord) bool {
	for _, sel := range s.opts.Images {
		if imageMatches(ns, rec, sel) {
			return true
		}
	}
	return false
}

// Lookup implements store.Store: the image record FindImage resolves (by
// name, familiar name, namespace/name or target digest prefix), else the
// image whose config digest (image ID) a prefix names; of a multi-platform
// record, the platform Options.Platforms selects, else this machine's, else
// the first the content store holds.
func (s *Store) Lookup(ctx context.Context, name string) (*store.Image, error) {
	h, err := s.FindImage(name)
	if errors.Is(err, store.ErrNotFound) {
		if hex, ok := ref.IDPrefix(name); ok {
			all, lerr := s.Images(ctx)
			if lerr != nil {
				return nil, lerr
			}
			var hits []store.Image
			for _, im := range all {
				if strings.HasPrefix(im.ID.Encoded(), hex) {
					hits = append(hits, im)
				}
			}
			switch {
			case len(hits) == 1:
				return &hits[0], nil
			case len(hits) > 1 && sameID(hits):
				return &hits[0], nil
			case len(hits) > 1:
				return nil, fmt.Errorf("image ID prefix %q: %w: %d images of %s match", name, store.ErrAmbiguous, len(hits), s)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	p, ok := h.pick(s.opts.Platforms)
	if !ok {
		return nil, fmt.Errorf("image %s: %w: the content store holds no platform manifest of it (absent: %s)", name, store.ErrNotFound, strings.Join(h.Absent, ", "))
	}
	im := h.storeImage(p)
	return &im, nil
}

func sameID(ims []store.Image) bool {
	for _, im := range ims[1:] {
		if im.ID != ims[0].ID {
			return false
		}
	}
	return true
}

// pick chooses the platform Lookup returns.
func (h *HostImage) pick(sels []string) (HostPlatform, bool) {
	if len(h.Platforms) == 0 {
		return HostPlatform{}, false
	}
	if len(sels) == 0 {
		sels = []string{runtime.GOOS + "/" + runtime.GOARCH}
	}
	for _, p := range h.Platforms {
		if ref.PlatformSelected(sels, p.Platform) {
			return p, true
		}
	}
	return h.Platforms[0], true
}

// storeImage is the store model's view of one platform of the record.
func (h *HostImage) storeImage(p HostPlatform) store.Image {
	im := store.Image{
		ID:        p.Config.Digest,
		Names:     []string{ref.Normalize(h.Name)},
		Manifest:  p.Manifest.Digest,
		Platform:  p.Platform,
		Namespace: h.Namespace,
	}
	if r, err := ref.Parse(h.Name); err == nil && h.Target.Digest != "" {
		im.RepoDigests = []string{r.WithDigest(h.Target.Digest).String()}
	}
	for _, l := range p.Layers {
		present := l.Blob || len(l.Snapshotters) > 0
		im.Layers = append(im.Layers, store.Layer{DiffID: l.DiffID, ChainID: l.ChainID, Digest: l.Desc.Digest, Size: -1, Present: present})
	}
	sort.Strings(im.Names)
	return im
}
