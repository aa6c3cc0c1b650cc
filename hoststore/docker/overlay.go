package docker

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/layercheck/layercheck/report"
)

// linkOf returns the overlay link ID of a cache-id, read once; ok is false
// when the link file is missing or malformed.
func (a *audit) linkOf(id string) (string, bool) {
	if v, seen := a.links[id]; seen {
		return v, v != ""
	}
	b, err := a.readFile(a.drv.cacheDir(id)+"/link", 64)
	v := ""
	if err == nil && linkIDRe.Match(b) {
		v = string(b)
	}
	a.links[id] = v
	return v, v != ""
}

// checkLink checks <id>/link and l/<link> [invariant 24]. add records a finding.
func (a *audit) checkLink(id string, add func(report.Finding)) {
	rel := a.drv.cacheDir(id) + "/link"
	b, err := a.readFile(rel, 64)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		add(finding(OverlayLink, report.Subject{Path: rel}, "the layer directory has no link file; the layers above it cannot be mounted"))
		return
	case err != nil:
		add(finding(OverlayLink, report.Subject{Path: rel}, "link file unreadable: %v", err))
		return
	case !linkIDRe.Match(b):
		add(with(finding(OverlayLink, report.Subject{Path: rel}, "link is not a 26-character link ID"), "[A-Z2-7]{26}, no newline", quoteValue(b)))
		return
	}
	lrel := a.drv.dirRel + "/l/" + string(b)
	want := "../" + id + "/diff"
	fi, err := a.lstat(lrel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		add(with(finding(OverlayLink, report.Subject{Path: lrel}, "the layer's l/ symlink is missing; mounting it or any layer above it fails"), "symlink to "+want, "absent"))
		return
	case err != nil:
		a.problem(report.Subject{Path: lrel}, "%v", err)
		return
	case fi.Mode()&fs.ModeSymlink == 0:
		add(with(finding(OverlayLink, report.Subject{Path: lrel}, "l/ entry is not a symlink"), "symlink to "+want, typeName(fi.Mode())))
		return
	}
	target, err := a.readlink(lrel)
	if err != nil {
		a.problem(report.Subject{Path: lrel}, "%v", err)
		return
	}
	if target != want {
		add(with(finding(OverlayLink, report.Subject{Path: lrel}, "l/ symlink points at another directory than the layer's diff"), want, target))
	}
}

// lowerOf returns the lower value a layer on top of parent must have: the
// parent chain's links, nearest first. ok is false when a link is unknown
// (already reported).
func (a *audit) lowerOf(parent *layerRec) (string, bool) {
	var parts []string
	for p, n := parent, 0; p != nil; p, n = p.parent, n+1 {
		if p.cacheID == "" || n > maxLayerDepth {
			return "", false
		}
		link, ok := a.linkOf(p.cacheID)
		if !ok {
			return "", false
		}
		parts = append(parts, "l/"+link)
	}
	return strings.Join(parts, ":"), true
}

// checkLower compares <id>/lower with what it must be ("" for none).
func (a *audit) checkLower(id, want string, add func(report.Finding)) {
	rel := a.drv.cacheDir(id) + "/lower"
	b, err := a.readFile(rel, 1<<20)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if want != "" {
			add(with(finding(OverlayLower, report.Subject{Path: rel}, "the layer has a parent but no lower file; it would mount without its parents"), want, "absent"))
		}
	case err != nil:
		add(finding(OverlayLower, report.Subject{Path: rel}, "lower file unreadable: %v", err))
	case want == "":
		add(with(finding(OverlayLower, report.Subject{Path: rel}, "a base layer has a lower file; it would mount other layers below it"), "absent", quoteValue(b)))
	case string(b) != want:
		add(with(finding(OverlayLower, report.Subject{Path: rel}, "lower does not list the links of the layer's parent chain, nearest first; the mount would stack the wrong layers"), want, string(b)))
	}
}

// checkOverlay checks link files, l/ symlinks, lower chains and committed
// markers of the layers (and, for a full audit, mounts and l/ itself).
func (a *audit) checkOverlay() {
	for _, k := range sortedKeys(a.layers) {
		l := a.layers[k]
		if !(a.full || a.scope[l]) || l.cacheID == "" || !l.cacheDir {
			continue
		}
		add := func(f report.Finding) {
			f.Subject.Digest = l.chain.String()
			a.layerFinding(l, f)
		}
		a.checkLink(l.cacheID, add)
		switch {
		case l.parentID == "":
			a.checkLower(l.cacheID, "", add)
		case l.parent != nil && l.chainOK:
			if want, ok := a.lowerOf(l.parent); ok {
				a.checkLower(l.cacheID, want, add)
			}
		}
		if l.children > 0 && !a.exists(a.drv.cacheDir(l.cacheID)+"/committed") {
			add(finding(OverlayCommitted, report.Subject{Path: a.drv.cacheDir(l.cacheID)}, "a layer with children has no committed marker (written since Docker 20.10; older data)"))
		}
	}
	if !a.full {
		return
	}
	for _, name := range sortedKeys(a.mounts) {
		m := a.mounts[name]
		if m.mountID == "" || !a.cacheDirOK(m.mountID) {
			continue
		}
		chain, ok := "", true
		if m.parentID != "" {
			if m.parent == nil || !m.parent.chainOK {
				continue
			}
			chain, ok = a.lowerOf(m.parent)
		}
		if !ok {
			continue
		}
		a.checkLink(m.mountID, a.add)
		want := chain
		if m.initID != "" && safeName(m.initID) && a.cacheDirOK(m.initID) {
			a.checkLink(m.initID, a.add)
			a.checkLower(m.initID, chain, a.add)
			link, ok := a.linkOf(m.initID)
			if !ok {
				continue
			}
			want = "l/" + link
			if chain != "" {
				want += ":" + chain
			}
		}
		a.checkLower(m.mountID, want, a.add)
	}
	a.checkLinkDir()
}

// checkLinkDir reports l/ entries that point at no layer directory.
func (a *audit) checkLinkDir() {
	dir := a.drv.dirRel + "/l"
	ents, err := a.readDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.problem(report.Subject{Path: dir}, "%v", err)
		}
		return
	}
	for _, e := range ents {
		rel := dir + "/" + e.Name()
		if e.Type()&fs.ModeSymlink == 0 {
			a.add(with(finding(OverlayLink, report.Subject{Path: rel}, "l/ entry is not a symlink; Docker only creates symlinks here"), "symlink", typeName(e.Type())))
			continue
		}
		target, err := a.readlink(rel)
		if err != nil {
			a.problem(report.Subject{Path: rel}, "%v", err)
			continue
		}
		id, ok := strings.CutPrefix(target, "../")
		id, ok2 := strings.CutSuffix(id, "/diff")
		if !ok || !ok2 || !safeName(id) || !a.isDir(a.drv.layerRoot(id)) {
			a.add(with(finding(OverlayDanglingLink, report.Subject{Path: rel}, "l/ symlink points at no layer directory (dangling); Docker does not remove it"), "../<cache-id>/diff of an existing layer", target))
		}
	}
}
