//go:build tamago && linkcpuinit

// cpuinit: the kernel's first instructions (docs/boot.md, "One hand-off protocol: PVH": the PVH 32-bit
// entry, flat protected mode, paging and interrupts off, EBX = physical
// address of hvm_start_info; tamago's _rt0_amd64_tamago jumps here).
//
// It leaves what tamago's runtime entry expects (tamago amd64/init.s):
// long mode, identity-mapped memory, a GDT with the 64-bit code segment at
// selector 0x08 and data at 0x10, SSE on, SP at RamStart+RamSize-
// RamStackOffset, then JMP _rt0_tamago_start. On the way it runs the
// board's pre-runtime Go code (early) to read the memory map and set
// RamStart/RamSize: tamago/amd64 owns the Hwinit0 hook, and the stack must
// sit in real RAM before the runtime starts anyway.
//
// Everything up to start64 runs in 32-bit mode although the Go assembler
// encodes for 64-bit mode, so only instructions whose encoding means the
// same in both are used: 32-bit operands on the eight legacy registers, no
// REX prefix, no RIP-relative symbol references (in 32-bit mode the rel32
// of "MOVL $sym(SB), reg" reads as an absolute address; getPC turns it
// back into sym). The encodings were checked with objdump -m i386.
//
// All memory cpuinit writes lies in bootArea (the kernel's bss) except for
// 4 bytes of the start_info's reserved field, borrowed as the first stack
// and restored: the only writable memory known before the first CALL.

#include "go_asm.h"
#include "textflag.h"

#define MSR_EFER	0xc0000080
#define MSR_FS_BASE	0xc0000100

// bootArea header offsets (see early_tamago.go).
#define HDR_START_INFO	0x00
#define HDR_LONG_MODE	0x04
#define HDR_TABLES	0x08
#define HDR_GDTR	0x10
#define HDR_GDT		0x20
#define HDR_IDTR	0x40

// table offsets from the 4 KiB-aligned base
#define T_PML4	0x0000
#define T_PDPT	0x1000
#define T_PD0	0x2000
#define T_PT	0x6000
#define T_IDT	0x7000

TEXT cpuinit(SB),NOSPLIT|NOFRAME,$0
	CLI
	CLD
	MOVL	BX, SI			// hvm_start_info (docs/boot.md, PVH)

	MOVL	$MSR_EFER, CX
	RDMSR
	ANDL	$(1<<10), AX		// EFER.LMA: entered in long mode?
	JNE	long_entry

	// 32-bit: borrow start_info+52..55 (reserved) as a 4-byte stack.
	MOVL	52(SI), BP
	LEAL	56(SI), SP
	CALL	·getPC<>(SB)
	MOVL	$·bootArea(SB), DI	// 6 bytes: 8D 3D rel32
	ADDL	$6, AX
	ADDL	AX, DI			// DI = &bootArea
	MOVL	BP, 52(SI)
	XORL	BP, BP			// BP = 0: 32-bit path
	JMP	have_area

long_entry:
	LEAQ	·bootArea(SB), DI
	MOVL	$1, BP

have_area:
	MOVL	SI, HDR_START_INFO(DI)
	MOVL	BP, HDR_LONG_MODE(DI)
	MOVL	DI, SI			// SI = &bootArea (header)

	// BX = tables base: header end rounded up to 4 KiB
	LEAL	(const_bootHdrSize+0xfff)(SI), BX
	ANDL	$~0xfff, BX
	MOVL	BX, HDR_TABLES(SI)
	MOVL	$0, (HDR_TABLES+4)(SI)

	// early stack at the top of bootArea's stack part
	LEAL	const_earlyStackTop(BX), SP

	// zero PML4, PDPT, PDs, PT and IDT
	MOVL	BX, DI
	XORL	AX, AX
	MOVL	$(const_bootTables/4), CX
	REP;	STOSL

	// PML4[0] = PDPT, PDPT[0..3] = PD0..PD3 (present, writable)
	LEAL	(T_PDPT+3)(BX), AX
	MOVL	AX, T_PML4(BX)
	LEAL	(T_PD0+3)(BX), AX
	MOVL	AX, (T_PDPT+0)(BX)
	ADDL	$0x1000, AX
	MOVL	AX, (T_PDPT+8)(BX)
	ADDL	$0x1000, AX
	MOVL	AX, (T_PDPT+16)(BX)
	ADDL	$0x1000, AX
	MOVL	AX, (T_PDPT+24)(BX)

	// PD0..PD3: 2048 2 MiB pages identity-mapping [0, 4 GiB); from
	// 0xC0000000 up with PCD|PWT (uncached MMIO window). The board's early
	// code re-caches RAM found there (PlanPages).
	LEAL	T_PD0(BX), DI
	XORL	AX, AX
pd_loop:
	MOVL	AX, DX
	ORL	$0x83, DX		// PS, R/W, P
	CMPL	AX, $0xc0000000
	JCS	pd_store		// below 3 GiB: cached
	ORL	$0x18, DX		// PCD, PWT
