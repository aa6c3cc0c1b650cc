package regstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// V2Dir is where the storage lives under the driver's root directory.
const V2Dir = "docker/registry/v2"

// maxLinkSize bounds a link file: "sha512:" and 128 hex digits fit well.
const maxLinkSize = 256

// blobFile is one blobs/<alg>/<xx>/<hex>/data file.
type blobFile struct {
	d    digest.Digest
	rel  string // relative to V2Dir, slash-separated
	size int64
}

// link is one link file as read.
type link struct {
	rel    string        // relative to V2Dir
	dir    digest.Digest // the digest its directory is named by ("" for current/link)
	target digest.Digest // its content, "" when it is not a valid digest
	bad    string        // why target is "" (empty, garbage, too large, unreadable)
}

// tag is one _manifests/tags/<tag> directory.
type tag struct {
	name    string
	current *link // nil when current/link is absent
	index   []*link
}

// upload is one _uploads/<id> directory.
type upload struct {
	rel     string
	started time.Time // startedat, else the directory's mtime
	size    int64
}

// repo is one repository directory.
type repo struct {
	name      string
	hasLayers bool // a _layers directory: garbage-collect enumerates it
	layers    map[digest.Digest]*link
	revisions map[digest.Digest]*link
	strayLink []*link // link files at places the layout does not have
	tags      map[string]*tag
	uploads   []upload
	bytes     int64 // bytes of the files under _layers, _manifests and _uploads
}

// finding is a scan finding with the shard key that decides who reports it.
type finding struct {
	repo string        // the repository it concerns; "" for blobs/
	blob digest.Digest // the blob it concerns, when not a repository's
	f    report.Finding
}

// scan is everything read from the storage's directory tree.
type scan struct {
	blobs    map[digest.Digest]*blobFile
	repos    map[string]*repo
	names    []string // repository names, sorted
	findings []finding
	problems []report.Problem
}

// scanner walks the tree through an os.Root.
type scanner struct {
	root *os.Root
	s    *scan
}

func (sc *scanner) find(repoName string, blob digest.Digest, check report.Check, sev report.Severity, subj report.Subject, msg, want, got string) {
	if subj.Image == "" {
		subj.Image = repoName
	}
	sc.s.findings = append(sc.s.findings, finding{repo: repoName, blob: blob, f: report.Finding{Check: check, Severity: sev, Subject: subj, Message: msg, Expected: want, Actual: got}})
}

func (sc *scanner) problem(rel string, err error) {
	sc.s.problems = append(sc.s.problems, report.Problem{Subject: report.Subject{Path: path.Join(V2Dir, rel)}, Message: err.Error()})
}

// resolve looks at a walked entry: a regular file (or a symlink to one
// inside the root) gives its info; a symlink leaving the root, a special
// file or a symlink to a directory gives nil and a finding.
func (sc *scanner) resolve(repoName, rel string, de fs.DirEntry) fs.FileInfo {
	subj := report.Subject{Path: path.Join(V2Dir, rel)}
	if de.Type()&fs.ModeSymlink != 0 {
		fi, err := sc.root.Stat(rel)
		switch {
		case err != nil && strings.Contains(err.Error(), "escapes"):
			sc.find(repoName, "", CheckRegUnsafePath, report.Error, subj, "symlink leads out of the storage root; not followed", "", "")
			return nil
		case err != nil:
			sc.find(repoName, "", CheckRegUnsafePath, report.Warning, subj, "dangling symlink: "+err.Error(), "", "")
			return nil
		case fi.IsDir():
			sc.find(repoName, "", CheckRegUnsafePath, report.Warning, subj, "symlink to a directory; not followed", "", "")
			return nil
		case !fi.Mode().IsRegular():
			sc.find(repoName, "", CheckRegUnsafePath, report.Error, subj, fmt.Sprintf("symlink to a special file (%s); not read", fi.Mode().Type()), "", "")
			return nil
		}
		return fi
	}
	if !de.Type().IsRegular() {
		sc.find(repoName, "", CheckRegUnsafePath, report.Error, subj, fmt.Sprintf("special file (%s) where the storage keeps regular files; not read", de.Type()), "", "")
		return nil
	}
	fi, err := de.Info()
	if err != nil {
		sc.problem(rel, err)
		return nil
	}
	return fi
}

