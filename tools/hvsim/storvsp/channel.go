package storvsp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/gohv/gohv/tools/hvsim"
)

// chanState serves one channel (primary or sub-channel) on its own
// goroutine: it takes packets from the guest, runs them synchronously and
// writes the completions. The buffers are per channel so the I/O path
// allocates nothing.
type chanState struct {
	d       *StorVSP
	ch      *hvsim.Channel
	ctx     context.Context
	cancel  context.CancelFunc
	kick    chan struct{} // notifications queued for the primary
	buf     []byte        // one incoming packet
	reply   [packetSizeWin8]byte
	cdb     [srbCDBMax]byte
	scratch []byte
	ranges  []hvsim.PageRange
	pfns    []uint64
}

func newChanState(d *StorVSP, ch *hvsim.Channel) *chanState {
	ctx, cancel := context.WithCancel(context.Background())
	maxPFNs := int(d.cfg.MaxTransfer)/4096 + 1
	return &chanState{d: d, ch: ch, ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1),
		buf:     make([]byte, 64<<10+8*maxPFNs),
		scratch: make([]byte, max(int(d.cfg.MaxTransfer), 64<<10)),
		ranges:  make([]hvsim.PageRange, 0, 4), pfns: make([]uint64, 0, maxPFNs+8)}
}

// pollWindow is how long a channel goroutine keeps polling the guest's
// ring, with the guest's signals masked, after the last packet it took,
// before it unmasks and waits for a signal. A real host's VSP runs on its
// own processors and sees a busy guest's requests without an interrupt per
// batch; polling for a moment keeps the simulated one off the wake-up
// path (a goroutine hand-off per batch) while I/O streams, and costs at
// most this much CPU when the stream stops. A stream's gaps are a few
// microseconds; a longer window only burns CPU the guest may need when
// the two do not get a processor each (50 µs did worse than no polling on
// a loaded machine).
const pollWindow = 10 * time.Microsecond

func (c *chanState) serve() {
	defer c.cancel()
	for {
		select {
		case <-c.d.crashCh:
			// A crashed host answers nothing; the channel stays open.
			<-c.ch.Done()
			return
		default:
		}
		c.sendNotifications()
		if !c.drain() {
			return
		}
		select {
		case <-c.ch.Signaled():
		case <-c.kick:
		case <-c.d.crashCh:
		case <-c.ch.Done():
			return
		}
	}
}

// drain runs the guest's packets until the ring stays empty for
// pollWindow, with the guest's signals masked meanwhile: the guest need
// not signal a host that is looking (docs/hyperv-protocol.md §4.6). It
// returns with the mask clear and the ring empty after clearing it, so the
// guest signals its next packet; or false when the channel is gone and
// serve must end.
func (c *chanState) drain() bool {
	c.ch.MaskSignals()
	var idle time.Time // when the ring was first found empty
	for {
		p, ok, err := c.ch.Recv(c.buf)
		if errors.Is(err, hvsim.ErrBufferTooSmall) {
			c.d.violate(c, "packet larger than any VSTOR packet: %v", err)
			<-c.ch.Done()
			return false
		}
		if err != nil {
			return false // closed, or the ring is broken (hvsim recorded it)
		}
		if ok {
			if c.d.crashed.Load() {
				c.ch.UnmaskSignals()
				return true
			}
			c.handle(p)
			c.pollNotifications()
			idle = time.Time{}
			continue
		}
		c.pollNotifications()
		if idle.IsZero() {
			idle = time.Now()
		}
		if time.Since(idle) < pollWindow {
			runtime.Gosched() // let a guest goroutine waiting on this P run
			continue
		}
		if !c.ch.UnmaskSignals() {
			return true
		}
		// A packet came in before the mask was clear: take it, masked.
		c.ch.MaskSignals()
		idle = time.Time{}
	}
}

// pollNotifications sends notifications queued meanwhile, so that a
// stream of I/O, which keeps drain polling, does not hold back a hot-plug
// notification until it ends.
func (c *chanState) pollNotifications() {
	select {
	case <-c.kick:
		c.sendNotifications()
	default:
	}
}

