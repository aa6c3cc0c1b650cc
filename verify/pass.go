package verify

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"io"
	"path"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/layercheck/layercheck/report"
	digest "github.com/opencontainers/go-digest"
)

// Compression is a layer's compression as found by its magic bytes.
type Compression string

// Compressions layercheck recognises. Only none, gzip and zstd are decompressed.
const (
	CompressionNone    Compression = "none"
	CompressionGzip    Compression = "gzip"
	CompressionZstd    Compression = "zstd"
	CompressionBzip2   Compression = "bzip2"
	CompressionXz      Compression = "xz"
	CompressionUnknown Compression = "unknown"
)

// DetectCompression looks at the first bytes of a blob. A stream that is
// neither a known compression nor a tar header is "unknown"; an empty stream
// is "none".
func DetectCompression(magic []byte) Compression {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return CompressionGzip
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return CompressionZstd
	case bytes.HasPrefix(magic, []byte("BZh")):
		return CompressionBzip2
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return CompressionXz
	}
	return CompressionNone
}

// Observer watches the tar headers of a pass. Header is called for every
// entry in stream order, from the goroutine running the pass.
type Observer interface {
	Header(h *tar.Header)
}

// DataObserver is an Observer that also sees the content of regular file
// entries (type '0'): after such an entry's Header, Data is called with its
// bytes in consecutive chunks, as the tar walk reads them (not at all for an
// empty file; fewer bytes than the header's size when the tar is cut short).
// The chunk is valid only during the call. The next Header, or End, ends
// the entry.
type DataObserver interface {
	Observer
	Data(p []byte)
	// End is called once when the tar walk stops: err is nil when it read
	// the end-of-archive marker, else it says why the walk stopped.
	End(err error)
}

// PassOptions configure one pass.
type PassOptions struct {
	// Observers see every tar header.
	Observers []Observer
	// Taps receive every byte of the uncompressed tar stream (tar-split
	// capture). A tap must consume everything it is given.
	Taps []io.Writer
	// MaxTarSize stops decompression past this many bytes (0: no limit).
	MaxTarSize int64
	// MaxRatio stops decompression when the tar stream grows beyond this
	// multiple of the compressed bytes read so far, after the first 64 MiB (0: no limit).
	MaxRatio float64
	// ZstdMaxWindow bounds the zstd window, and so the decoder's memory (0: 128 MiB).
	ZstdMaxWindow uint64
	// NoTarWalk hashes the stream without parsing it as a tar (non-layer blobs).
	NoTarWalk bool
	// TOC, when set, checks a lazy-pull layer's table of contents (lazy.go).
	// Nil leaves the pass as it is for every ordinary layer.
	TOC *TOCOptions
}

// PassResult is everything one pass measured. Problems with the data are
// recorded here; Pass returns an error only when the stored bytes could not
// be read at all.
type PassResult struct {
	StoredDigest digest.Digest
	StoredSize   int64
	Compression  Compression

	// DiffID and TarSize cover the uncompressed bytes that could be produced,
	// even when decompression failed part way.
	DiffID  digest.Digest
	TarSize int64

	Entries int
	// TarEnd is true when the two zero blocks that end a tar were found.
	TarEnd bool
	// TrailingTar counts bytes after the tar end-of-archive marker (record
	// padding is normal); TrailingTarNonZero is set when any of them is not zero.
	TrailingTar        int64
	TrailingTarNonZero bool
	// TrailingEntry names a tar header found right after the end marker
	// (eStargz appends its table of contents, stargz.index.json, there).
	TrailingEntry string
	// TrailingStored counts stored bytes after the end of the compressed stream.
	TrailingStored int64

	// DecompressErr: the gzip/zstd stream is corrupt or truncated.
	DecompressErr error
	// TarErr: the tar stream is unreadable or truncated.
	TarErr error
	// LimitErr: a resource limit stopped the pass.
	LimitErr error

	Duplicates  []string // cleaned paths seen twice (first 20)
	UnsafePaths []string // names or link targets climbing out of the root (first 20)

	// TOC is the lazy-pull table of contents check, when PassOptions.TOC asked for it.
	TOC *TOCResult
}

const (
	storedBufSize = 1 << 20
	tarBufSize    = 256 << 10
	maxListed     = 20
)

// LimitError is a PassResult.LimitErr.
type LimitError struct{ Msg string }

func (e *LimitError) Error() string { return e.Msg }

// hashCounter hashes and counts what passes through it, and remembers the
// first read error that is not io.EOF.
type hashCounter struct {
	ctx context.Context
	r   io.Reader
	h   hash.Hash
	n   int64
	// total mirrors n for readers on other goroutines (the ratio limit).
	total atomic.Int64
	// errMu guards err: a decompressor reading ahead on its own goroutine
	// (pgzip) may record it while the pass looks at it.
	errMu sync.Mutex
	err   error
	limit func(n int64) error
}

