package containerd

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// Snapshot files against their layers.
//
// Each committed snapshot of an image's chain is compared with its layer's
// tar as the engine's pass walks it (a verify.DataObserver): every entry is
// lstat'ed in the snapshot, a regular file's bytes are compared with the
// tar's as they pass (each read once), then the snapshot is walked for
// entries the layer does not have. overlayfs snapshots hold the layer's own
// changes (whiteouts as 0/0 character devices, opaque directories with an
// overlay xattr); native snapshots hold the whole tree up to their layer,
// so their walk compares with the merged view of the chain's tars, built
// from the entry lists the passes recorded (each tar read once, each list
// applied once per chain). Inherited entries of native snapshots are
// compared by lstat (type, size, link target, device, mode, owner) and
// their bytes with a hash the pass of their layer took (maphash: the
// comparison stays inside one process).

const maxSnapFindings = 50 // findings per snapshot; more are counted

// snapUser is one image layer a snapshot serves.
type snapUser struct {
	image, platform string
	layer           int
}

// snapCheck is one committed snapshot to compare, shared by every image
// whose chain holds it.
type snapCheck struct {
	sn, ns, key, name string
	dir               string // the snapshot's files
	full              bool   // native: the whole tree; else the layer's changes
	blob              digest.Digest
	blobKey           string // what the layer's pass is keyed by; "" when no local blob
	users             []snapUser
	cmp               *snapCmp
	walked            bool
	unusable          string // the pass's stream is not this layer (deep: diffID differs)
}

// snapFiles is one run of the snapshot file checks.
type snapFiles struct {
	st         *Store
	privileged bool
	xattrOK    bool
	checks     map[string]*snapCheck // snapshotter \x00 backend name
	order      []*snapCheck
	byBlob     map[string][]*snapCheck
	chains     [][]*snapCheck // native chains, base first
	lists      map[string]*entryList
	seed       maphash.Seed

	mu sync.Mutex // guards lists and the checks' cmp while passes run
}

func newSnapFiles(st *Store) *snapFiles {
	return &snapFiles{st: st, privileged: diskcheck.SeesTrustedXattrs(), xattrOK: diskcheck.ProcUsable(),
		checks: map[string]*snapCheck{}, byBlob: map[string][]*snapCheck{}, lists: map[string]*entryList{}, seed: maphash.MakeSeed()}
}

// plan adds the committed snapshots of one image platform's chain, in every
// snapshotter of the namespace whose layout is known, up to the first layer
// whose snapshot is missing (the chain checks report that). blobKey names
// the pass a layer's blob gets ("" when it has none).
func (sf *snapFiles) plan(ns *namespace, image string, hp HostPlatform, blobKey func(HostLayer) string) {
	for _, sn := range sortedKeys(ns.Snapshots) {
		snt := sf.st.snapshotters[sn]
		if snt == nil || !snt.Read {
			continue
		}
		var chain []*snapCheck
		for i, hl := range hp.Layers {
			if hl.ChainID == "" {
				break
			}
			rec := ns.Snapshots[sn][hl.ChainID.String()]
			if rec == nil {
				break
			}
			bs := snt.Snapshots[rec.Name]
			if bs == nil || !bs.HasID || bs.Kind != kindCommitted {
				break
			}
			dir, known := snt.dataDir(bs.ID)
			if !known || !isDir(dir) {
				break
			}
			id := sn + "\x00" + rec.Name
			c := sf.checks[id]
			if c == nil {
				c = &snapCheck{sn: sn, ns: ns.Name, key: hl.ChainID.String(), name: rec.Name, dir: dir, full: sn != "overlayfs", blob: hl.Desc.Digest}
				sf.checks[id] = c
				sf.order = append(sf.order, c)
			}
			if c.blobKey == "" {
				if k := blobKey(hl); k != "" {
					c.blobKey, c.blob = k, hl.Desc.Digest
					sf.byBlob[k] = append(sf.byBlob[k], c)
				}
			}
			u := snapUser{image: image, platform: hp.Platform, layer: i}
			known = false
			for _, have := range c.users {
				known = known || have == u
			}
			if !known {
				c.users = append(c.users, u)
			}
			chain = append(chain, c)
		}
		if len(chain) > 0 && chain[0].full {
			sf.chains = append(sf.chains, chain)
		}
	}
}

// observers returns the observer comparing the snapshots of the layer
// whose pass is keyed by key, or nil.
func (sf *snapFiles) observers(key string) []verify.Observer {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	cs := sf.byBlob[key]
	if len(cs) == 0 {
		return nil
	}
	o := &blobObserver{}
	for _, c := range cs {
		if c.cmp != nil {
			continue // already compared (a blob read twice)
		}
		c.cmp = newSnapCmp(sf, c)
		o.cmps = append(o.cmps, c.cmp)
		if c.full && o.list == nil {
			o.list = &entryList{}
			sf.lists[key] = o.list
			o.hash.SetSeed(sf.seed)
		}
	}
	if len(o.cmps) == 0 {
		return nil
	}
	return []verify.Observer{o}
}

