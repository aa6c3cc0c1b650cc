package containerd

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// orphans reports blob files no namespace records, entries under blobs/
// that are not blobs, and leftover ingests.
func (a *auditor) orphans() {
	recorded := map[digest.Digest]bool{}
	for _, ns := range a.st.meta.Namespaces {
		for d := range ns.Blobs {
			recorded[d] = true
		}
	}
	for _, d := range sortedDigests(a.st.files) {
		if recorded[d] {
			continue
		}
		f := a.st.files[d]
		a.add(CheckBlobOrphan, report.Subject{Digest: d.String(), Path: f.Path},
			fmt.Sprintf("no namespace records this blob; containerd's garbage collection removes it (%d bytes)", f.Size), "", fmt.Sprint(f.Size))
	}
	for _, o := range a.st.oddFiles {
		a.addSev(CheckBlobOrphan, report.Warning, report.Subject{Path: o.Path}, "an entry of the content store that is not a blob: "+o.Why, "", "")
	}
	for _, in := range a.st.ingests {
		msg := fmt.Sprintf("unfinished write (an interrupted or running download) of %d bytes", in.Size)
		if in.Total >= 0 {
			msg = fmt.Sprintf("unfinished write (an interrupted or running download): %d of %d bytes", in.Size, in.Total)
		}
		if in.Ref != "" {
			msg += fmt.Sprintf(", ref %q", in.Ref)
		}
		a.add(CheckIngestLeftover, report.Subject{Path: in.Path}, msg, "", fmt.Sprint(in.Size))
	}
}

// nsSelected tells whether a namespace is audited; a namespace meta.db does
// not know (a backend name of a deleted namespace) counts as selected.
func (a *auditor) nsSelected(ns string) bool {
	if _, known := a.st.meta.Namespaces[ns]; !known {
		return true
	}
	for _, n := range a.st.selected {
		if n == ns {
			return true
		}
	}
	return false
}

// snapshotterChecks checks each snapshotter's records against meta.db and
// the disk: orphan records and directories, parents, the parents index,
// directories of snapshots no image chain covered, and meta.db snapshot
// records the snapshotter lacks.
func (a *auditor) snapshotterChecks() {
	for _, name := range sortedKeys(a.st.snapshotters) {
		snt := a.st.snapshotters[name]
		if !snt.Read {
			continue
		}
		named := map[string]bool{}
		for _, ns := range a.st.meta.Namespaces {
			for _, rec := range ns.Snapshots[name] {
				named[rec.Name] = true
			}
		}
		for _, bn := range sortedKeys(snt.Snapshots) {
			bs := snt.Snapshots[bn]
			nsName, _, _ := strings.Cut(bn, "/")
			if !a.nsSelected(nsName) {
				continue
			}
			path := snt.Dir + "/metadata.db:v1/snapshots/" + bn
			if !named[bn] {
				a.add(CheckSnapshotOrphan, report.Subject{Path: path}, fmt.Sprintf("no meta.db snapshot names this %s snapshot (%s); garbage collection removes it", name, kindName(bs.Kind)), "", "")
			}
			if bs.Parent != "" {
				p := snt.Snapshots[bs.Parent]
				switch {
				case p == nil:
					a.add(CheckSnapshotChain, report.Subject{Path: path + "/parent"}, "the snapshot's parent does not exist in the snapshotter", bs.Parent, "")
				case p.Kind != kindCommitted:
					a.add(CheckSnapshotChain, report.Subject{Path: path + "/parent"}, "the snapshot's parent is not committed", "committed", kindName(p.Kind))
				case p.HasID && bs.HasID:
					if _, ok := snt.Parents[[2]uint64{p.ID, bs.ID}]; !ok {
						a.add(CheckSnapshotChain, report.Subject{Path: snt.Dir + "/metadata.db:v1/parents"},
							fmt.Sprintf("the parents index has no link from %s (id %d) to %s (id %d)", bs.Parent, p.ID, bn, bs.ID), "", "")
					}
				}
			}
			if bs.HasID && !a.chainNames[name+"\x00"+bn] {
				if dir, known := snt.dataDir(bs.ID); known && !isDir(dir) {
					a.add(CheckSnapshotMissing, report.Subject{Path: dir}, fmt.Sprintf("the directory of %s snapshot %s (id %d) does not exist", kindName(bs.Kind), bn, bs.ID), dir, "")
				}
			}
		}
		a.orphanDirs(snt)
	}
	for _, n := range a.st.selected {
		ns := a.st.meta.Namespaces[n]
		for _, sn := range sortedKeys(ns.Snapshots) {
			keys := ns.Snapshots[sn]
			snt := a.st.snapshotters[sn]
			for _, k := range sortedKeys(keys) {
				rec := keys[k]
				path := metaPath(n, "snapshots", sn, k)
				if rec.Parent != "" && keys[rec.Parent] == nil {
					a.add(CheckSnapshotChain, report.Subject{Path: path + "/parent"}, "the snapshot's parent is not in meta.db", rec.Parent, "")
				}
				if snt != nil && snt.Read && rec.Name != "" && !a.chainNames[sn+"\x00"+rec.Name] && snt.Snapshots[rec.Name] == nil {
					a.add(CheckSnapshotMissing, report.Subject{Path: path}, fmt.Sprintf("the %s snapshotter has no snapshot named %q", sn, rec.Name), rec.Name, "")
				}
			}
		}
	}
}

