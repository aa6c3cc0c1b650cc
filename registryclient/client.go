package registryclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/layercheck/layercheck/source"
)

// Defaults for the zero values of Options.
const (
	DefaultConnectTimeout    = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxStreamsPerHost = 8
	DefaultMaxManifestSize   = 4 << 20
	DefaultRetryDelay        = 500 * time.Millisecond
	DefaultMaxRetryDelay     = 30 * time.Second
	DefaultMaxRetryAfter     = 2 * time.Minute
)

// Options configure a Client.
type Options struct {
	// Insecure allows plain HTTP and unverified TLS certificates for every
	// registry. Loopback registries (localhost, 127.0.0.0/8, ::1) are reached
	// over HTTP without it, as Docker does.
	Insecure bool
	// Mirrors are tried, in order, before docker.io itself for images of
	// docker.io, like a daemon's registry-mirrors: "https://mirror.example",
	// "http://localhost:5001". A mirror that fails falls back to the origin.
	Mirrors []string
	// AllowNondistributable fetches foreign and non-distributable layers from
	// the URLs of their descriptors (http and https only). Without it they are
	// reported as not in the source, and the verifier lists them as skipped.
	AllowNondistributable bool
	// ConnectTimeout bounds dialing and the TLS handshake (0: DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// IdleTimeout bounds waiting for response headers and any stall of a
	// response body (0: DefaultIdleTimeout). A stalled blob is resumed.
	IdleTimeout time.Duration
	// Retries is how many times a failed request, or an interrupted blob
	// stream that made no progress since its last failure, is tried again.
	// Negative: none.
	Retries int
	// RetryDelay is the first backoff delay, doubled on each retry up to
	// MaxRetryDelay (0: the defaults). A Retry-After header replaces the
	// delay, up to MaxRetryAfter.
	RetryDelay, MaxRetryDelay, MaxRetryAfter time.Duration
	// MaxStreamsPerHost bounds the blob streams open at once to one host
	// (0: DefaultMaxStreamsPerHost).
	MaxStreamsPerHost int
	// MaxManifestSize bounds the manifests read into memory (0: DefaultMaxManifestSize).
	MaxManifestSize int64
	// Keychain finds credentials (nil: authn.DefaultKeychain, which reads
	// ~/.docker/config.json, $DOCKER_CONFIG and credential helpers, and
	// falls back to anonymous access and the anonymous token flow).
	Keychain authn.Keychain
	// UserAgent is sent with every request ("" : "layercheck").
	UserAgent string
	// Logf, when set, receives one line per retry and resumption. Lines never
	// hold credentials.
	Logf func(format string, args ...any)
}

// Client talks to registries. One Client serves any number of Sources and
// shares connections, tokens and per-host limits between them. It is safe
// for concurrent use.
type Client struct {
	opts    Options
	regRT   http.RoundTripper // registry hosts: retries, the plain-HTTP guard
	plainRT http.RoundTripper // other hosts (blob storage, foreign URLs): retries, never credentials
	mirrors []mirror
	secrets *secrets

	mu    sync.Mutex
	auths map[string]*authEntry
	sems  map[string]chan struct{}
	http  map[string]bool // registry hosts allowed over plain HTTP
}

type mirror struct {
	host   string
	scheme string
}

type authEntry struct {
	mu sync.Mutex
	rt http.RoundTripper
}

// NewClient returns a Client. It makes no request.
func NewClient(opts Options) (*Client, error) {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = DefaultRetryDelay
	}
	if opts.MaxRetryDelay <= 0 {
		opts.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if opts.MaxRetryAfter <= 0 {
		opts.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if opts.MaxStreamsPerHost <= 0 {
		opts.MaxStreamsPerHost = DefaultMaxStreamsPerHost
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "layercheck"
	}
	c := &Client{opts: opts, secrets: &secrets{}, auths: map[string]*authEntry{}, sems: map[string]chan struct{}{}, http: map[string]bool{}}
	for _, m := range opts.Mirrors {
		mm, err := parseMirror(m)
		if err != nil {
			return nil, err
		}
		if mm.scheme == "http" {
			c.http[mm.host] = true
		}
		c.mirrors = append(c.mirrors, mm)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.IdleTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2 * opts.MaxStreamsPerHost,
		// Blobs must arrive as stored: no Accept-Encoding, no transparent gunzip.
		DisableCompression: true,
	}
	if opts.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only with --insecure
	}
	c.plainRT = &retryTransport{c: c, inner: tr}
	c.regRT = &retryTransport{c: c, inner: &httpGuard{c: c, inner: tr}}
	return c, nil
}