// entryList is a layer tar's entries as the merged view needs them.
type entryList struct {
	entries []entryRec
	done    bool
	err     error
}

// entryRec is one tar entry: kind is the tar type flag, kindWhiteout (path
// is what it deletes) or kindOpaque (path is the directory).
type entryRec struct {
	path         string
	kind         byte
	mode         int64
	uid, gid     int
	size         int64
	link         string
	major, minor int64
	sum          uint64 // maphash of a regular file's bytes
	hasSum       bool
}

const (
	kindWhiteout = 'w'
	kindOpaque   = 'o'
	kindLinkedTo = 'l' // overlayfs: the target of a hardlink, copied up from a lower layer
)

// blobObserver feeds one layer's pass to the comparisons of every snapshot
// of that layer.
type blobObserver struct {
	cmps []*snapCmp
	list *entryList
	// the regular file whose bytes are hashed into list
	hash   maphash.Hash
	hashed int64
	cur    *entryRec
}

func (o *blobObserver) endHash() {
	if o.cur != nil && o.hashed == o.cur.size {
		o.cur.sum, o.cur.hasSum = o.hash.Sum64(), true
	}
	o.cur = nil
}

// Header implements verify.Observer.
func (o *blobObserver) Header(h *tar.Header) {
	clean, ok := diskcheck.CleanEntry(h.Name)
	if o.list != nil {
		o.endHash()
		if ok && clean != "." {
			o.list.entries = append(o.list.entries, recordOf(h, clean))
			if r := &o.list.entries[len(o.list.entries)-1]; r.kind == tar.TypeReg {
				o.cur, o.hashed = r, 0
				o.hash.Reset()
			}
		}
	}
	for _, c := range o.cmps {
		c.header(h, clean, ok)
	}
}

// Data implements verify.DataObserver.
func (o *blobObserver) Data(p []byte) {
	if o.cur != nil {
		o.hash.Write(p)
		o.hashed += int64(len(p))
	}
	for _, c := range o.cmps {
		c.data(p)
	}
}

// End implements verify.DataObserver.
func (o *blobObserver) End(err error) {
	if o.list != nil {
		o.endHash()
		o.list.done, o.list.err = true, err
	}
	for _, c := range o.cmps {
		c.end(err)
	}
}

func recordOf(h *tar.Header, clean string) entryRec {
	dir, base := diskcheck.SplitDirBase(clean)
	switch {
	case base == diskcheck.WhOpaque:
		return entryRec{path: dir, kind: kindOpaque}
	case strings.HasPrefix(base, diskcheck.WhPrefix):
		return entryRec{path: joinPath(dir, base[len(diskcheck.WhPrefix):]), kind: kindWhiteout}
	}
	kind := h.Typeflag // archive/tar reports the legacy NUL regular type as TypeReg
	r := entryRec{path: clean, kind: kind, mode: h.Mode & 07777, uid: h.Uid, gid: h.Gid, size: h.Size, major: h.Devmajor, minor: h.Devminor}
	if kind == tar.TypeSymlink || kind == tar.TypeLink {
		r.link = h.Linkname
	}
	return r
}

