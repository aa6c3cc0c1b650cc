package tarsplit

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

func TestAssembleRoundTrip(t *testing.T) {
	tarball, ts, dir := roundTrip(t)
	out, st := assemble(t, ts, openRoot(t, dir))
	if sha(out) != sha(tarball) {
		t.Fatalf("rebuilt sha256 %s, original %s (%d vs %d bytes)", sha(out), sha(tarball), len(out), len(tarball))
	}
	if !st.OK() || len(st.Notes) != 0 {
		t.Fatalf("problems %v notes %v", st.Problems, st.Notes)
	}
	var files, sized int
	var payload int64
	for _, e := range layerEntries() {
		if e.hdr.Typeflag == tar.TypeXGlobalHeader {
			files++ // tar-split records the global header as a file entry too
			continue
		}
		files++
		if len(e.body) > 0 {
			sized++
			payload += int64(len(e.body))
		}
	}
	if st.Files != files || st.FilesOpened != sized || st.FileBytes != payload {
		t.Errorf("files %d opened %d bytes %d, want %d %d %d", st.Files, st.FilesOpened, st.FileBytes, files, sized, payload)
	}
	if st.FinalEmptySegment {
		t.Error("FinalEmptySegment set for a tar-split v0.12 file")
	}
	if n := len(gunzipLines(t, ts)); st.Entries != n {
		t.Errorf("Entries %d, file has %d lines", st.Entries, n)
	}
}

// Docker <= 24 (tar-split <= v0.11.3) ends every tar-split with an empty segment.
func TestAssembleOldTrailingEmptySegment(t *testing.T) {
	tarball, ts, dir := roundTrip(t)
	lines := gunzipLines(t, ts)
	lines = append(lines, fmt.Sprintf(`{"type":2,"payload":"","position":%d}`, len(lines)))
	out, st := assemble(t, gzLines(t, lines...), openRoot(t, dir))
	if sha(out) != sha(tarball) || !st.OK() {
		t.Fatalf("sha match %v, problems %v", sha(out) == sha(tarball), st.Problems)
	}
	if !st.FinalEmptySegment {
		t.Error("FinalEmptySegment not reported")
	}
}

