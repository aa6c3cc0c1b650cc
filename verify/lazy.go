package verify

// Lazy-pull layers (eStargz, zstd:chunked) carry a table of contents (TOC)
// that lazy pullers trust to fetch and place files without reading the rest
// of the layer. This file checks it inside the single pass: the stored bytes
// are split into their compressed frames (zstd frames, gzip members) as they
// pass, so the pass knows where each frame starts in the blob and in the tar
// stream; skippable zstd frames (the zstd:chunked TOC, tar-split and footer)
// are kept as they pass; each regular file's bytes are hashed whole and per
// frame-delimited segment as the tar walk passes them. When the stream ends,
// the TOC is parsed and every claim it makes is compared with what passed.
//
// The TOC formats are parsed per their specifications (containerd's
// stargz-snapshotter estargz/types.go, containers/storage
// pkg/chunked/internal/minimal): one entry type covers both (their fields
// share names), and containers/storage's types are internal to it. The
// reference writers make the test fixtures.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/tarsplit"
	digest "github.com/opencontainers/go-digest"
)

// Layer annotations of the lazy-pull formats.
const (
	// AnnotationZstdChunkedChecksum is the sha256 of the zstd-compressed TOC frame.
	AnnotationZstdChunkedChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	// AnnotationZstdChunkedPosition is offset:length:uncompressedLength:type of the TOC.
	AnnotationZstdChunkedPosition = "io.github.containers.zstd-chunked.manifest-position"
	// AnnotationZstdChunkedTarSplitPosition is offset:length:uncompressedLength of the tar-split.
	AnnotationZstdChunkedTarSplitPosition = "io.github.containers.zstd-chunked.tarsplit-position"
	// AnnotationZstdChunkedChecksumOld and AnnotationZstdChunkedPositionOld are
	// the keys older writers (podman 4.3, stargz-snapshotter) use.
	AnnotationZstdChunkedChecksumOld = "io.containers.zstd-chunked.manifest-checksum"
	AnnotationZstdChunkedPositionOld = "io.containers.zstd-chunked.manifest-position"
	// AnnotationEStargzTOCDigest is the sha256 of the uncompressed TOC JSON.
	AnnotationEStargzTOCDigest = "containerd.io/snapshot/stargz/toc.digest"
	// EStargzTOCName is the tar entry holding an eStargz TOC.
	EStargzTOCName = "stargz.index.json"
)

// LazyKind is a lazy-pull layer format.
type LazyKind string

// Lazy-pull formats.
const (
	LazyZstdChunked LazyKind = "zstd:chunked"
	LazyEStargz     LazyKind = "estargz"
)

func (k LazyKind) String() string { return string(k) }

// LazyOf returns the lazy-pull format a layer descriptor's annotations
// declare, or "" for an ordinary layer.
func LazyOf(ann map[string]string) LazyKind {
	switch {
	case ann == nil:
		return ""
	case ann[AnnotationZstdChunkedChecksum] != "" || ann[AnnotationZstdChunkedChecksumOld] != "":
		return LazyZstdChunked
	case ann[AnnotationEStargzTOCDigest] != "":
		return LazyEStargz
	}
	return ""
}

// TOC limits when TOCOptions leaves them 0.
const (
	DefaultMaxTOCSize    = 64 << 20
	DefaultMaxTOCEntries = 1 << 20
	// maxSegments bounds the frame-delimited file segments a pass records.
	maxSegments = 4 << 20
	// maxKeptFrames bounds the skippable zstd frames kept in memory.
	maxKeptFrames = 8
)

// TOCOptions ask a pass to check a lazy-pull layer's table of contents.
type TOCOptions struct {
	Kind LazyKind
	// Annotations are the layer descriptor's: they locate the zstd:chunked TOC.
	Annotations map[string]string
	// MaxTOCSize bounds the TOC and tar-split, compressed and uncompressed (0: DefaultMaxTOCSize).
	MaxTOCSize int64
	// MaxTOCEntries bounds the TOC's entries and the files recorded (0: DefaultMaxTOCEntries).
	MaxTOCEntries int
}

// TOCResult is what a pass found of a lazy-pull layer's TOC.
type TOCResult struct {
	Kind LazyKind
	// Digest is the measured digest the annotation pins: for zstd:chunked the
	// sha256 of the compressed TOC frame, for eStargz of the TOC JSON. Empty
	// when the TOC was not found.
	Digest digest.Digest
	// Offset and Length locate the TOC in the stored blob (eStargz: the gzip
	// member holding it, Length -1), Offset -1 when not found.
	Offset, Length int64
	Entries        int // TOC entries
	Files          int // regular files whose digest and size were checked
	Chunks         int // chunks whose digest was checked
	// ChunksUnchecked counts chunks sharing a compressed frame with another
	// chunk (eStargz's InnerOffset): their digest cannot be checked in one pass.
	ChunksUnchecked int
	TarSplit        bool // the tar-split was compared with the stream (zstd:chunked)
	Findings        []TOCFinding
}

