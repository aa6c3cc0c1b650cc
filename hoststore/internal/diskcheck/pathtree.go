package diskcheck

import (
	"archive/tar"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// node kinds besides tar type flags.
const (
	kindImplicit = 'i' // a parent directory created because an entry below it needed one
	kindWhiteout = 'w' // an overlay whiteout (0/0 character device)
)

// tnode is one path of the tree a layer directory is compared with.
type tnode struct {
	kids     map[string]*tnode
	kind     byte // tar type flag of the entry, kindImplicit or kindWhiteout
	explicit bool // the tar has an entry for this path
	layer    int  // index in the chain of the layer that last wrote it
	// hdr is the header of the entry that last wrote the path (full-rootfs
	// drivers: the directory of a layer above holds a copy of it); nil for
	// overlay trees and for headers that did not parse.
	hdr *tar.Header
	crc uint64 // tar-split's CRC-64 of a regular file's data (full-rootfs trees)
	// disk is what lstat of the path showed when the observer compared the
	// entry (overlay trees), so the walk need not lstat it again; nil: not
	// compared.
	disk *nodeStat
}

// nodeStat is what the walk of a layer directory needs of an lstat.
type nodeStat struct {
	mode            fs.FileMode
	size            int64
	dev, ino, nlink uint64
}

// pathTree holds the entries a layer directory should have: for overlay
// drivers the entries of the layer's own tar, for full-rootfs drivers the
// replay of every tar of the chain (FORMATS 2.5).
type pathTree struct {
	root  tnode
	count int
}

func newPathTree() *pathTree { return &pathTree{root: tnode{kind: '5', explicit: true}} }

func splitClean(p string) []string {
	if p == "." || p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// ensure returns the node of p, creating it and its parents as implicit
// directories written by layer when they are missing.
func (t *pathTree) ensure(p string, layer ...int) *tnode {
	n := &t.root
	for _, c := range splitClean(p) {
		if n.kids == nil {
			n.kids = map[string]*tnode{}
		}
		k := n.kids[c]
		if k == nil {
			k = &tnode{kind: kindImplicit}
			if len(layer) > 0 {
				k.layer = layer[0]
			}
			n.kids[c] = k
			t.count++
		}
		n = k
	}
	return n
}

// add records p (cleaned, relative) as an entry of the given kind written by
// layer, creating its parents as implicit directories.
func (t *pathTree) add(p string, kind byte, layer int) *tnode {
	n := t.ensure(p, layer)
	if n != &t.root {
		n.kind, n.explicit, n.layer = kind, true, layer
	}
	return n
}

// lookup returns the node of p, or nil.
func (t *pathTree) lookup(p string) *tnode {
	n := &t.root
	for _, c := range splitClean(p) {
		n = n.kids[c]
		if n == nil {
			return nil
		}
	}
	return n
}

// remove deletes p and everything below it.
func (t *pathTree) remove(p string) {
	parts := splitClean(p)
	if len(parts) == 0 {
		return
	}
	parent := t.lookup(path.Join(parts[:len(parts)-1]...))
	if parent != nil && parent.kids != nil {
		delete(parent.kids, parts[len(parts)-1])
	}
}

// isDirKind reports whether a node stands for a directory.
func (n *tnode) isDirKind() bool { return n.kind == '5' || n.kind == kindImplicit }

// clone returns a deep copy of the tree (headers shared: they are never
// changed).
func (t *pathTree) clone() *pathTree {
	c := &pathTree{count: t.count}
	c.root = *cloneNode(&t.root)
	return c
}

func cloneNode(n *tnode) *tnode {
	c := &tnode{kind: n.kind, explicit: n.explicit, layer: n.layer, hdr: n.hdr, crc: n.crc}
	if n.kids != nil {
		c.kids = make(map[string]*tnode, len(n.kids))
		for k, v := range n.kids {
			c.kids[k] = cloneNode(v)
		}
	}
	return c
}

// size is the number of nodes.
func (t *pathTree) size() int {
	var count func(n *tnode) int
	count = func(n *tnode) int {
		s := 1
		for _, c := range n.kids {
			s += count(c)
		}
		return s
	}
	return count(&t.root)
}

// unseen calls fn for each node not in seen (found on disk) whose parent
// was, in path order; below an unseen node nothing more is reported.
func (t *pathTree) unseen(seen map[*tnode]bool, fn func(p string, n *tnode)) {
	var walk func(prefix string, n *tnode)
	walk = func(prefix string, n *tnode) {
		names := make([]string, 0, len(n.kids))
		for k := range n.kids {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			c := n.kids[k]
			p := k
			if prefix != "" {
				p = prefix + "/" + k
			}
			if !seen[c] {
				fn(p, c)
				continue
			}
			walk(p, c)
		}
	}
	walk("", &t.root)
}
