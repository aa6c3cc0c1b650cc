package cstoragetest

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	digest "github.com/opencontainers/go-digest"
)

// Layer is a built layer.
type Layer struct {
	Key     string
	ID      string
	Tar     []byte
	DiffID  digest.Digest
	ChainID digest.Digest
	Blob    []byte // the gzip'ed tar, as pulled
	Digest  digest.Digest
	Link    string // overlay link name
	Parent  *Layer
	Dir     string // the layer's files, relative to the root (overlay/<id>/diff, vfs/dir/<id>)
	UIDMap  int    // host ID of container ID 0 (0: no mapping)
}

// Image is a built image.
type Image struct {
	Key      string
	ID       string // hex, the config digest
	Names    []string
	Config   []byte
	Manifest []byte
	Digest   digest.Digest // the manifest's digest
	Layers   []*Layer
}

// Store is a built graph root.
type Store struct {
	Root        string
	Driver      string // overlay or vfs
	Layers      map[string]*Layer
	Images      map[string]*Image
	ContainerID string
	CtrLayerID  string
}

// Path is the absolute path of rel (slash-separated, relative to the root).
func (s *Store) Path(rel string) string { return filepath.Join(s.Root, filepath.FromSlash(rel)) }

// TarSplit is the relative path of a layer's tar-split.
func (s *Store) TarSplit(id string) string { return s.Driver + "-layers/" + id + ".tar-split.gz" }

// BigData is the relative path of an image's big-data item.
func (s *Store) BigData(imageID, key string) string {
	return s.Driver + "-images/" + imageID + "/" + BigDataName(key)
}

// BigDataName is containers/storage's makeBigDataBaseName.
func BigDataName(key string) string {
	for _, c := range []byte(key) {
		if c != '.' && (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return "=" + base64.StdEncoding.EncodeToString([]byte(key))
		}
	}
	return key
}

// Build lays out a graph root of driver ("overlay" or "vfs") with the
// layers of dockertest.DefaultSpec: images base (L0), app (L0, L1: overlay
// whiteouts need root) and legacy (L2, no directory entries), a container
// of app, and, as root, an image whose layer is ID-mapped (uidmap 0 ->
// 100000).
func Build(t testing.TB, driver string) *Store {
	t.Helper()
	priv := dockertest.IsRoot()
	ddrv := "vfs"
	if driver == "overlay" {
		ddrv = "overlay2"
	}
	spec := dockertest.DefaultSpec(ddrv, priv)
	s := &Store{Root: t.TempDir(), Driver: driver, Layers: map[string]*Layer{}, Images: map[string]*Image{}}
	for _, d := range []string{driver + "-layers", driver + "-images", driver + "-containers"} {
		must(t, os.MkdirAll(s.Path(d), 0o700))
		dockertest.WriteFile(t, s.Path(d+"/"+strings.TrimSuffix(strings.TrimPrefix(d, driver+"-"), "s")+"s.lock"), nil, 0o644)
	}
	dockertest.WriteFile(t, s.Path("storage.lock"), nil, 0o644)
	dockertest.WriteFile(t, s.Path("userns.lock"), nil, 0o644)
	if driver == "overlay" {
		must(t, os.MkdirAll(s.Path("overlay/l"), 0o700))
	} else {
		must(t, os.MkdirAll(s.Path("vfs/dir"), 0o700))
	}
	var records []map[string]any
	for _, ls := range spec.Layers {
		records = append(records, s.addLayer(t, ls.Key, ls.Parent, ls.Entries, 0))
	}
	if priv {
		mapped := []dockertest.Entry{dockertest.Dir("srv/", 0o755), dockertest.Reg("srv/data", "mapped\n", 0o640)}
		records = append(records, s.addLayer(t, "M0", "", mapped, 100000))
	}
	var images []map[string]any
	for _, is := range spec.Images {
		var names []string
		for _, r := range is.Refs {
			if !strings.Contains(r, "@") {
				names = append(names, normalize(r))
			}
		}
		images = append(images, s.addImage(t, is.Key, names, is.Layers))
	}
	if priv {
		images = append(images, s.addImage(t, "mapped", []string{"localhost/mapped:latest"}, []string{"M0"}))
	}
	// A container of app: its read-write layer is a layer record without
	// digests or tar-split.
	app := s.Images["app"]
	top := app.Layers[len(app.Layers)-1]
	s.ContainerID = hexOf("container")
	s.CtrLayerID = hexOf("container-layer")
	cl := &Layer{Key: "ctr", ID: s.CtrLayerID, Parent: top, Link: linkOf("ctr")}
	s.layerDirs(t, cl)
	records = append(records, map[string]any{"id": cl.ID, "parent": top.ID, "created": "2020-01-01T00:00:00Z"})
	writeJSON(t, s.Path(driver+"-layers/layers.json"), records)
	writeJSON(t, s.Path(driver+"-images/images.json"), images)
	writeJSON(t, s.Path(driver+"-containers/containers.json"), []map[string]any{{
		"id": s.ContainerID, "names": []string{"app-ctr"}, "image": app.ID, "layer": s.CtrLayerID, "created": "2020-01-01T00:00:00Z",
	}})
	must(t, os.MkdirAll(s.Path(driver+"-containers/"+s.ContainerID+"/userdata"), 0o700))
	return s
}

