package dockertest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/layercheck/layercheck/store/storetest"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one tar entry of a test layer.
type Entry struct {
	Name     string
	Type     byte
	Data     []byte
	Mode     int64
	Link     string
	UID, GID int
	Xattrs   map[string]string
}

// Reg is a regular file entry.
func Reg(name, data string, mode int64) Entry {
	return Entry{Name: name, Type: tar.TypeReg, Data: []byte(data), Mode: mode}
}

// Dir is a directory entry.
func Dir(name string, mode int64) Entry { return Entry{Name: name, Type: tar.TypeDir, Mode: mode} }

// Symlink is a symlink entry.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Link: target, Mode: 0o777}
}

// Hardlink is a hardlink entry (mode 0640); target is an earlier entry's
// name. Docker's unpack applies a hardlink header's mode and owner to the
// inode it shares with its target.
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Link: target, Mode: 0o640}
}

// Whiteout is a whiteout (".wh.<name>") or opaque (".wh..wh..opq") entry;
// name is the full entry name.
func Whiteout(name string) Entry { return Entry{Name: name, Type: tar.TypeReg, Mode: 0o600} }

// LayerSpec describes a layer to build.
type LayerSpec struct {
	Key     string
	Parent  string // key of the parent layer; "" for a base layer
	Entries []Entry
}

// ImageSpec describes an image to build from built layers.
type ImageSpec struct {
	Key          string
	Refs         []string // repositories.json references, the first names the image
	Layers       []string // layer keys, base first
	EmptyHistory int      // empty_layer history entries added
	Parent       string   // image key written as imagedb metadata parent
}

// StoreSpec describes a data root.
type StoreSpec struct {
	Driver    string // overlay2, fuse-overlayfs, vfs or btrfs
	Layers    []LayerSpec
	Images    []ImageSpec
	Container string // image key a container runs; "" for none
	BuildKit  bool   // add a snapshots.db owning one driver directory
}

// Layer is a built layer.
type Layer struct {
	Key      string
	Tar      []byte // the layer tar
	DiffID   digest.Digest
	ChainID  digest.Digest
	CacheID  string
	Link     string // overlay link ID
	Parent   *Layer
	SumSize  int64  // Σ header sizes
	LayerDB  string // layerdb directory, relative to the root
	Dir      string // the layer root (overlay2/<id>/diff, vfs/dir/<id>), relative to the root
	children int
}

// Image is a built image.
type Image struct {
	Key    string
	ID     digest.Digest
	Config []byte
	Refs   []string
	Layers []*Layer
}

// Store is a built data root.
type Store struct {
	Root       string
	Driver     string
	Privileged bool // built as root: owners, whiteout devices and trusted xattrs are real
	Layers     map[string]*Layer
	Images     map[string]*Image
	CtrID      string // the container's ID
	MountID    string // its RW layer's mount-id
	BuildKitID string // the snapshot key of BuildKit's driver directory
}

// Path returns the absolute path of rel (slash-separated, relative to the root).
func (s *Store) Path(rel string) string { return filepath.Join(s.Root, filepath.FromSlash(rel)) }

// ImageRel is "image/<driver>".
func (s *Store) ImageRel() string { return "image/" + s.Driver }

func HexID(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:])
}

func LinkID(seed string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	h := sha256.Sum256([]byte("link" + seed))
	b := make([]byte, 26)
	for i := range b {
		b[i] = alpha[int(h[i])%32]
	}
	return string(b)
}

// owner is the uid/gid written into headers: 0 as root, else our own, so an
// unprivileged unpack reproduces them.
func owner(privileged bool) (int, int) {
	if privileged {
		return 0, 0
	}
	return os.Getuid(), os.Getgid()
}

func IsRoot() bool { return os.Geteuid() == 0 }

