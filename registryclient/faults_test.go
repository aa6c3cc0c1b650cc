package registryclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// faultImage pushes a 2-layer image and returns it with the digest of its
// first (larger) layer and that layer's stored bytes.
func faultImage(t *testing.T, tr *testRegistry) (v1.Image, string, []byte) {
	t.Helper()
	img := ociImage(t, tarLayer(t, "big.txt", 300000), tarLayer(t, "small.txt", 1000))
	tr.push(t, "app:v1", img)
	ls, _ := img.Layers()
	d, _ := ls[0].Digest()
	return img, d.String(), tr.blobBytes(t, "app", d.String())
}

// serve writes a blob body with the given Content-Length.
func serve(w http.ResponseWriter, body []byte, contentLength int) {
	w.Header().Set("Content-Length", strconv.Itoa(contentLength))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func noProblems(t *testing.T, rep *report.Report, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, p := range rep.Problems {
		t.Errorf("unexpected problem %s: %s", p.Subject, p.Message)
	}
}

func wantFinding(t *testing.T, rep *report.Report, c report.Check, dgst, expected, actual string) {
	t.Helper()
	for _, f := range findings(rep, c) {
		if f.Subject.Digest == dgst && (expected == "" || f.Expected == expected) && (actual == "" || f.Actual == actual) {
			return
		}
	}
	t.Errorf("no %s finding for %s (expected %q actual %q); findings: %+v", c, dgst, expected, actual, rep.Findings)
}

func TestWrongBodyForDigest(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0xff
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			serve(w, bad, len(bad))
			return true
		}
		return false
	})
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	noProblems(t, rep, err)
	wantFinding(t, rep, report.LayerDigest, dgst, dgst, digest.FromBytes(bad).String())
	if len(findings(rep, report.LayerSize)) != 0 {
		t.Errorf("a body of the right length gave a size finding")
	}
}

func TestTruncatedBody(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	half := data[:len(data)/2]
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			serve(w, half, len(half)) // a complete response of the wrong length
			return true
		}
		return false
	})
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	noProblems(t, rep, err)
	wantFinding(t, rep, report.LayerSize, dgst, fmt.Sprint(len(data)), fmt.Sprint(len(half)))
	wantFinding(t, rep, report.LayerDigest, dgst, dgst, digest.FromBytes(half).String())
}

func TestContentLengthShorterThanBlob(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			// Raw, so the whole blob goes out after a header 100 bytes short.
			conn, bw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			defer conn.Close()
			fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(data)-100)
			bw.Write(data)
			bw.Flush()
			return true
		}
		return false
	})
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	noProblems(t, rep, err)
	wantFinding(t, rep, report.LayerSize, dgst, fmt.Sprint(len(data)), fmt.Sprint(len(data)-100))
	wantFinding(t, rep, report.LayerDigest, dgst, dgst, "")
}

func TestContentLengthLongerThanBlob(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			serve(w, data, len(data)+100) // the connection breaks after the real bytes
			return true
		}
		return false
	})
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	// Every byte the descriptor promised arrived and hashes right.
	mustClean(t, rep, err)
}

// dropAfter answers the first n GETs of a blob with half its bytes and a
// broken connection; later requests go to the registry as asked.
func dropAfter(dgst string, data []byte, n int, stripRange bool) hook {
	c := &counter{}
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isGet(r, "/blobs/"+dgst) {
			return false
		}
		if c.next() <= n {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/2])
			return true // the handler returns short of Content-Length: the server drops the connection
		}
		if stripRange {
			r.Header.Del("Range")
		}
		return false
	}
}

func TestDroppedConnectionResumesWithRange(t *testing.T) {
	tr := newRegistry(t)
	img, dgst, data := faultImage(t, tr)
	tr.setHook(dropAfter(dgst, data, 1, false))
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	var ranges []string
	for _, r := range tr.requests() {
		if strings.HasSuffix(r.path, dgst) && r.rng != "" {
			ranges = append(ranges, r.rng)
		}
	}
	want := fmt.Sprintf("bytes=%d-%d", len(data)/2, len(data)-1)
	if len(ranges) != 1 || ranges[0] != want {
		t.Errorf("range requests %q, want [%s]", ranges, want)
	}
}