func TestAssembleFlippedByte(t *testing.T) {
	tarball, ts, dir := roundTrip(t)
	orig := pattern(100<<10+7, 3)
	bad := append([]byte(nil), orig...)
	bad[4242] ^= 0x01
	if err := os.WriteFile(filepath.Join(dir, "etc/big"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out, st := assemble(t, ts, openRoot(t, dir))
	if len(st.Problems) != 1 || st.ChecksumErrors != 1 {
		t.Fatalf("problems %v, want exactly one checksum error", st.Problems)
	}
	var ce *ChecksumError
	if !errors.As(st.Problems[0], &ce) {
		t.Fatalf("problem %T %v, want *ChecksumError", st.Problems[0], st.Problems[0])
	}
	if ce.Name != "etc/big" || !bytes.Equal(ce.Want, crcOf(orig)) || !bytes.Equal(ce.Got, crcOf(bad)) || ce.WantSize != int64(len(orig)) || ce.GotSize != int64(len(bad)) {
		t.Errorf("checksum error %+v", ce)
	}
	if !strings.Contains(ce.Error(), `"etc/big"`) {
		t.Errorf("message %q does not name the file", ce)
	}
	// The stream is complete and differs from the original in that one byte only.
	if len(out) != len(tarball) || sha(out) == sha(tarball) {
		t.Fatalf("rebuilt %d bytes (sha equal %v), want %d differing", len(out), sha(out) == sha(tarball), len(tarball))
	}
	diff := 0
	for i := range out {
		if out[i] != tarball[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("%d bytes differ, want 1", diff)
	}
}

func TestAssembleGrownFile(t *testing.T) {
	_, ts, dir := roundTrip(t)
	if err := os.WriteFile(filepath.Join(dir, "etc/hello"), []byte("hello world\n!"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, st := assemble(t, ts, openRoot(t, dir))
	ces := problemsOf[*ChecksumError](st)
	if len(ces) != 1 || ces[0].Name != "etc/hello" || ces[0].WantSize != 12 || ces[0].GotSize != 13 {
		t.Fatalf("problems %v", st.Problems)
	}
	if !strings.Contains(ces[0].Error(), "size want 12, got 13") {
		t.Errorf("message %q", ces[0])
	}
}

func TestAssembleMissingFile(t *testing.T) {
	tarball, ts, dir := roundTrip(t)
	if err := os.Remove(filepath.Join(dir, "etc/odd513")); err != nil {
		t.Fatal(err)
	}
	out, st := assemble(t, ts, openRoot(t, dir))
	ms := problemsOf[*MissingError](st)
	if len(st.Problems) != 1 || len(ms) != 1 || ms[0].Name != "etc/odd513" || st.Missing != 1 {
		t.Fatalf("problems %v", st.Problems)
	}
	if !errors.Is(ms[0], fs.ErrNotExist) {
		t.Errorf("%v does not match fs.ErrNotExist", ms[0])
	}
	if len(out) != len(tarball)-513 {
		t.Errorf("rebuilt %d bytes, want %d (nothing written for the missing file)", len(out), len(tarball)-513)
	}
}

// layerWithSentinel makes base/layer/root (the layer root) and base/etc/passwd
// (a sentinel outside it), and a tar-split whose file entry is named name and
// carries the sentinel's CRC, so a read of the sentinel would even pass the check.
func layerWithSentinel(t *testing.T, name string) (root, sentinel string, ts, tarball []byte) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "layer", "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := []byte("TOP SECRET outside the layer\n")
	if err := os.MkdirAll(filepath.Join(base, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	sentinel = filepath.Join(base, "etc", "passwd")
	if err := os.WriteFile(sentinel, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	tarball = buildTar(t, []tarEntry{reg("etc/passwd", secret), reg("etc/ok", []byte("inside"))})
	lines := gunzipLines(t, tarSplitOf(t, tarball))
	for i, l := range lines {
		lines[i] = strings.Replace(l, `"name":"etc/passwd"`, fmt.Sprintf(`"name":%q`, name), 1)
	}
	ts = gzLines(t, lines...)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "ok"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, sentinel, ts, tarball
}

func TestAssembleRefusesNamesClimbingOut(t *testing.T) {
	for _, name := range []string{"../../etc/passwd", "/../../etc/passwd", "etc/../../../etc/passwd"} {
		t.Run(name, func(t *testing.T) {
			root, sentinel, ts, tarball := layerWithSentinel(t, name)
			// Docker's own getter (filepath.Join) would read the sentinel: the
			// test is meaningful only if the name really reaches it.
			f, err := storage.NewPathFileGetter(root).Get(name)
			if err != nil {
				t.Fatalf("the naive join does not reach the sentinel: %v", err)
			}
			f.Close()

			spy := &spyOpener{inner: openRoot(t, root)}
			out, st := assemble(t, ts, spy)
			ups := problemsOf[*UnsafePathError](st)
			if len(st.Problems) != 1 || len(ups) != 1 || ups[0].Name != name || st.Unsafe != 1 {
				t.Fatalf("problems %v, want one UnsafePathError for %q", st.Problems, name)
			}
			for _, n := range spy.names {
				if strings.Contains(n, "passwd") {
					t.Fatalf("opener was asked for %q", n)
				}
			}
			if st.FilesOpened != 1 { // etc/ok only
				t.Errorf("FilesOpened %d, want 1", st.FilesOpened)
			}
			secret, _ := os.ReadFile(sentinel)
			if bytes.Contains(out, secret) {
				t.Fatal("the sentinel's content is in the rebuilt stream")
			}
			if len(out) != len(tarball)-len(secret) {
				t.Errorf("rebuilt %d bytes, want %d", len(out), len(tarball)-len(secret))
			}
		})
	}
}

func TestAssembleRefusesSymlinksLeavingTheRoot(t *testing.T) {
	root, sentinel, ts, _ := layerWithSentinel(t, "etc/passwd")
	secret, _ := os.ReadFile(sentinel)
	for _, target := range []string{"../../../etc/passwd", sentinel} { // relative and absolute
		t.Run(target, func(t *testing.T) {
			link := filepath.Join(root, "etc", "passwd")
			os.Remove(link)
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(link); err != nil || !bytes.Equal(b, secret) {
				t.Fatalf("the symlink does not reach the sentinel through the OS: %v", err)
			}
			out, st := assemble(t, ts, openRoot(t, root))
			ups := problemsOf[*UnsafePathError](st)
			if len(st.Problems) != 1 || len(ups) != 1 || ups[0].Name != "etc/passwd" {
				t.Fatalf("problems %v, want one UnsafePathError", st.Problems)
			}
			if bytes.Contains(out, secret) {
				t.Fatal("the sentinel's content is in the rebuilt stream")
			}
		})
	}
	// A parent directory that is a symlink out of the root is refused too.
	t.Run("parent", func(t *testing.T) {
		os.RemoveAll(filepath.Join(root, "etc"))
		if err := os.Symlink(filepath.Dir(sentinel), filepath.Join(root, "etc")); err != nil {
			t.Fatal(err)
		}
		_, st := assemble(t, ts, openRoot(t, root))
		if ups := problemsOf[*UnsafePathError](st); len(ups) != 2 { // etc/passwd and etc/ok
			t.Fatalf("problems %v, want two UnsafePathErrors", st.Problems)
		}
	})
}

func TestRootOpener(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "file"), []byte("data"), 0o644)
	os.Symlink("file", filepath.Join(dir, "a", "inroot"))
	os.Symlink("../a/file", filepath.Join(dir, "a", "inroot2"))
	os.Symlink("/etc/hostname", filepath.Join(dir, "a", "abs"))
	if err := syscall.Mkfifo(filepath.Join(dir, "a", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := openRoot(t, dir)

	for _, name := range []string{"a/file", "a/inroot", "a/inroot2", "a/sub/../file"} {
		f, err := r.Open(name)
		if err != nil {
			t.Errorf("Open(%q): %v", name, err)
			continue
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != "data" {
			t.Errorf("Open(%q) read %q", name, b)
		}
	}
	for _, name := range []string{"../x", "a/../../x", "a/abs"} {
		_, err := r.Open(name)
		var up *UnsafePathError
		if !errors.As(err, &up) {
			t.Errorf("Open(%q) = %v, want *UnsafePathError", name, err)
		}
	}
	// A FIFO would block a plain open/read forever; a directory cannot be read.
	for _, name := range []string{"a/fifo", "a/sub"} {
		_, err := r.Open(name)
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("Open(%q) = %v, want ErrNotRegular", name, err)
		}
	}
	if _, err := r.Open("a/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v", err)
	}
}

func TestChainOpener(t *testing.T) {
	tarball, ts, all := roundTrip(t)
	_ = all
	// Split the files between an upper and a lower directory, as overlay2 would.
	upper, lower := t.TempDir(), t.TempDir()
	extract(t, tarball, upper)
	extract(t, tarball, lower)
	for _, n := range []string{"etc/big", "etc/hello", "opq/z"} {
		os.Remove(filepath.Join(upper, n))
	}
	os.Remove(filepath.Join(lower, "etc/exact512"))
	out, st := assemble(t, ts, ChainOpener(openRoot(t, upper), openRoot(t, lower)))
	if sha(out) != sha(tarball) || !st.OK() {
		t.Fatalf("chain rebuild: sha equal %v, problems %v", sha(out) == sha(tarball), st.Problems)
	}

	// An object in the upper dir that is not a file (like an overlay whiteout)
	// hides the lower one: the chain must not fall through.
	os.Remove(filepath.Join(upper, "etc/exact512"))
	if err := syscall.Mkfifo(filepath.Join(upper, "etc/exact512"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(lower, "etc/exact512"), pattern(512, 1), 0o644)
	_, st = assemble(t, ts, ChainOpener(openRoot(t, upper), openRoot(t, lower)))
	fes := problemsOf[*FileError](st)
	if len(st.Problems) != 1 || len(fes) != 1 || fes[0].Name != "etc/exact512" || !errors.Is(fes[0], ErrNotRegular) {
		t.Fatalf("problems %v, want one ErrNotRegular FileError for etc/exact512", st.Problems)
	}

	if _, err := ChainOpener(openRoot(t, t.TempDir()), openRoot(t, t.TempDir())).Open("x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty chain: %v", err)
	}
}

// patchSize rewrites the size field of the header block at off and fixes its checksum.
func patchSize(t *testing.T, tarball []byte, off int, size int64) {
	t.Helper()
	blk := tarball[off : off+512]
	copy(blk[124:136], fmt.Sprintf("%011o\x00", size))
	copy(blk[148:156], "        ")
	var sum int64
	for _, c := range blk {
		sum += int64(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// FORMATS 2.7: a header-only type with a non-zero size field.
func TestAssembleHeaderOnlyWithSize(t *testing.T) {
	tarball := buildTar(t, []tarEntry{dir("d/"), reg("d/f", []byte("file"))})
	patchSize(t, tarball, 0, 10) // d/ now claims 10 bytes, and carries none
	ts := tarSplitOf(t, tarball)
	root := t.TempDir()
	extract(t, tarball, root)

	// tar-split's own assembler opens the directory and fails.
	var sink bytes.Buffer
	if err := asm.WriteOutputTarStream(storage.NewPathFileGetter(root), storage.NewJSONUnpacker(bytes.NewReader(gunzipAll(t, ts))), &sink); err == nil {
		t.Fatal("tar-split rebuilt a header-only entry with a size; the test premise is wrong")
	}

	spy := &spyOpener{inner: openRoot(t, root)}
	out, st := assemble(t, ts, spy)
	if !st.OK() || len(st.Notes) != 1 || st.Notes[0].Name != "d/" || !strings.Contains(st.Notes[0].Reason, "header type '5'") {
		t.Fatalf("problems %v notes %v, want one note for d/", st.Problems, st.Notes)
	}
	if len(spy.names) != 1 || spy.names[0] != "d/f" {
		t.Errorf("opened %v, want only d/f", spy.names)
	}
	if sha(out) != sha(tarball) {
		t.Error("rebuilt stream differs: nothing should be written for a header-only entry")
	}
}

func gunzipAll(t *testing.T, gzb []byte) []byte {
	return []byte(strings.Join(gunzipLines(t, gzb), "\n") + "\n")
}

func TestAssemblePlnkNote(t *testing.T) {
	tarball := buildTar(t, []tarEntry{dir(".wh..wh.plnk/"), reg(".wh..wh.plnk/1234.5678", []byte("staged")), reg("a", []byte("a"))})
	ts := tarSplitOf(t, tarball)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "a"), []byte("a"), 0o644)
	_, st := assemble(t, ts, openRoot(t, root))
	if !st.OK() || len(st.Notes) != 1 || st.Notes[0].Name != ".wh..wh.plnk/1234.5678" {
		t.Fatalf("problems %v notes %v, want one plnk note and no MissingError", st.Problems, st.Notes)
	}
}

func TestAssembleDuplicatePath(t *testing.T) {
	lines := []string{
		record(t, storage.Entry{Type: storage.FileType, Name: "a/b", Position: 0}),
		record(t, storage.Entry{Type: storage.FileType, Name: "./a/b/", Position: 1}),
		record(t, storage.Entry{Type: storage.SegmentType, Payload: make([]byte, 1024), Position: 2}),
	}
	out, st := assemble(t, gzLines(t, lines...), missingOpener{})
	ds := problemsOf[*DuplicatePathError](st)
	if len(st.Problems) != 1 || len(ds) != 1 || ds[0].Name != "./a/b/" || ds[0].Position != 1 || !errors.Is(ds[0], ErrDuplicatePath) {
		t.Fatalf("problems %v", st.Problems)
	}
	if len(out) != 1024 {
		t.Errorf("rebuilt %d bytes, want the 1024-byte segment", len(out))
	}
}

func TestAssembleProblemsAreCapped(t *testing.T) {
	var lines []string
	crc := crcOf([]byte("x"))
	n := MaxProblems + 5
	for i := range n {
		lines = append(lines, record(t, storage.Entry{Type: storage.FileType, Name: fmt.Sprintf("f%d", i), Size: 1, Payload: crc, Position: i}))
	}
	_, st := assemble(t, gzLines(t, lines...), missingOpener{})
	if st.Missing != n || len(st.Problems) != MaxProblems || st.Dropped != 5 || st.OK() {
		t.Fatalf("missing %d problems %d dropped %d", st.Missing, len(st.Problems), st.Dropped)
	}
}

type failingWriter struct {
	n   int
	err error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		n := w.n
		w.n = 0
		return n, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

func TestAssembleWriterErrorAborts(t *testing.T) {
	_, ts, dir := roundTrip(t)
	boom := errors.New("disk full")
	for _, at := range []int{0, 700, 50 << 10} { // in a segment, in a file
		w := &failingWriter{n: at, err: boom}
		st, err := Assemble(context.Background(), bytes.NewReader(ts), openRoot(t, dir), w)
		if !errors.Is(err, boom) {
			t.Errorf("fail at %d: err %v, want the writer's error", at, err)
		}
		if st.BytesWritten != int64(at) {
			t.Errorf("fail at %d: BytesWritten %d", at, st.BytesWritten)
		}
	}
}

func TestAssembleCanceled(t *testing.T) {
	_, ts, dir := roundTrip(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Assemble(ctx, bytes.NewReader(ts), openRoot(t, dir), io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
}

func TestAssembleMalformedTarSplit(t *testing.T) {
	_, ts, dir := roundTrip(t)
	_, err := Assemble(context.Background(), bytes.NewReader(ts[:len(ts)/2]), openRoot(t, dir), io.Discard)
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "truncated gzip") {
		t.Fatalf("err %v, want a truncated-gzip FormatError", err)
	}
}