func joinPath(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

// snapCmp compares one snapshot with its layer.
type snapCmp struct {
	sf       *snapFiles
	c        *snapCheck
	root     *os.Root
	dirs     diskcheck.RootCache
	tree     *ptree          // overlayfs: this layer's entries
	opaque   map[string]bool // overlayfs: directories the layer marks opaque
	inodes   map[uint64]*fattrs
	fl       []report.Finding
	more     int
	problems []report.Problem
	ended    bool
	endErr   error

	// the regular file whose bytes are being compared
	f      *os.File
	fname  string
	off    int64
	diffAt int64
	buf    []byte
}

// fattrs are the header fields applied to an inode: a later hardlink
// header sets mode, owner and xattrs of the inode it shares, so files with
// several links are compared at the end.
type fattrs struct {
	name, clean string
	mode        int64
	uid, gid    int
	xattrs      map[string]string
}

func newSnapCmp(sf *snapFiles, c *snapCheck) *snapCmp {
	sc := &snapCmp{sf: sf, c: c, opaque: map[string]bool{}}
	if !c.full {
		sc.tree = newPtree()
	}
	r, err := os.OpenRoot(c.dir)
	if err != nil {
		sc.problem("", "opening the snapshot directory: %v", err)
		return sc
	}
	sc.root = r
	sc.dirs = diskcheck.RootCache{Root: r}
	return sc
}

func (s *snapCmp) subject(entry string) report.Subject {
	u := s.c.users[0]
	return report.Subject{Image: u.image, Platform: u.platform, Layer: report.LayerIndex(u.layer), Digest: s.c.key, Path: s.c.dir, Entry: entry}
}

func (s *snapCmp) problem(entry, format string, args ...any) {
	if len(s.problems) < maxSnapFindings {
		s.problems = append(s.problems, report.Problem{Subject: s.subject(entry), Message: fmt.Sprintf(format, args...)})
	}
}

func (s *snapCmp) add(check report.Check, entry, msg, want, got string) {
	if len(s.fl) >= maxSnapFindings {
		s.more++
		return
	}
	s.fl = append(s.fl, report.Finding{Check: check, Severity: report.SeverityOf(check), Subject: s.subject(entry), Message: msg, Expected: want, Actual: got})
}

func (s *snapCmp) lstat(clean string) (fs.FileInfo, error) {
	if clean == "." {
		return s.root.Lstat(".")
	}
	r, base, err := s.dirs.Lookup(clean)
	if err != nil {
		return nil, err
	}
	return r.Lstat(base)
}

func (s *snapCmp) header(h *tar.Header, clean string, ok bool) {
	s.endData()
	if !ok || clean == "." || s.root == nil || s.ended {
		return
	}
	dir, base := diskcheck.SplitDirBase(clean)
	if strings.HasPrefix(base, diskcheck.WhPrefix) {
		if s.c.full {
			return // applied as deletions: the walk checks them against the merged view
		}
		if base == diskcheck.WhOpaque {
			s.opaque[dir] = true
			s.tree.ensure(dir, 0)
			s.checkOpaque(dir, h.Name)
			return
		}
		target := joinPath(dir, base[len(diskcheck.WhPrefix):])
		s.tree.add(target, &entryRec{path: target, kind: kindWhiteout}, 0)
		s.checkWhiteout(target, h)
		return
	}
	if s.tree != nil {
		rec := recordOf(h, clean)
		s.tree.add(clean, &rec, 0)
		if h.Typeflag == tar.TypeLink {
			if t, ok := diskcheck.CleanEntry(h.Linkname); ok && s.tree.lookup(t) == nil {
				s.tree.add(t, &entryRec{path: t, kind: kindLinkedTo}, 0)
			}
		}
	}
	s.compare(h, clean)
}

// missing files a tar entry that lstat did not find.
func (s *snapCmp) lstatErr(name, what string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		s.add(CheckSnapshotFileMissing, name, fmt.Sprintf("the layer's %s is not in the snapshot", what), what, "absent")
	case diskcheck.Escapes(err):
		s.add(CheckSnapshotFileType, name, "a symlink on the path leads out of the snapshot; it was not followed", "a path inside the snapshot", "a symlink leading out")
	default:
		s.problem(name, "lstat: %v", err)
	}
}

func (s *snapCmp) compare(h *tar.Header, clean string) {
	fi, err := s.lstat(clean)
	if err != nil {
		s.lstatErr(h.Name, diskcheck.TarTypeName(h.Typeflag), err)
		return
	}
	st, ok := diskcheck.StatOf(fi)
	if !ok {
		return
	}
	if h.Typeflag == tar.TypeLink {
		s.checkHardlink(h, clean, fi)
		return
	}
	known, match := diskcheck.TypeMatches(h.Typeflag, fi.Mode())
	if !known {
		return
	}
	if !match {
		s.add(CheckSnapshotFileType, h.Name, "the entry is of another type in the snapshot than in the layer", diskcheck.TarTypeName(h.Typeflag), diskcheck.TypeName(fi.Mode()))
		return
	}
	switch h.Typeflag {
	case tar.TypeReg:
		switch {
		case h.Size != fi.Size():
			s.add(CheckSnapshotFileContent, h.Name, "the file's size in the snapshot differs from the layer's", fmt.Sprintf("%d bytes", h.Size), fmt.Sprintf("%d bytes", fi.Size()))
		case h.Size > 0:
			s.openData(h.Name, clean)
		}
	case tar.TypeSymlink:
		r, base, err := s.dirs.Lookup(clean)
		var target string
		if err == nil {
			target, err = r.Readlink(base)
		}
		switch {
		case err != nil:
			s.problem(h.Name, "readlink: %v", err)
		case target != h.Linkname:
			s.add(CheckSnapshotFileAttr, h.Name, "the symlink's target differs from the layer's", h.Linkname, target)
		}
	case tar.TypeChar, tar.TypeBlock:
		if st.Major != h.Devmajor || st.Minor != h.Devminor {
			s.add(CheckSnapshotFileAttr, h.Name, "the device number differs from the layer's", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor), fmt.Sprintf("%d,%d", st.Major, st.Minor))
		}
	}
	a := &fattrs{name: h.Name, clean: clean, mode: h.Mode & 07777, uid: h.Uid, gid: h.Gid, xattrs: diskcheck.HeaderXattrs(h, s.sf.privileged)}
	if !fi.IsDir() && st.Nlink > 1 {
		if s.inodes == nil {
			s.inodes = map[uint64]*fattrs{}
		}
		s.inodes[st.Ino] = a
		return
	}
	s.compareAttrs(a, fi)
}

