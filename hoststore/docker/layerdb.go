package docker

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
	digest "github.com/opencontainers/go-digest"
)

// ErrNoMatch is returned by Audit when Options.Images selects nothing. It is
// verify.ErrNoMatch, so callers handle every command's selection alike.
var ErrNoMatch = verify.ErrNoMatch

var errNoMatch = ErrNoMatch

// maxLayerDepth is Docker's limit on a layer chain (layer/layer_store.go).
const maxLayerDepth = 125

// layerRec is one layerdb/sha256/<chainID> directory.
type layerRec struct {
	name     string        // directory name (the chainID hex)
	chain    digest.Digest // sha256:<name>
	rel      string        // path relative to the data root
	diff     digest.Digest // "" when unreadable
	parentID digest.Digest // "" for a base layer or an unreadable parent
	parent   *layerRec
	size     int64
	sizeOK   bool
	cacheID  string // "" when unreadable or unsafe
	tarSplit bool   // tar-split.json.gz present, regular and not empty
	cacheDir bool   // the driver directory exists
	chainOK  bool   // parent chain resolves without a cycle
	children int    // layers and mounts whose parent this is
	fs       findingList
	res      *contentResult
	// analyzer is the layer analysis of the rebuild (nil when the analysis
	// is off or the rebuilt stream could not be analysed); analyzed: the
	// pass read the whole rebuilt tar.
	analyzer *verify.LayerAnalyzer
	analyzed bool
}

func (l *layerRec) subject(file string) report.Subject {
	p := l.rel
	if file != "" {
		p += "/" + file
	}
	return report.Subject{Digest: l.chain.String(), Path: p}
}

func (a *audit) layerFinding(l *layerRec, f report.Finding) { l.fs.Add(a.maxPer, f) }

// loadLayers reads every layerdb/sha256 directory and the layerdb/tmp
// leftovers [invariants 12, 23].
func (a *audit) loadLayers() {
	dir := a.imgRel + "/layerdb/sha256"
	ents, err := a.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: dir}, "%v", err)
	}
	for _, e := range ents {
		name, rel := e.Name(), dir+"/"+e.Name()
		if strings.HasSuffix(name, "-removing") && e.IsDir() {
			msg := "layer directory of an interrupted delete; dockerd finishes the delete at its next start"
			if b, err := a.readFile(rel+"/cache-id", 4096); err == nil && safeName(strings.TrimSpace(string(b))) {
				id := strings.TrimSpace(string(b))
				a.removing = append(a.removing, id)
				if a.isDir(a.drv.cacheDir(id)) {
					msg += fmt.Sprintf(" and removes its driver data %s (%s)", a.drv.cacheDir(id), humanSize(a.duSize(a.drv.cacheDir(id))))
				}
			}
			if a.full {
				a.add(finding(Leftover, report.Subject{Path: rel}, "%s", msg))
			}
			continue
		}
		if !hex64.MatchString(name) || !e.IsDir() {
			if a.full {
				a.add(sev(finding(Leftover, report.Subject{Path: rel}, "not a layer directory; Docker ignores it"), report.Info))
			}
			continue
		}
		l := &layerRec{name: name, chain: digest.NewDigestFromEncoded(digest.SHA256, name), rel: rel}
		a.layers[name] = l
		a.loadLayer(l)
	}
	if !a.full {
		return
	}
	tmp := a.imgRel + "/layerdb/tmp"
	ents, err = a.readDir(tmp)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: tmp}, "%v", err)
	}
	for _, e := range ents {
		rel := tmp + "/" + e.Name()
		if strings.HasPrefix(e.Name(), "write-set-") {
			a.add(finding(Leftover, report.Subject{Path: rel}, "write set of an interrupted layer registration (%s); Docker never reads it", humanSize(a.duSize(rel))))
		} else {
			a.add(sev(finding(Leftover, report.Subject{Path: rel}, "unexpected entry in layerdb/tmp; Docker ignores it"), report.Info))
		}
	}
}

