package crc64iso

import (
	"bytes"
	"hash/crc64"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// want is the reference: hash/crc64 with the ISO table.
func want(crc uint64, p []byte) uint64 { return crc64.Update(crc, table, p) }

// bothPaths runs f with the carry-less multiplication path (where the
// machine has it) and with the generic path forced.
func bothPaths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	t.Run("fast", func(t *testing.T) {
		if !hasCLMUL {
			t.Skip("no PCLMULQDQ/SSE4.1 path on this machine or architecture")
		}
		f(t)
	})
	t.Run("generic", func(t *testing.T) {
		defer func(old bool) { useCLMUL = old }(useCLMUL)
		useCLMUL = false
		f(t)
	})
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestEveryLength(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		buf := randBytes(r, 4096+16)
		for off := 0; off < 16; off += 5 { // aligned and odd starting addresses
			for n := 0; n <= 4096; n++ {
				p := buf[off : off+n]
				crc := r.Uint64()
				if got, w := Update(crc, p), want(crc, p); got != w {
					t.Fatalf("Update(%#x, %d bytes at offset %d) = %#x, want %#x", crc, n, off, got, w)
				}
				if got, w := Update(0, p), want(0, p); got != w {
					t.Fatalf("Update(0, %d bytes at offset %d) = %#x, want %#x", n, off, got, w)
				}
				if useCLMUL { // the assembly below Update's threshold too
					if got, w := updateCLMUL(crc, p), want(crc, p); got != w {
						t.Fatalf("updateCLMUL(%#x, %d bytes at offset %d) = %#x, want %#x", crc, n, off, got, w)
					}
				}
			}
		}
	})
}

func TestLarge(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		buf := randBytes(r, 4<<20+64)
		sizes := []int{1 << 20, 4 << 20, 128*1000 + 7}
		for range 12 {
			sizes = append(sizes, r.IntN(4<<20))
		}
		for _, n := range sizes {
			off := r.IntN(64)
			p := buf[off : off+n]
			crc := r.Uint64()
			if got, w := Update(crc, p), want(crc, p); got != w {
				t.Fatalf("Update(%#x, %d bytes at offset %d) = %#x, want %#x", crc, n, off, got, w)
			}
		}
	})
}

func TestUniformData(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		for _, fill := range []byte{0x00, 0xff} {
			buf := bytes.Repeat([]byte{fill}, 1<<20+300)
			for _, n := range []int{0, 1, 127, 128, 255, 256, 257, 1000, 4096, 65536, 1<<20 + 300} {
				for _, crc := range []uint64{0, ^uint64(0), 0x0123456789abcdef} {
					if got, w := Update(crc, buf[:n]), want(crc, buf[:n]); got != w {
						t.Fatalf("Update(%#x, %d bytes of %#x) = %#x, want %#x", crc, n, fill, got, w)
					}
				}
			}
		}
	})
}

func TestChained(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		buf := randBytes(r, 200000)
		whole := want(0, buf)
		for range 300 {
			// split buf at random points, some tiny, some large
			crc, h := uint64(0), New()
			for p := buf; len(p) > 0; {
				n := r.IntN(min(len(p), 1+r.IntN(70000))) + 1
				crc = Update(crc, p[:n])
				h.Write(p[:n])
				p = p[n:]
			}
			if crc != whole || h.Sum64() != whole {
				t.Fatalf("chained Update = %#x, hash = %#x; want %#x", crc, h.Sum64(), whole)
			}
		}
	})
}

func TestHash(t *testing.T) {
	bothPaths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		data := randBytes(r, 10000)
		h, ref := New(), crc64.New(table)
		if h.Size() != ref.Size() || h.BlockSize() != ref.BlockSize() {
			t.Fatalf("Size/BlockSize = %d/%d, want %d/%d", h.Size(), h.BlockSize(), ref.Size(), ref.BlockSize())
		}
		for round := range 2 {
			h.Write(data[:3000])
			h.Write(data[3000:])
			ref.Write(data)
			if got, w := h.Sum([]byte("x")), ref.Sum([]byte("x")); !bytes.Equal(got, w) {
				t.Fatalf("round %d: Sum = %x, want %x", round, got, w)
			}
			if h.Sum64() != ref.Sum64() {
				t.Fatalf("round %d: Sum64 = %#x, want %#x", round, h.Sum64(), ref.Sum64())
			}
			h.Reset()
			ref.Reset()
		}
		if got := Checksum([]byte("123456789")); got != 0xb90956c775a41001 {
			t.Fatalf("Checksum(123456789) = %#x, want CRC-64/GO-ISO's check value 0xb90956c775a41001", got)
		}
	})
}