// normalize writes a reference as containers-storage stores names.
func normalize(r string) string {
	if !strings.Contains(strings.SplitN(r, "/", 2)[0], ".") && !strings.HasPrefix(r, "localhost/") {
		if !strings.Contains(r, "/") {
			r = "library/" + r
		}
		r = "docker.io/" + r
	}
	return r
}

func hexOf(seed string) string { return digest.FromString(seed).Encoded() }

// linkOf is a 26-character overlay link name (A-Z, 2-7).
func linkOf(seed string) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	h := digest.FromString("link" + seed).Encoded()
	var b strings.Builder
	for i := 0; i < 26; i++ {
		b.WriteByte(alpha[int(h[i])%32])
	}
	return b.String()
}

func (s *Store) addLayer(t testing.TB, key, parent string, entries []dockertest.Entry, uidmap int) map[string]any {
	t.Helper()
	tarBytes := dockertest.MakeTar(t, entries)
	l := &Layer{Key: key, Tar: tarBytes, DiffID: digest.FromBytes(tarBytes), Link: linkOf(key), UIDMap: uidmap}
	l.Blob = dockertest.Gzip(t, tarBytes)
	l.Digest = digest.FromBytes(l.Blob)
	l.ID, l.ChainID = l.DiffID.Encoded(), l.DiffID
	if parent != "" {
		l.Parent = s.Layers[parent]
		// containers/image storage_dest layerID: sha256(parentID + "+" + diffID hex).
		l.ID = digest.FromString(l.Parent.ID + "+" + l.DiffID.Encoded()).Encoded()
		l.ChainID = digest.FromString(l.Parent.ChainID.String() + " " + l.DiffID.String())
	}
	s.Layers[key] = l
	dst := s.layerDirs(t, l)
	dockertest.Unpack(t, dst, tarBytes, s.Driver == "overlay")
	if uidmap != 0 {
		must(t, filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dst {
				return err
			}
			// The mapped layer's tar is all 0:0; on disk it is the host's.
			return os.Lchown(p, uidmap, uidmap)
		}))
	}
	dockertest.WriteFile(t, s.Path(s.TarSplit(l.ID)), dockertest.Disassemble(t, tarBytes), 0o600)
	rec := map[string]any{
		"id": l.ID, "created": "2020-01-01T00:00:00Z",
		"compressed-diff-digest": l.Digest, "compressed-size": len(l.Blob),
		"diff-digest": l.DiffID, "diff-size": len(tarBytes), "compression": 2,
		"uidset": []int{0}, "gidset": []int{0},
	}
	if l.Parent != nil {
		rec["parent"] = l.Parent.ID
	}
	if uidmap != 0 {
		m := []map[string]int{{"container_id": 0, "host_id": uidmap, "size": 65536}}
		rec["uidmap"], rec["gidmap"] = m, m
	}
	return rec
}

