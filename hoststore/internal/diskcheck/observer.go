package diskcheck

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
	"github.com/layercheck/layercheck/tarsplit"
)

const plnkDir = ".wh..wh.plnk"

func isPlnk(clean string) bool { return clean == plnkDir || strings.HasPrefix(clean, plnkDir+"/") }

// diskObserver compares every tar header of a rebuilt layer with lstat of the
// same path in the layer directory (FORMATS 2.5), and then walks the
// directory for entries the tar does not have. It implements verify.Observer.
type diskObserver struct {
	env     *Env
	l       *Layer
	root    *os.Root
	rootRel string
	dirs    RootCache
	fl      FindingList
	tree    *pathTree       // overlay drivers: this tar's entries
	opaque  map[string]bool // overlay2: directories with a .wh..wh..opq entry
	sumSize int64           // Σ header sizes, the naive drivers' size rule
	entries int
	inodes  map[uint64]*attrs // deferred attributes of files with several links
	// self is the layer's index in its chain (full-rootfs drivers): entries
	// of the tree other layers wrote are compared as inherited copies.
	self int
	seen map[*tnode]bool // tree nodes found on disk by the walk
	// lastReg is the regular file compare has just lstat'ed, handed with
	// its record to the rebuild (stage), which opens it.
	lastReg     string
	lastRegInfo fs.FileInfo
	// pendingX is that file's xattr comparison, handed on with it: done on
	// the descriptor the rebuild opens (flistxattr: no path to resolve) or,
	// when it is not opened, by path (rebuildSide.settle).
	pendingX *attrs
	buf      []byte // compareCopy's read buffer
	// probe learns from the rebuild's first reads whether the layer's
	// files are in the page cache, for the lookahead (prefetch.go).
	probe *cacheProbe
}

func newDiskObserver(env *Env, l *Layer, root *os.Root, rootRel string) *diskObserver {
	o := &diskObserver{env: env, l: l, root: root, rootRel: rootRel, dirs: RootCache{Root: root}, opaque: map[string]bool{}, self: -1, probe: &cacheProbe{}}
	if env.Layout.Overlay {
		o.tree = newPathTree()
	}
	return o
}

func (o *diskObserver) close() { o.dirs.Close() }

func (o *diskObserver) subject(entry string) report.Subject {
	return report.Subject{Digest: o.l.Digest, Path: o.rootRel, Entry: entry}
}

func (o *diskObserver) add(f report.Finding) { o.fl.Add(o.env.maxPer(), f) }

// Header implements verify.Observer.
func (o *diskObserver) Header(h *tar.Header) {
	o.entries++
	o.sumSize += h.Size
	clean, ok := CleanEntry(h.Name)
	if !ok || clean == "." || isPlnk(clean) {
		return
	}
	dir, base := SplitDirBase(clean)
	fuse := o.env.Layout.Overlay && !o.env.Layout.OverlayWhiteouts
	if strings.HasPrefix(base, WhPrefix) && !fuse {
		if o.env.Layout.FullRoot {
			return // applied as deletions; the walk checks them against the replay
		}
		// overlay2 turns whiteouts into 0/0 devices and opaque xattrs.
		if base == WhOpaque {
			o.opaque[dir] = true
			o.tree.ensure(dir)
			o.checkOpaque(dir, h)
			return
		}
		target := path.Join(dir, base[len(WhPrefix):])
		o.tree.add(target, kindWhiteout, 0)
		o.checkWhiteout(target, h)
		return
	}
	var node *tnode
	if o.tree != nil {
		kind := h.Typeflag
		if n := o.tree.lookup(clean); n != nil && n.explicit {
			// a second entry for the path: tarsplit reports the duplicate
			kind = n.kind
		}
		node = o.tree.add(clean, kind, 0)
	}
	o.compare(h, clean, node)
}

// lookup returns the directory root of clean and its base name.
func (o *diskObserver) lookup(clean string) (*os.Root, string, error) {
	dir, base := SplitDirBase(clean)
	r, err := o.dirs.Get(dir)
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
		o.add(with(finding(o.env.Checks.MissingFile, o.subject(h.Name), "the tar's %s is not in the layer directory", TarTypeName(h.Typeflag)), TarTypeName(h.Typeflag), "absent"))
	case Escapes(err):
		o.add(finding(o.env.Checks.UnsafePath, o.subject(h.Name), "a symlink on the path leads out of the layer directory; it was not followed"))
	default:
		o.env.problem(o.subject(h.Name), "lstat: %v", err)
	}
}

