package storetar

import (
	"encoding/json"
	"fmt"
	"os"
)

// Truth is the ground truth stored beside a capture (<name>.json next to
// <name>.tar.gz): what the daemon itself answered about the store just before
// it was stopped and captured.
type Truth struct {
	Kind       string           `json:"kind"`             // "docker", "containerd" or "containers-storage"
	Driver     string           `json:"driver,omitempty"` // Docker or containers-storage graph driver
	Version    string           `json:"version"`          // daemon version
	Capture    string           `json:"capture"`          // file name of the capture
	Root       string           `json:"root"`             // what the capture's root is: "the Docker data root"...
	Excluded   []string         `json:"excluded"`         // top-level paths left out of the capture
	Images     []TruthImage     `json:"images,omitempty"` // Docker and containers-storage images
	Containers []TruthContainer `json:"containers,omitempty"`
	CtrImages  []TruthCtrImage  `json:"ctrImages,omitempty"` // containerd images
	Notes      []string         `json:"notes,omitempty"`
}

// TruthImage is one Docker image: `docker image inspect` plus the layer
// store's chainIDs and cache IDs, base layer first; or one containers-storage
// image: `podman image inspect` (no chainIDs or cache IDs).
type TruthImage struct {
	Ref         string   `json:"ref"`
	ID          string   `json:"id"`
	RepoTags    []string `json:"repoTags"`
	RepoDigests []string `json:"repoDigests"`
	DiffIDs     []string `json:"diffIDs"`
	ChainIDs    []string `json:"chainIDs"`
	CacheIDs    []string `json:"cacheIDs"`
	Pulled      bool     `json:"pulled"`
	How         string   `json:"how"` // how it entered the store: import, load, build, pull
}

// TruthContainer is one Docker container.
type TruthContainer struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Image   string `json:"image"` // image ID
	Status  string `json:"status"`
	MountID string `json:"mountID"` // layerdb/mounts/<id>/mount-id
	InitID  string `json:"initID"`  // layerdb/mounts/<id>/init-id
}

// TruthCtrImage is one image of a containerd namespace (`ctr images ls`).
type TruthCtrImage struct {
	Namespace   string `json:"namespace"`
	Name        string `json:"name"`
	MediaType   string `json:"mediaType"`
	Digest      string `json:"digest"`
	Snapshotter string `json:"snapshotter"`
	How         string `json:"how"` // import of a docker save, import of an oci-archive, pull
}

// ReadTruth reads a ground-truth file.
func ReadTruth(path string) (*Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return &t, nil
}

// WriteTruth writes a ground-truth file, indented, with a final newline.
func WriteTruth(path string, t *Truth) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
