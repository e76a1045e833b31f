package netvsc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// This file is the test double of the host: fake memory, a fake channel
// with bounded fixed-size rings (allocation-free in steady state), and a
// fake NetVSP written from docs/hyperv-protocol.md §7 with literal
// offsets, independently of the nvsp and rndis encoders.

var le = binary.LittleEndian

// ---- memory ----

type allocation struct {
	p    hv.Pages
	base uintptr
}

type fakeMem struct {
	mu      sync.Mutex
	next    uint64
	allocs  []allocation
	live    int
	failAt  int // fail the failAt-th allocation (1-based), 0 = never
	nallocs int
}

func newMem() *fakeMem { return &fakeMem{next: 0x1000} }

func (m *fakeMem) AllocPages(n int) (hv.Pages, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nallocs++
	if m.failAt == m.nallocs {
		return hv.Pages{}, errors.New("fake memory exhausted")
	}
	p := hv.Pages{Mem: make([]byte, n*hv.PageSize), PFN: m.next}
	m.next += uint64(n) + 1 // a hole: allocations are never contiguous
	m.allocs = append(m.allocs, allocation{p, uintptr(unsafe.Pointer(&p.Mem[0]))})
	m.live++
	return p, nil
}

func (m *fakeMem) FreePages(p hv.Pages) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, a := range m.allocs {
		if a.p.PFN == p.PFN {
			m.allocs = append(m.allocs[:i], m.allocs[i+1:]...)
			m.live--
			return
		}
	}
	panic(fmt.Sprintf("FreePages of unknown PFN %#x", p.PFN))
}

func (m *fakeMem) liveAllocs() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.live
}

// physAddr is PhysTranslator for memory this fake handed out.
func (m *fakeMem) physAddr(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	p := uintptr(unsafe.Pointer(&b[0]))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.allocs {
		if p >= a.base && p+uintptr(len(b)) <= a.base+uintptr(len(a.p.Mem)) {
			return a.p.PFN*hv.PageSize + uint64(p-a.base), true
		}
	}
	return 0, false
}

// read copies guest-physical memory at gpa, as the host's DMA does.
func (m *fakeMem) read(gpa uint64, dst []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.allocs {
		start := a.p.PFN * hv.PageSize
		if gpa >= start && gpa+uint64(len(dst)) <= start+uint64(len(a.p.Mem)) {
			copy(dst, a.p.Mem[gpa-start:])
			return nil
		}
	}
	return fmt.Errorf("GPA %#x+%d not guest memory", gpa, len(dst))
}

// physMem is fakeMem that also vouches for physical addresses.
type physMem struct{ *fakeMem }

func (m physMem) PhysAddr(b []byte) (uint64, bool) { return m.physAddr(b) }

// ---- channel ----

const (
	fakeSlots     = 512
	fakeHdrMax    = 8 + 600*8
	fakePayMax    = 128
	defaultOutCap = 256
)

type fakePkt struct {
	typ   ring.PacketType
	flags uint16
	txid  uint64
	hlen  int
	plen  int
	hdr   [fakeHdrMax]byte
	pay   [fakePayMax]byte
}

// pktRing is a bounded FIFO of packets with fixed storage.
type pktRing struct {
	mu    sync.Mutex
	slots []fakePkt
	head  int
	count int
	limit int
}

func newPktRing(limit int) *pktRing {
	return &pktRing{slots: make([]fakePkt, fakeSlots), limit: limit}
}

func (r *pktRing) push(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count >= r.limit || r.count == len(r.slots) {
		return vmbus.ErrRingFull
	}
	p := &r.slots[(r.head+r.count)%len(r.slots)]
	p.typ, p.flags, p.txid = typ, flags, txid
	p.hlen = copy(p.hdr[:], hdr)
	p.plen = 0
	for _, part := range parts {
		if p.plen+len(part) > len(p.pay) {
			return fmt.Errorf("fake: payload of more than %d bytes", len(p.pay))
		}
		p.plen += copy(p.pay[p.plen:], part)
	}
	r.count++
	return nil
}

// pop copies the oldest packet into dst.
func (r *pktRing) pop(dst *fakePkt) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.count == 0 {
		return false
	}
	src := &r.slots[r.head]
	dst.typ, dst.flags, dst.txid, dst.hlen, dst.plen = src.typ, src.flags, src.txid, src.hlen, src.plen
	copy(dst.hdr[:src.hlen], src.hdr[:src.hlen])
	copy(dst.pay[:src.plen], src.pay[:src.plen])
	r.head = (r.head + 1) % len(r.slots)
	r.count--
	return true
}

func (r *pktRing) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

func (r *pktRing) setLimit(n int) {
	r.mu.Lock()
	r.limit = n
	r.mu.Unlock()
}

