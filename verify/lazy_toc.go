package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/tarsplit"
	digest "github.com/opencontainers/go-digest"
)

// tocDoc is a TOC of either format: eStargz's JTOC and zstd:chunked's TOC
// share these field names (estargz.TOCEntry, minimal.FileMetadata).
type tocDoc struct {
	Version        int           `json:"version"`
	Entries        []tocEntry    `json:"entries"`
	TarSplitDigest digest.Digest `json:"tarSplitDigest,omitempty"`
}

type tocEntry struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Size        int64  `json:"size"`
	Digest      string `json:"digest"`
	Offset      int64  `json:"offset"`
	EndOffset   int64  `json:"endOffset"`   // zstd:chunked
	InnerOffset int64  `json:"innerOffset"` // eStargz
	ChunkOffset int64  `json:"chunkOffset"`
	ChunkSize   int64  `json:"chunkSize"`
	ChunkDigest string `json:"chunkDigest"`
}

// finish checks the TOC against what passed. broken says the stream could
// not be read to its end: nothing is compared then.
func (lz *lazyState) finish(storedSize int64, broken string) *TOCResult {
	r := lz.res
	var ents []tocEntry
	if lz.capture != nil {
		defer lz.capture.Close()
	}
	if broken != "" {
		r.add(report.LayerTOCUnchecked, "", "TOC not checked: "+broken, "", "")
		return r
	}
	if lz.limited != "" {
		r.add(report.LayerTOCParse, "", "not every file could be recorded for the TOC comparison: "+lz.limited, "", "")
	}
	var dataEnd int64
	var ok bool
	switch lz.opts.Kind {
	case LazyZstdChunked:
		ents, dataEnd, ok = lz.zstdTOC()
	case LazyEStargz:
		ents, dataEnd, ok = lz.estargzTOC(storedSize)
	}
	if ok {
		lz.checkEntries(ents, dataEnd)
	}
	return r
}

// parseTOC decodes TOC JSON within the entry limit.
func (lz *lazyState) parseTOC(data []byte) (*tocDoc, bool) {
	var doc tocDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		lz.res.add(report.LayerTOCParse, "", "the TOC is not valid JSON: "+err.Error(), "", "")
		return nil, false
	}
	if doc.Version != 1 {
		lz.res.add(report.LayerTOCParse, "", "unknown TOC version", "1", strconv.Itoa(doc.Version))
	}
	lz.res.Entries = len(doc.Entries)
	if len(doc.Entries) > lz.opts.MaxTOCEntries {
		lz.res.add(report.LayerTOCParse, "", fmt.Sprintf("the TOC has %d entries, more than the limit of %d", len(doc.Entries), lz.opts.MaxTOCEntries), "", "")
		return nil, false
	}
	return &doc, true
}

// zstdTOC locates, hashes and parses a zstd:chunked TOC and checks its
// tar-split. dataEnd is where the TOC's skippable frame starts.
func (lz *lazyState) zstdTOC() ([]tocEntry, int64, bool) {
	r, ann := lz.res, lz.opts.Annotations
	posKey := AnnotationZstdChunkedPosition
	if ann[posKey] == "" {
		posKey = AnnotationZstdChunkedPositionOld
	}
	ft := lz.footer()
	var off, length, ulen int64
	if p, err := position(ann[posKey], 4); err == nil {
		off, length, ulen = p[0], p[1], p[2]
		if p[3] != 1 {
			r.add(report.LayerTOCPosition, "", "the manifest-position annotation names an unknown TOC type", "1", strconv.FormatInt(p[3], 10))
		}
		if ft != nil && (ft.off != off || ft.length != length || ft.ulength != ulen) {
			r.add(report.LayerTOCPosition, "", "the footer and the manifest-position annotation disagree on the TOC's place",
				fmt.Sprintf("%d:%d:%d (annotation)", off, length, ulen), fmt.Sprintf("%d:%d:%d (footer)", ft.off, ft.length, ft.ulength))
		}
	} else {
		msg := "the manifest-position annotation is missing"
		if ann[posKey] != "" {
			msg = "the manifest-position annotation does not parse: " + err.Error()
		}
		if ft == nil {
			r.add(report.LayerTOCPosition, "", msg+" and the blob has no zstd:chunked footer: the TOC cannot be found", "", "")
			return nil, 0, false
		}
		r.add(report.LayerTOCPosition, "", msg+"; the TOC was located by the footer", "", "")
		off, length, ulen = ft.off, ft.length, ft.ulength
	}
	f := lz.frameAt(off)
	switch {
	case f == nil:
		r.add(report.LayerTOCPosition, "", fmt.Sprintf("no skippable zstd frame's content starts at offset %d, where the TOC should be", off), "", "")
		return nil, 0, false
	case f.size != length:
		r.add(report.LayerTOCPosition, "", "the TOC frame's length differs from the one declared", strconv.FormatInt(length, 10), strconv.FormatInt(f.size, 10))
	}
	if f.data == nil || f.truncated {
		r.add(report.LayerTOCParse, "", fmt.Sprintf("the TOC frame (%d bytes) is larger than the limit of %d or truncated", f.size, lz.opts.MaxTOCSize), "", "")
		return nil, 0, false
	}
	r.Offset, r.Length = off, f.size
	r.Digest = digest.FromBytes(f.data)
	data, err := decodeZstd(f.data, lz.opts.MaxTOCSize)
	if err != nil {
		r.add(report.LayerTOCParse, "", "the TOC frame does not decompress: "+err.Error(), "", "")
		return nil, 0, false
	}
	if int64(len(data)) != ulen {
		r.add(report.LayerTOCParse, "", "the TOC's uncompressed length differs from the one declared", strconv.FormatInt(ulen, 10), strconv.Itoa(len(data)))
	}
	doc, ok := lz.parseTOC(data)
	if !ok {
		return nil, 0, false
	}
	lz.checkTarSplit(doc.TarSplitDigest, ft)
	return doc.Entries, off - 8, true
}