func TestNoRangeSupportCannotResume(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	tr.setHook(dropAfter(dgst, data, 1, true))
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Message, "does not serve byte ranges") {
		t.Fatalf("problems %+v, want one about byte ranges", rep.Problems)
	}
	if rep.Problems[0].Subject.Digest != dgst {
		t.Errorf("problem names %q, want the blob %s", rep.Problems[0].Subject.Digest, dgst)
	}
	// The verifier also evaluates what it read before the error; the
	// problem is what makes the run "could not check".
}

func TestDropBeforeFirstByteRestarts(t *testing.T) {
	tr := newRegistry(t)
	img, dgst, data := faultImage(t, tr)
	c := &counter{}
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) && c.next() == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			return true
		}
		r.Header.Del("Range") // a registry without ranges: a clean restart must not need one
		return false
	})
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	if n := tr.count("/blobs/" + dgst); n != 2 {
		t.Errorf("%d GETs of the blob, want 2", n)
	}
}

func TestPersistentDropIsAnError(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			w.Header().Set("Content-Length", "1000000")
			w.WriteHeader(http.StatusOK)
			return true
		}
		return false
	})
	_ = data
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Message, "gave up after 3 retries") {
		t.Fatalf("problems %+v", rep.Problems)
	}
	if rep.Problems[0].Subject.Digest != dgst {
		t.Errorf("problem names %q, want the blob %s", rep.Problems[0].Subject.Digest, dgst)
	}
}

func TestServerErrorThenSuccess(t *testing.T) {
	tr := newRegistry(t)
	img, dgst, _ := faultImage(t, tr)
	mc, bc := &counter{}, &counter{}
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		switch {
		case isGet(r, "/manifests/v1") && mc.next() == 1:
			http.Error(w, "boom", http.StatusInternalServerError)
			return true
		case isGet(r, "/blobs/"+dgst) && bc.next() <= 2:
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return true
		}
		return false
	})
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	if n := tr.count("/manifests/v1"); n != 2 {
		t.Errorf("%d manifest GETs, want 2", n)
	}
	if n := tr.count("/blobs/" + dgst); n != 3 {
		t.Errorf("%d blob GETs, want 3", n)
	}
}

func TestServerErrorExhaustsRetries(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, _ := faultImage(t, tr)
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"storage down"}]}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Message, "503") || !strings.Contains(rep.Problems[0].Message, "storage down") {
		t.Fatalf("problems %+v", rep.Problems)
	}
	if n := tr.count("/blobs/" + dgst); n != 4 {
		t.Errorf("%d blob GETs, want 1 + 3 retries", n)
	}
}

func TestTooManyRequestsHonoursRetryAfter(t *testing.T) {
	tr := newRegistry(t)
	img, dgst, _ := faultImage(t, tr)
	bc := &counter{}
	var mu sync.Mutex
	var times []time.Time
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if !isGet(r, "/blobs/"+dgst) {
			return false
		}
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if bc.next() == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		}
		return false
	})
	var logs []string
	rep, err := check(t, newClient(t, func(o *registryclient.Options) {
		o.Logf = func(f string, a ...any) { mu.Lock(); logs = append(logs, fmt.Sprintf(f, a...)); mu.Unlock() }
	}), tr.host+"/app:v1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	if len(times) != 2 {
		t.Fatalf("%d blob GETs, want 2", len(times))
	}
	// The delay used is the header's, not the 1 ms backoff of these options.
	found := false
	for _, l := range logs {
		if strings.Contains(l, "429") && strings.Contains(l, "retrying in 1s") {
			found = true
		}
	}
	if !found {
		t.Errorf("no retry after the Retry-After delay in the log: %q", logs)
	}
}

func TestStallResumes(t *testing.T) {
	tr := newRegistry(t)
	img, dgst, data := faultImage(t, tr)
	bc := &counter{}
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) && bc.next() == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:len(data)/3])
			w.(http.Flusher).Flush()
			select { // stall until the client gives up on this connection
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
			return true
		}
		return false
	})
	rep, err := check(t, newClient(t, func(o *registryclient.Options) { o.IdleTimeout = 500 * time.Millisecond }), tr.host+"/app:v1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	want := fmt.Sprintf("bytes=%d-%d", len(data)/3, len(data)-1)
	found := false
	for _, r := range tr.requests() {
		if strings.HasSuffix(r.path, dgst) && r.rng == want {
			found = true
		}
	}
	if !found {
		t.Errorf("no resumption with Range %s", want)
	}
}

