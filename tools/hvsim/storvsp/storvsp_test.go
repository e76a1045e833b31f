package storvsp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
)

func memLUN(size int64) LUNConfig { return LUNConfig{Store: NewMemStore(size)} }

// TestInitSequenceBytes checks each init completion byte for byte against
// §6.3/§6.4: 64-byte COMPLETE_IO packets, version echoed, properties at
// their offsets.
func TestInitSequenceBytes(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, nil)
	c := r.c
	want := make([]byte, 64)
	want[0] = 1 // COMPLETE_IO, flags 0, status 0
	wantBytes(t, "BEGIN_INITIALIZATION", c.call(vpkt(7, 64, nil)), want)

	// WS2022 accepts 6.2 (§6.1, §11 #11).
	ver := vpkt(9, 64, []byte{0x02, 0x06})
	want = make([]byte, 64)
	want[0] = 1
	want[12], want[13] = 0x02, 0x06
	wantBytes(t, "QUERY_PROTOCOL_VERSION 6.2", c.call(ver), want)

	want = make([]byte, 64)
	want[0] = 1
	want[16] = 8                           // max sub-channels u16 @12+4
	want[20] = 1                           // multi-channel flag @12+8
	want[24], want[25], want[26] = 0, 0, 4 // max transfer 0x40000 @12+12
	wantBytes(t, "QUERY_PROPERTIES", c.call(vpkt(10, 64, nil)), want)

	want = make([]byte, 64)
	want[0] = 1
	wantBytes(t, "END_INITIALIZATION", c.call(vpkt(8, 64, nil)), want)
	if !r.d.Ready() || r.d.Version() != 0x0602 {
		t.Fatalf("ready %v version %#x", r.d.Ready(), r.d.Version())
	}
	noViolations(t, r.g.h)
}

// TestVersionsByProfile: exact versions accepted per host profile; a
// rejected one is REVISION_MISMATCH (0xC0000059) with the version echoed,
// and the guest may try the next (§6.1, §6.4 step 2).
func TestVersionsByProfile(t *testing.T) {
	cases := []struct {
		profile hvsim.Profile
		cfg     []uint16
		v       uint16
		ok      bool
	}{
		{hvsim.WS2022, nil, 0x0602, true},
		{hvsim.WS2016, nil, 0x0602, true},
		{hvsim.WS2012R2, nil, 0x0602, false},
		{hvsim.WS2012R2, nil, 0x0600, true},
		{hvsim.WS2022, nil, 0x0501, true},
		{hvsim.WS2022, nil, 0x0402, true},
		{hvsim.WS2022, nil, 0x0200, true},
		{hvsim.WS2022, nil, 0x0601, false},
		{hvsim.WS2022, nil, 0x0700, false},
		{hvsim.WS2022, []uint16{0x0600, 0x0501, 0x0402, 0x0200}, 0x0602, false}, // OpenVMM's set
	}
	for _, tc := range cases {
		r := newRig(t, Config{Versions: tc.cfg}, hvsim.Config{Profile: tc.profile}, nil)
		r.c.call(vpkt(7, 64, nil))
		var u [2]byte
		u[0], u[1] = byte(tc.v), byte(tc.v>>8)
		got := r.c.call(vpkt(9, 64, u[:]))
		st := g32(got, 8)
		if (st == 0) != tc.ok || (!tc.ok && st != 0xC0000059) || g16(got, 12) != tc.v {
			t.Errorf("%v %#x: status %#x echo %#x", tc.profile, tc.v, st, g16(got, 12))
		}
		if !tc.ok {
			// Step down to 6.0, which every profile takes.
			if st := g32(r.c.call(vpkt(9, 64, []byte{0, 6})), 8); st != 0 {
				t.Errorf("%v: 6.0 after a rejection: %#x", tc.profile, st)
			}
		}
		noViolations(t, r.g.h)
	}
}

