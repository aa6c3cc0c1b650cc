package harness

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// baseTime is the mtime of the generated entries: a fixed instant with
// nanoseconds, so that sub-second mtimes reach the layer tar (PAX mtime).
var baseTime = time.Unix(1700000000, 123456789).UTC()

// LongName is a single path component of 255 bytes, the longest a Linux file
// system takes.
var LongName = strings.Repeat("L", 251) + ".txt"

// DeepDir is a directory path of more than 255 bytes (each component is
// shorter), so that names need PAX or GNU long-name records.
var DeepDir = "deep/" + strings.Repeat("d", 90) + "/" + strings.Repeat("e", 90) + "/" + strings.Repeat("f", 90)

// TrickyNames are the file names below names/ in the generated rootfs.
var TrickyNames = []string{
	"with space",
	"with\ttab",
	"with\nnewline",
	"latin1-\xe9t\xe9",      // not UTF-8
	"invalid-\xff\xfe",      // not UTF-8
	"unicode-\u00e9t\u00e9", // UTF-8
	"back\\slash",
	LongName,
}

// XattrName and XattrValue are the extended attribute carried by data/xattr
// (as a PAX SCHILY.xattr record).
const (
	XattrName  = "user.layercheck"
	XattrValue = "e2e-xattr"
)

type entry struct {
	hdr  tar.Header
	body []byte
}

func dirEntry(name string, mode int64) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
}

func fileEntry(name string, mode int64, body string) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: []byte(body)}
}

func writeEntries(w io.Writer, ents []entry) error {
	tw := tar.NewWriter(w)
	for i, e := range ents {
		h := e.hdr
		h.Format = tar.FormatPAX
		if h.ModTime.IsZero() {
			// Distinct sub-second mtimes, all with a nanosecond part.
			h.ModTime = baseTime.Add(time.Duration(i) * 1001 * time.Microsecond)
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("writing tar header %q: %w", h.Name, err)
		}
		if len(e.body) > 0 {
			if _, err := tw.Write(e.body); err != nil {
				return fmt.Errorf("writing tar entry %q: %w", h.Name, err)
			}
		}
	}
	return tw.Close()
}

// rootfsEntries is the tricky root file system: every kind of entry that
// breaks naive verifiers.
func rootfsEntries(busybox []byte) []entry {
	var ents []entry
	ents = append(ents,
		dirEntry("bin", 0o755),
		dirEntry("etc", 0o755),
		fileEntry("etc/passwd", 0o644, "root:x:0:0:root:/:/bin/sh\nlc:x:1000:1000:lc:/:/bin/sh\n"),
		fileEntry("etc/group", 0o644, "root:x:0:\nlc:x:1000:\n"),
		fileEntry("etc/deleteme", 0o644, "removed by a later layer\n"),
		dirEntry("data", 0o755),
		fileEntry("data/file", 0o644, "hello from layercheck\n"),
		entry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "data/hardlink", Linkname: "data/file"}},
		entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "data/rel-symlink", Linkname: "file", Mode: 0o777}},
		entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "data/abs-symlink", Linkname: "/data/file", Mode: 0o777}},
		entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "data/dangling-symlink", Linkname: "../does/not/exist", Mode: 0o777}},
		entry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "data/fifo", Mode: 0o644}},
		fileEntry("data/setuid", 0o4755, "#!/bin/sh\necho setuid\n"),
		fileEntry("data/setgid", 0o2755, "#!/bin/sh\necho setgid\n"),
		fileEntry("data/mode000", 0o000, "nobody may read this\n"),
		fileEntry("data/empty", 0o644, ""),
		entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "data/owned", Mode: 0o640, Uid: 1000, Gid: 1000}, body: []byte("owned by uid 1000\n")},
		entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "data/xattr", Mode: 0o644,
			PAXRecords: map[string]string{"SCHILY.xattr." + XattrName: XattrValue}}, body: []byte("has an xattr\n")},
		dirEntry("tmp", 0o1777),
		dirEntry("opq", 0o755),
		fileEntry("opq/a", 0o644, "a\n"),
		fileEntry("opq/b", 0o644, "b\n"),
		dirEntry("opq/sub", 0o755),
		fileEntry("opq/sub/c", 0o644, "c\n"),
		dirEntry("names", 0o755),
	)
	for _, n := range TrickyNames {
		ents = append(ents, fileEntry("names/"+n, 0o644, "name "+fmt.Sprintf("%q", n)+"\n"))
	}
	parts := strings.Split(DeepDir, "/")
	for i := range parts {
		ents = append(ents, dirEntry(strings.Join(parts[:i+1], "/"), 0o755))
	}
	ents = append(ents, fileEntry(DeepDir+"/"+strings.Repeat("g", 40)+".txt", 0o644, "deep\n"))
	if busybox != nil {
		ents = append(ents,
			entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, body: busybox},
			entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "busybox", Mode: 0o777}},
		)
	}
	return ents
}

// WriteRootfs writes the tricky root file system as an uncompressed tar:
// hardlinks; relative, absolute and dangling symlinks; a fifo; names with
// spaces, tabs, newlines, non-UTF-8 bytes, a 255-byte component and a path of
// more than 255 bytes; setuid, setgid and mode-000 files; a file owned by uid
// 1000; a user.* xattr in a PAX SCHILY.xattr record; sub-second mtimes; a
// sticky directory. With busybox (the bytes of a static busybox) it also holds
// /bin/busybox and /bin/sh, so that later RUN steps work.
func WriteRootfs(w io.Writer, busybox []byte) error {
	return writeEntries(w, rootfsEntries(busybox))
}

