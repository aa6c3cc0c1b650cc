package hoststore

import (
	"github.com/layercheck/layercheck/hoststore/regstore"
	"github.com/layercheck/layercheck/store"
)

// A registry's filesystem storage: the driver's rootdirectory, holding
// docker/registry/v2.
func init() {
	backends = append(backends, backend{
		kind: store.Registry,
		is:   regstore.Is,
		open: func(root string, opts store.Options) (store.Store, error) { return regstore.Open(root, opts) },
	})
}
