package netvsc_test

// Integration of the driver with the real guest VMBus client (package
// vmbus) and the simulated host's NetVSP (tools/hvsim/netvsp), written
// independently from the same reference. Every test fails if the host
// recorded a protocol violation.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/netvsc"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// wire is a Backend that hands guest frames to a channel and lets the
// test inject frames for the guest.
type wire struct {
	mu     sync.Mutex
	recv   func([]byte)
	frames chan []byte
}

func (w *wire) Send(f []byte) {
	select {
	case w.frames <- append([]byte(nil), f...):
	default:
	}
}

func (w *wire) SetReceiver(fn func([]byte)) {
	w.mu.Lock()
	w.recv = fn
	w.mu.Unlock()
}

func (w *wire) inject(f []byte) {
	w.mu.Lock()
	fn := w.recv
	w.mu.Unlock()
	fn(f)
}

type rig struct {
	h   *hvsim.Host
	dev *netvsp.Device
	w   *wire
	nic *netvsc.NIC
	rx  chan []byte
}

var guestMAC = [6]byte{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}

func newRig(t *testing.T, cfg netvsc.Config) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	w := &wire{frames: make(chan []byte, 256)}
	dev, err := netvsp.New(h, netvsp.Config{MAC: guestMAC, MTU: 9000, LinkSpeed: 10_000_000_000, MaxQueues: 4, HoldFrames: 64, Backend: w})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddDevice(dev); err != nil {
		t.Fatal(err)
	}
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close(context.Background()) })
	var ch *vmbus.Channel
	for _, c := range bus.Channels() {
		if c.Offer().InterfaceType == chanmsg.ClassNetwork {
			ch = c
		}
	}
	if ch == nil {
		t.Fatal("no network offer")
	}
	cfg.Memory = h.Platform()
	cfg.SubChannels = netvsc.DriverSubChannels(ch)
	cfg.VMBusVersion = bus.Version()
	nic, err := netvsc.Open(ctx, ch, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	r := &rig{h: h, dev: dev, w: w, nic: nic, rx: make(chan []byte, 256)}
	nic.SetReceiver(func(q int, f []byte, _ netvsc.RxInfo) {
		select {
		case r.rx <- append([]byte(nil), f...):
		default:
		}
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := nic.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		if v := h.Violations(); len(v) > 0 {
			t.Errorf("host recorded %d violations, first: %v", len(v), v[0])
		}
	})
	return r
}

func frame(dst, src [6]byte, n int, fill byte) []byte {
	f := bytes.Repeat([]byte{fill}, n)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x88, 0xB5 // local experimental EtherType
	return f
}

func (r *rig) wait(t *testing.T, ch chan []byte) []byte {
	t.Helper()
	select {
	case f := <-ch:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a frame")
		return nil
	}
}