// TopLayer is a layer for the tricky rootfs, as the daemon would write it with
// the overlay whiteout conversion undone: it deletes etc/deleteme (a
// whiteout), replaces opq/ (an opaque directory), and rewrites data/file
// together with a new hardlink to it (a hardlink whose target came from a
// lower layer, copied up as overlay does).
func WriteTopLayer(w io.Writer) error {
	return writeEntries(w, []entry{
		dirEntry("etc", 0o755),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "etc/.wh.deleteme", Mode: 0o644}},
		dirEntry("opq", 0o755),
		{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "opq/.wh..wh..opq", Mode: 0o644}},
		fileEntry("opq/new", 0o644, "replaced directory\n"),
		dirEntry("data", 0o755),
		fileEntry("data/file", 0o644, "rewritten by the top layer\n"),
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "data/hardlink-top", Linkname: "data/file"}},
		fileEntry("data/added", 0o644, "added by the top layer\n"),
	})
}

// EmptyLayer is the tar stream of a layer that changes nothing: two zero
// blocks, what dockerd stores for `RUN true`.
func EmptyLayer() []byte { return make([]byte, 1024) }

// SaveImage describes one image for WriteDockerSave.
type SaveImage struct {
	RepoTags []string
	Layers   [][]byte // uncompressed layer tars, base first
	// History lists the steps; a step with Empty set has no layer. Steps
	// without Empty consume Layers in order.
	History []HistoryStep
	Env     []string
	Cmd     []string
}

// HistoryStep is one history entry of an image config.
type HistoryStep struct {
	CreatedBy string
	Empty     bool
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// WriteDockerSave writes a legacy `docker save` archive (manifest.json,
// <id>.json configs, <diffid>/layer.tar) of images, for `docker load`.
func WriteDockerSave(w io.Writer, images []SaveImage) error {
	tw := tar.NewWriter(w)
	written := map[string]bool{}
	add := func(name string, body []byte, mode int64) error {
		if written[name] {
			return nil
		}
		written[name] = true
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: baseTime.Truncate(time.Second), Format: tar.FormatUSTAR}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	type manifestEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []manifestEntry
	for _, img := range images {
		var diffIDs, paths []string
		for _, l := range img.Layers {
			d := digestOf(l)
			diffIDs = append(diffIDs, d)
			dir := strings.TrimPrefix(d, "sha256:")
			if err := add(dir+"/", nil, 0o755); err != nil {
				return err
			}
			if err := add(dir+"/layer.tar", l, 0o644); err != nil {
				return err
			}
			paths = append(paths, dir+"/layer.tar")
		}
		type hist struct {
			Created    string `json:"created"`
			CreatedBy  string `json:"created_by,omitempty"`
			EmptyLayer bool   `json:"empty_layer,omitempty"`
		}
		var history []hist
		for i, h := range img.History {
			history = append(history, hist{Created: baseTime.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano), CreatedBy: h.CreatedBy, EmptyLayer: h.Empty})
		}
		cfg := map[string]any{
			"architecture": runtime.GOARCH,
			"os":           "linux",
			"created":      baseTime.Add(time.Duration(len(history)) * time.Second).Format(time.RFC3339Nano),
			"config":       map[string]any{"Env": img.Env, "Cmd": img.Cmd},
			"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
			"history":      history,
		}
		cb, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		id := digestOf(cb)
		cname := strings.TrimPrefix(id, "sha256:") + ".json"
		if err := add(cname, cb, 0o644); err != nil {
			return err
		}
		manifest = append(manifest, manifestEntry{Config: cname, RepoTags: img.RepoTags, Layers: paths})
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := add("manifest.json", mb, 0o644); err != nil {
		return err
	}
	return tw.Close()
}

// CraftedImage is a three-layer image written by the harness itself and
// loaded with `docker load`: the tricky rootfs (with busybox if given), the
// top layer with a whiteout, an opaque directory and a copied-up hardlink, and
// an empty layer, plus ENV and LABEL history entries without layers.
func CraftedImage(tag string, busybox []byte) (SaveImage, error) {
	var base, top bytes.Buffer
	if err := WriteRootfs(&base, busybox); err != nil {
		return SaveImage{}, err
	}
	if err := WriteTopLayer(&top); err != nil {
		return SaveImage{}, err
	}
	return SaveImage{
		RepoTags: []string{tag},
		Layers:   [][]byte{base.Bytes(), top.Bytes(), EmptyLayer()},
		History: []HistoryStep{
			{CreatedBy: "layercheck e2e: tricky rootfs"},
			{CreatedBy: "/bin/sh -c #(nop)  ENV LAYERCHECK=e2e", Empty: true},
			{CreatedBy: "layercheck e2e: whiteout, opaque directory, hardlink"},
			{CreatedBy: "/bin/sh -c #(nop)  LABEL org.layercheck.e2e=crafted", Empty: true},
			{CreatedBy: "/bin/sh -c true"},
		},
		Env: []string{"PATH=/bin", "LAYERCHECK=e2e"},
		Cmd: []string{"/bin/sh"},
	}, nil
}

// ReadBusybox returns the bytes of the static busybox binary.
func (e *Env) ReadBusybox() ([]byte, error) {
	b, err := os.ReadFile(e.Tools.Busybox)
	if err != nil {
		return nil, fmt.Errorf("reading busybox: %w", err)
	}
	return b, nil
}

// DockerSaveLayers returns, for each image of a `docker save` archive (in the
// order of its manifest.json), the config member and the layer members.
func DockerSaveLayers(path string) ([]SaveEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no manifest.json in %s", path)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []SaveEntry
		if err := json.NewDecoder(io.LimitReader(tr, 16<<20)).Decode(&m); err != nil {
			return nil, fmt.Errorf("decoding manifest.json of %s: %w", path, err)
		}
		return m, nil
	}
}

// SaveEntry is one entry of a docker save manifest.json.
type SaveEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}
