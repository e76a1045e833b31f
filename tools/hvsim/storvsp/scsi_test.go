package storvsp

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
)

// readCmd runs a data-in command into r.buf and returns the bytes the
// host transferred.
func (r *rig) readCmd(t *testing.T, lun byte, cdb []byte, n uint32) ([]byte, srbDone) {
	t.Helper()
	clear(r.buf.Mem[:n])
	d := r.c.io(srbReq{lun: lun, cdb: cdb, dataIn: 1, length: n}, r.buf, 0)
	return r.buf.Mem[:d.transferred], d
}

func inquiryCDB(evpd bool, page byte, alloc uint16) []byte {
	b := make([]byte, 6)
	b[0] = 0x12
	if evpd {
		b[1] = 1
	}
	b[2] = page
	binary.BigEndian.PutUint16(b[3:], alloc)
	return b
}

func TestInquiry(t *testing.T) {
	id := [16]byte{0x6A, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{
		{0, 0, 0}: {Store: NewMemStore(1 << 20), Serial: "SER-1", ID: id},
	})
	r.c.negotiate(0x0602, 64)

	std := []byte{
		0x00, 0x00, 0x06, 0x12, 31, 0x00, 0x00, 0x02,
		'M', 's', 'f', 't', ' ', ' ', ' ', ' ',
		'V', 'i', 'r', 't', 'u', 'a', 'l', ' ', 'D', 'i', 's', 'k', ' ', ' ', ' ', ' ',
		'1', '.', '0', ' ',
	}
	got, d := r.readCmd(t, 0, inquiryCDB(false, 0, 96), 96)
	if d.srbStatus != 1 {
		t.Fatalf("status %#x", d.srbStatus)
	}
	wantBytes(t, "standard INQUIRY", got, std)
	// Allocation length truncates.
	got, _ = r.readCmd(t, 0, inquiryCDB(false, 0, 5), 96)
	wantBytes(t, "INQUIRY alloc 5", got, std[:5])

	got, _ = r.readCmd(t, 0, inquiryCDB(true, 0x00, 255), 255)
	wantBytes(t, "VPD 00", got, []byte{0, 0, 0, 6, 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2})
	got, _ = r.readCmd(t, 0, inquiryCDB(true, 0x80, 255), 255)
	wantBytes(t, "VPD 80", got, []byte{0, 0x80, 0, 5, 'S', 'E', 'R', '-', '1'})
	got, _ = r.readCmd(t, 0, inquiryCDB(true, 0x83, 255), 255)
	wantBytes(t, "VPD 83", got, append([]byte{0, 0x83, 0, 20, 0x01, 0x03, 0x00, 16}, id[:]...))

	got, _ = r.readCmd(t, 0, inquiryCDB(true, 0xB0, 255), 255)
	b0 := make([]byte, 64)
	b0[1], b0[3] = 0xB0, 0x3C
	b0[4] = 1                                        // WSNZ
	b0[7] = 8                                        // granularity 4096/512
	binary.BigEndian.PutUint32(b0[8:], 0x40000/512)  // max transfer
	binary.BigEndian.PutUint32(b0[12:], 0x40000/512) // optimal
	binary.BigEndian.PutUint32(b0[20:], 1<<22)       // max unmap LBAs
	binary.BigEndian.PutUint32(b0[24:], 64)          // max unmap descriptors
	binary.BigEndian.PutUint32(b0[28:], 8)           // unmap granularity
	binary.BigEndian.PutUint64(b0[36:], 1<<22)       // max write same
	wantBytes(t, "VPD B0", got, b0)

	got, _ = r.readCmd(t, 0, inquiryCDB(true, 0xB2, 255), 255)
	wantBytes(t, "VPD B2", got, []byte{0, 0xB2, 0, 4, 0, 0xC4, 0x02, 0})

	// Unknown page and page without EVPD: ILLEGAL REQUEST, 24h.
	for _, cdb := range [][]byte{inquiryCDB(true, 0x99, 255), inquiryCDB(false, 0x80, 255)} {
		_, d := r.readCmd(t, 0, cdb, 255)
		if d.srbStatus != 0x86 || d.scsi != 2 || d.sense[2] != 5 || d.sense[12] != 0x24 {
			t.Errorf("INQUIRY % x: % x", cdb, d.raw)
		}
	}
	// No LUN 5: peripheral qualifier 3, type 1Fh.
	got, d = r.readCmd(t, 5, inquiryCDB(false, 0, 36), 36)
	if d.srbStatus != 1 || got[0] != 0x7F {
		t.Fatalf("INQUIRY of an absent LUN: % x", got)
	}
	// Other commands to an absent LUN: INVALID LUN, NTSTATUS device does
	// not exist.
	d = r.c.io(srbReq{lun: 5, cdb: []byte{0}, dataIn: 2}, r.buf, 0)
	if d.srbStatus != 0x20 || d.status != 0xC00000C0 {
		t.Fatalf("TUR to absent LUN: srb %#x status %#x", d.srbStatus, d.status)
	}
	noViolations(t, r.g.h)
}

