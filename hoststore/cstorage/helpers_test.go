package cstorage_test

import (
	"archive/tar"
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/layercheck/layercheck/hoststore/cstorage/cstoragetest"
	"github.com/layercheck/layercheck/hoststore/docker/dockertest"
)

// copyStore copies a built store (owners, modes, devices, xattrs and
// hardlinks kept) so a test can damage it.
func copyStore(t *testing.T, s *cstoragetest.Store) *cstoragetest.Store {
	t.Helper()
	c := *s
	c.Root = filepath.Join(t.TempDir(), "root")
	dockertest.CopyTree(t, s.Root, c.Root)
	return &c
}

// climbing is the tar-split of tarBytes with one more file, named
// ../../../outside, which a reader must never open.
func climbing(t *testing.T, tarBytes []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	tw := tar.NewWriter(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	h := &tar.Header{Name: "../../../outside", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("x"))
	tw.Close()
	return dockertest.Disassemble(t, buf.Bytes())
}
