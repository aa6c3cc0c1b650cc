package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
	digest "github.com/opencontainers/go-digest"
)

// HostImage is what a Docker data root records about one image, read
// cheaply by [Store.LookupImage]: its config, its layers' layerdb records,
// its references and the distribution metadata of its layers. No layer
// content is read.
type HostImage struct {
	// ID is the image ID: the digest of Config, as the file name says (the
	// bytes are hashed and must match).
	ID     digest.Digest
	Config []byte
	// OS, Architecture and Variant are the config's platform fields.
	OS, Architecture, Variant string
	DiffIDs                   []digest.Digest
	ChainIDs                  []digest.Digest
	// Layers has one entry per chainID, base first.
	Layers []HostLayer
	// RepoTags and RepoDigests are the repositories.json references that
	// point at the image, in their familiar form ("nginx:latest",
	// "127.0.0.1:5000/app@sha256:…"), sorted.
	RepoTags, RepoDigests []string
	// ConfigPath is the config's path relative to the data root.
	ConfigPath string
}

// Platform returns os/arch[/variant], as ref.PlatformOf writes it.
func (h *HostImage) Platform() string {
	p := h.OS + "/" + h.Architecture
	if h.Variant != "" {
		p += "/" + h.Variant
	}
	return p
}

// Name is how reports name the image: its first tag, else its first repo
// digest, else its ID.
func (h *HostImage) Name() string {
	switch {
	case len(h.RepoTags) > 0:
		return h.RepoTags[0]
	case len(h.RepoDigests) > 0:
		return h.RepoDigests[0]
	}
	return h.ID.String()
}

// HostLayer is one layerdb/sha256/<chainID> record.
type HostLayer struct {
	ChainID digest.Digest
	// Present: the layerdb directory exists. The other fields are zero
	// when it does not.
	Present bool
	// Dir is the layerdb directory, relative to the data root.
	Dir string
	// Diff and Parent are the diff and parent files ("" when absent or
	// unreadable; a base layer has no parent).
	Diff, Parent digest.Digest
	// Size is the size file (-1 when absent or unreadable).
	Size int64
	// CacheID names the graph driver's directory of the layer.
	CacheID string
	// TarSplit is the path of tar-split.json.gz relative to the data root
	// ("" when it is not a non-empty regular file).
	TarSplit string
	// Problems are the layerdb files that could not be read as Docker
	// writes them, for people.
	Problems []string
	// Distribution are the distribution/v2metadata-by-diffid entries of
	// the layer's diffID: the compressed blobs the host pulled or pushed it
	// as.
	Distribution []V2Metadata
}

// V2Metadata is one distribution/v2metadata-by-diffid entry.
type V2Metadata struct {
	Digest           digest.Digest
	SourceRepository string // full repository name, e.g. docker.io/library/busybox
	HMAC             string // empty for a pull, 64 hex for a push
}

// LookupImage finds one image of the store by reference ("nginx",
// "nginx:latest", "docker.io/library/nginx:latest", "repo@sha256:…") or by
// image ID ("sha256:<hex>", or a unique hex prefix) and reads what the
// store records about it: config, layerdb records, references and the
// distribution metadata of its layers. It reads only those files (no layer
// content, no other image); nothing is written. An image that matches
// nothing gives an error matching ErrNoMatch.
func (s *Store) LookupImage(ref string) (*HostImage, error) {
	a, err := newAudit(s, &report.Builder{})
	if err != nil {
		return nil, err
	}
	defer a.close()
	repos, err := a.readRepositories()
	if err != nil {
		return nil, err
	}
	id, err := a.resolveImage(ref, repos)
	if err != nil {
		return nil, err
	}
	return a.lookupID(id, repos)
}

