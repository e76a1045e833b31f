package gen2

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gohv/gohv/boot/gen2/internal/ovmftest"
	"github.com/gohv/gohv/internal/hosttool"
)

//go:embed testdata/payload.bin
var testPayload []byte

const (
	payloadBase  = 0x10010000 // testdata/payload.asm: org
	ovmfDXEData  = 0x01000000 // inside OVMF's boot-services data at 9-23 MiB
	payloadBSS   = 0x10000    // testdata/payload.asm: BSS_SIZE
	payloadStack = 0x1000     // testdata/payload.asm: STACK_SIZE
	exitPass     = 33         // isa-debug-exit: (0x10 << 1) | 1
)

type e820 struct {
	addr, size uint64
	typ        uint32
}

// parsePayloadLog reads the payload's report lines ("memmap entries N",
// "e820 ADDR SIZE TYPE", "rsdp ADDR ok").
func parsePayloadLog(t *testing.T, log string) (count int, mm []e820, rsdp string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "memmap" && f[1] == "entries":
			n, err := strconv.ParseUint(f[2], 16, 32)
			if err != nil {
				t.Fatalf("bad line %q", sc.Text())
			}
			count = int(n)
		case len(f) == 4 && f[0] == "e820":
			a, err1 := strconv.ParseUint(f[1], 16, 64)
			s, err2 := strconv.ParseUint(f[2], 16, 64)
			ty, err3 := strconv.ParseUint(f[3], 16, 32)
			if err := errors.Join(err1, err2, err3); err != nil {
				t.Fatalf("bad line %q: %v", sc.Text(), err)
			}
			mm = append(mm, e820{a, s, uint32(ty)})
		case len(f) >= 2 && f[0] == "rsdp":
			rsdp = strings.Join(f[1:], " ")
		}
	}
	return count, mm, rsdp
}

// payloadGKI is the test payload as one segment, plus a second segment that
// starts in the page where the first ends, as the segments of a Go ELF can:
// the loader must not ask the firmware for that page twice.
func payloadGKI() []byte {
	memsz := uint64(len(testPayload)) + payloadBSS + payloadStack
	tail := alignUp(payloadBase+memsz, 16)
	if tail%4096 == 0 {
		panic("payload size leaves no shared page; adjust the tail segment")
	}
	return makeGKI(payloadBase,
		testSeg{paddr: payloadBase, data: testPayload, memsz: memsz},
		testSeg{paddr: tail, data: bytes.Repeat([]byte{0x5a}, 16), memsz: 0x3000})
}

// checkBoot asserts what a successful boot of the test payload must show.
func checkBoot(t *testing.T, log string, code, memMiB int) {
	t.Helper()
	if code != exitPass || !strings.Contains(log, "gohv-gen2-payload: PASS") {
		t.Fatalf("exit status %d, want %d; serial log:\n%s", code, exitPass, log)
	}
	for _, want := range []string{
		"gohv: UEFI loader",
		fmt.Sprintf("gohv: starting kernel at 0x%016x", payloadBase),
		"gohv: boot services exited",
		"mode ok", "start_info ok", "bss ok",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("serial log lacks %q", want)
		}
	}
	count, mm, rsdp := parsePayloadLog(t, log)
	if count == 0 || count != len(mm) {
		t.Fatalf("memmap_entries %d, printed %d entries", count, len(mm))
	}
	var ram uint64
	kernelInRAM := false
	for i, e := range mm {
		if e.size == 0 || e.typ < 1 || e.typ > 5 {
			t.Errorf("entry %d %+v: empty or bad type", i, e)
		}
		if i > 0 {
			p := mm[i-1]
			if p.addr+p.size > e.addr {
				t.Errorf("entries %d and %d unsorted or overlapping: %+v %+v", i-1, i, p, e)
			}
			if p.addr+p.size == e.addr && p.typ == e.typ {
				t.Errorf("entries %d and %d not merged: %+v %+v", i-1, i, p, e)
			}
		}
		if e.typ == 1 {
			ram += e.size
			if e.addr <= payloadBase && payloadBase < e.addr+e.size {
				kernelInRAM = true
			}
		}
	}
	// OVMF keeps a few MiB for itself (reserved, ACPI NVS); the rest is RAM.
	if lo, hi := uint64(memMiB-64)<<20, uint64(memMiB)<<20; ram < lo || ram > hi {
		t.Errorf("RAM in memmap = %d MiB, want %d..%d MiB", ram>>20, lo>>20, hi>>20)
	}
	if !kernelInRAM {
		t.Errorf("kernel address %#x not in a RAM entry", payloadBase)
	}
	if !strings.HasSuffix(rsdp, " ok") || strings.HasPrefix(rsdp, "0000000000000000") {
		t.Errorf("rsdp line %q, want a non-zero address with a valid RSDP", rsdp)
	}
	t.Logf("memmap: %d entries, %d MiB RAM; rsdp %s", len(mm), ram>>20, rsdp)
}

