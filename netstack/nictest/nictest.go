// Package nictest provides fake NICs (nic.NIC) wired back to back, for tests
// and benchmarks of package netstack without a host.
//
// A fake NIC behaves like the contract's hardware: Send copies the frame
// into one of a fixed number of transmit slots per queue (ErrBusy when none
// is free), performs the transmit offloads it advertises (IPv4 header and
// TCP/UDP checksums, TCP segmentation for GSO frames) and hands the result
// to the peer's queue goroutine, which calls the peer's receiver once per
// frame and then frees the slot (waking WaitWritable). Receive checksum
// offload is simulated by verifying the checksums in software and reporting
// the result in nic.RxInfo.
//
// Every transmit metadata field is checked against the frame; mismatches
// (wrong offsets, a checksum field that does not hold the pseudo-header sum
// the contract prescribes, GSO without LSO, oversize frames) are counted in
// Stats and the frame is dropped, so tests can assert they never happen.
//
// nictest owns only its fakes; it touches nothing else.
package nictest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gohv/gohv/netstack/nic"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Config configures one fake NIC of a pair.
type Config struct {
	MAC    [6]byte
	MTU    int // default 1500
	Queues int // default 1
	// Slots is the number of transmit slots per queue (default 64); a
	// full queue makes Send return nic.ErrBusy.
	Slots    int
	Offloads nic.Offloads
}

// Stats counts what a fake NIC saw. Bad* counters must stay zero for a
// correct stack.
type Stats struct {
	TxFrames, TxBytes, TxGSO, TxBusy uint64
	RxFrames, RxBytes                uint64
	BadMeta, BadPartialCsum          uint64
}

type slot struct {
	buf []byte
	n   int
	tx  nic.TxInfo
}

type queue struct {
	free chan *slot // slots ready for Send
	full chan *slot // slots waiting for the peer's queue goroutine
	// writable is closed and replaced when a slot is freed while someone
	// waits in WaitWritable.
	mu       sync.Mutex
	writable chan struct{} // guarded by mu
	waiting  bool          // guarded by mu
	busyErr  error
	seg      []byte // segmentation scratch, used by the receiving goroutine only
}

// NIC is one fake NIC. Create pairs with Pair.
type NIC struct {
	cfg  Config
	peer *NIC
	qs   []*queue // transmit queues of this NIC (drained by the peer)

	mu      sync.Mutex
	recv    func(queue int, frame []byte, info nic.RxInfo)
	link    func(up bool)
	change  func()
	linkUp  atomic.Bool
	stats   struct{ txFrames, txBytes, txGSO, txBusy, rxFrames, rxBytes, badMeta, badCsum atomic.Uint64 }
	closeCh chan struct{}
	wg      sync.WaitGroup
}

var _ nic.NIC = (*NIC)(nil)

// Pair returns two fake NICs wired back to back: what a sends, b receives on
// the same queue index, and vice versa. Both queue counts must match. Stop
// both with Close.
func Pair(a, b Config) (*NIC, *NIC) {
	x, y := newNIC(a), newNIC(b)
	if len(x.qs) != len(y.qs) {
		panic("nictest: queue counts differ")
	}
	x.peer, y.peer = y, x
	x.start()
	y.start()
	return x, y
}

func newNIC(cfg Config) *NIC {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Slots == 0 {
		cfg.Slots = 64
	}
	n := &NIC{cfg: cfg, closeCh: make(chan struct{})}
	n.linkUp.Store(true)
	size := header.EthernetMinimumSize + cfg.MTU
	if cfg.Offloads.LSOMaxSize > cfg.MTU {
		size = header.EthernetMinimumSize + cfg.Offloads.LSOMaxSize
	}
	for i := range cfg.Queues {
		q := &queue{
			busyErr:  fmt.Errorf("nictest: queue %d: %w", i, nic.ErrBusy),
			free:     make(chan *slot, cfg.Slots),
			full:     make(chan *slot, cfg.Slots),
			writable: make(chan struct{}),
			seg:      make([]byte, header.EthernetMinimumSize+cfg.MTU),
		}
		for range cfg.Slots {
			q.free <- &slot{buf: make([]byte, size)}
		}
		n.qs = append(n.qs, q)
	}
	return n
}

// start runs, for each of n's transmit queues, the goroutine that delivers
// to the peer (the peer's "queue goroutine").
func (n *NIC) start() {
	for i, q := range n.qs {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for {
				select {
				case s := <-q.full:
					n.peer.deliver(i, q, s)
					q.free <- s
					q.mu.Lock()
					if q.waiting {
						close(q.writable)
						q.writable = make(chan struct{})
						q.waiting = false
					}
					q.mu.Unlock()
				case <-n.closeCh:
					return
				}
			}
		}()
	}
}

