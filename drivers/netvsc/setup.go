package netvsc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/gohv/gohv/drivers/netvsc/nvsp"
	"github.com/gohv/gohv/drivers/netvsc/rndis"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/ring"
)

// rndisMaxTransfer is the max transfer size the guest announces in
// RNDIS INITIALIZE (Linux's value, §7.6).
const rndisMaxTransfer = 0x4000

// setup runs the init sequence of §7.4 on the open primary channel.
func (n *NIC) setup(ctx context.Context) error {
	if err := n.negotiate(ctx); err != nil {
		return err
	}
	if err := n.sendConfig(ctx); err != nil {
		return err
	}
	if err := n.setupReceiveBuffer(ctx); err != nil {
		return err
	}
	if err := n.setupSendBuffer(ctx); err != nil {
		return err
	}
	if err := n.queues[0].allocTx(); err != nil {
		return err
	}
	if err := n.bounce.alloc(n.cfg.Memory, n.cfg.BounceBuffers, bounceSize); err != nil {
		return err
	}
	if err := n.rndisInit(ctx); err != nil {
		return err
	}
	if err := n.vrss(ctx); err != nil {
		return err
	}
	var filter [4]byte
	binary.LittleEndian.PutUint32(filter[:], rndis.FilterDefault)
	if err := n.setOID(ctx, rndis.OIDGenCurrentPacketFilter, filter[:]); err != nil {
		return fmt.Errorf("netvsc: set packet filter: %w", err)
	}
	return nil
}

// setupRequest sends one NVSP message with a completion requested and
// returns the completion's payload (a copy, valid until the next call).
func (n *NIC) setupRequest(ctx context.Context, msg []byte) ([]byte, error) {
	n.setupMu.Lock()
	defer n.setupMu.Unlock()
	n.setupSeq++
	txid := txidKindSetup | uint64(n.setupSeq)
	select {
	case <-n.setupCh: // a stale answer
	default:
	}
	n.setupTxid.Store(txid)
	defer n.setupTxid.Store(0)
	if err := n.primary.SendWithHeader(ctx, ring.TypeDataInband, flagCompletionRequested, txid, nil, msg); err != nil {
		return nil, fmt.Errorf("netvsc: send NVSP %d: %w", binary.LittleEndian.Uint32(msg), err)
	}
	select {
	case l := <-n.setupCh:
		return n.setupResp[:l], nil
	case <-n.gone:
		return nil, n.goneErr()
	case <-ctx.Done():
		return nil, fmt.Errorf("netvsc: waiting for NVSP %d completion: %w", binary.LittleEndian.Uint32(msg), ctx.Err())
	}
}

// deliverSetup runs on queue 0's interrupt path with a completion whose
// txid is of kind setup.
func (n *NIC) deliverSetup(txid uint64, payload []byte) bool {
	if txid == 0 || n.setupTxid.Load() != txid || len(payload) > len(n.setupResp) {
		return false
	}
	l := copy(n.setupResp[:], payload)
	select {
	case n.setupCh <- l:
		return true
	default:
		return false
	}
}

// negotiate tries the NVSP versions newest first (§7.4 step 1).
func (n *NIC) negotiate(ctx context.Context) error {
	var msg [nvsp.MessageSize]byte
	for _, v := range nvsp.Versions {
		resp, err := n.setupRequest(ctx, nvsp.PutInit(msg[:], v))
		if err != nil {
			return err
		}
		ic, err := nvsp.ParseInitComplete(resp)
		if err != nil {
			return fmt.Errorf("%w: INIT_COMPLETE: %w", ErrProtocol, err)
		}
		if ic.Status == nvsp.StatusSuccess {
			n.version = v
			return nil
		}
	}
	return ErrNoVersion
}

// sendConfig sends SEND_NDIS_CONFIG (NVSP ≥ 2) and SEND_NDIS_VERSION
// (§7.4 steps 2–3). SR-IOV and RSC are never announced: the NIC has no VF
// data path and does not coalesce receives.
func (n *NIC) sendConfig(ctx context.Context) error {
	var msg [nvsp.MessageSize]byte
	if n.version >= nvsp.Version2 {
		caps := nvsp.CapIEEE8021Q
		if n.version >= nvsp.Version5 {
			caps |= nvsp.CapTeaming
		}
		nvsp.PutNDISConfig(msg[:], uint32(n.cfg.MTU+ethHeaderLen), caps)
		if err := n.primary.SendWithHeader(ctx, ring.TypeDataInband, 0, 0, nil, msg[:]); err != nil {
			return fmt.Errorf("netvsc: SEND_NDIS_CONFIG: %w", err)
		}
	}
	major, minor := n.version.NDISVersion()
	if err := n.primary.SendWithHeader(ctx, ring.TypeDataInband, 0, 0, nil, nvsp.PutNDISVersion(msg[:], major, minor)); err != nil {
		return fmt.Errorf("netvsc: SEND_NDIS_VERSION: %w", err)
	}
	return nil
}