// layerDirs creates a layer's driver directories and returns its files'
// directory (absolute).
func (s *Store) layerDirs(t testing.TB, l *Layer) string {
	t.Helper()
	if s.Driver == "vfs" {
		l.Dir = "vfs/dir/" + l.ID
		dst := s.Path(l.Dir)
		if l.Parent != nil {
			dockertest.CopyTree(t, s.Path(l.Parent.Dir), dst)
		} else {
			must(t, os.MkdirAll(dst, 0o755))
		}
		return dst
	}
	l.Dir = "overlay/" + l.ID + "/diff"
	dst := s.Path(l.Dir)
	must(t, os.MkdirAll(dst, 0o755))
	base := s.Path("overlay/" + l.ID)
	dockertest.WriteFile(t, base+"/link", []byte(l.Link), 0o644)
	must(t, os.Symlink("../"+l.ID+"/diff", s.Path("overlay/l/"+l.Link)))
	must(t, os.Mkdir(base+"/work", 0o700))
	must(t, os.Mkdir(base+"/merged", 0o700))
	if l.Parent == nil {
		must(t, os.Mkdir(base+"/empty", 0o700))
	} else {
		var lower []string
		for p := l.Parent; p != nil; p = p.Parent {
			lower = append(lower, "l/"+p.Link)
		}
		dockertest.WriteFile(t, base+"/lower", []byte(strings.Join(lower, ":")), 0o644)
	}
	return dst
}

func (s *Store) addImage(t testing.TB, key string, names []string, layerKeys []string) map[string]any {
	t.Helper()
	im := &Image{Key: key, Names: names}
	var diffIDs []string
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	var mlayers []desc
	for _, k := range layerKeys {
		l := s.Layers[k]
		im.Layers = append(im.Layers, l)
		diffIDs = append(diffIDs, l.DiffID.String())
		mlayers = append(mlayers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", l.Digest, len(l.Blob)})
	}
	im.Config = mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux", "created": "2020-01-01T00:00:00Z",
		"config": map[string]any{"Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	cd := digest.FromBytes(im.Config)
	im.ID = cd.Encoded()
	im.Manifest = mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{"application/vnd.oci.image.config.v1+json", cd, len(im.Config)},
		"layers": mlayers,
	})
	im.Digest = digest.FromBytes(im.Manifest)
	s.Images[key] = im
	items := map[string][]byte{cd.String(): im.Config, "manifest-" + im.Digest.String(): im.Manifest, "manifest": im.Manifest}
	keys := []string{cd.String(), "manifest-" + im.Digest.String(), "manifest"}
	sizes, digests := map[string]int{}, map[string]digest.Digest{}
	for _, k := range keys {
		dockertest.WriteFile(t, s.Path(s.BigData(im.ID, k)), items[k], 0o600)
		sizes[k], digests[k] = len(items[k]), digest.FromBytes(items[k])
	}
	rec := map[string]any{
		"id": im.ID, "digest": im.Digest, "layer": im.Layers[len(im.Layers)-1].ID,
		"metadata": "{}", "big-data-names": keys, "big-data-sizes": sizes, "big-data-digests": digests,
		"created": "2020-01-01T00:00:00Z",
	}
	if len(names) > 0 {
		sort.Strings(names)
		rec["names"] = names
		rec["names-history"] = names
	}
	return rec
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

func writeJSON(t testing.TB, p string, v any) {
	t.Helper()
	dockertest.WriteFile(t, p, mustJSON(t, v), 0o600)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