// Close stops n's delivery goroutines. Frames in flight are discarded.
func (n *NIC) Close() {
	select {
	case <-n.closeCh:
	default:
		close(n.closeCh)
	}
	n.wg.Wait()
}

// MAC implements nic.NIC.
func (n *NIC) MAC() [6]byte { return n.cfg.MAC }

// MTU implements nic.NIC.
func (n *NIC) MTU() int { return n.cfg.MTU }

// Queues implements nic.NIC.
func (n *NIC) Queues() int { return n.cfg.Queues }

// LinkUp implements nic.NIC.
func (n *NIC) LinkUp() bool { return n.linkUp.Load() }

// Offloads implements nic.NIC.
func (n *NIC) Offloads() nic.Offloads { return n.cfg.Offloads }

// SetReceiver implements nic.NIC.
func (n *NIC) SetReceiver(fn func(queue int, frame []byte, info nic.RxInfo)) {
	n.mu.Lock()
	n.recv = fn
	n.mu.Unlock()
}

// SetLinkHandler implements nic.NIC.
func (n *NIC) SetLinkHandler(fn func(up bool)) {
	n.mu.Lock()
	n.link = fn
	n.mu.Unlock()
}

// SetNetworkChangeHandler implements nic.NIC.
func (n *NIC) SetNetworkChangeHandler(fn func()) {
	n.mu.Lock()
	n.change = fn
	n.mu.Unlock()
}

// SetLink simulates a media connect/disconnect indication, calling the link
// handler on the caller's goroutine.
func (n *NIC) SetLink(up bool) {
	n.linkUp.Store(up)
	n.mu.Lock()
	fn := n.link
	n.mu.Unlock()
	if fn != nil {
		fn(up)
	}
}

// NetworkChange simulates a network-change indication.
func (n *NIC) NetworkChange() {
	n.mu.Lock()
	fn := n.change
	n.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// Stats returns n's counters.
func (n *NIC) Stats() Stats {
	s := &n.stats
	return Stats{
		TxFrames: s.txFrames.Load(), TxBytes: s.txBytes.Load(), TxGSO: s.txGSO.Load(), TxBusy: s.txBusy.Load(),
		RxFrames: s.rxFrames.Load(), RxBytes: s.rxBytes.Load(),
		BadMeta: s.badMeta.Load(), BadPartialCsum: s.badCsum.Load(),
	}
}

// ErrClosed is returned by WaitWritable after Close.
var ErrClosed = errors.New("nictest: closed")

// Send implements nic.NIC.
func (n *NIC) Send(qi int, frame [][]byte, tx nic.TxInfo) error {
	if qi < 0 || qi >= len(n.qs) {
		return fmt.Errorf("nictest: queue %d out of range", qi)
	}
	q := n.qs[qi]
	var s *slot
	select {
	case s = <-q.free:
	default:
		n.stats.txBusy.Add(1)
		return q.busyErr
	}
	total := 0
	for _, p := range frame {
		if total+len(p) > len(s.buf) {
			q.free <- s
			n.stats.badMeta.Add(1)
			return fmt.Errorf("nictest: frame larger than %d bytes", len(s.buf))
		}
		total += copy(s.buf[total:], p)
	}
	s.n, s.tx = total, tx
	n.stats.txFrames.Add(1)
	n.stats.txBytes.Add(uint64(total))
	if tx.GSO {
		n.stats.txGSO.Add(1)
	}
	q.full <- s // never blocks: a slot taken from free always fits
	return nil
}

// WaitWritable implements nic.NIC.
func (n *NIC) WaitWritable(ctx context.Context, qi int) error {
	q := n.qs[qi]
	for {
		q.mu.Lock()
		if len(q.free) > 0 {
			q.mu.Unlock()
			return nil
		}
		q.waiting = true
		ch := q.writable
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.closeCh:
			return ErrClosed
		}
	}
}

// deliver runs on the receiving NIC (n) side: it applies the sender's
// transmit offloads to s and calls n's receiver.
func (n *NIC) deliver(qi int, q *queue, s *slot) {
	sender := n.peer
	f := s.buf[:s.n]
	tx := s.tx
	if !sender.checkMeta(f, tx) {
		sender.stats.badMeta.Add(1)
		return
	}
	if tx.GSO {
		sender.segment(f, tx, q.seg, func(seg []byte) { n.receive(qi, seg) })
		return
	}
	if len(f)-header.EthernetMinimumSize > sender.cfg.MTU {
		sender.stats.badMeta.Add(1)
		return
	}
	if !sender.finishCsum(f, tx) {
		return
	}
	n.receive(qi, f)
}

