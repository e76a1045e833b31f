package gen1

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSizes(t *testing.T) {
	s1, s2 := Stage1(), Stage2()
	if len(s1) != Stage1Size {
		t.Errorf("stage 1 is %d bytes, want %d (the MBR code area)", len(s1), Stage1Size)
	}
	if len(s2) == 0 || len(s2)%512 != 0 || len(s2)/512 > Stage2MaxSectors {
		t.Fatalf("stage 2 is %d bytes, want a multiple of 512, at most %d sectors", len(s2), Stage2MaxSectors)
	}
	// Stage 2 header read by stage 1: +2 sector count, +4 "GHS2".
	if got := binary.LittleEndian.Uint16(s2[2:]); int(got) != len(s2)/512 {
		t.Errorf("stage 2 header says %d sectors, binary has %d", got, len(s2)/512)
	}
	if !bytes.Equal(s2[4:8], []byte("GHS2")) {
		t.Errorf("stage 2 magic %q", s2[4:8])
	}
	// Callers own their copies.
	s1[0] ^= 0xff
	if Stage1()[0] == s1[0] {
		t.Error("Stage1 returns shared memory")
	}
}

// TestReassemble checks that the committed binaries come from the committed
// sources (run `go generate ./boot/gen1` after editing the sources).
func TestReassemble(t *testing.T) {
	nasm, err := exec.LookPath("nasm")
	if err != nil {
		t.Skip("nasm not installed (apt-get install nasm); cannot check stage1.bin/stage2.bin against src/")
	}
	for _, c := range []struct {
		src  string
		want []byte
	}{{"stage1.asm", stage1}, {"stage2.asm", stage2}} {
		out := filepath.Join(t.TempDir(), "out.bin")
		cmd := exec.Command(nasm, "-f", "bin", "-o", out, filepath.Join("src", c.src))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nasm %s: %v\n%s", c.src, err, b)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s does not assemble to the committed binary; run go generate ./boot/gen1", c.src)
		}
	}
}

// TestAsmConstants pins the numbers the assembly sources use to
// docs/boot.md (the GKI header table, hvm_start_info) and to this package's
// constants, so a change on one side cannot go unnoticed.
func TestAsmConstants(t *testing.T) {
	defines := func(name string) map[string]string {
		b, err := os.ReadFile(filepath.Join("src", name))
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 3 && f[0] == "%define" {
				m[f[1]] = f[2]
			}
		}
		return m
	}
	s1, s2 := defines("stage1.asm"), defines("stage2.asm")
	want := []struct {
		defs  map[string]string
		name  string
		value uint64
	}{
		{s1, "STAGE2", 0x8000},
		{s1, "STAGE2_MAX", Stage2MaxSectors},
		{s2, "PART_TYPE", KernelPartitionType},
		{s2, "MBR_PARTS", 0x7c00 + 446},
		// GKI header (docs/boot.md, "The gohv kernel image (GKI)").
		{s2, "GKI_VERSION", 8}, {s2, "GKI_HDRSIZE", 12}, {s2, "GKI_ENTRY", 16},
		{s2, "GKI_COUNT", 20}, {s2, "GKI_TOTAL", 24}, {s2, "GKI_CRC", 28},
		{s2, "GKI_SEGS", 32}, {s2, "SEG_PADDR", 0}, {s2, "SEG_FOFF", 8},
		{s2, "SEG_FSIZE", 12}, {s2, "SEG_MSIZE", 16}, {s2, "SEG_SIZE", 24},
		// hvm_start_info magic (docs/boot.md, "One hand-off protocol").
		{s2, "SI_MAGIC", 0x336ec578},
	}
	for _, w := range want {
		v, ok := w.defs[w.name]
		if !ok {
			t.Errorf("%s not defined", w.name)
			continue
		}
		got, err := strconv.ParseUint(v, 0, 64)
		if err != nil || got != w.value {
			t.Errorf("%s = %s, want %#x", w.name, v, w.value)
		}
	}
	// Start info, memmap and the stage 2 area must stay below 1 MiB and
	// clear of the MBR and of each other.
	var lay [5]uint64
	for i, n := range []string{"START_INFO", "MEMMAP", "MEMMAP_MAX", "CRC_TABLE", "BOUNCE"} {
		lay[i], _ = strconv.ParseUint(s2[n], 0, 64)
	}
	if lay[0]+56 > lay[1] || lay[1]+24*lay[2] > lay[3] || lay[3]+1024 > 0x7000 || lay[4] < 0x8000+Stage2MaxSectors*512 || lay[4]+64*512 > 0x9f000 {
		t.Errorf("low-memory layout overlaps: %#x", lay)
	}
}