func (n *NIC) setupReceiveBuffer(ctx context.Context) error {
	size := min(n.cfg.ReceiveBufferSize, n.version.MaxReceiveBuffer())
	p, err := n.cfg.Memory.AllocPages(size / hv.PageSize)
	if err != nil {
		return fmt.Errorf("netvsc: receive buffer: %w", err)
	}
	n.recvBuf = p
	g, err := n.primary.CreateGPADL(ctx, p)
	if err != nil {
		return fmt.Errorf("netvsc: receive buffer GPADL: %w", err)
	}
	n.recvGPADL, n.haveRecvGPADL = g, true
	var msg [nvsp.MessageSize]byte
	resp, err := n.setupRequest(ctx, nvsp.PutSendReceiveBuffer(msg[:], g.ID, receiveBufferID))
	if err != nil {
		return err
	}
	status, sec, err := nvsp.ParseReceiveBufferComplete(resp, len(p.Mem))
	if status == nvsp.StatusSuccess {
		n.recvRevoke = true
	}
	if err != nil {
		return fmt.Errorf("%w: SEND_RECEIVE_BUFFER_COMPLETE: %w", ErrProtocol, err)
	}
	if status != nvsp.StatusSuccess {
		return &HostError{Op: "SEND_RECEIVE_BUFFER", Status: status}
	}
	n.recvLimit = max(uint64(sec.EndOffset), uint64(sec.SubAllocSize)*uint64(sec.SubAllocCount))
	for _, q := range n.queues {
		q.allocRx(int(sec.SubAllocCount))
	}
	n.rxSubAllocs = int(sec.SubAllocCount)
	return nil
}

func (n *NIC) setupSendBuffer(ctx context.Context) error {
	p, err := n.cfg.Memory.AllocPages(n.cfg.SendBufferSize / hv.PageSize)
	if err != nil {
		return fmt.Errorf("netvsc: send buffer: %w", err)
	}
	n.sendBuf = p
	g, err := n.primary.CreateGPADL(ctx, p)
	if err != nil {
		return fmt.Errorf("netvsc: send buffer GPADL: %w", err)
	}
	n.sendGPADL, n.haveSendGPADL = g, true
	var msg [nvsp.MessageSize]byte
	resp, err := n.setupRequest(ctx, nvsp.PutSendSendBuffer(msg[:], g.ID, sendBufferID))
	if err != nil {
		return err
	}
	status, secSize, err := nvsp.ParseSendBufferComplete(resp, len(p.Mem))
	if status == nvsp.StatusSuccess {
		n.sendRevoke = true
	}
	if err != nil {
		return fmt.Errorf("%w: SEND_SEND_BUFFER_COMPLETE: %w", ErrProtocol, err)
	}
	if status != nvsp.StatusSuccess {
		return &HostError{Op: "SEND_SEND_BUFFER", Status: status}
	}
	n.sectionSize = int(secSize)
	n.sections = len(p.Mem) / n.sectionSize
	words := (n.sections + 63) / 64
	n.secMap = make([]atomic.Uint64, words)
	if r := n.sections % 64; r != 0 {
		n.secMap[words-1].Store(^uint64(0) << r) // sections past the end stay "in use"
	}
	return nil
}

// allocSection takes a free send-buffer section, starting the search at
// hint, or returns −1. Lock-free.
func (n *NIC) allocSection(hint int) int {
	words := len(n.secMap)
	if words == 0 {
		return -1
	}
	start := hint % words
	for i := range words {
		w := &n.secMap[(start+i)%words]
		for {
			v := w.Load()
			if v == ^uint64(0) {
				break
			}
			bit := bits.TrailingZeros64(^v)
			if w.CompareAndSwap(v, v|1<<bit) {
				return ((start+i)%words)*64 + bit
			}
		}
	}
	return -1
}

func (n *NIC) freeSection(s int) {
	n.secMap[s/64].And(^(uint64(1) << (s % 64)))
}

func (n *NIC) section(s int) []byte {
	return n.sendBuf.Mem[s*n.sectionSize : (s+1)*n.sectionSize]
}

