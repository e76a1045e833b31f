package netvsp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gohv/gohv/tools/hvsim"
)

// Lock order: Device.mu before Device.rxMu; neither is held while calling
// into hvsim.Host (its server lock is taken before Device.mu when it calls
// Open and Close) or into the Backend.

// ClassNetwork is the synthetic NIC's device class (§5).
var ClassNetwork = hvsim.MustParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")

// Sentinel errors of violations; Host.Violations entries wrap one of them
// (besides ErrMalformed for undecodable messages).
var (
	// ErrState says a message came out of protocol order: before INIT,
	// before RNDIS INITIALIZE, a control message on a sub-channel, a
	// duplicate set-up message.
	ErrState = errors.New("netvsp: message out of protocol order")
	// ErrUnknownCompletion says a guest completion named a transaction id
	// the host never sent on that channel or already saw completed.
	ErrUnknownCompletion = errors.New("netvsp: completion for an unknown transaction")
	// ErrBufferRef says a packet referred to a send-buffer section, buffer
	// id or guest memory it may not use.
	ErrBufferRef = errors.New("netvsp: bad buffer reference")
)

// VMBus packet types and flags (§4.3, §4.4).
const (
	pktInband            = 0x6
	pktTransferPages     = 0x7
	pktGPADirect         = 0x9
	pktCompletion        = 0xB
	flagCompletionWanted = 1
)

// Transfer-page type-specific header (§4.5), offsets from the start of
// that header (packet offset 16).
const (
	offTPSetID       = 0 // u16: the guest's receive-buffer id
	offTPReserved    = 2
	offTPCount       = 4 // u32
	offTPRanges      = 8
	tpHdrSize        = 8
	offTPRangeCount  = 0 // u32 within a range
	offTPRangeOffset = 4 // u32
	tpRangeSize      = 8
)

// Host-side sizes and limits.
const (
	sendSectionSize    = 6144     // SEND_SEND_BUFFER_COMPLETE section size (§7.3, OpenVMM)
	maxRecvBufV1       = 15 << 20 // §7.4: NVSP 1 and 2
	maxRecvBufV4       = 31 << 20 // §7.4: NVSP 4 on
	maxRangesPerPacket = 64       // transfer-page ranges the host batches (≤ 375, §7.5)
	rxHeaderRoom       = 256      // sub-allocation room for RNDIS header + PPI (OpenVMM)
	rxFooterRoom       = 36       // sub-allocation tail OpenVMM keeps unused
	maxControlQueued   = 64
	controlMsgMax      = 640
	maxGuestMessage    = 128 << 10 // largest RNDIS message the host reads from the guest
	defaultMTU         = 1500
	defaultLinkSpeed   = 10_000_000_000
	defaultQueues      = 4
	defaultHoldFrames  = 256
)

// Config configures a Device. The zero value is usable: MAC
// 00:15:5d:00:00:01, MTU 1500, 10 Gbit/s, 4 queues, frames dropped for
// want of a Backend.
type Config struct {
	// MAC is the permanent address (OID_802_3_PERMANENT_ADDRESS).
	MAC [6]byte
	// MTU is the largest IP MTU the host allows (the NDIS MTU the guest
	// may configure is MTU+14).
	MTU int
	// LinkSpeed in bit/s (OID_GEN_LINK_SPEED reports it in 100 bit/s).
	LinkSpeed uint64
	// MaxQueues bounds the channels (primary + sub-channels).
	MaxQueues int
	// HoldFrames is how many host→guest frames each queue holds while the
	// guest has no room (its receive buffer or its ring is full); beyond
	// it frames are dropped and counted (Stats.RxDroppedFull). While the
	// guest has room the backend waits for a slot instead: a frame is
	// lost only to a guest that is behind.
	HoldFrames int
	// Instance is the offer's instance GUID (default fixed per MAC).
	Instance hvsim.GUID
	// Backend is the network the NIC is plugged into (nil: frames from
	// the guest are counted and dropped, none arrive).
	Backend Backend
}