func TestBootOVMF(t *testing.T) {
	ovmftest.Need(t, ovmftest.Tools...)
	efi, err := BuildEFI(payloadGKI())
	if err != nil {
		t.Fatal(err)
	}
	disk := ovmftest.ESPDisk(t, t.TempDir(), efi)

	t.Run("raw", func(t *testing.T) {
		t.Parallel()
		log, code := ovmftest.Boot(t, ovmftest.VM{Disk: disk, Format: "raw"})
		checkBoot(t, log, code, ovmftest.GuestMiB)
	})
	// q35 puts RAM beyond 2 GiB above 4 GiB: the map then has a PCI hole
	// and high RAM, which the loader must pass on too.
	t.Run("raw-3g", func(t *testing.T) {
		t.Parallel()
		const mem = 3072
		log, code := ovmftest.Boot(t, ovmftest.VM{Disk: disk, Format: "raw", MemMiB: mem})
		checkBoot(t, log, code, mem)
		if _, mm, _ := parsePayloadLog(t, log); len(mm) == 0 || mm[len(mm)-1].addr+mm[len(mm)-1].size <= 1<<32 || mm[len(mm)-1].typ != 1 {
			t.Errorf("no RAM above 4 GiB in the memmap; last entry %+v", mm[len(mm)-1:])
		}
	})
	// A segment inside memory the firmware holds until ExitBootServices
	// (OVMF decompresses its DXE volume to 9-23 MiB, boot-services data):
	// AllocatePages fails there, so the loader must place it after
	// ExitBootServices, as it does for a kernel's large BSS.
	t.Run("deferred", func(t *testing.T) {
		t.Parallel()
		memsz := uint64(len(testPayload)) + payloadBSS + payloadStack
		gki := makeGKI(payloadBase,
			testSeg{paddr: payloadBase, data: testPayload, memsz: memsz},
			testSeg{paddr: ovmfDXEData, data: bytes.Repeat([]byte{0xa5}, 64), memsz: 0x200000})
		efi, err := BuildEFI(gki)
		if err != nil {
			t.Fatal(err)
		}
		log, code := ovmftest.Boot(t, ovmftest.VM{Disk: ovmftest.ESPDisk(t, t.TempDir(), efi), Format: "raw"})
		checkBoot(t, log, code, ovmftest.GuestMiB)
	})
	for _, c := range []struct {
		name, format string
		opts         []string
	}{
		{"vhdx", "vhdx", nil},
		{"vhd-fixed", "vpc", []string{"-o", "subformat=fixed,force_size=on"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ovmftest.Need(t, "qemu-img")
			img := filepath.Join(t.TempDir(), "disk."+c.format)
			// -U: parallel subtests have the image open in QEMU.
			args := append([]string{"convert", "-U", "-f", "raw", "-O", c.format}, c.opts...)
			hosttool.Run(t, "qemu-img", append(args, disk, img)...)
			log, code := ovmftest.Boot(t, ovmftest.VM{Disk: img, Format: c.format})
			checkBoot(t, log, code, ovmftest.GuestMiB)
		})
	}
}

// TestBootOVMFErrors boots loaders whose kernel cannot be started and checks
// that the loader says why on the firmware console (which OVMF mirrors to
// the serial port) instead of jumping anywhere.
func TestBootOVMFErrors(t *testing.T) {
	ovmftest.Need(t, ovmftest.Tools...)
	badCRC := payloadGKI()
	badCRC[len(badCRC)-1] ^= 1
	for _, c := range []struct {
		name string
		gki  []byte
		want string
	}{
		{"crc", badCRC, "gohv: bad kernel image"},
		{"not-ram", makeGKI(0xfec00000, testSeg{paddr: 0xfec00000, data: testPayload, memsz: 0x1000}),
			"gohv: cannot allocate kernel memory at 0x00000000fec00000"},
		{"overlap", makeGKI(payloadBase,
			testSeg{paddr: payloadBase, data: testPayload, memsz: 0x2000},
			testSeg{paddr: payloadBase + 0x1ff0, data: testPayload, memsz: 0x1000}),
			"gohv: bad kernel image"},
		{"entry-outside", makeGKI(payloadBase+0x2000,
			testSeg{paddr: payloadBase, data: testPayload, memsz: 0x2000}),
			"gohv: bad kernel image"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			efi, err := BuildEFI(c.gki)
			if err != nil {
				t.Fatal(err)
			}
			disk := ovmftest.ESPDisk(t, t.TempDir(), efi)
			log, _ := ovmftest.Boot(t, ovmftest.VM{Disk: disk, Format: "raw", Until: c.want})
			if !strings.Contains(log, c.want) {
				t.Fatalf("serial log lacks %q:\n%s", c.want, log)
			}
			if strings.Contains(log, "gohv: starting kernel") {
				t.Errorf("loader went on to start the kernel:\n%s", log)
			}
		})
	}
}
