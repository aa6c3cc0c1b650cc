package registryclient_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
)

// TestCredentialsNeverShown runs the default keychain against a registry
// that requires basic auth, with a secret in $DOCKER_CONFIG, through a clean
// run, a registry that echoes the Authorization header in its errors, and a
// wrong password; the secret appears in no report, error or log line.
func TestCredentialsNeverShown(t *testing.T) {
	const user, secret = "bob", "Sup3r-S3cret-Passw0rd"
	tr := newRegistry(t)
	img, dgst, _ := faultImage(t, tr)
	tr.mu.Lock()
	tr.auth = "Basic " + authHeader(user, secret)
	tr.mu.Unlock()

	writeConfig := func(pass string) {
		dir := t.TempDir()
		cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, tr.host, authHeader(user, pass))
		must(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600))
		t.Setenv("DOCKER_CONFIG", dir)
	}
	t.Setenv("HOME", t.TempDir()) // no ~/.docker/config.json
	writeConfig(secret)

	var mu sync.Mutex
	var out bytes.Buffer
	opts := func(o *registryclient.Options) {
		o.Keychain = nil // authn.DefaultKeychain
		o.Logf = func(f string, a ...any) { mu.Lock(); fmt.Fprintf(&out, f+"\n", a...); mu.Unlock() }
	}
	record := func(rep *report.Report, err error) {
		mu.Lock()
		defer mu.Unlock()
		if rep != nil {
			json.NewEncoder(&out).Encode(rep)
			report.WriteText(&out, rep, report.TextOptions{Verbose: true})
		}
		if err != nil {
			fmt.Fprintln(&out, err)
		}
	}

	rep, err := check(t, newClient(t, opts), tr.host+"/app:v1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	record(rep, err)

	// A registry that echoes the credentials in its error bodies.
	tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
		if isGet(r, "/blobs/"+dgst) {
			msg := fmt.Sprintf(`{"errors":[{"code":"BLOB_UNKNOWN","message":"no blob for %s"}]}`, r.Header.Get("Authorization"))
			http.Error(w, msg, http.StatusNotFound)
			return true
		}
		return false
	})
	rep, err = check(t, newClient(t, opts), tr.host+"/app:v1")
	record(rep, err)
	if err != nil || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0].Message, "BLOB_UNKNOWN") {
		t.Errorf("want a problem naming BLOB_UNKNOWN, got %v %+v", err, rep.Problems)
	}

	// A wrong password: the registry refuses, the error says so.
	writeConfig(secret + "-wrong")
	tr.setHook(nil)
	c := newClient(t, opts)
	src, err := c.Open(tr.host + "/app:v1")
	must(t, err)
	_, err = src.Targets(t.Context())
	record(nil, err)
	t.Logf("wrong password: %v", err)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: err %v, want a 401", err)
	}

	text := out.String()
	for _, s := range []string{secret, authHeader(user, secret), authHeader(user, secret+"-wrong")} {
		if strings.Contains(text, s) {
			t.Errorf("output holds a credential %q:\n%s", s, text)
		}
	}
	if !strings.Contains(text, "<redacted>") {
		t.Errorf("the echoed header was not redacted; the test proves nothing:\n%s", text)
	}
}

// foreignImage is a Docker image whose top layer is foreign, with its bytes
// served by another host.
func foreignImage(t *testing.T, tr *testRegistry) (v1.Image, v1.Layer, *httptest.Server, *int) {
	t.Helper()
	fl := tarLayer(t, "windows-base.txt", 20000)
	rc, _ := fl.Compressed()
	data, _ := io.ReadAll(rc)
	n := new(int)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*n++
		mu.Unlock()
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	base := randomImage(t, 1, "windows", "amd64")
	img, err := mutate.Append(base, mutate.Addendum{Layer: fl, MediaType: types.DockerForeignLayer, URLs: []string{"ftp://ignored/", srv.URL + "/base.tar.gz"}})
	must(t, err)
	tr.push(t, "win:1", img) // remote.Write does not upload foreign layers
	return img, fl, srv, n
}