// sendNotifications writes queued ENUMERATE_BUS / REMOVE_DEVICE packets
// (primary channel only): in-band, no completion requested, transaction
// id 0, the negotiated packet size (§6.2, §6.4).
func (c *chanState) sendNotifications() {
	d := c.d
	d.mu.Lock()
	if d.primary != c || len(d.notifyQueue) == 0 {
		d.mu.Unlock()
		return
	}
	ops := d.notifyQueue
	d.notifyQueue = nil
	size := pktOffUnion + d.srbLen
	d.mu.Unlock()
	for _, op := range ops {
		var b [packetSizeWin8]byte
		putHeader(b[:], op, statusSuccess)
		if err := c.ch.Send(c.ctx, pktDataInband, 0, 0, b[:size]); err != nil {
			return
		}
	}
}

// reply writes a completion carrying status and the union bytes u,
// padded or cut to the request's size (12 + min(request union, 0x34)),
// which is what Hyper-V echoes (OpenVMM storvsp notes Linux relies on it).
func (c *chanState) replyStatus(p *hvsim.Packet, status uint32, u []byte) {
	size := pktOffUnion + min(len(p.Payload)-pktOffUnion, srbLenWin8)
	b := c.reply[:size]
	clear(b)
	putHeader(b, opCompleteIO, status)
	copy(b[pktOffUnion:], u)
	c.ch.Send(c.ctx, pktCompletion, 0, p.TransactionID, b) //nolint:errcheck // channel closing
}

// handle processes one guest packet. It never panics on guest input.
func (c *chanState) handle(p hvsim.Packet) {
	d := c.d
	switch p.Type {
	case pktDataInband, pktGPADirect:
	default:
		d.violate(c, "packet type %#x", p.Type)
		return
	}
	if p.Flags&pktFlagRequest == 0 {
		d.violate(c, "packet without completion requested (txid %#x)", p.TransactionID)
		return
	}
	if len(p.Payload) < pktOffUnion {
		d.violate(c, "vstor packet of %d bytes", len(p.Payload))
		return
	}
	op := le.Uint32(p.Payload[pktOffOperation:])
	if p.Type == pktGPADirect && op != opExecuteSRB {
		d.violate(c, "GPA-direct packet with operation %d", op)
		c.replyStatus(&p, statusInvalidParameter, nil)
		return
	}
	d.mu.Lock()
	st, primary, srbLen := d.state, d.primary == c, d.srbLen
	d.mu.Unlock()
	if st == stReady {
		c.handleReady(&p, op, primary, srbLen)
		return
	}
	if !primary {
		d.violate(c, "operation %d on a sub-channel before END_INITIALIZATION", op)
		c.replyStatus(&p, statusInvalidDeviceState, nil)
		return
	}
	c.handleInit(&p, op, st)
}

