// Copyright (c) 2025 Minio Inc. All rights reserved.
// Use of this source code is governed by a license that can be
// found in the LICENSE file.
//
// The licence is the Apache License 2.0, copied in LICENSE-crc64nvme in this
// directory. Taken from updateAsm in crc64_amd64.s of
// github.com/minio/crc64nvme v1.1.1 and changed for layercheck: the constants
// come from the table k (the ISO polynomial's, see constants.go) instead of
// the NVME polynomial's immediates, a lane pair is loaded with one MOVOU, the
// function is renamed foldAsm and takes only whole 128-byte blocks.

//go:build amd64 && !purego

#include "textflag.h"

// func foldAsm(crc uint64, p []byte, k *[18]uint64) uint64
TEXT ·foldAsm(SB), NOSPLIT, $0-48
	MOVQ crc+0(FP), AX    // checksum
	MOVQ p_base+8(FP), SI // start pointer (16-byte aligned)
	MOVQ p_len+16(FP), CX // length of buffer (a multiple of 128)
	MOVQ k+32(FP), DX     // constants
	NOTQ AX
	SHRQ $7, CX
	CMPQ CX, $1
	JLT  done

	MOVOA 0x00(SI), X0
	MOVOA 0x10(SI), X1
	MOVOA 0x20(SI), X2
	MOVOA 0x30(SI), X3
	MOVOA 0x40(SI), X4
	MOVOA 0x50(SI), X5
	MOVOA 0x60(SI), X6
	MOVOA 0x70(SI), X7
	MOVQ  AX, X8
	PXOR  X8, X0
	CMPQ  CX, $1
	JE    tail128

	MOVOU 0x00(DX), X9 // fold by 128 bytes: low qword x^1087, high x^1023

loop128:
	ADDQ      $128, SI
	SUBQ      $1, CX
	MOVOA     X0, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X0
	PXOR      X10, X0
	PXOR      0(SI), X0
	MOVOA     X1, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X1
	PXOR      X10, X1
	PXOR      0x10(SI), X1
	MOVOA     X2, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X2
	PXOR      X10, X2
	PXOR      0x20(SI), X2
	MOVOA     X3, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X3
	PXOR      X10, X3
	PXOR      0x30(SI), X3
	MOVOA     X4, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X4
	PXOR      X10, X4
	PXOR      0x40(SI), X4
	MOVOA     X5, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X5
	PXOR      X10, X5
	PXOR      0x50(SI), X5
	MOVOA     X6, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X6
	PXOR      X10, X6
	PXOR      0x60(SI), X6
	MOVOA     X7, X10
	PCLMULQDQ $0x00, X9, X10
	PCLMULQDQ $0x11, X9, X7
	PXOR      X10, X7
	PXOR      0x70(SI), X7
	CMPQ      CX, $1
	JGT       loop128

tail128:
	// Fold X0..X6 onto X7 by 112, 96, ..., 16 bytes.
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