// walk walks dir (relative to the root), calling fn for every regular file
// (resolved as resolve does) and dirFn for every directory (SkipDir to prune).
func (sc *scanner) walk(repoName, dir string, dirFn func(rel string) error, fn func(rel string, fi fs.FileInfo)) {
	err := fs.WalkDir(sc.root.FS(), dir, func(rel string, de fs.DirEntry, err error) error {
		if err != nil {
			if rel == dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			sc.problem(rel, err)
			if de != nil && de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			if dirFn != nil {
				return dirFn(rel)
			}
			return nil
		}
		if fi := sc.resolve(repoName, rel, de); fi != nil {
			fn(rel, fi)
		}
		return nil
	})
	if err != nil {
		sc.problem(dir, err)
	}
}

// readSmall reads a regular file through the root, refusing more than
// limit bytes; it opens without blocking so a FIFO cannot hang it.
func readSmall(root *os.Root, rel string, limit int64) ([]byte, error) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than the limit of %d bytes", limit)
	}
	return data, nil
}

// scanStorage walks blobs/ and repositories/.
func scanStorage(root *os.Root) *scan {
	sc := &scanner{root: root, s: &scan{blobs: map[digest.Digest]*blobFile{}, repos: map[string]*repo{}}}
	sc.scanBlobs()
	sc.scanRepos()
	for n := range sc.s.repos {
		sc.s.names = append(sc.s.names, n)
	}
	sort.Strings(sc.s.names)
	return sc.s
}

// scanBlobs lists blobs/<alg>/<xx>/<hex>/data.
func (sc *scanner) scanBlobs() {
	sc.walk("", "blobs", nil, func(rel string, fi fs.FileInfo) {
		parts := strings.Split(rel, "/") // blobs alg xx hex data
		bad := func(msg string) {
			sc.find("", "", CheckRegBlobPath, report.Warning, report.Subject{Path: path.Join(V2Dir, rel)},
				fmt.Sprintf("%s (%d bytes); garbage-collect stops at a data file whose path is not a digest", msg, fi.Size()), "blobs/<alg>/<first two hex>/<hex>/data", rel)
		}
		if len(parts) != 5 || parts[4] != "data" {
			if parts[len(parts)-1] == "data" {
				bad("blob data file at the wrong depth")
			} else {
				bad("file under blobs/ that is not a blob's data")
			}
			return
		}
		d := digest.NewDigestFromEncoded(digest.Algorithm(parts[1]), parts[3])
		if err := d.Validate(); err != nil {
			bad("blob path is not a valid digest: " + err.Error())
			return
		}
		if parts[2] != parts[3][:2] {
			bad("blob directory " + parts[2] + " is not the first two hex digits of " + parts[3])
			return
		}
		sc.s.blobs[d] = &blobFile{d: d, rel: rel, size: fi.Size()}
	})
}

// scanRepos finds repositories as garbage-collect does (a directory with a
// _layers child; no descent into _-prefixed directories) and also
// directories with _manifests but no _layers, which it does not see.
func (sc *scanner) scanRepos() {
	const top = "repositories"
	err := fs.WalkDir(sc.root.FS(), top, func(rel string, de fs.DirEntry, err error) error {
		if err != nil {
			if rel == top && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			sc.problem(rel, err)
			return nil
		}
		if !de.IsDir() {
			if de.Type()&fs.ModeSymlink != 0 {
				sc.resolve("", rel, de) // reports a symlink leaving the root
			}
			return nil
		}
		base := path.Base(rel)
		if rel != top && strings.HasPrefix(base, "_") {
			return fs.SkipDir
		}
		if rel == top {
			return nil
		}
		name := strings.TrimPrefix(rel, top+"/")
		hasLayers := isDir(sc.root, rel+"/_layers")
		if hasLayers || isDir(sc.root, rel+"/_manifests") {
			sc.scanRepo(name, hasLayers)
		}
		return nil
	})
	if err != nil {
		sc.problem(top, err)
	}
}

func isDir(root *os.Root, rel string) bool {
	fi, err := root.Lstat(rel)
	return err == nil && fi.IsDir()
}

