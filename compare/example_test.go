package compare_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/layercheck/layercheck/compare"
	"github.com/layercheck/layercheck/registryclient"
	"github.com/layercheck/layercheck/source/dockerarchive"
	"github.com/layercheck/layercheck/verify"
)

// Compare a docker save tarball with what a registry serves under a tag, as
// `layercheck compare ARTIFACT REF` does; here the registry is
// go-containerregistry's in-memory one.
func ExampleArtifact() {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/sample:1"

	// Push the bundled sample's image to the registry.
	img, err := tarball.ImageFromPath("../testdata/sample.tar", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	tag, _ := name.ParseReference(ref)
	if err := remote.Write(tag, img); err != nil {
		fmt.Println(err)
		return
	}

	art, err := dockerarchive.Open("../testdata/sample.tar", dockerarchive.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer art.Close()
	client, _ := registryclient.NewClient(registryclient.Options{})
	reg, err := client.Open(ref)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()
	rep, err := compare.Artifact(context.Background(), art, "sample.tar", reg, ref, compare.Options{Verify: verify.Options{Jobs: 2}})
	if err != nil {
		fmt.Println("could not compare:", err)
		return
	}
	fmt.Println(rep.Summary.Verdict, rep.Summary.Errors)
	// Output: ok 0
}