func (n *NIC) receive(qi int, f []byte) {
	n.mu.Lock()
	fn := n.recv
	n.mu.Unlock()
	n.stats.rxFrames.Add(1)
	n.stats.rxBytes.Add(uint64(len(f)))
	if fn == nil {
		return
	}
	var info nic.RxInfo
	if n.cfg.Offloads.RxCsum {
		info = verify(f)
	}
	fn(qi, f, info)
}

// checkMeta validates tx against the frame's headers.
func (n *NIC) checkMeta(f []byte, tx nic.TxInfo) bool {
	off := n.cfg.Offloads
	if !tx.CsumTCP && !tx.CsumUDP && !tx.CsumIPv4 && !tx.GSO {
		return true
	}
	if tx.L3Offset != header.EthernetMinimumSize || tx.L4Offset <= tx.L3Offset || tx.L4Offset+8 > len(f) {
		return false
	}
	et := binary.BigEndian.Uint16(f[12:])
	l3 := f[tx.L3Offset:]
	var proto uint8
	if tx.IsIPv6 {
		if et != uint16(header.IPv6ProtocolNumber) || tx.L4Offset-tx.L3Offset != header.IPv6MinimumSize || tx.CsumIPv4 {
			return false
		}
		proto = header.IPv6(l3).NextHeader()
	} else {
		if et != uint16(header.IPv4ProtocolNumber) || tx.L4Offset-tx.L3Offset != int(header.IPv4(l3).HeaderLength()) {
			return false
		}
		if tx.CsumIPv4 && !off.TxCsumIPv4 {
			return false
		}
		proto = header.IPv4(l3).Protocol()
	}
	if tx.CsumTCP && (proto != uint8(header.TCPProtocolNumber) || tx.IsIPv6 && !off.TxCsumTCP6 || !tx.IsIPv6 && !off.TxCsumTCP4) {
		return false
	}
	if tx.CsumUDP && (proto != uint8(header.UDPProtocolNumber) || tx.IsIPv6 && !off.TxCsumUDP6 || !tx.IsIPv6 && !off.TxCsumUDP4) {
		return false
	}
	if tx.GSO {
		if !tx.CsumTCP || tx.MSS <= 0 || tx.IsIPv6 && !off.LSOv6 || !tx.IsIPv6 && !off.LSOv4 ||
			len(f)-header.EthernetMinimumSize > off.LSOMaxSize {
			return false
		}
	}
	return true
}

func addrs(f []byte, tx nic.TxInfo) (src, dst tcpip.Address) {
	l3 := f[tx.L3Offset:]
	if tx.IsIPv6 {
		h := header.IPv6(l3)
		return h.SourceAddress(), h.DestinationAddress()
	}
	h := header.IPv4(l3)
	return h.SourceAddress(), h.DestinationAddress()
}

// finishCsum fills the checksums tx asks for, after checking that the L4
// checksum field holds the partial sum the contract prescribes.
func (n *NIC) finishCsum(f []byte, tx nic.TxInfo) bool {
	if tx.CsumIPv4 {
		h := header.IPv4(f[tx.L3Offset:])
		h.SetChecksum(0)
		h.SetChecksum(^h.CalculateChecksum())
	}
	if !tx.CsumTCP && !tx.CsumUDP {
		return true
	}
	l4 := f[tx.L4Offset:]
	proto, at := header.TCPProtocolNumber, header.TCPChecksumOffset
	if tx.CsumUDP {
		proto, at = header.UDPProtocolNumber, udpChecksumOffset
	}
	src, dst := addrs(f, tx)
	plen := uint16(len(l4))
	if tx.GSO {
		plen = 0
	}
	if binary.BigEndian.Uint16(l4[at:]) != header.PseudoHeaderChecksum(proto, src, dst, plen) {
		n.stats.badCsum.Add(1)
		return false
	}
	binary.BigEndian.PutUint16(l4[at:], 0)
	x := checksum.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4))))
	x = ^x
	if proto == header.UDPProtocolNumber && x == 0 {
		x = 0xffff
	}
	binary.BigEndian.PutUint16(l4[at:], x)
	return true
}