// rndisInit is RNDIS INITIALIZE and the queries and sets of §7.4 step 6.
func (n *NIC) rndisInit(ctx context.Context) error {
	var req [rndis.InitializeSize]byte
	rndis.PutInitialize(req[:], 0, rndisMaxTransfer)
	var resp [controlRespSize]byte
	l, err := n.request(ctx, req[:], resp[:])
	if err != nil {
		return fmt.Errorf("netvsc: RNDIS INITIALIZE: %w", err)
	}
	ic, err := rndis.ParseInitializeComplete(resp[:l])
	if err != nil {
		return fmt.Errorf("%w: INITIALIZE_CMPLT: %w", ErrProtocol, err)
	}
	if ic.Status != rndis.StatusSuccess {
		return &HostError{Op: "RNDIS INITIALIZE", Status: ic.Status}
	}

	n.mtu = n.cfg.MTU
	if info, err := n.queryOID(ctx, rndis.OIDGenMaximumFrameSize, nil, resp[:]); err == nil {
		if v, err := rndis.ParseUint32(info); err == nil && v >= MinMTU && int(v) < n.mtu {
			n.mtu = int(v)
		}
	}
	n.maxFrame = n.mtu + ethHeaderLen + vlanTagLen

	info, err := n.queryOID(ctx, rndis.OID8023PermanentAddress, nil, resp[:])
	if err != nil {
		return fmt.Errorf("netvsc: query MAC address: %w", err)
	}
	if n.mac, err = rndis.ParseMAC(info); err != nil {
		return fmt.Errorf("%w: MAC address: %w", ErrProtocol, err)
	}

	n.setupOffloads(ctx)

	if info, err := n.queryOID(ctx, rndis.OIDGenMediaConnectStatus, nil, resp[:]); err == nil {
		if v, err := rndis.ParseUint32(info); err == nil {
			n.linkUp.Store(v == rndis.MediaConnected)
		}
	}
	if n.version >= nvsp.Version5 {
		if info, err := n.queryOID(ctx, rndis.OIDGenLinkSpeed, nil, resp[:]); err == nil {
			if v, err := rndis.ParseUint32(info); err == nil {
				n.linkSpeed.Store(uint64(v) * 100)
			}
		}
	}
	return nil
}

// setupOffloads queries the host's offload capabilities and enables what
// the NIC contract exposes (Linux rndis_filter.c rndis_netdev_set_hwcaps
// for the rules). A host that answers neither leaves all offloads off.
func (n *NIC) setupOffloads(ctx context.Context) {
	rev, size := uint8(1), rndis.OffloadSize60
	switch {
	case n.version >= nvsp.Version5:
		rev, size = 3, rndis.OffloadSize630
	case n.version >= nvsp.Version4:
		rev, size = 2, rndis.OffloadSize61
	}
	var q [rndis.OffloadSize630]byte
	rndis.OffloadRequest(q[:], rev, size)
	var resp [controlRespSize]byte
	info, err := n.queryOID(ctx, rndis.OIDTCPOffloadHardwareCaps, q[:size], resp[:])
	if err != nil {
		return
	}
	caps, err := rndis.ParseOffloadCaps(info)
	if err != nil {
		n.ctr.badPackets.Add(1)
		return
	}
	var o Offloads
	p := rndis.OffloadParams{IPv4Csum: rndis.OffloadDisabled}
	const lsoLimit = 64 << 10
	lso := lsoLimit
	udpOK := n.version > nvsp.Version4
	const tcp4 = rndis.CsumCapTCP | rndis.CsumCapTCPOptions
	if caps.IPv4TxCsum&tcp4 == tcp4 {
		o.TxCsumTCP4, p.TCPIPv4Csum = true, rndis.OffloadTxRx
		if caps.IPv4TxCsum&rndis.CsumCapIPv4 != 0 {
			o.TxCsumIPv4, p.IPv4Csum = true, rndis.OffloadTxRx
		}
		if caps.LSOv2IPv4Encap&rndis.EncapIEEE8023 != 0 && caps.LSOv2IPv4MaxSize > 0 {
			o.LSOv4, p.LSOv2IPv4 = true, rndis.OffloadLSOv2On
			lso = min(lso, int(caps.LSOv2IPv4MaxSize))
		}
		if udpOK && caps.IPv4TxCsum&rndis.CsumCapUDP != 0 {
			o.TxCsumUDP4, p.UDPIPv4Csum = true, rndis.OffloadTxRx
		}
	}
	const tcp6 = rndis.CsumCapTCP | rndis.CsumCapTCPOptions | rndis.CsumCapIPv4Options
	if caps.IPv6TxCsum&tcp6 == tcp6 {
		o.TxCsumTCP6, p.TCPIPv6Csum = true, rndis.OffloadTxRx
		if caps.LSOv2IPv6Encap&rndis.EncapIEEE8023 != 0 && caps.LSOv2IPv6Options&rndis.LSOv2CapIPv6 == rndis.LSOv2CapIPv6 && caps.LSOv2IPv6MaxSize > 0 {
			o.LSOv6, p.LSOv2IPv6 = true, rndis.OffloadLSOv2On
			lso = min(lso, int(caps.LSOv2IPv6MaxSize))
		}
		if udpOK && caps.IPv6TxCsum&rndis.CsumCapUDP != 0 {
			o.TxCsumUDP6, p.UDPIPv6Csum = true, rndis.OffloadTxRx
		}
	}
	o.RxCsum = o.TxCsumTCP4 || o.TxCsumTCP6
	if o.LSOv4 || o.LSOv6 {
		o.LSOMaxSize = min(lso, bounceSize-bounceHeadroom)
		if o.LSOMaxSize < n.maxFrame {
			o.LSOv4, o.LSOv6, o.LSOMaxSize = false, false, 0
			p.LSOv2IPv4, p.LSOv2IPv6 = rndis.OffloadNoChange, rndis.OffloadNoChange
		}
	}
	psize := rndis.OffloadParamsSize
	if n.version <= nvsp.Version4 {
		psize = rndis.OffloadParamsSizeV4
	}
	var set [rndis.OffloadParamsSize]byte
	rndis.PutOffloadParams(set[:], p, psize)
	if err := n.setOID(ctx, rndis.OIDTCPOffloadParameters, set[:psize]); err != nil {
		return
	}
	n.offloads = o
}

