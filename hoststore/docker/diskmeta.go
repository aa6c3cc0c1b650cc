package docker

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	"github.com/layercheck/layercheck/report"
)

// statT holds the lstat fields the audit compares.
type statT struct {
	uid, gid     int
	ino, dev     uint64
	nlink        uint64
	major, minor int64
	blocks       int64
}

const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
	plnkDir  = ".wh..wh.plnk"
)

// cleanEntry cleans a tar name the way reassembly resolves it: relative to
// the layer root, slash-separated. ok is false for names that climb out of the
// root or hold a NUL byte (tarsplit reports those).
func cleanEntry(name string) (string, bool) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", false
	}
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}

func isPlnk(clean string) bool { return clean == plnkDir || strings.HasPrefix(clean, plnkDir+"/") }

// splitDirBase splits a cleaned path into its directory ("." at the root) and base.
func splitDirBase(clean string) (string, string) {
	dir, base := path.Split(clean)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	return dir, base
}

// rootCache keeps os.Roots of recently used directories of a layer root, so
// a lookup costs one fstatat instead of one openat per path component. Tar
// entries come grouped by directory, so a few slots suffice.
type rootCache struct {
	root  *os.Root
	names []string
	roots []*os.Root
}

const rootCacheSlots = 8

func (c *rootCache) get(dir string) (*os.Root, error) {
	if dir == "." || dir == "" {
		return c.root, nil
	}
	for i, n := range c.names {
		if n == dir {
			return c.roots[i], nil
		}
	}
	r, err := c.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	if len(c.names) == rootCacheSlots {
		c.roots[0].Close()
		c.names, c.roots = c.names[1:], c.roots[1:]
	}
	c.names = append(c.names, dir)
	c.roots = append(c.roots, r)
	return r, nil
}

func (c *rootCache) close() {
	for _, r := range c.roots {
		r.Close()
	}
	c.names, c.roots = nil, nil
}

// escapes reports whether an os.Root error refused a path leading out of the
// root. os.Root reports it with an unexported error whose text is stable.
func escapes(err error) bool {
	return err != nil && !errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "path escapes from parent")
}

// diskObserver compares every tar header of a rebuilt layer with lstat of the
// same path in the layer directory (FORMATS 2.5), and then walks the
// directory for entries the tar does not have. It implements verify.Observer.
type diskObserver struct {
	a       *audit
	l       *layerRec
	root    *os.Root
	rootRel string
	dirs    rootCache
	fl      findingList
	tree    *pathTree       // overlay drivers: this tar's entries
	opaque  map[string]bool // overlay2: directories with a .wh..wh..opq entry
	sumSize int64           // Σ header sizes, the naive drivers' size rule
	entries int
	inodes  map[uint64]*attrs // deferred attributes of files with several links
}

func newDiskObserver(a *audit, l *layerRec, root *os.Root, rootRel string) *diskObserver {
	o := &diskObserver{a: a, l: l, root: root, rootRel: rootRel, dirs: rootCache{root: root}, opaque: map[string]bool{}}
	if a.drv.overlay {
		o.tree = newPathTree()
	}
	return o
}

func (o *diskObserver) close() { o.dirs.close() }

func (o *diskObserver) subject(entry string) report.Subject {
	return report.Subject{Digest: o.l.chain.String(), Path: o.rootRel, Entry: entry}
}

func (o *diskObserver) add(f report.Finding) { o.fl.add(o.a.maxPer, f) }

// Header implements verify.Observer.
func (o *diskObserver) Header(h *tar.Header) {
	o.entries++
	o.sumSize += h.Size
	clean, ok := cleanEntry(h.Name)
	if !ok || clean == "." || isPlnk(clean) {
		return
	}
	dir, base := splitDirBase(clean)
	fuse := o.a.drv.overlay && !o.a.drv.overlayWhiteouts
	if strings.HasPrefix(base, whPrefix) && !fuse {
		if o.a.drv.fullRoot {
			return // applied as deletions; the walk checks them against the replay
		}
		// overlay2 turns whiteouts into 0/0 devices and opaque xattrs.
		if base == whOpaque {
			o.opaque[dir] = true
			o.tree.ensure(dir)
			o.checkOpaque(dir, h)
			return
		}
		target := path.Join(dir, base[len(whPrefix):])
		o.tree.add(target, kindWhiteout, 0)
		o.checkWhiteout(target, h)
		return
	}
	if o.tree != nil {
		kind := h.Typeflag
		if n := o.tree.lookup(clean); n != nil && n.explicit {
			// a second entry for the path: tarsplit reports the duplicate
			kind = n.kind
		}
		o.tree.add(clean, kind, 0)
	}
	o.compare(h, clean)
}

