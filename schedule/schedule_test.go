package schedule

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// generous bounds the waits of these tests: they assert what happens, not
// how fast (the machine is shared).
const generous = 30 * time.Second

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var published []Round[int]
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, time.Millisecond, func(context.Context) (int, error) { return 7, nil }, func(r Round[int]) error {
			published = append(published, r)
			if r.N == 3 {
				cancel()
			}
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil (a clean stop)", err)
		}
	case <-time.After(generous):
		t.Fatal("Run did not stop after cancel")
	}
	if len(published) != 3 {
		t.Fatalf("published %d rounds, want 3", len(published))
	}
	for i, r := range published {
		if r.N != i+1 || r.Value != 7 || r.Err != nil || r.Start.IsZero() || r.Duration < 0 {
			t.Errorf("round %d = %+v", i+1, r)
		}
	}
}

// TestRunSurvivesFailures: failing and panicking audits are published as
// failed rounds and the loop goes on.
func TestRunSurvivesFailures(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	audit := func(context.Context) (string, error) {
		switch calls.Add(1) {
		case 1:
			return "partial", errors.New("store unreadable")
		case 2:
			panic("bug")
		}
		return "ok", nil
	}
	var got []Round[string]
	err := Run(ctx, time.Millisecond, audit, func(r Round[string]) error {
		got = append(got, r)
		if r.N == 3 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d rounds published, want 3", len(got))
	}
	if got[0].Value != "partial" || got[0].Err == nil || !strings.Contains(got[0].Err.Error(), "store unreadable") {
		t.Errorf("round 1 = %+v", got[0])
	}
	if got[1].Err == nil || !strings.Contains(got[1].Err.Error(), "audit panicked: bug") {
		t.Errorf("round 2 = %+v, want the panic as its error", got[1])
	}
	if got[2].Value != "ok" || got[2].Err != nil {
		t.Errorf("round 3 = %+v", got[2])
	}
}

// TestRunInterruptedRoundNotPublished: cancelling during an audit stops Run
// without publishing that round.
func TestRunInterruptedRoundNotPublished(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var published atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, time.Hour, func(ctx context.Context) (int, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		}, func(Round[int]) error { published.Add(1); return nil })
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil || published.Load() != 0 {
			t.Fatalf("Run = %v with %d rounds published; want nil and none", err, published.Load())
		}
	case <-time.After(generous):
		t.Fatal("Run did not stop")
	}
}

// TestRunWaitsInterval: with a long interval, cancelling during the wait
// stops Run after exactly one round.
func TestRunWaitsInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, time.Hour, func(context.Context) (int, error) { return int(n.Add(1)), nil }, func(r Round[int]) error {
			go cancel() // during the wait
			return nil
		})
	}()
	select {
	case err := <-done:
		if err != nil || n.Load() != 1 {
			t.Fatalf("Run = %v after %d audits; want nil after 1", err, n.Load())
		}
	case <-time.After(generous):
		t.Fatal("Run did not stop during the wait")
	}
}

func TestRunPublishErrorStops(t *testing.T) {
	boom := errors.New("textfile directory missing")
	err := Run(context.Background(), time.Millisecond, func(context.Context) (int, error) { return 1, nil }, func(Round[int]) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the publish error", err)
	}
}

func TestRunBadArguments(t *testing.T) {
	audit := func(context.Context) (int, error) { return 0, nil }
	publish := func(Round[int]) error { return nil }
	if err := Run(context.Background(), 0, audit, publish); err == nil {
		t.Error("interval 0 accepted")
	}
	if err := Run(context.Background(), time.Second, nil, publish); err == nil {
		t.Error("nil audit accepted")
	}
}
