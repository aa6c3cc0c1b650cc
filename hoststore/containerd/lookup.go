package containerd

import (
	"encoding/json"
	"fmt"
	imageref "github.com/layercheck/layercheck/ref"
	"io"
	"strings"

	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// HostImage is one image record of meta.db resolved against the content
// store and the snapshots, without verifying anything: what layercheck
// compare needs to set a containerd image beside its registry source. The
// bytes themselves are verified by Audit.
type HostImage struct {
	// Namespace and Name identify the record (Name is the registry
	// reference containerd pulled, e.g. docker.io/library/nginx:latest).
	Namespace string
	Name      string
	// Target is the record's target descriptor (an index or a manifest).
	Target ocispec.Descriptor
	Labels map[string]string
	// Platforms are the image manifests reachable from the target whose
	// blob is in the content store, in index order.
	Platforms []HostPlatform
	// Absent lists the platforms of the index whose manifest blob is not in
	// the content store (containerd pulls only the platforms asked for).
	Absent []string
}

// HostPlatform is one image manifest of a HostImage.
type HostPlatform struct {
	// Platform is os/arch[/variant], from the index descriptor or the config.
	Platform string
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	// ConfigPresent tells whether the config blob is in the content store.
	ConfigPresent bool
	// Unpacked: the config has a gc.ref.snapshot label or a snapshotter of
	// the namespace holds the top chainID.
	Unpacked bool
	// Layers are the manifest's layers, base first.
	Layers []HostLayer
}

// HostLayer is one layer of a HostPlatform.
type HostLayer struct {
	// Desc is the manifest's descriptor of the compressed blob.
	Desc ocispec.Descriptor
	// DiffID and ChainID come from the config's rootfs.diff_ids ("" when
	// the config is absent or does not list as many diff_ids as layers).
	DiffID, ChainID digest.Digest
	// Blob tells whether the content store has the blob file.
	Blob bool
	// Snapshotters lists the snapshotters whose snapshots of the namespace
	// (meta.db) hold this layer's chainID.
	Snapshotters []string
}

// FindImage finds the image record a reference names in the selected
// namespaces: the exact name, the name with :latest, a familiar name
// (nginx, library/nginx, user/app for docker.io), "<namespace>/<name>", or
// a prefix (4+ hex digits) of the target digest. No match is an error
// wrapping verify.ErrNoMatch; a match in several namespaces is an error
// asking for one.
func (s *Store) FindImage(ref string) (*HostImage, error) {
	type hit struct{ ns, name string }
	var hits, all []string
	var found []hit
	for _, n := range s.selected {
		ns := s.meta.Namespaces[n]
		for _, name := range sortedKeys(ns.Images) {
			all = append(all, targetName(n, name))
			if imageMatches(n, ns.Images[name], ref) {
				found = append(found, hit{n, name})
				hits = append(hits, targetName(n, name))
			}
		}
	}
	switch {
	case len(found) == 0:
		have := strings.Join(all, ", ")
		if have == "" {
			have = "no image"
		}
		return nil, fmt.Errorf("image %s: %w; namespaces %s of %s hold: %s", ref, verify.ErrNoMatch, strings.Join(s.selected, ", "), s.root, have)
	case len(found) > 1:
		return nil, fmt.Errorf("image %s is ambiguous: %s; choose a namespace (--namespace) or the full name", ref, strings.Join(hits, ", "))
	}
	rec := s.meta.Namespaces[found[0].ns].Images[found[0].name]
	if len(rec.Problems) > 0 {
		return nil, fmt.Errorf("image %s: the meta.db record's target is unusable: %s", targetName(found[0].ns, rec.Name), strings.Join(rec.Problems, "; "))
	}
	h := &HostImage{Namespace: found[0].ns, Name: rec.Name, Target: rec.Target, Labels: rec.Labels}
	s.resolve(h, rec.Target, "", 0)
	return h, nil
}

// imageMatches applies FindImage's rules to one record: namespace/name,
// else package ref's matching of the name (nginx selects
// docker.io/library/nginx:latest) or a prefix of the target digest.
func imageMatches(ns string, img *imageRecord, sel string) bool {
	var ds []digest.Digest
	if img.Target.Digest.Validate() == nil {
		ds = append(ds, img.Target.Digest)
	}
	return sel == targetName(ns, img.Name) || imageref.Match(sel, []string{img.Name}, ds...)
}

// resolve walks an index or manifest from the content store into h.
// Unreadable or malformed blobs are skipped: Audit reports them.
func (s *Store) resolve(h *HostImage, desc ocispec.Descriptor, platform string, depth int) {
	if depth > maxDepth || desc.Digest.Validate() != nil {
		return
	}
	switch {
	case isIndexType(desc.MediaType):
		data, ok := s.readSmall(desc.Digest)
		if !ok {
			return
		}
		var idx ocispec.Index
		if json.Unmarshal(data, &idx) != nil {
			return
		}
		for _, c := range idx.Manifests {
			if c.Annotations["vnd.docker.reference.type"] != "" {
				continue // attestation manifests
			}
			p := ""
			if c.Platform != nil {
				p = imageref.PlatformOf(c.Platform)
			}
			if isManifestType(c.MediaType) && s.files[c.Digest] == nil {
				h.Absent = append(h.Absent, nonEmptyString(p, c.Digest.String()))
				continue
			}
			s.resolve(h, c, p, depth+1)
		}
	case isManifestType(desc.MediaType):
		data, ok := s.readSmall(desc.Digest)
		if !ok {
			return
		}
		var m ocispec.Manifest
		if json.Unmarshal(data, &m) != nil || !isImageConfigType(m.Config.MediaType) {
			return
		}
		hp := HostPlatform{Platform: platform, Manifest: desc, Config: m.Config}
		var diffIDs []digest.Digest
		if cdata, ok := s.readSmall(m.Config.Digest); ok {
			hp.ConfigPresent = true
			var cfg imageConfig
			if json.Unmarshal(cdata, &cfg) == nil {
				if hp.Platform == "" {
					hp.Platform = imageref.PlatformOf(&ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
				}
				if cfg.RootFS != nil && len(cfg.RootFS.DiffIDs) == len(m.Layers) {
					for _, d := range cfg.RootFS.DiffIDs {
						if digest.Digest(d).Validate() != nil {
							diffIDs = nil
							break
						}
						diffIDs = append(diffIDs, digest.Digest(d))
					}
				}
			}
		}
		var chain []digest.Digest
		if len(diffIDs) > 0 {
			chain = verify.ChainIDs(diffIDs)
		}
		ns := s.meta.Namespaces[h.Namespace]
		for i, l := range m.Layers {
			hl := HostLayer{Desc: l, Blob: l.Digest.Validate() == nil && s.files[l.Digest] != nil}
			if chain != nil {
				hl.DiffID, hl.ChainID = diffIDs[i], chain[i]
				for _, sn := range sortedKeys(ns.Snapshots) {
					if s.snapshotIntact(ns, sn, chain[i].String()) {
						hl.Snapshotters = append(hl.Snapshotters, sn)
					}
				}
			}
			hp.Layers = append(hp.Layers, hl)
		}
		if rec := ns.Blobs[m.Config.Digest]; rec != nil && len(labelsWithPrefix(rec.Labels, gcRefSnapshot)) > 0 {
			hp.Unpacked = true
		}
		if n := len(hp.Layers); n > 0 && len(hp.Layers[n-1].Snapshotters) > 0 {
			hp.Unpacked = true
		}
		h.Platforms = append(h.Platforms, hp)
	}
}

// snapshotIntact tells whether snapshotter sn holds the snapshot key of
// namespace ns: a meta.db record, the snapshotter's record of its backend
// name, and its directory on disk (for snapshotters whose layout is known).
func (s *Store) snapshotIntact(ns *namespace, sn, key string) bool {
	rec := ns.Snapshots[sn][key]
	if rec == nil {
		return false
	}
	snt := s.snapshotters[sn]
	if snt == nil || !snt.Read {
		return true // not checkable here; the audit reports the snapshotter as a problem
	}
	bs := snt.Snapshots[rec.Name]
	if bs == nil {
		return false
	}
	if bs.HasID {
		if dir, known := snt.dataDir(bs.ID); known && !isDir(dir) {
			return false
		}
	}
	return true
}

// readSmall reads a manifest, index or config blob of the content store,
// up to the verifier's manifest size limit.
func (s *Store) readSmall(d digest.Digest) ([]byte, bool) {
	if s.small != nil {
		return s.small(d)
	}
	f := s.files[d]
	limit := s.opts.Verify.MaxManifestSize
	if limit <= 0 {
		limit = 4 << 20
	}
	if f == nil || f.Size > limit {
		return nil, false
	}
	r, err := openBlob(f.Path)
	if err != nil {
		return nil, false
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil || int64(len(data)) > limit {
		return nil, false
	}
	return data, true
}

func nonEmptyString(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// Select returns a view of the store restricted to namespaces and images
// (as Options.Namespaces and Options.Images select them), sharing what Open
// read: no database or directory is read again and s is unchanged. A
// namespace meta.db lacks is an error wrapping verify.ErrNoMatch.
func (s *Store) Select(namespaces, images []string) (*Store, error) {
	c := *s
	c.opts.Namespaces = append([]string(nil), namespaces...)
	c.opts.Images = append([]string(nil), images...)
	c.selected = nil
	if err := c.selectNamespaces(); err != nil {
		return nil, err
	}
	return &c, nil
}