// parseMirror accepts "host[:port]" or "http(s)://host[:port][/]".
func parseMirror(s string) (mirror, error) {
	raw := s
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return mirror{}, fmt.Errorf("--mirror %s: not a registry URL (want https://host[:port])", redactString(raw))
	}
	if u.User != nil {
		return mirror{}, fmt.Errorf("--mirror %s: credentials in the URL are not accepted; put them in the Docker config", redactURL(u))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return mirror{}, fmt.Errorf("--mirror %s: scheme %q is not http or https", redactURL(u), u.Scheme)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return mirror{}, fmt.Errorf("--mirror %s: a mirror URL has no path (like a daemon's registry-mirrors)", redactURL(u))
	}
	return mirror{host: u.Host, scheme: u.Scheme}, nil
}

// endpoint is one registry repository that may serve an image: the origin or a mirror.
type endpoint struct {
	repo   name.Repository
	mirror bool
}

func (e *endpoint) host() string { return e.repo.RegistryStr() }

func (e *endpoint) url(kind, ref string) *url.URL {
	// The scheme is settled by go-containerregistry's ping, whose transport
	// rewrites it for the registry's host.
	return &url.URL{Scheme: "https", Host: e.host(), Path: "/v2/" + e.repo.RepositoryStr() + "/" + kind + "/" + ref}
}

func (e *endpoint) String() string { return e.repo.Name() }

// isLoopback reports whether host (with or without a port) is localhost,
// 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// httpAllowed reports whether a registry host may be reached over plain HTTP.
func (c *Client) httpAllowed(host string) bool {
	if c.opts.Insecure || isLoopback(host) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.http[host]
}

// httpGuard refuses plain HTTP to registries that are not allowed it.
// go-containerregistry falls back to HTTP for private (RFC 1918) addresses
// too; layercheck does that only for loopback or with --insecure.
type httpGuard struct {
	c     *Client
	inner http.RoundTripper
}

func (g *httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.c.httpAllowed(req.URL.Host) {
		return nil, &noRetryError{fmt.Errorf("refusing plain HTTP to %s (use --insecure to allow it)", req.URL.Host)}
	}
	return g.inner.RoundTrip(req)
}

// noRetryError marks an error the retry transport must not retry.
type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }
func (e *noRetryError) Unwrap() error { return e.err }

// endpoints lists where an image of repo may be fetched, mirrors first.
func (c *Client) endpoints(repo name.Repository) ([]*endpoint, error) {
	var eps []*endpoint
	if repo.RegistryStr() == name.DefaultRegistry {
		for _, m := range c.mirrors {
			var opts []name.Option
			if m.scheme == "http" || c.opts.Insecure {
				opts = append(opts, name.Insecure)
			}
			reg, err := name.NewRegistry(m.host, opts...)
			if err != nil {
				return nil, fmt.Errorf("mirror %s: %w", m.host, err)
			}
			eps = append(eps, &endpoint{repo: reg.Repo(repo.RepositoryStr()), mirror: true})
		}
	}
	return append(eps, &endpoint{repo: repo}), nil
}

// transportFor returns the authenticated round-tripper for a repository,
// pinging the registry and fetching a pull token on first use.
func (c *Client) transportFor(ctx context.Context, ep *endpoint) (http.RoundTripper, error) {
	key := ep.repo.RegistryStr() + "/" + ep.repo.RepositoryStr()
	c.mu.Lock()
	e := c.auths[key]
	if e == nil {
		e = &authEntry{}
		c.auths[key] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rt != nil {
		return e.rt, nil
	}
	auth, err := authn.Resolve(ctx, c.opts.Keychain, ep.repo)
	if err != nil {
		return nil, c.scrub(fmt.Errorf("finding credentials for %s: %w", ep.host(), err))
	}
	if cfg, err := authn.Authorization(ctx, auth); err == nil && cfg != nil {
		c.secrets.add(cfg.Password, cfg.Auth, cfg.IdentityToken, cfg.RegistryToken)
		if cfg.Username != "" && cfg.Password != "" {
			c.secrets.addBasic(cfg.Username, cfg.Password)
		}
	}
	rt, err := transport.NewWithContext(ctx, ep.repo.Registry, auth, transport.NewUserAgent(c.regRT, c.opts.UserAgent), []string{ep.repo.Scope(transport.PullScope)})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, c.scrub(fmt.Errorf("connecting to %s: %w", ep.host(), err))
	}
	e.rt = rt
	return rt, nil
}

