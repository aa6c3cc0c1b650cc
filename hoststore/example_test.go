package hoststore_test

import (
	"context"
	"fmt"

	"github.com/layercheck/layercheck/hoststore"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/store"
)

// Audit a host store, whatever its kind (Docker, containerd,
// containers-storage, a registry's storage), as `layercheck host --root`
// does, and look one image up for a comparison. Nothing under the root is
// written, locked or mounted.
func ExampleOpen() {
	st, err := hoststore.Open("/var/lib/docker", store.Options{Jobs: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	b := &report.Builder{}
	if err := st.Audit(context.Background(), b); err != nil {
		fmt.Println("could not audit:", err)
	}
	rep := b.Finish("host", st.String(), "example")
	fmt.Println(st.Kind(), rep.Summary.Verdict, rep.Summary.Errors)

	img, err := st.Lookup(context.Background(), "nginx:latest")
	if err == nil {
		fmt.Println(img.ID, img.RepoDigests, len(img.Layers))
	}
}