// TOCFinding is one problem of a TOC; the verifier turns it into a finding.
type TOCFinding struct {
	Check            report.Check
	Entry            string
	Message          string
	Expected, Actual string
}

const maxTOCFindings = 100

func (r *TOCResult) add(check report.Check, entry, msg, want, got string) {
	if len(r.Findings) == maxTOCFindings {
		r.Findings = append(r.Findings, TOCFinding{Check: check, Message: "more TOC problems; only the first 100 are listed"})
	}
	if len(r.Findings) > maxTOCFindings {
		return
	}
	r.Findings = append(r.Findings, TOCFinding{Check: check, Entry: entry, Message: msg, Expected: want, Actual: got})
}

// boundary is the start of a compressed frame: u in the tar stream, c in the blob.
type boundary struct{ u, c int64 }

// skipFrame is a skippable zstd frame: its content's offset and size in the
// blob, and the content when it was within the limits.
type skipFrame struct {
	off, size int64
	data      []byte
	truncated bool
}

// segment is the bytes of a file between two frame boundaries.
type segment struct {
	off, size int64 // in the file
	c         int64 // blob offset of the frame holding its first byte
	aligned   bool  // it starts a frame
	sum       [32]byte
}

type fileRec struct {
	size int64
	sum  [32]byte
	segs []segment
}

// lazyState is a pass's TOC bookkeeping.
type lazyState struct {
	opts    TOCOptions
	res     *TOCResult
	bounds  []boundary
	cur     boundary
	frames  []skipFrame
	kept    int64 // bytes of frames kept
	members int   // gzip members seen
	lastGz  int64 // offset of the last gzip member
	lastExt []byte
	files   map[string]*fileRec
	cleaned map[string]string // cleaned name -> name in files, built on the first lookup that needs it
	segs    int
	limited string // a limit stopped the recording
	toc     []byte // eStargz TOC JSON, when within the limit
	tocU    int64  // its tar header's offset in the stream
	tocC    int64  // blob offset of the frame starting there, -1 when none does
	tocSeen bool
	capture *tarsplit.Capture
	hbuf    []byte
	whole   hash.Hash
	part    hash.Hash
}

func newLazyState(o TOCOptions) *lazyState {
	if o.MaxTOCSize <= 0 {
		o.MaxTOCSize = DefaultMaxTOCSize
	}
	if o.MaxTOCEntries <= 0 {
		o.MaxTOCEntries = DefaultMaxTOCEntries
	}
	lz := &lazyState{opts: o, res: &TOCResult{Kind: o.Kind, Offset: -1}, files: map[string]*fileRec{}, tocC: -1,
		hbuf: make([]byte, 64<<10), whole: sha256.New(), part: sha256.New()}
	if o.Kind == LazyZstdChunked {
		lz.capture = tarsplit.NewCaptureWith(tarsplit.CaptureOptions{MaxKeptRawBytes: -1})
	}
	return lz
}

// boundary records that a frame starting at blob offset c produces the tar
// stream from offset u. Frames producing nothing collapse into the next.
func (lz *lazyState) boundary(u, c int64) {
	if n := len(lz.bounds); n > 0 && lz.bounds[n-1].u == u {
		lz.bounds[n-1].c = c
		return
	}
	lz.bounds = append(lz.bounds, boundary{u, c})
}

// advance passes every boundary at or before u.
func (lz *lazyState) advance(u int64) {
	i := 0
	for i < len(lz.bounds) && lz.bounds[i].u <= u {
		lz.cur = lz.bounds[i]
		i++
	}
	lz.bounds = lz.bounds[i:]
}