// Stats are the device's counters.
type Stats struct {
	TxPackets       uint64 // RNDIS PACKET messages from the guest
	TxFrames        uint64 // frames given to the backend (after LSO)
	TxBytes         uint64
	TxLSO           uint64 // LSO sends segmented
	TxLSOWhole      uint64 // LSO sends given whole to an OffloadBackend
	TxLent          uint64 // of which read into memory a FrameLender lent
	TxCsum          uint64 // sends with a checksum request done
	TxDroppedLink   uint64 // guest frames dropped with the link down
	RxFrames        uint64 // frames written into the receive buffer
	RxBytes         uint64
	RxPackets       uint64 // transfer-page packets with data
	RxDroppedFull   uint64 // dropped: queue over HoldFrames while the guest had no room (receive buffer or ring full)
	RxDroppedLink   uint64 // dropped: link down
	RxDroppedFilter uint64 // dropped by the packet filter or before the guest is ready
	RxDroppedSize   uint64 // dropped: larger than the guest's MTU
	RxBufferWaits   uint64 // times a queue waited for receive-buffer space
	ControlMessages uint64 // RNDIS control messages answered
	Indications     uint64 // status indications sent
	CompletionsLost uint64 // send completions dropped by fault injection
	Violations      uint64
}

type stats struct {
	txPackets, txFrames, txBytes, txLSO, txCsum, txDroppedLink          atomic.Uint64
	txLSOWhole, txLent                                                  atomic.Uint64
	rxFrames, rxBytes, rxPackets, rxDroppedFull, rxDroppedLink          atomic.Uint64
	rxDroppedFilter, rxDroppedSize, rxBufferWaits, control, indications atomic.Uint64
	completionsLost, violations                                         atomic.Uint64
}

// rndisState is the RNDIS device state of §7.6.
type rndisState int

const (
	rndisUninit rndisState = iota
	rndisOperational
	rndisHalted
)

// Device is the host side of one synthetic NIC (NetVSP): an hvsim.Device
// whose primary channel and sub-channels it serves. Create it with New and
// add it with Host.AddDevice.
type Device struct {
	cfg  Config
	host *hvsim.Host
	// offload is cfg.Backend when it takes offloaded frames (fixed at New),
	// lender the same when it lends memory too.
	offload OffloadBackend
	lender  FrameLender

	mu sync.Mutex // guards the fields below up to rxMu
	// primary is the open primary channel's state (nil when closed).
	primary   *queue
	queues    []*queue // by sub-channel index; nil entries are closed
	relid     uint32   // primary relid
	version   uint32   // negotiated NVSP version (0: none)
	msgSize   int      // NVSP message size to send (§7.2)
	ndisMTU   uint32   // NDIS config MTU incl. Ethernet header
	haveCfg   bool
	ndisMajor uint32
	ndisMinor uint32
	send      *hvsim.GPADLView
	sendID    uint16
	sendGPADL uint32
	rndis     rndisState
	filter    uint32
	offl      offloads
	mac       [6]byte
	rss       rssParams
	rssOn     bool
	subsWant  int  // sub-channels granted
	tableSent bool // indirection table sent for subsWant
	ctrl      controlQueue

	rxMu sync.Mutex // guards recv, revoked and the receive buffers' state
	recv *recvBuffer
	// revoked is the receive buffer the guest revoked: the host writes
	// nothing more into it but still takes the completions of packets
	// that were outstanding at the revoke.
	revoked *recvBuffer

	link   atomic.Bool
	faults Faults
	stats  stats
}

