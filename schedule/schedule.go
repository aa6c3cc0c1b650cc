package schedule

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"
)

// Round is the outcome of one audit of a Run.
type Round[T any] struct {
	// N counts the rounds of the Run, from 1.
	N int
	// Start is when the audit began; Duration how long it took.
	Start    time.Time
	Duration time.Duration
	// Value and Err are what the audit returned. A failed audit may still
	// return a partial Value.
	Value T
	Err   error
}

// End is when the round's audit finished.
func (r Round[T]) End() time.Time { return r.Start.Add(r.Duration) }

// Run calls audit, hands its result to publish, waits interval and starts
// again, until ctx is cancelled; it then returns nil (a clean stop, exit 0
// for a SIGTERM).
//
// An audit error does not stop the loop: it is published in the Round, and
// the next round comes after the interval as usual. A panic in audit is
// turned into the round's error the same way. A round whose audit was cut
// short by the cancellation of ctx is not published: the last published
// round stays the latest complete picture.
//
// publish decides what stops the loop: a non-nil error from it ends Run,
// which returns that error. A publisher that wants to ride out a failure
// (a full disk under the textfile directory) logs it and returns nil.
func Run[T any](ctx context.Context, interval time.Duration, audit func(context.Context) (T, error), publish func(Round[T]) error) error {
	if interval <= 0 {
		return fmt.Errorf("schedule: interval %v: must be positive", interval)
	}
	if audit == nil || publish == nil {
		return errors.New("schedule: audit and publish are required")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		r := Round[T]{N: n, Start: time.Now()}
		r.Value, r.Err = call(ctx, audit)
		r.Duration = time.Since(r.Start)
		if r.Err != nil && ctx.Err() != nil {
			return nil // interrupted, not failed
		}
		if err := publish(r); err != nil {
			return err
		}
		timer.Reset(interval)
	}
}

// call runs audit, turning a panic into an error.
func call[T any](ctx context.Context, audit func(context.Context) (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("audit panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return audit(ctx)
}