// compareAttrs compares mode, owner and xattrs (symlinks: owner only).
func (s *snapCmp) compareAttrs(a *fattrs, fi fs.FileInfo) {
	st, _ := diskcheck.StatOf(fi)
	isLink := fi.Mode()&fs.ModeSymlink != 0
	if got := diskcheck.UnixPerm(fi.Mode()); !isLink && a.mode != got {
		s.add(CheckSnapshotFileAttr, a.name, "the mode differs from the layer's", fmt.Sprintf("%04o", a.mode), fmt.Sprintf("%04o", got))
	}
	if a.uid != st.UID || a.gid != st.GID {
		s.add(CheckSnapshotFileAttr, a.name, "the owner differs from the layer's", fmt.Sprintf("%d:%d", a.uid, a.gid), fmt.Sprintf("%d:%d", st.UID, st.GID))
	}
	if !isLink && a.xattrs != nil && s.sf.xattrOK {
		s.compareXattrs(a)
	}
}

func (s *snapCmp) compareXattrs(a *fattrs) {
	r, base, err := s.dirs.Lookup(a.clean)
	var got map[string]string
	if err == nil {
		got, err = diskcheck.Xattrs(r, base)
	}
	if err != nil {
		s.problem(a.name, "%v", err)
		return
	}
	for k := range got {
		if diskcheck.IgnoredXattr(k) || (strings.HasPrefix(k, "trusted.") && !s.sf.privileged) {
			delete(got, k)
		}
	}
	for _, k := range sortedKeys(a.xattrs) {
		if g, ok := got[k]; !ok || g != a.xattrs[k] {
			shown := "absent"
			if ok {
				shown = fmt.Sprintf("%q", g)
			}
			s.add(CheckSnapshotFileAttr, a.name, "xattr "+k+" differs from the layer's", fmt.Sprintf("%q", a.xattrs[k]), shown)
		}
	}
	for _, k := range sortedKeys(got) {
		if _, ok := a.xattrs[k]; !ok {
			s.add(CheckSnapshotFileAttr, a.name, "xattr "+k+" is not in the layer", "absent", fmt.Sprintf("%q", got[k]))
		}
	}
}

// checkHardlink: a hardlink is the inode of its target, and its header sets
// that inode's mode, owner and xattrs.
func (s *snapCmp) checkHardlink(h *tar.Header, clean string, fi fs.FileInfo) {
	target, ok := diskcheck.CleanEntry(h.Linkname)
	if !ok {
		return // the pass reports a link target climbing out of the root
	}
	tfi, err := s.lstat(target)
	if err != nil {
		s.add(CheckSnapshotFileAttr, h.Name, "the hardlink's target is not in the snapshot", target+" (same file)", "target absent")
		return
	}
	if !os.SameFile(fi, tfi) {
		s.add(CheckSnapshotFileAttr, h.Name, "the hardlink is not the same file as its target", "the same inode as "+target, "another file")
		return
	}
	st, _ := diskcheck.StatOf(tfi)
	rec := s.inodes[st.Ino]
	if rec == nil {
		if s.inodes == nil {
			s.inodes = map[uint64]*fattrs{}
		}
		// The target came from a lower layer: this header sets the inode's attributes.
		rec = &fattrs{name: h.Name, clean: clean}
		s.inodes[st.Ino] = rec
	}
	if tfi.Mode()&fs.ModeSymlink == 0 {
		rec.mode = h.Mode & 07777
	}
	rec.uid, rec.gid = h.Uid, h.Gid
	if rec.xattrs == nil {
		rec.xattrs = map[string]string{}
	}
	for k, v := range diskcheck.HeaderXattrs(h, s.sf.privileged) {
		rec.xattrs[k] = v
	}
}

// flushInodes compares the deferred attributes of files with several links.
func (s *snapCmp) flushInodes() {
	recs := make([]*fattrs, 0, len(s.inodes))
	for _, a := range s.inodes {
		recs = append(recs, a)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].name < recs[j].name })
	for _, a := range recs {
		if fi, err := s.lstat(a.clean); err == nil {
			s.compareAttrs(a, fi)
		}
	}
	s.inodes = nil
}

// open opens a regular file of the snapshot for reading (never following
// a symlink, never blocking); a failure is a problem.
func (s *snapCmp) open(name, clean string) *os.File {
	r, base, err := s.dirs.Lookup(clean)
	var f *os.File
	if err == nil {
		f, err = r.OpenFile(base, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	}
	if err != nil {
		s.problem(name, "opening the file: %v", err)
		return nil
	}
	return f
}

// openData starts comparing a regular file's bytes with the entry's.
func (s *snapCmp) openData(name, clean string) {
	if f := s.open(name, clean); f != nil {
		s.f, s.fname, s.off, s.diffAt = f, name, 0, -1
	}
}

func (s *snapCmp) data(p []byte) {
	if s.f == nil {
		return
	}
	if cap(s.buf) < len(p) {
		s.buf = make([]byte, len(p))
	}
	b := s.buf[:len(p)]
	if s.diffAt < 0 {
		n, _ := io.ReadFull(s.f, b)
		if n < len(p) || !bytes.Equal(b, p) {
			i := 0
			for i < n && b[i] == p[i] {
				i++
			}
			s.diffAt = s.off + int64(i)
		}
	}
	s.off += int64(len(p))
}

// endData finishes the regular file being compared.
func (s *snapCmp) endData() {
	if s.f == nil {
		return
	}
	s.f.Close()
	s.f = nil
	if s.diffAt >= 0 {
		s.add(CheckSnapshotFileContent, s.fname, "the file's bytes differ from the layer's (same size)",
			"the layer's content", fmt.Sprintf("differs from byte %d on", s.diffAt))
	}
}

// end is called when the layer's pass stops; overlayfs snapshots are then
// walked for entries the layer does not have (native ones later, with the
// merged view).
func (s *snapCmp) end(err error) {
	s.endData()
	s.ended, s.endErr = true, err
	if s.root == nil {
		return
	}
	s.flushInodes()
	if err == nil && !s.c.full {
		s.walkDiff()
	}
	if s.c.full {
		return // the merged-view walk still needs the root
	}
	s.close()
}

func (s *snapCmp) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if s.root != nil {
		s.dirs.Close()
		s.root.Close()
		s.root = nil
	}
}

