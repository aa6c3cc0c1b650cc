// Package regstoretest lays out registry storages in distribution's
// filesystem format (docker/registry/v2: blobs, repositories with _layers,
// _manifests/revisions, _manifests/tags and _uploads) for tests: the files
// the registry writes when images are pushed, written by this builder, not
// by the code under test. It knows bytes and digests only; tests make the
// images (package fixtures) and hand their blobs and manifests over.
package regstoretest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Storage is a registry storage being laid out under Root (the filesystem
// driver's rootdirectory).
type Storage struct {
	Root string
	t    testing.TB
}

// New lays out an empty storage in a fresh temporary directory.
func New(t testing.TB) *Storage {
	t.Helper()
	s := &Storage{Root: t.TempDir(), t: t}
	s.mkdir("blobs")
	s.mkdir("repositories")
	return s
}

// V2 is the absolute path of docker/registry/v2.
func (s *Storage) V2() string { return filepath.Join(s.Root, "docker", "registry", "v2") }

// Path is the absolute path of rel (slash-separated, relative to docker/registry/v2).
func (s *Storage) Path(rel string) string { return filepath.Join(s.V2(), filepath.FromSlash(rel)) }

func (s *Storage) mkdir(rel string) {
	s.t.Helper()
	if err := os.MkdirAll(s.Path(rel), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// WriteFile writes rel with data, creating its directories.
func (s *Storage) WriteFile(rel string, data []byte) {
	s.t.Helper()
	s.mkdir(filepath.ToSlash(filepath.Dir(filepath.FromSlash(rel))))
	if err := os.WriteFile(s.Path(rel), data, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// Remove removes rel and everything under it.
func (s *Storage) Remove(rel string) {
	s.t.Helper()
	if err := os.RemoveAll(s.Path(rel)); err != nil {
		s.t.Fatal(err)
	}
}

// BlobRel is blobs/<alg>/<first two hex>/<hex>/data.
func BlobRel(d digest.Digest) string {
	return "blobs/" + string(d.Algorithm()) + "/" + d.Encoded()[:2] + "/" + d.Encoded() + "/data"
}

// LayerLinkRel is repositories/<repo>/_layers/<alg>/<hex>/link.
func LayerLinkRel(repo string, d digest.Digest) string {
	return "repositories/" + repo + "/_layers/" + string(d.Algorithm()) + "/" + d.Encoded() + "/link"
}

// RevisionLinkRel is repositories/<repo>/_manifests/revisions/<alg>/<hex>/link.
func RevisionLinkRel(repo string, d digest.Digest) string {
	return "repositories/" + repo + "/_manifests/revisions/" + string(d.Algorithm()) + "/" + d.Encoded() + "/link"
}

// TagDirRel is repositories/<repo>/_manifests/tags/<tag>.
func TagDirRel(repo, tag string) string { return "repositories/" + repo + "/_manifests/tags/" + tag }

// PutBlob stores data under its sha256 digest.
func (s *Storage) PutBlob(data []byte) digest.Digest {
	s.t.Helper()
	d := digest.FromBytes(data)
	s.WriteFile(BlobRel(d), data)
	return d
}

// PutBlobAs stores data under d, whatever it hashes to (sha512 blobs,
// corruptions).
func (s *Storage) PutBlobAs(d digest.Digest, data []byte) {
	s.t.Helper()
	s.WriteFile(BlobRel(d), data)
}

// Link writes a link file holding d, as the registry does (no newline).
func (s *Storage) Link(rel string, d digest.Digest) {
	s.t.Helper()
	s.WriteFile(rel, []byte(d))
}

// PushBlob stores data and links it into repo's _layers, as a blob upload does.
func (s *Storage) PushBlob(repo string, data []byte) digest.Digest {
	s.t.Helper()
	d := s.PutBlob(data)
	s.Link(LayerLinkRel(repo, d), d)
	return d
}

// PushManifest stores a manifest blob, links it as a revision of repo and
// points each tag at it, as a manifest PUT does.
func (s *Storage) PushManifest(repo string, data []byte, tags ...string) digest.Digest {
	s.t.Helper()
	d := s.PutBlob(data)
	s.Link(RevisionLinkRel(repo, d), d)
	for _, t := range tags {
		s.Tag(repo, t, d)
	}
	return d
}

// Tag points tag at d: current/link and an index entry.
func (s *Storage) Tag(repo, tag string, d digest.Digest) {
	s.t.Helper()
	s.Link(TagDirRel(repo, tag)+"/current/link", d)
	s.Link(TagDirRel(repo, tag)+"/index/"+string(d.Algorithm())+"/"+d.Encoded()+"/link", d)
}

// DeleteManifest does what a manifest DELETE does: it removes the revision
// link (leaving its directory) and every tag whose current link names d.
func (s *Storage) DeleteManifest(repo string, d digest.Digest) {
	s.t.Helper()
	s.Remove(RevisionLinkRel(repo, d))
	tags, _ := os.ReadDir(s.Path("repositories/" + repo + "/_manifests/tags"))
	for _, t := range tags {
		cur, err := os.ReadFile(s.Path(TagDirRel(repo, t.Name()) + "/current/link"))
		if err == nil && strings.TrimSpace(string(cur)) == d.String() {
			s.Remove(TagDirRel(repo, t.Name()))
		}
	}
}

// Upload leaves an unfinished upload: data and startedat.
func (s *Storage) Upload(repo, id string, started time.Time, data []byte) {
	s.t.Helper()
	base := "repositories/" + repo + "/_uploads/" + id
	s.WriteFile(base+"/data", data)
	s.WriteFile(base+"/startedat", []byte(started.UTC().Format(time.RFC3339)))
}