// DefaultSpec is the store most tests use: two images sharing a base layer,
// a whiteout and opaque layer (overlay2 needs root for it), a legacy ADD
// layer without directory entries, a container and BuildKit data.
func DefaultSpec(driver string, privileged bool) StoreSpec {
	uid, gid := owner(privileged)
	rnd := rand.New(rand.NewSource(1))
	tool := make([]byte, 100<<10)
	rnd.Read(tool)
	l0 := []Entry{
		Dir("bin/", 0o755),
		{Name: "bin/tool", Type: tar.TypeReg, Data: tool, Mode: 0o755},
		Dir("etc/", 0o755),
		Reg("etc/hello", "hello world\n", 0o644),
		Reg("etc/empty", "", 0o644),
		Symlink("etc/hello.link", "hello"),
		Hardlink("etc/hard", "etc/hello"), // 0640: Docker applies it to etc/hello too

		{Name: "etc/xattr.txt", Type: tar.TypeReg, Data: []byte("x\n"), Mode: 0o600, Xattrs: map[string]string{"user.spec": "v1"}},
		Reg("etc/suid", "#!/bin/sh\n", 0o4755),
		Dir("opt/", 0o755),
		Dir("opt/opq/", 0o750),
		Reg("opt/opq/a", "a", 0o644),
		Reg("opt/opq/b", "b", 0o644),
		Dir("var/", 0o755),
		Reg("var/gone.txt", "soon gone\n", 0o644),
	}
	if privileged {
		l0 = append(l0, Entry{Name: "etc/owned", Type: tar.TypeReg, Data: []byte("1000\n"), Mode: 0o640, UID: 1000, GID: 1000})
	}
	l1 := []Entry{
		Dir("etc/", 0o755),
		Reg("etc/hello", "hello again, world\n", 0o644),
		Reg("etc/new.txt", "new\n", 0o644),
	}
	whiteouts := driver != "overlay2" || privileged
	if whiteouts {
		l1 = append(l1,
			Whiteout("etc/.wh.empty"),
			Dir("opt/", 0o755),
			Dir("opt/opq/", 0o750),
			Whiteout("opt/opq/.wh..wh..opq"),
			Reg("opt/opq/c", "c", 0o644),
			Dir("var/", 0o755),
			Whiteout("var/.wh.gone.txt"),
		)
	}
	l2 := []Entry{
		Reg("./usr/share/doc/legacy.txt", "added by a legacy builder\n", 0o644),
		Reg("./Dockerfile", "FROM scratch\nADD . /\n", 0o644),
	}
	for _, l := range [][]Entry{l0, l1, l2} {
		for i := range l {
			if l[i].UID == 0 && l[i].GID == 0 {
				l[i].UID, l[i].GID = uid, gid
			}
		}
	}
	return StoreSpec{
		Driver: driver,
		Layers: []LayerSpec{{Key: "L0", Entries: l0}, {Key: "L1", Parent: "L0", Entries: l1}, {Key: "L2", Entries: l2}},
		Images: []ImageSpec{
			{Key: "base", Refs: []string{"example.com/base:1"}, Layers: []string{"L0"}},
			{Key: "app", Refs: []string{"example.com/app:1", "example.com/app@sha256:" + HexID("app-manifest")}, Layers: []string{"L0", "L1"}, EmptyHistory: 2, Parent: "base"},
			{Key: "legacy", Refs: []string{"legacy:latest"}, Layers: []string{"L2"}},
		},
		Container: "app",
		BuildKit:  true,
	}
}

// Build writes a data root for spec into a new temporary directory.
func Build(t testing.TB, spec StoreSpec) *Store {
	t.Helper()
	root := filepath.Join(t.TempDir(), "docker")
	s := &Store{Root: root, Driver: spec.Driver, Privileged: IsRoot(), Layers: map[string]*Layer{}, Images: map[string]*Image{}}
	must(t, os.MkdirAll(s.Path(s.ImageRel()+"/layerdb/sha256"), 0o700))
	must(t, os.MkdirAll(s.Path(s.ImageRel()+"/layerdb/tmp"), 0o700))
	must(t, os.MkdirAll(s.Path(s.ImageRel()+"/imagedb/content/sha256"), 0o700))
	must(t, os.MkdirAll(s.Path(s.ImageRel()+"/imagedb/metadata/sha256"), 0o700))
	must(t, os.MkdirAll(s.Path(layoutOf(spec.Driver).dirRel), 0o710))
	if layoutOf(spec.Driver).overlay {
		must(t, os.MkdirAll(s.Path(layoutOf(spec.Driver).dirRel+"/l"), 0o700))
	}
	for _, ls := range spec.Layers {
		s.addLayer(t, ls)
	}
	for _, is := range spec.Images {
		s.addImage(t, is)
	}
	s.writeRepositories(t, spec)
	s.writeDistribution(t)
	if spec.Container != "" {
		s.addContainer(t, s.Images[spec.Container])
	}
	if spec.BuildKit {
		s.addBuildKit(t)
	}
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func WriteFile(t testing.TB, p string, data []byte, mode fs.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, mode))
}

