package hv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzLeaves are the leaves Detect may read, in the order a fuzz input
// supplies them (16 bytes each: EAX, EBX, ECX, EDX).
var fuzzLeaves = []uint32{
	0x00000001, 0x40000000, 0x40000001, 0x40000002, 0x40000003, 0x40000004,
	0x40000005, 0x40000006, 0x4000000A, 0x4000000C, 0x40000081, 0x40000082,
}

func tableBytes(t cpuidTable) []byte {
	var b []byte
	for _, l := range fuzzLeaves {
		r := t[l]
		b = binary.LittleEndian.AppendUint32(b, r.EAX)
		b = binary.LittleEndian.AppendUint32(b, r.EBX)
		b = binary.LittleEndian.AppendUint32(b, r.ECX)
		b = binary.LittleEndian.AppendUint32(b, r.EDX)
	}
	return b
}

func tableFromBytes(data []byte) cpuidTable {
	t := cpuidTable{}
	var buf [16]byte
	for i, l := range fuzzLeaves {
		clear(buf[:])
		if 16*i < len(data) {
			copy(buf[:], data[16*i:])
		}
		t[l] = CPUIDResult{
			EAX: binary.LittleEndian.Uint32(buf[0:]),
			EBX: binary.LittleEndian.Uint32(buf[4:]),
			ECX: binary.LittleEndian.Uint32(buf[8:]),
			EDX: binary.LittleEndian.Uint32(buf[12:]),
		}
	}
	return t
}

func FuzzDetect(f *testing.F) {
	for _, t := range []cpuidTable{ws2022, azureSNP, kvm, kvmHv, tcg, bareMetal} {
		f.Add(tableBytes(t))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		table := tableFromBytes(data)
		var read []uint32
		info, err := Detect(table.fn(&read))
		for _, l := range read {
			if l > CPUIDLeafVendor && l < CPUIDLeafVSInterface && l > info.MaxLeaf {
				t.Fatalf("read leaf %#x above max %#x", l, info.MaxLeaf)
			}
		}
		notHV, missing, isolated := errors.Is(err, ErrNotHyperV), errors.Is(err, ErrMissingFeature), errors.Is(err, ErrIsolated)
		kinds := 0
		for _, k := range []bool{notHV, missing, isolated} {
			if k {
				kinds++
			}
		}
		switch {
		case err == nil:
			if !info.Present || info.Vendor != VendorMicrosoft || info.Interface != InterfaceSignature ||
				info.MaxLeaf < MinMaxLeaf || !info.HasVMBusFeatures() || info.Isolated() {
				t.Fatalf("accepted %+v", info)
			}
		case kinds != 1:
			t.Fatalf("error %v is of %d kinds, want exactly one", err, kinds)
		case isolated:
			var ie *IsolatedError
			if !errors.As(err, &ie) || !info.Isolated() || ie.Isolation != info.Isolation || info.MaxLeaf < CPUIDLeafIsolation {
				t.Fatalf("isolation error %v with %+v", err, info)
			}
		case missing:
			var mf *MissingFeatureError
			if !errors.As(err, &mf) || mf.Missing == 0 || mf.Missing&^PrivVMBus != 0 || info.HasVMBusFeatures() ||
				!info.Privileges.Has(PrivHypercallMSRs) {
				t.Fatalf("missing-feature error %v with %+v", err, info)
			}
		}
		if table[1].ECX&CPUID1ECXHypervisor == 0 && (!notHV || len(read) != 1) {
			t.Fatalf("no hypervisor bit: err %v, read %#x", err, read)
		}
	})
}

func FuzzCopyMessage(f *testing.F) {
	f.Add(uint8(2), []byte{1, 0, 0, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'})
	f.Add(uint8(2), []byte{1, 0, 0, 0, 241})
	f.Add(uint8(15), []byte{0x10, 0, 0, 0x80, 240})
	f.Add(uint8(0), []byte{})
	f.Fuzz(func(t *testing.T, sint uint8, slot []byte) {
		sint %= SINTCount
		page := newPage()
		off := SlotOffset(sint)
		copy(page[off:off+MessageSlotSize], slot)
		var dst [MaxMessagePayload]byte
		typ, size, err := CopyMessage(page, sint, &dst)
		wantType := binary.LittleEndian.Uint32(page[off:])
		wantSize := int(page[off+4])
		if typ != wantType || size < 0 || size > MaxMessagePayload {
			t.Fatalf("type %#x (want %#x), size %d", typ, wantType, size)
		}
		switch {
		case wantType == 0:
			if size != 0 || err != nil {
				t.Fatalf("empty slot: size %d err %v", size, err)
			}
		case wantSize > MaxMessagePayload:
			if !errors.Is(err, ErrMessageSize) {
				t.Fatalf("size %d: err %v", wantSize, err)
			}
		default:
			if err != nil || size != wantSize || !bytes.Equal(dst[:size], page[off+16:off+16+size]) {
				t.Fatalf("size %d (want %d) err %v", size, wantSize, err)
			}
		}
		if MessagePending(page, sint) != (page[off+5]&1 != 0) {
			t.Fatalf("MessagePending disagrees with flags byte %#x", page[off+5])
		}
	})
}

func FuzzDecodePostMessage(f *testing.F) {
	var seed [PostMessageInputSize]byte
	_ = EncodePostMessage(&seed, 1, 1, []byte("hello"))
	f.Add(seed[:])
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 241})
	f.Fuzz(func(t *testing.T, data []byte) {
		var src [PostMessageInputSize]byte
		copy(src[:], data)
		conn, typ, payload, err := DecodePostMessage(&src)
		if err != nil {
			var s Status
			if !errors.As(err, &s) {
				t.Fatalf("error %v is not a Status", err)
			}
			return
		}
		if len(payload) > MaxMessagePayload || !ValidPostMessageType(typ) {
			t.Fatalf("accepted type %#x, %d bytes", typ, len(payload))
		}
		var again [PostMessageInputSize]byte
		if err := EncodePostMessage(&again, conn, typ, payload); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		n := 16 + len(payload)
		if !bytes.Equal(again[:n], src[:n]) {
			t.Fatalf("re-encoded block differs")
		}
	})
}

func FuzzDecodeTimerMessage(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{4})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeTimerMessage(data)
		if err != nil {
			return
		}
		if len(data) < TimerMessageSize || m.TimerIndex >= SyntheticTimerCount {
			t.Fatalf("accepted %+v from %d bytes", m, len(data))
		}
		out := make([]byte, TimerMessageSize)
		m.Encode(out)
		want := bytes.Clone(data[:TimerMessageSize])
		clear(want[4:8])
		if !bytes.Equal(out, want) {
			t.Fatalf("round trip % x != % x", out, want)
		}
	})
}

func FuzzReadReferenceTSCPage(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}, uint64(2000))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF}, uint64(1))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, header []byte, tsc uint64) {
		page := newPage()
		copy(page[:32], header)
		ref, ok := ReadReferenceTSCPage(page, func() uint64 { return tsc })
		seq := binary.LittleEndian.Uint32(page[0:])
		if ok != (seq != 0) {
			t.Fatalf("sequence %#x: ok %v", seq, ok)
		}
		want := ReferenceTime(tsc, binary.LittleEndian.Uint64(page[8:]), int64(binary.LittleEndian.Uint64(page[16:])))
		if ok && ref != want {
			t.Fatalf("ref %d, want %d", ref, want)
		}
	})
}
