package registryclient_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"hash/fnv"
	"io"
	"log"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/verify"
)

// hook intercepts a request before the in-memory registry sees it; it
// returns true when it answered the request itself.
type hook func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

// testRegistry is go-containerregistry's in-memory registry over httptest,
// with a request log, optional basic auth and a scripted fault hook.
type testRegistry struct {
	srv  *httptest.Server
	host string
	reg  http.Handler

	mu   sync.Mutex
	reqs []seenRequest
	hook hook
	auth string // required Authorization header, "" none
}

type seenRequest struct {
	method, path, rng, auth string
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{reg: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.reqs = append(tr.reqs, seenRequest{r.Method, r.URL.Path, r.Header.Get("Range"), r.Header.Get("Authorization")})
		h, auth := tr.hook, tr.auth
		tr.mu.Unlock()
		if auth != "" && r.Header.Get("Authorization") != auth {
			w.Header().Set("WWW-Authenticate", `Basic realm="layercheck-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if h != nil && h(w, r, tr.reg) {
			return
		}
		tr.reg.ServeHTTP(w, r)
	}))
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	t.Cleanup(tr.srv.Close)
	return tr
}

func (tr *testRegistry) setHook(h hook) {
	tr.mu.Lock()
	tr.hook = h
	tr.mu.Unlock()
}

func (tr *testRegistry) requests() []seenRequest {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]seenRequest(nil), tr.reqs...)
}

// count counts GETs whose path ends with suffix.
func (tr *testRegistry) count(suffix string) int {
	n := 0
	for _, r := range tr.requests() {
		if r.method == http.MethodGet && strings.HasSuffix(r.path, suffix) {
			n++
		}
	}
	return n
}

func (tr *testRegistry) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(tr.host + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (tr *testRegistry) push(t *testing.T, ref string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(tr.ref(t, ref), img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (tr *testRegistry) pushIndex(t *testing.T, ref string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	if err := remote.WriteIndex(tr.ref(t, ref), idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// randomImage is a random image with an os/arch in its config.
func randomImage(t *testing.T, layers int64, os, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(4096, layers)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// tarLayer makes a layer holding one file, compressed as asked.
func tarLayer(t *testing.T, name string, size int, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := make([]byte, size) // incompressible, so the stored blob is about size bytes
	rnd := mrand.New(mrand.NewPCG(seed(name), uint64(size)))
	for i := range body {
		body[i] = byte(rnd.Uint32())
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func zstdLayer(t *testing.T, name string, size int) v1.Layer {
	return tarLayer(t, name, size, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
}

// ociImage builds an OCI image of the given layers.
func ociImage(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	for _, l := range layers {
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "test"}})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testOptions are fast retries and an empty keychain (anonymous), so the
// tests never read the real Docker config.
func testOptions(t *testing.T) registryclient.Options {
	return registryclient.Options{
		Retries:       3,
		RetryDelay:    time.Millisecond,
		MaxRetryDelay: 5 * time.Millisecond,
		MaxRetryAfter: 2 * time.Second,
		Keychain:      authn.NewMultiKeychain(),
		Logf:          t.Logf,
	}
}

func newClient(t *testing.T, mod func(*registryclient.Options)) *registryclient.Client {
	t.Helper()
	o := testOptions(t)
	if mod != nil {
		mod(&o)
	}
	c, err := registryclient.NewClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// check verifies one reference with the real engine and returns the report
// and the error of Verify.
func check(t *testing.T, c *registryclient.Client, ref string) (*report.Report, error) {
	t.Helper()
	return checkCtx(context.Background(), t, c, ref)
}

func checkCtx(ctx context.Context, t *testing.T, c *registryclient.Client, ref string) (*report.Report, error) {
	t.Helper()
	src, err := c.Open(ref)
	if err != nil {
		t.Fatalf("open %s: %v", ref, err)
	}
	defer src.Close()
	b := &report.Builder{}
	err = verify.New(verify.Options{Jobs: 4}).Verify(ctx, src, b)
	rep := b.Finish("remote", ref, "test")
	return rep, err
}

// mustClean fails unless the report has no error or warning finding and no problem.
func mustClean(t *testing.T, rep *report.Report, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, f := range rep.Findings {
		if f.Severity > report.Info {
			t.Errorf("unexpected finding %s %s: %s (expected %q, actual %q)", f.Check, f.Subject, f.Message, f.Expected, f.Actual)
		}
	}
	for _, p := range rep.Problems {
		t.Errorf("unexpected problem %s: %s", p.Subject, p.Message)
	}
	if len(rep.Images) == 0 {
		t.Errorf("no image in the report")
	}
}

// findings returns the findings of a check.
func findings(rep *report.Report, c report.Check) []report.Finding {
	var out []report.Finding
	for _, f := range rep.Findings {
		if f.Check == c {
			out = append(out, f)
		}
	}
	return out
}

func layerDigests(t *testing.T, img v1.Image) (digests, diffIDs []string) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		d, _ := l.Digest()
		id, _ := l.DiffID()
		digests = append(digests, d.String())
		diffIDs = append(diffIDs, id.String())
	}
	return digests, diffIDs
}

// imageMatches checks a report image against what was pushed.
func imageMatches(t *testing.T, got report.Image, img v1.Image) {
	t.Helper()
	md, _ := img.Digest()
	cn, _ := img.ConfigName()
	if got.ManifestDigest != md.String() {
		t.Errorf("manifest digest %s, want %s", got.ManifestDigest, md)
	}
	if got.ConfigDigest != cn.String() {
		t.Errorf("config digest %s, want %s", got.ConfigDigest, cn)
	}
	digests, diffIDs := layerDigests(t, img)
	if len(got.Layers) != len(digests) {
		t.Fatalf("%d layers, want %d", len(got.Layers), len(digests))
	}
	for i, l := range got.Layers {
		if l.Digest != digests[i] || l.DiffID != diffIDs[i] {
			t.Errorf("layer %d: digest %s diffID %s, want %s %s", i, l.Digest, l.DiffID, digests[i], diffIDs[i])
		}
	}
}

// blobBytes fetches a blob straight from the in-memory registry.
func (tr *testRegistry) blobBytes(t *testing.T, repo, dgst string) []byte {
	t.Helper()
	rec := httptest.NewRecorder()
	tr.reg.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/blobs/"+dgst, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("blob %s: %d", dgst, rec.Code)
	}
	return rec.Body.Bytes()
}

func isGet(r *http.Request, suffix string) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, suffix)
}

// counter numbers the requests a hook sees.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func authHeader(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func seed(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