// TestPreWin8PacketSizes: with VSTOR 4.2 the guest sends 48-byte packets;
// completions are 48 bytes, properties report no multi-channel, SRB
// completions carry sense length 0x12 (§6.3, §6.6).
func TestPreWin8PacketSizes(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{0, 0, 0}: memLUN(1 << 20)})
	props := r.c.negotiate(0x0402, 48)
	if len(props) != 48 || g16(props, 16) != 0 || g32(props, 20) != 0 || g32(props, 24) != 0x40000 {
		t.Fatalf("properties % x", props)
	}
	d := r.c.io(srbReq{cdb: []byte{0, 0, 0, 0, 0, 0}, dataIn: 2, size: 48}, r.buf, 0)
	if len(d.raw) != 48 || d.sizeOfVmscsi != 0x24 || d.srbStatus != 1 || d.senseLen != 0x12 {
		t.Fatalf("TEST UNIT READY completion % x", d.raw)
	}
	// A 64-byte SRB is accepted too (Hyper-V caps the echo, not the
	// request); a 40-byte one is a violation.
	d = r.c.io(srbReq{cdb: []byte{0, 0, 0, 0, 0, 0}, dataIn: 2}, r.buf, 0)
	if d.srbStatus != 1 || len(d.raw) != 64 {
		t.Fatalf("64-byte SRB at 4.2: % x", d.raw)
	}
	noViolations(t, r.g.h)
	txSeq++
	r.c.send(6, 1, txSeq, nil, srbReq{cdb: []byte{0}, dataIn: 2}.bytes()[:40])
	if p := r.c.completion(txSeq); p[14] != 0x15 {
		t.Fatalf("short SRB completion % x", p)
	}
	if n := r.g.h.ViolationCount(); n != 1 {
		t.Fatalf("%d violations", n)
	}
}

// TestOutOfOrderInit: anything but the expected step is
// INVALID_DEVICE_STATE and a violation (§6.4; OpenVMM storvsp).
func TestOutOfOrderInit(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, nil)
	steps := []struct {
		op     uint32
		union  []byte
		status uint32
	}{
		{3, nil, 0xC0000184},          // EXECUTE_SRB first
		{9, []byte{0, 6}, 0xC0000184}, // version before BEGIN
		{7, nil, 0},
		{7, nil, 0xC0000184}, // BEGIN twice
		{10, nil, 0xC0000184},
		{9, []byte{0, 6}, 0},
		{8, nil, 0xC0000184}, // END before properties
		{10, nil, 0},
		{13, []byte{9, 0}, 0xC000000D}, // more sub-channels than the max (8)
		{8, nil, 0},
		{7, nil, 0xC0000184}, // BEGIN on a ready controller
		{99, nil, 0xC0000010},
		{4, nil, 0}, // RESET_LUN: no-op success
	}
	for i, s := range steps {
		p := vpkt(s.op, 64, s.union)
		if s.op == 3 {
			p = srbReq{cdb: []byte{0}, dataIn: 2}.bytes()
		}
		if got := g32(r.c.call(p), 8); got != s.status {
			t.Errorf("step %d op %d: status %#x, want %#x", i, s.op, got, s.status)
		}
	}
	if n := r.g.h.ViolationCount(); n != 8 {
		t.Errorf("%d violations, want 8: %v", n, r.g.h.Violations())
	}
	for _, v := range r.g.h.Violations() {
		if !errors.Is(v, ErrProtocol) {
			t.Errorf("violation %v does not wrap ErrProtocol", v)
		}
	}
}