// checkOpaque: overlayfs marks a directory opaque with an xattr.
func (s *snapCmp) checkOpaque(dir, name string) {
	if !s.sf.xattrOK {
		return
	}
	ok, err := s.hasOpaque(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.add(CheckSnapshotFileMissing, name, "the directory the layer marks opaque is not in the snapshot", "directory "+dir, "absent")
	case err != nil:
		s.problem(name, "%v", err)
	case !ok && s.sf.privileged:
		s.add(CheckSnapshotFileWhiteout, name, "the directory the layer marks opaque has no opaque marker: the lower layers' files show through it",
			"trusted.overlay.opaque=y (or user.overlay.opaque=y) on "+dir, "absent")
	}
}

func (s *snapCmp) hasOpaque(dir string) (bool, error) {
	if dir == "." {
		return diskcheck.HasOpaque(s.root, ".")
	}
	r, base, err := s.dirs.Lookup(dir)
	if err != nil {
		return false, err
	}
	return diskcheck.HasOpaque(r, base)
}

// checkWhiteout: overlayfs turns .wh.<name> into a 0/0 character device
// owned by the entry's uid and gid.
func (s *snapCmp) checkWhiteout(target string, h *tar.Header) {
	fi, err := s.lstat(target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			s.add(CheckSnapshotFileWhiteout, h.Name, fmt.Sprintf("the whiteout of %q is missing: the lower layers' file shows through", target), "0/0 character device", "absent")
		} else {
			s.lstatErr(h.Name, "whiteout", err)
		}
		return
	}
	st, _ := diskcheck.StatOf(fi)
	if !diskcheck.IsWhiteoutDevice(fi, st) {
		got := diskcheck.TypeName(fi.Mode())
		if fi.Mode()&fs.ModeCharDevice != 0 {
			got = fmt.Sprintf("character device %d,%d", st.Major, st.Minor)
		}
		s.add(CheckSnapshotFileWhiteout, h.Name, fmt.Sprintf("the whiteout of %q is not a 0/0 character device: the layer's deletion is undone", target), "0/0 character device", got)
		return
	}
	if st.UID != h.Uid || st.GID != h.Gid {
		s.add(CheckSnapshotFileAttr, h.Name, "the owner of the whiteout device differs from the layer's", fmt.Sprintf("%d:%d", h.Uid, h.Gid), fmt.Sprintf("%d:%d", st.UID, st.GID))
	}
}

// walkDiff walks an overlayfs snapshot for what its layer does not have:
// entries, whiteout devices and opaque markers.
func (s *snapCmp) walkDiff() {
	s.walk(func(p string, fi fs.FileInfo, st diskcheck.Stat) bool {
		n := s.tree.lookup(p)
		if n == nil {
			what := describe(fi)
			if diskcheck.IsWhiteoutDevice(fi, st) {
				s.add(CheckSnapshotFileWhiteout, p, "a whiteout the layer does not have hides the lower layers' file", "absent", "0/0 character device")
			} else {
				s.add(CheckSnapshotFileExtra, p, "the snapshot holds an entry its layer does not have", "absent", what)
			}
			return false
		}
		if n.rec == nil && !fi.IsDir() {
			s.add(CheckSnapshotFileType, p, "a directory the layer's entries need is another type in the snapshot", "directory", diskcheck.TypeName(fi.Mode()))
		}
		if fi.IsDir() {
			s.walkOpaque(p)
		}
		return true
	})
}

// walkOpaque reports an opaque marker on a directory the layer does not mark opaque.
func (s *snapCmp) walkOpaque(dir string) {
	if !s.sf.xattrOK || s.opaque[dir] {
		return
	}
	ok, err := diskcheck.HasOpaque(s.root, dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.problem(dir, "%v", err)
		}
		return
	}
	if ok {
		s.add(CheckSnapshotFileWhiteout, dir, "an opaque marker the layer does not have hides the lower layers' directory contents", "no opaque marker", "overlay opaque xattr y")
	}
}

