package boot

// bootArea layout, shared by cpuinit_amd64.s (which repeats the offsets as
// #defines; bootarea_test.go checks that the two agree) and the board's
// pre-runtime Go code.
//
// bootArea (kernel bss) = header | pad to 4 KiB | tables | PD pool | stack.

const (
	// bootHdrSize is the header: start_info address, entry mode, table
	// base, GDTR, GDT, IDTR.
	bootHdrSize = 0x100

	hdrStartInfo = 0x00
	hdrLongMode  = 0x04
	hdrTables    = 0x08
	hdrGDTR      = 0x10
	hdrGDT       = 0x20
	hdrIDTR      = 0x40

	// Offsets from the 4 KiB-aligned table base.
	tablePML4 = 0x0000
	tablePDPT = 0x1000
	tablePD0  = 0x2000 // four PDs: [0, 4 GiB) in 2 MiB pages
	tablePT   = 0x6000 // the first 2 MiB in 4 KiB pages
	tableIDT  = 0x7000 // 256 gates × 16 bytes
	tablePool = 0x8000 // highPDPool PDs for RAM above 4 GiB

	// bootTables covers PML4, PDPT, four PDs, the low PT and the IDT.
	bootTables = tablePool
	// highPDPool is the number of page directories for 2 MiB mappings of
	// RAM above 4 GiB when the CPU has no 1 GiB pages (32 GiB worth).
	highPDPool = 32
	// earlyStackSize is the stack early runs on.
	earlyStackSize = 64 << 10
	// earlyStackTop is the stack top relative to the table base.
	earlyStackTop = tablePool + highPDPool*4096 + earlyStackSize
	// bootAreaSize leaves room to align the tables to 4 KiB.
	bootAreaSize = bootHdrSize + 4096 + earlyStackTop
)

// bootHeader mirrors the first 16 bytes of bootArea.
type bootHeader struct {
	StartInfo uint32
	LongMode  uint32
	Tables    uint64
}
