package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/e2e/storetar"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/tarsplit"
	digest "github.com/opencontainers/go-digest"
)

// rawManifest is a manifest pushed byte for byte with remote.Put.
type rawManifest struct {
	data []byte
	mt   types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.data, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// pushed is what pushImage put in the registry.
type pushed struct {
	manifest digest.Digest
	layers   []digest.Digest // compressed blob digests
}

// pushImage pushes a store image to the registry as a Docker schema 2
// image: its exact config bytes and each layer tar gzip-compressed, the
// way a registry holds what dockerd pulled.
func pushImage(t *testing.T, rr *remoteRegistry, repoTag string, config []byte, tars [][]byte) pushed {
	t.Helper()
	ref, err := name.ParseReference(rr.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Size      int    `json:"size"`
		Digest    string `json:"digest"`
	}
	write := func(b []byte, mt types.MediaType) desc {
		if err := remote.WriteLayer(ref.Context(), static.NewLayer(b, mt)); err != nil {
			t.Fatal(err)
		}
		return desc{MediaType: string(mt), Size: len(b), Digest: digest.FromBytes(b).String()}
	}
	var p pushed
	man := map[string]any{"schemaVersion": 2, "mediaType": string(types.DockerManifestSchema2), "config": write(config, types.DockerConfigJSON)}
	var layers []desc
	for _, tb := range tars {
		d := write(dockertest.Gzip(t, tb), types.DockerLayer)
		layers = append(layers, d)
		p.layers = append(p.layers, digest.Digest(d.Digest))
	}
	man["layers"] = layers
	data, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, rawManifest{data, types.DockerManifestSchema2}); err != nil {
		t.Fatal(err)
	}
	p.manifest = digest.FromBytes(data)
	return p
}

func storeImagePush(t *testing.T, rr *remoteRegistry, repoTag string, img *dockertest.Image) pushed {
	t.Helper()
	var tars [][]byte
	for _, l := range img.Layers {
		tars = append(tars, l.Tar)
	}
	return pushImage(t, rr, repoTag, img.Config, tars)
}

// recordPull writes what dockerd records when it pulls repo:tag: the tag
// and the repo digest in repositories.json, and the distribution metadata
// of each layer.
func recordPull(t *testing.T, s *dockertest.Store, img *dockertest.Image, repo, tag string, p pushed) {
	t.Helper()
	editRepositories(t, s, func(repos map[string]map[string]string) {
		repos[repo] = map[string]string{repo + ":" + tag: img.ID.String(), repo + "@" + p.manifest.String(): img.ID.String()}
	})
	for i, l := range img.Layers {
		dockertest.WriteFile(t, s.Path(s.ImageRel()+"/distribution/diffid-by-digest/sha256/"+p.layers[i].Encoded()), []byte(l.DiffID.String()), 0o644)
		md, _ := json.Marshal([]map[string]string{{"Digest": p.layers[i].String(), "SourceRepository": repo, "HMAC": ""}})
		dockertest.WriteFile(t, s.Path(s.ImageRel()+"/distribution/v2metadata-by-diffid/sha256/"+l.DiffID.Encoded()), md, 0o644)
	}
}

// editRepositories rewrites the store's repositories.json through edit.
func editRepositories(t *testing.T, s *dockertest.Store, edit func(repos map[string]map[string]string)) {
	t.Helper()
	path := s.Path(s.ImageRel() + "/repositories.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Repositories map[string]map[string]string }
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc.Repositories)
	b, _ = json.Marshal(doc)
	dockertest.WriteFile(t, path, b, 0o600)
}

// pulledStore builds a store whose "app" image was pulled from the
// registry as HOST/app:1.
func pulledStore(t *testing.T, driver string) (*dockertest.Store, *remoteRegistry, pushed, string) {
	t.Helper()
	rr := newRemoteRegistry(t)
	s := dockertest.Build(t, dockertest.DefaultSpec(driver, dockertest.IsRoot()))
	app := s.Images["app"]
	p := storeImagePush(t, rr, "app:1", app)
	recordPull(t, s, app, rr.host+"/app", "1", p)
	return s, rr, p, rr.host + "/app:1"
}

