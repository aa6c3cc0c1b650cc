package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/layercheck/layercheck/fixtures"
	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
	"github.com/layercheck/layercheck/source/dockerarchive"
	"github.com/layercheck/layercheck/source/ocilayout"
	"github.com/layercheck/layercheck/verify"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// input is one fixture written to disk, opened afresh for every run (a
// whole-compressed archive can be streamed only once).
type input struct {
	name string
	path string
	dir  bool
	// brokenLayers makes opening any blob of more than 1 KiB fail (a
	// problem "reading layer"); noTargets makes Targets fail (an error).
	brokenLayers, noTargets bool
}

// faultySource injects the failures of an input.
type faultySource struct {
	source.Source
	in input
}

func (s faultySource) Targets(ctx context.Context) ([]source.Target, error) {
	if s.in.noTargets {
		return nil, fmt.Errorf("%s: injected failure to list targets", s.in.name)
	}
	return s.Source.Targets(ctx)
}

func (s faultySource) Blob(ctx context.Context, d ocispec.Descriptor) (source.Blob, error) {
	b, err := s.Source.Blob(ctx, d)
	if err != nil || !s.in.brokenLayers || b.Size() <= 1024 {
		return b, err
	}
	return brokenBlob{b}, nil
}

type brokenBlob struct{ source.Blob }

func (b brokenBlob) Open(context.Context) (io.ReadCloser, error) {
	return nil, errors.New("injected read failure")
}

func (in input) open(t testing.TB) source.Source {
	t.Helper()
	var src source.Source
	var err error
	if in.dir {
		src, err = ocilayout.Open(in.path, ocilayout.Options{})
	} else {
		src, err = dockerarchive.Open(in.path, dockerarchive.Options{})
	}
	if err != nil {
		t.Fatalf("%s: %v", in.name, err)
	}
	t.Cleanup(func() { src.Close() })
	if in.brokenLayers || in.noTargets {
		return faultySource{Source: src, in: in}
	}
	return src
}

func writeFixture(t testing.TB, dir, name string, fx *fixtures.Fixture) input {
	t.Helper()
	sub := filepath.Join(dir, fmt.Sprintf("%03d", len(mustReadDir(t, dir))))
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := fx.Write(sub)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return input{name: name, path: p, dir: fx.Format.IsDir()}
}

