package boot

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"
)

// cpuinit_amd64.s cannot import Go constants for everything it lays out;
// its #defines must match the Go side byte for byte.
func TestCpuinitDefinesMatchGo(t *testing.T) {
	src, err := os.ReadFile("cpuinit_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"HDR_START_INFO": hdrStartInfo, "HDR_LONG_MODE": hdrLongMode, "HDR_TABLES": hdrTables,
		"HDR_GDTR": hdrGDTR, "HDR_GDT": hdrGDT, "HDR_IDTR": hdrIDTR,
		"T_PML4": tablePML4, "T_PDPT": tablePDPT, "T_PD0": tablePD0, "T_PT": tablePT, "T_IDT": tableIDT,
		"MSR_EFER": 0xc0000080, "MSR_FS_BASE": 0xc0000100,
	}
	got := map[string]uint64{}
	for _, m := range regexp.MustCompile(`(?m)^#define\s+(\w+)\s+(0x[0-9a-fA-F]+)`).FindAllStringSubmatch(string(src), -1) {
		v, err := strconv.ParseUint(m[2], 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		got[m[1]] = v
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %#x in cpuinit_amd64.s (present %v), Go says %#x", name, g, ok, v)
		}
	}
}

func TestBootAreaLayout(t *testing.T) {
	var h bootHeader
	if unsafe.Offsetof(h.StartInfo) != hdrStartInfo || unsafe.Offsetof(h.LongMode) != hdrLongMode || unsafe.Offsetof(h.Tables) != hdrTables {
		t.Error("bootHeader fields do not sit at the header offsets")
	}
	// GDTR (2+8), GDT (3×8), IDTR (2+8) fit the header without overlap.
	if hdrGDTR+10 > hdrGDT || hdrGDT+24 > hdrIDTR || hdrIDTR+10 > bootHdrSize {
		t.Error("header fields overlap")
	}
	// Worst-case alignment: the table base is at most bootHdrSize+4095
	// past the area's start and the stack top must still be inside.
	if bootHdrSize+4095+earlyStackTop > bootAreaSize {
		t.Error("bootArea too small for aligned tables and stack")
	}
	if tableIDT+256*16 > bootTables || bootTables != tablePool || tablePT+4096 > tableIDT || tablePD0+4*4096 > tablePT {
		t.Error("tables overlap")
	}
}