// repoNameOK is distribution/reference's path grammar for a repository name.
func repoNameOK(name string) bool {
	if len(name) > 255 || name == "" {
		return false
	}
	for _, comp := range strings.Split(name, "/") {
		if comp == "" {
			return false
		}
		// [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
		prevAlnum := false
		for i := 0; i < len(comp); i++ {
			c := comp[i]
			alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
			if !alnum && c != '.' && c != '_' && c != '-' {
				return false
			}
			if i == 0 && !alnum {
				return false
			}
			prevAlnum = alnum
		}
		if !prevAlnum {
			return false
		}
		if strings.Contains(comp, "..") || strings.Contains(comp, "___") || strings.Contains(comp, "._") || strings.Contains(comp, "_.") ||
			strings.Contains(comp, ".-") || strings.Contains(comp, "-.") || strings.Contains(comp, "_-") || strings.Contains(comp, "-_") {
			return false
		}
	}
	return true
}

// scanRepo reads one repository's links, tags and uploads.
func (sc *scanner) scanRepo(name string, hasLayers bool) {
	r := &repo{name: name, hasLayers: hasLayers, layers: map[digest.Digest]*link{}, revisions: map[digest.Digest]*link{}, tags: map[string]*tag{}}
	sc.s.repos[name] = r
	base := "repositories/" + name
	subj := report.Subject{Path: path.Join(V2Dir, base)}
	if !hasLayers {
		sc.find(name, "", CheckRegRepoInvalid, report.Warning, subj, "repository has _manifests/ but no _layers/: garbage-collect does not enumerate it, so it deletes every blob only this repository references", "", "")
	}
	if !repoNameOK(name) {
		sc.find(name, "", CheckRegRepoInvalid, report.Warning, subj, "directory name is not a valid repository name: the registry cannot address it and garbage-collect stops at it", "", name)
	}
	// _layers/<alg>/<hex>/link and _manifests/revisions/<alg>/<hex>/link
	digestLinks := func(dir string, into map[digest.Digest]*link) {
		sc.walk(name, base+"/"+dir, nil, func(rel string, fi fs.FileInfo) {
			r.bytes += fi.Size()
			sub := strings.Split(strings.TrimPrefix(rel, base+"/"+dir+"/"), "/")
			if path.Base(rel) != "link" {
				return // the registry ignores other files here
			}
			l := sc.readLink(name, rel)
			if len(sub) != 3 {
				sc.find(name, "", CheckRegLinkInvalid, report.Error, report.Subject{Path: path.Join(V2Dir, rel)}, "link file at a place the layout does not have; garbage-collect reads it all the same", dir+"/<alg>/<hex>/link", strings.TrimPrefix(rel, base+"/"))
				r.strayLink = append(r.strayLink, l)
				return
			}
			l.dir = digest.NewDigestFromEncoded(digest.Algorithm(sub[0]), sub[1])
			if err := l.dir.Validate(); err != nil {
				sc.find(name, "", CheckRegLinkInvalid, report.Error, report.Subject{Path: path.Join(V2Dir, rel)}, "link directory is not named by a valid digest: "+err.Error(), "<alg>/<hex>", sub[0]+"/"+sub[1])
				r.strayLink = append(r.strayLink, l)
				return
			}
			into[l.dir] = l
		})
	}
	digestLinks("_layers", r.layers)
	digestLinks("_manifests/revisions", r.revisions)
	// _manifests/tags/<tag>/current/link and .../index/<alg>/<hex>/link
	tagsDir := base + "/_manifests/tags"
	sc.walk(name, tagsDir, func(rel string) error {
		if rel != tagsDir && path.Dir(rel) == tagsDir {
			t := path.Base(rel)
			if r.tags[t] == nil {
				r.tags[t] = &tag{name: t}
			}
		}
		return nil
	}, func(rel string, fi fs.FileInfo) {
		r.bytes += fi.Size()
		sub := strings.Split(strings.TrimPrefix(rel, tagsDir+"/"), "/")
		if path.Base(rel) != "link" || len(sub) < 2 {
			return
		}
		t := r.tags[sub[0]]
		if t == nil {
			t = &tag{name: sub[0]}
			r.tags[sub[0]] = t
		}
		l := sc.readLink(name, rel)
		switch {
		case len(sub) == 3 && sub[1] == "current":
			t.current = l
		case len(sub) == 5 && sub[1] == "index":
			l.dir = digest.NewDigestFromEncoded(digest.Algorithm(sub[2]), sub[3])
			if err := l.dir.Validate(); err != nil {
				sc.find(name, "", CheckRegLinkInvalid, report.Error, report.Subject{Path: path.Join(V2Dir, rel)}, "tag index directory is not named by a valid digest: "+err.Error(), "<alg>/<hex>", sub[2]+"/"+sub[3])
				l.dir = ""
			}
			t.index = append(t.index, l)
		default:
			sc.find(name, "", CheckRegLinkInvalid, report.Error, report.Subject{Path: path.Join(V2Dir, rel)}, "link file at a place the tag layout does not have", "tags/<tag>/current/link or tags/<tag>/index/<alg>/<hex>/link", strings.TrimPrefix(rel, base+"/"))
		}
	})
	// _uploads/<id>/...
	upDir := base + "/_uploads"
	ups := map[string]*upload{}
	sc.walk(name, upDir, func(rel string) error {
		if path.Dir(rel) == upDir {
			u := &upload{rel: rel}
			if fi, err := sc.root.Lstat(rel); err == nil {
				u.started = fi.ModTime()
			}
			ups[rel] = u
		}
		return nil
	}, func(rel string, fi fs.FileInfo) {
		r.bytes += fi.Size()
		sub := strings.Split(strings.TrimPrefix(rel, upDir+"/"), "/")
		if len(sub) < 2 {
			return
		}
		u := ups[upDir+"/"+sub[0]]
		if u == nil {
			return
		}
		u.size += fi.Size()
		if len(sub) == 2 && sub[1] == "startedat" {
			if data, err := readSmall(sc.root, rel, 256); err == nil {
				if t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(data))); err == nil {
					u.started = t
				}
			}
		}
	})
	for _, u := range ups {
		r.uploads = append(r.uploads, *u)
	}
	sort.Slice(r.uploads, func(i, j int) bool { return r.uploads[i].rel < r.uploads[j].rel })
	r.checkLinkContents(sc)
}