// failed returns the first read error that is not io.EOF, or nil.
func (c *hashCounter) failed() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *hashCounter) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if n > 0 {
		if c.h != nil {
			c.h.Write(p[:n])
		}
		c.n += int64(n)
		c.total.Store(c.n)
		if c.limit != nil {
			if lerr := c.limit(c.n); lerr != nil {
				return n, lerr
			}
		}
	}
	if err != nil && err != io.EOF {
		c.errMu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.errMu.Unlock()
	}
	return n, err
}

// tailReader counts what the tar reader consumes and keeps the last 1024
// bytes of it, to tell a complete archive from one cut at an entry boundary
// (archive/tar reports both as io.EOF).
type tailReader struct {
	r       io.Reader
	n       int64
	tail    [1024]byte
	tailLen int
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.n += int64(n)
		t.remember(p[:n])
	}
	return n, err
}

func (t *tailReader) remember(p []byte) {
	if len(p) >= len(t.tail) {
		copy(t.tail[:], p[len(p)-len(t.tail):])
		t.tailLen = len(t.tail)
		return
	}
	keep := len(t.tail) - len(p)
	if t.tailLen < keep {
		keep = t.tailLen
	}
	copy(t.tail[:keep], t.tail[t.tailLen-keep:t.tailLen])
	copy(t.tail[keep:], p)
	t.tailLen = keep + len(p)
}

// endMarker reports whether the last 1024 bytes consumed are zero.
func (t *tailReader) endMarker() bool {
	return t.tailLen == len(t.tail) && allZero(t.tail[:])
}

// Pass reads r to its end once and measures it. The returned error is non-nil
// only when r itself failed (I/O error, cancellation); the result then holds
// what was measured so far.
func Pass(ctx context.Context, r io.Reader, opts PassOptions) (*PassResult, error) {
	res := &PassResult{}
	stored := &hashCounter{ctx: ctx, r: r, h: sha256.New()}
	br := bufio.NewReaderSize(stored, storedBufSize)
	magic, _ := br.Peek(6)
	res.Compression = DetectCompression(magic)

	var plain io.Reader // the uncompressed tar stream
	var closeDec func() error
	lz, mismatch := lazyFor(opts, res.Compression)
	if mismatch != nil {
		res.TOC = mismatch
	}
	switch {
	case lz != nil && res.Compression == CompressionGzip:
		g := &gzipMembers{br: br, stored: stored, lz: lz}
		plain, closeDec = g, func() error {
			if g.zr != nil {
				return g.zr.Close()
			}
			return nil
		}
	case lz != nil && res.Compression == CompressionZstd:
		dec, err := zstd.NewReader(nil, zstdOptions(opts)...)
		if err != nil {
			res.DecompressErr = fmt.Errorf("zstd: %w", err)
		} else {
			plain, closeDec = &framedZstd{dec: dec, z: &zstdFrames{br: br, lz: lz}}, func() error { dec.Close(); return nil }
		}
	case res.Compression == CompressionNone:
		plain = br
	case res.Compression == CompressionGzip:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			res.DecompressErr = fmt.Errorf("gzip header: %w", err)
		} else {
			plain, closeDec = zr, zr.Close
		}
	case res.Compression == CompressionZstd:
		zr, err := zstd.NewReader(br, zstdOptions(opts)...)
		if err != nil {
			res.DecompressErr = fmt.Errorf("zstd: %w", err)
		} else {
			plain, closeDec = zr, func() error { zr.Close(); return nil }
		}
	default:
		res.DecompressErr = fmt.Errorf("%s compression is not supported", res.Compression)
	}

	var tarSide *hashCounter
	if plain != nil {
		tarSide = &hashCounter{ctx: ctx, r: plain}
		if res.Compression != CompressionNone {
			tarSide.h = sha256.New()
		}
		tarSide.limit = func(n int64) error {
			if opts.MaxTarSize > 0 && n > opts.MaxTarSize {
				return &LimitError{fmt.Sprintf("uncompressed size exceeds the limit of %d bytes", opts.MaxTarSize)}
			}
			if opts.MaxRatio > 0 && n > 64<<20 && float64(n) > opts.MaxRatio*float64(stored.total.Load()) {
				return &LimitError{fmt.Sprintf("decompression ratio exceeds %.0f:1 (%d bytes from %d)", opts.MaxRatio, n, stored.total.Load())}
			}
			return nil
		}
		var in io.Reader = tarSide
		taps := opts.Taps
		if lz != nil && lz.capture != nil {
			taps = append(taps[:len(taps):len(taps)], lz.capture)
		}
		if len(taps) > 0 {
			in = io.TeeReader(tarSide, io.MultiWriter(taps...))
		}
		tin := bufio.NewReaderSize(in, tarBufSize)
		if opts.NoTarWalk {
			_, err := io.Copy(io.Discard, tin)
			classify(res, stored, tarSide, err)
		} else {
			walkTar(res, tin, tarSide, stored, opts, lz)
		}
		if closeDec != nil {
			if err := closeDec(); err != nil && res.DecompressErr == nil && res.LimitErr == nil && stored.failed() == nil {
				res.DecompressErr = err
			}
		}
	}
	// Whatever the decompressor left, the stored digest covers every byte.
	if stored.failed() == nil && ctx.Err() == nil {
		n, _ := io.Copy(io.Discard, br)
		if res.Compression != CompressionNone && res.DecompressErr == nil && res.LimitErr == nil {
			res.TrailingStored = n
		}
	}
	res.StoredSize = stored.n
	res.StoredDigest = digest.NewDigest(digest.SHA256, stored.h)
	if lz != nil {
		res.TOC = lz.finish(stored.n, brokenStream(ctx, res, stored))
	}
	if tarSide != nil {
		res.TarSize = tarSide.n
		if tarSide.h != nil {
			res.DiffID = digest.NewDigest(digest.SHA256, tarSide.h)
		} else {
			res.DiffID = res.StoredDigest
			res.TarSize = res.StoredSize
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := stored.failed(); err != nil {
		return res, err
	}
	return res, nil
}

// zstdOptions are the decoder options of every zstd layer.
func zstdOptions(opts PassOptions) []zstd.DOption {
	win := opts.ZstdMaxWindow
	if win == 0 {
		win = 128 << 20
	}
	return []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(win), zstd.WithDecoderLowmem(true)}
}