func describe(fi fs.FileInfo) string {
	what := diskcheck.TypeName(fi.Mode())
	if fi.Mode().IsRegular() {
		what += fmt.Sprintf(", %d bytes", fi.Size())
	}
	return what
}

// walk lists the snapshot directory (the root too, as "."), not crossing
// into another filesystem; fn returns false to skip a directory's contents.
func (s *snapCmp) walk(fn func(p string, fi fs.FileInfo, st diskcheck.Stat) bool) {
	var rootDev uint64
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			s.problem(p, "walking the snapshot: %v", err)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.problem(p, "lstat: %v", err)
			}
			return nil
		}
		st, _ := diskcheck.StatOf(fi)
		if p == "." {
			rootDev = st.Dev
			if !s.c.full {
				s.walkOpaque(".")
			}
			return nil
		}
		if st.Dev != rootDev {
			s.problem(p, "another filesystem is mounted here; not walked")
			if fi.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !fn(p, fi, st) && fi.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		s.problem("", "walking the snapshot: %v", err)
	}
}

// finish completes the run: native snapshots are walked against the merged
// view of their chains, then every snapshot's findings are added to b in
// plan order, with information on snapshots that could not be compared.
func (sf *snapFiles) finish(b *report.Builder) {
	for _, chain := range sf.chains {
		sf.walkChain(chain)
	}
	for _, c := range sf.order {
		s := c.cmp
		subj := report.Subject{Image: c.users[0].image, Platform: c.users[0].platform, Layer: report.LayerIndex(c.users[0].layer), Digest: c.key, Path: c.dir}
		note := func(msg string) {
			b.Add(report.Finding{Check: CheckSnapshotFileUnchecked, Severity: report.SeverityOf(CheckSnapshotFileUnchecked), Subject: subj, Message: msg + sf.usedBy(c)})
		}
		switch {
		case s == nil && c.blobKey == "":
			note(fmt.Sprintf("the layer blob %s is not in the content store (discarded after unpacking?): the %s snapshot's files could not be checked locally; `layercheck compare host --deep` compares them with the registry's blob", c.blob, c.sn))
			continue
		case s == nil:
			note(fmt.Sprintf("the layer blob %s could not be read: the %s snapshot's files were not compared", c.blob, c.sn))
			continue
		case c.unusable != "":
			note(c.unusable)
			s.close()
			continue
		case !s.ended:
			note("the layer's tar could not be read: the snapshot's files were not compared")
		case s.endErr != nil:
			note(fmt.Sprintf("the layer's tar could be read only in part (%v): the snapshot's files were compared up to there, and not searched for extra entries", s.endErr))
		}
		s.close()
		sort.SliceStable(s.fl, func(i, j int) bool { return s.fl[i].Subject.Entry < s.fl[j].Subject.Entry })
		for _, f := range s.fl {
			f.Message += sf.usedBy(c)
			b.Add(f)
		}
		if s.more > 0 {
			b.Add(report.Finding{Check: CheckSnapshotFileContent, Severity: report.SeverityOf(CheckSnapshotFileContent), Subject: subj,
				Message: fmt.Sprintf("%d more differences in this snapshot were not listed (the first %d are)", s.more, maxSnapFindings) + sf.usedBy(c)})
		}
		for _, p := range s.problems {
			b.Problem(p.Subject, "%s", p.Message)
		}
	}
}

// usedBy names the snapshot and every image layer it serves, for messages.
func (sf *snapFiles) usedBy(c *snapCheck) string {
	var us []string
	for _, u := range c.users {
		us = append(us, fmt.Sprintf("%s %s layer %d", u.image, u.platform, u.layer))
	}
	return fmt.Sprintf(" [%s snapshot %s; used by %s]", c.sn, c.name, strings.Join(us, ", "))
}

// walkChain builds the merged view of a native chain, base first, and
// walks each snapshot of it not walked yet against the view up to its layer.
func (sf *snapFiles) walkChain(chain []*snapCheck) {
	tree := newPtree()
	for i, c := range chain {
		list := sf.lists[c.blobKey]
		if c.blobKey == "" || list == nil || !list.done || list.err != nil || c.unusable != "" {
			// Without this layer's entries no snapshot above can be walked.
			for _, up := range chain[i+1:] {
				if !up.walked && up.cmp != nil && up.cmp.ended && up.cmp.endErr == nil {
					up.walked = true
					up.cmp.problem("", "the snapshot was not searched for extra or missing inherited entries: the entries of layer %d of the chain (%s) are not known", i, report.Short(c.key))
				}
			}
			return
		}
		whited := tree.apply(list, i)
		if c.walked || c.cmp == nil || c.cmp.root == nil || !c.cmp.ended || c.cmp.endErr != nil {
			continue
		}
		c.walked = true
		c.cmp.walkFull(tree, i, whited)
	}
}