func TestHvsimBasics(t *testing.T) {
	r := newRig(t, netvsc.Config{MTU: 9000, Queues: 4})
	if r.nic.MAC() != guestMAC || r.nic.MTU() != 9000 || !r.nic.LinkUp() {
		t.Fatalf("MAC %x MTU %d link %v", r.nic.MAC(), r.nic.MTU(), r.nic.LinkUp())
	}
	t.Logf("NVSP %v, %d queues, offloads %+v", r.nic.Version(), r.nic.Queues(), r.nic.Offloads())
	peer := [6]byte{0x02, 0, 0, 0, 0, 9}
	for _, n := range []int{60, 1514, 9014} {
		out := frame(peer, guestMAC, n, byte(n))
		if err := r.nic.Send(0, [][]byte{out[:14], out[14:]}, netvsc.TxInfo{}); err != nil {
			t.Fatal(err)
		}
		if got := r.wait(t, r.w.frames); !bytes.Equal(got, out) {
			t.Errorf("%d-byte send arrived as %d bytes", n, len(got))
		}
		in := frame(guestMAC, peer, n, byte(n+1))
		r.w.inject(in)
		if got := r.wait(t, r.rx); !bytes.Equal(got, in) {
			t.Errorf("%d-byte receive arrived as %d bytes", n, len(got))
		}
	}
	for q := range r.nic.Queues() {
		out := frame(peer, guestMAC, 100, byte(q))
		if err := r.nic.Send(q, [][]byte{out}, netvsc.TxInfo{}); err != nil {
			t.Fatalf("queue %d: %v", q, err)
		}
		if got := r.wait(t, r.w.frames); !bytes.Equal(got, out) {
			t.Errorf("queue %d frame differs", q)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.nic.Keepalive(ctx); err != nil {
		t.Errorf("Keepalive: %v", err)
	}
}

// tcp4 builds an Ethernet + IPv4 + TCP frame with payload bytes.
func tcp4(dst, src [6]byte, payload int) []byte {
	f := make([]byte, 14+20+20+payload)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(min(20+20+payload, 0xFFFF)))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, 0x18
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	for i := range payload {
		tcp[20+i] = byte(i)
	}
	return f
}

// TestHvsimLSO: a 60000-byte TCP frame sent with LSOv2 leaves the host as
// MSS-sized segments carrying the whole payload.
func TestHvsimLSO(t *testing.T) {
	r := newRig(t, netvsc.Config{})
	o := r.nic.Offloads()
	if !o.LSOv4 {
		t.Skipf("host grants no LSOv4: %+v", o)
	}
	peer := [6]byte{0x02, 0, 0, 0, 0, 9}
	size := min(o.LSOMaxSize, 60000)
	f := tcp4(peer, guestMAC, size-54)
	err := r.nic.Send(0, [][]byte{f[:54], f[54:]}, netvsc.TxInfo{GSO: true, MSS: 1460, L3Offset: 14, L4Offset: 34, CsumTCP: true, CsumIPv4: true})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for total < size-54 {
		seg := r.wait(t, r.w.frames)
		if len(seg) > 14+20+20+1460 {
			t.Fatalf("%d-byte segment", len(seg))
		}
		total += len(seg) - 54
	}
	if total != size-54 {
		t.Errorf("segments carry %d payload bytes, want %d", total, size-54)
	}
}

// TestHvsimLinkAndRescind: link flaps and a network change reach the
// handlers; after a rescind sends fail with ErrRemoved.
func TestHvsimLinkAndRescind(t *testing.T) {
	r := newRig(t, netvsc.Config{})
	links := make(chan bool, 8)
	changes := make(chan struct{}, 8)
	r.nic.SetLinkHandler(func(up bool) { links <- up })
	r.nic.SetNetworkChangeHandler(func() { changes <- struct{}{} })
	r.dev.SetLink(false)
	if up := <-links; up || r.nic.LinkUp() {
		t.Error("link still up")
	}
	r.dev.SetLink(true)
	if up := <-links; !up {
		t.Error("link still down")
	}
	r.dev.IndicateNetworkChange()
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("no network change")
	}
	if err := r.dev.Rescind(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := r.nic.Send(0, [][]byte{frame([6]byte{2}, guestMAC, 60, 0)}, netvsc.TxInfo{})
		if errors.Is(err, netvsc.ErrRemoved) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("send after rescind: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.nic.WaitWritable(ctx, 0); !errors.Is(err, netvsc.ErrRemoved) {
		t.Errorf("WaitWritable after rescind: %v", err)
	}
}

// TestHvsimDriver attaches through the kernel.Driver entry point, which
// finds the sub-channels itself.
func TestHvsimDriver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	dev, err := netvsp.New(h, netvsp.Config{MAC: guestMAC, MTU: 1500, MaxQueues: 2, Backend: &wire{frames: make(chan []byte, 8)}})
	if err != nil {
		t.Fatal(err)
	}
	h.AddDevice(dev)
	bus, err := vmbus.Connect(ctx, h.Platform(), vmbus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(ctx)
	var seen []*netvsc.NIC
	d := &netvsc.Driver{Config: netvsc.Config{Memory: h.Platform(), Queues: 2}, OnNIC: func(n *netvsc.NIC) { seen = append(seen, n) }}
	for _, ch := range bus.Channels() {
		if ch.Offer().InterfaceType == netvsc.Class {
			if err := d.Attach(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	nics := d.NICs()
	if d.Name() != "netvsc" || len(nics) != 1 || len(seen) != 1 || seen[0] != nics[0] || nics[0].Queues() != 2 {
		t.Fatalf("NICs %v seen %v", nics, seen)
	}
	if err := nics[0].Close(ctx); err != nil {
		t.Error(err)
	}
	if v := h.Violations(); len(v) > 0 {
		t.Errorf("host recorded %d violations, first: %v", len(v), v[0])
	}
}