func (o *diskObserver) mismatch(name, what, want, got string) {
	o.add(with(finding(o.env.Checks.Lstat, o.subject(name), "%s on disk differs from the tar header", what), want, got))
}

// mismatchFrom files a difference with the header of an inherited entry
// (lower: 1 + the chain index of the layer that wrote it; 0: the layer's own
// tar header).
func (o *diskObserver) mismatchFrom(lower int, name, what, want, got string) {
	if lower == 0 {
		o.mismatch(name, what, want, got)
		return
	}
	o.add(with(finding(o.env.Checks.Lstat, o.subject(name), "%s of this inherited copy differs from the header in %s, which last wrote the path", what, o.lowerName(lower-1)), want, got))
}

// lowerName names the layer at index idx of this layer's chain (base = 0).
func (o *diskObserver) lowerName(idx int) string {
	if idx >= 0 && idx < len(o.l.Chain) {
		return fmt.Sprintf("lower layer %s (layer %d of the chain)", report.Short(o.l.Chain[idx].Digest), idx)
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
	UID, GID    int
	xattrs      map[string]string // the header's (nil: none)
	noXattrs    bool              // xattrs are not compared (an inherited copy)
}

func (o *diskObserver) headerAttrs(h *tar.Header, clean string) *attrs {
	a := &attrs{name: h.Name, clean: clean, mode: h.Mode & 07777, UID: o.l.uid(h.Uid), GID: o.l.gid(h.Gid)}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if strings.HasPrefix(name, "trusted.") && !o.env.Privileged {
				continue
			}
			if a.xattrs == nil {
				a.xattrs = map[string]string{}
			}
			a.xattrs[name] = v
		}
	}
	return a
}

// compare checks one entry against lstat of its path; node, when set, is
// its node of the overlay tree, which keeps what the walk needs of the lstat.
func (o *diskObserver) compare(h *tar.Header, clean string, node *tnode) {
	fi, err := o.lstat(clean)
	if err != nil {
		o.lstatErr(h, clean, err)
		return
	}
	st, ok := StatOf(fi)
	if !ok {
		return
	}
	if node != nil {
		node.disk = &nodeStat{mode: fi.Mode(), size: fi.Size(), dev: st.Dev, ino: st.Ino, nlink: st.Nlink}
	}
	if h.Typeflag == tar.TypeLink {
		o.checkHardlink(h, clean, fi)
		return
	}
	known, match := TypeMatches(h.Typeflag, fi.Mode())
	if !known {
		return
	}
	if !match {
		o.mismatch(h.Name, "type", TarTypeName(h.Typeflag), typeName(fi.Mode()))
		return
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		if h.Size != fi.Size() {
			o.mismatch(h.Name, "size", fmt.Sprintf("%d bytes", h.Size), fmt.Sprintf("%d bytes", fi.Size()))
		}
		o.lastReg, o.lastRegInfo = clean, fi
	case tar.TypeSymlink:
		r, base, err := o.lookup(clean)
		if err == nil {
			var target string
			if target, err = r.Readlink(base); err == nil && target != h.Linkname {
				o.mismatch(h.Name, "symlink target", h.Linkname, target)
			}
		}
		if err != nil {
			o.env.problem(o.subject(h.Name), "readlink: %v", err)
		}
	case tar.TypeChar, tar.TypeBlock:
		if st.Major != h.Devmajor || st.Minor != h.Devminor {
			o.mismatch(h.Name, "device number", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor), fmt.Sprintf("%d,%d", st.Major, st.Minor))
		}
	}
	a := o.headerAttrs(h, clean)
	if !fi.IsDir() && st.Nlink > 1 {
		if o.inodes == nil {
			o.inodes = map[uint64]*attrs{}
		}
		o.inodes[st.Ino] = a
		return
	}
	o.compareAttrs(a, fi, o.lastReg == clean && fi.Mode().IsRegular())
}