// loadLayer reads diff, size, cache-id, parent and checks tar-split.json.gz.
func (a *audit) loadLayer(l *layerRec) {
	const skipped = "; Docker skips this layer and every layer above it"
	read := func(file string) ([]byte, bool) {
		b, err := a.readFile(l.rel+"/"+file, 4096)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, false
		case errors.Is(err, errNotRegular), errors.Is(err, errTooLarge):
			a.layerFinding(l, finding(LayerdbFile, l.subject(file), "%s is unreadable: %v"+skipped, file, err))
			return nil, true
		case err != nil:
			a.problem(l.subject(file), "%v", err)
			return nil, true
		}
		return b, true
	}

	// diff
	if b, ok := read("diff"); !ok {
		a.layerFinding(l, finding(LayerdbFile, l.subject("diff"), "diff is missing"+skipped))
	} else if b != nil {
		d, format := parseDigestFile(b)
		switch format {
		case formatBad:
			a.layerFinding(l, with(finding(LayerdbFile, l.subject("diff"), "diff is not a digest"+skipped), "sha256:<64 hex>, no newline", quoteValue(b)))
		case formatWhitespace:
			a.layerFinding(l, sev(with(finding(LayerdbFile, l.subject("diff"), "diff has whitespace Docker never writes (it trims it on read)"), d.String(), quoteValue(b)), report.Warning))
		}
		l.diff = d
	}

	// size: Docker parses it with strconv.ParseInt, without trimming.
	if b, ok := read("size"); !ok {
		a.layerFinding(l, finding(LayerdbFile, l.subject("size"), "size is missing"+skipped))
	} else if b != nil {
		v, err := strconv.ParseInt(string(b), 10, 64)
		switch {
		case err != nil:
			a.layerFinding(l, with(finding(LayerdbFile, l.subject("size"), "size is not a decimal integer"+skipped), "decimal bytes, no newline", quoteValue(b)))
		case v < 0:
			a.layerFinding(l, with(finding(LayerdbFile, l.subject("size"), "size is negative"), "bytes >= 0", string(b)))
		case strconv.FormatInt(v, 10) != string(b):
			a.layerFinding(l, sev(with(finding(LayerdbFile, l.subject("size"), "size is not written as Docker writes it"), strconv.FormatInt(v, 10), quoteValue(b)), report.Warning))
			l.size, l.sizeOK = v, true
		default:
			l.size, l.sizeOK = v, true
		}
	}

	// cache-id: Docker trims it and rejects an empty one.
	if b, ok := read("cache-id"); !ok {
		a.layerFinding(l, finding(LayerdbFile, l.subject("cache-id"), "cache-id is missing"+skipped))
	} else if b != nil {
		id := strings.TrimSpace(string(b))
		switch {
		case id == "":
			a.layerFinding(l, finding(LayerdbFile, l.subject("cache-id"), "cache-id is empty"+skipped))
		case !safeName(id):
			a.layerFinding(l, with(finding(LayerdbFile, l.subject("cache-id"), "cache-id is not a directory name; it would lead out of the driver directory"), "64 hex", quoteValue(b)))
		default:
			if id != string(b) {
				a.layerFinding(l, sev(with(finding(LayerdbFile, l.subject("cache-id"), "cache-id has whitespace Docker never writes (it trims it on read)"), id, quoteValue(b)), report.Warning))
			}
			l.cacheID = id
		}
	}

	// parent (optional)
	if b, ok := read("parent"); ok && b != nil {
		d, format := parseDigestFile(b)
		switch format {
		case formatBad:
			a.layerFinding(l, with(finding(LayerdbFile, l.subject("parent"), "parent is not a chainID"+skipped), "sha256:<64 hex>, no newline", quoteValue(b)))
			l.parentID = "invalid"
		case formatWhitespace:
			a.layerFinding(l, sev(with(finding(LayerdbFile, l.subject("parent"), "parent has whitespace Docker never writes (it trims it on read)"), d.String(), quoteValue(b)), report.Warning))
			l.parentID = d
		default:
			l.parentID = d
		}
	}

	// tar-split.json.gz
	ts := l.rel + "/tar-split.json.gz"
	fi, err := a.lstat(ts)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		a.layerFinding(l, finding(LayerdbFile, l.subject("tar-split.json.gz"), "tar-split.json.gz is missing; Docker cannot rebuild (save, push) this layer"))
	case err != nil:
		a.problem(l.subject("tar-split.json.gz"), "%v", err)
	case !fi.Mode().IsRegular():
		a.layerFinding(l, finding(LayerdbFile, l.subject("tar-split.json.gz"), "tar-split.json.gz is a %s, not a regular file", typeName(fi.Mode())))
	case fi.Size() == 0:
		a.layerFinding(l, finding(LayerdbFile, l.subject("tar-split.json.gz"), "tar-split.json.gz is empty; Docker cannot rebuild (save, push) this layer"))
	default:
		l.tarSplit = true
	}

	if l.cacheID != "" {
		l.cacheDir = a.cacheDirOK(l.cacheID)
	}
}