// handleInit runs the initialization sequence of §6.4 on the primary.
func (c *chanState) handleInit(p *hvsim.Packet, op uint32, st state) {
	d := c.d
	switch {
	case op == opBeginInit && st == stBegin:
		d.setState(stQueryVersion)
		c.replyStatus(p, statusSuccess, nil)
	case op == opQueryVersion && st == stQueryVersion:
		if len(p.Payload) < pktOffUnion+4 {
			d.violate(c, "QUERY_PROTOCOL_VERSION of %d bytes", len(p.Payload))
			c.replyStatus(p, statusInvalidParameter, nil)
			return
		}
		v := le.Uint16(p.Payload[verOffMajorMinor:])
		var u [4]byte
		le.PutUint16(u[verOffMajorMinor-pktOffUnion:], v)
		d.mu.Lock()
		ok := d.accepts(v)
		if ok {
			d.state, d.version = stQueryProperties, v
			d.srbLen = srbLenWin8
			if v < VersionWin8 {
				d.srbLen = srbLenPreWin8
			}
		}
		d.mu.Unlock()
		if !ok {
			c.replyStatus(p, statusRevisionMismatch, u[:])
			return
		}
		c.replyStatus(p, statusSuccess, u[:])
	case op == opQueryProperties && st == stQueryProperties:
		var u [24]byte
		d.mu.Lock()
		multi := d.version >= VersionWin8 && d.cfg.Kind == SCSI
		d.state = stEndInit
		d.mu.Unlock()
		if multi {
			le.PutUint16(u[propOffMaxSubChans-pktOffUnion:], d.cfg.MaxSubChannels)
			le.PutUint32(u[propOffFlags-pktOffUnion:], propFlagMultiChannel)
		}
		le.PutUint32(u[propOffMaxTransfer-pktOffUnion:], d.cfg.MaxTransfer)
		c.replyStatus(p, statusSuccess, u[:])
	case op == opCreateSubChannels && st == stEndInit:
		c.createSubChannels(p)
	case op == opEndInit && st == stEndInit:
		d.setState(stReady)
		c.replyStatus(p, statusSuccess, nil)
	default:
		d.violate(c, "operation %d out of order (init state %d)", op, st)
		c.replyStatus(p, statusInvalidDeviceState, nil)
	}
}

func (d *StorVSP) setState(s state) {
	d.mu.Lock()
	d.state = s
	d.mu.Unlock()
}

// createSubChannels handles CREATE_SUB_CHANNELS: the count is the total
// wanted; the host completes, then offers the missing ones (§6.4 step 6).
func (c *chanState) createSubChannels(p *hvsim.Packet) {
	d := c.d
	if len(p.Payload) < subOffCount+2 {
		d.violate(c, "CREATE_SUB_CHANNELS of %d bytes", len(p.Payload))
		c.replyStatus(p, statusInvalidParameter, nil)
		return
	}
	n := int(le.Uint16(p.Payload[subOffCount:]))
	d.mu.Lock()
	multi := d.version >= VersionWin8 && d.cfg.Kind == SCSI
	more := n - d.subOffered
	if multi && n <= int(d.cfg.MaxSubChannels) && more > 0 {
		d.subOffered = n
	}
	primary := d.primaryRel
	d.mu.Unlock()
	if !multi || n > int(d.cfg.MaxSubChannels) {
		d.violate(c, "CREATE_SUB_CHANNELS %d (multi-channel %v, max %d)", n, multi, d.cfg.MaxSubChannels)
		c.replyStatus(p, statusInvalidParameter, nil)
		return
	}
	c.replyStatus(p, statusSuccess, nil)
	if more <= 0 {
		return
	}
	relids, err := c.ch.Host().AddSubChannels(primary, more)
	d.mu.Lock()
	d.subRelIDs = append(d.subRelIDs, relids...)
	d.mu.Unlock()
	if err != nil {
		c.ch.Host().RecordViolation(fmt.Errorf("storvsp: offering sub-channels: %w", err))
	}
}

// handleReady serves the operations of a ready controller; srbLen is the
// negotiated SRB size.
func (c *chanState) handleReady(p *hvsim.Packet, op uint32, primary bool, srbLen int) {
	d := c.d
	switch {
	case op == opExecuteSRB:
		c.executeSRB(p, srbLen)
	case op == opResetLUN || op == opResetAdapter || op == opResetBus:
		c.replyStatus(p, statusSuccess, nil) // no-ops, as in OpenVMM
	case op == opCreateSubChannels && primary:
		c.createSubChannels(p)
	case op >= opCompleteIO && op <= opEventNotification:
		d.violate(c, "operation %d on a ready controller", op)
		c.replyStatus(p, statusInvalidDeviceState, nil)
	default:
		d.violate(c, "unknown operation %d", op)
		c.replyStatus(p, statusInvalidDevRequest, nil)
	}
}

