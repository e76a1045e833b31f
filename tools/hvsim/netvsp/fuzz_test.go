package netvsp

import (
	"testing"
	"time"
)

// Every parser of guest bytes has a fuzz target; the property is "returns,
// never panics" plus the invariants noted per target.

func FuzzParseNVSP(f *testing.F) {
	f.Add(nvsp(1, NVSPVersion61, NVSPVersion61))
	f.Add(nvsp(107, 1, 3, 52))
	f.Add(nvsp(125, 1514, 0, 0x21))
	f.Add([]byte{101, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseNVSP(b)
		if err == nil {
			if need, ok := nvspMinSize(m.Type); !ok || len(b) < need {
				t.Fatalf("accepted type %d in %d bytes", m.Type, len(b))
			}
		}
	})
}

func FuzzParseRNDISControl(f *testing.F) {
	f.Add([]byte{4, 0, 0, 0, 28, 0, 0, 0, 3, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0, 0, 0, 32, 0, 0, 0, 4, 0, 0, 0, 0x0e, 1, 1, 0, 4, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseRNDISControl(b)
		if err == nil && (int(m.Length) > len(b) || len(m.Info) > len(b)) {
			t.Fatalf("message %+v beyond %d bytes", m, len(b))
		}
	})
}

func FuzzParseRNDISPacket(f *testing.F) {
	f.Add(guestPacket(arpRequest()))
	f.Add(guestPacket(make([]byte, 60), ppi{0, csumReqTCP4}, ppi{2, lsoInfo(1460)}, ppi{6, 5}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parseRNDISPacket(b)
		if err == nil && (int(p.Length) > len(b) || len(p.Data) > len(b)) {
			t.Fatalf("packet %+v beyond %d bytes", p, len(b))
		}
	})
}

func FuzzParseRSSParams(f *testing.F) {
	b := make([]byte, 96)
	copy(b, []byte{0x89, 2, 40, 0})
	put32(b, 8, 0x201)
	put16(b, 12, 16)
	put32(b, 16, 40)
	put16(b, 20, 40)
	put32(b, 24, 56)
	f.Add(b, 4)
	f.Fuzz(func(t *testing.T, b []byte, queues int) {
		p, err := parseRSSParams(b, queues)
		if err == nil && !p.Disable {
			for i := 0; i < p.Entries; i++ {
				if int(p.Table[i]) >= queues {
					t.Fatalf("entry %d = %d of %d queues", i, p.Table[i], queues)
				}
			}
		}
	})
}

func FuzzApplyOffloadParams(f *testing.F) {
	f.Add([]byte{0x80, 1, 20, 0, 4, 1, 3, 0, 2, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		o := allOffloads
		if err := applyOffloadParams(b, &o); err != nil && o != allOffloads {
			t.Fatal("state changed by a refused request")
		}
	})
}

func FuzzParseConfigParam(f *testing.F) {
	f.Add([]byte{20, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 24, 0, 0, 0, 2, 0, 0, 0, 'a', 0, 'b', 0, '1', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseConfigParam(b)
	})
}

func FuzzTxChecksum(f *testing.F) {
	f.Add(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, []byte("abc")), false), uint32(csumReqTCP4))
	f.Add(arpRequest(), uint32(csumReqUDP4))
	f.Fuzz(func(t *testing.T, frame []byte, info uint32) {
		txChecksum(frame, info)
		o := allOffloads
		rxChecksum(frame, &o)
		var key [40]byte
		rssHash(&key, frame)
	})
}

func FuzzSegmentLSO(f *testing.F) {
	f.Add(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x18, make([]byte, 3000)), true), lsoInfo(1400))
	f.Fuzz(func(t *testing.T, frame []byte, info uint32) {
		scratch := make([]byte, 1514)
		total := 0
		segmentLSO(frame, info, 1514, scratch, func(s []byte) {
			if len(s) > 1514 {
				t.Fatalf("segment of %d bytes", len(s))
			}
			total++
		})
	})
}

// FuzzWholeLSO: whatever the frame and request, wholeLSO returns an error
// or leaves a frame whose IP length matches its size.
func FuzzWholeLSO(f *testing.F) {
	f.Add(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x18, make([]byte, 3000)), true), lsoInfo(1400))
	f.Fuzz(func(t *testing.T, frame []byte, info uint32) {
		if _, err := wholeLSO(frame, info, 1514); err != nil {
			return
		}
		h, ok := parseHeaders(frame, false)
		if !ok || h.L4+h.L4Len != len(frame) {
			t.Fatalf("accepted frame of %d bytes has IP length for %d", len(frame), h.L4+h.L4Len)
		}
	})
}

// FuzzGuestPacket drives a live NIC (negotiated, RNDIS up) with arbitrary
// guest packets through the real ring: whatever the bytes, the host must
// neither panic nor wedge (it keeps answering a keepalive-free probe: the
// channel stays open and serviced).
func FuzzGuestPacket(f *testing.F) {
	f.Add(uint8(0), true, []byte(nil), nvsp(107, 0, 0, 60))
	f.Add(uint8(1), true, make([]byte, 24), nvsp(107, 0, 0xFFFFFFFF, 0))
	f.Add(uint8(2), false, []byte(nil), nvsp(108, 1))
	f.Add(uint8(0), true, []byte(nil), nvsp(133, 1, 2))
	fb := newFake()
	n := newNIC(f, Config{Backend: fb})
	n.ready()
	go func() {
		for range fb.sent {
		}
	}()
	types := [...]uint16{0x6, 0x9, 0xB}
	f.Fuzz(func(t *testing.T, typ uint8, want bool, hdr, payload []byte) {
		if len(hdr)%8 != 0 || len(hdr) > 512 || len(payload) > 4096 {
			return
		}
		n.g.t = t // the guest's helpers report to this run
		flags := uint16(0)
		if want {
			flags = 1
		}
		for {
			if _, ok := n.c.tryRead(); !ok {
				break
			}
		}
		ch := n.g.h.Channel(n.primary.relid)
		if ch == nil {
			t.Fatal("channel closed by the host")
		}
		before := ch.Stats().PacketsIn
		n.c.write(types[int(typ)%len(types)], flags, 0x4000_0000+uint64(typ), hdr, payload)
		deadline := time.Now().Add(testWait)
		for ch.Stats().PacketsIn == before {
			if time.Now().After(deadline) {
				t.Fatal("host stopped taking packets")
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
}
