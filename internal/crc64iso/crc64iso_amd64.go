//go:build amd64 && !purego

package crc64iso

import (
	"hash/crc64"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasCLMUL: the assembly needs PCLMULQDQ and SSE4.1 (PINSRQ, PEXTRQ).
var hasCLMUL = cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41 && cpu.X86.HasSSE2

// foldAsm folds p (len a positive multiple of 128, 16-byte aligned) into crc
// with the constants k. It is crc64.Update's contract: crc in and out are
// the finished (inverted) values.
//
//go:noescape
func foldAsm(crc uint64, p []byte, k *[18]uint64) uint64

// updateCLMUL is Update's fast path (correct for any length): the unaligned head and the
// tail shorter than 128 bytes through hash/crc64, the rest through foldAsm.
func updateCLMUL(crc uint64, p []byte) uint64 {
	if head := min(int(-uintptr(unsafe.Pointer(unsafe.SliceData(p)))&15), len(p)); head > 0 {
		crc = crc64.Update(crc, table, p[:head])
		p = p[head:]
	}
	if n := len(p) &^ 127; n > 0 {
		crc = foldAsm(crc, p[:n], &isoK)
		p = p[n:]
	}
	return crc64.Update(crc, table, p)
}
