package nvsp

import "testing"

// FuzzParse feeds every NVSP decoder arbitrary host bytes: none may
// panic, and accepted values must respect the documented bounds.
func FuzzParse(f *testing.F) {
	f.Add(at(0, 2, 4, 0x60001, 8, 34, 12, 1))
	f.Add(at(0, 102, 4, 1, 8, 1, 12, 0, 16, 1728, 20, 100, 24, 172800))
	f.Add(at(0, 105, 4, 1, 8, 6144))
	f.Add(at(0, 108, 4, 1))
	f.Add(at(0, 133, 4, 1, 8, 3))
	f.Add(table(12, make([]uint32, 16), 76))
	f.Add(table(40, make([]uint32, 16), 104))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Type(b)
		_, _ = ParseInitComplete(b)
		if st, s, err := ParseReceiveBufferComplete(b, 1<<20); err == nil && st == StatusSuccess {
			if uint64(s.SubAllocSize)*uint64(s.SubAllocCount) > 1<<20 || s.EndOffset > 1<<20 || s.Offset != 0 {
				t.Fatalf("accepted %+v", s)
			}
		}
		if st, sz, err := ParseSendBufferComplete(b, 1<<20); err == nil && st == StatusSuccess && (sz == 0 || sz > 1<<20) {
			t.Fatalf("accepted section size %d", sz)
		}
		_, _ = ParseRNDISPacket(b)
		_, _ = ParseRNDISPacketComplete(b)
		if _, c, err := ParseSubChannelComplete(b, 4); err == nil && c > 4 && le.Uint32(b[4:]) == StatusSuccess {
			t.Fatalf("accepted %d sub-channels", c)
		}
		var tab [IndirectionTableSize]uint32
		for _, v := range Versions {
			if err := ParseIndirectionTable(b, v, 3, &tab); err == nil {
				for _, e := range tab {
					if e >= 3 {
						t.Fatalf("entry %d accepted", e)
					}
				}
			}
		}
		_, _, _ = ParseVFAssociation(b)
	})
}