func TestCapacityModeSenseReportLUNs(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{
		{0, 0, 0}: {Store: NewMemStore(8 << 20)},
		{0, 0, 2}: {Store: NewMemStore(1<<20 + 100), ReadOnly: true, SectorSize: 4096},
		{0, 0, 1}: {Store: NewMemStore(1 << 20), WriteCache: true},
		{0, 1, 0}: {Store: NewMemStore(1 << 20)},
	})
	r.c.negotiate(0x0602, 64)

	got, _ := r.readCmd(t, 0, cdb10(0x25, 0, 0), 8)
	wantBytes(t, "READ CAPACITY(10)", got, []byte{0, 0, 0x3F, 0xFF, 0, 0, 2, 0})
	rc16 := cdb16(0x9E, 0, 32)
	rc16[1] = 0x10
	got, _ = r.readCmd(t, 2, rc16, 32)
	want := make([]byte, 32)
	want[7] = 0xFF // 256 sectors of 4096 (the 100-byte tail is dropped)
	want[10] = 0x10
	wantBytes(t, "READ CAPACITY(16) read-only 4Kn", got, want)
	got, _ = r.readCmd(t, 0, rc16, 32)
	want = make([]byte, 32)
	want[5], want[6], want[7] = 0x00, 0x3F, 0xFF // last LBA 16383
	want[10] = 2                                 // 512-byte blocks
	want[13] = 3                                 // 8 logical per physical
	want[14] = 0x80 | 0x40                       // LBPME, LBPRZ
	wantBytes(t, "READ CAPACITY(16)", got, want)

	// MODE SENSE(6), caching page, with block descriptor; WCE clear.
	got, _ = r.readCmd(t, 0, []byte{0x1A, 0, 0x08, 0, 255, 0}, 255)
	ms := make([]byte, 32)
	ms[0], ms[2], ms[3] = 31, 0x10, 8
	binary.BigEndian.PutUint32(ms[4:], 8<<20/512)
	binary.BigEndian.PutUint32(ms[8:], 512)
	ms[12], ms[13] = 0x08, 0x12
	wantBytes(t, "MODE SENSE(6)", got, ms)
	// MODE SENSE(10), DBD, all pages, write cache on LUN 1.
	got, _ = r.readCmd(t, 1, []byte{0x5A, 0x08, 0x3F, 0, 0, 0, 0, 0, 255, 0}, 255)
	ms = make([]byte, 28)
	ms[1], ms[3] = 26, 0x10
	ms[8], ms[9], ms[10] = 0x08, 0x12, 0x04
	wantBytes(t, "MODE SENSE(10) WCE", got, ms)
	// Read-only: WP.
	got, _ = r.readCmd(t, 2, []byte{0x1A, 0x08, 0x08, 0, 255, 0}, 255)
	if len(got) != 24 || got[2] != 0x90 {
		t.Fatalf("MODE SENSE read-only: % x", got)
	}
	// Saved values are not supported.
	if _, d := r.readCmd(t, 0, []byte{0x1A, 0, 0xC8, 0, 255, 0}, 255); d.sense[12] != 0x39 {
		t.Fatalf("saved page: % x", d.raw)
	}

	// REPORT LUNS on target 0: LUNs 0, 1, 2.
	got, _ = r.readCmd(t, 0, []byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, 256)
	rl := make([]byte, 32)
	rl[3] = 24
	rl[17], rl[25] = 1, 2
	wantBytes(t, "REPORT LUNS", got, rl)
	// REPORT LUNS answers for a LUN that does not exist too.
	got, _ = r.readCmd(t, 7, []byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, 256)
	wantBytes(t, "REPORT LUNS via LUN 7", got, rl)
	noViolations(t, r.g.h)
}