func byCheck(rep report.Report, sev report.Severity) map[report.Check][]report.Finding {
	out := map[report.Check][]report.Finding{}
	for _, f := range rep.Findings {
		if f.Severity >= sev {
			out[f.Check] = append(out[f.Check], f)
		}
	}
	return out
}

func TestCompareHostIdentical(t *testing.T) {
	for _, drv := range []string{"overlay2", "vfs"} {
		t.Run(drv, func(t *testing.T) {
			s, _, _, ref := pulledStore(t, drv)
			before := dockertest.TreeHash(t, s.Root)
			app := s.Images["app"]
			for _, args := range [][]string{
				{app.ID.Encoded()[:12]},
				{"--remote", ref, app.ID.String()},
				{"--deep", app.ID.String()},
			} {
				out, errOut, code := runCLI(t, append([]string{"compare", "host", "--no-progress", "-o", "json", "--root", s.Root}, args...)...)
				if code != ExitOK {
					t.Fatalf("%v: exit %d, stderr %s\n%s", args, code, errOut, out)
				}
				rep := jsonReport(t, out)
				if rep.Summary.Errors != 0 || rep.Summary.Warnings != 0 || len(rep.Problems) != 0 {
					t.Fatalf("%v: %d errors, %d warnings, problems %+v\n%s", args, rep.Summary.Errors, rep.Summary.Warnings, rep.Problems, findingsText(rep))
				}
				notes := byCheck(rep, report.Info)[compare.LayerDigestDiffers]
				if len(notes) != 1 || !strings.Contains(notes[0].Message, "diffID") {
					t.Errorf("%v: the note on compressed digests is %+v", args, notes)
				}
				// Both sides are in the report: the registry's image and the host's.
				if len(rep.Images) != 2 {
					t.Fatalf("%v: %d images, want 2", args, len(rep.Images))
				}
				for _, im := range rep.Images {
					if im.ConfigDigest != app.ID.String() || len(im.Layers) != 2 || im.Layers[1].ChainID != app.Layers[1].ChainID.String() {
						t.Errorf("%v: image %s config %s, %d layers", args, im.Name, im.ConfigDigest, len(im.Layers))
					}
				}
			}
			if strings.Join(before, "\n") != strings.Join(dockertest.TreeHash(t, s.Root), "\n") {
				t.Fatal("compare changed the data root")
			}
		})
	}
}

func TestCompareHostTagMoved(t *testing.T) {
	s, rr, p, ref := pulledStore(t, "vfs")
	// A new image is pushed under the same tag: the registry still serves
	// the pulled digest.
	other := storeImagePush(t, rr, "app:1", s.Images["legacy"])
	id := s.Images["app"].ID.String()
	out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--root", s.Root, id)
	if code != ExitFindings {
		t.Fatalf("exit %d, want %d; stderr %s\n%s", code, ExitFindings, errOut, out)
	}
	rep := jsonReport(t, out)
	got := byCheck(rep, report.Error)
	moved := got[compare.TagMoved]
	if len(moved) != 1 || moved[0].Expected != other.manifest.String() || moved[0].Actual != p.manifest.String() {
		t.Fatalf("compare-tag-moved = %+v, want expected %s (registry now) actual %s (pulled)\n%s", moved, other.manifest, p.manifest, findingsText(rep))
	}
	if !strings.Contains(moved[0].Message, "still serves") {
		t.Errorf("message does not say the pulled digest was compared: %q", moved[0].Message)
	}
	// Compared with the pulled digest: the same image.
	if len(got) != 1 {
		t.Errorf("findings besides the tag move:\n%s", findingsText(rep))
	}
	table, _, _ := runCLI(t, "compare", "host", "--no-progress", "--root", s.Root, id)
	if !strings.Contains(table, "compare-tag-moved") || !strings.Contains(table, other.manifest.Encoded()[:12]) {
		t.Errorf("the table does not show the move:\n%s", table)
	}

	// --remote names what to compare with: the moved tag, a different image.
	out, _, code = runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--root", s.Root, "--remote", ref, s.Images["app"].ID.String())
	if code != ExitFindings {
		t.Fatalf("--remote: exit %d", code)
	}
	got = byCheck(jsonReport(t, out), report.Error)
	if len(got[compare.TagMoved]) != 1 || len(got[compare.Config]) != 1 || got[compare.Config][0].Expected != s.Images["legacy"].ID.String() {
		t.Errorf("--remote the moved tag: %+v", got)
	}
}

