package registryclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// retryTransport retries body-less GET and HEAD requests on 429, 5xx and
// transport errors that may pass (resets, dropped connections, timeouts),
// with exponential backoff; a Retry-After header sets the delay. The last
// response or error is returned when the retries are spent.
type retryTransport struct {
	c     *Client
	inner http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if (req.Method != http.MethodGet && req.Method != http.MethodHead) || (req.Body != nil && req.Body != http.NoBody) {
		return t.inner.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 0; ; attempt++ {
		resp, err := t.inner.RoundTrip(req)
		if cerr := ctx.Err(); cerr != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, cerr
		}
		retry, after := retryable(resp, err)
		if !retry || attempt >= t.c.opts.Retries {
			return resp, err
		}
		delay := t.c.backoff(attempt)
		if after > 0 {
			delay = min(after, t.c.opts.MaxRetryAfter)
		}
		if resp != nil {
			t.c.logf("GET %s: %s; retrying in %s", redactURL(req.URL), resp.Status, delay)
			drain(resp)
		} else {
			t.c.logf("GET %s: %v; retrying in %s", redactURL(req.URL), stripURLError(err), delay)
		}
		if err := sleep(ctx, delay); err != nil {
			return nil, err
		}
	}
}

// retryable classifies a round trip; after is the Retry-After delay, if any.
func retryable(resp *http.Response, err error) (retry bool, after time.Duration) {
	if err != nil {
		return retryableError(err), 0
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return true, retryAfter(resp.Header.Get("Retry-After"), time.Now())
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout,
		http.StatusRequestTimeout:
		return true, 0
	}
	return false, 0
}

// retryableError reports whether a transport error may pass on its own.
// Certificate and TLS protocol errors, unknown hosts and refused plain HTTP
// do not.
func retryableError(err error) bool {
	var nr *noRetryError
	var rh tls.RecordHeaderError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var hn x509.HostnameError
	var cv *tls.CertificateVerificationError
	var dns *net.DNSError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded) && !isTimeout(err):
		return false
	case errors.As(err, &nr), errors.As(err, &rh), errors.As(err, &ua), errors.As(err, &ci), errors.As(err, &hn), errors.As(err, &cv):
		return false
	case errors.As(err, &dns) && dns.IsNotFound:
		return false
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"),
		strings.Contains(err.Error(), "unsupported protocol scheme"):
		return false
	}
	return true
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// backoff is the delay before retry number attempt+1: RetryDelay doubled per
// attempt, capped at MaxRetryDelay, with ±25% jitter.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.RetryDelay
	for i := 0; i < attempt && d < c.opts.MaxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxRetryDelay)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return max(d+jitter, 0)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