// MakeTar writes entries as a tar (PAX when an Entry has xattrs).
func MakeTar(t testing.TB, entries []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID, ModTime: epoch, Linkname: e.Link, Format: tar.FormatUSTAR}
		if e.Type == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		if len(e.Xattrs) > 0 {
			h.Format = tar.FormatPAX
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		must(t, tw.WriteHeader(h))
		if h.Size > 0 {
			_, err := tw.Write(e.Data)
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// Disassemble produces tar-split.json.gz with tar-split's own disassembler.
func Disassemble(t testing.TB, tarBytes []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	gz := gzip.NewWriter(&out)
	its, done, err := asm.NewInputTarStreamWithDone(bytes.NewReader(tarBytes), storage.NewJSONPacker(gz), nil)
	must(t, err)
	_, err = io.Copy(io.Discard, its)
	must(t, err)
	// The packer may still be writing after the stream's EOF: wait for it
	// before closing the gzip writer under it.
	must(t, <-done)
	must(t, gz.Close())
	return out.Bytes()
}

func (s *Store) addLayer(t testing.TB, ls LayerSpec) {
	t.Helper()
	drv := layoutOf(s.Driver)
	tarBytes := MakeTar(t, ls.Entries)
	l := &Layer{Key: ls.Key, Tar: tarBytes, DiffID: digest.FromBytes(tarBytes), CacheID: HexID("cache" + ls.Key), Link: LinkID(ls.Key)}
	l.ChainID = l.DiffID
	if ls.Parent != "" {
		l.Parent = s.Layers[ls.Parent]
		l.Parent.children++
		l.ChainID = digest.FromString(l.Parent.ChainID.String() + " " + l.DiffID.String())
	}
	s.Layers[ls.Key] = l
	l.Dir = drv.layerRoot(l.CacheID)
	dst := s.Path(l.Dir)
	if drv.overlay {
		must(t, os.MkdirAll(dst, 0o755))
		cd := s.Path(drv.cacheDir(l.CacheID))
		WriteFile(t, cd+"/link", []byte(l.Link), 0o644)
		must(t, os.Symlink("../"+l.CacheID+"/diff", s.Path(drv.dirRel+"/l/"+l.Link)))
		if l.Parent != nil {
			WriteFile(t, cd+"/lower", []byte(s.lowerOf(l.Parent)), 0o644)
			must(t, os.Mkdir(cd+"/work", 0o700))
			WriteFile(t, s.Path(drv.cacheDir(l.Parent.CacheID))+"/committed", nil, 0o600)
		}
	} else if l.Parent != nil {
		copyTree(t, s.Path(l.Parent.Dir), dst)
	} else {
		must(t, os.MkdirAll(dst, 0o755))
	}
	l.SumSize = unpack(t, dst, tarBytes, drv.whiteouts)
	size := l.SumSize
	if drv.overlay {
		size = dirSize(t, dst) // native overlay diff
	}
	l.LayerDB = s.ImageRel() + "/layerdb/sha256/" + l.ChainID.Encoded()
	ldb := s.Path(l.LayerDB)
	must(t, os.MkdirAll(ldb, 0o700))
	WriteFile(t, ldb+"/diff", []byte(l.DiffID.String()), 0o644)
	WriteFile(t, ldb+"/size", []byte(fmt.Sprint(size)), 0o644)
	WriteFile(t, ldb+"/cache-id", []byte(l.CacheID), 0o644)
	if l.Parent != nil {
		WriteFile(t, ldb+"/parent", []byte(l.Parent.ChainID.String()), 0o644)
	}
	WriteFile(t, ldb+"/tar-split.json.gz", Disassemble(t, tarBytes), 0o644)
}

// lowerOf is the lower file of a layer on top of p.
func (s *Store) lowerOf(p *Layer) string {
	var parts []string
	for ; p != nil; p = p.Parent {
		parts = append(parts, "l/"+p.Link)
	}
	return strings.Join(parts, ":")
}

// whiteoutFormat is how a graph driver stores a layer's whiteouts.
type whiteoutFormat int

const (
	// applyWhiteouts: the full-rootfs drivers (vfs, btrfs) delete what a
	// whiteout names and keep nothing of it (go-archive UnpackLayer).
	applyWhiteouts whiteoutFormat = iota
	// overlayWhiteouts: overlay2 turns them into 0/0 character devices and
	// trusted.overlay.opaque xattrs.
	overlayWhiteouts
	// keepWhiteouts: fuse-overlayfs unpacks in the AUFS format, so the .wh.
	// files stay in diff/ as regular files with their header's mode and
	// owner [observed: dockerd 20.10.24 with --storage-driver fuse-overlayfs
	// keeps diff/etc/.wh.deleteme and diff/opq/.wh..wh..opq of a loaded
	// image, 0644 as in its tar].
	keepWhiteouts
)

// UnpackLayer applies a layer tar to dst as a snapshotter does: with
// overlay, whiteouts become 0/0 character devices and opaque directories get
// trusted.overlay.opaque (containerd's overlayfs, like overlay2); without,
// they are applied as deletions (containerd's native, like vfs). Devices and
// trusted xattrs need root.
func UnpackLayer(t testing.TB, dst string, tarBytes []byte, overlay bool) {
	t.Helper()
	f := applyWhiteouts
	if overlay {
		f = overlayWhiteouts
	}
	unpack(t, dst, tarBytes, f)
}

// unpack applies a layer tar to dst as Docker's graph drivers do and
// returns the sum of the header sizes.
func unpack(t testing.TB, dst string, tarBytes []byte, format whiteoutFormat) int64 {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	unpacked := map[string]bool{}
	var sum int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		sum += h.Size
		name := path.Clean(strings.TrimLeft(h.Name, "/"))
		if name == "." {
			continue
		}
		p := filepath.Join(dst, filepath.FromSlash(name))
		dir, base := path.Split(name)
		pdir := filepath.Join(dst, filepath.FromSlash(dir))
		must(t, os.MkdirAll(pdir, 0o755))
		if strings.HasPrefix(base, ".wh.") && format != keepWhiteouts {
			if base == ".wh..wh..opq" {
				if format == overlayWhiteouts {
					must(t, unix.Setxattr(pdir, "trusted.overlay.opaque", []byte("y"), 0))
				} else {
					ents, _ := os.ReadDir(pdir)
					for _, e := range ents {
						if !unpacked[path.Join(strings.TrimSuffix(dir, "/"), e.Name())] {
							must(t, os.RemoveAll(filepath.Join(pdir, e.Name())))
						}
					}
				}
				continue
			}
			target := filepath.Join(pdir, base[len(".wh."):])
			must(t, os.RemoveAll(target))
			if format == overlayWhiteouts {
				must(t, unix.Mknod(target, unix.S_IFCHR, 0))
				must(t, os.Lchown(target, h.Uid, h.Gid))
			}
			continue
		}
		if fi, err := os.Lstat(p); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
			must(t, os.RemoveAll(p))
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if _, err := os.Lstat(p); err != nil {
				must(t, os.Mkdir(p, 0o755))
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			must(t, err)
			_, err = io.Copy(f, tr)
			must(t, err)
			must(t, f.Close())
		case tar.TypeSymlink:
			must(t, os.Symlink(h.Linkname, p))
		case tar.TypeLink:
			must(t, os.Link(filepath.Join(dst, filepath.FromSlash(path.Clean(h.Linkname))), p))
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			mode := uint32(unix.S_IFIFO)
			if h.Typeflag == tar.TypeChar {
				mode = unix.S_IFCHR
			} else if h.Typeflag == tar.TypeBlock {
				mode = unix.S_IFBLK
			}
			must(t, unix.Mknod(p, mode|uint32(h.Mode&0o7777), int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))))
		default:
			t.Fatalf("unpack: type %q not supported by the test helper", h.Typeflag)
		}
		// As go-archive's createTarFile: owner, then mode (not for
		// symlinks, nor for hardlinks to one), then xattrs, also through a
		// hardlink, so its header sets them on the inode it shares.
		if IsRoot() {
			must(t, os.Lchown(p, h.Uid, h.Gid))
		}
		fi, err := os.Lstat(p)
		must(t, err)
		if fi.Mode()&fs.ModeSymlink == 0 {
			must(t, syscall.Chmod(p, uint32(h.Mode&0o7777)))
		}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				must(t, unix.Lsetxattr(p, x, []byte(v), 0))
			}
		}
		unpacked[name] = true
	}
	return sum
}

