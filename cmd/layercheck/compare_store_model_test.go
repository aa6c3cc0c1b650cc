package main

import (
	"archive/tar"
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/hoststore/cstorage/cstoragetest"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
	"github.com/layercheck/layercheck/report"
)

// TestCompareStoreContainersStorage: compare store checks sources against
// any store the model opens, here a containers-storage graph root: the
// same image is identical (with --deep its layers rebuilt from disk too),
// another image is absent from the store, and the root is not changed.
func TestCompareStoreContainersStorage(t *testing.T) {
	rr := newRemoteRegistry(t)
	cs := cstoragetest.Build(t, "vfs")
	app := cs.Images["app"]
	var tars [][]byte
	for _, l := range app.Layers {
		tars = append(tars, l.Tar)
	}
	pushImage(t, rr, "app:1", app.Config, tars)
	legacy := cs.Images["legacy"]
	other := append([]byte(nil), legacy.Config...)
	other = append(other[:len(other)-1], []byte(`,"comment":"another image"}`)...)
	var ltars [][]byte
	for _, l := range legacy.Layers {
		ltars = append(ltars, l.Tar)
	}
	pushImage(t, rr, "other:1", other, ltars)
	before := dockertest.TreeHash(t, cs.Root)

	for _, args := range [][]string{nil, {"--deep"}} {
		cmd := append([]string{"compare", "store", "--no-progress", "-o", "json", "--root", cs.Root}, args...)
		out, errOut, code := runCLI(t, append(cmd, "docker://"+rr.host+"/app:1")...)
		if code != ExitOK {
			t.Fatalf("%v: exit %d, want %d; stderr %s\n%s", args, code, ExitOK, errOut, out)
		}
		rep := jsonReport(t, out)
		if rep.Summary.Errors != 0 || len(rep.Problems) != 0 {
			t.Fatalf("%v: %d errors, problems %+v\n%s", args, rep.Summary.Errors, rep.Problems, findingsText(rep))
		}
		// The source's image and the store's (with --deep as its audit
		// lists it).
		n := 0
		for _, im := range rep.Images {
			if im.ConfigDigest == "sha256:"+app.ID {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%v: %d images with the config digest, want the source's and the store's:\n%+v", args, n, rep.Images)
		}
	}

	out, _, code := runCLI(t, "compare", "store", "--no-progress", "-o", "json", "--root", cs.Root, "docker://"+rr.host+"/other:1")
	if code != ExitFindings {
		t.Fatalf("another image: exit %d, want %d\n%s", code, ExitFindings, out)
	}
	if got := byCheck(jsonReport(t, out), report.Error); len(got[compare.HostImage]) != 1 {
		t.Errorf("another image: findings %+v, want one %s", got, compare.HostImage)
	}
	if strings.Join(before, "\n") != strings.Join(dockertest.TreeHash(t, cs.Root), "\n") {
		t.Fatal("compare store changed the graph root")
	}

	// --deep proves the files: a byte flipped in a file of the image's top
	// layer's own tar.
	top := app.Layers[len(app.Layers)-1]
	var victim string
	tr := tar.NewReader(bytes.NewReader(top.Tar))
	for victim == "" {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no regular file with data in the top layer: %v", err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			victim = cs.Path(top.Dir + "/" + strings.TrimPrefix(h.Name, "./"))
		}
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	dockertest.WriteFile(t, victim, b, 0o644)
	out, _, code = runCLI(t, "compare", "store", "--no-progress", "-o", "json", "--root", cs.Root, "--deep", "docker://"+rr.host+"/app:1")
	if code != ExitFindings {
		t.Fatalf("--deep, a flipped byte: exit %d, want %d\n%s", code, ExitFindings, out)
	}
	if rep := jsonReport(t, out); !strings.Contains(findingsText(rep), "cs-") {
		t.Errorf("--deep, a flipped byte: no containers-storage finding\n%s", findingsText(rep))
	}
}