// staticKeychain hands out one authenticator for every registry.
type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

func TestRedirectToAnotherHostDropsAuthorization(t *testing.T) {
	tr := newRegistry(t)
	img, dgst, data := faultImage(t, tr)
	var mu sync.Mutex
	var storageAuth []string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		storageAuth = append(storageAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Query().Get("sig") != "s3cr3t-signature" {
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}))
	defer storage.Close()
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			http.Redirect(w, r, storage.URL+"/store/"+dgst+"?sig=s3cr3t-signature", http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	basic := &authn.Basic{Username: "alice", Password: "hunter2-registry-password"}
	cfg, _ := basic.Authorization()
	tr.mu.Lock()
	tr.auth = "Basic " + authHeader(cfg.Username, cfg.Password)
	tr.mu.Unlock()

	rep, err := check(t, newClient(t, func(o *registryclient.Options) { o.Keychain = staticKeychain{basic} }), tr.host+"/app:v1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	if len(storageAuth) != 1 {
		t.Fatalf("storage saw %d requests, want 1", len(storageAuth))
	}
	if storageAuth[0] != "" {
		t.Errorf("the registry's Authorization header reached the storage host")
	}
	authed := false
	for _, r := range tr.requests() {
		if strings.HasSuffix(r.path, "/blobs/"+dgst) && r.auth != "" {
			authed = true
		}
	}
	if !authed {
		t.Errorf("the registry itself got no Authorization for the blob; the test proves nothing")
	}
}

func TestHeaderDigestDisagreesWithBytes(t *testing.T) {
	tr := newRegistry(t)
	img, _, _ := faultImage(t, tr)
	md, _ := img.Digest()
	fake := digest.FromString("not the manifest").String()
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Set("Docker-Content-Digest", fake)
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return true
		}
		return false
	})
	c := newClient(t, nil)
	for _, ref := range []string{tr.host + "/app:v1", tr.host + "/app@" + md.String()} {
		t.Run(ref, func(t *testing.T) {
			rep, err := check(t, c, ref)
			noProblems(t, rep, err)
			fs := findings(rep, report.ManifestDigest)
			if len(fs) != 1 || fs[0].Expected != fake || fs[0].Actual != md.String() {
				t.Fatalf("manifest-digest findings %+v, want one: expected %s actual %s", fs, fake, md)
			}
			if rep.Images[0].ManifestDigest != md.String() {
				t.Errorf("manifest digest %s, want the bytes' %s", rep.Images[0].ManifestDigest, md)
			}
		})
	}
}

func TestCancelReturnsPromptly(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	started := make(chan struct{}, 8)
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusOK)
			w.Write(data[:100])
			w.(http.Flusher).Flush()
			started <- struct{}{}
			select {
			case <-r.Context().Done():
			case <-time.After(60 * time.Second):
			}
			return true
		}
		return false
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := newClient(t, func(o *registryclient.Options) { o.IdleTimeout = time.Hour })
	done := make(chan error, 1)
	go func() {
		_, err := checkCtx(ctx, t, c, tr.host+"/app:v1")
		done <- err
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("verify returned %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("verify did not return after the context was cancelled")
	}
}

func TestBodyLongerThanDescriptor(t *testing.T) {
	tr := newRegistry(t)
	_, dgst, data := faultImage(t, tr)
	for _, extra := range []int{500, 3 << 20} {
		long := append(append([]byte(nil), data...), make([]byte, extra)...)
		tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if isGet(r, "/blobs/"+dgst) {
				serve(w, long, len(long))
				return true
			}
			return false
		})
		rep, err := check(t, newClient(t, nil), tr.host+"/app:v1")
		noProblems(t, rep, err)
		// A little extra is measured exactly; a lot is cut 1 MiB past the descriptor.
		read := len(data) + min(extra, 1<<20)
		wantFinding(t, rep, report.LayerSize, dgst, fmt.Sprint(len(data)), fmt.Sprint(read))
		wantFinding(t, rep, report.LayerDigest, dgst, dgst, digest.FromBytes(long[:read]).String())
	}
}