// TestCompareHostSeveralRecordedDigests: a store that records two digests of
// the image in the repository (a load and a pull, an index and its
// platform manifest) compares with the tag serving either: the tag has not
// moved when it serves the one that is not first in the store's order.
func TestCompareHostSeveralRecordedDigests(t *testing.T) {
	s, rr, _, _ := pulledStore(t, "vfs")
	app := s.Images["app"]
	// A digest the registry does not serve, first in the store's order.
	editRepositories(t, s, func(repos map[string]map[string]string) {
		repos[rr.host+"/app"][rr.host+"/app@sha256:"+strings.Repeat("0", 64)] = app.ID.String()
	})

	out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--root", s.Root, app.ID.String())
	if code != ExitOK {
		t.Fatalf("exit %d, want %d; stderr %s\n%s", code, ExitOK, errOut, out)
	}
	rep := jsonReport(t, out)
	if rep.Summary.Errors != 0 || rep.Summary.Warnings != 0 || len(rep.Problems) != 0 {
		t.Fatalf("%d errors, %d warnings, problems %+v\n%s", rep.Summary.Errors, rep.Summary.Warnings, rep.Problems, findingsText(rep))
	}
}

func TestCompareHostNoRegistrySource(t *testing.T) {
	s := dockertest.Build(t, dockertest.DefaultSpec("vfs", dockertest.IsRoot()))
	// legacy:latest was loaded, never pulled: no repo digest.
	out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "--root", s.Root, "legacy:latest")
	if code != ExitCannotCheck {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitCannotCheck, out, errOut)
	}
	if !strings.Contains(errOut, "no registry source") || !strings.Contains(errOut, "--remote") {
		t.Errorf("stderr does not say why and what to do: %s", errOut)
	}
	if _, errOut, code := runCLI(t, "compare", "host", "--no-progress", "--root", s.Root, "nothing:here"); code != ExitCannotCheck || !strings.Contains(errOut, "nothing:here") {
		t.Errorf("unknown image: exit %d, %s", code, errOut)
	}
}

// TestCompareHostTampered changes a file under a layer directory and a
// layer's tar-split: metadata still matches; --deep names both.
func TestCompareHostTampered(t *testing.T) {
	s, _, _, _ := pulledStore(t, "vfs")
	app := s.Images["app"]
	top := app.Layers[1]
	// The same length, other bytes: only a content check sees it.
	dockertest.WriteFile(t, s.Path(top.Dir+"/etc/hello"), []byte("HELLO again, world\n"), 0o644)
	if _, _, code := runCLI(t, "compare", "host", "--no-progress", "--root", s.Root, app.ID.String()); code != ExitOK {
		t.Fatalf("without --deep the metadata is equal: exit %d", code)
	}
	out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--deep", "--root", s.Root, app.ID.String())
	if code != ExitFindings {
		t.Fatalf("--deep: exit %d; %s", code, errOut)
	}
	rep := jsonReport(t, out)
	crc := byCheck(rep, report.Error)["host-file-crc"]
	if len(crc) == 0 || crc[0].Subject.Entry != "etc/hello" {
		t.Fatalf("--deep does not name etc/hello:\n%s", findingsText(rep))
	}
	if len(byCheck(rep, report.Error)[compare.TarSplit]) != 0 {
		t.Errorf("the tar-splits are intact, yet:\n%s", findingsText(rep))
	}

	// The tar-split of the top layer altered: new.txt's content (CRC) differs.
	t.Run("tar-split", func(t *testing.T) {
		s, _, _, ref := pulledStore(t, "vfs")
		top := s.Images["app"].Layers[1]
		altered := bytes.Replace(top.Tar, []byte("new\n"), []byte("NEW\n"), 1)
		dockertest.WriteFile(t, s.Path(top.LayerDB+"/tar-split.json.gz"), dockertest.Disassemble(t, altered), 0o644)
		out, _, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--deep", "--root", s.Root, s.Images["app"].ID.String())
		if code != ExitFindings {
			t.Fatalf("exit %d", code)
		}
		rep := jsonReport(t, out)
		ts := byCheck(rep, report.Error)[compare.TarSplit]
		if len(ts) != 1 || ts[0].Subject.Entry != "etc/new.txt" || *ts[0].Subject.Layer != 1 || !strings.Contains(ts[0].Message, "CRC") || ts[0].Expected == ts[0].Actual {
			t.Fatalf("compare-tarsplit = %+v\n%s", ts, findingsText(rep))
		}
		// Mode 2 from the registry's bytes names the same entry.
		out, _, code = runCLI(t, "compare", "store", "--no-progress", "-o", "json", "--root", s.Root, ref)
		if code != ExitFindings {
			t.Fatalf("--root SOURCE: exit %d", code)
		}
		ts = byCheck(jsonReport(t, out), report.Error)[compare.TarSplit]
		if len(ts) != 1 || ts[0].Subject.Entry != "etc/new.txt" {
			t.Fatalf("--root SOURCE: compare-tarsplit = %+v", ts)
		}
	})
}

