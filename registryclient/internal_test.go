package registryclient

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoopbackAndPlainHTTP(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:5000": true, "127.8.9.10": true, "[::1]:5000": true, "registry.localhost:80": true,
		"10.0.0.1:5000": false, "192.168.1.2": false, "registry.example.com": false, "localhost.example.com:5000": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
	c, err := NewClient(Options{Mirrors: []string{"http://mirror.internal:5000"}})
	if err != nil {
		t.Fatal(err)
	}
	// go-containerregistry would fall back to HTTP for a private address; the
	// guard refuses before any connection is made.
	req := httptest.NewRequest(http.MethodGet, "http://10.0.0.1:5000/v2/", nil)
	_, err = c.regRT.RoundTrip(req)
	var nr *noRetryError
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("plain HTTP to a private registry: %v, want a refusal naming --insecure", err)
	}
	if !c.httpAllowed("mirror.internal:5000") || !c.httpAllowed("127.0.0.1:1") || c.httpAllowed("10.0.0.1:5000") {
		t.Errorf("httpAllowed is wrong for an http mirror, loopback or a private address")
	}
	ci, _ := NewClient(Options{Insecure: true})
	if !ci.httpAllowed("10.0.0.1:5000") {
		t.Errorf("--insecure does not allow plain HTTP")
	}
}

func TestOpenChoosesSchemeAndEndpoints(t *testing.T) {
	c, err := NewClient(Options{Mirrors: []string{"mirror.example", "http://127.0.0.1:5001"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref, scheme string
		eps         []string
	}{
		{"nginx", "https", []string{"mirror.example/library/nginx", "127.0.0.1:5001/library/nginx", "index.docker.io/library/nginx"}},
		{"ghcr.io/o/a@sha256:" + strings.Repeat("a", 64), "https", []string{"ghcr.io/o/a"}},
		{"localhost:5000/app", "http", []string{"localhost:5000/app"}},
		{"127.0.0.2:5000/app:1", "http", []string{"127.0.0.2:5000/app"}},
		{"[::1]:5000/app", "http", []string{"[::1]:5000/app"}},
		{"10.1.2.3:5000/app", "http", []string{"10.1.2.3:5000/app"}}, // gcr's guess; the guard refuses HTTP
	} {
		s, err := c.Open(tc.ref)
		if err != nil {
			t.Errorf("%s: %v", tc.ref, err)
			continue
		}
		if got := s.ref.Context().Scheme(); got != tc.scheme {
			t.Errorf("%s: scheme %s, want %s", tc.ref, got, tc.scheme)
		}
		var eps []string
		for _, ep := range s.eps {
			eps = append(eps, ep.repo.RegistryStr()+"/"+ep.repo.RepositoryStr())
		}
		if strings.Join(eps, " ") != strings.Join(tc.eps, " ") {
			t.Errorf("%s: endpoints %q, want %q", tc.ref, eps, tc.eps)
		}
	}
}

func TestRedact(t *testing.T) {
	u, _ := url.Parse("https://user:pw@store.example/blob?X-Amz-Signature=abc&X-Amz-Credential=def#frag")
	got := redactURL(u)
	if strings.Contains(got, "pw") || strings.Contains(got, "abc") || strings.Contains(got, "def") || got != "https://store.example/blob?<redacted>" {
		t.Errorf("redactURL = %q", got)
	}
	s := &secrets{}
	s.add("hunter2-long", "ab") // too short to scrub safely
	s.addBasic("u", "hunter2-long")
	msg := s.scrubString("token hunter2-long basic dTpodW50ZXIyLWxvbmc= ab")
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "dTpodW50ZXIyLWxvbmc=") || !strings.Contains(msg, " ab") {
		t.Errorf("scrubString = %q", msg)
	}
	c, _ := NewClient(Options{})
	c.secrets.add("p4ssw0rd!")
	inner := errors.New("echo p4ssw0rd!")
	err := c.scrub(inner)
	if strings.Contains(err.Error(), "p4ssw0rd") || !errors.Is(err, inner) {
		t.Errorf("scrub: %q (keeps the chain: %v)", err, errors.Is(err, inner))
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3": 3 * time.Second, "0": 0, "-1": 0, "": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
	c, _ := NewClient(Options{RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second})
	for attempt, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		got := c.backoff(attempt)
		if got < want*3/4 || got > want*5/4 {
			t.Errorf("backoff(%d) = %s, want %s ±25%%", attempt, got, want)
		}
	}
}

func TestSchema1PayloadErrors(t *testing.T) {
	for _, protected := range []string{"!!", "e30", "eyJmb3JtYXRMZW5ndGgiOjk5OTl9"} { // bad base64, {}, formatLength 9999
		if _, err := schema1SignedPayload([]byte(`{"a":1}`), protected); err == nil {
			t.Errorf("protected %q accepted", protected)
		}
	}
}

// TestGoClientRedirectForwardsAuthorization pins down what net/http does
// with an Authorization header on a redirect to another port of the same
// host (a registry and its blob store on one machine): a header set on the
// request is forwarded, because net/http compares host names without ports;
// a header a round-tripper sets is not copied to the next hop (the
// round-tripper sees each hop and must check the host itself, as
// go-containerregistry's transports do). get follows redirects by hand and
// compares host and port, so neither behaviour matters to it.
func TestGoClientRedirectForwardsAuthorization(t *testing.T) {
	var mu sync.Mutex
	var got []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer other.Close()
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/blob", http.StatusTemporaryRedirect)
	}))
	defer reg.Close()

	// Header set on the request.
	req, _ := http.NewRequest(http.MethodGet, reg.URL+"/v2/x/blobs/y", nil)
	req.Header.Set("Authorization", "Bearer on-the-request")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// Header written by a round-tripper into the request it was given, for the registry's host only.
	regURL, _ := url.Parse(reg.URL)
	mutating := &http.Client{Transport: rtFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host == regURL.Host {
			r.Header.Set("Authorization", "Bearer from-the-transport")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	req, _ = http.NewRequest(http.MethodGet, reg.URL+"/v2/x/blobs/y", nil)
	resp, err = mutating.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	if len(got) != 2 || got[0] != "Bearer on-the-request" || got[1] != "" {
		t.Errorf("net/http's redirect behaviour changed: the other port got %q, want [on-the-request, none]; update the notes above", got)
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