func FuzzUpdate(f *testing.F) {
	f.Add(uint64(0), []byte("123456789"), uint8(0))
	f.Add(^uint64(0), bytes.Repeat([]byte{0xff}, 1000), uint8(3))
	f.Add(uint64(0x1234), bytes.Repeat([]byte{0}, 300), uint8(15))
	f.Fuzz(func(t *testing.T, crc uint64, data []byte, off uint8) {
		if int(off) > len(data) {
			off = 0
		}
		p := data[off:]
		if got, w := Update(crc, p), want(crc, p); got != w {
			t.Fatalf("Update(%#x, %d bytes at offset %d) = %#x, want %#x", crc, len(p), off, got, w)
		}
	})
}

// xnmod returns x^n mod P in the normal form (bit i is the coefficient of
// x^i), P being x^64 plus poly.
func xnmod(n int, poly uint64) uint64 {
	r := uint64(1)
	for range n {
		carry := r >> 63
		r <<= 1
		if carry != 0 {
			r ^= poly
		}
	}
	return r
}

// barrettMu returns floor(x^128 / P) in the normal form: its x^64 coefficient
// (always 1) and the lower 64.
func barrettMu(poly uint64) (hi, lo uint64) {
	var q [3]uint64
	var rem uint64
	for d := 128; d >= 0; d-- {
		in := uint64(0)
		if d == 128 {
			in = 1
		}
		top := rem >> 63
		rem = rem<<1 | in
		if top != 0 {
			rem ^= poly
			q[d/64] |= 1 << (d % 64)
		}
	}
	return q[1], q[0]
}

// constants computes the table of the amd64 path for a reflected
// polynomial, as constants.go documents it.
func constants(reflected uint64) [18]uint64 {
	poly := bits.Reverse64(reflected)
	var k [18]uint64
	for i, d := range []int{128, 112, 96, 80, 64, 48, 32, 16} {
		k[2*i] = bits.Reverse64(xnmod(8*d+63, poly))
		k[2*i+1] = bits.Reverse64(xnmod(8*d-1, poly))
	}
	hi, lo := barrettMu(poly)
	k[16] = bits.Reverse64(lo)<<1 | hi
	k[17] = reflected<<1 | 1
	return k
}

func TestConstants(t *testing.T) {
	if got := constants(crc64.ISO); got != isoK {
		t.Errorf("constants computed from the ISO polynomial:\n%#016x\nconstants.go has:\n%#016x", got, isoK)
	}
	// The same formulas give the NVME constants written out in
	// github.com/minio/crc64nvme v1.1.1's crc64_amd64.s, in this table's
	// order (loop pair, the seven tail pairs, mu, P).
	nvme := [18]uint64{
		0xa1ca681e733f9c40, 0x5f852fb61e8d92dc,
		0xd083dd594d96319d, 0x946588403d4adcbc,
		0x3c255f5ebc414423, 0x34f5a24e22d66e90,
		0x7b0ab10dd0f809fe, 0x03363823e6e791e5,
		0x0c32cdb31e18a84a, 0x62242240ace5045a,
		0xbdd7ac0ee1a4a0f0, 0xa3ffdc1fe8e82a8b,
		0xb0bc2e589204f500, 0xe1e0bb9d45d7a44c,
		0xeadc41fd2ba3d420, 0x21e9761e252621ac,
		0x27ecfa329aef9f77, 0x34d926535897936b,
	}
	if got := constants(0x9a6c9329ac4bc9b5); got != nvme {
		t.Errorf("constants computed from the NVME polynomial:\n%#016x\nminio/crc64nvme has:\n%#016x", got, nvme)
	}
}

var sink uint64

func BenchmarkUpdate(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"512B", 512}, {"4KiB", 4 << 10}, {"64KiB", 64 << 10}, {"1MiB", 1 << 20}} {
		data := randBytes(rand.New(rand.NewPCG(9, 10)), size.n)
		b.Run("crc64iso/"+size.name, func(b *testing.B) {
			if !hasCLMUL {
				b.Skip("no carry-less multiplication path here")
			}
			b.SetBytes(int64(size.n))
			for b.Loop() {
				sink = Update(sink, data)
			}
		})
		b.Run("hash-crc64/"+size.name, func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				sink = crc64.Update(sink, table, data)
			}
		})
	}
}
