package hoststore

import (
	"github.com/layercheck/layercheck/hoststore/cstorage"
	"github.com/layercheck/layercheck/store"
)

// containers-storage graph roots (podman, buildah, CRI-O): recognised by
// <driver>-layers/layers.json or <driver>-images/images.json.
func init() {
	backends = append(backends, backend{
		kind: store.ContainersStorage,
		is:   cstorage.Is,
		open: func(root string, opts store.Options) (store.Store, error) {
			s, err := cstorage.Open(root, opts)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	})
}