// lookupID reads what the store records about the image id.
func (a *audit) lookupID(id digest.Digest, repos map[string]string) (*HostImage, error) {
	var err error
	img := &HostImage{ID: id, ConfigPath: a.imgRel + "/imagedb/content/sha256/" + id.Encoded()}
	img.Config, err = a.readFile(img.ConfigPath, a.maxFile)
	if err != nil {
		return nil, fmt.Errorf("reading the config of image %s: %w", id, err)
	}
	if got := digest.FromBytes(img.Config); got != id {
		return nil, fmt.Errorf("image config %s does not hash to its name (%s): the image store is damaged; run layercheck host", img.ConfigPath, got)
	}
	var cfg struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
		RootFS       *struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(img.Config, &cfg); err != nil {
		return nil, fmt.Errorf("image config %s: %w", img.ConfigPath, err)
	}
	if cfg.RootFS == nil || cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("image config %s: no rootfs of type \"layers\"", img.ConfigPath)
	}
	img.OS, img.Architecture, img.Variant = cfg.OS, cfg.Architecture, cfg.Variant
	for i, d := range cfg.RootFS.DiffIDs {
		dd, err := digest.Parse(d)
		if err != nil || dd.Algorithm() != digest.SHA256 {
			return nil, fmt.Errorf("image config %s: rootfs.diff_ids[%d] %q is not a sha256 digest", img.ConfigPath, i, d)
		}
		img.DiffIDs = append(img.DiffIDs, dd)
	}
	img.ChainIDs = chainIDs(img.DiffIDs)
	for r, v := range repos {
		if v != id.String() {
			continue
		}
		if _, _, dg := splitRef(r); dg != "" {
			img.RepoDigests = append(img.RepoDigests, r)
		} else {
			img.RepoTags = append(img.RepoTags, r)
		}
	}
	sort.Strings(img.RepoTags)
	sort.Strings(img.RepoDigests)
	for i, c := range img.ChainIDs {
		l := a.hostLayer(c)
		l.Distribution = a.v2metadata(img.DiffIDs[i])
		img.Layers = append(img.Layers, l)
	}
	return img, nil
}

// readRepositories reads repositories.json into reference → image ID. A
// missing file is no references.
func (a *audit) readRepositories() (map[string]string, error) {
	rel := a.imgRel + "/repositories.json"
	data, err := a.readFile(rel, max(a.maxFile, 64<<20))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", rel, err)
	}
	var doc struct {
		Repositories map[string]map[string]string
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s does not parse: %w", rel, err)
	}
	out := map[string]string{}
	for _, refs := range doc.Repositories {
		for r, v := range refs {
			out[r] = v
		}
	}
	return out, nil
}

// resolveImage turns a reference or an ID prefix into an image ID, as the
// audit's image selection does.
func (a *audit) resolveImage(ref string, repos map[string]string) (digest.Digest, error) {
	want := normalizeRef(ref)
	for _, r := range []string{ref, want} {
		if v, ok := repos[r]; ok {
			d, err := digest.Parse(v)
			if err != nil {
				return "", fmt.Errorf("repositories.json: %s points at %q, not an image ID", r, v)
			}
			return d, nil
		}
	}
	p := strings.TrimPrefix(ref, "sha256:")
	if !hexPrefixRe.MatchString(p) {
		return "", fmt.Errorf("image %q: %w: no such reference in %s", ref, errNoMatch, a.s)
	}
	dir := a.imgRel + "/imagedb/content/sha256"
	ents, err := a.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var match []string
	for _, e := range ents {
		if hex64.MatchString(e.Name()) && strings.HasPrefix(e.Name(), p) {
			match = append(match, e.Name())
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("image %q: %w: no reference or image ID of %s matches", ref, errNoMatch, a.s)
	case 1:
		return digest.NewDigestFromEncoded(digest.SHA256, match[0]), nil
	}
	return "", fmt.Errorf("image ID prefix %q: %w: %d images of %s match", ref, store.ErrAmbiguous, len(match), a.s)
}

// hostLayer reads the layerdb record of one chainID.
func (a *audit) hostLayer(chain digest.Digest) HostLayer {
	l := HostLayer{ChainID: chain, Dir: a.imgRel + "/layerdb/sha256/" + chain.Encoded(), Size: -1}
	if !a.isDir(l.Dir) {
		return l
	}
	l.Present = true
	read := func(file string) []byte {
		b, err := a.readFile(l.Dir+"/"+file, 4096)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) || file != "parent" {
				l.Problems = append(l.Problems, fmt.Sprintf("%s: %v", file, err))
			}
			return nil
		}
		return b
	}
	if b := read("diff"); b != nil {
		if d, f := parseDigestFile(b); f != formatBad {
			l.Diff = d
		} else {
			l.Problems = append(l.Problems, fmt.Sprintf("diff is not a digest: %s", quoteValue(b)))
		}
	}
	if b := read("parent"); b != nil {
		if d, f := parseDigestFile(b); f != formatBad {
			l.Parent = d
		} else {
			l.Problems = append(l.Problems, fmt.Sprintf("parent is not a chainID: %s", quoteValue(b)))
		}
	}
	if b := read("size"); b != nil {
		if v, err := strconv.ParseInt(string(b), 10, 64); err == nil && v >= 0 {
			l.Size = v
		} else {
			l.Problems = append(l.Problems, fmt.Sprintf("size is not a decimal integer: %s", quoteValue(b)))
		}
	}
	if b := read("cache-id"); b != nil {
		if id := strings.TrimSpace(string(b)); safeName(id) {
			l.CacheID = id
		} else {
			l.Problems = append(l.Problems, fmt.Sprintf("cache-id is not a directory name: %s", quoteValue(b)))
		}
	}
	ts := l.Dir + "/tar-split.json.gz"
	fi, err := a.lstat(ts)
	switch {
	case err != nil:
		l.Problems = append(l.Problems, fmt.Sprintf("tar-split.json.gz: %v", err))
	case !fi.Mode().IsRegular() || fi.Size() == 0:
		l.Problems = append(l.Problems, fmt.Sprintf("tar-split.json.gz is not a non-empty regular file (%s, %d bytes)", typeName(fi.Mode()), fi.Size()))
	default:
		l.TarSplit = ts
	}
	return l
}