// lazyFor returns the TOC bookkeeping a pass needs, or nil for an ordinary
// layer; a layer whose compression cannot carry the declared format gets a
// result saying so instead.
func lazyFor(opts PassOptions, c Compression) (*lazyState, *TOCResult) {
	if opts.TOC == nil || opts.TOC.Kind == "" || opts.NoTarWalk {
		return nil, nil
	}
	ok := c == CompressionZstd || (opts.TOC.Kind == LazyEStargz && c == CompressionGzip)
	if !ok {
		r := &TOCResult{Kind: opts.TOC.Kind, Offset: -1}
		r.add(report.LayerTOCPosition, "", fmt.Sprintf("the layer's annotations declare %s, but the blob is %s: it has no such TOC", opts.TOC.Kind, c), "", "")
		return nil, r
	}
	return newLazyState(*opts.TOC), nil
}

// brokenStream says why a pass's stream cannot be compared with a TOC, or "".
func brokenStream(ctx context.Context, res *PassResult, stored *hashCounter) string {
	switch {
	case ctx.Err() != nil || stored.failed() != nil:
		return "the layer was not read to its end"
	case res.DecompressErr != nil:
		return "the layer does not decompress to its end"
	case res.LimitErr != nil:
		return "a resource limit stopped the pass"
	case res.TarErr != nil || !res.TarEnd:
		return "the layer's tar is unreadable"
	}
	return ""
}

// classify files an error from the decompressed side under the right field:
// the stored reader's own errors are returned by Pass, the decompressor's
// are DecompressErr, limits are LimitErr, and the rest belong to the tar.
func classify(res *PassResult, stored, tarSide *hashCounter, err error) {
	var le *LimitError
	switch {
	case err == nil:
	case stored.failed() != nil:
	case errors.As(err, &le):
		if res.LimitErr == nil {
			res.LimitErr = err
		}
	case res.Compression != CompressionNone && tarSide.failed() != nil:
		if res.DecompressErr == nil {
			res.DecompressErr = fmt.Errorf("%s stream: %w", res.Compression, tarSide.failed())
		}
	default:
		if res.TarErr == nil {
			res.TarErr = err
		}
	}
}

