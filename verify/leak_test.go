package verify

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/goleak"
)

// stallSource is a memSource whose blob stall hands out its first half and
// then blocks until the reader's context is cancelled, as a stalled network
// transfer does.
type stallSource struct {
	*memSource
	stall   string // blob key
	once    sync.Once
	stalled chan struct{}
}

func (s *stallSource) Blob(ctx context.Context, d ocispec.Descriptor) (source.Blob, error) {
	b, err := s.memSource.Blob(ctx, d)
	if err != nil || b.Key() != s.stall {
		return b, err
	}
	return &stallBlob{Blob: b, s: s}, nil
}

type stallBlob struct {
	source.Blob
	s *stallSource
}

func (b *stallBlob) Open(ctx context.Context) (io.ReadCloser, error) {
	rc, err := b.Blob.Open(ctx)
	if err != nil {
		return nil, err
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	return &stallReader{ctx: ctx, head: strings.NewReader(string(data[:len(data)/2])), s: b.s}, nil
}

type stallReader struct {
	ctx  context.Context
	head *strings.Reader
	s    *stallSource
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.head.Len() > 0 {
		return r.head.Read(p)
	}
	r.s.once.Do(func() { close(r.s.stalled) })
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (r *stallReader) Close() error { return nil }

// TestCancelMidLayer cancels a verification while one gzip layer's
// transfer is stalled: Verify returns the cancellation, the report still
// holds the image with the unread layer as a problem, and no goroutine of
// the engine (workers, decompressors) outlives it.
func TestCancelMidLayer(t *testing.T) {
	before := goleak.IgnoreCurrent()
	m := newMem()
	small := gz(t, makeTar(t, entry{name: "a", data: "small"}))
	big := gz(t, makeTar(t, entry{name: "big", data: strings.Repeat("layer data ", 200000)}))
	md := m.image(t, [][]byte{small, big}, nil, nil)
	s := &stallSource{memSource: m, stall: digestOf(big), stalled: make(chan struct{})}
	m.targets = []source.Target{{Name: "app:1", Descriptor: &md}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &report.Builder{}
	done := make(chan error, 1)
	go func() { done <- New(Options{Jobs: 2}).Verify(ctx, s, b) }()
	guard := time.After(2 * time.Minute) // hang guard, not a speed assertion
	select {
	case <-s.stalled:
	case err := <-done:
		t.Fatalf("Verify returned before the stall: %v", err)
	case <-guard:
		t.Fatal("the stalled layer was never read")
	}
	cancel()
	var err error
	select {
	case err = <-done:
	case <-guard:
		t.Fatal("Verify did not return after cancellation")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify = %v, want context.Canceled", err)
	}
	rep := b.Finish("test", "mem", "test")
	if len(rep.Images) != 1 || len(rep.Images[0].Layers) != 2 {
		t.Fatalf("want the image with its 2 layers in the report, got %+v", rep.Images)
	}
	var named bool
	for _, p := range rep.Problems {
		if p.Subject.Layer != nil && *p.Subject.Layer == 1 && strings.Contains(p.Message, "interrupted") {
			named = true
		}
	}
	if !named {
		t.Errorf("no problem says layer 1 was interrupted: %+v", rep.Problems)
	}
	if err := goleak.Find(before); err != nil {
		t.Fatal(err)
	}
}

func digestOf(b []byte) string {
	m := newMem()
	return m.put(b).Digest.String()
}