func mustReadDir(t testing.TB, dir string) []os.DirEntry {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// manyInputs writes the good base image in every format (and gzip- and
// zstd-wrapped archives, which are streamed by Scan), then every corruption
// in every format it applies to: dozens of sources, all named
// example.com/app:1, whose findings, problems and errors differ.
func manyInputs(t testing.TB) []input {
	t.Helper()
	dir := t.TempDir()
	var ins []input
	b, err := fixtures.Build(fixtures.BaseImage())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures.Formats() {
		for _, wrap := range []string{fixtures.None, fixtures.Gzip, fixtures.Zstd} {
			if wrap != fixtures.None && f.IsDir() {
				continue
			}
			fx, err := fixtures.NewFixture(f, b)
			if err != nil {
				t.Fatal(err)
			}
			fx.Wrap = wrap
			ins = append(ins, writeFixture(t, dir, "good/"+string(f)+"/"+wrap, fx))
		}
	}
	// Two sources that cannot be read whole: one whose layers fail to open
	// (problems), one whose targets cannot be listed (an error).
	// (The wrapper hides Scanner: only inputs that are not wrapped whole.)
	for _, in := range ins {
		if in.name == "good/"+string(fixtures.FormatDockerOCI)+"/none" || in.name == "good/"+string(fixtures.FormatOCILayout)+"/none" {
			in.name += "/broken-layers"
			in.brokenLayers = true
			ins = append(ins, in)
		}
	}
	in := ins[0]
	in.name += "/no-targets"
	in.noTargets = true
	ins = append(ins, in)
	for _, c := range fixtures.Corruptions() {
		for _, f := range fixtures.Formats() {
			if !c.AppliesTo(f) {
				continue
			}
			fx, err := c.Make(f)
			if err != nil {
				t.Fatalf("%s/%s: %v", c.Name, f, err)
			}
			in := writeFixture(t, dir, c.Name+"/"+string(f), fx)
			// Inputs that cannot even be opened are the caller's problem
			// (verifySources reports them); keep the rest.
			var src source.Source
			if in.dir {
				src, err = ocilayout.Open(in.path, ocilayout.Options{})
			} else {
				src, err = dockerarchive.Open(in.path, dockerarchive.Options{})
			}
			if err != nil {
				continue
			}
			src.Close()
			ins = append(ins, in)
		}
	}
	return ins
}

// reportJSON renders a finished report for comparison.
func reportJSON(t testing.TB, b *report.Builder) string {
	t.Helper()
	out, err := json.MarshalIndent(b.Finish("tar", "many", "test"), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestVerifyAllSameAsSequential: VerifyAll over many sources gives the
// report (images, findings, problems, in the same order) and the per-source
// errors that Verify gives over each source in turn, with and without the
// layer analysis.
func TestVerifyAllSameAsSequential(t *testing.T) {
	ins := manyInputs(t)
	if len(ins) < 20 {
		t.Fatalf("only %d inputs", len(ins))
	}
	for _, opts := range []verify.Options{
		{Jobs: 2},
		{Jobs: 3, Analysis: &verify.AnalysisOptions{}},
	} {
		t.Run(fmt.Sprintf("jobs=%d,analysis=%v", opts.Jobs, opts.Analysis != nil), func(t *testing.T) {
			ctx := context.Background()
			seqB := &report.Builder{}
			var seqErrs []string
			nErr := 0
			for _, in := range ins {
				err := verify.New(opts).Verify(ctx, in.open(t), seqB)
				seqErrs = append(seqErrs, errString(err))
				if err != nil {
					nErr++
				}
			}
			var srcs []source.Source
			for _, in := range ins {
				srcs = append(srcs, in.open(t))
			}
			allB := &report.Builder{}
			errs := verify.New(opts).VerifyAll(ctx, srcs, allB)
			if len(errs) != len(ins) {
				t.Fatalf("%d errors for %d sources", len(errs), len(ins))
			}
			for i, in := range ins {
				if got := errString(errs[i]); got != seqErrs[i] {
					t.Errorf("%s: VerifyAll error %q, Verify error %q", in.name, got, seqErrs[i])
				}
			}
			seq, all := reportJSON(t, seqB), reportJSON(t, allB)
			if seq != all {
				t.Errorf("VerifyAll's report differs from the sequential one:\n%s", firstDiff(seq, all))
			}
			// The comparison means something only if the report carries
			// findings of several kinds, problems and errors.
			rep := seqB.Finish("tar", "many", "test")
			checks := map[report.Check]bool{}
			for _, f := range rep.Findings {
				checks[f.Check] = true
			}
			if len(rep.Images) < len(ins)/2 || len(checks) < 10 || len(rep.Problems) == 0 || nErr == 0 {
				t.Errorf("weak comparison: %d images, %d check IDs, %d problems, %d errors", len(rep.Images), len(checks), len(rep.Problems), nErr)
			}
			if opts.Analysis != nil {
				analysed := 0
				for _, im := range rep.Images {
					if im.Analysis != nil {
						analysed++
					}
				}
				if analysed == 0 {
					t.Error("no image carries an analysis")
				}
			}
		})
	}
}

// firstDiff shows where two long texts part.
func firstDiff(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-400)
	return fmt.Sprintf("sequential: …%s…\nVerifyAll:  …%s…", a[lo:min(len(a), i+400)], b[lo:min(len(b), i+400)])
}

// TestVerifyAllErrorsStayPerSource: a source that cannot be checked at all
// (here: --image selects nothing in it) gets its error, and the sources
// before and after it are verified as if it were not there.
func TestVerifyAllErrorsStayPerSource(t *testing.T) {
	dir := t.TempDir()
	var ins []input
	for i, f := range []fixtures.Format{fixtures.FormatDockerOCI, fixtures.FormatOCILayout, fixtures.FormatDockerLegacy} {
		img := fixtures.BaseImage()
		img.Name = fmt.Sprintf("example.com/app%d:1", i)
		if i == 1 {
			img.Name = "example.com/other:1"
		}
		b, err := fixtures.Build(img)
		if err != nil {
			t.Fatal(err)
		}
		fx, err := fixtures.NewFixture(f, b)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, writeFixture(t, dir, img.Name, fx))
	}
	opts := verify.Options{Jobs: 2, Images: []string{"example.com/app0:1", "example.com/app2:1"}}
	allB := &report.Builder{}
	errs := verify.New(opts).VerifyAll(context.Background(), []source.Source{ins[0].open(t), ins[1].open(t), ins[2].open(t)}, allB)
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("errors of the good sources: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil {
		t.Fatal("the source --image selects nothing in gave no error")
	}
	rep := allB.Finish("tar", "x", "test")
	if len(rep.Images) != 2 || rep.Images[0].Name != "example.com/app0:1" || rep.Images[1].Name != "example.com/app2:1" {
		t.Fatalf("images: %+v", rep.Images)
	}
	for _, im := range rep.Images {
		if len(im.Layers) != 3 || im.Status != report.StatusOK {
			t.Errorf("%s: %d layers, status %s", im.Name, len(im.Layers), im.Status)
		}
		for _, l := range im.Layers {
			if l.DiffID == "" {
				t.Errorf("%s layer %d was not read", im.Name, l.Index)
			}
		}
	}
	// The same as each one alone.
	seqB := &report.Builder{}
	for i, in := range ins {
		err := verify.New(opts).Verify(context.Background(), in.open(t), seqB)
		if errString(err) != errString(errs[i]) {
			t.Errorf("%s: Verify error %v, VerifyAll error %v", in.name, err, errs[i])
		}
	}
	if seq, all := reportJSON(t, seqB), reportJSON(t, allB); seq != all {
		t.Errorf("reports differ:\n%s", firstDiff(seq, all))
	}
}

// BenchmarkVerifyMany verifies 20 small images of 3 gzip layers each (OCI
// layouts, about 3 MiB of tar each) with two layer jobs: one Verify after
// another, and one VerifyAll.
func BenchmarkVerifyMany(b *testing.B) {
	dir := b.TempDir()
	var layouts []string
	for i := 0; i < 20; i++ {
		res, err := fixtures.BenchImage(filepath.Join(dir, fmt.Sprint(i)), 3<<20, 3, uint64(i+1))
		if err != nil {
			b.Fatal(err)
		}
		layouts = append(layouts, res.OCILayout)
	}
	open := func(b *testing.B) []source.Source {
		var srcs []source.Source
		for _, p := range layouts {
			src, err := ocilayout.Open(p, ocilayout.Options{})
			if err != nil {
				b.Fatal(err)
			}
			srcs = append(srcs, src)
		}
		return srcs
	}
	closeAll := func(srcs []source.Source) {
		for _, s := range srcs {
			s.Close()
		}
	}
	check := func(b *testing.B, rb *report.Builder) {
		rep := rb.Finish("layout", "bench", "bench")
		if len(rep.Images) != 20 || rep.Summary.Layers != 60 || len(rep.Findings) != 0 || len(rep.Problems) != 0 {
			b.Fatalf("%d images, %d layers, %d findings, %d problems", len(rep.Images), rep.Summary.Layers, len(rep.Findings), len(rep.Problems))
		}
	}
	v := verify.New(verify.Options{Jobs: 2})
	b.Run("sequential", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			srcs := open(b)
			rb := &report.Builder{}
			for _, s := range srcs {
				if err := v.Verify(context.Background(), s, rb); err != nil {
					b.Fatal(err)
				}
			}
			closeAll(srcs)
			check(b, rb)
		}
	})
	b.Run("all", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			srcs := open(b)
			rb := &report.Builder{}
			for _, err := range v.VerifyAll(context.Background(), srcs, rb) {
				if err != nil {
					b.Fatal(err)
				}
			}
			closeAll(srcs)
			check(b, rb)
		}
	})
}

