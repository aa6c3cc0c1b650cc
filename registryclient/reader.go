package registryclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// progressReset is how many bytes must arrive after a failure before the
// retry budget of a blob stream is restored.
const progressReset = 1 << 20

// errIdle is the cause of a stream stopped by the idle timeout.
var errIdle = errors.New("idle timeout")

// blobReader streams one blob. Its bytes are the registry's, in order and
// unverified. When the transfer breaks (reset, dropped connection, idle
// timeout, a body shorter than its Content-Length), it resumes from the
// first byte not yet returned with "Range: bytes=N-", so the caller's digest
// still covers the whole blob; a registry that answers such a request with
// the whole blob (200) can only be restarted when nothing was returned yet.
// A body that ends cleanly is the end of the blob: a short blob reaches the
// caller as a short stream, and the verifier reports its size and digest.
type blobReader struct {
	c    *Client
	ctx  context.Context
	cand candidate
	desc ocispec.Descriptor
	what string
	// size is the descriptor's size (-1 unknown); limit is where the stream is
	// cut (-1: never).
	size, limit int64

	release  func()
	body     io.ReadCloser
	idle     *idleReader
	cancel   context.CancelFunc
	n        int64 // bytes returned so far
	failures int   // failures since the last progressReset bytes
	since    int64 // bytes since the last failure
	noRanges bool
	lastErr  error
	err      error // sticky result once the stream is over
}

// start takes a stream slot of the host and sends the first request.
func (r *blobReader) start() error {
	release, err := r.c.acquire(r.ctx, r.cand.host())
	if err != nil {
		return err
	}
	r.release = release
	if err := r.open(); err != nil {
		release()
		if err == io.EOF {
			return fmt.Errorf("%s: the registry refused the first request with 416", r.what)
		}
		return err
	}
	return nil
}

// open sends a GET for the blob from byte r.n on. It returns io.EOF when the
// registry says the blob has no bytes past r.n (416 to a Range request).
func (r *blobReader) open() error {
	rctx, cancel := context.WithCancel(r.ctx)
	hdr := http.Header{}
	if r.n > 0 {
		end := ""
		if r.size > r.n {
			end = fmt.Sprint(r.size - 1)
		}
		hdr.Set("Range", fmt.Sprintf("bytes=%d-%s", r.n, end))
	}
	resp, err := r.c.get(rctx, r.cand.ep, r.cand.url, hdr)
	if err != nil {
		cancel()
		return err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if r.n > 0 {
			drain(resp)
			cancel()
			return fmt.Errorf("%s: the registry does not serve byte ranges, so the transfer cannot resume after %d bytes: %w", r.what, r.n, r.lastErr)
		}
		if strings.EqualFold(strings.TrimSpace(resp.Header.Get("Accept-Ranges")), "none") {
			r.noRanges = true
		}
	case resp.StatusCode == http.StatusPartialContent && r.n > 0:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != r.n {
			drain(resp)
			cancel()
			return fmt.Errorf("%s: asked to resume at byte %d, the registry answered Content-Range %q", r.what, r.n, resp.Header.Get("Content-Range"))
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && r.n > 0:
		drain(resp)
		cancel()
		return io.EOF
	default:
		cancel()
		return fmt.Errorf("%s: %w", r.what, r.c.statusError(r.cand.url, resp))
	}
	r.body, r.cancel = resp.Body, cancel
	r.idle = newIdleReader(resp.Body, r.c.opts.IdleTimeout, cancel)
	return nil
}

func (r *blobReader) closeBody() {
	if r.body != nil {
		r.cancel()
		r.body.Close()
		r.body, r.idle = nil, nil
	}
}

// Read implements io.Reader.
func (r *blobReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.body == nil {
			if err := r.resume(); err != nil {
				r.err = err
				return 0, err
			}
			continue
		}
		if r.limit >= 0 {
			if r.n >= r.limit {
				r.closeBody()
				r.err = io.EOF
				return 0, io.EOF
			}
			if rem := r.limit - r.n; int64(len(p)) > rem {
				p = p[:rem]
			}
		}
		m, err := r.idle.Read(p)
		r.n += int64(m)
		r.since += int64(m)
		if r.since >= progressReset {
			r.failures = 0
		}
		switch {
		case err == nil:
			return m, nil
		case err == io.EOF:
			r.closeBody()
			r.err = io.EOF
			return m, io.EOF
		}
		if cerr := r.ctx.Err(); cerr != nil {
			r.closeBody()
			r.err = cerr
			return m, cerr
		}
		r.lastErr = r.c.scrub(r.idle.explain(stripURLError(err)))
		r.closeBody()
		if m > 0 {
			return m, nil
		}
	}
}

// resume reopens the stream after a failure, from the first byte not yet returned.
func (r *blobReader) resume() error {
	if r.size >= 0 && r.n >= r.size {
		// Every byte the descriptor promised arrived before the break.
		return io.EOF
	}
	if r.failures >= r.c.opts.Retries {
		return fmt.Errorf("reading %s from %s: %w (gave up after %d retries, %d bytes read)", r.what, r.cand.host(), r.lastErr, r.failures, r.n)
	}
	if r.noRanges && r.n > 0 {
		return fmt.Errorf("reading %s from %s: %w (the registry does not serve byte ranges, so the transfer cannot resume after %d bytes)", r.what, r.cand.host(), r.lastErr, r.n)
	}
	d := r.c.backoff(r.failures)
	r.failures++
	r.since = 0
	r.c.logf("%s from %s: %v after %d bytes; resuming in %s", r.what, r.cand.host(), r.lastErr, r.n, d)
	if err := sleep(r.ctx, d); err != nil {
		return err
	}
	err := r.open()
	if err != nil && err != io.EOF && r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	return err
}

// Close implements io.Closer and gives the stream slot back.
func (r *blobReader) Close() error {
	r.closeBody()
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	if r.release != nil {
		r.release()
	}
	return nil
}

// idleReader cancels its request when one Read waits longer than d; the
// clock runs only while a Read is blocked, never while the caller is busy.
type idleReader struct {
	r     io.Reader
	d     time.Duration
	fired atomic.Bool
	timer *time.Timer
}

func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelFunc) *idleReader {
	ir := &idleReader{r: r, d: d}
	ir.timer = time.AfterFunc(time.Hour, func() {
		ir.fired.Store(true)
		cancel()
	})
	ir.timer.Stop()
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	ir.timer.Reset(ir.d)
	n, err := ir.r.Read(p)
	ir.timer.Stop()
	return n, err
}

// explain names the idle timeout as the cause of err when it fired.
func (ir *idleReader) explain(err error) error {
	if ir.fired.Load() {
		return fmt.Errorf("no data for %s: %w", ir.d, errIdle)
	}
	return err
}
