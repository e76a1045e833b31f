package storvsp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
)

// TestSubChannels: CREATE_SUB_CHANNELS before END_INITIALIZATION offers
// the sub-channels after the completion (§6.4 step 6); I/O runs on each;
// a later request for more offers only the missing ones.
func TestSubChannels(t *testing.T) {
	st := NewMemStore(4 << 20)
	d, _ := New(Config{Instance: testInstance, MaxSubChannels: 4})
	if err := d.Attach(Addr{}, LUNConfig{Store: st}); err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, hvsim.Config{VPs: 2}, d)
	offers := g.connect()
	c := g.open(offers[0], 16)
	c.call(vpkt(7, 64, nil))
	c.call(vpkt(9, 64, []byte{0x02, 0x06}))
	c.call(vpkt(10, 64, nil))
	if r := c.call(vpkt(13, 64, []byte{2, 0})); g32(r, 8) != 0 {
		t.Fatalf("CREATE_SUB_CHANNELS status %#x", g32(r, 8))
	}
	c.call(vpkt(8, 64, nil))
	subs := g.waitSubOffers(2)
	for i, o := range subs {
		if o.class != ClassSCSI.Wire() || o.inst != testInstance.Wire() || o.subIndex != uint16(i+1) {
			t.Fatalf("sub-channel offer %+v", o)
		}
	}
	chans := []*tchan{c, g.open(subs[0], 8), g.open(subs[1], 8)}
	var wg sync.WaitGroup
	for i, ch := range chans {
		buf, err := g.p.AllocPages(4)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 20; k++ {
				lba := uint32(i*1000 + k*8)
				copy(buf.Mem, fmt.Sprintf("channel %d io %d", i, k))
				if d := ch.io(srbReq{cdb: cdb10(0x2A, lba, 8), dataIn: 0, length: 4096}, buf, 0); d.srbStatus != 1 {
					t.Errorf("channel %d write: % x", i, d.raw)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range chans {
		for k := 0; k < 20; k++ {
			off := (i*1000 + k*8) * 512
			want := fmt.Sprintf("channel %d io %d", i, k)
			if got := string(st.Bytes()[off : off+len(want)]); got != want {
				t.Fatalf("sector %d holds %q", off/512, got)
			}
		}
	}
	// Ask for 3 in total: one more offer.
	if r := c.call(vpkt(13, 64, []byte{3, 0})); g32(r, 8) != 0 {
		t.Fatalf("second CREATE_SUB_CHANNELS %#x", g32(r, 8))
	}
	if subs := g.waitSubOffers(3); len(subs) != 3 || subs[2].subIndex != 3 {
		t.Fatalf("offers %+v", subs)
	}
	// CREATE_SUB_CHANNELS on a sub-channel is out of protocol.
	if r := chans[1].call(vpkt(13, 64, []byte{4, 0})); g32(r, 8) != 0xC0000184 {
		t.Fatalf("CREATE_SUB_CHANNELS on a sub-channel: %#x", g32(r, 8))
	}
	if n := g.h.ViolationCount(); n != 1 {
		t.Fatalf("%d violations", n)
	}
}

// TestHotAddRemove: Attach/Detach on a ready controller send
// ENUMERATE_BUS / REMOVE_DEVICE (§6.2): in-band, no completion requested,
// txid 0, 64 bytes; I/O to a removed LUN fails with INVALID LUN.
func TestHotAddRemove(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{0, 0, 0}: memLUN(1 << 20)})
	r.c.negotiate(0x0602, 64)
	if err := r.d.Attach(Addr{0, 0, 1}, memLUN(2<<20)); err != nil {
		t.Fatal(err)
	}
	note := func(op byte) {
		t.Helper()
		p := r.c.recv()
		want := make([]byte, 16+64)
		want[0] = 6 // in-band
		want[2] = 2 // offset8
		want[4] = 10
		want[16] = op
		wantBytes(t, "notification", p, want)
	}
	note(11)
	if err := r.d.Attach(Addr{0, 0, 1}, memLUN(1<<20)); !errors.Is(err, ErrAddress) {
		t.Fatalf("second attach at the same address: %v", err)
	}
	got, _ := r.readCmd(t, 0, []byte{0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, 256)
	if len(got) != 24 || got[17] != 1 {
		t.Fatalf("REPORT LUNS after hot add: % x", got)
	}
	if d := r.c.io(srbReq{lun: 1, cdb: cdb10(0x28, 0, 1), dataIn: 1, length: 512}, r.buf, 0); d.srbStatus != 1 {
		t.Fatalf("read from hot-added LUN: % x", d.raw)
	}
	if err := r.d.Detach(Addr{0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	note(2)
	if d := r.c.io(srbReq{lun: 1, cdb: cdb10(0x28, 0, 1), dataIn: 1, length: 512}, r.buf, 0); d.srbStatus != 0x20 {
		t.Fatalf("read from removed LUN: % x", d.raw)
	}
	if err := r.d.Detach(Addr{0, 0, 1}); !errors.Is(err, ErrAddress) {
		t.Fatalf("second detach: %v", err)
	}
	noViolations(t, r.g.h)
}

// TestIDEOffer: the IDE accelerator offer carries path/target/flags in its
// user data (§6.3); SRBs are routed to its one disk; no sub-channels.
func TestIDEOffer(t *testing.T) {
	st := NewMemStore(1 << 20)
	copy(st.Bytes()[512:], "ide disk")
	d, err := New(Config{Kind: IDE, Instance: testInstance, IDEPath: 1, IDETarget: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Attach(Addr{0, 0, 1}, LUNConfig{Store: st}); !errors.Is(err, ErrAddress) {
		t.Fatalf("IDE attach elsewhere: %v", err)
	}
	if err := d.Attach(Addr{1, 1, 0}, LUNConfig{Store: st}); err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, hvsim.Config{}, d)
	offers := g.connect()
	o := offers[0]
	if o.class != ClassIDE.Wire() {
		t.Fatalf("class % x", o.class)
	}
	wantUser := make([]byte, 120)
	wantUser[2], wantUser[3], wantUser[8] = 1, 1, 2
	wantBytes(t, "IDE user data", o.user[:], wantUser)
	c := g.open(o, 8)
	props := c.negotiate(0x0602, 64)
	if g16(props, 16) != 0 || g32(props, 20) != 0 {
		t.Fatalf("IDE properties % x", props)
	}
	if r := c.call(vpkt(13, 64, []byte{1, 0})); g32(r, 8) != 0xC000000D {
		t.Fatalf("IDE CREATE_SUB_CHANNELS: %#x", g32(r, 8))
	}
	buf, _ := g.p.AllocPages(1)
	if d := c.io(srbReq{path: 0, target: 0, cdb: cdb10(0x28, 1, 1), dataIn: 1, length: 512}, buf, 0); d.srbStatus != 1 || !bytes.HasPrefix(buf.Mem, []byte("ide disk")) {
		t.Fatalf("IDE read: % x", d.raw)
	}
}

// TestTwoControllers: two SCSI controllers are independent devices.
func TestTwoControllers(t *testing.T) {
	a, _ := New(Config{Instance: hvsim.MustParseGUID("00000001-0000-0000-0000-000000000000")})
	b, _ := New(Config{Instance: hvsim.MustParseGUID("00000002-0000-0000-0000-000000000000")})
	sa, sb := NewMemStore(1<<20), NewMemStore(1<<20)
	a.Attach(Addr{}, LUNConfig{Store: sa})
	b.Attach(Addr{}, LUNConfig{Store: sb})
	g := newGuest(t, hvsim.Config{}, a, b)
	offers := g.connect()
	if len(offers) != 2 {
		t.Fatalf("%d offers", len(offers))
	}
	buf, _ := g.p.AllocPages(1)
	for i, o := range offers {
		c := g.open(o, 8)
		c.negotiate(0x0602, 64)
		copy(buf.Mem, fmt.Sprintf("controller %d", i))
		if d := c.io(srbReq{cdb: cdb10(0x2A, 0, 1), dataIn: 0, length: 512}, buf, 0); d.srbStatus != 1 {
			t.Fatal(d.raw)
		}
	}
	if string(sa.Bytes()[:12]) != "controller 0" || string(sb.Bytes()[:12]) != "controller 1" {
		t.Fatalf("%q %q", sa.Bytes()[:12], sb.Bytes()[:12])
	}
	noViolations(t, g.h)
}

// TestRescindAll: Rescind withdraws the primary and every sub-channel.
func TestRescindAll(t *testing.T) {
	d, _ := New(Config{Instance: testInstance})
	if err := d.Rescind(); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("rescind before open: %v", err)
	}
	g := newGuest(t, hvsim.Config{}, d)
	c := g.open(g.connect()[0], 8)
	c.call(vpkt(7, 64, nil))
	c.call(vpkt(9, 64, []byte{0x02, 0x06}))
	c.call(vpkt(10, 64, nil))
	c.call(vpkt(13, 64, []byte{2, 0}))
	c.call(vpkt(8, 64, nil))
	subs := g.waitSubOffers(2)
	if err := d.Rescind(); err != nil {
		t.Fatal(err)
	}
	got := map[uint32]bool{}
	for i := 0; i < 3; i++ {
		m := g.next()
		if g32(m, 0) != 2 {
			t.Fatalf("want RESCIND_CHANNELOFFER, got % x", m)
		}
		got[g32(m, 8)] = true
	}
	if !got[c.relid] || !got[subs[0].relid] || !got[subs[1].relid] {
		t.Fatalf("rescinded %v", got)
	}
}

// TestReopenRestartsProtocol: after the guest closes the primary and opens
// it again, initialization starts over at BEGIN_INITIALIZATION.
func TestReopenRestartsProtocol(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: memLUN(1 << 20)})
	r.c.negotiate(0x0602, 64)
	m := make([]byte, 12)
	p32(m, 0, 7) // CLOSECHANNEL
	p32(m, 8, r.c.relid)
	r.g.post(m)
	deadline := time.Now().Add(testWait)
	for r.d.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("controller still ready after CLOSECHANNEL")
		}
		time.Sleep(time.Millisecond)
	}
	r.g.mu.Lock()
	o := r.g.offers[0]
	r.g.mu.Unlock()
	c := r.g.open(o, 8)
	if st := g32(c.call(srbReq{cdb: []byte{0}, dataIn: 2}.bytes()), 8); st != 0xC0000184 {
		t.Fatalf("SRB on a reopened, uninitialized channel: %#x", st)
	}
	c.negotiate(0x0600, 64)
	if r.d.Version() != 0x0600 {
		t.Fatalf("version %#x", r.d.Version())
	}
}

