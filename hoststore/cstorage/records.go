package cstorage

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"syscall"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	digest "github.com/opencontainers/go-digest"
)

// idMap is one range of a layer's uidmap or gidmap (pkg/idtools IDMap).
type idMap struct {
	ContainerID int `json:"container_id"`
	HostID      int `json:"host_id"`
	Size        int `json:"size"`
}

// layerJSON is a record of layers.json (layers.go Layer); digests are kept
// as strings so one bad value is a finding, not an unreadable file.
type layerJSON struct {
	ID               string         `json:"id"`
	Names            []string       `json:"names,omitempty"`
	Parent           string         `json:"parent,omitempty"`
	Flags            map[string]any `json:"flags,omitempty"`
	CompressedDigest string         `json:"compressed-diff-digest,omitempty"`
	CompressedSize   int64          `json:"compressed-size,omitempty"`
	DiffDigest       string         `json:"diff-digest,omitempty"`
	DiffSize         *int64         `json:"diff-size,omitempty"`
	TOCDigest        string         `json:"toc-digest,omitempty"`
	UIDMap           []idMap        `json:"uidmap,omitempty"`
	GIDMap           []idMap        `json:"gidmap,omitempty"`
}

// imageJSON is a record of images.json (images.go Image).
type imageJSON struct {
	ID             string            `json:"id"`
	Digest         string            `json:"digest,omitempty"`
	Names          []string          `json:"names,omitempty"`
	TopLayer       string            `json:"layer,omitempty"`
	MappedLayers   []string          `json:"mapped-layers,omitempty"`
	BigDataNames   []string          `json:"big-data-names,omitempty"`
	BigDataSizes   map[string]int64  `json:"big-data-sizes,omitempty"`
	BigDataDigests map[string]string `json:"big-data-digests,omitempty"`
}

// containerJSON is a record of containers.json (containers.go Container).
type containerJSON struct {
	ID      string   `json:"id"`
	Names   []string `json:"names,omitempty"`
	ImageID string   `json:"image"`
	LayerID string   `json:"layer"`
}

// The JSON files of a graph root, relative to it.
func layersFile(driver string) string     { return driver + "-layers/layers.json" }
func volatileFile(driver string) string   { return driver + "-layers/volatile-layers.json" }
func imagesFile(driver string) string     { return driver + "-images/images.json" }
func containersFile(driver string) string { return driver + "-containers/containers.json" }
func volatileContainersFile(driver string) string {
	return driver + "-containers/volatile-containers.json"
}

// tarSplitRel is where a layer's tar-split lives (layers.go tspath).
func tarSplitRel(driver, id string) string { return driver + "-layers/" + id + ".tar-split.gz" }

// bigDataName is the file name of an image's big-data item (store.go
// makeBigDataBaseName): a key of [.0-9a-z] only is used as is, any other
// is "=" and the key in standard base64.
func bigDataName(key string) string {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c != '.' && (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return "=" + base64.StdEncoding.EncodeToString([]byte(key))
		}
	}
	return key
}

var (
	hex64Re = regexp.MustCompile(`^[a-f0-9]{64}$`)
	// idRe is what containers-storage accepts as a layer, image or
	// container ID (stringid: 64 hex); anything else cannot name a file.
	idRe = hex64Re
)

// parseDigest validates a recorded digest string.
func parseDigest(s string) (digest.Digest, bool) {
	d, err := digest.Parse(s)
	return d, err == nil
}

// fileID identifies one version of a file: a rename (an atomic write)
// gives another inode.
type fileID struct {
	ino, size int64
	mtime     int64
	exists    bool
}

func statID(r *os.Root, rel string) fileID {
	fi, err := r.Lstat(rel)
	if err != nil {
		return fileID{}
	}
	id := fileID{size: fi.Size(), mtime: fi.ModTime().UnixNano(), exists: true}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = int64(st.Ino)
	}
	return id
}

// readJSON reads a JSON array file of records. A missing or empty file is
// no records; anything else wrong is an error naming the file.
func readJSON[T any](r *os.Root, rel string, max int64) ([]T, bool, error) {
	data, err := diskcheck.ReadRegular(r, rel, max)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		return nil, true, err
	}
	if len(data) == 0 {
		return nil, true, nil
	}
	var out []T
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, true, fmt.Errorf("%s does not parse: %w", rel, err)
	}
	return out, true, nil
}

// records is one consistent read of a graph root's JSON files.
type records struct {
	layers     []layerJSON
	layerFile  []string // which file each layer came from
	layerErr   map[string]error
	images     []imageJSON
	imagesErr  error
	containers []containerJSON
	contFile   []string
	contErr    map[string]error
	ids        map[string]fileID
	haveImages bool
	haveLayers bool
}

// loadRecords reads layers.json, volatile-layers.json, images.json and
// containers.json. containers-storage replaces each by an atomic rename
// while podman or CRI-O run, so the files are read until two stats of every
// file around the reads agree (at most a few times): the records are then
// one state of the store, with no half-finished write between two files.
func loadRecords(r *os.Root, driver string, max int64) *records {
	files := []string{layersFile(driver), volatileFile(driver), imagesFile(driver), containersFile(driver), volatileContainersFile(driver)}
	var rec *records
	for try := 0; try < 5; try++ {
		before := map[string]fileID{}
		for _, f := range files {
			before[f] = statID(r, f)
		}
		rec = &records{layerErr: map[string]error{}, contErr: map[string]error{}, ids: before}
		for _, f := range files[:2] {
			ls, ok, err := readJSON[layerJSON](r, f, max)
			if err != nil {
				rec.layerErr[f] = err
			}
			rec.haveLayers = rec.haveLayers || ok
			for range ls {
				rec.layerFile = append(rec.layerFile, f)
			}
			rec.layers = append(rec.layers, ls...)
		}
		rec.images, rec.haveImages, rec.imagesErr = readJSON[imageJSON](r, files[2], max)
		for _, f := range files[3:] {
			cs, _, err := readJSON[containerJSON](r, f, max)
			if err != nil {
				rec.contErr[f] = err
			}
			for range cs {
				rec.contFile = append(rec.contFile, f)
			}
			rec.containers = append(rec.containers, cs...)
		}
		stable := true
		for _, f := range files {
			if statID(r, f) != before[f] {
				stable = false
			}
		}
		if stable {
			break
		}
	}
	return rec
}

// changed reports whether any of the JSON files was replaced since rec was read.
func (rec *records) changed(r *os.Root) bool {
	for f, id := range rec.ids {
		if statID(r, f) != id {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string { return diskcheck.SortedKeys(m) }

// toHost maps a container ID to the host through a uidmap or gidmap
// (idtools RawToHost); an ID outside every range is returned unchanged.
func toHost(m []idMap) func(int) int {
	if len(m) == 0 {
		return nil
	}
	return func(id int) int {
		for _, r := range m {
			if id >= r.ContainerID && id < r.ContainerID+r.Size {
				return r.HostID + id - r.ContainerID
			}
		}
		return id
	}
}
