package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	imageref "github.com/layercheck/layercheck/ref"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageRec is one imagedb entry.
type imageRec struct {
	hex      string
	id       digest.Digest
	rel      string // imagedb/content/sha256/<hex>, relative to the data root
	configOK bool   // parsed with a valid rootfs
	diffIDs  []digest.Digest
	chain    []digest.Digest
	refs     []string // repositories.json references, tags first
	name     string   // how the report names it: first tag, else the ID
	platform string   // the config's os/arch[/variant], "" when it names none
	children int      // images whose metadata parent this is
	fs       findingList
}

func (img *imageRec) subject() report.Subject {
	return report.Subject{Digest: img.id.String(), Path: img.rel}
}

// imageConfig is the part of an image config the audit reads.
type imageConfig = verify.ImageConfig

// loadImages reads imagedb/content and imagedb/metadata [invariants 1, 2, 4, 5, 7, 11].
func (a *audit) loadImages() {
	dir := a.imgRel + "/imagedb/content/sha256"
	ents, err := a.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: dir}, "%v", err)
	}
	for _, e := range ents {
		name, rel := e.Name(), dir+"/"+e.Name()
		switch {
		case strings.HasPrefix(name, ".tmp-"):
			a.add(finding(Leftover, report.Subject{Path: rel}, "temporary file of an interrupted image config write; Docker ignores it"))
			continue
		case !hex64.MatchString(name) || e.IsDir():
			a.add(sev(finding(Leftover, report.Subject{Path: rel}, "not an image config (Docker ignores names that are not 64 hex digits)"), report.Info))
			continue
		}
		img := &imageRec{hex: name, id: digest.NewDigestFromEncoded(digest.SHA256, name), rel: rel}
		a.images[name] = img
		data, err := a.readFile(rel, a.maxFile)
		if err != nil {
			if errors.Is(err, errNotRegular) {
				img.fs.Add(a.maxPer, finding(ImagedbDigest, img.subject(), "image config is not a regular file: %v", err))
			} else {
				a.problem(img.subject(), "reading image config: %v", err)
			}
			continue
		}
		if got := digest.FromBytes(data); got != img.id {
			img.fs.Add(a.maxPer, with(finding(ImagedbDigest, img.subject(),
				"image config does not hash to its name; Docker refuses the image (\"failed to verify\")"), img.id.String(), got.String()))
		}
		a.parseConfig(img, data)
	}
	a.loadImageMetadata()
}

func (a *audit) parseConfig(img *imageRec, data []byte) {
	var cfg imageConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		img.fs.Add(a.maxPer, finding(ImagedbConfig, img.subject(), "image config is not valid JSON: %v", err))
		return
	}
	img.platform = imageref.PlatformOf(&ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant})
	if cfg.RootFS == nil {
		img.fs.Add(a.maxPer, finding(ImagedbConfig, img.subject(), "image config has no rootfs"))
		return
	}
	if cfg.RootFS.Type != "layers" {
		img.fs.Add(a.maxPer, with(finding(ImagedbConfig, img.subject(), "rootfs.type is not \"layers\""), "layers", cfg.RootFS.Type))
		return
	}
	for i, s := range cfg.RootFS.DiffIDs {
		d, err := digest.Parse(s)
		if err != nil || d.Algorithm() != digest.SHA256 {
			img.fs.Add(a.maxPer, with(finding(ImagedbConfig, img.subject(), "rootfs.diff_ids[%d] is not a sha256 digest", i), "sha256:<64 hex>", s))
			return
		}
		img.diffIDs = append(img.diffIDs, d)
	}
	img.configOK = true
	img.chain = chainIDs(img.diffIDs)
	if len(cfg.History) > 0 {
		nonEmpty := 0
		for _, h := range cfg.History {
			if !h.EmptyLayer {
				nonEmpty++
			}
		}
		switch {
		case nonEmpty > len(img.diffIDs):
			img.fs.Add(a.maxPer, with(finding(ImagedbHistory, img.subject(),
				"more non-empty history entries than diff_ids; Docker refuses such a config"), fmt.Sprintf("at most %d", len(img.diffIDs)), fmt.Sprint(nonEmpty)))
		case nonEmpty < len(img.diffIDs):
			img.fs.Add(a.maxPer, sev(with(finding(ImagedbHistory, img.subject(),
				"fewer non-empty history entries than diff_ids (Docker accepts it)"), fmt.Sprint(len(img.diffIDs)), fmt.Sprint(nonEmpty)), report.Info))
		}
	}
}

