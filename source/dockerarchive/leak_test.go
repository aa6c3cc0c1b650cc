package dockerarchive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/source"
	"go.uber.org/goleak"
)

// cancelAt is a ReaderAt that cancels a context once a read reaches off.
type cancelAt struct {
	r      *bytes.Reader
	off    int64
	cancel context.CancelFunc
}

func (c *cancelAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) >= c.off {
		c.cancel()
	}
	return c.r.ReadAt(p, off)
}

// TestScanCancelLeavesNoGoroutines cancels the streaming read of a gzip-
// and a zstd-compressed docker save halfway: Scan returns the cancellation
// and the decompressors' goroutines are gone.
func TestScanCancelLeavesNoGoroutines(t *testing.T) {
	before := goleak.IgnoreCurrent()
	for _, c := range []string{fixtures.Gzip, fixtures.Zstd} {
		fx, err := fixtures.Samples()[0].Make(fixtures.FormatDockerContainerd)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w, err := fixtures.Compress(&buf, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.Archive.WriteTar(w); err != nil {
			t.Fatal(err)
		}
		w.Close()
		ctx, cancel := context.WithCancel(context.Background())
		ra := &cancelAt{r: bytes.NewReader(buf.Bytes()), off: int64(buf.Len() / 2), cancel: cancel}
		a, err := newArchive("image.tar."+c, ra, int64(buf.Len()), nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = a.Scan(ctx, func(_ source.Blob, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Scan = %v, want context.Canceled", c, err)
		}
		a.Close()
	}
	if err := goleak.Find(before); err != nil {
		t.Fatal(err)
	}
}
