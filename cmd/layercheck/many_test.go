package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
)

// pushImage pushes img to the registry under ref (repo:tag).
func (rr *remoteRegistry) pushImage(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(rr.host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// blobGETs counts GET requests of /v2/<repo>/blobs/<digest>, by path.
type blobGETs struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *blobGETs) count(r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
		c.mu.Lock()
		c.n[r.URL.Path]++
		c.mu.Unlock()
	}
}

func (c *blobGETs) get(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

func (c *blobGETs) reset() {
	c.mu.Lock()
	c.n = map[string]int{}
	c.mu.Unlock()
}

// combined is the report of several single runs put together (what one run
// over all of them must equal).
func combined(reps ...report.Report) report.Report {
	var all report.Report
	for _, r := range reps {
		all.Images = append(all.Images, r.Images...)
		all.Findings = append(all.Findings, r.Findings...)
		all.Problems = append(all.Problems, r.Problems...)
	}
	all.Normalize()
	return all
}

func sameResults(t *testing.T, got, want report.Report) {
	t.Helper()
	if !reflect.DeepEqual(got.Images, want.Images) {
		t.Errorf("images differ from the runs one by one:\n got %+v\nwant %+v", got.Images, want.Images)
	}
	if !reflect.DeepEqual(got.Findings, want.Findings) {
		t.Errorf("findings differ from the runs one by one:\n got %+v\nwant %+v", got.Findings, want.Findings)
	}
	if !reflect.DeepEqual(got.Problems, want.Problems) {
		t.Errorf("problems differ from the runs one by one:\n got %+v\nwant %+v", got.Problems, want.Problems)
	}
}

// TestRemoteManySharedBlobs: two tags of one repository share two layers;
// the same image is also in a second repository, and in a third whose
// registry serves wrong bytes for one layer. One remote run over the four
// references fetches each shared layer of the first repository once (and
// each repository's own copy once), and reports exactly the images,
// findings and problems of four runs of one reference each.
func TestRemoteManySharedBlobs(t *testing.T) {
	rr := newRemoteRegistry(t)
	gets := &blobGETs{n: map[string]int{}}
	var badLayer string
	var mu sync.Mutex
	rr.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		gets.count(r)
		mu.Lock()
		bad := badLayer
		mu.Unlock()
		if bad != "" && r.Method == http.MethodGet && r.URL.Path == "/v2/bad/blobs/"+bad {
			w.Write([]byte("not the layer"))
			return true
		}
		return false
	})
	base, err := random.Image(20000, 2)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := random.Layer(5000, "application/vnd.docker.image.rootfs.diff.tar.gzip")
	if err != nil {
		t.Fatal(err)
	}
	second, err := mutate.AppendLayers(base, extra)
	if err != nil {
		t.Fatal(err)
	}
	rr.pushImage(t, "app:1", base)
	rr.pushImage(t, "app:2", second)
	rr.pushImage(t, "other:1", base)
	rr.pushImage(t, "bad:1", base)
	ls, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		shared = append(shared, d.String())
	}
	mu.Lock()
	badLayer = shared[0]
	mu.Unlock()
	refs := []string{rr.host + "/app:1", rr.host + "/app:2", rr.host + "/other:1", rr.host + "/bad:1"}

	var singles []report.Report
	for _, ref := range refs {
		out, errOut, _ := runCLI(t, "remote", "-o", "json", "--no-progress", "-j", "2", ref)
		if errOut != "" && !strings.Contains(errOut, "layer") {
			t.Logf("%s: %s", ref, errOut)
		}
		singles = append(singles, jsonReport(t, out))
	}

	gets.reset()
	list := filepath.Join(t.TempDir(), "refs.txt")
	if err := os.WriteFile(list, []byte(strings.Join(refs[1:], "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "remote", "-o", "json", "--no-progress", "-j", "2", refs[0], "-f", list)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d (the bad repository's layer)\nstderr: %s", code, ExitFindings, errOut)
	}
	all := jsonReport(t, out)
	if len(all.Images) != 4 {
		t.Fatalf("%d images, want 4", len(all.Images))
	}
	for _, d := range shared {
		for _, repo := range []string{"app", "other", "bad"} {
			p := "/v2/" + repo + "/blobs/" + d
			if n := gets.get(p); n != 1 {
				t.Errorf("GET %s: %d times, want 1", p, n)
			}
		}
	}
	var badFindings int
	for _, f := range all.Findings {
		if f.Severity == report.Error {
			if f.Subject.Image != rr.host+"/bad:1" {
				t.Errorf("error finding outside the bad repository: %+v", f)
			}
			badFindings++
		}
	}
	if badFindings == 0 {
		t.Error("the wrong bytes of the bad repository gave no finding")
	}
	sameResults(t, all, combined(singles...))
}