// readFile hashes a regular file's bytes as the tar walk passes them: whole,
// and per segment between frame boundaries. start is the file's offset in
// the tar stream.
func (lz *lazyState) readFile(name string, size int64, r io.Reader, start int64) error {
	lz.advance(start)
	rec := &fileRec{size: size}
	record := lz.limited == ""
	if record && len(lz.files) >= lz.opts.MaxTOCEntries {
		lz.limited = fmt.Sprintf("the layer holds more than %d regular files", lz.opts.MaxTOCEntries)
		record = false
	}
	lz.whole.Reset()
	lz.part.Reset()
	// The frame holding the file's first byte may start only when that
	// byte is asked for: a segment takes its frame when its first byte passes.
	var seg segment
	cut := func(pos int64, c int64) {
		lz.part.Sum(seg.sum[:0])
		if lz.segs < maxSegments {
			rec.segs = append(rec.segs, seg)
			lz.segs++
		} else if lz.limited == "" {
			lz.limited = fmt.Sprintf("more than %d file segments", maxSegments)
		}
		lz.part.Reset()
		seg = segment{off: pos - start, c: c, aligned: true}
	}
	pos := start
	var err error
	for {
		var n int
		n, err = r.Read(lz.hbuf)
		chunk := lz.hbuf[:n]
		for len(chunk) > 0 {
			for len(lz.bounds) > 0 && lz.bounds[0].u <= pos {
				b := lz.bounds[0]
				lz.bounds = lz.bounds[1:]
				lz.cur = b
				if b.u == pos && seg.size > 0 {
					cut(pos, b.c)
				}
			}
			if seg.size == 0 {
				seg.c, seg.aligned = lz.cur.c, lz.cur.u == pos
			}
			k := int64(len(chunk))
			if len(lz.bounds) > 0 && lz.bounds[0].u < pos+k {
				k = lz.bounds[0].u - pos
			}
			lz.whole.Write(chunk[:k])
			lz.part.Write(chunk[:k])
			seg.size += k
			pos += k
			chunk = chunk[k:]
		}
		if err != nil {
			break
		}
	}
	lz.part.Sum(seg.sum[:0])
	rec.segs = append(rec.segs, seg)
	lz.whole.Sum(rec.sum[:0])
	if record {
		lz.files[name] = rec
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// readTOC keeps an eStargz TOC entry's content (within the limit) as the
// tar walk passes it; hdrStart is its header's offset in the tar stream.
func (lz *lazyState) readTOC(size int64, r io.Reader, hdrStart int64) {
	lz.advance(hdrStart)
	lz.tocSeen, lz.tocU = true, hdrStart
	if lz.cur.u == hdrStart {
		lz.tocC = lz.cur.c
	}
	if size > lz.opts.MaxTOCSize {
		lz.res.add(report.LayerTOCParse, EStargzTOCName, fmt.Sprintf("the TOC is %d bytes, more than the limit of %d", size, lz.opts.MaxTOCSize), "", "")
		return
	}
	buf := make([]byte, size)
	n, _ := io.ReadFull(r, buf)
	lz.toc = buf[:n]
}

// zstdFrames passes the stored bytes of one zstd frame at a time to the
// decoder (io.EOF at its end), keeping skippable frames and noting where
// each data frame starts. A stream it cannot parse is passed on whole for
// the decoder to report.
type zstdFrames struct {
	br      *bufio.Reader
	lz      *lazyState
	off     int64
	remain  int64
	next    int // what follows the current unit
	cksum   bool
	rawRest bool
}

const (
	zNextEnd = iota
	zNextBlock
	zNextChecksum
)

// nextFrame skips (and keeps) skippable frames and readies the next data
// frame, returning its blob offset; ok is false at the end of the stream.
func (z *zstdFrames) nextFrame() (int64, bool) {
	for {
		m, _ := z.br.Peek(8)
		if len(m) == 0 {
			return 0, false
		}
		if len(m) >= 8 && binary.LittleEndian.Uint32(m)&0xFFFFFFF0 == 0x184D2A50 {
			size := int64(binary.LittleEndian.Uint32(m[4:]))
			z.br.Discard(8)
			z.off += 8
			f := skipFrame{off: z.off, size: size}
			if size <= z.lz.opts.MaxTOCSize && len(z.lz.frames) < maxKeptFrames && z.lz.kept+size <= 2*z.lz.opts.MaxTOCSize+64 {
				z.lz.kept += size
				f.data = make([]byte, size)
				n, _ := io.ReadFull(z.br, f.data)
				f.data, f.truncated = f.data[:n], int64(n) < size
				z.off += int64(n)
			} else {
				n, _ := io.CopyN(io.Discard, z.br, size)
				z.off += n
				f.truncated = n < size
			}
			z.lz.frames = append(z.lz.frames, f)
			if f.truncated {
				return 0, false
			}
			continue
		}
		start := z.off
		if len(m) >= 5 && binary.LittleEndian.Uint32(m) == 0xFD2FB528 {
			fhd := m[4]
			hl := int64(5)
			single := fhd>>5&1 == 1
			if !single {
				hl++
			}
			hl += []int64{0, 1, 2, 4}[fhd&3]
			switch fhd >> 6 {
			case 0:
				if single {
					hl++
				}
			case 1:
				hl += 2
			case 2:
				hl += 4
			case 3:
				hl += 8
			}
			z.remain, z.next, z.cksum = hl, zNextBlock, fhd>>2&1 == 1
			return start, true
		}
		z.rawRest, z.remain, z.next = true, 1<<62, zNextEnd
		return start, true
	}
}

// Read passes the bytes of the current frame.
func (z *zstdFrames) Read(p []byte) (int, error) {
	for z.remain == 0 {
		switch z.next {
		case zNextEnd:
			return 0, io.EOF
		case zNextChecksum:
			z.remain, z.next = 4, zNextEnd
		case zNextBlock:
			h, _ := z.br.Peek(3)
			if len(h) < 3 {
				z.rawRest, z.remain, z.next = true, 1<<62, zNextEnd
				continue
			}
			v := uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16
			switch v >> 1 & 3 {
			case 0, 2:
				z.remain = 3 + int64(v>>3)
			case 1:
				z.remain = 4
			default:
				z.rawRest, z.remain, z.next = true, 1<<62, zNextEnd
				continue
			}
			if v&1 == 1 {
				z.next = zNextEnd
				if z.cksum {
					z.next = zNextChecksum
				}
			}
		}
	}
	if int64(len(p)) > z.remain {
		p = p[:z.remain]
	}
	n, err := z.br.Read(p)
	z.remain -= int64(n)
	z.off += int64(n)
	if err == io.EOF && !z.rawRest {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// framedZstd decompresses the frames zstdFrames yields one by one, noting
// where each starts in the tar stream.
type framedZstd struct {
	dec     *zstd.Decoder
	z       *zstdFrames
	u       int64
	started bool
	done    bool
}

func (f *framedZstd) Read(p []byte) (int, error) {
	for !f.done {
		if !f.started {
			c, ok := f.z.nextFrame()
			if !ok {
				f.done = true
				break
			}
			f.z.lz.boundary(f.u, c)
			if err := f.dec.Reset(f.z); err != nil {
				return 0, err
			}
			f.started = true
		}
		n, err := f.dec.Read(p)
		f.u += int64(n)
		if err == io.EOF {
			f.started = false
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
	return 0, io.EOF
}

// gzipMembers decompresses gzip members one by one, noting where each starts.
type gzipMembers struct {
	br      *bufio.Reader
	stored  *hashCounter
	lz      *lazyState
	zr      *gzip.Reader
	u       int64
	started bool
	done    bool
}

func (g *gzipMembers) Read(p []byte) (int, error) {
	for !g.done {
		if !g.started {
			if _, err := g.br.Peek(1); err != nil {
				g.done = true
				break
			}
			c := g.stored.n - int64(g.br.Buffered())
			var err error
			if g.zr == nil {
				g.zr, err = gzip.NewReader(g.br)
			} else {
				err = g.zr.Reset(g.br)
			}
			if err != nil {
				if errors.Is(err, gzip.ErrHeader) {
					err = fmt.Errorf("%w (at byte %d)", pgzip.ErrHeader, c)
				}
				return 0, err
			}
			g.zr.Multistream(false)
			g.lz.boundary(g.u, c)
			g.lz.members++
			g.lz.lastGz, g.lz.lastExt = c, append(g.lz.lastExt[:0], g.zr.Header.Extra...)
			g.started = true
		}
		n, err := g.zr.Read(p)
		g.u += int64(n)
		if err == io.EOF {
			g.started = false
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
	return 0, io.EOF
}

// position parses offset:length:uncompressed[:type].
func position(s string, n int) ([]int64, error) {
	parts := strings.Split(s, ":")
	if len(parts) != n {
		return nil, fmt.Errorf("%q does not have %d fields", s, n)
	}
	out := make([]int64, n)
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%q: field %d is not a non-negative integer", s, i+1)
		}
		out[i] = v
	}
	return out, nil
}

// frameAt returns the kept skippable frame whose content starts at off.
func (lz *lazyState) frameAt(off int64) *skipFrame {
	for i := range lz.frames {
		if lz.frames[i].off == off {
			return &lz.frames[i]
		}
	}
	return nil
}

// zstdChunkedFooter is the 64-byte content of the last skippable frame.
type zstdChunkedFooter struct {
	off, length, ulength, typ, tsOff, tsLength, tsULength int64
}

var zstdChunkedMagic = []byte("GNUlInUx")

func (lz *lazyState) footer() *zstdChunkedFooter {
	if len(lz.frames) == 0 {
		return nil
	}
	f := lz.frames[len(lz.frames)-1]
	if len(f.data) != 64 || !bytes.Equal(f.data[56:], zstdChunkedMagic) {
		return nil
	}
	v := func(i int) int64 { return int64(binary.LittleEndian.Uint64(f.data[8*i:])) }
	return &zstdChunkedFooter{off: v(0), length: v(1), ulength: v(2), typ: v(3), tsOff: v(4), tsLength: v(5), tsULength: v(6)}
}

// decodeZstd decompresses a kept frame, refusing more than limit bytes.
func decodeZstd(data []byte, limit int64) ([]byte, error) {
	dec, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)+1))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	out, err := io.ReadAll(io.LimitReader(dec, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("more than the limit of %d bytes uncompressed", limit)
	}
	return out, nil
}
