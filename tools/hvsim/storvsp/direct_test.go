package storvsp

import (
	"bytes"
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
)

// ioPFNs runs one SRB whose GPA-direct range (docs/hyperv-protocol.md
// §4.5: reserved u32, range count u32, then byte count u32, byte offset
// u32 and the PFNs) lists pfns in the given order.
func (c *tchan) ioPFNs(s srbReq, off int, pfns []uint64) srbDone {
	c.g.t.Helper()
	h := make([]byte, 16+8*len(pfns))
	p32(h, 4, 1)
	p32(h, 8, s.length)
	p32(h, 12, uint32(off))
	for i, p := range pfns {
		p64(h, 16+8*i, p)
	}
	txMu.Lock()
	txSeq++
	tx := txSeq
	txMu.Unlock()
	c.send(9, 1, tx, h, s.bytes())
	return decodeDone(c.g.t, c.completion(tx))
}

// Data moves straight between the store and guest memory when the range's
// pages are consecutive, and through the controller's buffer when they
// are not: both give the guest the same bytes, either way round.
func TestReadWriteScatteredPages(t *testing.T) {
	st := NewMemStore(1 << 20)
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: {Store: st}})
	r.c.negotiate(0x0602, 64)
	pattern := make([]byte, 8192)
	for i := range pattern {
		pattern[i] = byte(i*13 + i>>8)
	}
	// The buffer's pages 5 and 2, in that order: 8 KiB from offset 512
	// spans three pages, the first two not consecutive.
	pfns := []uint64{r.buf.PFNAt(5), r.buf.PFNAt(2), r.buf.PFNAt(3)}
	copy(r.buf.Mem[5*4096+512:6*4096], pattern)
	copy(r.buf.Mem[2*4096:4*4096], pattern[4096-512:])
	if d := r.c.ioPFNs(srbReq{cdb: cdb10(0x2A, 64, 16), dataIn: 0, length: 8192}, 512, pfns); d.srbStatus != 1 || d.transferred != 8192 {
		t.Fatalf("WRITE(10) from scattered pages: % x", d.raw[:32])
	}
	if !bytes.Equal(st.Bytes()[64*512:64*512+8192], pattern) {
		t.Fatal("store does not hold the scattered write")
	}
	clear(r.buf.Mem[:8*4096])
	if d := r.c.ioPFNs(srbReq{cdb: cdb10(0x28, 64, 16), dataIn: 1, length: 8192}, 512, pfns); d.srbStatus != 1 || d.transferred != 8192 {
		t.Fatalf("READ(10) into scattered pages: % x", d.raw[:32])
	}
	if !bytes.Equal(r.buf.Mem[5*4096+512:6*4096], pattern[:4096-512]) || !bytes.Equal(r.buf.Mem[2*4096:2*4096+4608], pattern[4096-512:]) {
		t.Fatal("scattered pages do not hold the read")
	}
	// Consecutive pages (one contiguous span): the direct path.
	seq := []uint64{r.buf.PFNAt(6), r.buf.PFNAt(7), r.buf.PFNAt(8)}
	if d := r.c.ioPFNs(srbReq{cdb: cdb10(0x28, 64, 16), dataIn: 1, length: 8192}, 512, seq); d.srbStatus != 1 || d.transferred != 8192 {
		t.Fatalf("READ(10) into consecutive pages: % x", d.raw[:32])
	}
	if !bytes.Equal(r.buf.Mem[6*4096+512:6*4096+512+8192], pattern) {
		t.Fatal("consecutive pages do not hold the read")
	}
	noViolations(t, r.g.h)
}