func TestReadWrite(t *testing.T) {
	st := NewMemStore(4 << 20)
	ro := NewMemStore(1 << 20)
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{
		{0, 0, 0}: {Store: st},
		{0, 0, 1}: {Store: ro, ReadOnly: true},
	})
	r.c.negotiate(0x0602, 64)
	pattern := make([]byte, 64<<10)
	for i := range pattern {
		pattern[i] = byte(i*7 + i>>9)
	}
	// WRITE(16) of 128 sectors from an unaligned guest buffer.
	copy(r.buf.Mem[300:], pattern)
	d := r.c.io(srbReq{cdb: cdb16(0x8A, 1000, 128), dataIn: 0, length: 64 << 10}, r.buf, 300)
	if d.srbStatus != 1 || d.transferred != 64<<10 {
		t.Fatalf("WRITE(16): % x", d.raw)
	}
	if !bytes.Equal(st.Bytes()[1000*512:1000*512+64<<10], pattern) {
		t.Fatal("store does not hold the write")
	}
	// READ(10) back.
	clear(r.buf.Mem)
	d = r.c.io(srbReq{cdb: cdb10(0x28, 1000, 128), dataIn: 1, length: 64 << 10}, r.buf, 4096)
	if d.srbStatus != 1 || !bytes.Equal(r.buf.Mem[4096:4096+64<<10], pattern) {
		t.Fatalf("READ(10): % x", d.raw[:32])
	}
	// Buffer larger than the CDB: only the CDB's bytes move.
	d = r.c.io(srbReq{cdb: cdb10(0x28, 0, 1), dataIn: 1, length: 4096}, r.buf, 0)
	if d.srbStatus != 1 || d.transferred != 512 {
		t.Fatalf("READ 1 sector into 4 KiB: % x", d.raw[:32])
	}
	// Buffer smaller than the CDB: DATA OVERRUN with sense.
	d = r.c.io(srbReq{cdb: cdb10(0x28, 0, 2), dataIn: 1, length: 512}, r.buf, 0)
	if d.srbStatus != 0x92 || d.status != 0x80000005 {
		t.Fatalf("READ 2 sectors into 512: srb %#x status %#x", d.srbStatus, d.status)
	}
	// Past the end: LBA OUT OF RANGE.
	d = r.c.io(srbReq{cdb: cdb10(0x28, 8191, 2), dataIn: 1, length: 1024}, r.buf, 0)
	if d.srbStatus != 0x84 || d.sense[2] != 5 || d.sense[12] != 0x21 {
		t.Fatalf("READ past the end: % x", d.raw)
	}
	// Read-only LUN: DATA PROTECT, WRITE PROTECTED.
	d = r.c.io(srbReq{lun: 1, cdb: cdb10(0x2A, 0, 1), dataIn: 0, length: 512}, r.buf, 0)
	if d.srbStatus != 0x84 || d.sense[2] != 7 || d.sense[12] != 0x27 {
		t.Fatalf("write to read-only: % x", d.raw)
	}
	// Wrong direction: READ with data_in = write.
	d = r.c.io(srbReq{cdb: cdb10(0x28, 0, 1), dataIn: 0, length: 512}, r.buf, 0)
	if d.srbStatus != 0x86 {
		t.Fatalf("READ with data out: % x", d.raw)
	}
	// SYNCHRONIZE CACHE(10) and (16).
	for _, op := range []byte{0x35, 0x91} {
		cdb := make([]byte, 10)
		if op == 0x91 {
			cdb = make([]byte, 16)
		}
		cdb[0] = op
		if d := r.c.io(srbReq{cdb: cdb, dataIn: 2}, r.buf, 0); d.srbStatus != 1 {
			t.Fatalf("SYNCHRONIZE CACHE %#x: % x", op, d.raw)
		}
	}
	s, ok := r.d.LUNStats(Addr{})
	if !ok || s.Writes != 1 || s.Reads != 2 || s.Flushes != 2 || s.BytesWritten != 64<<10 {
		t.Fatalf("stats %+v", s)
	}
	noViolations(t, r.g.h)
}

