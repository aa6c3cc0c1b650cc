package hoststore

import (
	"os"
	"path/filepath"

	"github.com/layercheck/layercheck/hoststore/docker"
	"github.com/layercheck/layercheck/store"
)

func init() {
	backends = append(backends,
		backend{kind: store.Docker, is: isDockerClassic, open: openDocker},
	)
}

// isDockerClassic: image/<name>/imagedb or image/<name>/layerdb exists.
func isDockerClassic(root string) bool {
	ents, err := os.ReadDir(filepath.Join(root, "image"))
	if err != nil {
		return false
	}
	for _, e := range ents {
		for _, sub := range []string{"imagedb", "layerdb"} {
			if fi, err := os.Stat(filepath.Join(root, "image", e.Name(), sub)); err == nil && fi.IsDir() {
				return true
			}
		}
	}
	return false
}

func openDocker(root string, opts store.Options) (store.Store, error) {
	if len(opts.Namespaces) > 0 {
		return nil, &OptionError{Kind: store.Docker, Root: root, Option: "namespace"}
	}
	st, err := docker.Open(root, docker.Options{
		Driver:      opts.Driver,
		Images:      opts.Images,
		Jobs:        opts.Jobs,
		MaxFileSize: opts.MaxFileSize,
		Pass:        opts.Verify.Pass,
		Progress:    opts.Verify.Progress,
		Analysis:    opts.Verify.Analysis,
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}
