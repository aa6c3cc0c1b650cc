package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Registry is the distribution registry (Debian's docker-registry) the Env
// started, with filesystem storage, on 127.0.0.1 only, plain HTTP.
type Registry struct {
	Addr    string // 127.0.0.1:<port>
	Storage string // filesystem storage root (docker/registry/v2/... below it)
	Config  string // config.yml path
	Proc    *Proc

	env *Env
}

func registryConfig(storage, addr string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  headers:
    X-Content-Type-Options: [nosniff]
`, storage, addr)
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process
// may take it before the registry binds it; StartRegistry retries.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// StartRegistry starts the registry on a free port of 127.0.0.1. It is started
// once; later calls return it.
func (e *Env) StartRegistry() (*Registry, error) {
	e.mu.Lock()
	if r := e.registry; r != nil {
		e.mu.Unlock()
		return r, nil
	}
	e.mu.Unlock()
	dir := e.Path("registry")
	r := &Registry{Storage: filepath.Join(dir, "storage"), Config: filepath.Join(dir, "config.yml"), env: e}
	if err := os.MkdirAll(r.Storage, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		if err := os.WriteFile(r.Config, []byte(registryConfig(r.Storage, addr)), 0o644); err != nil {
			return nil, err
		}
		p, err := e.startProc("registry", []string{e.Tools.Registry, "serve", r.Config}, nil, 10*time.Second)
		if err != nil {
			return nil, err
		}
		r.Addr, r.Proc = addr, p
		lastErr = waitFor(30*time.Second, p, "the registry to answer on "+addr, func() error {
			resp, err := http.Get("http://" + addr + "/v2/")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /v2/: %s", resp.Status)
			}
			return nil
		})
		if lastErr == nil {
			e.mu.Lock()
			e.registry = r
			e.mu.Unlock()
			return r, nil
		}
		_ = p.Stop()
	}
	return nil, lastErr
}

// Registry returns the registry, or nil before StartRegistry.
func (e *Env) Registry() *Registry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.registry
}

// Stop stops the registry by its pid.
func (r *Registry) Stop() error {
	if r == nil || r.Proc == nil {
		return nil
	}
	return r.Proc.Stop()
}

// Ref returns the registry reference of repo:tag, e.g. 127.0.0.1:41234/vfs/busybox:1.
func (r *Registry) Ref(repoTag string) string { return r.Addr + "/" + repoTag }

// Manifest is a manifest as the registry serves it.
type Manifest struct {
	Body        []byte
	MediaType   string // Content-Type
	Digest      string // Docker-Content-Digest header
	Computed    string // sha256 of Body
	ContentSize int64
}

// AcceptAll lists every manifest media type the registry may serve.
var AcceptAll = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
}, ", ")

// Manifest fetches repo's manifest ref (a tag or a digest) over HTTP.
func (r *Registry) Manifest(ctx context.Context, repo, ref string) (Manifest, error) {
	body, hdr, err := r.get(ctx, "/v2/"+repo+"/manifests/"+ref, AcceptAll)
	if err != nil {
		return Manifest{}, err
	}
	sum := sha256.Sum256(body)
	return Manifest{
		Body:        body,
		MediaType:   hdr.Get("Content-Type"),
		Digest:      hdr.Get("Docker-Content-Digest"),
		Computed:    "sha256:" + hex.EncodeToString(sum[:]),
		ContentSize: int64(len(body)),
	}, nil
}

// Blob fetches a blob of repo.
func (r *Registry) Blob(ctx context.Context, repo, digest string) ([]byte, error) {
	body, _, err := r.get(ctx, "/v2/"+repo+"/blobs/"+digest, "")
	return body, err
}

func (r *Registry) get(ctx context.Context, path, accept string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Addr+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, resp.Header, nil
}