// orphanDirs reports entries of snapshots/ that no snapshot id owns.
func (a *auditor) orphanDirs(snt *snapshotter) {
	dir := filepath.Join(snt.Dir, "snapshots")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if id, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && snt.ByID[id] != nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		size := diskUsage(p)
		a.add(CheckSnapshotOrphan, report.Subject{Path: p}, fmt.Sprintf("no %s snapshot owns this directory (%d bytes)", snt.Name, size), "", fmt.Sprint(size))
	}
}

// diskUsage sums the sizes of the regular files under p (without following links).
func diskUsage(p string) int64 {
	var n int64
	_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// leases reports lease entries that name content or snapshots the
// namespace does not hold.
func (a *auditor) leases() {
	for _, n := range a.st.selected {
		ns := a.st.meta.Namespaces[n]
		for _, id := range sortedKeys(ns.Leases) {
			lr := ns.Leases[id]
			for _, c := range lr.Content {
				if ns.Blobs[digest.Digest(c)] == nil {
					a.add(CheckLeaseDangling, report.Subject{Digest: c, Path: metaPath(n, "leases", id, "content", c)},
						fmt.Sprintf("lease %s holds content namespace %s has no record of", id, n), "", "")
				}
			}
			for _, sn := range sortedKeys(lr.Snapshots) {
				for _, k := range lr.Snapshots[sn] {
					if ns.Snapshots[sn][k] == nil {
						a.add(CheckLeaseDangling, report.Subject{Path: metaPath(n, "leases", id, "snapshots", sn, k)},
							fmt.Sprintf("lease %s holds %s snapshot %q, which namespace %s does not have", id, sn, k, n), "", "")
					}
				}
			}
		}
	}
}

type snapRef struct{ sn, key string }

// unreferenced finds, per namespace, the content and snapshots that nothing
// keeps alive the way containerd's garbage collector sees it (images,
// leases, containers, gc.root, and gc.ref labels from there), plus what the
// image graphs reference, and reports the rest with sizes.
func (a *auditor) unreferenced() {
	for _, n := range a.st.selected {
		ns := a.st.meta.Namespaces[n]
		content := map[digest.Digest]bool{}
		snaps := map[snapRef]bool{}
		var cq []digest.Digest
		var sq []snapRef
		addC := func(d digest.Digest) {
			if !content[d] {
				content[d] = true
				cq = append(cq, d)
			}
		}
		addS := func(r snapRef) {
			if !snaps[r] {
				snaps[r] = true
				sq = append(sq, r)
			}
		}
		followLabels := func(labels map[string]string) {
			for k, v := range labels {
				switch {
				case strings.HasPrefix(k, "containerd.io/gc.ref.content"):
					addC(digest.Digest(v))
				case strings.HasPrefix(k, gcRefSnapshot):
					addS(snapRef{strings.TrimPrefix(k, gcRefSnapshot), v})
				}
			}
		}
		for _, img := range ns.Images {
			if img.Target.Digest != "" {
				addC(img.Target.Digest)
			}
			followLabels(img.Labels)
		}
		for d := range a.refs[n] {
			addC(d)
		}
		for _, lr := range ns.Leases {
			for _, c := range lr.Content {
				addC(digest.Digest(c))
			}
			for sn, keys := range lr.Snapshots {
				for _, k := range keys {
					addS(snapRef{sn, k})
				}
			}
		}
		for _, c := range ns.Containers {
			if c.Snapshotter != "" && c.SnapshotKey != "" {
				addS(snapRef{c.Snapshotter, c.SnapshotKey})
			}
		}
		for d, rec := range ns.Blobs {
			if _, ok := rec.Labels[gcRoot]; ok {
				addC(d)
			}
		}
		for sn, keys := range ns.Snapshots {
			for k, rec := range keys {
				if _, ok := rec.Labels[gcRoot]; ok {
					addS(snapRef{sn, k})
				}
			}
		}
		for len(cq) > 0 || len(sq) > 0 {
			if len(cq) > 0 {
				d := cq[len(cq)-1]
				cq = cq[:len(cq)-1]
				if rec := ns.Blobs[d]; rec != nil {
					followLabels(rec.Labels)
				}
				continue
			}
			r := sq[len(sq)-1]
			sq = sq[:len(sq)-1]
			if rec := ns.Snapshots[r.sn][r.key]; rec != nil {
				if rec.Parent != "" {
					addS(snapRef{r.sn, rec.Parent})
				}
				followLabels(rec.Labels)
			}
		}
		for _, d := range sortedDigests(ns.Blobs) {
			if content[d] {
				continue
			}
			rec := ns.Blobs[d]
			a.add(CheckUnreferenced, report.Subject{Digest: d.String(), Path: metaPath(n, "content", "blob", d.String())},
				fmt.Sprintf("no image, lease or gc label of namespace %s references this content; garbage collection removes it (%d bytes)", n, rec.Size), "", fmt.Sprint(rec.Size))
		}
		for _, sn := range sortedKeys(ns.Snapshots) {
			for _, k := range sortedKeys(ns.Snapshots[sn]) {
				if snaps[snapRef{sn, k}] {
					continue
				}
				a.add(CheckUnreferenced, report.Subject{Path: metaPath(n, "snapshots", sn, k)},
					fmt.Sprintf("no image, container, lease or gc label of namespace %s references this %s snapshot; garbage collection removes it", n, sn), "", "")
			}
		}
	}
}
