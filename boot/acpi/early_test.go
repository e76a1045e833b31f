package acpi

import "testing"

// view makes a View of the captured memory (zero-copy: a sub-slice of the
// captured table that holds the range; unpopulated memory reads as nil).
func (m physMem) view(addr uint64, n int) []byte {
	for base, b := range m {
		if addr >= base && addr+uint64(n) <= base+uint64(len(b)) {
			return b[addr-base : addr-base+uint64(n)]
		}
	}
	return nil
}

// TestFindS5PortsMatchesLoad checks the pre-runtime walker against the full
// decoder on the tables captured from QEMU, and that it allocates nothing.
func TestFindS5PortsMatchesLoad(t *testing.T) {
	for _, machine := range []string{"pc", "q35", "ovmf"} {
		t.Run(machine, func(t *testing.T) {
			mem, rsdp := loadCapture(t, machine)
			tables, _, err := Load(mem, rsdp)
			if err != nil {
				t.Fatal(err)
			}
			fb, _ := tables.Table("FACP")
			f, err := ParseFADT(fb)
			if err != nil {
				t.Fatal(err)
			}
			db, _ := tables.Table("DSDT")
			s5, err := FindS5(db)
			if err != nil {
				t.Fatal(err)
			}
			for _, hint := range []uint64{rsdp, 0} {
				if hint == 0 && machine == "ovmf" {
					continue // UEFI: no RSDP in the BIOS area; the loader passes it
				}
				got, ok := FindS5Ports(mem.view, hint)
				if !ok {
					t.Fatalf("rsdp hint %#x: not found", hint)
				}
				if uint64(got.PM1a) != f.PM1aControl.Address || got.S5 != s5 {
					t.Errorf("rsdp hint %#x: got %+v, want PM1a %#x S5 %+v", hint, got, f.PM1aControl.Address, s5)
				}
				if f.PM1bControl.Present != (got.PM1b != 0) {
					t.Errorf("PM1b = %#x, FADT says %+v", got.PM1b, f.PM1bControl)
				}
			}
			if n := testing.AllocsPerRun(20, func() { FindS5Ports(mem.view, rsdp) }); n != 0 {
				t.Errorf("FindS5Ports allocates %v times", n)
			}
		})
	}
}

func TestFindS5PortsRejects(t *testing.T) {
	mem, rsdp := loadCapture(t, "q35")
	// A corrupt RSDP checksum, a missing root table and no memory at all
	// must each give "not found", never a panic.
	bad := physMem{}
	for a, b := range mem {
		bad[a] = append([]byte(nil), b...)
	}
	bad[rsdp][8]++ // checksum byte
	for name, v := range map[string]View{
		"bad RSDP": bad.view,
		"nothing":  func(uint64, int) []byte { return nil },
	} {
		if _, ok := FindS5Ports(v, rsdp); ok {
			t.Errorf("%s: found", name)
		}
	}
}

func TestPM1Merge(t *testing.T) {
	// SCI_EN (bit 0) and the reserved bits survive; SLP_TYP (12:10) and
	// SLP_EN (13) are replaced (ACPI 4.8.3.2.1).
	for _, tc := range []struct {
		cur  uint16
		typ  uint8
		want uint16
	}{
		{0x0001, 0, 0x2001},
		{0x1C01, 5, 0x3401},
		{0xFFFF, 0, 0xE3FF},
	} {
		if got := PM1Merge(tc.cur, tc.typ); got != tc.want {
			t.Errorf("PM1Merge(%#x, %d) = %#x, want %#x", tc.cur, tc.typ, got, tc.want)
		}
		w := Write{Value: PM1SleepValue(tc.typ), Keep: pm1Keep}
		if got := w.Merge(uint32(tc.cur)); got != uint32(tc.want) {
			t.Errorf("Write.Merge(%#x) = %#x, want %#x", tc.cur, got, tc.want)
		}
	}
}

func FuzzFindS5Ports(f *testing.F) {
	f.Add([]byte("RSD PTR "), uint64(0))
	f.Fuzz(func(t *testing.T, mem []byte, rsdp uint64) {
		v := func(addr uint64, n int) []byte {
			if n < 0 || addr > uint64(len(mem)) || uint64(n) > uint64(len(mem))-addr {
				return nil
			}
			return mem[addr : addr+uint64(n)]
		}
		FindS5Ports(v, rsdp%uint64(len(mem)+1))
	})
}
