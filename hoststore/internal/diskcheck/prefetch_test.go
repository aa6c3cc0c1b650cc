//go:build linux

package diskcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/layercheck/layercheck/store/storetest"
	"github.com/layercheck/layercheck/tarsplit"
	"golang.org/x/sys/unix"
)

// fakeSource gives n records, a segment and then a file of size 1 MiB
// each pair, then end; it counts how far it has been read.
type fakeSource struct {
	n, read int
	end     error
}

func (f *fakeSource) Next() (*tarsplit.Entry, error) {
	if f.read == f.n {
		return nil, f.end
	}
	e := &tarsplit.Entry{Position: f.read, Type: tarsplit.SegmentEntry, Size: 512}
	if f.read%2 == 1 {
		e.Type, e.Size, e.Name = tarsplit.FileEntry, 1<<20, fmt.Appendf(nil, "f%d", f.read)
	}
	f.read++
	return e, nil
}

func TestLookahead(t *testing.T) {
	for _, end := range []error{io.EOF, errors.New("record 1001: malformed")} {
		src := &fakeSource{n: 1001, end: end}
		probe := &cacheProbe{}
		var asked []string
		l := &lookahead{src: src, probe: probe, ask: func(n string) { asked = append(asked, n) }}
		for i := 0; ; i++ {
			e, err := l.Next()
			if err != nil {
				if err != end || i != src.n {
					t.Fatalf("after %d records: err = %v, want %v after %d", i, err, end, src.n)
				}
				break
			}
			if e.Position != i {
				t.Fatalf("record %d came out as %d", i, e.Position)
			}
			// decoded ahead by at most the window; the queue stays bounded
			if ahead := src.read - i - 1; ahead > lookaheadEntries || (ahead > 0 && l.ahead > lookaheadBytes+1<<20) {
				t.Fatalf("record %d: %d records, %d file bytes decoded ahead", i, ahead, l.ahead)
			}
			if cap(l.q) > 2*lookaheadEntries {
				t.Fatalf("record %d: queue capacity %d", i, cap(l.q))
			}
			if i < 200 && len(asked) > 0 {
				t.Fatalf("warm: %d files asked for", len(asked))
			}
			if i == 199 {
				probe.cold.Store(true) // the rebuild's probe found a file not cached
			}
		}
		// From the first cold file on, every file not yet returned is asked
		// for, each once, in order.
		if len(asked) == 0 || asked[0] != "f201" {
			t.Fatalf("asked %v..., want from f201 on", asked[:min(len(asked), 3)])
		}
		for k, n := range asked {
			if want := fmt.Sprintf("f%d", 201+2*k); n != want {
				t.Fatalf("request %d is %s, want %s", k, n, want)
			}
		}
		if want := (src.n - 201 + 1) / 2; len(asked) != want {
			t.Errorf("%d files asked for, want %d", len(asked), want)
		}
	}
}

// TestProbe: the rebuild's first read of a file not in the page cache
// marks the layer cold and still returns the file's bytes; a cached file
// leaves it warm.
func TestProbe(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("layercheck "), 100_000)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	read := func() *cacheProbe {
		probe := &cacheProbe{}
		f := openRegularAt(d, "f", fi)
		if f == nil {
			t.Fatal("openRegularAt: nil")
		}
		defer f.Close()
		f.probe = probe
		got, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes, err %v; want the %d written", len(got), err, len(data))
		}
		return probe
	}
	if pr := read(); pr.cold.Load() || pr.off.Load() {
		t.Errorf("cached file: probe cold %v, off %v; want warm", pr.cold.Load(), pr.off.Load())
	}
	if !storetest.EvictFile(t, p) {
		t.Skip("this filesystem keeps its pages (posix_fadvise DONTNEED): cannot make a file cold")
	}
	if pr := read(); !pr.cold.Load() {
		t.Errorf("evicted file: probe off %v, want cold", pr.off.Load())
	}
}

// TestWillNeedAt: the read-ahead opens regular files only, never a FIFO
// (or a device) or what a symlink points to.
func TestWillNeedAt(t *testing.T) {
	dir := t.TempDir()
	reg, fifo := filepath.Join(dir, "reg"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(reg, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("reg", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	ino, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ino)
	for _, p := range []string{reg, fifo} {
		if _, err := unix.InotifyAddWatch(ino, p, unix.IN_OPEN); err != nil {
			t.Fatal(err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	opened := func() int {
		buf := make([]byte, 4096)
		n, err := unix.Read(ino, buf)
		if errors.Is(err, unix.EAGAIN) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return n / unix.SizeofInotifyEvent
	}
	for _, base := range []string{"fifo", "link", "missing", "."} {
		willNeedAt(d, base, true)
		if n := opened(); n != 0 {
			t.Errorf("willNeedAt(%q) opened a file (%d events)", base, n)
		}
	}
	if !willNeedAt(d, "reg", true) {
		t.Errorf("willNeedAt(reg): a file just written is not cached")
	}
	if opened() == 0 {
		t.Errorf("willNeedAt(reg) did not open the regular file")
	}
	if storetest.EvictFile(t, reg) && willNeedAt(d, "reg", true) {
		t.Errorf("willNeedAt(reg): an evicted file is cached")
	}
}

// TestPrefetcherStopsWhenWarm: a read-ahead that finds warmRun files in a
// row cached clears the layer's cold mark (the rebuild's probe watches
// again); files that are not cached keep it.
func TestPrefetcherStopsWhenWarm(t *testing.T) {
	dir := t.TempDir()
	var names []string
	for i := 0; i < warmRun+10; i++ {
		n := fmt.Sprintf("d/f%03d", i)
		if i == 0 {
			if err := os.Mkdir(filepath.Join(dir, "d"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, n), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	run := func() bool {
		probe := &cacheProbe{}
		probe.cold.Store(true)
		p := newPrefetcher(dir, probe)
		for _, n := range names {
			p.ch <- n // every request handled, none dropped
		}
		p.close()
		return probe.cold.Load()
	}
	if run() {
		t.Errorf("%d cached files: still cold", len(names))
	}
	cold := true
	for _, n := range names { // never warmRun cached files in a row
		cold = cold && storetest.EvictFile(t, filepath.Join(dir, n))
	}
	if !cold {
		t.Skip("this filesystem keeps its pages (posix_fadvise DONTNEED): cannot make a file cold")
	}
	if !run() {
		t.Errorf("cold files: cleared")
	}
}
