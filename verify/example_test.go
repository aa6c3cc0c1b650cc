package verify_test

import (
	"context"
	"fmt"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source/dockerarchive"
	"github.com/layercheck/layercheck/verify"
)

// Verify a docker save tarball as `layercheck tar` does: every manifest,
// config and layer, each layer read once.
func ExampleVerifier_Verify() {
	src, err := dockerarchive.Open("../testdata/sample.tar", dockerarchive.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer src.Close()
	b := &report.Builder{}
	if err := verify.New(verify.Options{Jobs: 2}).Verify(context.Background(), src, b); err != nil {
		fmt.Println("could not verify:", err)
		return
	}
	rep := b.Finish("tar", "sample.tar", "example")
	fmt.Printf("%s: %d images, %d layers, %d errors\n", rep.Summary.Verdict, rep.Summary.Images, rep.Summary.Layers, rep.Summary.Errors)
	// Output: ok: 1 images, 2 layers, 0 errors
}
