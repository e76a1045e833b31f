package acpi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// physMem is a sparse physical memory holding the tables captured from
// QEMU guests (testdata/*/layout.txt gives each table's original address).
type physMem map[uint64][]byte

func (m physMem) ReadPhys(addr uint64, dst []byte) error {
	for base, b := range m {
		if addr >= base && addr+uint64(len(dst)) <= base+uint64(len(b)) {
			copy(dst, b[addr-base:])
			return nil
		}
	}
	// Unpopulated memory reads as zeros, like RAM the firmware left alone.
	clear(dst)
	return nil
}

func loadCapture(t *testing.T, machine string) (physMem, uint64) {
	t.Helper()
	dir := filepath.Join("testdata", machine)
	f, err := os.Open(filepath.Join(dir, "layout.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem := physMem{}
	var rsdp uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, addrText, _ := strings.Cut(sc.Text(), " ")
		addr, err := strconv.ParseUint(addrText, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		file := name + ".bin"
		if name == "rsdp" {
			rsdp = addr
			file = "rsdp.bin"
		}
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		mem[addr] = b
	}
	return mem, rsdp
}

func TestQEMUTables(t *testing.T) {
	for _, tc := range []struct {
		machine      string
		revision     uint8
		root         string
		oemID        string
		resetSupport bool
		resetValue   uint8
		dsdt         uint64
	}{
		{machine: "pc", revision: 0, root: "RSDT", oemID: "BOCHS", dsdt: 0x3fe0040},
		{machine: "q35", revision: 0, root: "RSDT", oemID: "BOCHS", resetSupport: true, resetValue: 0x0F, dsdt: 0x3fe0040},
		{machine: "ovmf", revision: 2, root: "XSDT", oemID: "BOCHS", resetSupport: true, resetValue: 0x0F, dsdt: 0x7779000},
	} {
		t.Run(tc.machine, func(t *testing.T) {
			mem, rsdpAddr := loadCapture(t, tc.machine)
			if tc.revision == 0 {
				// SeaBIOS keeps the RSDP in the BIOS area: the scan must find it.
				got, err := FindRSDP(mem)
				if err != nil || got != rsdpAddr {
					t.Fatalf("FindRSDP = %#x, %v; want %#x", got, err, rsdpAddr)
				}
			}
			tables, skipped, err := Load(mem, rsdpAddr)
			if err != nil {
				t.Fatal(err)
			}
			if len(skipped) != 0 {
				t.Fatalf("skipped tables: %v", skipped)
			}
			if tables.RSDP.Revision != tc.revision || tables.RSDP.OEMID != tc.oemID {
				t.Errorf("RSDP = %+v", tables.RSDP)
			}
			for _, sig := range []string{"FACP", "APIC", "DSDT"} {
				if _, ok := tables.Table(sig); !ok {
					t.Errorf("table %s not loaded (have %v)", sig, tables.Signatures())
				}
			}
			facp, _ := tables.Table("FACP")
			f, err := ParseFADT(facp)
			if err != nil {
				t.Fatal(err)
			}
			// QEMU's PIIX4 and ICH9 PM blocks both sit at I/O 0x600:
			// PM1a control at 0x604, the 32-bit PM timer at 0x608.
			if f.PM1aControl.Space != AddressSpaceIO || f.PM1aControl.Address != 0x604 {
				t.Errorf("PM1a control = %+v", f.PM1aControl)
			}
			// QEMU's PM timer is 24 bits wide: TMR_VAL_EXT (FADT flags bit 8) is clear.
			if f.PMTimer.Space != AddressSpaceIO || f.PMTimer.Address != 0x608 || f.PMTimer32 {
				t.Errorf("PM timer = %+v (32-bit %v)", f.PMTimer, f.PMTimer32)
			}
			// Every QEMU PC has an MC146818 with the century at CMOS 0x32.
			if f.Century != 0x32 || f.NoCMOSRTC {
				t.Errorf("RTC century register %#x, no RTC %v", f.Century, f.NoCMOSRTC)
			}
			if f.DSDT != tc.dsdt || f.SCIInterrupt != 9 {
				t.Errorf("DSDT %#x SCI %d", f.DSDT, f.SCIInterrupt)
			}
			if f.ResetSupported != tc.resetSupport || (tc.resetSupport && (f.ResetRegister.Address != 0xCF9 || f.ResetValue != tc.resetValue)) {
				t.Errorf("reset = %v %+v value %#x", f.ResetSupported, f.ResetRegister, f.ResetValue)
			}
			apic, _ := tables.Table("APIC")
			m, err := ParseMADT(apic)
			if err != nil {
				t.Fatal(err)
			}
			if m.LocalAPICAddress != 0xFEE00000 || !m.PCATCompat || m.EnabledCPUs() != 1 {
				t.Errorf("MADT = %+v", m)
			}
			if len(m.IOAPICs) != 1 || m.IOAPICs[0].Address != 0xFEC00000 || m.IOAPICs[0].GSIBase != 0 {
				t.Errorf("IOAPICs = %+v", m.IOAPICs)
			}
			// ISA IRQ 0 (PIT) is routed to GSI 2 on every QEMU PC.
			if len(m.Overrides) == 0 || m.Overrides[0].Source != 0 || m.Overrides[0].GSI != 2 {
				t.Errorf("overrides = %+v", m.Overrides)
			}
			dsdt, _ := tables.Table("DSDT")
			s5, err := FindS5(dsdt)
			if err != nil {
				t.Fatal(err)
			}
			if s5 != (SleepType{0, 0}) {
				t.Errorf("S5 = %+v, QEMU uses SLP_TYP 0", s5)
			}
			off, err := PowerOffWrites(f, s5)
			if err != nil {
				t.Fatal(err)
			}
			if len(off) != 1 || off[0].Address != 0x604 || off[0].Value != 0x2000 || off[0].Width != 16 {
				t.Errorf("power off = %v", off)
			}
			reset := ResetWrites(f)
			if len(reset) == 0 || reset[0].Address != 0xCF9 {
				t.Errorf("reset writes = %v", reset)
			}
		})
	}
}

func withChecksum(b []byte, at int) []byte {
	b[at] = 0
	b[at] = -checksum(b)
	return b
}

func table(sig string, body []byte) []byte {
	b := make([]byte, HeaderSize+len(body))
	copy(b, sig)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	copy(b[10:], "GOHV  ")
	copy(b[HeaderSize:], body)
	return withChecksum(b, 9)
}

func TestS5Encodings(t *testing.T) {
	for _, tc := range []struct {
		name string
		aml  []byte
		want SleepType
		err  error
	}{
		{"zero ops", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00}, SleepType{0, 0}, nil},
		{"byte prefix", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x02, 0x0A, 0x05, 0x0A, 0x07}, SleepType{5, 7}, nil},
		{"rooted name, one op", []byte{0x08, '\\', '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x01, 0x01}, SleepType{1, 1}, nil},
		{"two-byte pkglength", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x40, 0x00, 0x02, 0x0A, 0x03, 0x0A, 0x04}, SleepType{3, 4}, nil},
		{"method-local name ignored", []byte{0x14, '_', 'S', '5', '_', 0x00}, SleepType{}, ErrNotFound},
		{"truncated", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x0A}, SleepType{}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindS5(table("DSDT", tc.aml))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("FindS5 = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestMalformedTables(t *testing.T) {
	good := table("APIC", append(make([]byte, 8), 0, 8, 0, 0, 1, 0, 0, 0))
	if m, err := ParseMADT(good); err != nil || len(m.CPUs) != 1 || !m.CPUs[0].Enabled {
		t.Fatalf("good MADT: %+v %v", m, err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"short", []byte("APIC"), ErrMalformed},
		{"bad checksum", func() []byte { b := table("APIC", make([]byte, 8)); b[20]++; return b }(), ErrChecksum},
		{"length beyond buffer", func() []byte {
			b := table("APIC", make([]byte, 8))
			binary.LittleEndian.PutUint32(b[4:], 1000)
			return withChecksum(b, 9)
		}(), ErrMalformed},
		{"entry length zero", table("APIC", append(make([]byte, 8), 0, 0)), ErrMalformed},
		{"entry past end", table("APIC", append(make([]byte, 8), 0, 8, 0, 0)), ErrMalformed},
		{"entry too short for type", table("APIC", append(make([]byte, 8), 1, 4, 0, 0)), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseMADT(tc.b); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
	if _, err := ParseRSDP([]byte("RSD PTR \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")); !errors.Is(err, ErrChecksum) {
		t.Errorf("bad RSDP checksum: %v", err)
	}
}

func TestHardwareReducedPowerOff(t *testing.T) {
	f := &FADT{HWReduced: true, SleepControl: GAS{Space: AddressSpaceIO, Address: 0x404, Present: true}}
	w, err := PowerOffWrites(f, SleepType{A: 5})
	if err != nil || len(w) != 1 || w[0].Address != 0x404 || w[0].Value != 5<<2|1<<5 {
		t.Fatalf("writes = %v, %v", w, err)
	}
	if _, err := PowerOffWrites(&FADT{}, SleepType{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no PM1a: %v", err)
	}
}

func FuzzTables(f *testing.F) {
	for _, m := range []string{"pc", "q35", "ovmf"} {
		for _, sig := range []string{"APIC", "FACP", "DSDT"} {
			if b, err := os.ReadFile(filepath.Join("testdata", m, sig+".bin")); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Fix the checksum so the fuzzer reaches the body parsers.
		if len(b) >= HeaderSize {
			binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
			withChecksum(b, 9)
		}
		if m, err := ParseMADT(b); err == nil && m == nil {
			t.Fatal("nil MADT without error")
		}
		if fa, err := ParseFADT(b); err == nil {
			_, _ = PowerOffWrites(fa, SleepType{})
			_ = ResetWrites(fa)
		}
		_, _ = FindS5(b)
		_, _ = ParseRoot(b)
		_, _ = ParseRSDP(b)
	})
}

func ExampleLoad() {
	// On bare metal the PhysReader copies from identity-mapped memory; here
	// it is a stand-in holding nothing, so no RSDP is found.
	_, err := FindRSDP(physMem{})
	fmt.Println(err)
	// Output: acpi: no RSDP found
}
