package crc64iso

import (
	"hash"
	"hash/crc64"
)

// Size is the size of a CRC-64 checksum in bytes.
const Size = 8

// table is hash/crc64's ISO table (shared with tar-split's storage.CRCTable,
// which hash/crc64 hands out for crc64.ISO).
var table = crc64.MakeTable(crc64.ISO)

// minCLMUL is the shortest input given to the carry-less multiplication
// path: one 16-byte block (it is already 3 times faster than hash/crc64's
// byte loop there); shorter input goes byte by byte either way.
const minCLMUL = 16

// useCLMUL is whether Update may take the carry-less multiplication path; a
// variable so tests can force the generic path.
var useCLMUL = hasCLMUL

// Update returns the result of adding the bytes in p to crc: exactly
// hash/crc64.Update(crc, crc64.MakeTable(crc64.ISO), p).
func Update(crc uint64, p []byte) uint64 {
	if useCLMUL && len(p) >= minCLMUL {
		return updateCLMUL(crc, p)
	}
	return crc64.Update(crc, table, p)
}

// Checksum returns the CRC-64/ISO of data, as crc64.Checksum(data, ISO table).
func Checksum(data []byte) uint64 { return Update(0, data) }

// New returns a hash.Hash64 computing the CRC-64 with the ISO polynomial, as
// crc64.New(crc64.MakeTable(crc64.ISO)) does: Sum appends the value
// big-endian, Reset starts over.
func New() hash.Hash64 { return new(digest) }

type digest struct{ crc uint64 }

func (d *digest) Size() int      { return Size }
func (d *digest) BlockSize() int { return 1 }
func (d *digest) Reset()         { d.crc = 0 }
func (d *digest) Sum64() uint64  { return d.crc }

func (d *digest) Write(p []byte) (int, error) {
	d.crc = Update(d.crc, p)
	return len(p), nil
}

func (d *digest) Sum(in []byte) []byte {
	s := d.crc
	return append(in, byte(s>>56), byte(s>>48), byte(s>>40), byte(s>>32), byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}
