package main

import (
	"strings"
	"testing"
	"time"
)

// TestProgressLine: before the total is known the counter shows what is
// done; once the verifier planned its work, the total and the time left.
func TestProgressLine(t *testing.T) {
	start := time.Unix(1000, 0)
	p := &progress{start: start}
	p.layers, p.bytes = 2, 100<<20
	if got := p.line(start.Add(10 * time.Second)); got != "verified 2 layers, 100 MiB (10 MiB/s)" {
		t.Errorf("line = %q", got)
	}
	p.plan(6, 400<<20)
	got := p.line(start.Add(10 * time.Second))
	if !strings.Contains(got, "2/6 layers") || !strings.Contains(got, "of 400 MiB") || !strings.Contains(got, "about 30s left") {
		t.Errorf("line = %q, want 2/6 layers, of 400 MiB and about 30s left", got)
	}
}