// checkTarSplit compares the tar-split frame with the TOC's digest of it and
// with the stream's own tar-split.
func (lz *lazyState) checkTarSplit(want digest.Digest, ft *zstdChunkedFooter) {
	r, ann := lz.res, lz.opts.Annotations
	if want == "" {
		return // older writers: the tar-split is not authenticated, and pullers ignore it
	}
	var off int64 = -1
	if p, err := position(ann[AnnotationZstdChunkedTarSplitPosition], 3); err == nil {
		off = p[0]
		if ft != nil && ft.tsOff != off {
			r.add(report.LayerTOCPosition, "", "the footer and the tarsplit-position annotation disagree on the tar-split's place", strconv.FormatInt(off, 10), strconv.FormatInt(ft.tsOff, 10))
		}
	} else if ft != nil {
		off = ft.tsOff
	}
	f := lz.frameAt(off)
	if f == nil {
		r.add(report.LayerTOCTarSplit, "", "the TOC pins a tar-split, but no skippable frame holds it where the annotation or footer says", "", "")
		return
	}
	if f.data == nil || f.truncated {
		r.add(report.LayerTOCParse, "", fmt.Sprintf("the tar-split frame (%d bytes) is larger than the limit of %d or truncated", f.size, lz.opts.MaxTOCSize), "", "")
		return
	}
	if got := digest.FromBytes(f.data); got != want {
		r.add(report.LayerTOCTarSplit, "", "the tar-split frame does not hash to the TOC's tarSplitDigest", want.String(), got.String())
		return
	}
	data, err := decodeZstd(f.data, lz.opts.MaxTOCSize)
	if err != nil {
		r.add(report.LayerTOCTarSplit, "", "the tar-split frame does not decompress: "+err.Error(), "", "")
		return
	}
	if _, err := lz.capture.Close(); err != nil {
		r.add(report.LayerTOCTarSplit, "", "the stream's own tar-split could not be taken: "+err.Error(), "", "")
		return
	}
	d := tarsplit.Compare(lz.capture, tarsplit.OpenJSON(bytes.NewReader(data)))
	r.TarSplit = true
	if !d.Equal() {
		r.add(report.LayerTOCTarSplit, "", "the tar-split differs from the tar stream (first: the stream, second: the tar-split): "+d.String(), "", "")
	}
}

// estargzTOC hashes and parses the eStargz TOC entry and checks the footer's
// offset of it. dataEnd is where the TOC's gzip member starts.
func (lz *lazyState) estargzTOC(storedSize int64) ([]tocEntry, int64, bool) {
	r := lz.res
	if !lz.tocSeen {
		r.add(report.LayerTOCPosition, EStargzTOCName, "the layer has no "+EStargzTOCName+" entry, the eStargz TOC its annotation pins", "", "")
		return nil, 0, false
	}
	if lz.toc == nil {
		return nil, 0, false // over the limit, said by readTOC
	}
	r.Digest = digest.FromBytes(lz.toc)
	r.Offset, r.Length = lz.tocC, -1
	dataEnd := lz.tocC
	if lz.members > 0 {
		tocOff, ok := estargzFooter(lz.lastExt)
		switch {
		case !ok || storedSize-lz.lastGz != 51 && storedSize-lz.lastGz != 47:
			r.add(report.LayerTOCPosition, "", "the blob does not end with an eStargz footer (an empty gzip member whose extra field holds the TOC's offset)", "", "")
		case lz.tocC < 0:
			r.add(report.LayerTOCPosition, EStargzTOCName, "the TOC entry does not start a gzip member of its own", "", "")
		case tocOff != lz.tocC:
			r.add(report.LayerTOCPosition, EStargzTOCName, "the footer's TOC offset is not where the TOC's gzip member starts", strconv.FormatInt(lz.tocC, 10), strconv.FormatInt(tocOff, 10))
		}
	}
	if dataEnd < 0 {
		dataEnd = storedSize
	}
	doc, ok := lz.parseTOC(lz.toc)
	if !ok {
		return nil, 0, false
	}
	return doc.Entries, dataEnd, true
}