// lookup returns the directory root of clean and its base name.
func (o *diskObserver) lookup(clean string) (*os.Root, string, error) {
	dir, base := splitDirBase(clean)
	r, err := o.dirs.get(dir)
	return r, base, err
}

func (o *diskObserver) lstat(clean string) (fs.FileInfo, error) {
	r, base, err := o.lookup(clean)
	if err != nil {
		return nil, err
	}
	return r.Lstat(base)
}

// lstatErr files an lstat failure of a tar entry.
func (o *diskObserver) lstatErr(h *tar.Header, clean string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		o.add(with(finding(LayerMissingFile, o.subject(h.Name), "the tar's %s is not in the layer directory", tarTypeName(h.Typeflag)), tarTypeName(h.Typeflag), "absent"))
	case escapes(err):
		o.add(finding(UnsafePath, o.subject(h.Name), "a symlink on the path leads out of the layer directory; it was not followed"))
	default:
		o.a.problem(o.subject(h.Name), "lstat: %v", err)
	}
}

func (o *diskObserver) mismatch(name, what, want, got string) {
	o.add(with(finding(LstatMismatch, o.subject(name), "%s on disk differs from the tar header", what), want, got))
}

// mismatchFrom files a difference with the header of an inherited entry
// (lower: 1 + the chain index of the layer that wrote it; 0: the layer's own
// tar header).
func (o *diskObserver) mismatchFrom(lower int, name, what, want, got string) {
	if lower == 0 {
		o.mismatch(name, what, want, got)
		return
	}
	o.add(with(finding(LstatMismatch, o.subject(name), "%s of this inherited copy differs from the header in %s, which last wrote the path", what, o.lowerName(lower-1)), want, got))
}

// lowerName names the layer at index idx of this layer's chain (base = 0).
func (o *diskObserver) lowerName(idx int) string {
	var chain []*layerRec // this layer first
	for p := o.l; p != nil && len(chain) <= maxLayerDepth+1; p = p.parent {
		chain = append(chain, p)
	}
	if k := len(chain) - 1 - idx; idx >= 0 && k >= 0 {
		return fmt.Sprintf("lower layer %s (layer %d of the chain)", report.Short(chain[k].chain.String()), idx)
	}
	return fmt.Sprintf("layer %d of the chain", idx)
}

// attrs are the header fields Docker's unpack applies to an inode: a later
// hardlink header applies its own mode, owner and xattrs to the inode it
// shares (go-archive's createTarFile chowns, chmods and setxattrs the link
// path), so for files with several links they are compared at the end.
type attrs struct {
	name, clean string
	lower       int // an inherited entry: 1 + the chain index of the lower layer that wrote it; 0: own entry
	mode        int64
	uid, gid    int
	xattrs      map[string]string // nil: not compared
}

func (o *diskObserver) headerAttrs(h *tar.Header, clean string) *attrs {
	a := &attrs{name: h.Name, clean: clean, mode: h.Mode & 07777, uid: h.Uid + o.a.uidOff, gid: h.Gid + o.a.gidOff, xattrs: map[string]string{}}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if strings.HasPrefix(name, "trusted.") && !o.a.privileged {
				continue
			}
			a.xattrs[name] = v
		}
	}
	return a
}

