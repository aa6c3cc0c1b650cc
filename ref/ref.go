package ref

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
)

// Ref is a parsed, normalised image reference.
type Ref struct {
	// Registry is the registry host (docker.io for Docker Hub).
	Registry string
	// Repository is the path in the registry (library/nginx).
	Repository string
	// Tag is "" when the reference names a digest only.
	Tag string
	// Digest is "" when the reference names a tag.
	Digest digest.Digest
}

// Parse parses s and normalises it: a missing registry is docker.io, a
// single-component Docker Hub name gains library/, a missing tag and digest
// is :latest. A reference with both tag and digest keeps both.
func Parse(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Ref{}, fmt.Errorf("empty image reference")
	}
	tagPart, dg, hasDigest := strings.Cut(s, "@")
	var r Ref
	if hasDigest {
		d, err := digest.Parse(dg)
		if err != nil {
			return Ref{}, fmt.Errorf("image reference %q: digest: %w", s, err)
		}
		r.Digest = d
	}
	var repo name.Repository
	if hasTag(tagPart) {
		t, err := name.NewTag(tagPart, name.Insecure)
		if err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
		}
		repo, r.Tag = t.Context(), t.TagStr()
	} else {
		rp, err := name.NewRepository(tagPart, name.Insecure)
		if err != nil {
			return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
		}
		repo = rp
		if !hasDigest {
			r.Tag = "latest"
		}
	}
	r.Registry = repo.RegistryStr()
	if r.Registry == name.DefaultRegistry {
		r.Registry = "docker.io"
	}
	r.Repository = repo.RepositoryStr()
	return r, nil
}

// hasTag reports whether a reference without digest ends in :tag (a colon
// after the last slash, so a registry port is not taken for a tag).
func hasTag(s string) bool {
	i := strings.LastIndexByte(s, ':')
	return i >= 0 && !strings.Contains(s[i+1:], "/")
}

// Name is registry/repository: docker.io/library/nginx.
func (r Ref) Name() string { return r.Registry + "/" + r.Repository }

// String is the full normalised form: docker.io/library/nginx:latest,
// docker.io/library/nginx@sha256:…, or both.
func (r Ref) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// FamiliarName is the repository as Docker shows it: docker.io/ and
// library/ dropped (nginx, grafana/grafana, ghcr.io/o/a).
func (r Ref) FamiliarName() string {
	if r.Registry != "docker.io" {
		return r.Name()
	}
	if rest, ok := strings.CutPrefix(r.Repository, "library/"); ok && !strings.Contains(rest, "/") {
		return rest
	}
	return r.Repository
}

// Familiar is the reference as Docker's repositories.json and `docker
// images` write it: nginx:latest, 127.0.0.1:5000/app@sha256:….
func (r Ref) Familiar() string {
	s := r.FamiliarName()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// WithDigest is the reference of the same repository by digest.
func (r Ref) WithDigest(d digest.Digest) Ref {
	return Ref{Registry: r.Registry, Repository: r.Repository, Digest: d}
}

// Normalize returns the full normalised form of s, or s unchanged when it
// does not parse as a reference (an ID prefix, say).
func Normalize(s string) string {
	r, err := Parse(s)
	if err != nil {
		return s
	}
	return r.String()
}

// RepositoryOf returns registry/repository of s, "" when it does not parse.
func RepositoryOf(s string) string {
	r, err := Parse(s)
	if err != nil {
		return ""
	}
	return r.Name()
}

// IDPrefix returns the hex of an image ID or ID prefix selector
// ("sha256:ab12…" or "ab12…", at least 4 lower-case hex digits).
func IDPrefix(sel string) (string, bool) {
	hex := strings.TrimPrefix(sel, "sha256:")
	if len(hex) < 4 || len(hex) > 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", false
	}
	return hex, true
}

// MatchName reports whether a selector names the reference name (both are
// normalised: nginx selects docker.io/library/nginx:latest; nginx@sha256:…
// selects that digest; a selector without tag or digest also selects a
// digest-only reference of the repository).
func MatchName(sel, n string) bool {
	if sel == n {
		return true
	}
	s, err := Parse(sel)
	if err != nil {
		return false
	}
	r, err := Parse(n)
	if err != nil || s.Name() != r.Name() {
		return false
	}
	switch {
	case s.Digest != "":
		return s.Digest == r.Digest
	case r.Tag == "" && r.Digest != "":
		// A digest-only name: a bare repository selects it.
		return !strings.Contains(strings.TrimPrefix(sel, s.Registry), ":")
	default:
		return s.Tag == r.Tag
	}
}

// Match reports whether a selector (a reference, an image ID or a unique
// ID prefix) selects an object with these names and digests.
func Match(sel string, names []string, ids ...digest.Digest) bool {
	for _, n := range names {
		if n != "" && MatchName(sel, n) {
			return true
		}
	}
	if hex, ok := IDPrefix(sel); ok {
		for _, d := range ids {
			if d != "" && strings.HasPrefix(d.Encoded(), hex) {
				return true
			}
		}
	}
	return false
}

// HasRegistryHost reports whether s names its registry explicitly: a first
// path component with a dot or a port, or localhost.
func HasRegistryHost(s string) bool {
	first, _, ok := strings.Cut(s, "/")
	if !ok {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost" || strings.HasPrefix(first, "[")
}