// writeLayoutFrom copies a registry image into an OCI layout with
// go-containerregistry.
func writeLayoutFrom(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCompareSourceAgainstStore is mode 2: a registry reference and an OCI
// layout checked against the store's layerdb and tar-splits.
func TestCompareSourceAgainstStore(t *testing.T) {
	s, _, _, ref := pulledStore(t, "vfs")
	dir := writeLayoutFrom(t, ref)
	app := s.Images["app"]
	for _, src := range []string{ref, dir} {
		out, errOut, code := runCLI(t, "compare", "store", "--no-progress", "-o", "json", "--root", s.Root, src)
		if code != ExitOK {
			t.Fatalf("%s: exit %d; %s\n%s", src, code, errOut, out)
		}
		rep := jsonReport(t, out)
		if rep.Summary.Errors != 0 || len(rep.Problems) != 0 {
			t.Fatalf("%s: %+v\n%s", src, rep.Problems, findingsText(rep))
		}
		host := false
		for _, im := range rep.Images {
			host = host || (im.ConfigDigest == app.ID.String() && strings.Contains(im.Layers[0].Location, "layerdb"))
		}
		if !host {
			t.Errorf("%s: the host image is not in the report", src)
		}
	}
	// A layer the store lacks, a layerdb record with another parent.
	if err := os.RemoveAll(s.Path(app.Layers[1].LayerDB)); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCLI(t, "compare", "store", "--no-progress", "-o", "json", "--root", s.Root, dir)
	if code != ExitFindings {
		t.Fatalf("missing layer: exit %d", code)
	}
	got := byCheck(jsonReport(t, out), report.Error)[compare.LayerMissingLocal]
	if len(got) != 1 || got[0].Expected != app.Layers[1].ChainID.String() || *got[0].Subject.Layer != 1 {
		t.Fatalf("compare-layer-missing-local = %+v", got)
	}

	// A store without the image at all.
	empty := dockertest.Build(t, dockertest.StoreSpec{Driver: "vfs"})
	out, _, code = runCLI(t, "compare", "store", "--no-progress", "-o", "json", "--root", empty.Root, dir)
	if code != ExitFindings {
		t.Fatalf("empty store: exit %d", code)
	}
	rep := jsonReport(t, out)
	if g := byCheck(rep, report.Error); len(g[compare.HostImage]) != 1 || len(g[compare.LayerMissingLocal]) != 2 {
		t.Fatalf("empty store:\n%s", findingsText(rep))
	}
}

func TestCompareArgumentRules(t *testing.T) {
	s := dockertest.Build(t, dockertest.DefaultSpec("vfs", dockertest.IsRoot()))
	art := filepath.Join(t.TempDir(), "x.tar")
	dockertest.WriteFile(t, art, []byte("x"), 0o644)
	for _, args := range [][]string{
		{"compare", art}, // the old one-argument form: ARTIFACT REF, compare host or compare store
		{"compare", "--root", s.Root, art, "ref:1"},   // --root with ARTIFACT REF
		{"compare", "--deep", art, "localhost:5/a:1"}, // --deep with ARTIFACT REF
	} {
		if _, _, code := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

// extractStoreCapture restores a real dockerd data root captured by the e2e
// harness (fixtures/testdata/stores) into a temporary directory.
func extractStoreCapture(t *testing.T, name string) (string, *storetar.Truth) {
	return storetar.ExtractCapture(t, name)
}

// TestCompareRealStoreCapture pushes each image of a real dockerd's
// overlay2 and vfs stores to the registry, rebuilt from that store's own bytes (imagedb
// config, layers reassembled from tar-split.json.gz and the layer
// directories), and compares: the tar-splits captured from the registry's
// blobs equal the ones dockerd 20.10 wrote (whose trailing empty segment is
// not a difference); an altered tar-split.json.gz is then named.
func TestCompareRealStoreCapture(t *testing.T) {
	for _, drv := range []string{"overlay2", "vfs"} {
		t.Run(drv, func(t *testing.T) { testRealStoreCapture(t, drv) })
	}
}

func testRealStoreCapture(t *testing.T, drv string) {
	root, truth := extractStoreCapture(t, "docker-"+drv)
	rr := newRemoteRegistry(t)
	imgRel := filepath.Join(root, "image", drv)
	layerDir := func(cacheID string) string {
		if drv == "overlay2" {
			return filepath.Join(root, "overlay2", cacheID, "diff")
		}
		return filepath.Join(root, "vfs", "dir", cacheID)
	}
	// --deep rebuilds the host layers with the host audit (whose own test
	// of these captures is hoststore/docker TestRealStoreCaptures): clean
	// on both drivers.
	deep := []string{"--deep"}
	for i, ti := range truth.Images {
		config, err := os.ReadFile(filepath.Join(imgRel, "imagedb", "content", "sha256", strings.TrimPrefix(ti.ID, "sha256:")))
		if err != nil {
			t.Fatal(err)
		}
		var tars [][]byte
		for j, chain := range ti.ChainIDs {
			ts, err := os.Open(filepath.Join(imgRel, "layerdb", "sha256", strings.TrimPrefix(chain, "sha256:"), "tar-split.json.gz"))
			if err != nil {
				t.Fatal(err)
			}
			op, err := tarsplit.RootOpener(layerDir(ti.CacheIDs[j]))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := tarsplit.Assemble(context.Background(), ts, op, &buf); err != nil {
				t.Fatal(err)
			}
			ts.Close()
			op.Close()
			if got := digest.FromBytes(buf.Bytes()).String(); got != ti.DiffIDs[j] {
				t.Fatalf("%s layer %d rebuilt to %s, dockerd says %s", ti.Ref, j, got, ti.DiffIDs[j])
			}
			tars = append(tars, buf.Bytes())
		}
		ref := rr.host + "/cap" + strconv.Itoa(i) + ":1"
		pushImage(t, rr, "cap"+strconv.Itoa(i)+":1", config, tars)
		t.Run(ti.Ref, func(t *testing.T) {
			for _, args := range [][]string{{ref}, append(deep, "--remote", ref, ti.ID)} {
				out, errOut, code := runCLI(t, append([]string{"compare", form(args), "--no-progress", "-o", "json", "--root", root}, args...)...)
				rep := jsonReport(t, out)
				if code != ExitOK || rep.Summary.Errors != 0 || len(rep.Problems) != 0 {
					t.Fatalf("%v: exit %d %s problems %+v\n%s", args, code, errOut, rep.Problems, findingsText(rep))
				}
			}
		})
	}

	// Alter the CRC of the first non-empty file of one layer's tar-split.
	ti := truth.Images[0]
	top := len(ti.ChainIDs) - 1
	tsPath := filepath.Join(imgRel, "layerdb", "sha256", strings.TrimPrefix(ti.ChainIDs[top], "sha256:"), "tar-split.json.gz")
	b, err := os.ReadFile(tsPath)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	entry := ""
	for _, line := range strings.Split(strings.TrimRight(dockertest.Gunzip(t, b), "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if size, _ := rec["size"].(float64); entry == "" && rec["type"] == float64(1) && size > 0 {
			entry = rec["name"].(string)
			rec["payload"] = "AAAAAAAAAAA=" // eight zero bytes: another CRC-64
			nb, _ := json.Marshal(rec)
			line = string(nb)
		}
		lines = append(lines, line)
	}
	if entry == "" {
		t.Fatal("no file entry to alter")
	}
	dockertest.WriteFile(t, tsPath, dockertest.Gzip(t, []byte(strings.Join(lines, "\n")+"\n")), 0o644)
	out, _, code := runCLI(t, "compare", "store", "--no-progress", "-o", "json", "--root", root, rr.host+"/cap0:1")
	rep := jsonReport(t, out)
	ts := byCheck(rep, report.Error)[compare.TarSplit]
	if code != ExitFindings || len(ts) != 1 || ts[0].Subject.Entry != entry || *ts[0].Subject.Layer != top {
		t.Fatalf("altered tar-split of %q: exit %d, compare-tarsplit %+v\n%s", entry, code, ts, findingsText(rep))
	}
}

// TestCompareHostDistribution: distribution/ entries that disagree with the
// registry's layer digests.
func TestCompareHostDistribution(t *testing.T) {
	s, rr, p, _ := pulledStore(t, "vfs")
	app := s.Images["app"]
	// The pull cache maps the registry's first blob to another diffID.
	dockertest.WriteFile(t, s.Path(s.ImageRel()+"/distribution/diffid-by-digest/sha256/"+p.layers[0].Encoded()), []byte(app.Layers[1].DiffID.String()), 0o644)
	// The host recorded the second layer from this repository as another blob.
	other := digest.FromString("recompressed")
	md, _ := json.Marshal([]map[string]string{{"Digest": other.String(), "SourceRepository": rr.host + "/app", "HMAC": ""}})
	dockertest.WriteFile(t, s.Path(s.ImageRel()+"/distribution/v2metadata-by-diffid/sha256/"+app.Layers[1].DiffID.Encoded()), md, 0o644)

	out, _, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--root", s.Root, app.ID.String())
	if code != ExitFindings {
		t.Fatalf("exit %d", code)
	}
	rep := jsonReport(t, out)
	var errs, warns []report.Finding
	for _, f := range rep.Findings {
		if f.Check == compare.Distribution {
			if f.Severity == report.Error {
				errs = append(errs, f)
			} else if f.Severity == report.Warning {
				warns = append(warns, f)
			}
		}
	}
	if len(errs) != 1 || *errs[0].Subject.Layer != 0 || errs[0].Expected != app.Layers[0].DiffID.String() || errs[0].Actual != app.Layers[1].DiffID.String() {
		t.Errorf("diffid-by-digest finding: %+v", errs)
	}
	if len(warns) != 1 || *warns[0].Subject.Layer != 1 || warns[0].Expected != p.layers[1].String() || warns[0].Actual != other.String() {
		t.Errorf("v2metadata finding: %+v", warns)
	}
}

// TestCompareHostPulledDigestGone: the tag moved and the registry no longer
// serves the digest the host pulled, so the host image is compared with what
// the tag serves now.
func TestCompareHostPulledDigestGone(t *testing.T) {
	s, rr, p, _ := pulledStore(t, "vfs")
	storeImagePush(t, rr, "app:1", s.Images["legacy"])
	gone, err := name.ParseReference(rr.host + "/app@" + p.manifest.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(gone); err != nil {
		t.Fatal(err)
	}
	out, _, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--retries", "0", "--root", s.Root, s.Images["app"].ID.String())
	if code != ExitFindings {
		t.Fatalf("exit %d", code)
	}
	rep := jsonReport(t, out)
	got := byCheck(rep, report.Error)
	if len(got[compare.TagMoved]) != 1 || !strings.Contains(got[compare.TagMoved][0].Message, "no longer serves") {
		t.Fatalf("compare-tag-moved = %+v", got[compare.TagMoved])
	}
	cfg := got[compare.Config]
	if len(cfg) != 1 || cfg[0].Expected != s.Images["legacy"].ID.String() || cfg[0].Actual != s.Images["app"].ID.String() {
		t.Fatalf("compare-config = %+v\n%s", cfg, findingsText(rep))
	}
	if len(got[compare.LayerOnlyLocal]) != 1 || *got[compare.LayerOnlyLocal][0].Subject.Layer != 1 {
		t.Errorf("compare-layer-only-local = %+v", got[compare.LayerOnlyLocal])
	}
}

// TestCompareHostRegistryDown: a registry that cannot be reached is "could
// not compare", not a difference.
func TestCompareHostRegistryDown(t *testing.T) {
	s := dockertest.Build(t, dockertest.DefaultSpec("vfs", dockertest.IsRoot()))
	out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--retries", "0", "--root", s.Root, "--remote", "127.0.0.1:1/app:1", "legacy:latest")
	if code != ExitCannotCheck {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitCannotCheck, out, errOut)
	}
	if rep := jsonReport(t, out); len(rep.Problems) == 0 || rep.Summary.Errors != 0 {
		t.Errorf("problems %+v, %d errors", rep.Problems, rep.Summary.Errors)
	}
}

// TestCompareSourceDeep: --root DATAROOT --deep SOURCE also rebuilds the host
// image's layers and names a changed file.
func TestCompareSourceDeep(t *testing.T) {
	s, _, _, ref := pulledStore(t, "vfs")
	top := s.Images["app"].Layers[1]
	dockertest.WriteFile(t, s.Path(top.Dir+"/etc/hello"), []byte("HELLO again, world\n"), 0o644)
	if _, _, code := runCLI(t, "compare", "host", "--no-progress", "--root", s.Root, ref); code != ExitOK {
		t.Fatalf("without --deep: exit %d", code)
	}
	out, _, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--deep", "--root", s.Root, ref)
	if code != ExitFindings {
		t.Fatalf("--deep: exit %d", code)
	}
	rep := jsonReport(t, out)
	if crc := byCheck(rep, report.Error)["host-file-crc"]; len(crc) == 0 || crc[0].Subject.Entry != "etc/hello" {
		t.Fatalf("--deep does not name etc/hello:\n%s", findingsText(rep))
	}
}

// form is the compare form of a test's arguments: one registry reference
// alone is a source checked against the store, else host images.
func form(args []string) string {
	if len(args) == 1 {
		return "store"
	}
	return "host"
}

// TestCompareHostRegistryHostedName is issue #13's case: the host image is
// named by its registry-hosted reference (HOST/app:1). compare host takes it
// as the host image, whatever its shape: identical while the tag stays,
// compare-tag-moved with both digests once it moves. The old one-argument
// form is a usage error naming both explicit forms.
func TestCompareHostRegistryHostedName(t *testing.T) {
	s, rr, p, ref := pulledStore(t, "vfs")
	if out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--root", s.Root, ref); code != ExitOK {
		t.Fatalf("before the move: exit %d, stderr %s\n%s", code, errOut, out)
	}
	other := storeImagePush(t, rr, "app:1", s.Images["legacy"])
	out, errOut, code := runCLI(t, "compare", "host", "--no-progress", "-o", "json", "--root", s.Root, ref)
	if code != ExitFindings {
		t.Fatalf("after the move: exit %d, want %d; stderr %s\n%s", code, ExitFindings, errOut, out)
	}
	moved := byCheck(jsonReport(t, out), report.Error)[compare.TagMoved]
	if len(moved) != 1 || moved[0].Expected != other.manifest.String() || moved[0].Actual != p.manifest.String() {
		t.Fatalf("compare-tag-moved = %+v, want expected %s actual %s", moved, other.manifest, p.manifest)
	}
	_, errOut, code = runCLI(t, "compare", "--no-progress", "--root", s.Root, ref)
	if code != ExitUsage || !strings.Contains(errOut, "compare host") || !strings.Contains(errOut, "compare store") {
		t.Fatalf("old form: exit %d, stderr %q; want %d naming compare host and compare store", code, errOut, ExitUsage)
	}
	_, errOut, code = runCLI(t, "compare", "--no-progress", ref)
	if code != ExitUsage || !strings.Contains(errOut, "compare host") {
		t.Fatalf("one argument: exit %d, stderr %q", code, errOut)
	}
}
