package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress prints a one-line counter on stderr, only when stderr is a terminal.
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	on     bool
	layers int
	bytes  int64
	last   time.Time
	start  time.Time
}

func newProgress(w io.Writer, disabled bool) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok && !disabled && term.IsTerminal(int(f.Fd())) {
		p.on = true
	}
	return p
}

func (p *progress) add(_ string, n int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layers++
	p.bytes += n
	if time.Since(p.last) > 100*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.w, "\r\033[Kverified %d layers, %.1f MiB (%.0f MiB/s)", p.layers, float64(p.bytes)/(1<<20), float64(p.bytes)/(1<<20)/time.Since(p.start).Seconds())
	}
}

func (p *progress) done() {
	if p.on && p.layers > 0 {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
