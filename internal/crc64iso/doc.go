// Package crc64iso computes tar-split's file checksum, the CRC-64 with the
// ISO polynomial (x^64 + x^4 + x^3 + x + 1, bit-reflected, as
// hash/crc64.ISO and tar-split's storage.CRCTable), fast.
//
// [Update] and [New] have exactly the semantics of hash/crc64's Update and
// New with crc64.MakeTable(crc64.ISO); they only run faster. On amd64 with
// PCLMULQDQ and SSE4.1 every whole 16 bytes of input go through carry-less
// multiplication folding (Intel's "Fast CRC Computation for Generic
// Polynomials Using PCLMULQDQ Instruction": eight 16-byte lanes folded by 128
// bytes, then by 16, then a Barrett reduction), about 13 GB/s against
// hash/crc64's slicing-by-8 at about 1.7 GB/s; the last len%16 bytes, short
// inputs, other architectures and the purego build tag use hash/crc64. The
// host audit checks every file of every layer against its tar-split CRC, so
// this was its largest cost after SHA-256.
//
// It is not a general CRC-64 package: one polynomial, no marshalling of the
// hash state, nothing but what package tarsplit needs.
//
// Why hand-written: no Go library computes CRC-64/ISO with carry-less
// multiplication (hash/crc64 is table-driven; github.com/minio/crc64nvme does
// it for the NVME polynomial only). Its folding code takes the polynomial only
// through constants, so the amd64 assembly here is its updateAsm with the ISO
// constants (constants.go; TestConstants recomputes them from the polynomial
// and checks that the same formulas reproduce minio's NVME constants).
//
// NOTICE: crc64iso_amd64.s is derived from crc64_amd64.s of
// github.com/minio/crc64nvme v1.1.1, Copyright (c) 2025 Minio Inc., under the
// Apache License 2.0 (LICENSE-crc64nvme in this directory). Changed: the
// constants are the ISO polynomial's and read from a table argument, data
// loads are unaligned, trailing 16-byte blocks and inputs under 128 bytes are
// folded in the assembly, and the AVX-512 variant was not taken.
package crc64iso