func TestUnmapAndWriteSame(t *testing.T) {
	st := NewMemStore(1 << 20)
	for i := range st.Bytes() {
		st.Bytes()[i] = 0xEE
	}
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{
		{0, 0, 0}: {Store: st},
		{0, 0, 1}: {Store: NewMemStore(1 << 20), NoDiscard: true},
	})
	r.c.negotiate(0x0602, 64)
	// UNMAP two descriptors: LBA 10+2, LBA 100+1 (SBC-3 parameter list).
	pl := make([]byte, 40)
	binary.BigEndian.PutUint16(pl[0:], 38)
	binary.BigEndian.PutUint16(pl[2:], 32)
	binary.BigEndian.PutUint64(pl[8:], 10)
	binary.BigEndian.PutUint32(pl[16:], 2)
	binary.BigEndian.PutUint64(pl[24:], 100)
	binary.BigEndian.PutUint32(pl[32:], 1)
	copy(r.buf.Mem, pl)
	cdb := make([]byte, 10)
	cdb[0] = 0x42
	binary.BigEndian.PutUint16(cdb[7:], 40)
	if d := r.c.io(srbReq{cdb: cdb, dataIn: 0, length: 40}, r.buf, 0); d.srbStatus != 1 {
		t.Fatalf("UNMAP: % x", d.raw)
	}
	b := st.Bytes()
	if b[10*512-1] != 0xEE || !allZero(b[10*512:12*512]) || b[12*512] != 0xEE || !allZero(b[100*512:101*512]) || b[101*512] != 0xEE {
		t.Fatal("UNMAP zeroed the wrong sectors")
	}
	// UNMAP on a LUN without discard: invalid opcode.
	copy(r.buf.Mem, pl)
	if d := r.c.io(srbReq{lun: 1, cdb: cdb, dataIn: 0, length: 40}, r.buf, 0); d.srbStatus != 0x86 || d.sense[12] != 0x20 {
		t.Fatalf("UNMAP without discard: % x", d.raw)
	}
	// UNMAP descriptor past the end: LBA OUT OF RANGE, nothing changed.
	binary.BigEndian.PutUint64(r.buf.Mem[8:], 2047)
	binary.BigEndian.PutUint32(r.buf.Mem[16:], 2)
	st.Bytes()[2047*512] = 0xEE
	if d := r.c.io(srbReq{cdb: cdb, dataIn: 0, length: 40}, r.buf, 0); d.sense[12] != 0x21 || b[2047*512] != 0xEE {
		t.Fatalf("UNMAP past the end: % x", d.raw)
	}
	// WRITE SAME(16) of a pattern block over LBA 200..203.
	for i := 0; i < 512; i++ {
		r.buf.Mem[i] = byte(i)
	}
	ws := cdb16(0x93, 200, 4)
	if d := r.c.io(srbReq{cdb: ws, dataIn: 0, length: 512}, r.buf, 0); d.srbStatus != 1 || d.transferred != 512 {
		t.Fatalf("WRITE SAME: % x", d.raw)
	}
	for i := 200; i < 204; i++ {
		if !bytes.Equal(b[i*512:(i+1)*512], r.buf.Mem[:512]) {
			t.Fatalf("sector %d not written", i)
		}
	}
	// WRITE SAME(16) with UNMAP and NDOB: zeros, no data.
	ws = cdb16(0x93, 200, 2)
	ws[1] = 0x08 | 0x01
	if d := r.c.io(srbReq{cdb: ws, dataIn: 2}, r.buf, 0); d.srbStatus != 1 || !allZero(b[200*512:202*512]) || allZero(b[202*512:203*512]) {
		t.Fatalf("WRITE SAME UNMAP NDOB: % x", d.raw)
	}
	// Zero blocks: WSNZ.
	if d := r.c.io(srbReq{cdb: cdb16(0x93, 0, 0), dataIn: 0, length: 512}, r.buf, 0); d.sense[12] != 0x24 {
		t.Fatalf("WRITE SAME of 0 blocks: % x", d.raw)
	}
	s, _ := r.d.LUNStats(Addr{})
	if s.Unmaps != 2 || s.Discarded != 3*512+2*512 {
		t.Fatalf("stats %+v", s)
	}
	noViolations(t, r.g.h)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