// compare checks one entry against lstat of its path.
func (o *diskObserver) compare(h *tar.Header, clean string) {
	fi, err := o.lstat(clean)
	if err != nil {
		o.lstatErr(h, clean, err)
		return
	}
	st, ok := statOf(fi)
	if !ok {
		return
	}
	if h.Typeflag == tar.TypeLink {
		o.checkHardlink(h, clean, fi)
		return
	}
	known, match := typeMatches(h.Typeflag, fi.Mode())
	if !known {
		return
	}
	if !match {
		o.mismatch(h.Name, "type", tarTypeName(h.Typeflag), typeName(fi.Mode()))
		return
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		if h.Size != fi.Size() {
			o.mismatch(h.Name, "size", fmt.Sprintf("%d bytes", h.Size), fmt.Sprintf("%d bytes", fi.Size()))
		}
	case tar.TypeSymlink:
		r, base, err := o.lookup(clean)
		if err == nil {
			var target string
			if target, err = r.Readlink(base); err == nil && target != h.Linkname {
				o.mismatch(h.Name, "symlink target", h.Linkname, target)
			}
		}
		if err != nil {
			o.a.problem(o.subject(h.Name), "readlink: %v", err)
		}
	case tar.TypeChar, tar.TypeBlock:
		if st.major != h.Devmajor || st.minor != h.Devminor {
			o.mismatch(h.Name, "device number", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor), fmt.Sprintf("%d,%d", st.major, st.minor))
		}
	}
	a := o.headerAttrs(h, clean)
	if !fi.IsDir() && st.nlink > 1 {
		if o.inodes == nil {
			o.inodes = map[uint64]*attrs{}
		}
		o.inodes[st.ino] = a
		return
	}
	o.compareAttrs(a, fi)
}

// compareAttrs compares mode, owner and xattrs (symlinks: owner only).
func (o *diskObserver) compareAttrs(a *attrs, fi fs.FileInfo) {
	st, _ := statOf(fi)
	isLink := fi.Mode()&fs.ModeSymlink != 0
	if !isLink {
		if got := unixPerm(fi.Mode()); a.mode != got {
			o.mismatchFrom(a.lower, a.name, "mode", fmt.Sprintf("%04o", a.mode), fmt.Sprintf("%04o", got))
		}
	}
	if a.uid != st.uid {
		o.mismatchFrom(a.lower, a.name, "owner uid", fmt.Sprint(a.uid), fmt.Sprint(st.uid))
	}
	if a.gid != st.gid {
		o.mismatchFrom(a.lower, a.name, "owner gid", fmt.Sprint(a.gid), fmt.Sprint(st.gid))
	}
	if !isLink && a.xattrs != nil {
		o.compareXattrs(a)
	}
}

// flush compares the deferred attributes of files with several links.
func (o *diskObserver) flush() {
	recs := make([]*attrs, 0, len(o.inodes))
	for _, a := range o.inodes {
		recs = append(recs, a)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].name < recs[j].name })
	for _, a := range recs {
		if fi, err := o.lstat(a.clean); err == nil {
			o.compareAttrs(a, fi)
		}
	}
	o.inodes = nil
}

// checkHardlink: a hardlink is the same inode as its target, and its header
// then sets the mode, owner and xattrs of that inode.
func (o *diskObserver) checkHardlink(h *tar.Header, clean string, fi fs.FileInfo) {
	target, ok := cleanEntry(h.Linkname)
	if !ok {
		return // the pass reports a link target climbing out of the root
	}
	tfi, err := o.lstat(target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			o.mismatch(h.Name, "hardlink target", target+" (same file)", "target absent")
		} else if escapes(err) {
			o.add(finding(UnsafePath, o.subject(h.Name), "a symlink on the path of the hardlink target %q leads out of the layer directory; it was not followed", h.Linkname))
		}
		return
	}
	if !os.SameFile(fi, tfi) {
		a, _ := statOf(fi)
		b, _ := statOf(tfi)
		o.mismatch(h.Name, "hardlink identity", "the same inode as "+target, fmt.Sprintf("inode %d, %s is inode %d", a.ino, target, b.ino))
		return
	}
	st, _ := statOf(tfi)
	rec := o.inodes[st.ino]
	if rec == nil {
		return
	}
	ha := o.headerAttrs(h, clean)
	if tfi.Mode()&fs.ModeSymlink == 0 {
		rec.mode = ha.mode
	}
	rec.uid, rec.gid = ha.uid, ha.gid
	for k, v := range ha.xattrs {
		rec.xattrs[k] = v
	}
}

