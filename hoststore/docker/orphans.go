package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/layercheck/layercheck/hoststore/internal/diskcheck"
	"github.com/layercheck/layercheck/report"
)

// duSize is the size of a directory as Docker's directory.Size counts it:
// non-directories with size > 0, each inode once. It does not cross into
// other mounted filesystems (a container's merged/ view).
func (a *audit) duSize(rel string) int64 {
	root, start := a.rootFor(rel)
	return diskcheck.DuSize(root, start)
}

// checkOrphans reports driver directories nothing references [invariants 17, 29].
func (a *audit) checkOrphans() {
	ref := map[string]bool{}
	for _, l := range a.layers {
		if l.cacheID != "" {
			ref[l.cacheID] = true
		}
	}
	for _, id := range a.removing {
		ref[id] = true
	}
	for _, m := range a.mounts {
		if m.mountID != "" {
			ref[m.mountID] = true
			ref[m.mountID+"-init"] = true
		}
		if m.initID != "" {
			ref[m.initID] = true
		}
	}
	ents, err := a.readDir(a.drv.dirRel)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.problem(report.Subject{Path: a.drv.dirRel}, "%v", err)
		}
		return
	}
	var bkDirs int
	var bkSize int64
	for _, e := range ents {
		name, rel := e.Name(), a.drv.dirRel+"/"+e.Name()
		if a.drv.overlay && name == "l" {
			continue
		}
		if ref[name] {
			continue
		}
		if !e.IsDir() {
			a.add(sev(finding(Leftover, report.Subject{Path: rel}, "unexpected %s in the driver directory; Docker ignores it", typeName(e.Type())), report.Info))
			continue
		}
		size := a.duSize(rel)
		if a.bk != nil && a.bk.keys[name] {
			bkDirs++
			bkSize += size
			continue
		}
		msg := fmt.Sprintf("graph-driver directory referenced by no layer, container or BuildKit snapshot: %s of leaked layer data; no Docker command reclaims it", humanSize(size))
		if a.bk != nil && a.bk.err != nil {
			msg += " (BuildKit's snapshot database could not be read: it may own this directory)"
		}
		f := finding(OrphanDir, report.Subject{Path: rel}, "%s", msg)
		f.Actual = strconv.FormatInt(size, 10) // the orphan's bytes (report.RegisterOrphan)
		a.add(f)
	}
	if bkDirs > 0 {
		a.add(finding(BuildKit, report.Subject{Path: "buildkit/snapshots.db"}, "BuildKit owns %d graph-driver directories (%s), not counted as orphans; `docker builder prune` reclaims BuildKit's cache", bkDirs, humanSize(bkSize)))
	}
}

// checkUnused reports layers no image, container or BuildKit snapshot uses.
func (a *audit) checkUnused() {
	used := map[*layerRec]bool{}
	mark := func(l *layerRec) {
		for n := 0; l != nil && !used[l] && n <= maxLayerDepth+1; n++ {
			used[l] = true
			l = l.parent
		}
	}
	for _, img := range a.images {
		if img.configOK && len(img.chain) > 0 {
			mark(a.layers[img.chain[len(img.chain)-1].Encoded()])
		}
	}
	for _, m := range a.mounts {
		mark(m.parent)
	}
	if a.bk != nil {
		for c := range a.bk.chainIDs {
			mark(a.layers[strings.TrimPrefix(c, "sha256:")])
		}
	}
	for _, k := range sortedKeys(a.layers) {
		l := a.layers[k]
		if used[l] {
			continue
		}
		size := "unknown size"
		if l.sizeOK {
			size = humanSize(l.size)
		}
		a.layerFinding(l, finding(LayerUnused, l.subject(""), "layer used by no image, container or BuildKit snapshot (%s)", size))
	}
}

