package containerd

import (
	"context"
	"fmt"
	"github.com/layercheck/layercheck/ref"
	"io"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// LayerOpener returns the stream of a layer blob from elsewhere than the
// content store (a registry), by the manifest's descriptor.
type LayerOpener func(ctx context.Context, layer ocispec.Descriptor) (io.ReadCloser, error)

// VerifySnapshotFiles compares the committed snapshots of one image (as
// FindImage names it; the selected platforms) with its layers streamed by
// open: what the audit does with the content store's blobs, for when the
// store does not keep them (discard_unpacked_layers). Each distinct layer
// is opened once, base first, and read once through verify.Pass; a stream
// whose digest or diffID is not the layer's is a problem and its snapshots
// are not compared. Findings are the audit's ctrd-snapshot-file-* checks.
// It returns an error only when the image is not found or ctx ends.
func (s *Store) VerifySnapshotFiles(ctx context.Context, image string, open LayerOpener, b *report.Builder) error {
	h, err := s.FindImage(image)
	if err != nil {
		return err
	}
	ns := s.meta.Namespaces[h.Namespace]
	sf := newSnapFiles(s)
	name := targetName(h.Namespace, h.Name)
	var layers []HostLayer
	seen := map[string]bool{}
	for _, hp := range h.Platforms {
		if !ref.PlatformSelected(s.opts.Platforms, hp.Platform) {
			continue
		}
		sf.plan(ns, name, hp, func(hl HostLayer) string { return hl.Desc.Digest.String() })
		for _, hl := range hp.Layers {
			if k := hl.Desc.Digest.String(); !seen[k] && len(sf.byBlob[k]) > 0 {
				seen[k] = true
				layers = append(layers, hl)
			}
		}
	}
	for _, hl := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := hl.Desc.Digest.String()
		obs := sf.observers(key)
		if obs == nil {
			continue
		}
		unusable := func(format string, args ...any) {
			for _, c := range sf.byBlob[key] {
				c.unusable = fmt.Sprintf(format, args...)
			}
		}
		rc, err := open(ctx, hl.Desc)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			unusable("the layer %s could not be opened: %v; its snapshots were not compared", hl.Desc.Digest, err)
			continue
		}
		po := s.opts.Verify.Pass
		po.Observers = append(append([]verify.Observer(nil), po.Observers...), obs...)
		res, err := verify.Pass(ctx, rc, po)
		rc.Close()
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			unusable("reading the layer %s failed: %v; its snapshots were not compared", hl.Desc.Digest, err)
		case res.StoredDigest != hl.Desc.Digest:
			unusable("the stream given for layer %s hashes to %s: it is not the layer, and its snapshots were not compared", hl.Desc.Digest, res.StoredDigest)
		case hl.DiffID != "" && res.DiffID != hl.DiffID:
			unusable("the layer %s decompresses to %s, not the diff_id %s of the image config; its snapshots were not compared", hl.Desc.Digest, res.DiffID, hl.DiffID)
		}
	}
	sf.finish(b)
	return ctx.Err()
}