type fakeChannel struct {
	host  *fakeHost
	index int
	offer vmbus.Offer

	mu        sync.Mutex
	open      bool
	onInt     func()
	gpadls    map[uint32]hv.Pages
	rescinded chan struct{}
	rescOnce  sync.Once

	out, in *pktRing
	toHost  chan struct{} // wakes the host loop
	intr    chan struct{} // wakes the dispatch goroutine
	stop    chan struct{}
	wg      sync.WaitGroup
	noHTS   bool
	rd      fakePkt     // ReadPacket's scratch (dispatch goroutine)
	hostMu  sync.Mutex  // held by the host loop while it handles packets
	paused  atomic.Bool // the host loop leaves packets to the test
}

func (c *fakeChannel) Offer() vmbus.Offer         { return c.offer }
func (c *fakeChannel) Rescinded() <-chan struct{} { return c.rescinded }

func (c *fakeChannel) Open(ctx context.Context, cfg vmbus.OpenConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open {
		return vmbus.ErrAlreadyOpen
	}
	c.open, c.onInt = true, cfg.OnInterrupt
	c.stop = make(chan struct{})
	c.host.log("open %d", c.index)
	c.wg.Add(2)
	go c.dispatch()
	go c.host.loop(c)
	return nil
}

func (c *fakeChannel) dispatch() {
	defer c.wg.Done()
	for {
		select {
		case <-c.intr:
			c.onInt()
		case <-c.stop:
			return
		}
	}
}

func (c *fakeChannel) Close(ctx context.Context) error {
	c.mu.Lock()
	if !c.open {
		c.mu.Unlock()
		return vmbus.ErrClosed
	}
	c.open = false
	c.mu.Unlock()
	// The host handles what is still in the ring before the close.
	c.hostMu.Lock()
	if !c.paused.Load() {
		var p fakePkt
		for c.out.pop(&p) {
			c.host.handle(c, &p)
		}
	}
	c.hostMu.Unlock()
	c.mu.Lock()
	close(c.stop)
	c.mu.Unlock()
	c.wg.Wait()
	c.host.log("close %d", c.index)
	return nil
}

func (c *fakeChannel) CreateGPADL(ctx context.Context, p hv.Pages) (vmbus.GPADL, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.host.nextGPADL.Add(1)
	c.gpadls[id] = p
	return vmbus.GPADL{ID: id, Pages: p}, nil
}

func (c *fakeChannel) TeardownGPADL(ctx context.Context, g vmbus.GPADL) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.gpadls[g.ID]; !ok {
		if c.isRescinded() {
			return nil
		}
		return vmbus.ErrUnknownGPADL
	}
	delete(c.gpadls, g.ID)
	c.host.log("teardown gpadl %d", g.ID)
	return nil
}

func (c *fakeChannel) isRescinded() bool {
	select {
	case <-c.rescinded:
		return true
	default:
		return false
	}
}

func (c *fakeChannel) gpadl(id uint32) (hv.Pages, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.gpadls[id]
	return p, ok
}

func (c *fakeChannel) send(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts [][]byte) error {
	if c.isRescinded() {
		return vmbus.ErrRescinded
	}
	if err := c.out.push(typ, flags, txid, hdr, parts...); err != nil {
		return err
	}
	// Revokes are logged in the guest's sending order (the host handles
	// the ring asynchronously to GPADL teardowns).
	if typ == ring.TypeDataInband && len(parts) == 1 && len(parts[0]) >= 4 {
		if t := le.Uint32(parts[0]); t == 103 || t == 106 {
			c.host.log("revoke %d", t)
		}
	}
	select {
	case c.toHost <- struct{}{}:
	default:
	}
	return nil
}

func (c *fakeChannel) TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	return c.send(typ, flags, txid, nil, parts)
}

func (c *fakeChannel) TrySendWithHeader(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	if c.noHTS {
		panic("TrySendWithHeader on a channel without it")
	}
	return c.send(typ, flags, txid, hdr, parts)
}

// SendWithHeader waits for room by polling the out ring's fill; tests use
// it for set-up messages and deferred completions only.
func (c *fakeChannel) SendWithHeader(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	for {
		err := c.send(typ, flags, txid, hdr, parts)
		if !errors.Is(err, vmbus.ErrRingFull) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.host.space:
		case <-c.rescinded:
			return vmbus.ErrRescinded
		}
	}
}

func (c *fakeChannel) ReadPacket(buf []byte) (ring.Packet, error) {
	p := &c.rd
	if !c.in.pop(p) {
		return ring.Packet{}, vmbus.ErrEmpty
	}
	n := copy(buf, p.hdr[:p.hlen])
	m := copy(buf[n:], p.pay[:p.plen])
	return ring.Packet{Type: p.typ, Flags: p.flags, TransactionID: p.txid, Header: buf[:n], Payload: buf[n : n+m]}, nil
}

// interrupt wakes the guest's OnInterrupt on the dispatch goroutine.
func (c *fakeChannel) interrupt() {
	select {
	case c.intr <- struct{}{}:
	default:
	}
}

// noHTSChannel hides TrySendWithHeader: only Channel's methods show.
type noHTSChannel struct{ Channel }