// loadImageMetadata checks imagedb/metadata/sha256/<hex>/{parent,lastUpdated,builtLocally}.
func (a *audit) loadImageMetadata() {
	dir := a.imgRel + "/imagedb/metadata/sha256"
	ents, err := a.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: dir}, "%v", err)
	}
	for _, e := range ents {
		name, rel := e.Name(), dir+"/"+e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			a.add(finding(Leftover, report.Subject{Path: rel}, "temporary file of an interrupted metadata write; Docker ignores it"))
			continue
		}
		if !hex64.MatchString(name) || !e.IsDir() {
			a.add(sev(finding(Leftover, report.Subject{Path: rel}, "not an image metadata directory; Docker ignores it"), report.Info))
			continue
		}
		img := a.images[name]
		if img == nil {
			a.add(sev(finding(ImagedbMetadata, report.Subject{Digest: "sha256:" + name, Path: rel},
				"metadata directory of an image whose config is not stored (left by an interrupted delete)"), report.Warning))
			continue
		}
		files, err := a.readDir(rel)
		if err != nil {
			a.problem(report.Subject{Path: rel}, "%v", err)
			continue
		}
		for _, f := range files {
			frel := rel + "/" + f.Name()
			subj := report.Subject{Digest: img.id.String(), Path: frel}
			switch f.Name() {
			case "parent":
				a.checkImageParent(img, frel)
			case "lastUpdated":
				b, err := a.readFile(frel, 1024)
				if err != nil {
					img.fs.Add(a.maxPer, finding(ImagedbMetadata, subj, "lastUpdated unreadable: %v", err))
				} else if _, perr := time.Parse(time.RFC3339Nano, string(b)); perr != nil {
					img.fs.Add(a.maxPer, with(finding(ImagedbMetadata, subj, "lastUpdated is not an RFC 3339 time"), "e.g. 2026-11-22T10:06:22.247160849Z", quoteValue(b)))
				}
			case "builtLocally":
				b, err := a.readFile(frel, 1024)
				if err != nil {
					img.fs.Add(a.maxPer, finding(ImagedbMetadata, subj, "builtLocally unreadable: %v", err))
				} else if !bytes.Equal(b, []byte{1}) {
					img.fs.Add(a.maxPer, with(finding(ImagedbMetadata, subj, "builtLocally is not the single byte 0x01"), `"\x01"`, quoteValue(b)))
				}
			default:
				if strings.HasPrefix(f.Name(), ".tmp-") {
					a.add(finding(Leftover, report.Subject{Path: frel}, "temporary file of an interrupted metadata write; Docker ignores it"))
				}
			}
		}
	}
}

func (a *audit) checkImageParent(img *imageRec, rel string) {
	subj := report.Subject{Digest: img.id.String(), Path: rel}
	b, err := a.readFile(rel, 1024)
	if err != nil {
		img.fs.Add(a.maxPer, finding(ImagedbMetadata, subj, "parent unreadable: %v", err))
		return
	}
	d, format := parseDigestFile(b)
	switch format {
	case formatBad:
		img.fs.Add(a.maxPer, with(finding(ImagedbMetadata, subj, "parent is not an image ID"), "sha256:<64 hex>, no newline", quoteValue(b)))
		return
	case formatWhitespace:
		img.fs.Add(a.maxPer, sev(with(finding(ImagedbMetadata, subj, "parent has whitespace Docker never writes"), d.String(), quoteValue(b)), report.Warning))
	}
	parent := a.images[d.Encoded()]
	if parent == nil {
		img.fs.Add(a.maxPer, with(finding(ImagedbParent, subj, "parent image is not stored (dangling parent)"), d.String(), "absent"))
		return
	}
	parent.children++
	if !parent.configOK || !img.configOK {
		return
	}
	if len(parent.diffIDs) > len(img.diffIDs) || !sameDigests(parent.diffIDs, img.diffIDs[:len(parent.diffIDs)]) {
		img.fs.Add(a.maxPer, finding(ImagedbParent, subj, "the parent image's diff_ids are not a prefix of this image's; a builder or commit parent always is"))
	}
}

