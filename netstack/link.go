package netstack

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gohv/gohv/netstack/nic"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// rxRingSize is the number of received packets a queue holds between the
// NIC's receive callback and the queue's delivery goroutine. Beyond it the
// callback drops (it must not block) and counts the drop.
const rxRingSize = 1024

// rxHeadChunk is where a received frame is split between two gVisor chunks.
const rxHeadChunk = 128

// LinkStats counts what one link endpoint did.
type LinkStats struct {
	TxPackets, TxBytes, TxGSO uint64
	// TxBusy counts sends that found the queue full and waited.
	TxBusy uint64
	// TxStalled counts packets dropped because the queue stayed full for
	// the whole stall timeout (NICOptions.TxStallTimeout): the host
	// stopped completing sends.
	TxStalled uint64
	// TxErrors counts packets the NIC refused for another reason.
	TxErrors           uint64
	RxPackets, RxBytes uint64
	RxCsumOffloaded    uint64 // frames whose checksums the NIC verified
	RxBadCsum, RxRunt  uint64 // dropped: bad checksum, too short
	RxOverflow         uint64 // dropped: delivery ring full
	RxIntercepted      uint64 // frames consumed by the DHCP client
}

type linkCounters struct {
	txPackets, txBytes, txGSO, txBusy, txErrors        atomic.Uint64
	txStalled                                          atomic.Uint64
	rxPackets, rxBytes, rxOffloaded, rxBadCsum, rxRunt atomic.Uint64
	rxOverflow, rxIntercepted                          atomic.Uint64
}

// txQueue serialises sends on one NIC queue.
type txQueue struct {
	mu    sync.Mutex
	parts [][]byte // scratch for one frame's parts; guarded by mu
}

// rxQueue hands packets from the NIC's receive goroutine (producer, never
// blocks) to the queue's delivery goroutine (consumer).
type rxQueue struct {
	mu   sync.Mutex
	ring [rxRingSize]*stack.PacketBuffer // guarded by mu
	head int                             // guarded by mu
	n    int                             // guarded by mu
	wake chan struct{}                   // capacity 1
}

// linkEndpoint is a gVisor stack.LinkEndpoint (and stack.GSOEndpoint) over a
// nic.NIC. See doc.go for the data path.
//
// Lock order: txQueue.mu and rxQueue.mu are leaves; dmu is never held while
// calling into the NIC or gVisor.
type linkEndpoint struct {
	txStall time.Duration // the longest a send waits for a full queue
	nic     nic.NIC
	mac     tcpip.LinkAddress
	off     nic.Offloads
	caps    stack.LinkEndpointCapabilities
	gso     bool
	gsoMax  uint32
	mtu     atomic.Uint32

	txq []txQueue
	rxq []rxQueue

	// intercept, if set, sees every received frame first (on the NIC's
	// receive goroutine) and returns true when it consumed it.
	intercept atomic.Pointer[func(frame []byte, info nic.RxInfo) bool]

	dmu        sync.Mutex
	dispatcher stack.NetworkDispatcher // guarded by dmu
	onClose    func()                  // guarded by dmu

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing atomic.Bool
	stats   linkCounters
}

var (
	_ stack.LinkEndpoint = (*linkEndpoint)(nil)
	_ stack.GSOEndpoint  = (*linkEndpoint)(nil)
)

// DefaultTxStallTimeout is how long a send waits for a full NIC queue
// before the packet is dropped (NICOptions.TxStallTimeout).
const DefaultTxStallTimeout = 2 * time.Second