// walkFull walks a native snapshot against the merged view: entries the
// chain does not have, entries inherited from lower layers compared by
// lstat, and inherited entries missing.
func (s *snapCmp) walkFull(tree *ptree, self int, whited map[string]bool) {
	tree.gen++
	gen := tree.gen
	s.walk(func(p string, fi fs.FileInfo, st diskcheck.Stat) bool {
		n := tree.lookup(p)
		if n == nil {
			if whited[p] {
				s.add(CheckSnapshotFileWhiteout, p, "the layer deletes this path (a whiteout), yet it is in the snapshot", "absent", describe(fi))
			} else {
				s.add(CheckSnapshotFileExtra, p, "the snapshot holds an entry none of its chain's layers has", "absent", describe(fi))
			}
			return false
		}
		n.gen = gen
		switch {
		case n.rec == nil:
			if !fi.IsDir() {
				s.add(CheckSnapshotFileType, p, "a directory the layers' entries need is another type in the snapshot", "directory", diskcheck.TypeName(fi.Mode()))
				return false
			}
		case n.layer != self:
			s.compareInherited(tree, p, n, fi, st)
		}
		return true
	})
	tree.unseen(gen, func(p string, n *pnode) {
		if n.layer == self {
			return // the pass reported the layer's own entries
		}
		what := "directory"
		if n.rec != nil {
			what = diskcheck.TarTypeName(n.rec.kind)
		}
		s.add(CheckSnapshotFileMissing, p, fmt.Sprintf("the %s, inherited from layer %d of the chain, is not in the snapshot", what, n.layer), what, "absent")
	})
}

// compareInherited compares an entry the native snapshotter copied from
// the snapshot below with the header of the layer that last wrote it:
// type, size, link target, device, mode and owner (not the bytes).
func (s *snapCmp) compareInherited(tree *ptree, p string, n *pnode, fi fs.FileInfo, st diskcheck.Stat) {
	r := n.rec
	from := fmt.Sprintf(" (inherited from layer %d of the chain)", n.layer)
	if r.kind == tar.TypeLink {
		target, ok := diskcheck.CleanEntry(r.link)
		if !ok {
			return
		}
		if tn := tree.lookup(target); tn == nil || tn.layer != n.layer {
			return // the target was replaced above the link's layer
		}
		if tfi, err := s.lstat(target); err != nil || !os.SameFile(fi, tfi) {
			s.add(CheckSnapshotFileAttr, p, "the hardlink is not the same file as its target"+from, "the same inode as "+target, "another file")
		}
		return
	}
	known, match := diskcheck.TypeMatches(r.kind, fi.Mode())
	if !known {
		return
	}
	if !match {
		s.add(CheckSnapshotFileType, p, "the entry is of another type than in the layer"+from, diskcheck.TarTypeName(r.kind), diskcheck.TypeName(fi.Mode()))
		return
	}
	switch r.kind {
	case tar.TypeReg:
		if r.size != fi.Size() {
			s.add(CheckSnapshotFileContent, p, "the file's size differs from the layer's"+from, fmt.Sprintf("%d bytes", r.size), fmt.Sprintf("%d bytes", fi.Size()))
		} else if r.hasSum {
			s.compareSum(p, r, from)
		}
	case tar.TypeSymlink:
		rt, base, err := s.dirs.Lookup(p)
		var target string
		if err == nil {
			target, err = rt.Readlink(base)
		}
		if err == nil && target != r.link {
			s.add(CheckSnapshotFileAttr, p, "the symlink's target differs from the layer's"+from, r.link, target)
		}
	case tar.TypeChar, tar.TypeBlock:
		if st.Major != r.major || st.Minor != r.minor {
			s.add(CheckSnapshotFileAttr, p, "the device number differs from the layer's"+from, fmt.Sprintf("%d,%d", r.major, r.minor), fmt.Sprintf("%d,%d", st.Major, st.Minor))
		}
	}
	if !fi.IsDir() && st.Nlink > 1 {
		return // a later hardlink header may have set them
	}
	if got := diskcheck.UnixPerm(fi.Mode()); fi.Mode()&fs.ModeSymlink == 0 && got != r.mode {
		s.add(CheckSnapshotFileAttr, p, "the mode differs from the layer's"+from, fmt.Sprintf("%04o", r.mode), fmt.Sprintf("%04o", got))
	}
	if st.UID != r.uid || st.GID != r.gid {
		s.add(CheckSnapshotFileAttr, p, "the owner differs from the layer's"+from, fmt.Sprintf("%d:%d", r.uid, r.gid), fmt.Sprintf("%d:%d", st.UID, st.GID))
	}
}

// compareSum hashes an inherited regular file and compares it with the
// hash its layer's pass took.
func (s *snapCmp) compareSum(p string, r *entryRec, from string) {
	f := s.open(p, p)
	if f == nil {
		return
	}
	defer f.Close()
	var h maphash.Hash
	h.SetSeed(s.sf.seed)
	if _, err := io.Copy(&h, f); err != nil {
		s.problem(p, "reading the file: %v", err)
		return
	}
	if h.Sum64() != r.sum {
		s.add(CheckSnapshotFileContent, p, "the file's bytes differ from the layer's (same size)"+from, "the layer's content", "other bytes")
	}
}

