package diskcheck

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/layercheck/layercheck/tarsplit"
)

// Reading ahead from a cold page cache.
//
// The rebuild reads a layer's files one after the other. From a cold cache,
// each file's first read waits for the disk while the CPU idles, and the
// disk is asked for one file at a time (the kernel's own read-ahead stays
// within the file). So the tar-split is decoded a little ahead of the
// rebuild (lookahead), and once the layer's files are found not to be
// cached (cacheProbe), a goroutine asks the kernel to read the coming files
// into the page cache (posix_fadvise WILLNEED, prefetcher); by the time the
// rebuild opens a file its pages are arriving. From a warm cache nothing is
// asked and nothing is added per file: the probe is the rebuild's own first
// read with RWF_NOWAIT. The prefetcher checks one file in warmSample (is it
// cached?) and after warmRun files in a row that were, it stops (the probe
// watches again): a layer with a few cold files does not pay for the rest.
// The hint reads nothing the rebuild would not read next, writes nothing and
// holds nothing open past the layer's check.
const (
	lookaheadEntries = 128      // records decoded ahead, at most
	lookaheadBytes   = 16 << 20 // file bytes asked for ahead, at most
	warmRun          = 64       // cached files in a row that end a read-ahead
	warmSample       = 8        // of which one in warmSample is checked
)

// cacheProbe is what the rebuild's first reads of a layer's files found
// (fdFile.Read, on the rebuild's goroutine), for the lookahead (on the
// stage's).
type cacheProbe struct {
	cold atomic.Bool // a file's first page was not in the page cache
	off  atomic.Bool // RWF_NOWAIT is not supported here: no probing
}

// probing reports whether the next file opened should be probed.
func (p *cacheProbe) probing() bool { return p != nil && !p.cold.Load() && !p.off.Load() }

// lookahead is a tarsplit.EntrySource over src that decodes up to
// lookaheadEntries records (lookaheadBytes of file data) ahead of its
// consumer and, once probe finds the layer cold, hands each coming file to
// the prefetcher of root. Records come out in src's order, and src's error
// after every record before it.
type lookahead struct {
	src   tarsplit.EntrySource
	probe *cacheProbe
	root  string
	pf    *prefetcher       // started at the first cold file
	ask   func(name string) // pf.request (tests record the requests)
	q     []*tarsplit.Entry
	head  int   // next record to return
	sent  int   // q[sent:] not yet handed to the prefetcher
	ahead int64 // file bytes in q[head:]
	err   error
}

// Next implements tarsplit.EntrySource.
func (l *lookahead) Next() (*tarsplit.Entry, error) {
	l.fill()
	if l.head == len(l.q) {
		return nil, l.err
	}
	e := l.q[l.head]
	l.q[l.head] = nil
	l.head++
	if l.head == len(l.q) {
		l.q, l.head, l.sent = l.q[:0], 0, 0
	}
	if e.Type == tarsplit.FileEntry {
		l.ahead -= e.Size
	}
	return e, nil
}

func (l *lookahead) fill() {
	if l.q == nil {
		l.q = make([]*tarsplit.Entry, 0, 2*lookaheadEntries)
	}
	if l.head >= lookaheadEntries {
		// move what is left to the front: q stays within twice the window
		n := copy(l.q, l.q[l.head:])
		clear(l.q[n:])
		l.q, l.sent, l.head = l.q[:n], max(l.sent-l.head, 0), 0
	}
	for l.err == nil && len(l.q)-l.head < lookaheadEntries && l.ahead < lookaheadBytes {
		e, err := l.src.Next()
		if err != nil {
			l.err = err
			break
		}
		l.q = append(l.q, e)
		if e.Type == tarsplit.FileEntry {
			l.ahead += e.Size
		}
	}
	if l.probe == nil || !l.probe.cold.Load() {
		return
	}
	if l.ask == nil {
		l.pf = newPrefetcher(l.root, l.probe)
		l.ask = l.pf.request
	}
	for i := max(l.sent, l.head); i < len(l.q); i++ {
		if e := l.q[i]; e.Type == tarsplit.FileEntry && e.Size > 0 && !e.Unsafe {
			l.ask(string(e.Name))
		}
	}
	l.sent = len(l.q)
}

// close ends the prefetcher, if one was started.
func (l *lookahead) close() {
	if l.pf != nil {
		l.pf.close()
	}
}

// prefetcher asks the kernel to read files of a layer directory into the
// page cache, on its own goroutine and its own directory descriptors.
type prefetcher struct {
	ch   chan string
	wg   sync.WaitGroup
	dirs RootCache
}

// newPrefetcher starts one for the layer directory root; nil (requests
// ignored) when root cannot be opened: the rebuild reports that. After
// warmRun files in a row found cached (one in warmSample checked) it clears
// probe.cold.
func newPrefetcher(root string, probe *cacheProbe) *prefetcher {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil
	}
	p := &prefetcher{ch: make(chan string, lookaheadEntries), dirs: RootCache{Root: r}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		// Every warmSample-th file is checked (one system call more); the
		// others are asked for unchecked.
		warm, n := 0, 0
		for name := range p.ch {
			clean, ok := CleanEntry(name)
			if !ok || clean == "." || isPlnk(clean) {
				continue
			}
			dir, base := SplitDirBase(clean)
			d, err := p.dirs.dirFile(dir)
			if err != nil {
				continue
			}
			n++
			check := n%warmSample == 0
			switch cached := willNeedAt(d, base, check); {
			case !check:
			case cached:
				if warm++; warm >= warmRun/warmSample && probe != nil {
					probe.cold.Store(false)
					warm = 0
				}
			default:
				warm = 0
			}
		}
	}()
	return p
}

// request asks for name, unless the queue is full: the read-ahead is a
// hint, and a file left out only waits for the disk as it did before.
func (p *prefetcher) request(name string) {
	if p == nil {
		return
	}
	select {
	case p.ch <- name:
	default:
	}
}

// close ends the goroutine and releases its descriptors.
func (p *prefetcher) close() {
	if p == nil {
		return
	}
	close(p.ch)
	p.wg.Wait()
	p.dirs.Close()
	p.dirs.Root.Close()
}
