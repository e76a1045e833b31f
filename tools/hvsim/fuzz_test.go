package hvsim

import (
	"encoding/binary"
	"testing"
)

// FuzzServerHandle feeds arbitrary guest channel messages to the server's
// handler: it must never panic, and whatever it does must leave its tables
// consistent.
func FuzzServerHandle(f *testing.F) {
	seed := func(typ uint32, size int, fields ...uint32) []byte {
		m := make([]byte, size)
		binary.LittleEndian.PutUint32(m, typ)
		for i, v := range fields {
			binary.LittleEndian.PutUint32(m[8+4*i:], v)
		}
		return m
	}
	f.Add(uint32(4), initiateContact(0x50003, 0, 0, 0, 0))
	f.Add(uint32(1), initiateContact(0x40000, 0, 0x100000, 0x101000, 0x102000))
	f.Add(uint32(1), seed(3, 8))
	f.Add(uint32(1), seed(8, 36, 1, 7, 16|1<<16, 4096, 0, 0x100))
	f.Add(uint32(1), seed(9, 24, 1, 7, 0x100))
	f.Add(uint32(1), seed(5, 148, 1, 1, 7, 0, 2))
	f.Add(uint32(1), seed(7, 12, 1))
	f.Add(uint32(1), seed(11, 16, 1, 7))
	f.Add(uint32(1), seed(13, 12, 1))
	f.Add(uint32(1), seed(16, 8))
	f.Add(uint32(1), seed(22, 16, 1, 0))
	f.Add(uint32(1), []byte{1, 2, 3})
	h, err := New(Config{MemoryBytes: 1 << 20, OnViolation: func(error) {}})
	if err != nil {
		f.Fatal(err)
	}
	defer h.Close()
	h.AddDevice(&Inert{Spec: OfferSpec{Class: ClassHeartbeat}})
	h.AddDevice(&Inert{Spec: OfferSpec{Class: ClassShutdown}})
	f.Fuzz(func(t *testing.T, conn uint32, msg []byte) {
		h.srv.handle(conn, msg)
		s := h.srv
		s.mu.Lock()
		defer s.mu.Unlock()
		for id, g := range s.gpadls {
			if g.id != id || len(g.pfns) > g.total || (g.created && len(g.pfns) != g.total) {
				t.Fatalf("inconsistent GPADL %+v", g)
			}
		}
		for _, o := range s.offers {
			if o.ch != nil && !o.guestOpen {
				t.Fatalf("host channel of relid %d open while the guest closed it", o.relid)
			}
		}
		if s.connected && !h.cfg.Profile.accepts(s.version) {
			t.Fatalf("connected at %#x", s.version)
		}
	})
}

// FuzzRingRecv lets the guest write arbitrary bytes and indices into the
// guest→host ring: the host's reader must return packets inside the ring or
// errors, never panic or run out of bounds.
func FuzzRingRecv(f *testing.F) {
	f.Add(uint32(32), uint32(0), []byte{6, 0, 2, 0, 3, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 'h', 'i'})
	f.Add(uint32(8), uint32(4088), []byte{0xB, 0, 2, 0, 2, 0})
	f.Add(uint32(4095), uint32(0), []byte{0xFF, 0xFF, 0xFF, 0xFF})
	h, err := New(Config{MemoryBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	defer h.Close()
	pages, _ := h.arena.AllocPages(2)
	f.Fuzz(func(t *testing.T, w, rd uint32, data []byte) {
		clear(pages.Mem)
		r, err := newRing(h.arena, []uint64{pages.PFN, pages.PFN + 1})
		if err != nil {
			t.Fatal(err)
		}
		copy(r.data[0], data)
		if rd%8 == 0 && rd < r.size {
			r.idx = rd
		}
		store32(r.hdr, ringOffWrite, w)
		buf := make([]byte, 8192)
		for i := 0; i < 8; i++ {
			p, n, _, err := r.recv(buf)
			if err != nil || n == 0 {
				return
			}
			if n > len(buf) {
				return
			}
			if len(p.Header)+len(p.Payload)+descSize != n || r.idx >= r.size || r.idx%8 != 0 {
				t.Fatalf("packet %d bytes, header %d payload %d, index %d", n, len(p.Header), len(p.Payload), r.idx)
			}
		}
	})
}