// compareAttrs compares mode, owner and xattrs (symlinks: owner only).
// deferX leaves the xattrs to the rebuild (pendingX, handed over by the
// stage with the record).
func (o *diskObserver) compareAttrs(a *attrs, fi fs.FileInfo, deferX bool) {
	st, _ := StatOf(fi)
	isLink := fi.Mode()&fs.ModeSymlink != 0
	if !isLink {
		if got := UnixPerm(fi.Mode()); a.mode != got {
			o.mismatchFrom(a.lower, a.name, "mode", fmt.Sprintf("%04o", a.mode), fmt.Sprintf("%04o", got))
		}
	}
	if a.UID != st.UID {
		o.mismatchFrom(a.lower, a.name, "owner uid", fmt.Sprint(a.UID), fmt.Sprint(st.UID))
	}
	if a.GID != st.GID {
		o.mismatchFrom(a.lower, a.name, "owner gid", fmt.Sprint(a.GID), fmt.Sprint(st.GID))
	}
	switch {
	case isLink || a.noXattrs || !o.env.XattrOK:
	case deferX:
		o.pendingX = a
	default:
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
			o.compareAttrs(a, fi, false)
		}
	}
	o.inodes = nil
}

// checkHardlink: a hardlink is the same inode as its target, and its header
// then sets the mode, owner and xattrs of that inode.
func (o *diskObserver) checkHardlink(h *tar.Header, clean string, fi fs.FileInfo) {
	target, ok := CleanEntry(h.Linkname)
	if !ok {
		return // the pass reports a link target climbing out of the root
	}
	tfi, err := o.lstat(target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			o.mismatch(h.Name, "hardlink target", target+" (same file)", "target absent")
		} else if Escapes(err) {
			o.add(finding(o.env.Checks.UnsafePath, o.subject(h.Name), "a symlink on the path of the hardlink target %q leads out of the layer directory; it was not followed", h.Linkname))
		}
		return
	}
	if !os.SameFile(fi, tfi) {
		a, _ := StatOf(fi)
		b, _ := StatOf(tfi)
		o.mismatch(h.Name, "hardlink identity", "the same inode as "+target, fmt.Sprintf("inode %d, %s is inode %d", a.Ino, target, b.Ino))
		return
	}
	st, _ := StatOf(tfi)
	rec := o.inodes[st.Ino]
	if rec == nil {
		return
	}
	ha := o.headerAttrs(h, clean)
	if tfi.Mode()&fs.ModeSymlink == 0 {
		rec.mode = ha.mode
	}
	rec.UID, rec.GID = ha.UID, ha.GID
	for k, v := range ha.xattrs {
		if rec.xattrs == nil {
			rec.xattrs = map[string]string{}
		}
		rec.xattrs[k] = v
	}
}

// compareXattrs compares SCHILY.xattr.* PAX records with the xattrs on disk.
// security.selinux (set by the host's labelling) and the overlay
// filesystem's own trusted.overlay.*/user.overlay.* markers are not part of
// the layer.
func (o *diskObserver) compareXattrs(a *attrs) {
	if !o.env.XattrOK {
		return
	}
	got, err := o.dirs.Xattrs(a.clean)
	o.compareXattrsGot(a, got, err)
}

