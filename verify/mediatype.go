package verify

import (
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types layercheck knows.
const (
	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIConfig      = "application/vnd.oci.image.config.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
	MediaTypeSchema1        = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeSchema1Signed  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	MediaTypeOCIEmpty       = "application/vnd.oci.empty.v1+json"
)

type docKind int

const (
	kindUnknown docKind = iota
	kindIndex
	kindManifest
	kindSchema1
)

func kindOf(mt string) docKind {
	switch mt {
	case MediaTypeOCIIndex, MediaTypeDockerList:
		return kindIndex
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		return kindManifest
	case MediaTypeSchema1, MediaTypeSchema1Signed:
		return kindSchema1
	}
	return kindUnknown
}

func isImageConfig(mt string) bool {
	return mt == MediaTypeOCIConfig || mt == MediaTypeDockerConfig || mt == ""
}

// layerCompression gives the compression a layer media type declares, and
// whether the media type is a known layer type at all.
func layerCompression(mt string) (Compression, bool) {
	switch {
	case mt == "":
		return "", false
	case strings.HasSuffix(mt, "+gzip"), strings.HasSuffix(mt, ".tar.gzip"), strings.HasSuffix(mt, "diff.tar.gzip"):
		return CompressionGzip, true
	case strings.HasSuffix(mt, "+zstd"):
		return CompressionZstd, true
	case strings.HasSuffix(mt, ".tar"), strings.HasSuffix(mt, "diff.tar"):
		return CompressionNone, true
	case mt == "application/vnd.docker.container.image.rootfs.diff+x-gtar":
		return CompressionGzip, true
	}
	return "", false
}

// dockerGzipTypeOnTar reports an uncompressed layer under Docker schema 2's
// only distributable layer type (…rootfs.diff.tar.gzip). containers/image
// writes exactly that: `skopeo copy docker-archive:… dir:OUT` and
// `podman save --format docker-dir` keep the save's uncompressed blobs and
// declare them with the gzip type, and Docker and containerd pull such a
// layer (they detect compression by magic). It is not damage: the digest
// and the diffID are still checked. A gzip/zstd mismatch, or an OCI type,
// is still a finding.
func dockerGzipTypeOnTar(mt string, c Compression) bool {
	return mt == "application/vnd.docker.image.rootfs.diff.tar.gzip" && c == CompressionNone
}

func isForeign(mt string) bool {
	return strings.Contains(mt, "foreign") || strings.Contains(mt, "nondistributable")
}

func ociDesc(mt string, d digest.Digest) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: -1}
}