// New creates a NIC served by host h.
func New(h *hvsim.Host, cfg Config) (*Device, error) {
	if h == nil {
		return nil, errors.New("netvsp: nil host")
	}
	if cfg.MAC == ([6]byte{}) {
		cfg.MAC = [6]byte{0x00, 0x15, 0x5d, 0x00, 0x00, 0x01}
	}
	if cfg.MAC[0]&1 != 0 {
		return nil, fmt.Errorf("netvsp: MAC %x is multicast", cfg.MAC)
	}
	if cfg.MTU == 0 {
		cfg.MTU = defaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > 9000 {
		return nil, fmt.Errorf("netvsp: MTU %d out of range", cfg.MTU)
	}
	if cfg.LinkSpeed == 0 {
		cfg.LinkSpeed = defaultLinkSpeed
	}
	if cfg.MaxQueues == 0 {
		cfg.MaxQueues = defaultQueues
	}
	if cfg.MaxQueues < 1 || cfg.MaxQueues > 64 {
		return nil, fmt.Errorf("netvsp: MaxQueues %d out of range", cfg.MaxQueues)
	}
	if cfg.HoldFrames == 0 {
		cfg.HoldFrames = defaultHoldFrames
	}
	if cfg.Instance == (hvsim.GUID{}) {
		cfg.Instance = hvsim.GUID{0x6e, 0x65, 0x74, 0x76, 0x73, 0x70, 0x00, 0x00, 0x00, 0x00,
			cfg.MAC[0], cfg.MAC[1], cfg.MAC[2], cfg.MAC[3], cfg.MAC[4], cfg.MAC[5]}
	}
	d := &Device{cfg: cfg, host: h, queues: make([]*queue, cfg.MaxQueues)}
	d.link.Store(true)
	d.faults.d = d
	d.resetLocked()
	if cfg.Backend != nil {
		if ob, ok := cfg.Backend.(OffloadBackend); ok && ob.TakesOffloaded() {
			d.offload = ob
			d.lender, _ = ob.(FrameLender)
		}
		cfg.Backend.SetReceiver(d.deliver)
	}
	return d, nil
}

// resetLocked returns the protocol state to "nothing negotiated".
func (d *Device) resetLocked() {
	d.version, d.msgSize, d.ndisMTU, d.haveCfg = 0, nvspSizeV1, uint32(d.cfg.MTU+ethHdrLen), false
	d.ndisMajor, d.ndisMinor = 0, 0
	d.send, d.sendID, d.sendGPADL = nil, 0, 0
	d.rndis, d.filter, d.offl, d.mac = rndisUninit, 0, allOffloads, d.cfg.MAC
	d.rssOn, d.subsWant, d.tableSent = false, 0, false
	d.ctrl.reset()
	d.rxMu.Lock()
	d.recv, d.revoked = nil, nil
	d.rxMu.Unlock()
}

// Offer implements hvsim.Device.
func (d *Device) Offer() hvsim.OfferSpec {
	return hvsim.OfferSpec{Class: ClassNetwork, Instance: d.cfg.Instance}
}

// Open implements hvsim.Device: it starts the channel's goroutines.
func (d *Device) Open(ch *hvsim.Channel) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	idx := int(ch.SubChannelIndex())
	if idx >= len(d.queues) {
		return fmt.Errorf("netvsp: sub-channel %d beyond %d queues", idx, len(d.queues))
	}
	if d.queues[idx] != nil {
		return fmt.Errorf("netvsp: queue %d already open", idx)
	}
	if idx > 0 && (d.primary == nil || idx > d.subsWant) {
		return fmt.Errorf("netvsp: sub-channel %d without a primary that asked for it", idx)
	}
	q := newQueue(d, ch, idx, d.cfg.HoldFrames)
	d.queues[idx] = q
	if idx == 0 {
		d.primary, d.relid = q, ch.RelID()
		d.resetLocked()
	} else {
		d.primary.kickControl() // maybe the indirection table is due
	}
	q.start()
	return nil
}

// Close implements hvsim.Device.
func (d *Device) Close(ch *hvsim.Channel) {
	d.mu.Lock()
	idx := int(ch.SubChannelIndex())
	if idx >= len(d.queues) || d.queues[idx] == nil || d.queues[idx].ch != ch {
		d.mu.Unlock()
		return
	}
	q := d.queues[idx]
	d.queues[idx] = nil
	if idx == 0 {
		d.primary = nil
		d.resetLocked()
	} else {
		d.tableSent = false
	}
	d.mu.Unlock()
	q.stop()
	d.rxMu.Lock()
	for _, r := range []*recvBuffer{d.recv, d.revoked} {
		if r != nil {
			r.releaseQueue(idx)
		}
	}
	d.rxMu.Unlock()
	d.kickAll()
}

