package source

import (
	"bytes"
	"context"
	"io"
	"os"
)

// BytesBlob is a Blob held in memory (a small metadata file).
type BytesBlob struct {
	K, Loc string
	Data   []byte
}

var _ Blob = (*BytesBlob)(nil)

// Key implements Blob.
func (b *BytesBlob) Key() string { return b.K }

// Location implements Blob.
func (b *BytesBlob) Location() string { return b.Loc }

// Size implements Blob.
func (b *BytesBlob) Size() int64 { return int64(len(b.Data)) }

// Open implements Blob.
func (b *BytesBlob) Open(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.Data)), nil
}

// FileBlob is a Blob stored as a whole file.
type FileBlob struct {
	K, Path string
	N       int64 // size from stat, -1 unknown
}

var _ Blob = (*FileBlob)(nil)

// Key implements Blob.
func (b *FileBlob) Key() string { return b.K }

// Location implements Blob.
func (b *FileBlob) Location() string { return b.Path }

// Size implements Blob.
func (b *FileBlob) Size() int64 { return b.N }

// Open implements Blob. The file is opened read-only.
func (b *FileBlob) Open(context.Context) (io.ReadCloser, error) { return os.Open(b.Path) }

// SectionBlob is a Blob stored as a byte range of a larger file (a member of
// an uncompressed tar archive, read in place).
type SectionBlob struct {
	K, Loc string
	R      io.ReaderAt
	Off, N int64
}

var _ Blob = (*SectionBlob)(nil)

// Key implements Blob.
func (b *SectionBlob) Key() string { return b.K }

// Location implements Blob.
func (b *SectionBlob) Location() string { return b.Loc }

// Size implements Blob.
func (b *SectionBlob) Size() int64 { return b.N }

// Open implements Blob.
func (b *SectionBlob) Open(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(b.R, b.Off, b.N)), nil
}

// ReadAll reads a small blob whole, refusing more than limit bytes.
func ReadAll(ctx context.Context, b Blob, limit int64) ([]byte, error) {
	rc, err := b.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return readLimited(rc, limit, b.Location())
}

// readLimited reads r to its end, refusing more than limit bytes (what names it).
func readLimited(r io.Reader, limit int64, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &LimitError{What: what, Limit: limit}
	}
	return data, nil
}

// LimitError reports input larger than a configured limit.
type LimitError struct {
	What  string
	Limit int64
}

func (e *LimitError) Error() string {
	return e.What + ": larger than the limit of " + itoa(e.Limit) + " bytes"
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