func sameDigests(a, b []digest.Digest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// repositories.json rules (reference/store.go, distribution/reference).
var (
	tagRe       = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	pathCompRe  = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	domainRe    = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?$|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$`)
	hexPrefixRe = regexp.MustCompile(`^[a-f0-9]{1,64}$`)
)

// splitRef splits a familiar reference into its name and its tag or digest.
func splitRef(ref string) (name, tag string, dgst string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i], "", ref[i+1:]
	}
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i+1:], "/") {
		return ref[:i], ref[i+1:], ""
	}
	return ref, "", ""
}

// validName checks a familiar repository name.
func validName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	comps := strings.Split(name, "/")
	if len(comps) > 1 && (strings.ContainsAny(comps[0], ".:") || comps[0] == "localhost" || strings.HasPrefix(comps[0], "[")) {
		if !domainRe.MatchString(comps[0]) {
			return false
		}
		comps = comps[1:]
	}
	for _, c := range comps {
		if !pathCompRe.MatchString(c) {
			return false
		}
	}
	return true
}

// loadRepositories checks repositories.json [invariants 8, 9] and names the images.
func (a *audit) loadRepositories() {
	rel := a.imgRel + "/repositories.json"
	// One document for every tag of the host: allow more than for a config.
	data, err := a.readFile(rel, max(a.maxFile, 64<<20))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		if errors.Is(err, errNotRegular) {
			a.add(finding(Repositories, report.Subject{Path: rel}, "repositories.json is not a regular file: %v", err))
		} else {
			a.problem(report.Subject{Path: rel}, "%v", err)
		}
	default:
		var doc struct {
			Repositories map[string]map[string]string
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			a.add(finding(Repositories, report.Subject{Path: rel}, "repositories.json does not parse; Docker starts with no tags: %v", err))
			break
		}
		for _, repo := range sortedKeys(doc.Repositories) {
			for _, ref := range sortedKeys(doc.Repositories[repo]) {
				a.checkRef(rel, repo, ref, doc.Repositories[repo][ref])
			}
		}
	}
	for _, img := range a.images {
		sort.SliceStable(img.refs, func(i, j int) bool {
			_, _, di := splitRef(img.refs[i])
			_, _, dj := splitRef(img.refs[j])
			if (di == "") != (dj == "") {
				return di == ""
			}
			return img.refs[i] < img.refs[j]
		})
		img.name = img.id.String()
		if len(img.refs) > 0 {
			img.name = img.refs[0]
		}
	}
}

func (a *audit) checkRef(rel, repo, ref, value string) {
	subj := report.Subject{Path: rel, Entry: ref}
	name, tag, dg := splitRef(ref)
	switch {
	case name != repo:
		a.add(with(finding(Repositories, subj, "reference is filed under another repository name"), name, repo))
	case !validName(name):
		a.add(finding(Repositories, subj, "repository name is not a valid reference name"))
	case name == "sha256":
		a.add(finding(Repositories, subj, "repository name is a digest algorithm; Docker refuses it"))
	case dg != "":
		if _, err := digest.Parse(dg); err != nil {
			a.add(finding(Repositories, subj, "digest reference does not parse: %v", err))
		}
	case tag == "":
		a.add(finding(Repositories, subj, "reference has neither a tag nor a digest"))
	case !tagRe.MatchString(tag):
		a.add(finding(Repositories, subj, "tag is not a valid tag"))
	case hex64.MatchString(tag):
		a.add(finding(Repositories, subj, "tag is a 64-hex digest; Docker refuses such tags"))
	}
	if !digestRe.MatchString(value) {
		a.add(with(finding(Repositories, subj, "reference does not point at an image ID"), "sha256:<64 hex>", value))
		return
	}
	img := a.images[strings.TrimPrefix(value, "sha256:")]
	if img == nil {
		a.add(with(finding(RepositoriesDangling, subj, "reference points at an image that is not in imagedb (dangling tag)"), value, "absent"))
		return
	}
	img.refs = append(img.refs, ref)
}

// normalizeRef turns a user's reference into the familiar form
// repositories.json uses (docker.io/library/ dropped, :latest added), as
// package ref writes it; a string that is no reference stays as it is.
func normalizeRef(s string) string {
	if r, err := imageref.Parse(s); err == nil {
		return r.Familiar()
	}
	return s
}

// selectImages applies Options.Images; with none, every image is selected.
func (a *audit) selectImages() error {
	all := make([]*imageRec, 0, len(a.images))
	for _, img := range a.images {
		all = append(all, img)
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].name < all[j].name || all[i].name == all[j].name && all[i].hex < all[j].hex
	})
	if a.full {
		a.selected = all
		return nil
	}
	chosen := map[*imageRec]bool{}
	for _, sel := range a.s.opts.Images {
		var match []*imageRec
		want := normalizeRef(sel)
		for _, img := range all {
			for _, r := range img.refs {
				if r == want || r == sel {
					match = append(match, img)
					break
				}
			}
		}
		if len(match) == 0 {
			if p := strings.TrimPrefix(sel, "sha256:"); hexPrefixRe.MatchString(p) {
				for _, img := range all {
					if strings.HasPrefix(img.hex, p) {
						match = append(match, img)
					}
				}
				if len(match) > 1 {
					return fmt.Errorf("image ID prefix %q is ambiguous: %d images match", sel, len(match))
				}
			}
		}
		if len(match) == 0 {
			var names []string
			for _, img := range all {
				names = append(names, img.name)
			}
			if len(names) > 10 {
				names = append(names[:10], "…")
			}
			return fmt.Errorf("image %q: %w; %s holds: %s", sel, errNoMatch, a.s, strings.Join(names, ", "))
		}
		for _, m := range match {
			chosen[m] = true
		}
	}
	for _, img := range all {
		if chosen[img] {
			a.selected = append(a.selected, img)
		}
	}
	return nil
}

// checkImages checks that each selected image's layers are stored [invariant 3]
// and marks the layers in scope.
func (a *audit) checkImages() {
	for _, img := range a.selected {
		if !img.configOK {
			continue
		}
		for i, c := range img.chain {
			l := a.layers[c.Encoded()]
			if l == nil {
				img.fs.Add(a.maxPer, with(report.Finding{
					Check: ImageLayerMissing, Severity: report.Error,
					Subject: report.Subject{Layer: report.LayerIndex(i), Digest: c.String(), Path: a.imgRel + "/layerdb/sha256/" + c.Encoded()},
					Message: "the image's layer is not in the layer store; Docker drops the image at start (\"not restoring image\")",
				}, c.String(), "absent"))
				break
			}
			a.inScope(l)
		}
	}
}

// inScope marks l and its parents for the content check.
func (a *audit) inScope(l *layerRec) {
	for n := 0; l != nil && !a.scope[l] && n <= maxLayerDepth+1; n++ {
		a.scope[l] = true
		l = l.parent
	}
}

// checkDangling notes untagged images nothing builds on and no container
// uses: what `docker image prune` removes.
func (a *audit) checkDangling() {
	used := map[string]bool{}
	for _, c := range a.containers {
		used[strings.TrimPrefix(c.image, "sha256:")] = true
	}
	for _, img := range a.selected {
		if len(img.refs) > 0 || img.children > 0 || used[img.hex] {
			continue
		}
		img.fs.Add(a.maxPer, finding(ImageDangling, img.subject(), "untagged image that no other image builds on and no container uses (dangling); `docker image prune` removes dangling images"))
	}
}
