//go:build amd64 && !purego

package crc64iso

import (
	"hash/crc64"

	"golang.org/x/sys/cpu"
)

// hasCLMUL: the assembly needs PCLMULQDQ and SSE4.1 (PINSRQ, PEXTRQ).
var hasCLMUL = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41 && cpu.X86.HasSSE2

// foldAsm folds p (len a multiple of 16; shorter than 16 returns crc) into
// crc with the constants k. It is crc64.Update's contract: crc in and out are
// the finished (inverted) values.
//
//go:noescape
func foldAsm(crc uint64, p []byte, k *[18]uint64) uint64

// updateCLMUL is Update's fast path (correct for any length): whole 16-byte
// blocks through foldAsm, the last len(p)%16 bytes through hash/crc64.
func updateCLMUL(crc uint64, p []byte) uint64 {
	if n := len(p) &^ 15; n > 0 {
		crc = foldAsm(crc, p[:n], &isoK)
		p = p[n:]
	}
	return crc64.Update(crc, table, p)
}