// hasRecv reports whether a receive buffer is set up (d.mu may be held).
func (d *Device) hasRecv() bool {
	d.rxMu.Lock()
	defer d.rxMu.Unlock()
	return d.recv != nil
}

// violate records a protocol violation with the host. It is never called
// with Device.mu or rxMu held: the host's violation hook may call hvsim.
func (d *Device) violate(q *queue, err error) {
	d.stats.violations.Add(1)
	d.host.RecordViolation(fmt.Errorf("netvsp relid %d: %w", q.ch.RelID(), err))
}

// Stats returns the device counters.
func (d *Device) Stats() Stats {
	s := &d.stats
	return Stats{
		TxPackets: s.txPackets.Load(), TxFrames: s.txFrames.Load(), TxBytes: s.txBytes.Load(),
		TxLSO: s.txLSO.Load(), TxLSOWhole: s.txLSOWhole.Load(), TxLent: s.txLent.Load(), TxCsum: s.txCsum.Load(), TxDroppedLink: s.txDroppedLink.Load(),
		RxFrames: s.rxFrames.Load(), RxBytes: s.rxBytes.Load(), RxPackets: s.rxPackets.Load(),
		RxDroppedFull: s.rxDroppedFull.Load(), RxDroppedLink: s.rxDroppedLink.Load(),
		RxDroppedFilter: s.rxDroppedFilter.Load(), RxDroppedSize: s.rxDroppedSize.Load(),
		RxBufferWaits: s.rxBufferWaits.Load(), ControlMessages: s.control.Load(),
		Indications: s.indications.Load(), CompletionsLost: s.completionsLost.Load(),
		Violations: s.violations.Load(),
	}
}

// State is a snapshot of the negotiated protocol state, for tests and
// diagnostics.
type State struct {
	NVSPVersion          uint32
	NDISMajor, NDISMinor uint32
	NDISMTU              uint32
	RecvBufferSubAllocs  uint32
	RecvBufferSubSize    uint32
	RecvOutstanding      int // transfer-page packets the guest has not completed
	SendBufferSections   int
	RNDISInitialized     bool
	PacketFilter         uint32
	MAC                  [6]byte
	OpenQueues           int
	SubChannels          int
	RSS                  bool
	LinkUp               bool
}

// State returns the current protocol state.
func (d *Device) State() State {
	d.mu.Lock()
	s := State{NVSPVersion: d.version, NDISMajor: d.ndisMajor, NDISMinor: d.ndisMinor,
		NDISMTU: d.ndisMTU, RNDISInitialized: d.rndis == rndisOperational, PacketFilter: d.filter,
		MAC: d.mac, SubChannels: d.subsWant, RSS: d.rssOn, LinkUp: d.link.Load()}
	if d.send != nil {
		s.SendBufferSections = d.send.Len() / sendSectionSize
	}
	for _, q := range d.queues {
		if q != nil {
			s.OpenQueues++
		}
	}
	d.mu.Unlock()
	d.rxMu.Lock()
	if r := d.recv; r != nil {
		s.RecvBufferSubAllocs, s.RecvBufferSubSize, s.RecvOutstanding = r.count, r.subSize, r.outstanding()
	}
	d.rxMu.Unlock()
	return s
}

// SetLink sets the link state and, when it changes and the guest's RNDIS
// device is initialized, indicates media connect or disconnect (§7.8).
// While the link is down no frame passes in either direction.
func (d *Device) SetLink(up bool) {
	if d.link.Swap(up) == up {
		return
	}
	st := uint32(StatusMediaDisconnect)
	if up {
		st = StatusMediaConnect
	}
	d.indicate(st, nil)
}

// LinkUp reports the link state.
func (d *Device) LinkUp() bool { return d.link.Load() }

// IndicateNetworkChange sends the network-change indication (§7.8) that
// tells the guest to renew its address.
func (d *Device) IndicateNetworkChange() { d.indicate(StatusNetworkChange, nil) }