// compareXattrs compares SCHILY.xattr.* PAX records with the xattrs on disk.
// security.selinux (set by the host's labelling) and the overlay
// filesystem's own trusted.overlay.*/user.overlay.* markers are not part of
// the layer.
func (o *diskObserver) compareXattrs(a *attrs) {
	if !o.a.xattrOK {
		return
	}
	r, base, err := o.lookup(a.clean)
	var got map[string]string
	if err == nil {
		got, err = xattrs(r, base)
	}
	if err != nil {
		o.a.problem(o.subject(a.name), "%v", err)
		return
	}
	for k := range got {
		if ignoredXattr(k) || (strings.HasPrefix(k, "trusted.") && !o.a.privileged) {
			delete(got, k)
		}
	}
	for _, k := range sortedKeys(a.xattrs) {
		g, ok := got[k]
		switch {
		case !ok:
			o.mismatchFrom(a.lower, a.name, "xattr "+k, fmt.Sprintf("%q", a.xattrs[k]), "absent")
		case g != a.xattrs[k]:
			o.mismatchFrom(a.lower, a.name, "xattr "+k, fmt.Sprintf("%q", a.xattrs[k]), fmt.Sprintf("%q", g))
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := a.xattrs[k]; !ok {
			o.mismatchFrom(a.lower, a.name, "xattr "+k, "absent", fmt.Sprintf("%q", got[k]))
		}
	}
}

// ignoredXattr: xattrs on disk that are not part of a layer.
func ignoredXattr(k string) bool {
	return k == "security.selinux" || strings.HasPrefix(k, "trusted.overlay.") || strings.HasPrefix(k, "user.overlay.")
}

// hasOpaque reports whether a directory carries overlayfs's opaque marker.
func (o *diskObserver) hasOpaque(r *os.Root, name string) (bool, error) {
	x, err := xattrs(r, name)
	if err != nil {
		return false, err
	}
	return x["trusted.overlay.opaque"] == "y" || x["user.overlay.opaque"] == "y", nil
}

// checkOpaque: overlay2 marks a .wh..wh..opq directory with an xattr.
func (o *diskObserver) checkOpaque(dir string, h *tar.Header) {
	if !o.a.xattrOK {
		return
	}
	r, base, err := o.lookup(dir)
	if dir == "." {
		r, base, err = o.root, ".", nil
	}
	var ok bool
	if err == nil {
		ok, err = o.hasOpaque(r, base)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		o.add(finding(Whiteout, o.subject(h.Name), "the opaque directory %q is not in the layer directory", dir))
	case err != nil:
		o.a.problem(o.subject(h.Name), "%v", err)
	case !ok && o.a.privileged:
		o.add(with(finding(Whiteout, o.subject(h.Name), "the directory the tar marks opaque has no opaque marker on disk; lower layers show through it"), "trusted.overlay.opaque=y on "+dir, "absent"))
	case !ok:
		o.a.notPrivileged()
	}
}

// checkWhiteout: overlay2 turns .wh.<name> into a 0/0 character device owned
// by the entry's uid/gid.
func (o *diskObserver) checkWhiteout(target string, h *tar.Header) {
	fi, err := o.lstat(target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			o.add(with(finding(Whiteout, o.subject(h.Name), "the whiteout of %q is missing; the lower layers' file shows through", target), "0/0 character device", "absent"))
		} else if escapes(err) {
			o.add(finding(UnsafePath, o.subject(h.Name), "a symlink on the path leads out of the layer directory; it was not followed"))
		} else {
			o.a.problem(o.subject(h.Name), "lstat: %v", err)
		}
		return
	}
	st, _ := statOf(fi)
	if fi.Mode()&fs.ModeCharDevice == 0 || st.major != 0 || st.minor != 0 {
		got := typeName(fi.Mode())
		if fi.Mode()&fs.ModeCharDevice != 0 {
			got = fmt.Sprintf("character device %d,%d", st.major, st.minor)
		}
		o.add(with(finding(Whiteout, o.subject(h.Name), "the whiteout of %q is not a 0/0 character device", target), "0/0 character device", got))
		return
	}
	if st.uid != h.Uid+o.a.uidOff || st.gid != h.Gid+o.a.gidOff {
		o.add(with(finding(LstatMismatch, o.subject(h.Name), "owner of the whiteout device differs from the tar header"),
			fmt.Sprintf("%d:%d", h.Uid+o.a.uidOff, h.Gid+o.a.gidOff), fmt.Sprintf("%d:%d", st.uid, st.gid)))
	}
}