// slowSource makes every blob of a source take a fixed time to start, as a
// registry's round trip does.
type slowSource struct {
	source.Source
	delay time.Duration
}

func (s slowSource) Blob(ctx context.Context, d ocispec.Descriptor) (source.Blob, error) {
	b, err := s.Source.Blob(ctx, d)
	if err != nil {
		return nil, err
	}
	return slowBlob{Blob: b, delay: s.delay}, nil
}

type slowBlob struct {
	source.Blob
	delay time.Duration
}

func (b slowBlob) Open(ctx context.Context) (io.ReadCloser, error) {
	select {
	case <-time.After(b.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return b.Blob.Open(ctx)
}

// BenchmarkVerifyManyLatency is BenchmarkVerifyMany where the wait is not
// the CPU: 20 layouts of the fixtures' small 3-layer base image, whose blobs
// each take 20 ms to start (a registry's round trip), with two layer jobs.
// One image after another waits two rounds per image (3 layers, 2 readers);
// VerifyAll 30 rounds in all.
func BenchmarkVerifyManyLatency(b *testing.B) {
	dir := b.TempDir()
	var ins []input
	for i := 0; i < 20; i++ {
		img := fixtures.BaseImage()
		img.Name = fmt.Sprintf("example.com/app%d:1", i)
		built, err := fixtures.Build(img)
		if err != nil {
			b.Fatal(err)
		}
		fx, err := fixtures.NewFixture(fixtures.FormatOCILayout, built)
		if err != nil {
			b.Fatal(err)
		}
		ins = append(ins, writeFixture(b, dir, img.Name, fx))
	}
	open := func(b *testing.B) []source.Source {
		var srcs []source.Source
		for _, in := range ins {
			srcs = append(srcs, slowSource{Source: in.open(b), delay: 20 * time.Millisecond})
		}
		return srcs
	}
	check := func(b *testing.B, rb *report.Builder) {
		if rep := rb.Finish("layout", "bench", "bench"); len(rep.Images) != 20 || rep.Summary.Layers != 60 || len(rep.Problems) != 0 {
			b.Fatalf("%d images, %d layers, %d problems", len(rep.Images), rep.Summary.Layers, len(rep.Problems))
		}
	}
	v := verify.New(verify.Options{Jobs: 2})
	b.Run("sequential", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			srcs := open(b)
			rb := &report.Builder{}
			for _, s := range srcs {
				if err := v.Verify(context.Background(), s, rb); err != nil {
					b.Fatal(err)
				}
			}
			check(b, rb)
		}
	})
	b.Run("all", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			srcs := open(b)
			rb := &report.Builder{}
			for _, err := range v.VerifyAll(context.Background(), srcs, rb) {
				if err != nil {
					b.Fatal(err)
				}
			}
			check(b, rb)
		}
	})
}