// walkTar reads headers to the end-of-archive marker, then drains the rest.
func walkTar(res *PassResult, tin io.Reader, tarSide, stored *hashCounter, opts PassOptions, lz *lazyState) {
	tt := &tailReader{r: tin}
	tr := tar.NewReader(tt)
	seed := maphash.MakeSeed()
	seen := make(map[uint64]struct{})
	var data []DataObserver
	for _, o := range opts.Observers {
		if d, ok := o.(DataObserver); ok {
			data = append(data, d)
		}
	}
	var buf []byte
	if len(data) > 0 {
		defer func() {
			err := res.TarErr
			switch {
			case err != nil:
			case res.DecompressErr != nil:
				err = res.DecompressErr
			case res.LimitErr != nil:
				err = res.LimitErr
			case stored.failed() != nil:
				err = stored.failed()
			case !res.TarEnd:
				err = errors.New("the tar walk stopped before the end-of-archive marker")
			}
			for _, o := range data {
				o.End(err)
			}
		}()
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			res.TarEnd = tt.endMarker()
			if !res.TarEnd {
				if tt.n == 0 {
					res.TarErr = errors.New("empty stream: not a tar archive")
				} else {
					res.TarErr = fmt.Errorf("tar ends at byte %d without the end-of-archive marker (truncated?)", tt.n)
				}
			}
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("tar truncated after %d entries: %w", res.Entries, err)
			}
			classify(res, stored, tarSide, err)
			// Hash what remains, so the digests still cover every byte.
			if stored.failed() == nil && res.LimitErr == nil && res.DecompressErr == nil {
				_, derr := io.Copy(io.Discard, tin)
				classify(res, stored, tarSide, derr)
			}
			return
		}
		res.Entries++
		checkName(res, hdr, seen, seed)
		for _, o := range opts.Observers {
			o.Header(hdr)
		}
		// A regular file's bytes are read once: by the TOC check when the
		// layer has one, else drained; data observers see them either way.
		var content io.Reader = tr
		feed := len(data) > 0 && hdr.Typeflag == tar.TypeReg && hdr.Size > 0
		if feed {
			content = io.TeeReader(tr, dataFeed(data))
		}
		consumed := false
		if lz != nil {
			switch {
			case lz.opts.Kind == LazyEStargz && hdr.Name == EStargzTOCName:
				lz.readTOC(hdr.Size, content, tt.n-512)
				consumed = true
			case hdr.Typeflag == tar.TypeReg:
				_ = lz.readFile(hdr.Name, hdr.Size, content, tt.n) // a read error is the next Next's
				consumed = true
			}
		}
		if feed && !consumed {
			if buf == nil {
				buf = make([]byte, 64<<10)
			}
			_, _ = io.CopyBuffer(io.Discard, content, buf) // a read error is the next Next's
		}
	}
	// Drain what follows the end marker: record padding or garbage.
	before := tt.n
	var first [512]byte
	if n, _ := io.ReadFull(tt, first[:]); !allZero(first[:n]) {
		res.TrailingTarNonZero = true
		if h, err := tar.NewReader(bytes.NewReader(first[:n])).Next(); err == nil && h != nil {
			res.TrailingEntry = h.Name
			if lz != nil && lz.opts.Kind == LazyEStargz && h.Name == EStargzTOCName && n == len(first) {
				lz.readTOC(h.Size, tt, before)
			}
		}
	}
	nz, err := drainCountNonZero(tt)
	nz = nz || res.TrailingTarNonZero
	res.TrailingTarNonZero = nz
	classify(res, stored, tarSide, err)
	res.TrailingTar = tt.n - before
}

// feedData reads the current entry's content and hands it to the data
// observers. A read error ends the entry early; tr.Next reports it.
// dataFeed hands a regular file's bytes to the data observers.
type dataFeed []DataObserver

func (d dataFeed) Write(p []byte) (int, error) {
	for _, o := range d {
		o.Data(p)
	}
	return len(p), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func drainCountNonZero(r io.Reader) (bool, error) {
	buf := make([]byte, 32<<10)
	nonZero := false
	for {
		n, err := r.Read(buf)
		if !nonZero && n > 0 && !allZero(buf[:n]) {
			nonZero = true
		}
		if err == io.EOF {
			return nonZero, nil
		}
		if err != nil {
			return nonZero, err
		}
	}
}

// checkName applies tar-split's duplicate rule and the root-escape rule.
func checkName(res *PassResult, hdr *tar.Header, seen map[uint64]struct{}, seed maphash.Seed) {
	clean := path.Clean("/" + hdr.Name)
	h := maphash.String(seed, clean)
	if _, dup := seen[h]; dup {
		if len(res.Duplicates) < maxListed {
			res.Duplicates = append(res.Duplicates, hdr.Name)
		}
	} else {
		seen[h] = struct{}{}
	}
	if escapes(hdr.Name) {
		addUnsafe(res, hdr.Name)
	}
	if hdr.Typeflag == tar.TypeLink && escapes(hdr.Linkname) {
		addUnsafe(res, hdr.Name+" (hardlink to "+hdr.Linkname+")")
	}
}

func addUnsafe(res *PassResult, s string) {
	if len(res.UnsafePaths) < maxListed {
		res.UnsafePaths = append(res.UnsafePaths, s)
	}
}

// escapes reports whether a relative tar name climbs above its root.
func escapes(name string) bool {
	c := path.Clean(strings.TrimLeft(name, "/"))
	return c == ".." || strings.HasPrefix(c, "../")
}
