package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LayoutImage is what an OCI layout written by skopeo says about one of its
// images: the writer's own claims, read without verifying anything.
type LayoutImage struct {
	RefName         string // org.opencontainers.image.ref.name
	ManifestDigest  string
	ConfigDigest    string
	LayerDigests    []string
	LayerMediaTypes []string
	DiffIDs         []string // rootfs.diff_ids of the config
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

// ReadLayout reads index.json of an OCI layout and, for every image manifest
// it lists directly, the manifest and the config's diff_ids.
func ReadLayout(dir string) ([]LayoutImage, error) {
	var index struct {
		Manifests []ociDescriptor `json:"manifests"`
	}
	if err := readJSON(filepath.Join(dir, "index.json"), &index); err != nil {
		return nil, err
	}
	var out []LayoutImage
	for _, m := range index.Manifests {
		var man struct {
			Config ociDescriptor   `json:"config"`
			Layers []ociDescriptor `json:"layers"`
		}
		if err := readJSON(blobPath(dir, m.Digest), &man); err != nil {
			return nil, err
		}
		var cfg struct {
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := readJSON(blobPath(dir, man.Config.Digest), &cfg); err != nil {
			return nil, err
		}
		li := LayoutImage{
			RefName:        m.Annotations["org.opencontainers.image.ref.name"],
			ManifestDigest: m.Digest,
			ConfigDigest:   man.Config.Digest,
			DiffIDs:        cfg.RootFS.DiffIDs,
		}
		for _, l := range man.Layers {
			li.LayerDigests = append(li.LayerDigests, l.Digest)
			li.LayerMediaTypes = append(li.LayerMediaTypes, l.MediaType)
		}
		out = append(out, li)
	}
	return out, nil
}

func blobPath(dir, digest string) string {
	alg, hex, _ := strings.Cut(digest, ":")
	return filepath.Join(dir, "blobs", alg, hex)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}
