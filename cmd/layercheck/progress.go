package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	humanize "github.com/dustin/go-humanize"
	"golang.org/x/term"
)

// progress prints a one-line counter on stderr, only when stderr is a
// terminal: layers and bytes done, and, once the verifier has walked its
// sources and knows the total (plan), the total and the time left.
type progress struct {
	mu          sync.Mutex
	w           io.Writer
	on          bool
	layers      int
	bytes       int64
	totalLayers int
	totalBytes  int64
	last        time.Time
	start       time.Time
	now         func() time.Time
}

func newProgress(w io.Writer, disabled bool) *progress {
	p := &progress{w: w, start: time.Now(), now: time.Now}
	if f, ok := w.(*os.File); ok && !disabled && term.IsTerminal(int(f.Fd())) {
		p.on = true
	}
	return p
}

// plan adds a verifier's planned work to the total (verify.Options.Planned).
func (p *progress) plan(layers int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.totalLayers += layers
	p.totalBytes += bytes
}

func (p *progress) add(_ string, n int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layers++
	p.bytes += n
	if now := p.now(); now.Sub(p.last) > 100*time.Millisecond {
		p.last = now
		fmt.Fprint(p.w, "\r\033[K"+p.line(now))
	}
}

// line renders the counter at time now.
func (p *progress) line(now time.Time) string {
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.bytes) / elapsed
	}
	s := fmt.Sprintf("verified %d layers, %s (%s/s)", p.layers, humanize.IBytes(uint64(p.bytes)), humanize.IBytes(uint64(rate)))
	if p.totalBytes > 0 && p.totalLayers >= p.layers {
		s = fmt.Sprintf("verified %d/%d layers, %s of %s (%s/s)", p.layers, p.totalLayers, humanize.IBytes(uint64(p.bytes)), humanize.IBytes(uint64(p.totalBytes)), humanize.IBytes(uint64(rate)))
		if left := p.totalBytes - p.bytes; left > 0 && rate > 0 {
			s += fmt.Sprintf(", about %s left", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	return s
}

func (p *progress) done() {
	if p.on && p.layers > 0 {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