// segment cuts a GSO TCP frame into MSS-sized frames in scratch and calls
// emit for each, like a NIC doing large send offload.
func (n *NIC) segment(f []byte, tx nic.TxInfo, scratch []byte, emit func([]byte)) {
	tcp := header.TCP(f[tx.L4Offset:])
	hl := tx.L4Offset + int(tcp.DataOffset())
	if int(tcp.DataOffset()) < header.TCPMinimumSize || hl > len(f) {
		n.stats.badMeta.Add(1)
		return
	}
	src, dst := addrs(f, tx)
	if tcp.Checksum() != header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, 0) {
		n.stats.badCsum.Add(1)
		return
	}
	payload := f[hl:]
	mss := tx.MSS
	if hl-header.EthernetMinimumSize+mss > n.cfg.MTU {
		n.stats.badMeta.Add(1)
		return
	}
	seq := tcp.SequenceNumber()
	flags := tcp.Flags()
	var id uint16
	if !tx.IsIPv6 {
		id = header.IPv4(f[tx.L3Offset:]).ID()
	}
	for i, off := 0, 0; off < len(payload) || off == 0; i++ {
		end := min(off+mss, len(payload))
		seg := scratch[:hl+end-off]
		copy(seg, f[:hl])
		copy(seg[hl:], payload[off:end])
		l3len := len(seg) - tx.L3Offset
		if tx.IsIPv6 {
			header.IPv6(seg[tx.L3Offset:]).SetPayloadLength(uint16(l3len - header.IPv6MinimumSize))
		} else {
			h := header.IPv4(seg[tx.L3Offset:])
			h.SetTotalLength(uint16(l3len))
			h.SetID(id + uint16(i))
			h.SetChecksum(0)
			h.SetChecksum(^h.CalculateChecksum())
		}
		t := header.TCP(seg[tx.L4Offset:])
		t.SetSequenceNumber(seq + uint32(off))
		fl := flags
		if end < len(payload) {
			fl &^= header.TCPFlagFin | header.TCPFlagPsh
		}
		if off > 0 {
			fl &^= header.TCPFlagCwr
		}
		t.SetFlags(uint8(fl))
		t.SetChecksum(0)
		l4 := seg[tx.L4Offset:]
		t.SetChecksum(^checksum.Checksum(l4, header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(l4)))))
		emit(seg)
		off = end
		if end == len(payload) {
			break
		}
	}
}

// verify checks a received frame's IPv4 header and TCP/UDP checksums in
// software, as receive checksum offload would.
func verify(f []byte) nic.RxInfo {
	if len(f) < header.EthernetMinimumSize {
		return nic.RxInfo{}
	}
	et := tcpip.NetworkProtocolNumber(binary.BigEndian.Uint16(f[12:]))
	l3 := f[header.EthernetMinimumSize:]
	var (
		proto    tcpip.TransportProtocolNumber
		l4       []byte
		src, dst tcpip.Address
		info     nic.RxInfo
	)
	switch et {
	case header.IPv4ProtocolNumber:
		h := header.IPv4(l3)
		if !h.IsValid(len(l3)) || h.More() || h.FragmentOffset() != 0 {
			return nic.RxInfo{}
		}
		info.IPCsumOK = h.IsChecksumValid()
		proto, l4, src, dst = h.TransportProtocol(), h[h.HeaderLength():h.TotalLength()], h.SourceAddress(), h.DestinationAddress()
	case header.IPv6ProtocolNumber:
		h := header.IPv6(l3)
		if !h.IsValid(len(l3)) {
			return nic.RxInfo{}
		}
		info.IPCsumOK = true
		proto, l4, src, dst = h.TransportProtocol(), h[header.IPv6MinimumSize:header.IPv6MinimumSize+int(h.PayloadLength())], h.SourceAddress(), h.DestinationAddress()
	default:
		return nic.RxInfo{}
	}
	switch proto {
	case header.TCPProtocolNumber:
		if len(l4) < header.TCPMinimumSize {
			return nic.RxInfo{}
		}
	case header.UDPProtocolNumber:
		if len(l4) < header.UDPMinimumSize {
			return nic.RxInfo{}
		}
	default:
		return nic.RxInfo{}
	}
	info.CsumChecked = true
	info.L4CsumOK = checksum.Checksum(l4, header.PseudoHeaderChecksum(proto, src, dst, uint16(len(l4)))) == 0xffff
	if proto == header.UDPProtocolNumber && et == header.IPv4ProtocolNumber && binary.BigEndian.Uint16(l4[udpChecksumOffset:]) == 0 {
		info.L4CsumOK = true
	}
	return info
}

// udpChecksumOffset is the UDP checksum field's offset (RFC 768).
const udpChecksumOffset = 6