// copyTree copies a directory tree as vfs's CopyDir does: modes, owners,
// xattrs, symlinks, devices, and hardlinks kept as hardlinks.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	inodes := map[uint64]string{}
	must(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(q, 0o755); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, q); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if first, ok := inodes[st.Ino]; ok && st.Nlink > 1 {
				return os.Link(first, q)
			}
			inodes[st.Ino] = q
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(q, data, 0o600); err != nil {
				return err
			}
		default:
			if err := unix.Mknod(q, st.Mode, int(st.Rdev)); err != nil {
				return err
			}
		}
		if IsRoot() {
			if err := os.Lchown(q, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if err := syscall.Chmod(q, st.Mode&0o7777); err != nil {
				return err
			}
			for k, v := range listXattrs(t, p) {
				if err := unix.Lsetxattr(q, k, []byte(v), 0); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

func listXattrs(t testing.TB, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	out := map[string]string{}
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, k, v)
		must(t, err)
		out[k] = string(v[:m])
	}
	return out
}

// dirSize is Docker's directory.Size: non-directories with size > 0, each inode once.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	seen := map[uint64]bool{}
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Size() > 0 && !seen[st.Ino] {
			seen[st.Ino] = true
			total += fi.Size()
		}
		return nil
	}))
	return total
}

