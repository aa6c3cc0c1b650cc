package main

import (
	"fmt"

	"github.com/alecthomas/kong"
	humanize "github.com/dustin/go-humanize"
)

// byteSize is a size flag: a number of bytes, or a size with a unit as
// people type it (500MB, 2GiB, 1.5 G), parsed by go-humanize (MB = 10^6
// bytes, MiB = 2^20).
type byteSize int64

// Decode implements kong.MapperValue.
func (b *byteSize) Decode(ctx *kong.DecodeContext) error {
	var s string
	if err := ctx.Scan.PopValueInto("size", &s); err != nil {
		return err
	}
	return b.set(s)
}

func (b *byteSize) set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n > 1<<62 {
		return fmt.Errorf("%q is not a size (bytes, or with a unit: 500MB, 2GiB)", s)
	}
	*b = byteSize(n)
	return nil
}