// cacheDirOK reports whether a cache-id's driver directory exists as the
// driver lays it out (for overlay drivers, with its diff/ directory).
func (a *audit) cacheDirOK(id string) bool {
	if !a.isDir(a.drv.cacheDir(id)) {
		return false
	}
	return !a.drv.overlay || a.isDir(a.drv.layerRoot(id))
}

// linkLayers resolves parents and checks chainIDs, parents, depth and
// cycles [invariants 13, 14, 15].
func (a *audit) linkLayers() {
	for _, k := range sortedKeys(a.layers) {
		l := a.layers[k]
		if l.parentID != "" && l.parentID != "invalid" {
			l.parent = a.layers[l.parentID.Encoded()]
			if l.parent == nil {
				a.layerFinding(l, with(finding(LayerParent, l.subject("parent"), "parent layer is not in the layer store; Docker skips this layer and every layer above it"), l.parentID.String(), "absent"))
			} else {
				l.parent.children++
			}
		}
		if l.diff != "" && l.parentID != "invalid" {
			want := l.diff
			if l.parentID != "" {
				want = digest.FromString(l.parentID.String() + " " + l.diff.String())
			}
			if want != l.chain {
				a.layerFinding(l, with(finding(LayerChainID, l.subject(""), "the layer directory's name is not the chainID of its parent and diff (diff or parent edited, or the directory renamed)"), want.String(), l.chain.String()))
			}
		}
	}
	for _, k := range sortedKeys(a.layers) {
		l := a.layers[k]
		seen := map[*layerRec]bool{}
		depth := 0
		l.chainOK = true
		for p := l; p != nil; p = p.parent {
			if seen[p] {
				a.layerFinding(l, finding(LayerParent, l.subject("parent"), "the parent chain loops back to layer %s", report.Short(p.chain.String())))
				l.chainOK = false
				break
			}
			seen[p] = true
			depth++
			if depth > maxLayerDepth+1 {
				break
			}
		}
		if l.chainOK && depth > maxLayerDepth {
			a.layerFinding(l, with(finding(LayerParent, l.subject(""), "the layer chain is deeper than Docker's limit"), fmt.Sprintf("at most %d", maxLayerDepth), fmt.Sprint(depth)))
		}
		if l.cacheID != "" && !l.cacheDir {
			if a.drv.name == "zfs" {
				a.problem(l.subject("cache-id"), "zfs dataset of cache-id %s is not mounted at %s; layercheck never mounts, so the layer's content is not checked", l.cacheID, a.drv.cacheDir(l.cacheID))
			} else {
				a.layerFinding(l, with(finding(LayerCacheDir, l.subject("cache-id"), "the layer's driver directory is missing: its data is gone"), a.drv.layerRoot(l.cacheID), "absent"))
			}
		}
	}
}

// checkCacheIDs reports cache-ids and mount-ids used twice [invariant 16].
func (a *audit) checkCacheIDs() {
	owners := map[string][]string{}
	byID := map[string][]*layerRec{}
	for _, k := range sortedKeys(a.layers) {
		l := a.layers[k]
		if l.cacheID != "" {
			owners[l.cacheID] = append(owners[l.cacheID], "layer "+l.chain.String())
			byID[l.cacheID] = append(byID[l.cacheID], l)
		}
	}
	for _, k := range sortedKeys(a.mounts) {
		m := a.mounts[k]
		if m.mountID != "" {
			owners[m.mountID] = append(owners[m.mountID], "mount "+m.name)
		}
	}
	for _, id := range sortedKeys(owners) {
		if len(owners[id]) < 2 {
			continue
		}
		msg := fmt.Sprintf("driver directory %s is shared by %s", a.drv.cacheDir(id), strings.Join(owners[id], ", "))
		if len(byID[id]) > 0 {
			for _, l := range byID[id] {
				if a.full || a.scope[l] {
					a.layerFinding(l, finding(LayerCacheShared, l.subject("cache-id"), "%s", msg))
				}
			}
		} else if a.full {
			a.add(finding(LayerCacheShared, report.Subject{Path: a.drv.cacheDir(id)}, "%s", msg))
		}
	}
}
