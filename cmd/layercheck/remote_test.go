package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/layercheck/layercheck/report"
)

// remoteRegistry serves go-containerregistry's in-memory registry on
// loopback; hook, when set, may answer a request first.
type remoteRegistry struct {
	host string
	mu   sync.Mutex
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func newRemoteRegistry(t *testing.T) *remoteRegistry {
	t.Helper()
	// The CLI uses the default keychain: keep it away from the real Docker config.
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	rr := &remoteRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr.mu.Lock()
		h := rr.hook
		rr.mu.Unlock()
		if h != nil && h(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rr.host = strings.TrimPrefix(srv.URL, "http://")
	return rr
}

func (rr *remoteRegistry) setHook(h func(w http.ResponseWriter, r *http.Request) bool) {
	rr.mu.Lock()
	rr.hook = h
	rr.mu.Unlock()
}

// stall makes every request whose path ends in suffix answer with headers
// and then no body until the client gives up (or a minute passes): a
// transfer stuck mid-layer. The returned channel receives once per stalled
// request, when it has started.
func (rr *remoteRegistry) stall(suffix string) <-chan struct{} {
	started := make(chan struct{}, 4)
	rr.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, suffix) {
			return false
		}
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-time.After(60 * time.Second):
		}
		return true
	})
	return started
}

func (rr *remoteRegistry) push(t *testing.T, ref string) v1.Image {
	t.Helper()
	img, err := random.Image(3000, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(rr.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func jsonReport(t *testing.T, out string) report.Report {
	t.Helper()
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, out)
	}
	return rep
}

func TestRemoteCommand(t *testing.T) {
	rr := newRemoteRegistry(t)
	a := rr.push(t, "a:1")
	b := rr.push(t, "b:2")
	ad, _ := a.Digest()
	bd, _ := b.Digest()

	list := filepath.Join(t.TempDir(), "refs.txt")
	content := "# images to check\n\n" + rr.host + "/b:2   # the second\n" + rr.host + "/a:1\n"
	if err := os.WriteFile(list, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "remote", "-o", "json", "--no-progress", rr.host+"/a@"+ad.String(), "-f", list)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %s\n%s", code, errOut, out)
	}
	rep := jsonReport(t, out)
	if rep.Command != "remote" || len(rep.Images) != 3 || rep.Summary.Verdict != report.VerdictOK {
		t.Fatalf("command %q, %d images, verdict %s", rep.Command, len(rep.Images), rep.Summary.Verdict)
	}
	got := map[string]string{}
	for _, im := range rep.Images {
		got[im.Name] = im.ManifestDigest
	}
	want := map[string]string{rr.host + "/a@" + ad.String(): ad.String(), rr.host + "/b:2": bd.String(), rr.host + "/a:1": ad.String()}
	for n, d := range want {
		if got[n] != d {
			t.Errorf("%s: manifest digest %q, want %s", n, got[n], d)
		}
	}
}

func TestRemoteCommandFindingsAndErrors(t *testing.T) {
	rr := newRemoteRegistry(t)
	img := rr.push(t, "app:1")
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	rr.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			w.Write([]byte("not the layer"))
			return true
		}
		return false
	})
	out, _, code := runCLI(t, "remote", "-o", "json", rr.host+"/app:1")
	if code != ExitFindings {
		t.Fatalf("wrong layer bytes: exit %d, want %d\n%s", code, ExitFindings, out)
	}
	rep := jsonReport(t, out)
	found := false
	for _, f := range rep.Findings {
		if f.Check == report.LayerDigest && f.Subject.Digest == ld.String() {
			found = true
		}
	}
	if !found {
		t.Errorf("no layer-digest finding naming %s: %+v", ld, rep.Findings)
	}

	// A tag that does not exist: could not check.
	_, errOut, code := runCLI(t, "remote", rr.host+"/app:missing")
	if code != ExitCannotCheck || !strings.Contains(errOut, "MANIFEST_UNKNOWN") {
		t.Errorf("missing tag: exit %d, stderr %q", code, errOut)
	}
	// Usage errors come before any request.
	for _, args := range [][]string{
		{"remote"},
		{"remote", "Not A/Reference!"},
		{"remote", "--mirror", "ftp://mirror.example", "nginx"},
		{"remote", "-f", filepath.Join(t.TempDir(), "absent.txt")},
	} {
		if _, _, code := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

func TestRemoteCommandInterrupted(t *testing.T) {
	rr := newRemoteRegistry(t)
	img := rr.push(t, "app:1")
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	started := rr.stall("/blobs/" + ld.String())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() { done <- run(ctx, []string{"remote", rr.host + "/app:1"}, &out, &errb) }()
	<-started
	cancel()
	select {
	case code := <-done:
		if code != ExitInterrupted {
			t.Fatalf("exit %d, want %d; stderr %s", code, ExitInterrupted, errb.String())
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("remote did not stop after the interrupt")
	}
}