// executeSRB runs one EXECUTE_SRB (§6.5) of the negotiated SRB size
// srbLen.
func (c *chanState) executeSRB(p *hvsim.Packet, srbLen int) {
	d := c.d
	d.stats.requests.Add(1)
	r, err := decodeSRB(p.Payload, srbLen)
	if err != nil {
		d.violate(c, "%v", err)
		res := result{srb: 0x15 /* bad SRB block length */, scsi: SCSIGood}
		c.completeSRB(p, &r, srbLen, &res)
		return
	}
	x := xfer{h: c.ch.Host(), dir: r.dataIn}
	if p.Type == pktGPADirect {
		c.ranges, err = hvsim.ParseGPADirectInto(c.ranges, c.pfns, p.Header)
		if err != nil {
			d.violate(c, "EXECUTE_SRB: %v", err)
			res := illegal(ascInvalidFieldCDB)
			c.completeSRB(p, &r, srbLen, &res)
			return
		}
	} else {
		c.ranges = c.ranges[:0]
	}
	if r.transferLen > 0 {
		switch {
		case len(c.ranges) != 1:
			d.violate(c, "EXECUTE_SRB of %d bytes with %d ranges (want one GPA-direct range)", r.transferLen, len(c.ranges))
		case c.ranges[0].ByteCount < r.transferLen:
			d.violate(c, "EXECUTE_SRB of %d bytes with a %d-byte range", r.transferLen, c.ranges[0].ByteCount)
		case r.transferLen > d.cfg.MaxTransfer:
			d.violate(c, "EXECUTE_SRB of %d bytes, max transfer %d", r.transferLen, d.cfg.MaxTransfer)
		default:
			x.r, x.n = c.ranges[0], int(r.transferLen)
		}
		if x.n == 0 {
			res := illegal(ascInvalidFieldCDB)
			c.completeSRB(p, &r, srbLen, &res)
			return
		}
	}
	a := Addr{r.path, r.target, r.lun}
	if d.cfg.Kind == IDE {
		a.Path, a.Target = d.cfg.IDEPath, d.cfg.IDETarget
	}
	t := target{d: d, u: d.lookup(a), addr: a, scratch: c.scratch}
	var res result
	c.cdb = r.cdb // Failure.Match may keep what it is given: not r's
	f, rescind := d.faults.before(c.cdb[:r.cdbLen], t.u != nil)
	if rescind {
		go d.Rescind() //nolint:errcheck // fault: best effort
		return
	}
	if f != nil {
		res = *f
	} else {
		res = t.exec(&r, &x)
		d.faults.shorten(&res)
	}
	c.completeSRB(p, &r, srbLen, &res)
}

// completeSRB encodes the completion and sends it through the completion
// faults (lost, delayed, reordered).
func (c *chanState) completeSRB(p *hvsim.Packet, r *srbRequest, srbLen int, res *result) {
	size := pktOffUnion + min(len(p.Payload)-pktOffUnion, srbLenWin8)
	if size < pktOffUnion+srbLen {
		size = pktOffUnion + srbLen
	}
	clear(c.reply[:])
	b := c.reply[:pktOffUnion+srbLen]
	encodeSRBCompletion(b, r, srbLen, res)
	b = c.reply[:size]
	if c.d.crashed.Load() {
		c.d.stats.lost.Add(1)
		return
	}
	if c.d.faults.route(c, p.TransactionID, b) {
		return
	}
	if c.ch.Send(c.ctx, pktCompletion, 0, p.TransactionID, b) == nil {
		c.d.stats.completions.Add(1)
	}
}

// defaultID derives a LUN's NAA identifier from the controller and the
// address.
func defaultID(inst hvsim.GUID, a Addr) [16]byte {
	h := sha256.Sum256(append(inst[:], a.Path, a.Target, a.LUN))
	var id [16]byte
	copy(id[:], h[:16])
	id[0] = 0x60 | id[0]&0x0F
	return id
}

// defaultSerial derives a unit serial number like defaultID.
func defaultSerial(inst hvsim.GUID, a Addr) string {
	id := defaultID(inst, a)
	return fmt.Sprintf("%x", id[8:16])
}