// typeMatches reports whether the tar type flag fits the file mode. known is
// false for types the audit does not compare.
func typeMatches(flag byte, m fs.FileMode) (known, match bool) {
	switch flag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return true, m.IsRegular()
	case tar.TypeSymlink:
		return true, m&fs.ModeSymlink != 0
	case tar.TypeChar:
		return true, m&fs.ModeCharDevice != 0
	case tar.TypeBlock:
		return true, m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0
	case tar.TypeDir:
		return true, m.IsDir()
	case tar.TypeFifo:
		return true, m&fs.ModeNamedPipe != 0
	}
	return false, false
}

func tarTypeName(flag byte) string {
	switch flag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return "regular file"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeDir:
		return "directory"
	case tar.TypeFifo:
		return "FIFO"
	case kindWhiteout:
		return "whiteout"
	case kindImplicit:
		return "directory"
	}
	return fmt.Sprintf("entry of type %q", flag)
}

// unixPerm returns the permission, setuid, setgid and sticky bits as in a tar header.
func unixPerm(m fs.FileMode) int64 {
	p := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 04000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 02000
	}
	if m&fs.ModeSticky != 0 {
		p |= 01000
	}
	return p
}

// walkResult is what the walk of a layer directory measured.
type walkResult struct {
	dirSize int64 // directory.Size: non-directories with size > 0, each inode once
	done    bool
}

// walk lists the layer directory and reports entries the tree lacks, implicit
// parents that are not directories and, for overlay2, opaque markers and
// whiteout devices the tar does not have. whited names the paths this layer
// whites out (full-rootfs drivers). Entries below another mounted filesystem
// are not walked.
func (o *diskObserver) walk(tree *pathTree, whited map[string]bool) walkResult {
	var res walkResult
	var rootDev uint64
	inodes := map[uint64]bool{}
	err := fs.WalkDir(o.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			o.a.problem(report.Subject{Digest: o.l.chain.String(), Path: o.rootRel, Entry: p}, "walking the layer directory: %v", err)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (live host)
			}
			o.a.problem(report.Subject{Digest: o.l.chain.String(), Path: o.rootRel, Entry: p}, "lstat: %v", err)
			return nil
		}
		st, _ := statOf(fi)
		if p == "." {
			rootDev = st.dev
			if o.a.drv.overlayWhiteouts {
				o.walkOpaque(".", ".")
			}
			return nil
		}
		if st.dev != rootDev {
			o.a.problem(report.Subject{Digest: o.l.chain.String(), Path: o.rootRel, Entry: p}, "another filesystem is mounted here; not walked")
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !fi.IsDir() && fi.Size() > 0 {
			if st.nlink <= 1 || !inodes[st.ino] {
				res.dirSize += fi.Size()
				if st.nlink > 1 {
					inodes[st.ino] = true
				}
			}
		}
		n := tree.lookup(p)
		if n == nil {
			o.extra(p, fi, st, whited[p])
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		n.seen = true
		if n.lower != nil {
			o.compareInherited(tree, p, n, fi, st)
		}
		if !n.explicit && !fi.IsDir() {
			o.add(with(finding(LstatMismatch, o.subject(p), "a directory the tar's entries need is a %s on disk", typeName(fi.Mode())), "directory", typeName(fi.Mode())))
		}
		if fi.IsDir() && o.a.drv.overlayWhiteouts {
			o.walkOpaque(p, p)
		}
		return nil
	})
	if err != nil {
		o.a.problem(report.Subject{Digest: o.l.chain.String(), Path: o.rootRel}, "walking the layer directory: %v", err)
		return res
	}
	res.done = true
	return res
}