// v2metadata reads distribution/v2metadata-by-diffid of one diffID; a
// missing or malformed file gives none (the host audit reports those).
func (a *audit) v2metadata(diffID digest.Digest) []V2Metadata {
	b, err := a.readFile(a.imgRel+"/distribution/v2metadata-by-diffid/sha256/"+diffID.Encoded(), a.maxFile)
	if err != nil {
		return nil
	}
	var entries []struct {
		Digest           string
		SourceRepository string
		HMAC             string
	}
	if json.Unmarshal(b, &entries) != nil {
		return nil
	}
	var out []V2Metadata
	for _, e := range entries {
		if digestRe.MatchString(e.Digest) {
			out = append(out, V2Metadata{Digest: digest.Digest(e.Digest), SourceRepository: e.SourceRepository, HMAC: e.HMAC})
		}
	}
	return out
}

// DiffIDByDigest reads distribution/diffid-by-digest of a compressed blob
// digest: the diffID the host's pull cache maps it to. ok is false when the
// host has no entry for it.
func (s *Store) DiffIDByDigest(blob digest.Digest) (diffID digest.Digest, ok bool, err error) {
	if blob.Validate() != nil || blob.Algorithm() != digest.SHA256 {
		return "", false, nil
	}
	a, err := newAudit(s, &report.Builder{})
	if err != nil {
		return "", false, err
	}
	defer a.close()
	rel := a.imgRel + "/distribution/diffid-by-digest/sha256/" + blob.Encoded()
	b, err := a.readFile(rel, 1024)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	d, f := parseDigestFile(b)
	if f == formatBad {
		return digest.Digest(quoteValue(b)), true, nil
	}
	return d, true, nil
}

// OpenFile opens a regular file of the store read-only, rel relative to the
// data root (a HostLayer's TarSplit). A symlink or special file in its place
// is refused.
func (s *Store) OpenFile(rel string) (io.ReadCloser, error) {
	a, err := newAudit(s, &report.Builder{})
	if err != nil {
		return nil, err
	}
	f, err := a.openRegular(rel)
	if err != nil {
		a.close()
		return nil, err
	}
	return &closeBoth{File: f, a: a}, nil
}

type closeBoth struct {
	File interface {
		io.Reader
		io.Closer
	}
	a *audit
}

func (c *closeBoth) Read(p []byte) (int, error) { return c.File.Read(p) }

func (c *closeBoth) Close() error {
	err := c.File.Close()
	c.a.close()
	return err
}

// Layer reads the layerdb record of one chainID, whichever image uses it.
// A chainID the layer store lacks gives Present false, not an error.
func (s *Store) Layer(chainID digest.Digest) (HostLayer, error) {
	if chainID.Validate() != nil || chainID.Algorithm() != digest.SHA256 {
		return HostLayer{}, fmt.Errorf("layer %q: not a sha256 chainID", chainID)
	}
	a, err := newAudit(s, &report.Builder{})
	if err != nil {
		return HostLayer{}, err
	}
	defer a.close()
	return a.hostLayer(chainID), nil
}