// newLinkEndpoint wraps n. It installs n's receiver and starts one delivery
// goroutine per queue; close stops them. A send waits at most txStall for
// a full queue (zero: DefaultTxStallTimeout).
func newLinkEndpoint(n nic.NIC, txStall time.Duration) *linkEndpoint {
	if txStall <= 0 {
		txStall = DefaultTxStallTimeout
	}
	mac := n.MAC()
	e := &linkEndpoint{
		txStall: txStall,
		nic:     n,
		mac:     tcpip.LinkAddress(mac[:]),
		off:     n.Offloads(),
	}
	e.caps = stack.CapabilityResolutionRequired
	o := e.off
	if o.TxCsumTCP4 || o.TxCsumUDP4 || o.TxCsumTCP6 || o.TxCsumUDP6 || o.LSOv4 || o.LSOv6 {
		e.caps |= stack.CapabilityTXChecksumOffload
	}
	if o.RxCsum {
		e.caps |= stack.CapabilityRXChecksumOffload
	}
	// gVisor asks for GSO per route but cannot be told "IPv4 only": use
	// it only when the NIC segments both families.
	if o.LSOv4 && o.LSOv6 && o.LSOMaxSize > n.MTU() {
		e.gso = true
		e.gsoMax = uint32(min(o.LSOMaxSize, 0xffff))
	}
	e.mtu.Store(uint32(n.MTU()))
	q := max(n.Queues(), 1)
	e.txq = make([]txQueue, q)
	e.rxq = make([]rxQueue, q)
	for i := range e.txq {
		e.txq[i].parts = make([][]byte, 0, 8)
		e.rxq[i].wake = make(chan struct{}, 1)
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	for i := range e.rxq {
		e.wg.Add(1)
		go e.deliverLoop(&e.rxq[i])
	}
	n.SetReceiver(e.receive)
	return e
}

// MTU implements stack.LinkEndpoint.
func (e *linkEndpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *linkEndpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (e *linkEndpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *linkEndpoint) LinkAddress() tcpip.LinkAddress { return e.mac }

// SetLinkAddress implements stack.LinkEndpoint. The NIC's address is fixed;
// the call is ignored.
func (e *linkEndpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint.
func (e *linkEndpoint) Capabilities() stack.LinkEndpointCapabilities { return e.caps }

// GSOMaxSize implements stack.GSOEndpoint.
func (e *linkEndpoint) GSOMaxSize() uint32 { return e.gsoMax }

// SupportedGSO implements stack.GSOEndpoint.
func (e *linkEndpoint) SupportedGSO() stack.SupportedGSO {
	if e.gso {
		return stack.HostGSOSupported
	}
	return stack.GSONotSupported
}

// Attach implements stack.LinkEndpoint.
func (e *linkEndpoint) Attach(d stack.NetworkDispatcher) {
	e.dmu.Lock()
	e.dispatcher = d
	e.dmu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (e *linkEndpoint) IsAttached() bool {
	e.dmu.Lock()
	defer e.dmu.Unlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint: it waits for the delivery goroutines
// stopped by Close.
func (e *linkEndpoint) Wait() { e.wg.Wait() }

// ARPHardwareType implements stack.LinkEndpoint.
func (e *linkEndpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (e *linkEndpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	src := pkt.EgressRoute.LocalLinkAddress
	if src == "" {
		src = e.mac
	}
	eth.Encode(&header.EthernetFields{
		SrcAddr: src,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (e *linkEndpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Close implements stack.LinkEndpoint. It stops the delivery goroutines and
// unblocks senders waiting for a writable queue.
// The first call runs the on-close action gVisor installed (RemoveNIC),
// which calls Close again: that nested call returns at once.
func (e *linkEndpoint) Close() {
	if !e.closing.CompareAndSwap(false, true) {
		return
	}
	e.dmu.Lock()
	fn := e.onClose
	e.onClose = nil
	e.dmu.Unlock()
	if fn != nil {
		fn()
	}
	e.nic.SetReceiver(nil)
	e.cancel()
	e.wg.Wait()
	for i := range e.rxq {
		q := &e.rxq[i]
		q.mu.Lock()
		for q.n > 0 {
			q.ring[q.head].DecRef()
			q.ring[q.head] = nil
			q.head = (q.head + 1) % rxRingSize
			q.n--
		}
		q.mu.Unlock()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *linkEndpoint) SetOnCloseAction(fn func()) {
	e.dmu.Lock()
	e.onClose = fn
	e.dmu.Unlock()
}

// Stats returns the endpoint's counters.
func (e *linkEndpoint) Stats() LinkStats {
	s := &e.stats
	return LinkStats{
		TxPackets: s.txPackets.Load(), TxBytes: s.txBytes.Load(), TxGSO: s.txGSO.Load(),
		TxBusy: s.txBusy.Load(), TxStalled: s.txStalled.Load(), TxErrors: s.txErrors.Load(),
		RxPackets: s.rxPackets.Load(), RxBytes: s.rxBytes.Load(), RxCsumOffloaded: s.rxOffloaded.Load(),
		RxBadCsum: s.rxBadCsum.Load(), RxRunt: s.rxRunt.Load(), RxOverflow: s.rxOverflow.Load(),
		RxIntercepted: s.rxIntercepted.Load(),
	}
}

// WritePackets implements stack.LinkEndpoint. It runs on the goroutine of
// the gVisor caller and blocks while the NIC queue is full (back-pressure),
// but at most the stall timeout per packet: a host that stops completing
// sends must not hold the caller for ever, because gVisor calls this with
// the connection's lock held, where no deadline can reach it. A packet
// that waited that long is dropped (TxStalled), as a NIC driver's watchdog
// does; TCP sends it again.
func (e *linkEndpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		if err := e.writePacket(pkt); err != nil {
			if n == 0 {
				return 0, err
			}
			break
		}
		n++
	}
	return n, nil
}

func (e *linkEndpoint) writePacket(pkt *stack.PacketBuffer) tcpip.Error {
	tx := e.txInfo(pkt)
	qi := 0
	if len(e.txq) > 1 {
		qi = int(flowHash(pkt) % uint32(len(e.txq)))
	}
	q := &e.txq[qi]
	q.mu.Lock()
	defer q.mu.Unlock()
	parts := q.parts[:0]
	vl, off := pkt.AsViewList()
	size := pkt.Size()
	for v := vl.Front(); v != nil && size > 0; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		b = b[off:]
		off = 0
		if len(b) > size {
			b = b[:size]
		}
		size -= len(b)
		parts = append(parts, b)
	}
	q.parts = parts[:0]
	for {
		err := e.nic.Send(qi, parts, tx)
		if err == nil {
			break
		}
		if !errors.Is(err, nic.ErrBusy) {
			e.stats.txErrors.Add(1)
			clear(parts)
			return &tcpip.ErrAborted{}
		}
		e.stats.txBusy.Add(1)
		if err := e.waitWritable(qi); err != nil {
			clear(parts)
			if e.ctx.Err() == nil {
				e.stats.txStalled.Add(1)
				return &tcpip.ErrWouldBlock{}
			}
			e.stats.txErrors.Add(1)
			return &tcpip.ErrClosedForSend{}
		}
	}
	clear(parts) // do not keep the packet's views alive
	e.stats.txPackets.Add(1)
	e.stats.txBytes.Add(uint64(pkt.Size()))
	if tx.GSO {
		e.stats.txGSO.Add(1)
	}
	return nil
}

// waitWritable waits until queue qi can take a packet, the endpoint
// closes, or the stall timeout passes. Only a full queue gets here, so the
// timer it arms is off the per-packet path.
func (e *linkEndpoint) waitWritable(qi int) error {
	ctx, cancel := context.WithTimeout(e.ctx, e.txStall)
	defer cancel()
	return e.nic.WaitWritable(ctx, qi)
}

// txInfo prepares pkt's checksum fields for the NIC's offloads (see
// nic.TxInfo for the partial sums the NIC expects) and computes in software
// the checksums the NIC does not offload for this protocol.
func (e *linkEndpoint) txInfo(pkt *stack.PacketBuffer) nic.TxInfo {
	if e.caps&stack.CapabilityTXChecksumOffload == 0 {
		return nic.TxInfo{}
	}
	var (
		tx       nic.TxInfo
		src, dst tcpip.Address
	)
	nh := pkt.NetworkHeader().Slice()
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber:
		h := header.IPv4(nh)
		if len(h) < header.IPv4MinimumSize || h.More() || h.FragmentOffset() != 0 {
			return tx // a fragment: gVisor computed the checksum before fragmenting
		}
		src, dst = h.SourceAddress(), h.DestinationAddress()
	case header.IPv6ProtocolNumber:
		h := header.IPv6(nh)
		if len(h) < header.IPv6MinimumSize {
			return tx
		}
		tx.IsIPv6 = true
		src, dst = h.SourceAddress(), h.DestinationAddress()
	default:
		return tx
	}
	th := pkt.TransportHeader().Slice()
	l4len := len(th) + pkt.Data().Size()
	tx.L3Offset = header.EthernetMinimumSize
	tx.L4Offset = header.EthernetMinimumSize + len(nh)
	switch pkt.TransportProtocolNumber {
	case header.TCPProtocolNumber:
		if len(th) < header.TCPMinimumSize {
			return nic.TxInfo{}
		}
		t := header.TCP(th)
		if pkt.GSOOptions.Type == stack.GSOTCPv4 || pkt.GSOOptions.Type == stack.GSOTCPv6 {
			tx.GSO, tx.CsumTCP, tx.MSS = true, true, int(pkt.GSOOptions.MSS)
			t.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, 0))
			return tx
		}
		if tx.IsIPv6 && e.off.TxCsumTCP6 || !tx.IsIPv6 && e.off.TxCsumTCP4 {
			tx.CsumTCP = true
			t.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(l4len)))
			return tx
		}
		t.SetChecksum(0)
		x := checksum.Combine(header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(l4len)), pkt.Data().Checksum())
		t.SetChecksum(^t.CalculateChecksum(x))
		return nic.TxInfo{}
	case header.UDPProtocolNumber:
		if len(th) < header.UDPMinimumSize {
			return nic.TxInfo{}
		}
		u := header.UDP(th)
		if tx.IsIPv6 && e.off.TxCsumUDP6 || !tx.IsIPv6 && e.off.TxCsumUDP4 {
			tx.CsumUDP = true
			u.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(l4len)))
			return tx
		}
		u.SetChecksum(0)
		x := checksum.Combine(header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(l4len)), pkt.Data().Checksum())
		x = ^u.CalculateChecksum(x)
		if x == 0 {
			x = 0xffff
		}
		u.SetChecksum(x)
		return nic.TxInfo{}
	}
	return nic.TxInfo{}
}

