package verify

import (
	"context"

	"github.com/layercheck/layercheck/report"
	"github.com/layercheck/layercheck/source"
)

// VerifyNamed verifies sources named by the caller (paths, references) into
// b, opening them with open batchSize at a time: the layers of a batch share
// one pool (VerifyAll), and no more than a batch is open at once, which bounds
// the files open and the metadata whole-compressed archives keep. A source
// that cannot be opened or checked is a problem naming it, and the others go
// on. It returns the first such error, or the cancellation.
func (v *Verifier) VerifyNamed(ctx context.Context, names []string, open func(string) (source.Source, error), batchSize int, b *report.Builder) error {
	var firstErr error
	fail := func(name string, err error) {
		b.Problem(report.Subject{Path: name}, "%v", err)
		if firstErr == nil {
			firstErr = err
		}
	}
	batchSize = max(batchSize, 1)
	for start := 0; start < len(names) && ctx.Err() == nil; start += batchSize {
		var srcs []source.Source
		var opened []string
		for _, name := range names[start:min(start+batchSize, len(names))] {
			src, err := open(name)
			if err != nil {
				fail(name, err)
				continue
			}
			srcs, opened = append(srcs, src), append(opened, name)
		}
		errs := v.VerifyAll(ctx, srcs, b)
		for _, src := range srcs {
			src.Close()
		}
		for i, err := range errs {
			if err != nil && ctx.Err() == nil {
				fail(opened[i], err)
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}
