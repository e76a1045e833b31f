package storvsp

import (
	"sync/atomic"
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
)

func FuzzDecodeSRB(f *testing.F) {
	f.Add(srbReq{cdb: cdb10(0x28, 1, 1), dataIn: 1, length: 512}.bytes(), true)
	f.Add(srbReq{cdb: []byte{0}, dataIn: 2, size: 48}.bytes(), false)
	f.Add([]byte{3, 0, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, win8 bool) {
		n := srbLenPreWin8
		if win8 {
			n = srbLenWin8
		}
		r, err := decodeSRB(b, n)
		if err != nil {
			return
		}
		if r.cdbLen == 0 || r.cdbLen > 16 || r.dataIn > 2 || (r.dataIn == 2 && r.transferLen != 0) {
			t.Fatalf("accepted %+v", r)
		}
		for _, c := range r.cdb[r.cdbLen:] {
			if c != 0 {
				t.Fatalf("CDB bytes past the length kept: %+v", r)
			}
		}
	})
}

// readyPrimary returns the rig's primary channel state (the device's own
// goroutine idles while the test drives handle directly, sending nothing
// through the ring).
func (r *rig) primary(t testing.TB) *chanState {
	t.Helper()
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	if r.d.primary == nil {
		t.Fatal("no primary")
	}
	return r.d.primary
}

// drain discards what the host wrote to the guest's inbound ring.
func (c *tchan) drain() {
	atomic.StoreUint32(a32(c.in, 4), atomic.LoadUint32(a32(c.in, 0)))
}

// FuzzGuestPacket feeds arbitrary guest packets (type, flags, GPA-direct
// header, vstor payload) to a live controller in every protocol state: it
// must never panic, and a closed or broken channel must only make it stop.
func FuzzGuestPacket(f *testing.F) {
	read := srbReq{cdb: cdb10(0x28, 0, 8), dataIn: 1, length: 4096}.bytes()
	f.Add(uint16(6), uint16(1), []byte{}, vpkt(7, 64, nil))
	f.Add(uint16(6), uint16(1), []byte{}, vpkt(9, 64, []byte{2, 6}))
	f.Add(uint16(6), uint16(1), []byte{}, vpkt(10, 64, nil))
	f.Add(uint16(6), uint16(1), []byte{}, vpkt(13, 64, []byte{1, 0}))
	f.Add(uint16(6), uint16(1), []byte{}, vpkt(8, 64, nil))
	f.Add(uint16(9), uint16(1), []byte{0, 0, 0, 0, 1, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0}, read)
	f.Add(uint16(6), uint16(1), []byte{}, srbReq{cdb: inquiryCDB(true, 0x83, 255), dataIn: 2}.bytes())
	f.Add(uint16(6), uint16(0), []byte{}, []byte{1, 2, 3})
	r := newRig(f, Config{}, hvsim.Config{}, map[Addr]LUNConfig{
		{0, 0, 0}: {Store: NewMemStore(1 << 20), WriteCache: true},
		{0, 0, 1}: {Store: NewMemStore(1 << 20), ReadOnly: true},
	})
	c := r.primary(f)
	f.Fuzz(func(t *testing.T, typ, flags uint16, hdr, payload []byte) {
		c.handle(hvsim.Packet{Type: typ, Flags: flags, TransactionID: 1, Header: hdr, Payload: payload})
		r.c.drain()
	})
}

// TestIOAllocs: the per-I/O path allocates nothing.
func TestIOAllocs(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: {Store: NewMemStore(1 << 20)}})
	r.c.negotiate(0x0602, 64)
	c := r.primary(t)
	atomic.StoreUint32(a32(r.c.in, 8), 1) // guest masks its interrupt: no signals
	for _, s := range []srbReq{
		{cdb: cdb10(0x28, 8, 16), dataIn: 1, length: 8192},
		{cdb: cdb10(0x2A, 8, 16), dataIn: 0, length: 8192},
	} {
		p := hvsim.Packet{Type: 9, Flags: 1, TransactionID: 5, Header: gpaHeader(r.buf, 100, 8192), Payload: s.bytes()}
		allocs := testing.AllocsPerRun(200, func() {
			c.handle(p)
			r.c.drain()
		})
		if allocs != 0 {
			t.Errorf("CDB %#x: %v allocations per I/O", s.cdb[0], allocs)
		}
	}
	if st := r.d.Stats(); st.Completions < 400 {
		t.Fatalf("stats %+v", st)
	}
	noViolations(t, r.g.h)
}