// estargzFooter parses a footer's gzip extra field: "SG", its length, then
// "%016xSTARGZ"; or the legacy form, the subfield alone.
func estargzFooter(extra []byte) (int64, bool) {
	sub := extra
	if len(extra) >= 4 && extra[0] == 'S' && extra[1] == 'G' && int(binary.LittleEndian.Uint16(extra[2:4])) == len(extra)-4 {
		sub = extra[4:]
	}
	if len(sub) != 22 || string(sub[16:]) != "STARGZ" {
		return 0, false
	}
	v, err := strconv.ParseInt(string(sub[:16]), 16, 64)
	return v, err == nil && v >= 0
}

// lookup finds the recorded file a TOC entry names (as written, or cleaned).
func (lz *lazyState) lookup(name string) (*fileRec, string) {
	if rec := lz.files[name]; rec != nil {
		return rec, name
	}
	if lz.cleaned == nil {
		lz.cleaned = make(map[string]string, len(lz.files))
		for n := range lz.files {
			lz.cleaned[cleanTOCName(n)] = n
		}
	}
	if n, ok := lz.cleaned[cleanTOCName(name)]; ok {
		return lz.files[n], n
	}
	return nil, ""
}

// cleanTOCName is the name a TOC records for the tar name n: cleaned, and
// with every byte that is not UTF-8 replaced by U+FFFD, as the writers'
// JSON encoders do (containers/storage writes a tar name such as "a\xff" as
// "a\ufffd" in a zstd:chunked TOC). Such a name is the writer's, not
// damage: the file's size and digest are still checked.
func cleanTOCName(n string) string { return path.Clean("/" + jsonString(n)) }

// jsonString replaces each byte of s that is not part of valid UTF-8 by
// U+FFFD, byte by byte like encoding/json (strings.ToValidUTF8 would merge a
// run of them into one).
func jsonString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func hexDigest(sum [32]byte) string { return "sha256:" + hex.EncodeToString(sum[:]) }

