package hoststore

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/layercheck/layercheck/store"
)

// backend is one kind of store: how to recognise it and how to open it.
type backend struct {
	kind store.Kind
	// is reports whether root holds a store of this kind, from its
	// contents alone (cheap: a few stats).
	is   func(root string) bool
	open func(root string, opts store.Options) (store.Store, error)
}

// backends are the kinds registered by the register_*.go files; Detect
// tries them in the order of precedence.
var backends []backend

// precedence orders the kinds Detect tries: a Docker data root holding both
// image/<driver> and containerd/daemon is audited through its graph driver,
// as dockerd reads it.
var precedence = []store.Kind{store.Docker, store.Containerd, store.ContainersStorage, store.Registry}

func ordered() []backend {
	rank := func(k store.Kind) int {
		for i, p := range precedence {
			if p == k {
				return i
			}
		}
		return len(precedence)
	}
	out := append([]backend(nil), backends...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].kind) < rank(out[j].kind) })
	return out
}

// ErrUnknownStore is returned by Open and Detect for a directory that holds
// no store of any kind layercheck knows.
var ErrUnknownStore = errors.New("not a store layercheck knows")

// Detect says which kind of store root holds.
func Detect(root string) (store.Kind, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s: not a directory", root)
	}
	for _, b := range ordered() {
		if b.is(root) {
			return b.kind, nil
		}
	}
	return "", fmt.Errorf("%s: %w (%s)", root, ErrUnknownStore, Known())
}

// Known describes what each kind of store holds, for error messages.
func Known() string {
	return "a Docker data root holds image/<driver>/ or containerd/daemon/; a containerd root io.containerd.metadata.v1.bolt/; containers-storage <driver>-layers/ and <driver>-images/; a registry's storage docker/registry/v2/"
}

// Open opens root as the kind of store its contents show.
func Open(root string, opts store.Options) (store.Store, error) {
	kind, err := Detect(root)
	if err != nil {
		return nil, err
	}
	return OpenKind(kind, root, opts)
}

// OpenKind opens root as a store of the given kind.
func OpenKind(kind store.Kind, root string, opts store.Options) (store.Store, error) {
	for _, b := range backends {
		if b.kind == kind {
			return b.open(root, opts)
		}
	}
	var kinds []string
	for _, b := range backends {
		kinds = append(kinds, string(b.kind))
	}
	return nil, fmt.Errorf("unknown kind of store %q (known: %s)", kind, strings.Join(kinds, ", "))
}

// DefaultRoots are the paths `layercheck host` audits when no root is
// given: each that exists and holds a store is audited.
var DefaultRoots = []string{"/var/lib/docker", "/var/lib/containerd", "/var/lib/containers/storage"}

// OptionError is an option that does not apply to the kind of store found
// (a graph driver for a containerd root, namespaces for a Docker root): a
// mistake in the command line, not a damaged store.
type OptionError struct {
	Kind   store.Kind
	Root   string
	Option string
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%s is a %s store: the %s option does not apply to it", e.Root, e.Kind, e.Option)
}

// Root is a store to open and, when not "", the kind it must be (a flag
// that names one kind, like --containerd-root).
type Root struct {
	Path string
	Kind store.Kind
}

// KindError is a root whose contents are another kind of store than the
// one asked for: a mistake in the command line.
type KindError struct {
	Root       string
	Want, Have store.Kind
}

func (e *KindError) Error() string {
	return fmt.Sprintf("%s is a %s store, not a %s root; name it with --root", e.Root, e.Have, e.Want)
}

// Discover returns the DefaultRoots that hold a store, or an error naming
// where it looked.
func Discover() ([]Root, error) {
	var out []Root
	for _, r := range DefaultRoots {
		if _, err := Detect(r); err == nil {
			out = append(out, Root{Path: r})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no store found at %s; name one with --root DIR", strings.Join(DefaultRoots, ", "))
	}
	return out, nil
}

// OpenAll opens every root, in order; the first that cannot be opened (or
// is not of the kind asked for) closes the others and is the error.
func OpenAll(roots []Root, opts store.Options) ([]store.Store, error) {
	var out []store.Store
	closeAll := func() {
		for _, s := range out {
			s.Close()
		}
	}
	for _, r := range roots {
		st, err := Open(r.Path, opts)
		if err != nil {
			closeAll()
			return nil, err
		}
		out = append(out, st)
		if r.Kind != "" && st.Kind() != r.Kind {
			closeAll()
			return nil, &KindError{Root: r.Path, Want: r.Kind, Have: st.Kind()}
		}
	}
	return out, nil
}