// ptree is a tree of paths: a layer's own entries (overlayfs) or the
// merged view of a chain (native).
type ptree struct {
	root pnode
	gen  int
}

type pnode struct {
	kids  map[string]*pnode
	rec   *entryRec // nil: a directory only implied by entries below it
	layer int       // chain index of the layer that last wrote it
	gen   int       // the walk that last saw it
}

func newPtree() *ptree { return &ptree{} }

func splitPath(p string) []string {
	if p == "." || p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func (t *ptree) ensure(p string, layer int) *pnode {
	n := &t.root
	for _, c := range splitPath(p) {
		if n.kids == nil {
			n.kids = map[string]*pnode{}
		}
		k := n.kids[c]
		if k == nil {
			k = &pnode{layer: layer}
			n.kids[c] = k
		}
		n = k
	}
	return n
}

func (t *ptree) add(p string, rec *entryRec, layer int) {
	n := t.ensure(p, layer)
	if n != &t.root {
		n.rec, n.layer = rec, layer
	}
}

func (t *ptree) lookup(p string) *pnode {
	n := &t.root
	for _, c := range splitPath(p) {
		n = n.kids[c]
		if n == nil {
			return nil
		}
	}
	return n
}

func (t *ptree) remove(p string) {
	parts := splitPath(p)
	if len(parts) == 0 {
		return
	}
	if parent := t.lookup(strings.Join(parts[:len(parts)-1], "/")); parent != nil {
		delete(parent.kids, parts[len(parts)-1])
	}
}

// apply adds layer idx's entries to the merged view as containerd's
// applier does for a native snapshot: a whiteout deletes its path, an
// opaque directory loses what lower layers put in it, a non-directory
// replaces a directory and everything below. It returns the paths the
// layer whites out.
func (t *ptree) apply(list *entryList, idx int) map[string]bool {
	whited := map[string]bool{}
	for i := range list.entries {
		r := &list.entries[i]
		switch r.kind {
		case kindOpaque:
			if n := t.lookup(r.path); n != nil {
				for k, c := range n.kids {
					if c.layer != idx {
						delete(n.kids, k)
					}
				}
			}
		case kindWhiteout:
			t.remove(r.path)
			whited[r.path] = true
		default:
			if n := t.lookup(r.path); n != nil && r.kind != tar.TypeDir {
				n.kids = nil
			}
			t.add(r.path, r, idx)
			delete(whited, r.path)
		}
	}
	return whited
}

// unseen calls fn, in path order, for each node the walk gen did not see
// whose parent it saw; nothing below an unseen node is reported.
func (t *ptree) unseen(gen int, fn func(p string, n *pnode)) {
	var walk func(prefix string, n *pnode)
	walk = func(prefix string, n *pnode) {
		for _, k := range sortedKeys(n.kids) {
			c := n.kids[k]
			p := joinPath(prefix, k)
			if c.gen != gen {
				fn(p, c)
				continue
			}
			walk(p, c)
		}
	}
	walk(".", &t.root)
}

// planSnapshots lists the committed snapshots of the audited images, once:
// when the first layer pass starts (the verifier has read every manifest
// and config by then, so nothing is read again) or after the verifier.
func (a *auditor) planSnapshots() {
	a.snapOnce.Do(func() {
		rs := *a.st
		rs.small = a.small
		for i := range a.targets {
			t := &a.targets[i]
			h := &HostImage{Namespace: t.ns.Name, Name: t.img.Name}
			rs.resolve(h, t.img.Target, "", 0)
			for _, hp := range h.Platforms {
				if !a.platformSelected(hp.Platform) {
					continue
				}
				a.snap.plan(t.ns, t.name, hp, func(hl HostLayer) string {
					if f := a.st.files[hl.Desc.Digest]; f != nil {
						return f.Path
					}
					return ""
				})
			}
		}
	})
}

// activeSnapshots reports the size of every container's writable
// snapshot: writes there are the container's, not damage.
func (a *auditor) activeSnapshots() {
	for _, n := range a.st.selected {
		ns := a.st.meta.Namespaces[n]
		for _, sn := range sortedKeys(ns.Snapshots) {
			snt := a.st.snapshotters[sn]
			if snt == nil || !snt.Read {
				continue
			}
			for _, key := range sortedKeys(ns.Snapshots[sn]) {
				bs := snt.Snapshots[ns.Snapshots[sn][key].Name]
				if bs == nil || bs.Kind != kindActive || !bs.HasID {
					continue
				}
				dir, known := snt.dataDir(bs.ID)
				if !known || !isDir(dir) {
					continue
				}
				size := diskUsage(dir)
				a.add(CheckSnapshotFileActive, report.Subject{Path: dir, Entry: key},
					fmt.Sprintf("active %s snapshot %s (a container's writable layer) holds %d bytes of regular files; it is not compared with any layer", sn, bs.Name, size), "", fmt.Sprint(size))
			}
		}
	}
}
