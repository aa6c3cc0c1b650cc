package verify

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	digest "github.com/opencontainers/go-digest"
	"go.uber.org/goleak"
)

// scopedMem is a memSource that says which store its blobs live in.
type scopedMem struct {
	*memSource
	scope string
}

func (s scopedMem) BlobScope() string { return s.scope }

// TestVerifyAllSharesOnlyWithinAScope: two sources of one scope read a layer
// they both reference once; sources of different scopes (or of none) each
// read their own, so a blob that is corrupt in one store is reported there
// and only there, although its Key is the same as the good blob's elsewhere.
func TestVerifyAllSharesOnlyWithinAScope(t *testing.T) {
	shared := gz(t, makeTar(t, entry{name: "base", data: "shared base layer"}))
	sharedD := digest.FromBytes(shared)
	mk := func(own string) *memSource {
		m := newMem()
		md := m.image(t, [][]byte{shared, gz(t, makeTar(t, entry{name: own, data: own}))}, nil, nil)
		m.targets = []source.Target{{Name: own, Descriptor: &md}}
		return m
	}
	a, b := mk("a"), mk("b")
	// c stores other bytes under the shared digest: its layer 0 is corrupt.
	c := mk("c")
	corrupt := append([]byte(nil), shared...)
	corrupt[len(corrupt)/2] ^= 0xff
	c.blobs[sharedD] = corrupt

	srcs := []source.Source{scopedMem{a, "reg/repo"}, scopedMem{b, "reg/repo"}, scopedMem{c, "reg/other"}}
	rb := &report.Builder{}
	for i, err := range New(Options{Jobs: 2}).VerifyAll(context.Background(), srcs, rb) {
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
	}
	if n := a.opened[sharedD] + b.opened[sharedD]; n != 1 {
		t.Errorf("the layer shared by two sources of one scope was opened %d times, want 1", n)
	}
	if n := c.opened[sharedD]; n != 1 {
		t.Errorf("the same digest in another scope was opened %d times, want 1", n)
	}
	rep := rb.Finish("test", "mem", "test")
	if len(rep.Images) != 3 {
		t.Fatalf("%d images", len(rep.Images))
	}
	for _, im := range rep.Images {
		want := report.StatusOK
		if im.Name == "c" {
			want = report.StatusFailed
		}
		if im.Status != want {
			t.Errorf("image %s: status %s, want %s", im.Name, im.Status, want)
		}
		if im.Layers[0].DiffID == "" || im.Layers[0].Location == "" {
			t.Errorf("image %s: layer 0 not reported as read: %+v", im.Name, im.Layers[0])
		}
	}
	var cFindings []report.Check
	for _, f := range rep.Findings {
		if f.Severity == report.Error {
			if f.Subject.Image != "c" {
				t.Errorf("finding of %s: %s %s", f.Subject.Image, f.Check, f.Message)
			}
			cFindings = append(cFindings, f.Check)
		}
	}
	if len(cFindings) == 0 {
		t.Error("the corrupt layer in the other scope gave no finding")
	}

	// Sources without a scope share nothing, even with one another.
	a2, b2 := mk("a"), mk("b")
	rb = &report.Builder{}
	New(Options{Jobs: 2}).VerifyAll(context.Background(), []source.Source{a2, b2}, rb)
	if a2.opened[sharedD] != 1 || b2.opened[sharedD] != 1 {
		t.Errorf("unscoped sources opened the common layer %d and %d times, want 1 and 1", a2.opened[sharedD], b2.opened[sharedD])
	}
}

