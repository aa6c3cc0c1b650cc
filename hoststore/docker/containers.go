package docker

import (
	"encoding/json"
	"errors"
	"io/fs"
	"strings"

	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// mountRec is one layerdb/mounts/<name> directory (a read-write layer).
type mountRec struct {
	name     string
	rel      string
	mountID  string // "" when unreadable
	initID   string
	parentID digest.Digest
	parent   *layerRec
}

// containerRec is one containers/<id>/config.v2.json.
type containerRec struct {
	id     string
	rel    string
	image  string
	driver string
	broken bool // config.v2.json unreadable (reported once)
}

// loadMounts reads layerdb/mounts [invariant 26].
func (a *audit) loadMounts() {
	dir := a.imgRel + "/layerdb/mounts"
	ents, err := a.readDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: dir}, "%v", err)
	}
	for _, e := range ents {
		rel := dir + "/" + e.Name()
		if !e.IsDir() {
			if a.full {
				a.add(sev(finding(Leftover, report.Subject{Path: rel}, "not a mount directory; Docker ignores it"), report.Info))
			}
			continue
		}
		m := &mountRec{name: e.Name(), rel: rel}
		a.mounts[m.name] = m
		subj := func(file string) report.Subject { return report.Subject{Path: rel + "/" + file} }
		b, err := a.readFile(rel+"/mount-id", 4096)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			a.mountFinding(finding(Mount, subj("mount-id"), "mount-id is missing; Docker cannot load this container's layer"))
		case err != nil:
			a.mountFinding(finding(Mount, subj("mount-id"), "mount-id is unreadable: %v", err))
		case !mountIDRe.MatchString(string(b)):
			a.mountFinding(with(finding(Mount, subj("mount-id"), "mount-id is not a valid ID; Docker refuses it"), "64 hex, no newline", quoteValue(b)))
		default:
			m.mountID = string(b)
		}
		if b, err := a.readFile(rel+"/init-id", 4096); err == nil {
			m.initID = string(b)
			if m.mountID != "" && m.initID != m.mountID+"-init" {
				a.mountFinding(with(finding(Mount, subj("init-id"), "init-id is not mount-id + \"-init\""), m.mountID+"-init", quoteValue(b)))
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			a.mountFinding(finding(Mount, subj("init-id"), "init-id is unreadable: %v", err))
		}
		if b, err := a.readFile(rel+"/parent", 4096); err == nil {
			d, format := parseDigestFile(b)
			switch format {
			case formatBad:
				a.mountFinding(with(finding(Mount, subj("parent"), "parent is not a chainID"), "sha256:<64 hex>, no newline", quoteValue(b)))
			case formatWhitespace:
				a.mountFinding(sev(with(finding(Mount, subj("parent"), "parent has whitespace Docker never writes"), d.String(), quoteValue(b)), report.Warning))
				m.parentID = d
			default:
				m.parentID = d
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			a.mountFinding(finding(Mount, subj("parent"), "parent is unreadable: %v", err))
		}
	}
}

// mountFinding records a finding about a mount; mounts are audited only
// when the whole store is.
func (a *audit) mountFinding(f report.Finding) {
	if a.full {
		a.add(f)
	}
}

// checkMounts resolves mount parents and driver directories, and matches
// mounts with containers [invariants 26-28].
func (a *audit) checkMounts() {
	for _, name := range sortedKeys(a.mounts) {
		m := a.mounts[name]
		if m.parentID != "" {
			m.parent = a.layers[m.parentID.Encoded()]
			if m.parent == nil {
				a.add(with(finding(Mount, report.Subject{Path: m.rel + "/parent"}, "the container layer's parent is not in the layer store; Docker cannot mount it"), m.parentID.String(), "absent"))
			} else {
				m.parent.children++
			}
		}
		if m.mountID != "" && safeName(m.mountID) {
			if !a.cacheDirOK(m.mountID) {
				a.add(with(finding(MountDir, report.Subject{Path: m.rel + "/mount-id"}, "the container layer's driver directory is gone"), a.drv.layerRoot(m.mountID), "absent"))
			}
			if m.initID != "" && safeName(m.initID) && !a.cacheDirOK(m.initID) {
				a.add(with(finding(MountDir, report.Subject{Path: m.rel + "/init-id"}, "the container's init layer directory is gone"), a.drv.layerRoot(m.initID), "absent"))
			}
		}
		if _, ok := a.containers[name]; ok {
			continue
		}
		switch {
		case a.bk != nil && a.bk.keys[name]:
			// a BuildKit RW layer, listed in its snapshots.db
		case hex64.MatchString(name):
			a.add(finding(MountOrphan, report.Subject{Path: m.rel}, "read-write layer of no container (containers/%s is absent); no Docker command removes it", report.Short(name)))
		default:
			a.add(sev(finding(MountOrphan, report.Subject{Path: m.rel}, "read-write layer of no container; its name is not a container ID, so probably a BuildKit build step (`docker builder prune` reclaims BuildKit's space)"), report.Info))
		}
	}
	for _, id := range sortedKeys(a.containers) {
		c := a.containers[id]
		subj := report.Subject{Path: c.rel}
		if c.broken {
			continue
		}
		if c.driver != "" && c.driver != a.drv.name {
			a.add(sev(finding(Container, subj, "container created under graph driver %s; this daemon (%s) ignores it", c.driver, a.drv.name), report.Info))
			continue
		}
		m := a.mounts[id]
		if m == nil {
			a.add(with(finding(Container, subj, "the container has no read-write layer; Docker cannot start it"), a.imgRel+"/layerdb/mounts/"+id, "absent"))
		}
		if c.image == "" {
			continue
		}
		img := a.images[strings.TrimPrefix(c.image, "sha256:")]
		if img == nil {
			a.add(with(sev(finding(Container, subj, "the container's image is not stored (the container still runs from its layers)"), report.Warning), c.image, "absent"))
			continue
		}
		if m == nil || !img.configOK {
			continue
		}
		var want digest.Digest
		if len(img.chain) > 0 {
			want = img.chain[len(img.chain)-1]
		}
		if m.parentID != want {
			a.add(with(finding(Container, report.Subject{Path: m.rel + "/parent"}, "the container layer's parent is not the top layer of its image"), string(want), string(m.parentID)))
		}
	}
}

// loadContainers reads containers/<id>/config.v2.json.
func (a *audit) loadContainers() {
	ents, err := a.readDir("containers")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.problem(report.Subject{Path: "containers"}, "%v", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		rel := "containers/" + e.Name() + "/config.v2.json"
		c := &containerRec{id: e.Name(), rel: rel, broken: true}
		a.containers[c.id] = c
		b, err := a.readFile(rel, a.maxFile)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				a.add(finding(Container, report.Subject{Path: rel}, "the container has no config.v2.json; Docker skips it at start"))
			} else {
				a.add(finding(Container, report.Subject{Path: rel}, "config.v2.json is unreadable: %v", err))
			}
			continue
		}
		var cfg struct {
			Image  string
			Driver string
		}
		if err := json.Unmarshal(b, &cfg); err != nil {
			a.add(finding(Container, report.Subject{Path: rel}, "config.v2.json does not parse; Docker skips the container: %v", err))
			continue
		}
		c.image, c.driver, c.broken = cfg.Image, cfg.Driver, false
	}
}