// TestTarManyOneUnreadable: several archives and layouts (one gzip-wrapped,
// so streamed) with a file that is not an archive among them: one run gives
// a problem naming that file, verifies every other input, and reports what
// the runs of one input each report.
func TestTarManyOneUnreadable(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i, f := range []fixtures.Format{fixtures.FormatDockerLegacy, fixtures.FormatDockerOCI, fixtures.FormatOCIArchive, fixtures.FormatDockerContainerd} {
		img := fixtures.BaseImage()
		img.Name = fmt.Sprintf("example.com/many%d:1", i)
		b, err := fixtures.Build(img)
		if err != nil {
			t.Fatal(err)
		}
		fx, err := fixtures.NewFixture(f, b)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			fx.Wrap = fixtures.Gzip
		}
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		p, err := fx.Write(sub)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	// The flip-layer-byte corruption: error findings among the good ones.
	bad := fixtures.Corruptions()[0]
	fx, err := bad.Make(fixtures.FormatOCIArchive)
	if err != nil {
		t.Fatal(err)
	}
	p, err := fx.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	paths = append(paths, p)
	junk := filepath.Join(dir, "junk.tar")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("not a tar archive\n"), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	inputs := append(paths[:2:2], append([]string{junk}, paths[2:]...)...)

	var singles []report.Report
	for _, p := range paths {
		out, errOut, _ := runCLI(t, "tar", "-o", "json", "--no-progress", "-j", "2", p)
		if out == "" {
			t.Fatalf("%s: no report\nstderr: %s", p, errOut)
		}
		singles = append(singles, jsonReport(t, out))
	}
	out, errOut, code := runCLI(t, append([]string{"tar", "-o", "json", "--no-progress", "-j", "2"}, inputs...)...)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d (error findings outrank the input that could not be read)\nstderr: %s", code, ExitFindings, errOut)
	}
	all := jsonReport(t, out)
	var junkProblem bool
	var rest []report.Problem
	for _, pr := range all.Problems {
		if pr.Subject.Path == junk {
			junkProblem = true
			continue
		}
		rest = append(rest, pr)
	}
	if !junkProblem {
		t.Errorf("no problem names %s: %+v", junk, all.Problems)
	}
	all.Problems = rest
	if len(all.Images) != 5 {
		t.Fatalf("%d images, want 5", len(all.Images))
	}
	for _, im := range all.Images {
		for _, l := range im.Layers {
			if l.DiffID == "" {
				t.Errorf("%s layer %d was not read", im.Name, l.Index)
			}
		}
	}
	sameResults(t, all, combined(singles...))
}

// TestRemoteManyInterrupted: interrupted while a layer of the second of two
// references is stalled, remote exits 130 with a report of both images.
func TestRemoteManyInterrupted(t *testing.T) {
	rr := newRemoteRegistry(t)
	rr.push(t, "first:1")
	img := rr.push(t, "second:1")
	ls, _ := img.Layers()
	ld, _ := ls[0].Digest()
	started := rr.stall("/second/blobs/" + ld.String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"remote", "-o", "json", "--no-progress", rr.host + "/first:1", rr.host + "/second:1"}, &out, &errb)
	}()
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
	rep := jsonReport(t, out.String())
	if len(rep.Images) != 2 {
		t.Fatalf("%d images in the interrupted report, want both", len(rep.Images))
	}
	var interrupted bool
	for _, p := range rep.Problems {
		if p.Subject.Image == rr.host+"/second:1" && strings.Contains(p.Message, "interrupted") {
			interrupted = true
		}
	}
	if !interrupted {
		t.Errorf("no problem says the stalled layer was interrupted: %+v", rep.Problems)
	}
}

// TestLayoutManyBatches: more layouts than one batch (sourcesPerBatch),
// listed with -f, in a run that takes more than one VerifyAll: every image
// is verified whole, in the report of one run.
func TestLayoutManyBatches(t *testing.T) {
	dir := t.TempDir()
	n := sourcesPerBatch + 3
	var paths []string
	for i := 0; i < n; i++ {
		img := fixtures.BaseImage()
		img.Name = fmt.Sprintf("example.com/batch%02d:1", i)
		b, err := fixtures.Build(img)
		if err != nil {
			t.Fatal(err)
		}
		fx, err := fixtures.NewFixture(fixtures.FormatOCILayout, b)
		if err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		p, err := fx.Write(sub)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	list := filepath.Join(dir, "layouts.txt")
	if err := os.WriteFile(list, []byte(strings.Join(paths, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "layout", "-o", "json", "--no-progress", "-j", "2", "-f", list)
	if code != ExitOK {
		t.Fatalf("exit %d\nstderr: %s", code, errOut)
	}
	rep := jsonReport(t, out)
	if len(rep.Images) != n || rep.Summary.Layers != 3*n {
		t.Fatalf("%d images, %d layers; want %d and %d", len(rep.Images), rep.Summary.Layers, n, 3*n)
	}
	// A layout names its image by the tag alone, so all are called "1": the
	// report keeps them in input order, across batches.
	for i, im := range rep.Images {
		if im.Status != report.StatusOK || len(im.Layers) != 3 || !strings.HasPrefix(im.Layers[0].Location, paths[i]+string(filepath.Separator)) {
			t.Errorf("image %d: %s, status %s, layer 0 at %q; want ok, in %s", i, im.Name, im.Status, im.Layers[0].Location, paths[i])
			continue
		}
		for _, l := range im.Layers {
			if l.DiffID == "" {
				t.Errorf("%s layer %d was not read", im.Name, l.Index)
			}
		}
	}
}