// checkEntries compares every regular file and chunk of the TOC with the
// stream: digests, sizes, offsets, and that both list the same files.
func (lz *lazyState) checkEntries(ents []tocEntry, dataEnd int64) {
	r := lz.res
	listed := map[string]bool{}
	var file *tocEntry
	var rec *fileRec
	var next int64 // where the next chunk of file should start
	closeFile := func() {
		if file != nil && rec != nil && next > 0 && next != file.Size {
			r.add(report.LayerTOCChunk, file.Name, "the file's chunks do not cover it", strconv.FormatInt(file.Size, 10)+" bytes", strconv.FormatInt(next, 10)+" bytes")
		}
		file, rec, next = nil, nil, 0
	}
	for i := range ents {
		e := &ents[i]
		switch e.Type {
		case "reg":
			closeFile()
			file = e
			var name string
			rec, name = lz.lookup(e.Name)
			if rec == nil {
				if lz.limited == "" {
					r.add(report.LayerTOCFileDigest, e.Name, "the TOC lists a regular file the tar does not hold", "", "")
				}
				continue
			}
			listed[name] = true
			if e.Size != rec.size {
				r.add(report.LayerTOCFileDigest, e.Name, "the file's size in the TOC differs from the tar's", strconv.FormatInt(e.Size, 10), strconv.FormatInt(rec.size, 10))
			}
			got := hexDigest(rec.sum)
			switch {
			case e.Digest != "" && e.Digest != got:
				r.add(report.LayerTOCFileDigest, e.Name, "the file's digest in the TOC differs from its bytes in the tar", e.Digest, got)
			case e.Digest == "" && rec.size > 0:
				r.add(report.LayerTOCFileDigest, e.Name, "the TOC records no digest for a non-empty file", got, "")
			}
			r.Files++
			if rec.size == 0 {
				continue
			}
			if e.ChunkDigest != "" || e.ChunkSize > 0 {
				lz.checkChunk(e, rec, file.Size, dataEnd)
				next = e.ChunkOffset + chunkLen(e, file.Size)
				continue
			}
			lz.checkOffset(e, dataEnd)
			if e.Offset != rec.segs[0].c {
				r.add(report.LayerTOCChunk, e.Name, "the file's offset does not point at the compressed frame holding its first byte", strconv.FormatInt(rec.segs[0].c, 10), strconv.FormatInt(e.Offset, 10))
			}
		case "chunk":
			if file == nil || cleanTOCName(e.Name) != cleanTOCName(file.Name) {
				r.add(report.LayerTOCChunk, e.Name, "a chunk entry does not follow its file's entry", "", "")
				continue
			}
			if rec == nil {
				continue
			}
			if e.ChunkOffset != next {
				r.add(report.LayerTOCChunk, e.Name, "the file's chunks are not contiguous", strconv.FormatInt(next, 10), strconv.FormatInt(e.ChunkOffset, 10))
			}
			lz.checkChunk(e, rec, file.Size, dataEnd)
			next = e.ChunkOffset + chunkLen(e, file.Size)
		default:
			closeFile()
		}
	}
	closeFile()
	if lz.limited != "" {
		return
	}
	var missing []string
	for n := range lz.files {
		if !listed[n] {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	for _, n := range missing {
		r.add(report.LayerTOCFileDigest, n, "the tar holds a regular file the TOC does not list (a lazy pull would leave it out)", "", "")
	}
}

// chunkLen is a chunk's length: ChunkSize, or (eStargz's last chunk) the rest of the file.
func chunkLen(e *tocEntry, fileSize int64) int64 {
	if e.ChunkSize > 0 {
		return e.ChunkSize
	}
	return fileSize - e.ChunkOffset
}

// checkOffset checks that an entry's compressed offsets lie in the blob's data.
func (lz *lazyState) checkOffset(e *tocEntry, dataEnd int64) bool {
	if e.Offset < 0 || e.Offset >= dataEnd {
		lz.res.add(report.LayerTOCChunk, e.Name, "the compressed offset lies outside the blob's data", fmt.Sprintf("0 ≤ offset < %d", dataEnd), strconv.FormatInt(e.Offset, 10))
		return false
	}
	if e.EndOffset != 0 && (e.EndOffset < e.Offset || e.EndOffset > dataEnd) {
		lz.res.add(report.LayerTOCChunk, e.Name, "the compressed end offset lies outside the blob's data", fmt.Sprintf("%d ≤ endOffset ≤ %d", e.Offset, dataEnd), strconv.FormatInt(e.EndOffset, 10))
		return false
	}
	return true
}

// checkChunk compares one chunk with the segment of the file that passed
// between the same frame boundaries.
func (lz *lazyState) checkChunk(e *tocEntry, rec *fileRec, fileSize, dataEnd int64) {
	r := lz.res
	n := chunkLen(e, fileSize)
	if e.ChunkOffset < 0 || n <= 0 || e.ChunkOffset+n > fileSize {
		r.add(report.LayerTOCChunk, e.Name, fmt.Sprintf("the chunk at %d (%d bytes) does not lie inside the file", e.ChunkOffset, e.ChunkSize), fmt.Sprintf("within %d bytes", fileSize), "")
		return
	}
	if !lz.checkOffset(e, dataEnd) {
		return
	}
	i := sort.Search(len(rec.segs), func(i int) bool { return rec.segs[i].off+rec.segs[i].size > e.ChunkOffset })
	if i == len(rec.segs) || lz.limited != "" {
		r.ChunksUnchecked++
		return
	}
	s := rec.segs[i]
	if e.InnerOffset == 0 && e.Offset != s.c {
		r.add(report.LayerTOCChunk, e.Name, fmt.Sprintf("the chunk at %d: its offset does not point at the compressed frame holding it", e.ChunkOffset), strconv.FormatInt(s.c, 10), strconv.FormatInt(e.Offset, 10))
	}
	if s.off != e.ChunkOffset || s.size != n {
		if lz.opts.Kind == LazyZstdChunked {
			r.add(report.LayerTOCChunk, e.Name, fmt.Sprintf("the chunk at %d (%d bytes) is not one compressed frame of the stream", e.ChunkOffset, n),
				fmt.Sprintf("a frame at %d (%d bytes)", s.off, s.size), "")
		} else {
			r.ChunksUnchecked++ // several chunks share a gzip member
		}
		return
	}
	if e.ChunkDigest == "" {
		return
	}
	r.Chunks++
	if got := hexDigest(s.sum); e.ChunkDigest != got {
		r.add(report.LayerTOCChunk, e.Name, fmt.Sprintf("the chunk at %d: its digest in the TOC differs from its bytes in the tar", e.ChunkOffset), e.ChunkDigest, got)
	}
}