pd_store:
	MOVL	DX, (DI)
	ADDL	$8, DI
	ADDL	$0x200000, AX
	JNE	pd_loop			// AX wraps to 0 after 4 GiB

	// PD0[0] = PT: the first 2 MiB in 4 KiB pages, page 0 left unmapped so
	// that nil dereferences fault.
	LEAL	(T_PT+3)(BX), AX
	MOVL	AX, T_PD0(BX)
	LEAL	(T_PT+8)(BX), DI
	MOVL	$0x1003, AX
pt_loop:
	MOVL	AX, (DI)
	ADDL	$8, DI
	ADDL	$0x1000, AX
	CMPL	AX, $0x200000
	JCS	pt_loop

	// GDT: null, 64-bit code (0x08), data (0x10); tamago's load_idt
	// detects this foreign GDT and reuses it and the IDT below.
	MOVL	$0, (HDR_GDT+0)(SI)
	MOVL	$0, (HDR_GDT+4)(SI)
	MOVL	$0, (HDR_GDT+8)(SI)
	MOVL	$0x00209a00, (HDR_GDT+12)(SI)
	MOVL	$0, (HDR_GDT+16)(SI)
	MOVL	$0x00009200, (HDR_GDT+20)(SI)
	MOVW	$(3*8-1), HDR_GDTR(SI)
	LEAL	HDR_GDT(SI), AX
	MOVL	AX, (HDR_GDTR+2)(SI)
	MOVL	$0, (HDR_GDTR+6)(SI)

	// IDT: 256 empty gates; tamago fills them (CPU.EnableExceptions)
	MOVW	$(256*16-1), HDR_IDTR(SI)
	LEAL	T_IDT(BX), AX
	MOVL	AX, (HDR_IDTR+2)(SI)
	MOVL	$0, (HDR_IDTR+6)(SI)

	MOVL	BX, CR3

	CMPL	BP, $0
	JNE	lm_switch

	// 32-bit → long mode: CR4.PAE|PGE, EFER.LME, CR0.PG|PE
	MOVL	CR4, AX
	ORL	$(1<<7 | 1<<5), AX
	MOVL	AX, CR4
	MOVL	$MSR_EFER, CX
	RDMSR
	ORL	$(1<<8), AX
	WRMSR
	MOVL	CR0, AX
	ORL	$0x80000001, AX
	MOVL	AX, CR0

	// compatibility mode now: load our GDT/IDT, far return into 64-bit code
	LGDT	HDR_GDTR(SI)
	LIDT	HDR_IDTR(SI)
	CALL	·getPC<>(SB)
	MOVL	$·start64<>(SB), DX	// 6 bytes: 8D 15 rel32
	ADDL	$6, AX
	ADDL	DX, AX
	PUSHQ	$0x08
	PUSHQ	AX
	RETFQ				// 32-bit: DEC EAX (harmless), RETF

lm_switch:
	LGDT	HDR_GDTR(SI)
	LIDT	HDR_IDTR(SI)
	LEAQ	·start64<>(SB), AX
	PUSHQ	$0x08
	PUSHQ	AX
	RETFQ

// getPC returns, in AX, the address following the CALL that reached it
// (works in 32- and 64-bit mode).
TEXT ·getPC<>(SB),NOSPLIT|NOFRAME,$0
	POPQ	AX
	CALL	AX

// start64 runs in 64-bit mode on the early stack.
TEXT ·start64<>(SB),NOSPLIT|NOFRAME,$0
	// The upper halves of general registers are undefined after 32-bit
	// code ran (Intel SDM Vol. 1 §3.4.1.1), and the Gen2 loader came down
	// from 64-bit mode: zero-extend ESP before the first push uses RSP.
	MOVL	SP, SP
	MOVL	$0x10, AX
	MOVW	AX, DS
	MOVW	AX, ES
	MOVW	AX, SS
	XORL	AX, AX
	MOVW	AX, FS
	MOVW	AX, GS

	CALL	sse_enable(SB)		// tamago amd64/features.s

	LEAQ	runtime·text(SB), AX
	MOVQ	AX, ·imageStart(SB)
	LEAQ	runtime·end(SB), AX
	MOVQ	AX, ·imageEnd(SB)

	// The Go code below runs before the runtime exists. Its ABI0 wrapper
	// loads g from -8(FS): point FS at a stand-in g whose stack guard is
	// 0, so that stack checks pass; early must not allocate or panic.
	LEAQ	·earlyG(SB), AX
	MOVQ	AX, ·earlyTLS(SB)
	LEAQ	·earlyTLS+8(SB), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	MOVL	$MSR_FS_BASE, CX
	WRMSR

	CALL	·early(SB)

	// runtime stack: RamStart + RamSize - RamStackOffset (set by early)
	MOVQ	runtime∕goos·RamStart(SB), SP
	ADDQ	runtime∕goos·RamSize(SB), SP
	SUBQ	runtime∕goos·RamStackOffset(SB), SP

	JMP	_rt0_tamago_start(SB)