// compareInherited compares an entry a full-rootfs layer directory inherited
// from a lower layer with that layer's header: the driver copied it, and the
// layer's own tar, which Docker's diffID check covers, does not list it.
// Compared: type, size, symlink target, device numbers, mode and owner (vfs's
// CopyDir keeps them, as do btrfs and zfs snapshots), and a hardlink's
// identity with its target while no later layer replaced the target (which
// leaves the link on the old inode). Not compared: xattrs, which vfs does not
// copy (it keeps only security.capability), and the mode and owner of files
// with several links, which a later hardlink header may have set.
func (o *diskObserver) compareInherited(tree *pathTree, p string, n *tnode, fi fs.FileInfo, st statT) {
	h := n.lower
	from := n.layer + 1
	if h.Typeflag == tar.TypeLink {
		target, ok := cleanEntry(h.Linkname)
		if !ok {
			return
		}
		if tn := tree.lookup(target); tn == nil || tn.layer != n.layer {
			return // the target was replaced or removed above the link's layer
		}
		tfi, err := o.lstat(target)
		if err != nil || !os.SameFile(fi, tfi) {
			got := "another file"
			if err != nil {
				got = "target absent"
			}
			o.mismatchFrom(from, p, "hardlink target", target+" (same file)", got)
		}
		return
	}
	known, match := typeMatches(h.Typeflag, fi.Mode())
	if !known {
		return
	}
	if !match {
		o.mismatchFrom(from, p, "type", tarTypeName(h.Typeflag), typeName(fi.Mode()))
		return
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		if h.Size != fi.Size() {
			o.mismatchFrom(from, p, "size", fmt.Sprintf("%d bytes", h.Size), fmt.Sprintf("%d bytes", fi.Size()))
		}
	case tar.TypeSymlink:
		r, base, err := o.lookup(p)
		var target string
		if err == nil {
			target, err = r.Readlink(base)
		}
		switch {
		case err != nil:
			o.a.problem(o.subject(p), "readlink: %v", err)
		case target != h.Linkname:
			o.mismatchFrom(from, p, "symlink target", h.Linkname, target)
		}
	case tar.TypeChar, tar.TypeBlock:
		if st.major != h.Devmajor || st.minor != h.Devminor {
			o.mismatchFrom(from, p, "device number", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor), fmt.Sprintf("%d,%d", st.major, st.minor))
		}
	}
	if !fi.IsDir() && st.nlink > 1 {
		return
	}
	a := o.headerAttrs(h, p)
	a.name, a.lower, a.xattrs = p, from, nil
	o.compareAttrs(a, fi)
}

// extra reports a path on disk the tree does not have.
func (o *diskObserver) extra(p string, fi fs.FileInfo, st statT, whitedOut bool) {
	what := typeName(fi.Mode())
	if fi.Mode().IsRegular() {
		what += fmt.Sprintf(", %d bytes", fi.Size())
	}
	switch {
	case whitedOut:
		o.add(with(finding(Whiteout, o.subject(p), "the layer's tar whites this path out, yet it is present"), "absent", what))
	case o.a.drv.overlayWhiteouts && fi.Mode()&fs.ModeCharDevice != 0 && st.major == 0 && st.minor == 0:
		o.add(with(finding(Whiteout, o.subject(p), "a whiteout device the layer's tar does not have hides the lower layers' file"), "absent", "0/0 character device"))
	default:
		o.add(with(finding(ExtraFile, o.subject(p), "the layer directory holds an entry its tar does not have (Docker's diffID check cannot see it)"), "absent", what))
	}
}

// walkOpaque reports an opaque marker on a directory the tar does not mark opaque.
func (o *diskObserver) walkOpaque(dir, entry string) {
	if !o.a.xattrOK || o.opaque[dir] {
		return
	}
	ok, err := o.hasOpaque(o.root, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			o.a.problem(o.subject(entry), "%v", err)
		}
		return
	}
	if ok {
		o.add(with(finding(Whiteout, o.subject(entry), "an opaque marker the layer's tar does not have hides the lower layers' directory contents"), "no opaque marker", "overlay opaque xattr y"))
	}
}

// reportUnseen reports entries of lower layers missing from a full-rootfs
// layer directory; this layer's own entries were compared one by one.
func (o *diskObserver) reportUnseen(tree *pathTree, self int) {
	tree.unseen(func(p string, n *tnode) {
		if n.layer == self {
			return
		}
		o.add(with(finding(LayerMissingFile, o.subject(p), "a %s inherited from a lower layer is not in the layer directory (the layer's rootfs is incomplete)", tarTypeName(n.kind)), tarTypeName(n.kind), "absent"))
	})
}

// sortFindings orders a layer's findings by entry for stable output.
func sortFindings(fs []report.Finding) {
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Subject.Entry < fs[j].Subject.Entry })
}