func (s *Store) addImage(t testing.TB, is ImageSpec) {
	t.Helper()
	img := &Image{Key: is.Key, Refs: is.Refs}
	var diffIDs []string
	var history []map[string]any
	for _, k := range is.Layers {
		l := s.Layers[k]
		img.Layers = append(img.Layers, l)
		diffIDs = append(diffIDs, l.DiffID.String())
		history = append(history, map[string]any{"created": epoch.Format(time.RFC3339), "created_by": "ADD " + k})
	}
	for i := 0; i < is.EmptyHistory; i++ {
		history = append(history, map[string]any{"created": epoch.Format(time.RFC3339), "created_by": fmt.Sprintf("ENV X=%d", i), "empty_layer": true})
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": epoch.Format(time.RFC3339),
		"config":  map[string]any{"Env": []string{"PATH=/bin"}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history,
	})
	must(t, err)
	img.Config = cfg
	img.ID = digest.FromBytes(cfg)
	s.Images[is.Key] = img
	WriteFile(t, s.Path(s.ImageRel()+"/imagedb/content/sha256/"+img.ID.Encoded()), cfg, 0o600)
	meta := s.Path(s.ImageRel() + "/imagedb/metadata/sha256/" + img.ID.Encoded())
	if is.Parent != "" {
		WriteFile(t, meta+"/parent", []byte(s.Images[is.Parent].ID.String()), 0o644)
		WriteFile(t, meta+"/lastUpdated", []byte(epoch.Format(time.RFC3339Nano)), 0o644)
		WriteFile(t, meta+"/builtLocally", []byte{1}, 0o644)
	}
}

