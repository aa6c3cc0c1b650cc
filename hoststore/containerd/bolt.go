package containerd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// boltRead opens the bbolt database at path read-only and runs fn in one
// read transaction. bbolt takes a shared flock on read-only opens; when a
// running containerd holds its exclusive lock, the open times out after
// timeout and the file is copied to a private temporary file in tmpDir,
// which is read instead and removed before boltRead returns. copied tells
// which way was taken. Nothing is ever written to path.
func boltRead(path string, timeout time.Duration, tmpDir string, fn func(tx *bolt.Tx) error) (copied bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() == 0 {
		// bbolt would try to initialise an empty file; never let it.
		return false, fmt.Errorf("%s is empty, not a bbolt database", path)
	}
	err = boltView(path, timeout, fn)
	if !errors.Is(err, berrors.ErrTimeout) {
		if err != nil {
			return false, fmt.Errorf("reading %s: %w", path, err)
		}
		return false, nil
	}
	cp, err := privateCopy(path, tmpDir)
	if err != nil {
		return true, fmt.Errorf("%s is locked (containerd running?) and could not be copied: %w", path, err)
	}
	defer os.Remove(cp)
	if err := boltView(cp, timeout, fn); err != nil {
		return true, fmt.Errorf("reading a private copy of %s (the original is locked by a running containerd): %w", path, err)
	}
	return true, nil
}

// boltView opens path read-only and runs fn in a read transaction. A panic
// inside bbolt (a corrupt page) becomes an error.
func boltView(path string, timeout time.Duration, fn func(tx *bolt.Tx) error) (err error) {
	db, err := bolt.Open(path, 0o444, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return err
	}
	defer db.Close()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("corrupt database: %v", r)
		}
	}()
	return db.View(fn)
}

// privateCopy copies path to a new file in tmpDir (os.TempDir when empty),
// readable only by the current user.
func privateCopy(path, tmpDir string) (string, error) {
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := os.CreateTemp(tmpDir, "layercheck-bolt-*.db")
	if err != nil {
		return "", err
	}
	name := dst.Name()
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(name)
		return "", err
	}
	if err := dst.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}