func TestForeignLayerSkippedByDefault(t *testing.T) {
	tr := newRegistry(t)
	_, fl, _, n := foreignImage(t, tr)
	rep, err := check(t, newClient(t, nil), tr.host+"/win:1")
	mustClean(t, rep, err)
	fd, _ := fl.Digest()
	wantFinding(t, rep, report.LayerForeign, fd.String(), "", "")
	if *n != 0 {
		t.Errorf("the foreign URL was fetched %d times without --allow-nondistributable", *n)
	}
}

func TestForeignLayerFromItsURL(t *testing.T) {
	tr := newRegistry(t)
	img, _, _, n := foreignImage(t, tr)
	rep, err := check(t, newClient(t, func(o *registryclient.Options) { o.AllowNondistributable = true }), tr.host+"/win:1")
	mustClean(t, rep, err)
	imageMatches(t, rep.Images[0], img)
	if *n != 1 {
		t.Errorf("the foreign URL was fetched %d times, want 1", *n)
	}
	if len(findings(rep, report.LayerForeign)) != 0 {
		t.Errorf("a fetched foreign layer is reported skipped")
	}
}

// signedSchema1 builds a pretty-signed schema 1 manifest the way libtrust
// does: the payload's closing "\n}" is moved into the protected header's
// formatTail and the signatures are spliced in before it.
func signedSchema1(t *testing.T, layers []digest.Digest) (signed, payload []byte) {
	t.Helper()
	type fsl struct {
		BlobSum digest.Digest `json:"blobSum"`
	}
	type hist struct {
		V1Compatibility string `json:"v1Compatibility"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		Name          string `json:"name"`
		Tag           string `json:"tag"`
		Architecture  string `json:"architecture"`
		FSLayers      []fsl  `json:"fsLayers"`
		History       []hist `json:"history"`
	}{SchemaVersion: 1, Name: "old", Tag: "s1", Architecture: "amd64"}
	for i := len(layers) - 1; i >= 0; i-- { // top first
		m.FSLayers = append(m.FSLayers, fsl{layers[i]})
		m.History = append(m.History, hist{fmt.Sprintf(`{"id":"%064d"}`, i)})
	}
	payload, err := json.MarshalIndent(m, "", "   ")
	must(t, err)
	formatLength := bytes.LastIndex(payload, []byte("\n}"))
	tail := payload[formatLength:]
	protected, _ := json.Marshal(map[string]any{"formatLength": formatLength, "formatTail": base64.RawURLEncoding.EncodeToString(tail), "time": "2015-01-01T00:00:00Z"})
	sig := fmt.Sprintf(`,
   "signatures": [
      {
         "header": {"alg": "ES256"},
         "signature": "c2lnbmF0dXJl",
         "protected": %q
      }
   ]
}`, base64.RawURLEncoding.EncodeToString(protected))
	signed = append(append([]byte(nil), payload[:formatLength]...), sig...)
	return signed, payload
}

func TestSignedSchema1(t *testing.T) {
	tr := newRegistry(t)
	var ds []digest.Digest
	for _, name := range []string{"base.txt", "top.txt"} {
		l := tarLayer(t, name, 5000)
		must(t, remote.WriteLayer(tr.ref(t, "old:x").Context(), l))
		d, _ := l.Digest()
		ds = append(ds, digest.Digest(d.String()))
	}
	signed, payload := signedSchema1(t, ds)
	payloadDigest := digest.FromBytes(payload)
	if payloadDigest == digest.FromBytes(signed) {
		t.Fatal("test manifest: payload and signed bytes hash alike")
	}
	serveManifest := func(body []byte, header digest.Digest) {
		tr.setHook(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if isGet(r, "/manifests/s1") || isGet(r, "/manifests/"+payloadDigest.String()) {
				w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
				w.Header().Set("Docker-Content-Digest", header.String())
				w.Write(body)
				return true
			}
			return false
		})
	}
	c := newClient(t, nil)

	t.Run("intact", func(t *testing.T) {
		serveManifest(signed, payloadDigest)
		for _, ref := range []string{tr.host + "/old:s1", tr.host + "/old@" + payloadDigest.String()} {
			rep, err := check(t, c, ref)
			noProblems(t, rep, err)
			for _, f := range rep.Findings {
				if f.Check != report.ManifestSchema1 && f.Severity > report.Info {
					t.Errorf("%s: unexpected finding %s: %s", ref, f.Check, f.Message)
				}
			}
			if len(findings(rep, report.ManifestSchema1)) != 1 {
				t.Errorf("%s: no manifest-schema1 finding", ref)
			}
			if got := len(rep.Images[0].Layers); got != 2 {
				t.Fatalf("%s: %d layers, want 2", ref, got)
			}
			for i, l := range rep.Images[0].Layers {
				if l.Digest != ds[i].String() {
					t.Errorf("%s: layer %d digest %s, want %s (base first)", ref, i, l.Digest, ds[i])
				}
			}
		}
	})
	t.Run("header names another payload", func(t *testing.T) {
		other := digest.FromString("another payload")
		serveManifest(signed, other)
		rep, err := check(t, c, tr.host+"/old:s1")
		noProblems(t, rep, err)
		wantFinding(t, rep, report.ManifestDigest, other.String(), other.String(), payloadDigest.String())
	})
	t.Run("tampered payload", func(t *testing.T) {
		tampered := bytes.Replace(signed, []byte(`"amd64"`), []byte(`"arm64"`), 1)
		serveManifest(tampered, payloadDigest)
		rep, err := check(t, c, tr.host+"/old@"+payloadDigest.String())
		noProblems(t, rep, err)
		fs := findings(rep, report.ManifestDigest)
		if len(fs) != 1 || fs[0].Expected != payloadDigest.String() || fs[0].Actual == payloadDigest.String() {
			t.Errorf("manifest-digest findings %+v, want one for the tampered payload", fs)
		}
	})
}

func TestMirrorServesDockerHubImages(t *testing.T) {
	mirror := newRegistry(t)
	img := randomImage(t, 2, "linux", "amd64")
	mirror.push(t, "library/busybox:1.36", img)
	c := newClient(t, func(o *registryclient.Options) { o.Mirrors = []string{"http://" + mirror.host} })
	for _, ref := range []string{"busybox:1.36", "docker.io/library/busybox:1.36"} {
		rep, err := check(t, c, ref)
		mustClean(t, rep, err)
		imageMatches(t, rep.Images[0], img)
	}
	if n := mirror.count("/v2/library/busybox/manifests/1.36"); n != 2 {
		t.Errorf("the mirror served the manifest %d times, want 2", n)
	}
}

func TestBadMirror(t *testing.T) {
	for _, m := range []string{"https://user:pw@mirror.example", "https://mirror.example/some/path", "ftp://mirror.example"} {
		_, err := registryclient.NewClient(registryclient.Options{Mirrors: []string{m}})
		if err == nil {
			t.Errorf("mirror %q accepted", m)
		} else if strings.Contains(err.Error(), "pw@") {
			t.Errorf("mirror error shows the password: %v", err)
		}
	}
}

func TestMissingManifestAndBadReference(t *testing.T) {
	tr := newRegistry(t)
	tr.push(t, "app:other", randomImage(t, 1, "linux", "amd64"))
	c := newClient(t, nil)
	src, err := c.Open(tr.host + "/app:here")
	must(t, err)
	_, err = src.Targets(t.Context())
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || !errors.Is(err, source.ErrNotFound) {
		t.Errorf("missing tag: %v", err)
	}
	if _, err := c.Open("UPPER/Case:bad tag"); err == nil {
		t.Errorf("a bad reference parsed")
	}
}
