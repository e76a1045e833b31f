package netvsc

import "testing"

// Microsoft's RSS verification suite ("Verifying the RSS Hash
// Calculation"): the published hashes for DefaultRSSKey.
func TestToeplitzMicrosoftVectors(t *testing.T) {
	tests := []struct {
		src, dst         [4]byte
		sport, dport     uint16
		ipOnly, withPort uint32
	}{
		{[4]byte{66, 9, 149, 187}, [4]byte{161, 142, 100, 80}, 2794, 1766, 0x323e8fc2, 0x51ccc178},
		{[4]byte{199, 92, 111, 2}, [4]byte{65, 69, 140, 83}, 14230, 4739, 0xd718262a, 0xc626b0ea},
		{[4]byte{24, 19, 198, 95}, [4]byte{12, 22, 207, 184}, 12898, 38024, 0xd2d0a5de, 0x5c2b394a},
		{[4]byte{38, 27, 205, 30}, [4]byte{209, 142, 163, 6}, 48228, 2217, 0x82989176, 0xafc7327f},
		{[4]byte{153, 39, 163, 191}, [4]byte{202, 188, 127, 2}, 44251, 1303, 0x5d1809c5, 0x10e828a2},
	}
	for _, tt := range tests {
		in := append(append([]byte{}, tt.src[:]...), tt.dst[:]...)
		if h := Toeplitz(DefaultRSSKey[:], in); h != tt.ipOnly {
			t.Errorf("%v→%v: IPv4 hash %#08x, want %#08x", tt.src, tt.dst, h, tt.ipOnly)
		}
		in = append(in, byte(tt.sport>>8), byte(tt.sport), byte(tt.dport>>8), byte(tt.dport))
		if h := Toeplitz(DefaultRSSKey[:], in); h != tt.withPort {
			t.Errorf("%v→%v: TCP hash %#08x, want %#08x", tt.src, tt.dst, h, tt.withPort)
		}
	}
}

func TestFlowHashFrame(t *testing.T) {
	// An Ethernet + IPv4 + TCP frame for the first vector above.
	f := make([]byte, 14+20+20)
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[9] = 0x45, protoTCP
	copy(ip[12:], []byte{66, 9, 149, 187, 161, 142, 100, 80})
	tcp := ip[20:]
	tcp[0], tcp[1], tcp[2], tcp[3] = 2794>>8, 2794&0xFF, 1766>>8, 1766&0xFF
	if h, ok := flowHash(DefaultRSSKey[:], f); !ok || h != 0x51ccc178 {
		t.Errorf("flowHash = %#x, %v", h, ok)
	}
	ip[6] = 0x20 // more fragments: ports are not hashed
	if h, ok := flowHash(DefaultRSSKey[:], f); !ok || h != 0x323e8fc2 {
		t.Errorf("fragment flowHash = %#x, %v", h, ok)
	}
	f[12] = 0x86 // ARP-like: no flow
	if _, ok := flowHash(DefaultRSSKey[:], f[:20]); ok {
		t.Error("short non-IP frame hashed")
	}
}
