package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/layercheck/layercheck/report"
	"go.uber.org/goleak"
)

// stallingRegistry serves go-containerregistry's in-memory registry on
// loopback with a pushed two-layer image, and makes it serve the second
// layer's first 32 KiB and then nothing until the client goes away. ready is
// closed once that stall has begun and the first layer has been served
// whole: verification is then certainly in flight. The server is returned
// so a test can close it (it is closed at cleanup anyway).
func stallingRegistry(t *testing.T) (ref string, ready <-chan struct{}, srv *httptest.Server) {
	t.Helper()
	// The CLI uses the default keychain: keep it away from the real Docker config.
	t.Setenv("HOME", t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var fast, slow string
	var mu sync.Mutex
	servedFast, stalled := false, false
	ch := make(chan struct{})
	note := func(f *bool) {
		mu.Lock()
		defer mu.Unlock()
		*f = true
		if servedFast && stalled {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f, s := fast, slow
		mu.Unlock()
		switch {
		case r.Method == http.MethodGet && s != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+s):
			w.Header().Set("Content-Length", "1000000")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 32<<10))
			w.(http.Flusher).Flush()
			note(&stalled)
			<-r.Context().Done()
		case r.Method == http.MethodGet && f != "" && strings.HasSuffix(r.URL.Path, "/blobs/"+f):
			reg.ServeHTTP(w, r)
			note(&servedFast)
		default:
			reg.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	img, err := random.Image(3000, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(host + "/slow/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d0, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	d1, err := layers[1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	fast, slow = d0.String(), d1.String()
	mu.Unlock()
	return host + "/slow/app:1", ch, srv
}

// TestInterruptBinary builds layercheck, starts it on a registry that stalls
// mid-layer, and once verification is in flight sends SIGINT (and, in a
// second run, SIGTERM). It must exit 130 promptly, print the report of what
// was verified so far, say it was interrupted, and leave nothing in TMPDIR.
func TestInterruptBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "layercheck")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ref, ready, _ := stallingRegistry(t)
			tmp := t.TempDir()
			cmd := exec.Command(bin, "remote", "-o", "json", "--no-progress", "-j", "2", ref)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// A generous guard against a hang, not a speed assertion.
			guard := time.After(2 * time.Minute)
			select {
			case <-ready:
			case err := <-exited:
				t.Fatalf("layercheck exited before the stall: %v\nstderr: %s", err, errb.String())
			case <-guard:
				cmd.Process.Kill()
				t.Fatal("the registry never saw the stalled request")
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-exited:
			case <-guard:
				cmd.Process.Kill()
				t.Fatalf("layercheck did not exit after %v\nstderr: %s", sig, errb.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != ExitInterrupted {
				t.Fatalf("exit: %v, want code %d\nstderr: %s", err, ExitInterrupted, errb.String())
			}
			rep := jsonReport(t, out.String())
			if len(rep.Images) == 0 || len(rep.Images[0].Layers) != 2 {
				t.Errorf("the report does not list the image and its layers; want what was verified so far\n%s", out.String())
			}
			if rep.Summary.Verdict == report.VerdictOK || len(rep.Problems) == 0 {
				t.Errorf("an interrupted run reports verdict %q with problems %v; want the unread layer as a problem", rep.Summary.Verdict, rep.Problems)
			}
			if !strings.Contains(errb.String(), "interrupted") {
				t.Errorf("stderr does not say the run was interrupted: %q", errb.String())
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

// TestCancelLeavesNoGoroutines cancels an in-process `layercheck remote`
// while a layer transfer is stalled, and checks that every goroutine it
// started (verifier workers, blob readers, resolvers, HTTP transports) is
// gone once the registry has closed its connections.
func TestCancelLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	ref, ready, srv := stallingRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		out, errOut string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"remote", "-o", "json", "--no-progress", "-j", "2", ref}, &out, &errb)
		done <- result{out.String(), errb.String(), code}
	}()
	guard := time.After(2 * time.Minute) // hang guard
	select {
	case <-ready:
	case r := <-done:
		t.Fatalf("finished before the stall: exit %d, %s", r.code, r.errOut)
	case <-guard:
		t.Fatal("the registry never saw the stalled request")
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-guard:
		t.Fatal("run did not return after cancellation")
	}
	if r.code != ExitInterrupted {
		t.Fatalf("exit %d, want %d\nstderr: %s", r.code, ExitInterrupted, r.errOut)
	}
	rep := jsonReport(t, r.out)
	if len(rep.Images) == 0 || rep.Summary.Verdict == report.VerdictOK {
		t.Errorf("want the image and an incomplete verdict; got\n%s", r.out)
	}
	for _, p := range rep.Problems {
		if !strings.Contains(p.Message, "interrupted") {
			t.Errorf("problem %q does not say the run was interrupted", p.Message)
		}
	}
	// The registry closes its side of every connection, so the client's
	// pooled connections end; anything of layercheck's still running is a leak.
	srv.Close()
	if err := goleak.Find(before); err != nil {
		t.Fatal(err)
	}
}
