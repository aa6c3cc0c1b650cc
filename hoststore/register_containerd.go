package hoststore

import (
	"github.com/layercheck/layercheck/hoststore/containerd"
	"github.com/layercheck/layercheck/store"
)

func init() {
	backends = append(backends,
		// A containerd root, or a Docker data root whose images live in
		// the containerd image store (containerd/daemon, namespace moby).
		backend{kind: store.Containerd, is: isContainerd, open: openContainerd},
	)
}

func isContainerd(root string) bool {
	if containerd.IsRoot(root) {
		return true
	}
	_, ok := containerd.DockerRoot(root)
	return ok
}

func openContainerd(root string, opts store.Options) (store.Store, error) {
	co := containerd.Options{
		Namespaces: opts.Namespaces,
		Images:     opts.Images,
		Platforms:  opts.Platforms,
		Jobs:       opts.Jobs,
		Verify:     opts.Verify,
	}
	if opts.Driver != "" {
		return nil, &OptionError{Kind: store.Containerd, Root: root, Option: "driver"}
	}
	var st *containerd.Store
	var err error
	if containerd.IsRoot(root) {
		st, err = containerd.Open(root, co)
	} else {
		st, err = containerd.OpenDocker(root, co)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}