// TestReadOnlyStore: a store opened read-only makes its LUN read-only.
func TestReadOnlyStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.raw")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	fs, err := OpenRaw(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: {Store: fs}})
	r.c.negotiate(0x0602, 64)
	if d := r.c.io(srbReq{cdb: cdb10(0x2A, 0, 1), dataIn: 0, length: 512}, r.buf, 0); d.sense[2] != 7 {
		t.Fatalf("write to a read-only file: % x", d.raw)
	}
	got, _ := r.readCmd(t, 0, []byte{0x1A, 0x08, 0x08, 0, 255, 0}, 255)
	if got[2]&0x80 == 0 {
		t.Fatalf("MODE SENSE without WP: % x", got)
	}
}

// TestHotPlugDuringIO: attach/detach while a channel does I/O (race
// detector), and Detach writes a LUN's cache back.
func TestHotPlugDuringIO(t *testing.T) {
	r := newRig(t, Config{}, hvsim.Config{}, map[Addr]LUNConfig{{}: memLUN(1 << 20)})
	r.c.negotiate(0x0602, 64)
	cached := NewMemStore(1 << 20)
	r.c.skipNotes = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			cfg := memLUN(1 << 20)
			if i == 19 {
				cfg = LUNConfig{Store: cached, WriteCache: true}
			}
			if err := r.d.Attach(Addr{0, 0, 1}, cfg); err != nil {
				t.Error(err)
				return
			}
			if i < 19 {
				if err := r.d.Detach(Addr{0, 0, 1}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for i := 0; i < 50; i++ {
		d := r.c.io(srbReq{lun: byte(i % 2), cdb: cdb10(0x28, 0, 1), dataIn: 1, length: 512}, r.buf, 0)
		if d.srbStatus != 1 && d.srbStatus != 0x20 {
			t.Fatalf("I/O during hot plug: % x", d.raw)
		}
	}
	<-done
	copy(r.buf.Mem, "cached then detached")
	if d := r.c.io(srbReq{lun: 1, cdb: cdb10(0x2A, 0, 1), dataIn: 0, length: 512}, r.buf, 0); d.srbStatus != 1 {
		t.Fatalf("write: % x", d.raw)
	}
	if r.c.notes == 0 {
		t.Fatal("no hot-plug notification arrived")
	}
	if cached.Bytes()[0] != 0 {
		t.Fatal("write-back cache wrote through")
	}
	if err := r.d.Detach(Addr{0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	if string(cached.Bytes()[:20]) != "cached then detached" {
		t.Fatalf("Detach did not write the cache back: %q", cached.Bytes()[:20])
	}
	noViolations(t, r.g.h)
}