// checkDistribution checks distribution/ metadata [invariants 30-33].
func (a *audit) checkDistribution() {
	diffs := map[string]bool{}
	for _, l := range a.layers {
		if l.diff != "" {
			diffs[l.diff.String()] = true
		}
	}
	stale, staleMore := 0, 0
	addStale := func(f report.Finding) {
		if stale < a.maxPer {
			stale++
			a.add(f)
		} else {
			staleMore++
		}
	}
	byDigest := map[string]string{}
	dir := a.imgRel + "/distribution/diffid-by-digest/sha256"
	ents, err := a.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: dir}, "%v", err)
	}
	for _, e := range ents {
		rel := dir + "/" + e.Name()
		if !a.distName(e, rel) {
			continue
		}
		b, err := a.readFile(rel, 1024)
		if err != nil {
			a.add(finding(HostDistribution, report.Subject{Path: rel}, "unreadable: %v", err))
			continue
		}
		if !digestRe.Match(b) {
			a.add(with(finding(HostDistribution, report.Subject{Path: rel}, "diffid-by-digest entry is not a digest; Docker's pull cache would misread it"), "sha256:<64 hex>, no newline", quoteValue(b)))
			continue
		}
		byDigest["sha256:"+e.Name()] = string(b)
		if !diffs[string(b)] {
			addStale(finding(DistributionStale, report.Subject{Path: rel, Digest: string(b)}, "distribution entry for a layer no longer stored (Docker never removes these; harmless)"))
		}
	}
	dir = a.imgRel + "/distribution/v2metadata-by-diffid/sha256"
	ents, err = a.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: dir}, "%v", err)
	}
	for _, e := range ents {
		rel := dir + "/" + e.Name()
		if !a.distName(e, rel) {
			continue
		}
		b, err := a.readFile(rel, a.maxFile)
		if err != nil {
			a.add(finding(HostDistribution, report.Subject{Path: rel}, "unreadable: %v", err))
			continue
		}
		var entries []struct {
			Digest           string
			SourceRepository string
			HMAC             string
		}
		if err := json.Unmarshal(b, &entries); err != nil {
			a.add(finding(HostDistribution, report.Subject{Path: rel}, "v2metadata-by-diffid entry is not a JSON array of {Digest, SourceRepository, HMAC}: %v", err))
			continue
		}
		diffID := "sha256:" + e.Name()
		for i, m := range entries {
			subj := report.Subject{Path: rel, Entry: fmt.Sprintf("[%d]", i)}
			switch {
			case !digestRe.MatchString(m.Digest):
				a.add(with(finding(HostDistribution, subj, "Digest is not a sha256 digest"), "sha256:<64 hex>", m.Digest))
			case m.HMAC != "" && !hex64.MatchString(m.HMAC):
				a.add(with(finding(HostDistribution, subj, "HMAC is neither empty (pull) nor 64 hex (push)"), "\"\" or 64 hex", m.HMAC))
			default:
				if got, ok := byDigest[m.Digest]; ok && got != diffID {
					a.add(with(finding(HostDistribution, subj, "diffid-by-digest maps this blob to another diffID; Docker's pull cache is inconsistent (a pull would then fail)"), diffID, got))
				}
			}
		}
		if !diffs[diffID] {
			addStale(finding(DistributionStale, report.Subject{Path: rel, Digest: diffID}, "distribution entry for a layer no longer stored (Docker never removes these; harmless)"))
		}
	}
	if staleMore > 0 {
		a.add(finding(DistributionStale, report.Subject{Path: a.imgRel + "/distribution"}, "%d more distribution entries for layers no longer stored", staleMore))
	}
}

// distName filters distribution/ names: 64 hex files, or leftovers.
func (a *audit) distName(e fs.DirEntry, rel string) bool {
	switch {
	case strings.HasPrefix(e.Name(), ".tmp-"):
		a.add(finding(Leftover, report.Subject{Path: rel}, "temporary file of an interrupted distribution metadata write; Docker ignores it"))
		return false
	case !hex64.MatchString(e.Name()) || e.IsDir():
		a.add(sev(finding(Leftover, report.Subject{Path: rel}, "not a distribution metadata file; Docker ignores it"), report.Info))
		return false
	}
	return true
}

// checkImageRootLeftovers reports .tmp-* files in image/<driver>/ [invariant 11].
func (a *audit) checkImageRootLeftovers() {
	ents, err := a.readDir(a.imgRel)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			a.add(finding(Leftover, report.Subject{Path: a.imgRel + "/" + e.Name()}, "temporary file of an interrupted write (repositories.json); Docker ignores it"))
		}
	}
}