// TestVerifyAllCancelled: cancelled before anything is read, VerifyAll
// returns the cancellation for every source and reports nothing it did not
// verify.
func TestVerifyAllCancelled(t *testing.T) {
	m := newMem()
	md := m.image(t, [][]byte{gz(t, makeTar(t, entry{name: "a", data: "a"}))}, nil, nil)
	m.targets = []source.Target{{Name: "a", Descriptor: &md}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rb := &report.Builder{}
	errs := New(Options{}).VerifyAll(ctx, []source.Source{m, m}, rb)
	for i, err := range errs {
		if err != context.Canceled {
			t.Errorf("source %d: error %v, want the cancellation", i, err)
		}
	}
	if rep := rb.Finish("test", "mem", "test"); len(rep.Images) != 0 || len(m.opened) != 0 {
		t.Errorf("%d images reported, %d blobs opened after a cancellation before the start", len(rep.Images), len(m.opened))
	}
}

// TestVerifyAllCancelMidLayer cancels VerifyAll over two sources while a
// layer of the second is stalled: every source gets the cancellation, the
// report holds both images (what was verified so far), the stalled layer is
// a problem saying it was interrupted, and no engine goroutine outlives it.
func TestVerifyAllCancelMidLayer(t *testing.T) {
	before := goleak.IgnoreCurrent()
	good := newMem()
	gd := good.image(t, [][]byte{gz(t, makeTar(t, entry{name: "a", data: "good"}))}, nil, nil)
	good.targets = []source.Target{{Name: "good:1", Descriptor: &gd}}
	m := newMem()
	big := gz(t, makeTar(t, entry{name: "big", data: strings.Repeat("layer data ", 200000)}))
	md := m.image(t, [][]byte{big}, nil, nil)
	m.targets = []source.Target{{Name: "stalls:1", Descriptor: &md}}
	s := &stallSource{memSource: m, stall: digestOf(big), stalled: make(chan struct{})}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &report.Builder{}
	done := make(chan []error, 1)
	go func() { done <- New(Options{Jobs: 2}).VerifyAll(ctx, []source.Source{good, s}, b) }()
	guard := time.After(2 * time.Minute) // hang guard, not a speed assertion
	select {
	case <-s.stalled:
	case errs := <-done:
		t.Fatalf("VerifyAll returned before the stall: %v", errs)
	case <-guard:
		t.Fatal("the stalled layer was never read")
	}
	cancel()
	var errs []error
	select {
	case errs = <-done:
	case <-guard:
		t.Fatal("VerifyAll did not return after cancellation")
	}
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("source %d: %v, want context.Canceled", i, err)
		}
	}
	rep := b.Finish("test", "mem", "test")
	if len(rep.Images) != 2 || rep.Images[0].Name != "good:1" || rep.Images[1].Name != "stalls:1" {
		t.Fatalf("want both images in the report, got %+v", rep.Images)
	}
	var named bool
	for _, p := range rep.Problems {
		if p.Subject.Image == "stalls:1" && strings.Contains(p.Message, "interrupted") {
			named = true
		}
		if p.Subject.Image == "good:1" && !strings.Contains(p.Message, "interrupted") {
			t.Errorf("problem of the good image: %+v", p)
		}
	}
	if !named {
		t.Errorf("no problem says the stalled layer was interrupted: %+v", rep.Problems)
	}
	if err := goleak.Find(before); err != nil {
		t.Fatal(err)
	}
}

// TestReadBlobAndMeasured: a blob ReadBlob declines is neither read nor
// reported on (no findings, no problem, no measurements), even when it is
// corrupt; every blob read is handed to Measured once.
func TestReadBlobAndMeasured(t *testing.T) {
	l0 := gz(t, makeTar(t, entry{name: "a", data: "layer zero"}))
	l1 := gz(t, makeTar(t, entry{name: "b", data: "layer one"}))
	m := newMem()
	md := m.image(t, [][]byte{l0, l1}, nil, nil)
	m.targets = []source.Target{{Name: "img", Descriptor: &md}}
	d1 := digest.FromBytes(l1)
	bad := append([]byte(nil), l1...)
	bad[len(bad)/2] ^= 0xff
	m.blobs[d1] = bad
	measured := map[string]int{}
	opts := Options{
		ReadBlob: func(b source.Blob) bool { return b.Key() != d1.String() },
		Measured: func(b source.Blob, res *PassResult, err error) {
			if err != nil || res == nil {
				t.Errorf("Measured(%s): %v", b.Key(), err)
			}
			measured[b.Key()]++
		},
	}
	rb := &report.Builder{}
	if err := New(opts).Verify(context.Background(), m, rb); err != nil {
		t.Fatal(err)
	}
	rep := rb.Finish("test", "mem", "test")
	if m.opened[d1] != 0 {
		t.Errorf("declined blob opened %d times", m.opened[d1])
	}
	if len(measured) != 1 || measured[digest.FromBytes(l0).String()] != 1 {
		t.Errorf("Measured saw %v, want layer 0 once", measured)
	}
	if len(rep.Findings) != 0 || len(rep.Problems) != 0 {
		t.Errorf("findings %+v problems %+v, want none", rep.Findings, rep.Problems)
	}
	if len(rep.Images) != 1 || rep.Images[0].Layers[0].DiffID == "" || rep.Images[0].Layers[1].DiffID != "" {
		t.Errorf("images %+v: want layer 0 measured and layer 1 not", rep.Images)
	}
}