// flowHash spreads flows over queues; one flow always maps to one queue, so
// its packets stay in order.
func flowHash(pkt *stack.PacketBuffer) uint32 {
	h := uint32(2166136261)
	mix := func(b []byte) {
		for _, c := range b {
			h ^= uint32(c)
			h *= 16777619
		}
	}
	nh := pkt.NetworkHeader().Slice()
	switch {
	case pkt.NetworkProtocolNumber == header.IPv4ProtocolNumber && len(nh) >= header.IPv4MinimumSize:
		mix(nh[12:20]) // source and destination address, RFC 791
	case pkt.NetworkProtocolNumber == header.IPv6ProtocolNumber && len(nh) >= header.IPv6MinimumSize:
		mix(nh[8:40]) // source and destination address, RFC 8200
	default:
		return 0
	}
	if th := pkt.TransportHeader().Slice(); len(th) >= 4 &&
		(pkt.TransportProtocolNumber == header.TCPProtocolNumber || pkt.TransportProtocolNumber == header.UDPProtocolNumber) {
		mix(th[:4]) // ports
	}
	return h
}

// receive is the NIC's receive callback. It runs on the NIC queue's
// goroutine and never blocks: it copies the frame into a pooled gVisor
// buffer and queues it for the delivery goroutine.
func (e *linkEndpoint) receive(qi int, frame []byte, info nic.RxInfo) {
	if e.closing.Load() {
		return
	}
	if len(frame) < header.EthernetMinimumSize {
		e.stats.rxRunt.Add(1)
		return
	}
	if fn := e.intercept.Load(); fn != nil && (*fn)(frame, info) {
		e.stats.rxIntercepted.Add(1)
		return
	}
	if e.off.RxCsum {
		if info.CsumChecked {
			if !info.IPCsumOK || !info.L4CsumOK {
				e.stats.rxBadCsum.Add(1)
				return
			}
			e.stats.rxOffloaded.Add(1)
		} else if !verifyFrame(frame) {
			// gVisor trusts the capability for every frame: verify
			// what the NIC did not.
			e.stats.rxBadCsum.Add(1)
			return
		}
	}
	if qi < 0 || qi >= len(e.rxq) {
		qi = 0
	}
	// Headers and payload go into separate chunks: gVisor copies a whole
	// chunk when it reads a header from one the packet shares (ipv4's
	// HandlePacket holds a view of the IP header while reading it again),
	// and the headers of ordinary frames fit rxHeadChunk bytes.
	buf := buffer.MakeWithView(buffer.NewViewWithData(frame[:min(len(frame), rxHeadChunk)]))
	if len(frame) > rxHeadChunk {
		buf.Append(buffer.NewViewWithData(frame[rxHeadChunk:]))
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buf})
	q := &e.rxq[qi]
	q.mu.Lock()
	if q.n == rxRingSize {
		q.mu.Unlock()
		pkt.DecRef()
		e.stats.rxOverflow.Add(1)
		return
	}
	q.ring[(q.head+q.n)%rxRingSize] = pkt
	q.n++
	q.mu.Unlock()
	e.stats.rxPackets.Add(1)
	e.stats.rxBytes.Add(uint64(len(frame)))
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// deliverLoop hands queued packets to gVisor until the endpoint closes.
func (e *linkEndpoint) deliverLoop(q *rxQueue) {
	defer e.wg.Done()
	for {
		select {
		case <-q.wake:
		case <-e.ctx.Done():
			return
		}
		for {
			q.mu.Lock()
			if q.n == 0 {
				q.mu.Unlock()
				break
			}
			pkt := q.ring[q.head]
			q.ring[q.head] = nil
			q.head = (q.head + 1) % rxRingSize
			q.n--
			q.mu.Unlock()
			e.deliver(pkt)
		}
	}
}

