package boot

import "testing"

func TestXAPICWrites(t *testing.T) {
	// IA32_APIC_BASE: base 0xFEE00000, BSP bit 8, EXTD bit 10, EN bit 11
	// (Intel SDM Vol. 3A Figure 11-26).
	for _, tc := range []struct {
		name string
		cur  uint64
		want []uint64
	}{
		{"xAPIC enabled: nothing", 0xFEE00900, nil},
		{"x2APIC: disable, then xAPIC", 0xFEE00D00, []uint64{0xFEE00100, 0xFEE00900}},
		{"globally disabled: enable", 0xFEE00100, []uint64{0xFEE00900}},
		{"AP, x2APIC", 0xFEE00C00, []uint64{0xFEE00000, 0xFEE00800}},
	} {
		w, n := xapicWrites(tc.cur)
		if n != len(tc.want) {
			t.Errorf("%s: %d writes, want %d", tc.name, n, len(tc.want))
			continue
		}
		for i := range n {
			if w[i] != tc.want[i] {
				t.Errorf("%s: write %d = %#x, want %#x", tc.name, i, w[i], tc.want[i])
			}
		}
		// Every write must be a legal state: never EXTD without EN.
		for i := range n {
			if w[i]&apicBaseEXTD != 0 && w[i]&apicBaseEN == 0 {
				t.Errorf("%s: write %d = %#x is the invalid EXTD-without-EN state", tc.name, i, w[i])
			}
		}
	}
}

func TestXAPICCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cur    uint64
		id     uint32
		locked bool
		want   bootError
	}{
		{"xAPIC already", 0xFEE00900, 300, true, bootOK},
		{"x2APIC, small ID", 0xFEE00D00, 3, false, bootOK},
		{"x2APIC, ID 254", 0xFEE00D00, 254, false, bootOK},
		{"x2APIC, ID 255", 0xFEE00D00, 255, false, errX2APICID},
		{"x2APIC locked", 0xFEE00D00, 0, true, errX2APICLocked},
	} {
		if got := xapicCheck(tc.cur, tc.id, tc.locked); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