func (s *Store) writeRepositories(t testing.TB, spec StoreSpec) {
	t.Helper()
	repos := map[string]map[string]string{}
	for _, is := range spec.Images {
		for _, r := range is.Refs {
			name := splitRef(r)
			if repos[name] == nil {
				repos[name] = map[string]string{}
			}
			repos[name][r] = s.Images[is.Key].ID.String()
		}
	}
	b, err := json.Marshal(map[string]any{"Repositories": repos})
	must(t, err)
	WriteFile(t, s.Path(s.ImageRel()+"/repositories.json"), b, 0o600)
}

func (s *Store) writeDistribution(t testing.TB) {
	t.Helper()
	for _, k := range sortedKeys(s.Layers) {
		l := s.Layers[k]
		blob := digest.FromString("compressed " + l.DiffID.String())
		WriteFile(t, s.Path(s.ImageRel()+"/distribution/diffid-by-digest/sha256/"+blob.Encoded()), []byte(l.DiffID.String()), 0o644)
		md, err := json.Marshal([]map[string]string{{"Digest": blob.String(), "SourceRepository": "example.com/base", "HMAC": ""}})
		must(t, err)
		WriteFile(t, s.Path(s.ImageRel()+"/distribution/v2metadata-by-diffid/sha256/"+l.DiffID.Encoded()), md, 0o644)
	}
}

// addContainer creates a container on img: layerdb/mounts, the init and RW
// layer directories, containers/<id>/config.v2.json.
func (s *Store) addContainer(t testing.TB, img *Image) {
	t.Helper()
	drv := layoutOf(s.Driver)
	s.CtrID, s.MountID = HexID("container"), HexID("mount")
	top := img.Layers[len(img.Layers)-1]
	m := s.Path(s.ImageRel() + "/layerdb/mounts/" + s.CtrID)
	WriteFile(t, m+"/mount-id", []byte(s.MountID), 0o644)
	WriteFile(t, m+"/init-id", []byte(s.MountID+"-init"), 0o644)
	WriteFile(t, m+"/parent", []byte(top.ChainID.String()), 0o644)
	initFiles := MakeTar(t, []Entry{Reg(".dockerenv", "", 0o755), Dir("etc/", 0o755), Reg("etc/hosts", "", 0o755)})
	initID := s.MountID + "-init"
	if drv.overlay {
		initLink, mountLink := LinkID("init"), LinkID("mount")
		for _, d := range []struct{ id, link, lower string }{
			{initID, initLink, s.lowerOf(top)},
			{s.MountID, mountLink, "l/" + initLink + ":" + s.lowerOf(top)},
		} {
			cd := s.Path(drv.cacheDir(d.id))
			must(t, os.MkdirAll(cd+"/diff", 0o755))
			must(t, os.Mkdir(cd+"/work", 0o700))
			WriteFile(t, cd+"/link", []byte(d.link), 0o644)
			WriteFile(t, cd+"/lower", []byte(d.lower), 0o644)
			must(t, os.Symlink("../"+d.id+"/diff", s.Path(drv.dirRel+"/l/"+d.link)))
		}
		unpack(t, s.Path(drv.layerRoot(initID)), initFiles, drv.whiteouts)
		WriteFile(t, s.Path(drv.cacheDir(initID))+"/committed", nil, 0o600)
		WriteFile(t, s.Path(drv.cacheDir(top.CacheID))+"/committed", nil, 0o600)
	} else {
		copyTree(t, s.Path(top.Dir), s.Path(drv.layerRoot(initID)))
		unpack(t, s.Path(drv.layerRoot(initID)), initFiles, drv.whiteouts)
		copyTree(t, s.Path(drv.layerRoot(initID)), s.Path(drv.layerRoot(s.MountID)))
	}
	cfg, err := json.Marshal(map[string]any{"ID": s.CtrID, "Image": img.ID.String(), "Driver": s.Driver})
	must(t, err)
	WriteFile(t, s.Path("containers/"+s.CtrID+"/config.v2.json"), cfg, 0o600)
}