func (e *linkEndpoint) deliver(pkt *stack.PacketBuffer) {
	defer pkt.DecRef()
	hdr, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if !ok {
		return
	}
	e.dmu.Lock()
	d := e.dispatcher
	e.dmu.Unlock()
	if d == nil {
		return
	}
	d.DeliverNetworkPacket(header.Ethernet(hdr).Type(), pkt)
}

// verifyFrame checks in software the checksums of a frame the NIC did not
// verify: the IPv4 header, and the TCP, UDP, ICMPv4 and ICMPv6 checksums of
// unfragmented packets. Other frames pass unchanged (ARP has no checksum;
// fragments are checked by gVisor after reassembly only if it rebuilds
// them, see doc.go).
func verifyFrame(f []byte) bool {
	if len(f) < header.EthernetMinimumSize {
		return false
	}
	l3 := f[header.EthernetMinimumSize:]
	var (
		proto    tcpip.TransportProtocolNumber
		l4       []byte
		src, dst tcpip.Address
		pseudo   = true
	)
	switch tcpip.NetworkProtocolNumber(binary.BigEndian.Uint16(f[12:])) {
	case header.IPv4ProtocolNumber:
		h := header.IPv4(l3)
		if !h.IsValid(len(l3)) {
			return true // gVisor rejects malformed headers itself
		}
		if !h.IsChecksumValid() {
			return false
		}
		if h.More() || h.FragmentOffset() != 0 {
			return true
		}
		proto, l4 = h.TransportProtocol(), h[h.HeaderLength():h.TotalLength()]
		src, dst = h.SourceAddress(), h.DestinationAddress()
		if proto == header.ICMPv4ProtocolNumber {
			pseudo = false
		}
	case header.IPv6ProtocolNumber:
		h := header.IPv6(l3)
		if !h.IsValid(len(l3)) {
			return true
		}
		src, dst = h.SourceAddress(), h.DestinationAddress()
		next := h.NextHeader()
		l4 = h[header.IPv6MinimumSize : header.IPv6MinimumSize+int(h.PayloadLength())]
		for { // skip hop-by-hop, routing and destination options
			switch next {
			case 0, 43, 60: // RFC 8200 §4
				if len(l4) < 8 || int(l4[1]+1)*8 > len(l4) {
					return true
				}
				next, l4 = l4[0], l4[int(l4[1]+1)*8:]
				continue
			}
			break
		}
		proto = tcpip.TransportProtocolNumber(next)
	default:
		return true
	}
	var initial uint16
	switch proto {
	case header.TCPProtocolNumber, header.UDPProtocolNumber, header.ICMPv4ProtocolNumber, header.ICMPv6ProtocolNumber:
	default:
		return true
	}
	if proto == header.UDPProtocolNumber && len(l4) >= header.UDPMinimumSize && len(src.AsSlice()) == 4 &&
		binary.BigEndian.Uint16(l4[6:]) == 0 {
		return true // IPv4 UDP without checksum, RFC 768
	}
	if pseudo {
		initial = header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))
	}
	return checksum.Checksum(l4, initial) == 0xffff
}
