// Copyright (c) 2025 Minio Inc. All rights reserved.
// Use of this source code is governed by a license that can be
// found in the LICENSE file.
//
// The licence is the Apache License 2.0, copied in LICENSE-crc64nvme in this
// directory. Taken from updateAsm in crc64_amd64.s of
// github.com/minio/crc64nvme v1.1.1 and changed for layercheck: the constants
// come from the table k (the ISO polynomial's, see constants.go) instead of
// the NVME polynomial's immediates, a lane pair is loaded with one MOVOU, data
// is loaded unaligned (MOVOU), and 16-byte blocks left after the 128-byte
// loop (or inputs shorter than 128 bytes) are folded into the one remaining
// lane before the final reduction (as Go's hash/crc32 ieeeCLMUL does); the
// function is renamed foldAsm and takes any multiple of 16 bytes.

//go:build amd64 && !purego

#include "textflag.h"

// func foldAsm(crc uint64, p []byte, k *[18]uint64) uint64
TEXT ·foldAsm(SB), NOSPLIT, $0-48
	MOVQ crc+0(FP), AX    // checksum
	MOVQ p_base+8(FP), SI // start pointer
	MOVQ p_len+16(FP), CX // length of buffer (a multiple of 16)
	MOVQ k+32(FP), DX     // constants
	NOTQ AX
	CMPQ CX, $16
	JB   done             // nothing to fold (the caller never asks)
	MOVQ AX, X8
	CMPQ CX, $128
	JB   single

	MOVOU 0x00(SI), X0
	MOVOU 0x10(SI), X1
	MOVOU 0x20(SI), X2
	MOVOU 0x30(SI), X3
	MOVOU 0x40(SI), X4
	MOVOU 0x50(SI), X5
	MOVOU 0x60(SI), X6
	MOVOU 0x70(SI), X7
	PXOR  X8, X0
	ADDQ  $128, SI
	SUBQ  $128, CX

	MOVOU 0x00(DX), X9 // fold by 128 bytes: low qword x^1087, high x^1023

loop128:
	CMPQ      CX, $128
	JB        tail128
	MOVOA     X0, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X0
	PXOR      X10, X0
	MOVOU     0x00(SI), X11
	PXOR      X11, X0
	MOVOA     X1, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X1
	PXOR      X10, X1
	MOVOU     0x10(SI), X11
	PXOR      X11, X1
	MOVOA     X2, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X2
	PXOR      X10, X2
	MOVOU     0x20(SI), X11
	PXOR      X11, X2
	MOVOA     X3, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X3
	PXOR      X10, X3
	MOVOU     0x30(SI), X11
	PXOR      X11, X3
	MOVOA     X4, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X4
	PXOR      X10, X4
	MOVOU     0x40(SI), X11
	PXOR      X11, X4
	MOVOA     X5, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X5
	PXOR      X10, X5
	MOVOU     0x50(SI), X11
	PXOR      X11, X5
	MOVOA     X6, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X6
	PXOR      X10, X6
	MOVOU     0x60(SI), X11
	PXOR      X11, X6
	MOVOA     X7, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X7
	PXOR      X10, X7
	MOVOU     0x70(SI), X11
	PXOR      X11, X7
	ADDQ      $128, SI
	SUBQ      $128, CX
	JMP       loop128

tail128:
	// Fold X0..X6 onto X7 by 112, 96, ..., 16 bytes; the lane is left in X6.
	MOVOU     0x10(DX), X12
	MOVOA     X0, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X0
	PXOR      X11, X7
	PXOR      X0, X7
	MOVOU     0x20(DX), X12
	MOVOA     X1, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X1
	PXOR      X11, X1
	PXOR      X7, X1
	MOVOU     0x30(DX), X12
	MOVOA     X2, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X2
	PXOR      X11, X2
	PXOR      X1, X2
	MOVOU     0x40(DX), X12
	MOVOA     X3, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X3
	PXOR      X11, X3
	PXOR      X2, X3
	MOVOU     0x50(DX), X12
	MOVOA     X4, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X4
	PXOR      X11, X4
	PXOR      X3, X4
	MOVOU     0x60(DX), X12
	MOVOA     X5, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X5
	PXOR      X11, X5
	PXOR      X4, X5
	MOVOU     0x70(DX), X12
	MOVOA     X6, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X6
	PXOR      X11, X6
	PXOR      X5, X6
	JMP       loop16

single:
	// Fewer than 128 bytes: one lane from the first 16.
	MOVOU 0x00(SI), X6
	PXOR  X8, X6
	ADDQ  $16, SI
	SUBQ  $16, CX

loop16:
	// Fold the lane by 16 bytes onto each remaining 16-byte block.
	CMPQ      CX, $16
	JB        reduce
	MOVOU     0x70(DX), X12
	MOVOA     X6, X11
	PCLMULQDQ $0x00, X12, X11
	PCLMULQDQ $0x11, X12, X6
	PXOR      X11, X6
	MOVOU     0x00(SI), X11
	PXOR      X11, X6
	ADDQ      $16, SI
	SUBQ      $16, CX
	JMP       loop16

reduce:
	// 128 bits to 64: the low qword times x^127, the high qword moved down.
	MOVQ      0x78(DX), X5
	PCLMULQDQ $0x00, X6, X5
	PSHUFD    $0xee, X6, X6
	PXOR      X5, X6

	// Barrett reduction.
	MOVQ      0x80(DX), X4 // mu
	PCLMULQDQ $0x00, X4, X6
	PEXTRQ    $0, X6, BX
	MOVQ      0x88(DX), X4 // P
	PCLMULQDQ $0x00, X4, X6
	PXOR      X5, X6
	PEXTRQ    $1, X6, AX
	XORQ      BX, AX

done:
	NOTQ AX
	MOVQ AX, ret+40(FP)
	RET