// addBuildKit writes a snapshots.db with one snapshot whose driver
// directory BuildKit created itself.
func (s *Store) addBuildKit(t testing.TB) {
	t.Helper()
	drv := layoutOf(s.Driver)
	s.BuildKitID = "q8jv5n3xk2m4a7b9c1d6e0f2g"
	must(t, os.MkdirAll(s.Path("buildkit"), 0o711))
	db, err := bolt.Open(s.Path("buildkit/snapshots.db"), 0o600, &bolt.Options{Timeout: time.Second})
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(s.BuildKitID))
		if err != nil {
			return err
		}
		return b.Put([]byte("parent"), []byte(""))
	}))
	must(t, db.Close())
	WriteFile(t, s.Path(drv.layerRoot(s.BuildKitID))+"/build-output", []byte("built by buildkit\n"), 0o644)
}

// TreeHash describes every path under root (storetest.TreeHash): type,
// mode, owner, size, mtime, device, link count, symlink target, content hash
// and xattrs.
func TreeHash(t testing.TB, root string) []string { return storetest.TreeHash(t, root) }

func Gunzip(t testing.TB, data []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	must(t, err)
	b, err := io.ReadAll(zr)
	must(t, err)
	return string(b)
}

func Gzip(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(data)
	must(t, err)
	must(t, zw.Close())
	return buf.Bytes()
}

// layout is where the supported test drivers keep a cache-id's data.
type layout struct {
	name      string
	dirRel    string
	overlay   bool
	whiteouts whiteoutFormat
}

func layoutOf(driver string) layout {
	switch driver {
	case "overlay2":
		return layout{name: driver, dirRel: "overlay2", overlay: true, whiteouts: overlayWhiteouts}
	case "fuse-overlayfs":
		// Like overlay2 on disk (<id>/diff, link, lower, work, committed,
		// l/), whiteouts kept as .wh. files.
		return layout{name: driver, dirRel: "fuse-overlayfs", overlay: true, whiteouts: keepWhiteouts}
	case "vfs":
		return layout{name: driver, dirRel: "vfs/dir", whiteouts: applyWhiteouts}
	case "btrfs":
		// One subvolume per layer holding the whole root filesystem, a
		// snapshot of the parent's: on disk (and in a copy, where the
		// subvolumes are plain directories) the same as vfs.
		return layout{name: driver, dirRel: "btrfs/subvolumes", whiteouts: applyWhiteouts}
	}
	panic("dockertest: driver " + driver + " not supported (overlay2, fuse-overlayfs, vfs, btrfs)")
}

func (d layout) cacheDir(id string) string { return d.dirRel + "/" + id }

func (d layout) layerRoot(id string) string {
	if d.overlay {
		return d.dirRel + "/" + id + "/diff"
	}
	return d.dirRel + "/" + id
}

// CacheDir is the driver directory of a cache-id or mount-id, relative to the root.
func (s *Store) CacheDir(id string) string { return layoutOf(s.Driver).cacheDir(id) }

// LayerRoot is the directory holding a cache-id's files, relative to the root.
func (s *Store) LayerRoot(id string) string { return layoutOf(s.Driver).layerRoot(id) }

func splitRef(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i+1:], "/") {
		return ref[:i]
	}
	return ref
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Unpack applies a layer tar to dst as a graph driver does and returns the
// sum of the header sizes: overlay whiteouts (0/0 character devices,
// trusted.overlay.opaque) when overlay is set, else deletions as on a full
// rootfs (vfs). Other stores' builders (cstoragetest) use it.
func Unpack(t testing.TB, dst string, tarBytes []byte, overlay bool) int64 {
	t.Helper()
	if overlay {
		return unpack(t, dst, tarBytes, overlayWhiteouts)
	}
	return unpack(t, dst, tarBytes, applyWhiteouts)
}

// CopyTree copies a directory tree as vfs's CopyDir does (modes, owners,
// xattrs, symlinks, devices, hardlinks kept).
func CopyTree(t testing.TB, src, dst string) { copyTree(t, src, dst) }
