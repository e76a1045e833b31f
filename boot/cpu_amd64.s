//go:build tamago

// Privileged-instruction helpers for the board (Go ABI0, stack arguments).

#include "textflag.h"

// func cpuid(leaf, subleaf uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL	leaf+0(FP), AX
	MOVL	subleaf+4(FP), CX
	CPUID
	MOVL	AX, eax+8(FP)
	MOVL	BX, ebx+12(FP)
	MOVL	CX, ecx+16(FP)
	MOVL	DX, edx+20(FP)
	RET

// func rdmsr(msr uint32) uint64
TEXT ·rdmsr(SB),NOSPLIT,$0-16
	MOVL	msr+0(FP), CX
	RDMSR
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+8(FP)
	RET

// func wrmsr(msr uint32, val uint64)
TEXT ·wrmsr(SB),NOSPLIT,$0-16
	MOVL	msr+0(FP), CX
	MOVQ	val+8(FP), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	WRMSR
	RET

// func rdtsc() uint64
TEXT ·rdtsc(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func rdtscOrdered() uint64: LFENCE keeps the read after earlier loads
// (the reference TSC page protocol, docs/hyperv-protocol.md §1.9).
TEXT ·rdtscOrdered(SB),NOSPLIT,$0-8
	LFENCE
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// func inb(port uint16) uint8
TEXT ·inb(SB),NOSPLIT,$0-9
	MOVW	port+0(FP), DX
	XORL	AX, AX
	INB
	MOVB	AX, ret+8(FP)
	RET

// func outb(port uint16, val uint8)
TEXT ·outb(SB),NOSPLIT,$0-3
	MOVW	port+0(FP), DX
	MOVB	val+2(FP), AX
	OUTB
	RET

// func inw(port uint16) uint16
TEXT ·inw(SB),NOSPLIT,$0-10
	MOVW	port+0(FP), DX
	XORL	AX, AX
	INW
	MOVW	AX, ret+8(FP)
	RET

// func outw(port uint16, val uint16)
TEXT ·outw(SB),NOSPLIT,$0-4
	MOVW	port+0(FP), DX
	MOVW	val+2(FP), AX
	OUTW
	RET

// func inl(port uint16) uint32
TEXT ·inl(SB),NOSPLIT,$0-12
	MOVW	port+0(FP), DX
	INL
	MOVL	AX, ret+8(FP)
	RET

// func outl(port uint16, val uint32)
TEXT ·outl(SB),NOSPLIT,$0-8
	MOVW	port+0(FP), DX
	MOVL	val+4(FP), AX
	OUTL
	RET

// func reloadCR3()
TEXT ·reloadCR3(SB),NOSPLIT,$0-0
	MOVQ	CR3, AX
	MOVQ	AX, CR3
	RET

// func haltForever()
TEXT ·haltForever(SB),NOSPLIT,$0-0
	CLI
loop:
	HLT
	JMP	loop

// func hypercall(page uintptr, control, input, output uint64) uint64
//
// The hypercall page (docs/hyperv-protocol.md §1.7) holds VMCALL/VMMCALL; RET as the
// hypervisor wrote it: RCX control, RDX input (GPA, or the value for fast
// calls), R8 output GPA, result in RAX.
TEXT ·hypercall(SB),NOSPLIT,$0-40
	MOVQ	control+8(FP), CX
	MOVQ	input+16(FP), DX
	MOVQ	output+24(FP), R8
	MOVQ	page+0(FP), AX
	CALL	AX
	MOVQ	AX, ret+32(FP)
	RET