// sameHost reports whether u points at the registry host of ep.
func sameHost(u *url.URL, ep *endpoint) bool {
	return canonicalHost(u.Host, u.Scheme) == canonicalHost(ep.host(), u.Scheme)
}

func canonicalHost(host, scheme string) string {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = strings.Trim(host, "[]"), ""
	}
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return strings.ToLower(net.JoinHostPort(h, port))
}

// get sends a GET to u for ep (nil: a URL outside any registry) and follows
// redirects by hand: a hop to the registry's own host goes through the
// authenticated transport, a hop anywhere else through a transport that never
// adds credentials, with only the headers of hdr. It returns the final
// response, whatever its status.
func (c *Client) get(ctx context.Context, ep *endpoint, u *url.URL, hdr http.Header) (*http.Response, error) {
	var authRT http.RoundTripper
	for hop := 0; ; hop++ {
		if hop > 10 {
			return nil, fmt.Errorf("GET %s: more than 10 redirects", redactURL(u))
		}
		var rt http.RoundTripper
		if ep != nil && sameHost(u, ep) {
			if authRT == nil {
				var err error
				if authRT, err = c.transportFor(ctx, ep); err != nil {
					return nil, err
				}
			}
			rt = authRT
		} else {
			rt = transport.NewUserAgent(c.plainRT, c.opts.UserAgent)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %w", redactURL(u), err)
		}
		for k, v := range hdr {
			req.Header[k] = append([]string(nil), v...)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			return nil, c.scrub(fmt.Errorf("GET %s: %w", redactURL(u), stripURLError(err)))
		}
		switch resp.StatusCode {
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			return resp, nil
		}
		loc := resp.Header.Get("Location")
		drain(resp)
		if loc == "" {
			return nil, fmt.Errorf("GET %s: %s without a Location", redactURL(u), resp.Status)
		}
		// req.URL carries the scheme the transport really used.
		next, err := req.URL.Parse(loc)
		if err != nil || (next.Scheme != "http" && next.Scheme != "https") {
			return nil, fmt.Errorf("GET %s: redirect to an unusable location %s", redactURL(u), redactString(loc))
		}
		u = next
	}
}

// stripURLError drops the *url.Error wrapper, whose text repeats the URL
// unredacted.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// drain discards a little of a body so the connection can be reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// acquire takes one of the stream slots of host; the returned func gives it back.
func (c *Client) acquire(ctx context.Context, host string) (func(), error) {
	c.mu.Lock()
	sem := c.sems[host]
	if sem == nil {
		sem = make(chan struct{}, c.opts.MaxStreamsPerHost)
		c.sems[host] = sem
	}
	c.mu.Unlock()
	select {
	case sem <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-sem }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) logf(format string, args ...any) {
	if c.opts.Logf != nil {
		c.opts.Logf("%s", c.secrets.scrubString(fmt.Sprintf(format, args...)))
	}
}

// statusError turns an unexpected response into an error naming the
// registry's error codes; 404 wraps source.ErrNotFound.
func (c *Client) statusError(u *url.URL, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	resp.Body.Close()
	if resp.Request != nil && resp.Request.URL != nil {
		u = resp.Request.URL // with the scheme really used
	}
	msg := fmt.Sprintf("GET %s: %s", redactURL(u), resp.Status)
	if detail := registryErrors(body); detail != "" {
		msg += " (" + detail + ")"
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return c.scrub(fmt.Errorf("%s%.0w", msg, source.ErrNotFound))
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += "; check the credentials in the Docker config (docker login)"
	}
	return c.scrub(errors.New(msg))
}
