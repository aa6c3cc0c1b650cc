package crc64iso

// isoK holds the carry-less multiplication constants of the amd64 path for
// the ISO polynomial. All are in tar-split's (and hash/crc64's) bit-reflected
// form, rev(v) being v with its 64 bits reversed and P being
// x^64 + x^4 + x^3 + x + 1:
//
//	isoK[2i], isoK[2i+1]  fold a 16-byte lane forward by d bytes, d = 128, 112, 96, ..., 16:
//	                      rev(x^(8d+63) mod P), rev(x^(8d-1) mod P)
//	isoK[16]              Barrett's mu, floor(x^128 / P), 65 bits reflected, its x^0 term dropped
//	isoK[17]              P, 65 bits reflected, its x^0 term dropped
//
// TestConstants recomputes them from the polynomial (and the same formulas
// reproduce the NVME constants of github.com/minio/crc64nvme).
var isoK = [18]uint64{
	0xf501b0000001b000, 0xb001000000010000, // fold by 128 bytes (the main loop)
	0x771db6db6db71c71, 0xe014514514501501, // 112
	0x1ab1ab1ab1aab001, 0xa101101101110001, // 96
	0x6aab71daab700001, 0xf445014445000001, // 80
	0x01b001b1b0000001, 0xb100010100000001, // 64
	0x76db6c7000000001, 0xe145150000000001, // 48
	0x1b1ab00000000001, 0xa011000000000001, // 32
	0x6b70000000000001, 0xf500000000000001, // 16 (its second also folds the last 128 bits to 64)
	0xb000000000000001, // mu
	0xb000000000000001, // P
}
