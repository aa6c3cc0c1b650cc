package regstore

import (
	"encoding/json"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the registry stores and serves (FORMATS.md 5.1).
const (
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtSchema1        = "application/vnd.docker.distribution.manifest.v1+json"
	mtSchema1Signed  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
)

type manifestKind int

const (
	kindImage   manifestKind = iota + 1 // schema2 or OCI image manifest (or artifact)
	kindIndex                           // manifest list or OCI index
	kindSchema1                         // legacy schema 1
)

// manifestDoc is one manifest blob parsed as the registry parses it
// (registry/storage/manifeststore.go Get).
type manifestDoc struct {
	d        digest.Digest // the blob's digest (its path)
	measured digest.Digest // what its bytes hash to, with the same algorithm
	size     int64
	bad      string // why the registry cannot parse or serve it ("" when it can)
	kind     manifestKind
	served   string // the media type the registry serves it with
	config   ocispec.Descriptor
	layers   []ocispec.Descriptor
	children []ocispec.Descriptor
	subject  *ocispec.Descriptor
	artifact string // artifactType, when set
	fsLayers []digest.Digest
}

// references are the digests garbage-collect marks for the manifest: the
// config and layers of an image manifest, the children of an index, the
// blobSums of a schema 1 manifest (Manifest.References; not the subject).
func (m *manifestDoc) references() []digest.Digest {
	var out []digest.Digest
	switch m.kind {
	case kindImage:
		out = append(out, m.config.Digest)
		for _, l := range m.layers {
			out = append(out, l.Digest)
		}
	case kindIndex:
		for _, c := range m.children {
			out = append(out, c.Digest)
		}
	case kindSchema1:
		out = append(out, m.fsLayers...)
	}
	return out
}

// parseManifest parses data as the manifest store does.
func parseManifest(d digest.Digest, data []byte) *manifestDoc {
	m := &manifestDoc{d: d, size: int64(len(data))}
	if d.Algorithm().Available() {
		m.measured = d.Algorithm().FromBytes(data)
	}
	var head struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Signatures    json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		m.bad = "not valid JSON: " + err.Error()
		return m
	}
	switch head.SchemaVersion {
	case 1:
		var s1 struct {
			FSLayers []struct {
				BlobSum digest.Digest `json:"blobSum"`
			} `json:"fsLayers"`
		}
		if err := json.Unmarshal(data, &s1); err != nil {
			m.bad = "schema 1 manifest does not parse: " + err.Error()
			return m
		}
		m.kind, m.served = kindSchema1, mtSchema1
		if head.Signatures != nil {
			m.served = mtSchema1Signed
		}
		for _, l := range s1.FSLayers {
			m.fsLayers = append(m.fsLayers, l.BlobSum)
		}
		return m
	case 2:
	default:
		m.bad = fmt.Sprintf("schemaVersion %d: the registry serves only schema 1 and 2", head.SchemaVersion)
		return m
	}
	switch head.MediaType {
	case mtDockerManifest, ocispec.MediaTypeImageManifest:
		m.kind, m.served = kindImage, head.MediaType
	case mtDockerList, ocispec.MediaTypeImageIndex:
		m.kind, m.served = kindIndex, head.MediaType
	case "":
		// No media type in the content: an index when it has manifests,
		// else an OCI image manifest.
		m.kind, m.served = kindImage, ocispec.MediaTypeImageManifest
		if head.Manifests != nil && string(head.Manifests) != "null" {
			m.kind, m.served = kindIndex, ocispec.MediaTypeImageIndex
		}
	default:
		m.bad = fmt.Sprintf("unrecognized manifest media type %q: the registry refuses to serve it", head.MediaType)
		return m
	}
	if m.kind == kindIndex {
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			m.bad = "index does not parse: " + err.Error()
			return m
		}
		m.children, m.subject = idx.Manifests, idx.Subject
		return m
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(data, &mf); err != nil {
		m.bad = "manifest does not parse: " + err.Error()
		return m
	}
	m.config, m.layers, m.subject, m.artifact = mf.Config, mf.Layers, mf.Subject, mf.ArtifactType
	return m
}

// isImageConfig tells an image config from an artifact's config.
func isImageConfig(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == mtDockerConfig
}