// IndicateLinkSpeed sends a link-speed change indication (§7.8) with the
// speed in bit/s.
func (d *Device) IndicateLinkSpeed(bps uint64) {
	var b [4]byte
	le.PutUint32(b[:], uint32(min(bps/100, 0xFFFFFFFF)))
	d.indicate(StatusLinkSpeedChange, b[:])
}

func (d *Device) indicate(status uint32, buf []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.primary == nil || d.rndis != rndisOperational {
		return
	}
	m := d.ctrl.push()
	if m == nil {
		return
	}
	m.n = encodeIndicateStatus(m.b[:], status, buf)
	m.indication = true
	d.primary.kickControl()
}

// Rescind withdraws the NIC's offers (RESCIND_CHANNELOFFER), sub-channels
// first, with whatever I/O is outstanding.
func (d *Device) Rescind() error {
	d.mu.Lock()
	relid, open := d.relid, d.primary != nil
	var subs []uint32
	for _, q := range d.queues[1:] {
		if q != nil {
			subs = append(subs, q.ch.RelID())
		}
	}
	d.mu.Unlock()
	if !open {
		return errors.New("netvsp: not open")
	}
	for _, r := range subs {
		if err := d.host.Rescind(r); err != nil {
			return err
		}
	}
	return d.host.Rescind(relid)
}

// FillGuestRing fills queue's host→guest ring (fault injection) and
// returns how many filler packets it wrote.
func (d *Device) FillGuestRing(queue int) int {
	d.mu.Lock()
	var ch *hvsim.Channel
	if queue >= 0 && queue < len(d.queues) && d.queues[queue] != nil {
		ch = d.queues[queue].ch
	}
	d.mu.Unlock()
	if ch == nil {
		return 0
	}
	return ch.FillGuestRing()
}

// kickAll wakes every queue's receive goroutine (receive-buffer space was
// freed).
func (d *Device) kickAll() {
	d.mu.Lock()
	for _, q := range d.queues {
		if q != nil {
			q.kickRx()
		}
	}
	d.mu.Unlock()
}

// controlQueue holds RNDIS responses and indications waiting for a
// control sub-allocation of the receive buffer. Storage is fixed.
type controlQueue struct {
	msgs       [maxControlQueued]controlMsg
	head, size int
}

type controlMsg struct {
	b          [controlMsgMax]byte
	n          int
	indication bool
}

func (c *controlQueue) reset() { c.head, c.size = 0, 0 }

// push returns a slot for a new message, or nil when full.
func (c *controlQueue) push() *controlMsg {
	if c.size == len(c.msgs) {
		return nil
	}
	m := &c.msgs[(c.head+c.size)%len(c.msgs)]
	c.size++
	m.n, m.indication = 0, false
	return m
}

func (c *controlQueue) front() *controlMsg {
	if c.size == 0 {
		return nil
	}
	return &c.msgs[c.head]
}

func (c *controlQueue) pop() {
	c.head = (c.head + 1) % len(c.msgs)
	c.size--
}

// contextFor returns a context that ends when ch closes.
func contextFor(ch *hvsim.Channel) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-ch.Done():
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

// Dump describes the device's protocol state and counters in a few lines,
// for test failure messages (like hvsim.Host.Dump).
func (d *Device) Dump() string {
	s, st := d.State(), d.Stats()
	return fmt.Sprintf("netvsp MAC %x link=%v NVSP %#x NDIS %d.%d MTU %d rndis=%v filter %#x queues %d/%d rss=%v\n"+
		"  receive buffer %d×%d outstanding %d, send sections %d\n  %+v",
		s.MAC, s.LinkUp, s.NVSPVersion, s.NDISMajor, s.NDISMinor, s.NDISMTU, s.RNDISInitialized, s.PacketFilter,
		s.OpenQueues, s.SubChannels+1, s.RSS, s.RecvBufferSubAllocs, s.RecvBufferSubSize, s.RecvOutstanding,
		s.SendBufferSections, st)
}