// vrss requests sub-channels and opens one queue per sub-channel (§7.4
// step 7). Failures of the optional parts leave a single queue.
func (n *NIC) vrss(ctx context.Context) error {
	for i := range n.sendTable {
		n.sendTable[i].Store(0)
	}
	if n.version < nvsp.Version5 || n.cfg.Queues < 2 || n.cfg.SubChannels == nil {
		return nil
	}
	var capq [rndis.RSSCapsSize]byte
	rndis.RSSCapsRequest(capq[:])
	var resp [controlRespSize]byte
	info, err := n.queryOID(ctx, rndis.OIDGenReceiveScaleCaps, capq[:], resp[:])
	if err != nil {
		return nil
	}
	caps, err := rndis.ParseRSSCaps(info)
	if err != nil {
		n.ctr.badPackets.Add(1)
		return nil
	}
	want := min(n.cfg.Queues, int(caps.ReceiveQueues), maxQueues)
	if want < 2 {
		return nil
	}
	var msg [nvsp.MessageSize]byte
	r, err := n.setupRequest(ctx, nvsp.PutSubChannelRequest(msg[:], uint32(want-1)))
	if err != nil {
		return err
	}
	status, count, err := nvsp.ParseSubChannelComplete(r, uint32(want-1))
	if err != nil {
		return fmt.Errorf("%w: SUBCHANNEL completion: %w", ErrProtocol, err)
	}
	if status != nvsp.StatusSuccess || count == 0 {
		return nil
	}
	subs, err := n.cfg.SubChannels.WaitSubChannels(ctx, int(count))
	if err != nil && len(subs) == 0 {
		return fmt.Errorf("netvsc: waiting for %d sub-channels: %w", count, err)
	}
	for _, ch := range subs {
		q := newQueue(n, len(n.queues), ch)
		if err := q.allocTx(); err != nil {
			return err
		}
		q.allocRx(n.rxSubAllocs)
		if err := ch.Open(ctx, vmbus.OpenConfig{SendRingSize: n.cfg.RingSize, RecvRingSize: n.cfg.RingSize, OnInterrupt: q.onInterrupt}); err != nil {
			q.free()
			if errors.Is(err, ctx.Err()) {
				return fmt.Errorf("netvsc: open sub-channel: %w", err)
			}
			break
		}
		n.queuesMu.Lock()
		n.queues = append(n.queues, q)
		n.nqueues.Store(int32(len(n.queues)))
		n.queuesMu.Unlock()
		n.subs = append(n.subs, ch)
		q.start()
	}
	for i := range n.sendTable {
		n.sendTable[i].Store(uint32(i % len(n.queues)))
	}
	entries := int(caps.IndirectionEntries)
	if entries == 0 || entries > rndis.MaxIndirectionTable {
		entries = rndis.MaxIndirectionTable
	}
	var table [rndis.MaxIndirectionTable]uint32
	for i := range entries {
		table[i] = uint32(i % len(n.queues))
	}
	var set [rndis.RSSParamsSize + 4*rndis.MaxIndirectionTable + rndis.RSSKeySize]byte
	l := rndis.PutRSSParams(set[:], 0, rndis.HashDefault, table[:entries], &n.rssKey)
	// Like Linux, a host that refuses the parameters still gets the
	// queues: it spreads receives its own way.
	_ = n.setOID(ctx, rndis.OIDGenReceiveScaleParameters, set[:l])
	return nil
}