// compareXattrsGot compares the xattrs listed on disk (got, or the error
// listing them) with the header's.
func (o *diskObserver) compareXattrsGot(a *attrs, got map[string]string, err error) {
	if err != nil {
		o.env.problem(o.subject(a.name), "%v", err)
		return
	}
	for k := range got {
		if IgnoredXattr(k) || (strings.HasPrefix(k, "trusted.") && !o.env.Privileged) {
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

// hasOpaque reports whether a directory carries overlayfs's opaque marker.
func (o *diskObserver) hasOpaque(clean string) (bool, error) {
	x, err := o.dirs.Xattrs(clean)
	if err != nil {
		return false, err
	}
	return x["trusted.overlay.opaque"] == "y" || x["user.overlay.opaque"] == "y", nil
}

// checkOpaque: overlay2 marks a .wh..wh..opq directory with an xattr.
func (o *diskObserver) checkOpaque(dir string, h *tar.Header) {
	if !o.env.XattrOK {
		return
	}
	ok, err := o.hasOpaque(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		o.add(finding(o.env.Checks.Whiteout, o.subject(h.Name), "the opaque directory %q is not in the layer directory", dir))
	case err != nil:
		o.env.problem(o.subject(h.Name), "%v", err)
	case !ok && o.env.Privileged:
		o.add(with(finding(o.env.Checks.Whiteout, o.subject(h.Name), "the directory the tar marks opaque has no opaque marker on disk; lower layers show through it"), "trusted.overlay.opaque=y on "+dir, "absent"))
	case !ok:
		o.env.notPrivileged()
	}
}

// checkWhiteout: overlay2 turns .wh.<name> into a 0/0 character device owned
// by the entry's uid/gid.
func (o *diskObserver) checkWhiteout(target string, h *tar.Header) {
	fi, err := o.lstat(target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			o.add(with(finding(o.env.Checks.Whiteout, o.subject(h.Name), "the whiteout of %q is missing; the lower layers' file shows through", target), "0/0 character device", "absent"))
		} else if Escapes(err) {
			o.add(finding(o.env.Checks.UnsafePath, o.subject(h.Name), "a symlink on the path leads out of the layer directory; it was not followed"))
		} else {
			o.env.problem(o.subject(h.Name), "lstat: %v", err)
		}
		return
	}
	st, _ := StatOf(fi)
	if fi.Mode()&fs.ModeCharDevice == 0 || st.Major != 0 || st.Minor != 0 {
		got := typeName(fi.Mode())
		if fi.Mode()&fs.ModeCharDevice != 0 {
			got = fmt.Sprintf("character device %d,%d", st.Major, st.Minor)
		}
		o.add(with(finding(o.env.Checks.Whiteout, o.subject(h.Name), "the whiteout of %q is not a 0/0 character device", target), "0/0 character device", got))
		return
	}
	if st.UID != o.l.uid(h.Uid) || st.GID != o.l.gid(h.Gid) {
		o.add(with(finding(o.env.Checks.Lstat, o.subject(h.Name), "owner of the whiteout device differs from the tar header"),
			fmt.Sprintf("%d:%d", o.l.uid(h.Uid), o.l.gid(h.Gid)), fmt.Sprintf("%d:%d", st.UID, st.GID)))
	}
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
	o.seen = map[*tnode]bool{}
	fi, err := o.root.Lstat(".")
	if err != nil {
		o.env.problem(report.Subject{Digest: o.l.Digest, Path: o.rootRel}, "walking the layer directory: %v", err)
		return res
	}
	st, _ := StatOf(fi)
	w := &walker{o: o, tree: tree, whited: whited, rootDev: st.Dev, inodes: map[uint64]bool{}}
	if o.env.Layout.OverlayWhiteouts {
		o.walkOpaque(".", ".", nil, "")
	}
	if err := w.dir(o.root, ".", &tree.root); err != nil {
		o.env.problem(report.Subject{Digest: o.l.Digest, Path: o.rootRel}, "walking the layer directory: %v", err)
		return res
	}
	res.dirSize, res.done = w.dirSize, true
	return res
}

// walker walks a layer directory depth first, in name order, each directory
// opened once: its entries are lstat'ed through it (one fstatat each) and
// the tree followed from the directory's node, so no path is resolved from
// the root again.
type walker struct {
	o       *diskObserver
	tree    *pathTree
	whited  map[string]bool
	rootDev uint64
	inodes  map[uint64]bool
	dirSize int64
}

// dir walks the directory dr (path p, tree node node). It returns an error
// only when the layer root itself cannot be listed.
func (w *walker) dir(dr *os.Root, p string, node *tnode) error {
	o := w.o
	f, err := dr.Open(".")
	var names []string
	if err == nil {
		defer f.Close()
		names, err = f.Readdirnames(-1)
	}
	if err != nil {
		if p == "." {
			return err
		}
		o.env.problem(report.Subject{Digest: o.l.Digest, Path: o.rootRel, Entry: p}, "walking the layer directory: %v", err)
		if f == nil {
			return nil
		}
	}
	sort.Strings(names)
	for _, name := range names {
		cp := name
		if p != "." {
			cp = p + "/" + name
		}
		n := node.kids[name]
		// The entries of an overlay layer's own tar were lstat'ed by
		// compare a moment ago: the walk takes that, not a second lstat.
		var fi fs.FileInfo
		var st Stat
		var ns nodeStat
		if n != nil && n.disk != nil && n.hdr == nil {
			ns = *n.disk
		} else {
			var err error
			if fi, err = dr.Lstat(name); err != nil {
				if !errors.Is(err, fs.ErrNotExist) { // else removed while walking (live host)
					o.env.problem(report.Subject{Digest: o.l.Digest, Path: o.rootRel, Entry: cp}, "lstat: %v", err)
				}
				continue
			}
			st, _ = StatOf(fi)
			ns = nodeStat{mode: fi.Mode(), size: fi.Size(), dev: st.Dev, ino: st.Ino, nlink: st.Nlink}
		}
		isDir := ns.mode.IsDir()
		if ns.dev != w.rootDev {
			o.env.problem(report.Subject{Digest: o.l.Digest, Path: o.rootRel, Entry: cp}, "another filesystem is mounted here; not walked")
			continue
		}
		if !isDir && ns.size > 0 {
			if ns.nlink <= 1 || !w.inodes[ns.ino] {
				w.dirSize += ns.size
				if ns.nlink > 1 {
					w.inodes[ns.ino] = true
				}
			}
		}
		if n == nil {
			o.extra(cp, fi, st, w.whited[cp])
			continue
		}
		o.seen[n] = true
		if n.hdr != nil && n.layer != o.self {
			o.compareInherited(w.tree, cp, n, fi, st)
		}
		if !n.explicit && !isDir {
			o.add(with(finding(o.env.Checks.Lstat, o.subject(cp), "a directory the tar's entries need is a %s on disk", typeName(ns.mode)), "directory", typeName(ns.mode)))
		}
		if !isDir {
			continue
		}
		if o.env.Layout.OverlayWhiteouts {
			o.walkOpaque(cp, cp, f, name)
		}
		sub, err := dr.OpenRoot(name)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				o.env.problem(report.Subject{Digest: o.l.Digest, Path: o.rootRel, Entry: cp}, "walking the layer directory: %v", err)
			}
			continue
		}
		err = w.dir(sub, cp, n)
		sub.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// compareInherited compares an entry a full-rootfs layer directory inherited
// from a lower layer with that layer's header: the driver copied it, and the
// layer's own tar, which Docker's diffID check covers, does not list it.
// Compared: type, size, a regular file's bytes (their CRC-64 against the
// lower layer's tar-split record, compareCopy), symlink target, device
// numbers, mode and owner (vfs's CopyDir keeps them, as do btrfs and zfs
// snapshots), and a hardlink's
// identity with its target while no later layer replaced the target (which
// leaves the link on the old inode). Not compared: xattrs, which vfs does not
// copy (it keeps only security.capability), and the mode and owner of files
// with several links, which a later hardlink header may have set.
func (o *diskObserver) compareInherited(tree *pathTree, p string, n *tnode, fi fs.FileInfo, st Stat) {
	h := n.hdr
	from := n.layer + 1
	if h.Typeflag == tar.TypeLink {
		target, ok := CleanEntry(h.Linkname)
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
	known, match := TypeMatches(h.Typeflag, fi.Mode())
	if !known {
		return
	}
	if !match {
		o.mismatchFrom(from, p, "type", TarTypeName(h.Typeflag), typeName(fi.Mode()))
		return
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		switch {
		case h.Size != fi.Size():
			o.mismatchFrom(from, p, "size", fmt.Sprintf("%d bytes", h.Size), fmt.Sprintf("%d bytes", fi.Size()))
		case h.Size > 0 && h.Typeflag != tar.TypeGNUSparse:
			o.compareCopy(p, n, fi, from)
		}
	case tar.TypeSymlink:
		r, base, err := o.lookup(p)
		var target string
		if err == nil {
			target, err = r.Readlink(base)
		}
		switch {
		case err != nil:
			o.env.problem(o.subject(p), "readlink: %v", err)
		case target != h.Linkname:
			o.mismatchFrom(from, p, "symlink target", h.Linkname, target)
		}
	case tar.TypeChar, tar.TypeBlock:
		if st.Major != h.Devmajor || st.Minor != h.Devminor {
			o.mismatchFrom(from, p, "device number", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor), fmt.Sprintf("%d,%d", st.Major, st.Minor))
		}
	}
	if !fi.IsDir() && st.Nlink > 1 {
		return
	}
	a := o.headerAttrs(h, p)
	a.name, a.lower, a.xattrs, a.noXattrs = p, from, nil, true
	o.compareAttrs(a, fi, false)
}

// compareCopy compares the bytes of an inherited copy of a regular file
// with the CRC-64 the tar-split of the lower layer that wrote it records:
// vfs copies every file of the parent, btrfs and zfs share them until
// written, and the layer's own diffID does not cover them, yet they are
// what a container of this layer reads.
func (o *diskObserver) compareCopy(p string, n *tnode, fi fs.FileInfo, from int) {
	dir, base := SplitDirBase(p)
	d, err := o.dirs.dirFile(dir)
	var f *fdFile
	if err == nil {
		f = openRegularAt(d, base, fi)
	}
	if f == nil {
		if err == nil {
			err = errors.New("it is not the regular file the walk found")
		}
		o.env.problem(o.subject(p), "opening the inherited copy to compare its bytes: %v", err)
		return
	}
	defer f.Close()
	if o.buf == nil {
		o.buf = make([]byte, 256<<10)
	}
	crc, size, err := tarsplit.SumFile(f, o.buf)
	switch {
	case err != nil:
		o.env.problem(o.subject(p), "reading the inherited copy: %v", err)
	case crc != n.crc || size != n.hdr.Size:
		o.add(with(finding(o.env.Checks.FileCRC, o.subject(p), "the bytes of this inherited copy differ from the file in %s, which last wrote the path (this layer's diffID does not cover them; its containers read them)", o.lowerName(from-1)),
			fmt.Sprintf("crc64 %016x, %d bytes", n.crc, n.hdr.Size), fmt.Sprintf("crc64 %016x, %d bytes", crc, size)))
	}
}

// extra reports a path on disk the tree does not have.
func (o *diskObserver) extra(p string, fi fs.FileInfo, st Stat, whitedOut bool) {
	what := typeName(fi.Mode())
	if fi.Mode().IsRegular() {
		what += fmt.Sprintf(", %d bytes", fi.Size())
	}
	switch {
	case whitedOut:
		o.add(with(finding(o.env.Checks.Whiteout, o.subject(p), "the layer's tar whites this path out, yet it is present"), "absent", what))
	case o.env.Layout.OverlayWhiteouts && fi.Mode()&fs.ModeCharDevice != 0 && st.Major == 0 && st.Minor == 0:
		o.add(with(finding(o.env.Checks.Whiteout, o.subject(p), "a whiteout device the layer's tar does not have hides the lower layers' file"), "absent", "0/0 character device"))
	default:
		o.add(with(finding(o.env.Checks.ExtraFile, o.subject(p), "the layer directory holds an entry its tar does not have (%s's diffID check cannot see it)", o.env.product()), "absent", what))
	}
}

// walkOpaque reports an opaque marker on a directory the tar does not mark
// opaque; parent, when set, is the open directory holding it as name.
func (o *diskObserver) walkOpaque(dir, entry string, parent *os.File, name string) {
	if !o.env.XattrOK || o.opaque[dir] {
		return
	}
	var ok bool
	var err error
	if parent != nil {
		var x map[string]string
		if x, err = xattrsAt(parent, name, dir); err == nil {
			ok = x["trusted.overlay.opaque"] == "y" || x["user.overlay.opaque"] == "y"
		}
	} else {
		ok, err = o.hasOpaque(dir)
	}
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			o.env.problem(o.subject(entry), "%v", err)
		}
		return
	}
	if ok {
		o.add(with(finding(o.env.Checks.Whiteout, o.subject(entry), "an opaque marker the layer's tar does not have hides the lower layers' directory contents"), "no opaque marker", "overlay opaque xattr y"))
	}
}

// reportUnseen reports entries of lower layers missing from a full-rootfs
// layer directory; this layer's own entries were compared one by one.
func (o *diskObserver) reportUnseen(tree *pathTree, self int) {
	tree.unseen(o.seen, func(p string, n *tnode) {
		if n.layer == self {
			return
		}
		o.add(with(finding(o.env.Checks.MissingFile, o.subject(p), "a %s inherited from a lower layer is not in the layer directory (the layer's rootfs is incomplete)", TarTypeName(n.kind)), TarTypeName(n.kind), "absent"))
	})
}

// sortFindings orders a layer's findings by entry for stable output.
func sortFindings(fs []report.Finding) {
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Subject.Entry < fs[j].Subject.Entry })
}
