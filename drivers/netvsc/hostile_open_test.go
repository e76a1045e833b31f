package netvsc

import (
	"errors"
	"testing"
)

// TestHostileSetup: malformed or failed set-up answers make Open fail
// with a typed error and release all memory.
func TestHostileSetup(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(typ uint32, msg []byte) []byte
		want   error
	}{
		{"short INIT_COMPLETE", func(typ uint32, m []byte) []byte {
			if typ == 2 {
				return m[:12]
			}
			return m
		}, ErrProtocol},
		{"two receive sections", func(typ uint32, m []byte) []byte {
			if typ == 102 {
				le.PutUint32(m[8:], 2)
			}
			return m
		}, ErrProtocol},
		{"receive section past the buffer", func(typ uint32, m []byte) []byte {
			if typ == 102 {
				le.PutUint32(m[20:], 0xFFFFFFFF)
			}
			return m
		}, ErrProtocol},
		{"receive buffer refused", func(typ uint32, m []byte) []byte {
			if typ == 102 {
				le.PutUint32(m[4:], 2)
			}
			return m
		}, ErrHostStatus},
		{"send section size 0", func(typ uint32, m []byte) []byte {
			if typ == 105 {
				le.PutUint32(m[8:], 0)
			}
			return m
		}, ErrProtocol},
		{"send buffer refused", func(typ uint32, m []byte) []byte {
			if typ == 105 {
				le.PutUint32(m[4:], 6)
			}
			return m
		}, ErrHostStatus},
	}
	for _, tt := range tests {
		h := newHost(t)
		h.mutate = tt.mutate
		_, err := h.open(Config{})
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		var he *HostError
		if errors.Is(tt.want, ErrHostStatus) && !errors.As(err, &he) {
			t.Errorf("%s: no *HostError in %v", tt.name, err)
		}
		if l := h.mem.liveAllocs(); l != 0 {
			t.Errorf("%s: %d allocations leaked", tt.name, l)
		}
	}
}

// TestHostileRNDISSetup: a bad MAC or a failed RNDIS INITIALIZE fail
// Open; an unanswerable optional query (offloads) leaves offloads off.
func TestHostileRNDISSetup(t *testing.T) {
	h := newHost(t)
	h.mac = [6]byte{0x01, 0, 0, 0, 0, 1} // multicast
	if _, err := h.open(Config{}); !errors.Is(err, ErrProtocol) {
		t.Errorf("multicast MAC: %v", err)
	}
	h = newHost(t)
	h.noOffload = true
	n := h.mustOpen(Config{})
	if n.Offloads() != (Offloads{}) {
		t.Errorf("offloads %+v from a host without them", n.Offloads())
	}
	if err := n.Send(0, [][]byte{ethFrame(3000, 0)}, TxInfo{GSO: true, MSS: 1460, L4Offset: 34}); !errors.Is(err, ErrFrame) {
		t.Errorf("LSO without the offload: %v", err)
	}
}