// readLink reads a link file: exactly a digest, nothing else.
func (sc *scanner) readLink(repoName, rel string) *link {
	l := &link{rel: rel}
	data, err := readSmall(sc.root, rel, maxLinkSize)
	switch {
	case err != nil:
		l.bad = err.Error()
	case len(data) == 0:
		l.bad = "empty link file"
	default:
		d, perr := digest.Parse(string(data))
		if perr != nil {
			l.bad = fmt.Sprintf("link content %q is not a digest: %v", clip(data), perr)
		} else {
			l.target = d
		}
	}
	if l.bad != "" {
		sc.find(repoName, "", CheckRegLinkInvalid, report.Error, report.Subject{Path: path.Join(V2Dir, rel)}, l.bad+"; the registry answers an error for it and garbage-collect stops", "a digest such as sha256:<64 hex>", clip(data))
	}
	return l
}

func clip(b []byte) string {
	const n = 80
	if len(b) > n {
		return fmt.Sprintf("%q… (%d bytes)", b[:n], len(b))
	}
	return string(b)
}

// checkLinkContents compares each digest-named link with its directory.
// A link under another algorithm's directory naming a sha256 blob is an
// alias the registry writes for a blob pushed by a sha512 digest.
func (r *repo) checkLinkContents(sc *scanner) {
	check := func(l *link) {
		if l.target == "" || l.dir == "" || l.target == l.dir {
			return
		}
		if l.dir.Algorithm() != digest.Canonical && l.target.Algorithm() == digest.Canonical {
			return // alias: blobs are stored under their canonical digest
		}
		sc.find(r.name, "", CheckRegLinkMismatch, report.Error, report.Subject{Path: path.Join(V2Dir, l.rel), Digest: l.dir.String()},
			"link names another digest than its directory", l.dir.String(), l.target.String())
	}
	for _, l := range r.layers {
		check(l)
	}
	for _, l := range r.revisions {
		check(l)
	}
	for _, t := range r.tags {
		for _, l := range t.index {
			check(l)
		}
	}
}
