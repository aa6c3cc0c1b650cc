package dockerarchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
)

// zstdMaxWindow is the largest zstd window Scan accepts (the zstd command's
// own default limit), which bounds the decoder's memory.
const zstdMaxWindow = 128 << 20

// Scan implements source.Scanner. For a compressed archive it reads the
// whole archive once, front to back. Members that look like metadata (named
// manifest.json, index.json, oci-layout or repositories, or at most
// MaxManifestSize bytes and starting with '{' or '[' after white space) are
// kept in memory, up to MaxMetadataTotal altogether. Every other regular
// member is passed to fn exactly once, as it streams past, with the Blob that
// Targets, Blob and ListBlobs later return for it (same Key); that Blob's
// Open returns source.ErrConsumed. Links are not passed: they resolve to
// their target's Blob. If a member name occurs twice, fn sees both copies
// under the same Key and the later one is the one the archive means (last
// copy wins), so a caller caching by Key should keep the later result.
//
// Scan runs once; for an uncompressed archive it does nothing and returns
// nil, since its members are read in place.
func (a *Archive) Scan(ctx context.Context, fn func(b source.Blob, r io.Reader) error) error {
	if a.comp == None {
		return nil
	}
	a.mu.Lock()
	started := a.scanStarted
	a.scanStarted = true
	a.mu.Unlock()
	if started {
		return fmt.Errorf("%s: Scan already ran; a compressed archive can be read only once", a.path)
	}

	br := bufio.NewReaderSize(io.NewSectionReader(a.ra, 0, a.size), 1<<20)
	var dec io.Reader
	switch a.comp {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("reading %s: gzip: %w", a.path, err)
		}
		defer zr.Close()
		dec = zr
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return fmt.Errorf("reading %s: zstd: %w", a.path, err)
		}
		defer zr.Close()
		dec = zr
	}
	cr := &ctxReader{ctx: ctx, r: dec}
	tr := tar.NewReader(cr)
	var keptTotal int64
	last := ""
	clean := true // the tar reached its end marker
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if len(a.order) == 0 {
				return fmt.Errorf("%s: the %s stream does not hold a tar archive: %v: %w", a.path, a.comp, err, source.ErrUnsupported)
			}
			a.truncated(last, err)
			clean = false
			break
		}
		m, err := a.add(hdr, -1)
		if err != nil {
			return err
		}
		if m == nil {
			continue
		}
		last = m.name
		if m.kind != kindReg {
			continue
		}
		named := isMetadataName(m.name)
		if m.size > a.opts.MaxManifestSize {
			if named {
				m.tooLarge = true // drained by the next tr.Next
				continue
			}
			m.streamed = true
			if err := fn(a.memberBlob(m), tr); err != nil {
				return fmt.Errorf("reading member %s of %s: %w", m.name, a.path, err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			a.truncated(m.name, err)
			m.broken = fmt.Errorf("%s: the archive breaks inside this member: %w", m.name, err)
			clean = false
			break
		}
		if named || looksLikeJSON(data) {
			keptTotal += int64(len(data))
			if keptTotal > a.opts.MaxMetadataTotal {
				return fmt.Errorf("%s: more than %d bytes of metadata members to keep in memory while streaming a %s-compressed archive; decompress the archive first so its members can be read in place: %w",
					a.path, a.opts.MaxMetadataTotal, a.comp, &source.LimitError{What: a.path, Limit: a.opts.MaxMetadataTotal})
			}
			m.data, m.kept = data, true
			continue
		}
		m.streamed = true
		if err := fn(a.memberBlob(m), bytes.NewReader(data)); err != nil {
			return fmt.Errorf("reading member %s of %s: %w", m.name, a.path, err)
		}
	}
	if clean {
		a.drainTrailing(cr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := a.classify(); err != nil {
		return err
	}
	a.mu.Lock()
	a.ready = true
	a.mu.Unlock()
	return nil
}

// drainTrailing reads what follows the tar's end marker, so that the
// compressed stream's own checksum is checked, and reports a corrupt stream.
func (a *Archive) drainTrailing(r *ctxReader) {
	n, err := io.Copy(io.Discard, io.LimitReader(r, maxTrailing+1))
	switch {
	case err != nil && r.ctx.Err() == nil:
		a.note(report.Finding{Check: report.ArchiveMember, Severity: report.Error,
			Message: fmt.Sprintf("the %s stream of the archive is corrupt after the end of the tar: %v", a.comp, err)})
	case n > maxTrailing:
		a.note(report.Finding{Check: report.ArchiveMember, Severity: report.Warning,
			Message: fmt.Sprintf("more than %d bytes follow the end of the tar inside the %s stream; they were not read", maxTrailing, a.comp)})
	}
}

// isMetadataName reports whether a member is one of the fixed metadata files.
func isMetadataName(name string) bool {
	switch name {
	case manifestFile, indexFile, layoutFile, repositoriesFile:
		return true
	}
	return false
}

// looksLikeJSON reports whether data starts with '{' or '[' after white space.
func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && (t[0] == '{' || t[0] == '[')
}

// ctxReader stops reading once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