// TestStrictPackets: packets a host rejects are violations, never panics.
func TestStrictPackets(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{0, 0, 0}: memLUN(1 << 20)})
	r.c.negotiate(0x0602, 64)
	before := r.g.h.ViolationCount()
	tur := srbReq{cdb: []byte{0}, dataIn: 2}.bytes()
	// No completion requested: no answer, a violation.
	r.c.send(6, 0, 1, nil, tur)
	// Short vstor packet.
	r.c.send(6, 1, 2, nil, make([]byte, 8))
	// GPA direct with a broken header: error completion.
	read := srbReq{cdb: cdb10(0x28, 0, 1), dataIn: 1, length: 512}
	txSeq++
	r.c.send(9, 1, txSeq, []byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}, read.bytes())
	if d := decodeDone(t, r.c.completion(txSeq)); d.srbStatus&0x3F != SRBInvalidRequest {
		t.Errorf("bad GPA header: SRB status %#x", d.srbStatus)
	}
	// Transfer larger than the range.
	txSeq++
	r.c.send(9, 1, txSeq, gpaHeader(r.buf, 0, 256), read.bytes())
	if d := decodeDone(t, r.c.completion(txSeq)); d.srbStatus&0x3F != SRBInvalidRequest {
		t.Errorf("short range: SRB status %#x", d.srbStatus)
	}
	// Data transfer in an in-band packet.
	txSeq++
	r.c.send(6, 1, txSeq, nil, read.bytes())
	if d := decodeDone(t, r.c.completion(txSeq)); d.srbStatus&0x3F != SRBInvalidRequest {
		t.Errorf("in-band data: SRB status %#x", d.srbStatus)
	}
	// CDB length 17.
	bad := srbReq{cdb: []byte{0}, dataIn: 2}.bytes()
	bad[20] = 17
	if d := decodeDone(t, r.c.call(bad)); d.srbStatus != 0x15 {
		t.Errorf("CDB length 17: SRB status %#x", d.srbStatus)
	}
	// Transfer beyond MaxTransfer.
	big := srbReq{cdb: cdb10(0x28, 0, 1024), dataIn: 1, length: 512 << 10}
	if d := r.c.io(big, r.buf, 0); d.srbStatus&0x3F != SRBInvalidRequest {
		t.Errorf("512 KiB transfer: SRB status %#x", d.srbStatus)
	}
	// The controller still works.
	if d := r.c.io(srbReq{cdb: []byte{0}, dataIn: 2}, r.buf, 0); d.srbStatus != 1 {
		t.Fatalf("TUR after violations: %#x", d.srbStatus)
	}
	if n := r.g.h.ViolationCount() - before; n != 7 {
		t.Fatalf("%d violations, want 7: %v", n, r.g.h.Violations())
	}
	if !r.c.empty() {
		t.Fatal("host answered a packet that asked for no answer")
	}
}

// TestSRBCompletionBytes checks a READ(10) completion byte for byte
// (§6.3, §6.5) and the data in guest memory.
func TestSRBCompletionBytes(t *testing.T) {
	st := NewMemStore(1 << 20)
	copy(st.Bytes()[1024:], bytes.Repeat([]byte("0123456789abcdef"), 64))
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{0, 0, 3}: {Store: st}})
	r.c.negotiate(0x0602, 64)
	d := r.c.io(srbReq{lun: 3, cdb: cdb10(0x28, 2, 2), dataIn: 1, length: 1024}, r.buf, 100)
	want := make([]byte, 64)
	want[0] = 1                     // COMPLETE_IO
	want[12], want[13] = 0x34, 0    // vmscsi length
	want[14] = 0x01                 // SRB success
	want[15] = 0x00                 // SCSI good
	want[19] = 3                    // LUN echoed
	want[20] = 10                   // CDB length
	want[21] = 0x14                 // sense buffer size
	want[22] = 1                    // data in
	want[24], want[25] = 0x00, 0x04 // 1024 bytes transferred
	want[52] = 0x40                 // SRB flags echoed (DATA_IN)
	wantBytes(t, "READ(10) completion", d.raw, want)
	if got := r.buf.Mem[100 : 100+1024]; !bytes.Equal(got, st.Bytes()[1024:2048]) {
		t.Fatal("guest buffer does not hold sectors 2-3")
	}
	noViolations(t, r.g.h)
}

// TestCheckConditionBytes: an unknown opcode is CHECK CONDITION with
// autosense: SRB 0x86 (invalid request | autosense), fixed sense 70h,
// ILLEGAL REQUEST, ASC 20h; NTSTATUS 0xC0000185.
func TestCheckConditionBytes(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{0, 0, 0}: memLUN(1 << 20)})
	r.c.negotiate(0x0602, 64)
	d := r.c.io(srbReq{cdb: []byte{0xC5, 0, 0, 0, 0, 0}, dataIn: 2}, r.buf, 0)
	want := make([]byte, 64)
	want[0] = 1
	want[8], want[9], want[10], want[11] = 0x85, 0x01, 0x00, 0xC0
	want[12] = 0x34
	want[14] = 0x86
	want[15] = 0x02
	want[20] = 6
	want[21] = 18
	want[22] = 2
	want[28] = 0x70 // sense @16 of the vmscsi request
	want[30] = 0x05
	want[35] = 10
	want[40] = 0x20
	wantBytes(t, "check condition", d.raw, want)
}
