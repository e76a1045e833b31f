package chanmsg

import "testing"

func seeds(f *testing.F) {
	var buf [MaxSize]byte
	for _, m := range []interface{ Encode([]byte) (int, error) }{
		&OfferChannel{RelID: 1}, &RescindChannelOffer{RelID: 2}, AllOffersDelivered{},
		&OpenChannelResult{RelID: 3}, &GPADLCreated{RelID: 4, GPADL: 5}, &GPADLTorndown{GPADL: 5},
		&VersionResponse{VersionSupported: 1}, UnloadResponse{}, &ModifyChannelResponse{RelID: 6},
		&InitiateContact{Version: Version5_3}, RequestOffers{}, &OpenChannel{RelID: 7},
		&CloseChannel{RelID: 8}, &GPADLHeader{RelID: 1, RangeBufLen: 16, RangeCount: 1, ByteCount: 4096, PFNs: []uint64{9}},
		&GPADLBody{PFNs: []uint64{1, 2}}, &GPADLTeardown{RelID: 1}, &RelIDReleased{RelID: 1}, Unload{},
		&ModifyChannel{RelID: 1},
	} {
		n, _ := m.Encode(buf[:])
		f.Add(append([]byte(nil), buf[:n]...))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0})
}

// FuzzDecode feeds arbitrary bytes to both dispatchers: no panic, and an
// accepted message is within the size limit, has the type it was decoded
// from and a valid relid where it carries one.
func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dec := range []func([]byte) (Message, error){Decode, DecodeGuest} {
			m, err := dec(b)
			if err != nil {
				if m != nil {
					t.Fatal("message with error")
				}
				continue
			}
			if len(b) > MaxSize || len(b) < HeaderSize {
				t.Fatalf("accepted %d bytes", len(b))
			}
			if typ, _ := PeekType(b); typ != m.Type() {
				t.Fatalf("type %v decoded as %v", typ, m.Type())
			}
			switch m := m.(type) {
			case OfferChannel:
				if !ValidRelID(m.RelID) {
					t.Fatalf("relid %d", m.RelID)
				}
			case GPADLHeader:
				if len(m.PFNs) != min(m.TotalPFNs(), MaxHeaderPFNs) {
					t.Fatalf("%d PFNs of %d", len(m.PFNs), m.TotalPFNs())
				}
			case GPADLBody:
				if len(m.PFNs) == 0 || len(m.PFNs) > MaxBodyPFNs {
					t.Fatalf("%d body PFNs", len(m.PFNs))
				}
			}
		}
	})
}

// FuzzDecodeOfferChannel checks the offer decoder alone: accepted offers
// re-encode to the first 196 bytes of the input.
func FuzzDecodeOfferChannel(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeOfferChannel(b)
		if err != nil {
			return
		}
		var out [SizeOfferChannel]byte
		if n, err := m.Encode(out[:]); err != nil || n != SizeOfferChannel {
			t.Fatal(n, err)
		}
		for i := range out {
			if out[i] != b[i] && (i < 4 || i >= 8) { // padding @4 is not kept
				t.Fatalf("byte %d: %#x != %#x", i, out[i], b[i])
			}
		}
	})
}

// FuzzDecodeGPADLHeader checks the range arithmetic on arbitrary input.
func FuzzDecodeGPADLHeader(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeGPADLHeader(b)
		if err != nil {
			return
		}
		total := m.TotalPFNs()
		if total < 1 || m.ByteOffset >= 4096 || (uint64(m.ByteOffset)+uint64(m.ByteCount)+4095)/4096 != uint64(total) {
			t.Fatalf("accepted %+v", m)
		}
	})
}
