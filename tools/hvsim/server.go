package hvsim

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

// statusFailure is the NTSTATUS the host puts in OPENCHANNEL_RESULT and
// GPADL_CREATED when it refuses (STATUS_UNSUCCESSFUL).
const statusFailure = 0xC0000001

// offer is one offered channel (primary or sub-channel).
type offer struct {
	relid    uint32
	connID   uint32
	subIndex uint16
	spec     OfferSpec
	dev      Device

	sent      bool // OFFERCHANNEL delivered in this connection
	rescinded bool
	guestOpen bool   // the guest believes the channel is open
	openGPADL uint32 // GPADL of the open rings
	ch        *Channel
}

// gpadl is a guest buffer description (docs/hyperv-protocol.md §3.9).
type gpadl struct {
	id, relid  uint32
	total      int
	pfns       []uint64
	byteCount  uint32
	byteOffset uint32
	created    bool
}

type inMsg struct {
	conn uint32
	msg  queuedMsg
}

// server is the VMBus host: it owns the connection state, offers and
// GPADLs. Guest messages are handled one at a time on its goroutine.
type server struct {
	h  *Host
	in chan inMsg

	mu              sync.Mutex
	connected       bool
	version         uint32
	msgConn         uint32
	targetVP        uint32
	offersRequested bool
	intPagePFN      uint64
	offers          []*offer // by relid
	byConn          map[uint32]*offer
	nextRelID       uint32
	gpadls          map[uint32]*gpadl

	rx, tx [32]atomic.Uint64 // message counts by type

	accepted, handled atomic.Uint64 // guest messages queued / processed
}

func newServer(h *Host) *server {
	return &server{h: h, in: make(chan inMsg, msgQueueDepth), byConn: map[uint32]*offer{},
		nextRelID: 1, gpadls: map[uint32]*gpadl{}}
}

func (s *server) run(stop <-chan struct{}) {
	for {
		select {
		case m := <-s.in:
			s.handle(m.conn, m.msg.data[:m.msg.n])
			s.handled.Add(1)
		case <-stop:
			return
		}
	}
}

func (s *server) enqueue(conn uint32, m queuedMsg) bool {
	select {
	case s.in <- inMsg{conn: conn, msg: m}:
		s.accepted.Add(1)
		return true
	default:
		return false
	}
}

// acceptsConnection says whether HvPostMessage to conn reaches the VMBus
// message port (docs/hyperv-protocol.md §2.5: id 4 exists only on hosts with 5.0).
func (s *server) acceptsConnection(conn uint32) bool {
	if conn == connMessage {
		return true
	}
	if s.h.cfg.Profile.MaxVersion() >= Version5_0 {
		return conn == connInitiate50 || conn == s.h.cfg.MessageConnectionID
	}
	return false
}

// send queues a host→guest message to the VP the guest chose.
func (s *server) send(m msgBuf) {
	typ := le.Uint32(m.b[:])
	if typ < uint32(len(s.tx)) {
		s.tx[typ].Add(1)
	}
	vp := s.targetVP
	if int(vp) >= len(s.h.synics) {
		vp = 0
	}
	s.h.synics[vp].post(m.bytes())
}

func (s *server) violate(format string, args ...any) {
	s.h.violate(fmt.Errorf(format, args...))
}

// handle processes one guest message. It never panics on any input.
func (s *server) handle(conn uint32, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b) > maxMessagePayload {
		s.violate("%w: %d bytes", ErrOversize, len(b))
		return
	}
	if len(b) < sizeHeader {
		s.violate("%w: %d bytes", ErrShortMessage, len(b))
		return
	}
	typ := le.Uint32(b)
	if typ < uint32(len(s.rx)) {
		s.rx[typ].Add(1)
	}
	if s.h.faults.blackholed(typ) {
		s.h.stats.blackholed.Add(1)
		return
	}
	if typ == msgInitiateContact {
		s.initiateContact(conn, b)
		return
	}
	if !s.connected {
		s.violate("%w: type %d", ErrNotConnected, typ)
		return
	}
	if want := s.msgConn; conn != want {
		s.violate("%w: type %d on %d, negotiated %d", ErrWrongConnection, typ, conn, want)
		return
	}
	switch typ {
	case msgRequestOffers:
		s.requestOffers()
	case msgGPADLHeader:
		s.gpadlHeader(b)
	case msgGPADLBody:
		s.gpadlBody(b)
	case msgOpenChannel:
		s.openChannel(b)
	case msgCloseChannel:
		s.closeChannel(b)
	case msgGPADLTeardown:
		s.gpadlTeardown(b)
	case msgRelIDReleased:
		s.relidReleased(b)
	case msgUnload:
		s.unload()
	case msgModifyChannel:
		s.modifyChannel(b)
	default:
		s.violate("%w: type %d", ErrUnknownMessage, typ)
	}
}

func (s *server) short(b []byte, min int) bool {
	if len(b) < min {
		s.violate("%w: type %d has %d bytes, needs %d", ErrShortMessage, le.Uint32(b), len(b), min)
		return true
	}
	return false
}

// initiateContact handles INITIATE_CONTACT (docs/hyperv-protocol.md §3.3–§3.5).
func (s *server) initiateContact(conn uint32, b []byte) {
	if s.short(b, sizeInitiateContact) {
		return
	}
	v, vp := le.Uint32(b[8:]), le.Uint32(b[12:])
	reject := func() {
		m := newMsg(msgVersionResponse, sizeVersionResponse)
		if int(vp) < len(s.h.synics) {
			s.targetVP = vp
		} else {
			s.targetVP = 0
		}
		s.send(m)
	}
	if s.connected {
		s.violate("%w: INITIATE_CONTACT %s while connected at %s", ErrDuplicate, versionString(v), versionString(s.version))
		return
	}
	if !isKnownVersion(v) {
		s.violate("%w: version %#x is no VMBus version", ErrBadVersion, v)
		reject()
		return
	}
	if !s.h.cfg.Profile.accepts(v) {
		reject() // ordinary step-down (docs/hyperv-protocol.md §3.3)
		return
	}
	if v < Version3_0 {
		vp = 0 // target VP is honoured from 3.0 on (docs/hyperv-protocol.md §3.4)
	}
	if int(vp) >= len(s.h.synics) {
		s.violate("%w: target VP %d of %d", ErrBadVersion, vp, len(s.h.synics))
		vp = 0
		reject()
		return
	}
	var intPage uint64
	if v >= Version5_0 {
		if conn != connInitiate50 {
			s.violate("%w: version %s on connection %d, want 4", ErrBadVersion, versionString(v), conn)
			reject()
			return
		}
		if b[16] != vmbusSINT || b[17] != 0 {
			s.violate("%w: SINT %d VTL %d", ErrBadVersion, b[16], b[17])
			reject()
			return
		}
	} else {
		if conn != connMessage {
			s.violate("%w: version %s on connection %d, want 1", ErrBadVersion, versionString(v), conn)
			reject()
			return
		}
		intPage = le.Uint64(b[16:])
		if intPage == 0 || intPage%4096 != 0 || !s.h.arena.contains(intPage>>12) {
			s.violate("%w: interrupt page GPA %#x", ErrBadVersion, intPage)
			reject()
			return
		}
	}
	m1, m2 := le.Uint64(b[24:]), le.Uint64(b[32:])
	if (m1 == 0) != (m2 == 0) {
		s.violate("%w: monitor pages %#x %#x: both or neither", ErrBadVersion, m1, m2)
		reject()
		return
	}
	for _, g := range [2]uint64{m1, m2} {
		if g != 0 && (g%4096 != 0 || !s.h.arena.contains(g>>12)) {
			s.violate("%w: monitor page GPA %#x", ErrBadVersion, g)
			reject()
			return
		}
	}
	s.connected, s.version, s.targetVP, s.intPagePFN = true, v, vp, intPage>>12
	s.msgConn = connMessage
	m := newMsg(msgVersionResponse, sizeVersionResponse)
	m.b[8] = 1 // version supported; @9 connection state 0 = ok
	if v >= Version5_0 {
		s.msgConn = s.h.cfg.MessageConnectionID
		m.put32(12, s.msgConn)
	} else {
		m.put32(12, v) // like OpenVMM (docs/hyperv-protocol.md §3.5, §11 #3)
	}
	s.h.logf("hvsim: VMBus %s connected, target VP %d", versionString(v), vp)
	s.send(m)
}

func (s *server) requestOffers() {
	if s.offersRequested {
		s.violate("%w: REQUESTOFFERS twice", ErrDuplicate)
		return
	}
	s.offersRequested = true
	for _, o := range s.offers {
		if !o.rescinded {
			s.sendOffer(o)
		}
	}
	s.send(newMsg(msgAllOffersDelivered, sizeAllOffers))
}

func (s *server) sendOffer(o *offer) {
	o.sent = true
	if f := s.h.faults.takeMalformedOffer(); f {
		m := offerMsg(o, s.version)
		m.n = 100 // truncated OFFERCHANNEL
		s.send(m)
		return
	}
	s.send(offerMsg(o, s.version))
}

func (s *server) lookup(relid uint32) *offer {
	i, ok := slices.BinarySearchFunc(s.offers, relid, func(o *offer, r uint32) int {
		return int(int64(o.relid) - int64(r))
	})
	if !ok {
		return nil
	}
	return s.offers[i]
}

func (s *server) gpadlCreated(relid, id, status uint32) {
	m := newMsg(msgGPADLCreated, sizeGPADLCreated)
	m.put32(8, relid)
	m.put32(12, id)
	m.put32(16, status)
	s.send(m)
}

// gpadlHeader handles GPADL_HEADER (docs/hyperv-protocol.md §3.9).
func (s *server) gpadlHeader(b []byte) {
	if s.short(b, gpadlHeaderFixed) {
		return
	}
	relid, id := le.Uint32(b[8:]), le.Uint32(b[12:])
	rangeLen, rangeCount := int(le.Uint16(b[16:])), le.Uint16(b[18:])
	byteCount, byteOffset := le.Uint32(b[20:]), le.Uint32(b[24:])
	o := s.lookup(relid)
	fail := func(format string, args ...any) {
		s.violate(format, args...)
		s.gpadlCreated(relid, id, statusFailure)
	}
	switch {
	case o == nil || !o.sent:
		fail("%w: GPADL %#x for relid %d", ErrUnknownChannel, id, relid)
		return
	case s.gpadls[id] != nil:
		s.violate("%w: GPADL id %#x already in use", ErrDuplicate, id)
		return
	case rangeCount != 1:
		fail("%w: GPADL %#x range count %d (hvsim supports 1, like every guest)", ErrBadGPADL, id, rangeCount)
		return
	case rangeLen < 16 || (rangeLen-8)%8 != 0:
		fail("%w: GPADL %#x range buffer length %d", ErrBadGPADL, id, rangeLen)
		return
	}
	n := (rangeLen - 8) / 8
	pages := (uint64(byteOffset) + uint64(byteCount) + 4095) / 4096
	switch {
	case byteOffset >= 4096 || byteCount == 0:
		fail("%w: GPADL %#x byte offset %d count %d", ErrBadGPADL, id, byteOffset, byteCount)
		return
	case pages != uint64(n):
		fail("%w: GPADL %#x: %d bytes at offset %d need %d pages, range lists %d", ErrBadGPADL, id, byteCount, byteOffset, pages, n)
		return
	}
	inHeader := min(n, maxGPADLHeaderPFNs)
	if len(b) != gpadlHeaderFixed+8*inHeader {
		fail("%w: GPADL %#x header message of %d bytes, want %d for %d PFNs", ErrBadGPADL, id, len(b), gpadlHeaderFixed+8*inHeader, inHeader)
		return
	}
	g := &gpadl{id: id, relid: relid, total: n, byteCount: byteCount, byteOffset: byteOffset,
		pfns: make([]uint64, 0, n)}
	for i := 0; i < inHeader; i++ {
		g.pfns = append(g.pfns, le.Uint64(b[gpadlHeaderFixed+8*i:]))
	}
	s.gpadls[id] = g
	if s.h.faults.takeRescindAtGPADL(relid) && !o.rescinded {
		// The rescind overtakes GPADL_CREATED, which still follows with
		// success: the guest must tear the GPADL down before it
		// releases the relid.
		_ = s.rescind(relid)
	}
	s.maybeCreated(g)
}

// gpadlBody handles GPADL_BODY (docs/hyperv-protocol.md §3.9).
func (s *server) gpadlBody(b []byte) {
	if s.short(b, gpadlBodyFixed+8) {
		return
	}
	id := le.Uint32(b[12:])
	g := s.gpadls[id]
	if g == nil || g.created {
		s.violate("%w: GPADL_BODY for id %#x", ErrUnknownGPADL, id)
		return
	}
	if (len(b)-gpadlBodyFixed)%8 != 0 {
		s.violate("%w: GPADL %#x body of %d bytes", ErrBadGPADL, id, len(b))
		return
	}
	n := (len(b) - gpadlBodyFixed) / 8
	if n > maxGPADLBodyPFNs || n > g.total-len(g.pfns) {
		s.violate("%w: GPADL %#x body with %d PFNs, %d outstanding", ErrBadGPADL, id, n, g.total-len(g.pfns))
		delete(s.gpadls, id)
		s.gpadlCreated(g.relid, id, statusFailure)
		return
	}
	for i := 0; i < n; i++ {
		g.pfns = append(g.pfns, le.Uint64(b[gpadlBodyFixed+8*i:]))
	}
	s.maybeCreated(g)
}

func (s *server) maybeCreated(g *gpadl) {
	if len(g.pfns) < g.total {
		return
	}
	for _, p := range g.pfns {
		if !s.h.arena.contains(p) {
			s.violate("%w: GPADL %#x PFN %#x outside guest memory", ErrBadGPADL, g.id, p)
			delete(s.gpadls, g.id)
			s.gpadlCreated(g.relid, g.id, statusFailure)
			return
		}
	}
	g.created = true
	s.gpadlCreated(g.relid, g.id, 0)
}

func (s *server) openResult(relid, openID, status uint32) {
	m := newMsg(msgOpenChannelResult, sizeOpenResult)
	m.put32(8, relid)
	m.put32(12, openID)
	m.put32(16, status)
	s.send(m)
}

// openChannel handles OPENCHANNEL (docs/hyperv-protocol.md §3.8, §4.1).
func (s *server) openChannel(b []byte) {
	if s.short(b, sizeOpenChannel) {
		return
	}
	relid, openID, gid := le.Uint32(b[8:]), le.Uint32(b[12:]), le.Uint32(b[16:])
	vp, down := le.Uint32(b[20:]), le.Uint32(b[24:])
	fail := func(format string, args ...any) {
		s.violate(format, args...)
		s.openResult(relid, openID, statusFailure)
	}
	o := s.lookup(relid)
	if o == nil || !o.sent {
		fail("%w: OPENCHANNEL relid %d", ErrUnknownChannel, relid)
		return
	}
	if o.rescinded || o.guestOpen {
		fail("%w: OPENCHANNEL relid %d (rescinded %v, open %v)", ErrChannelState, relid, o.rescinded, o.guestOpen)
		return
	}
	g := s.gpadls[gid]
	if g == nil || !g.created {
		fail("%w: OPENCHANNEL relid %d GPADL %#x", ErrUnknownGPADL, relid, gid)
		return
	}
	switch {
	case g.relid != relid:
		fail("%w: GPADL %#x belongs to relid %d, not %d", ErrBadOpen, gid, g.relid, relid)
		return
	case s.gpadlInUse(gid):
		fail("%w: GPADL %#x already backs an open channel", ErrBadOpen, gid)
		return
	case g.byteOffset != 0 || g.byteCount != uint32(g.total)*4096:
		fail("%w: ring GPADL %#x is not whole pages", ErrBadOpen, gid)
		return
	case down == 0 || down >= uint32(g.total):
		fail("%w: downstream offset %d of a %d-page GPADL", ErrBadOpen, down, g.total)
		return
	case down < 2 || uint32(g.total)-down < 2:
		fail("%w: downstream offset %d of %d pages leaves a ring without data pages", ErrBadOpen, down, g.total)
		return
	case vp != 0xFFFFFFFF && int(vp) >= len(s.h.synics):
		fail("%w: target VP %d of %d", ErrBadOpen, vp, len(s.h.synics))
		return
	}
	in, err := newRing(s.h.arena, g.pfns[:down])
	if err != nil {
		fail("%w", err)
		return
	}
	out, err := newRing(s.h.arena, g.pfns[down:])
	if err != nil {
		fail("%w", err)
		return
	}
	if r, w := load32(in.hdr, ringOffRead), load32(out.hdr, ringOffWrite); !in.validIndex(r) || !out.validIndex(w) {
		fail("%w: ring indices at open: read %#x write %#x", ErrRing, r, w)
		return
	}
	in.idx = load32(in.hdr, ringOffRead)
	out.idx = load32(out.hdr, ringOffWrite)
	// The host produces into the host→guest ring and supports pending
	// send size (docs/hyperv-protocol.md §4.2).
	or32(out.hdr, ringOffFeatures, ringFeaturePSS)
	ch := &Channel{h: s.h, relid: relid, subIndex: o.subIndex, gpadl: gid, in: in, out: out,
		version: s.version, recvKick: make(chan struct{}, 1), spaceKick: make(chan struct{}, 1),
		done: make(chan struct{})}
	copy(ch.userData[:], b[28:148])
	ch.targetVP.Store(vp)
	if s.version < Version2_4 {
		ch.intPage = s.h.arena.page(s.intPagePFN)
	}
	if err := o.dev.Open(ch); err != nil {
		s.h.logf("hvsim: device refused open of relid %d: %v", relid, err)
		s.openResult(relid, openID, statusFailure)
		return
	}
	o.ch, o.guestOpen, o.openGPADL = ch, true, gid
	s.openResult(relid, openID, 0)
}

func (s *server) gpadlInUse(id uint32) bool {
	for _, o := range s.offers {
		if o.guestOpen && o.openGPADL == id {
			return true
		}
	}
	return false
}

// closeHost ends the host side of o's channel.
func (s *server) closeHost(o *offer) {
	if o.ch == nil {
		return
	}
	ch := o.ch
	o.ch = nil
	if ch.shutdown() {
		o.dev.Close(ch)
	}
}

// hostClose is called by a Channel that found the ring broken.
func (s *server) hostClose(c *Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.lookup(c.relid); o != nil && o.ch == c {
		s.closeHost(o)
		return
	}
	c.shutdown()
}

func (s *server) closeChannel(b []byte) {
	if s.short(b, sizeCloseChannel) {
		return
	}
	relid := le.Uint32(b[8:])
	o := s.lookup(relid)
	switch {
	case o == nil:
		s.violate("%w: CLOSECHANNEL relid %d", ErrUnknownChannel, relid)
		return
	case !o.guestOpen:
		s.violate("%w: CLOSECHANNEL of relid %d which is not open", ErrChannelState, relid)
		return
	}
	s.closeHost(o)
	o.guestOpen = false
}

func (s *server) gpadlTeardown(b []byte) {
	if s.short(b, sizeGPADLTeardown) {
		return
	}
	relid, id := le.Uint32(b[8:]), le.Uint32(b[12:])
	g := s.gpadls[id]
	switch {
	case g == nil:
		s.violate("%w: GPADL_TEARDOWN of %#x", ErrUnknownGPADL, id)
		return
	case g.relid != relid:
		s.violate("%w: GPADL_TEARDOWN of %#x names relid %d, GPADL belongs to %d", ErrBadGPADL, id, relid, g.relid)
		return
	case s.gpadlInUse(id):
		s.violate("%w: GPADL_TEARDOWN of %#x while relid %d is open", ErrGPADLInUse, id, relid)
		return
	}
	delete(s.gpadls, id)
	m := newMsg(msgGPADLTorndown, sizeGPADLTorndown)
	m.put32(8, id)
	s.send(m)
}

func (s *server) relidReleased(b []byte) {
	if s.short(b, sizeRelIDReleased) {
		return
	}
	relid := le.Uint32(b[8:])
	o := s.lookup(relid)
	switch {
	case o == nil:
		s.violate("%w: RELID_RELEASED relid %d", ErrUnknownChannel, relid)
		return
	case o.guestOpen:
		s.violate("%w: RELID_RELEASED of open relid %d (docs/hyperv-protocol.md §3.10)", ErrChannelState, relid)
		return
	}
	// Every GPADL of the channel must be gone first (docs/hyperv-protocol.md §3.11 step
	// 6): a GPADL created for a channel being rescinded, or one the guest
	// forgot, still maps guest pages.
	for id, g := range s.gpadls {
		if g.relid == relid {
			s.violate("%w: RELID_RELEASED of relid %d with GPADL %#x not torn down", ErrChannelState, relid, id)
		}
	}
	if o.rescinded {
		s.remove(o)
	}
}

func (s *server) remove(o *offer) {
	s.closeHost(o)
	delete(s.byConn, o.connID)
	s.offers = slices.DeleteFunc(s.offers, func(x *offer) bool { return x == o })
}

func (s *server) unload() {
	s.reset()
	if s.version >= Version1_1 {
		s.send(newMsg(msgUnloadResponse, sizeUnloadResponse))
	}
}

// reset drops the connection: every channel closes and every GPADL is
// silently invalidated (docs/hyperv-protocol.md §3.9).
func (s *server) reset() {
	for _, o := range slices.Clone(s.offers) {
		s.closeHost(o)
		o.guestOpen, o.sent = false, false
		if o.rescinded {
			s.remove(o)
		}
	}
	clear(s.gpadls)
	s.connected, s.offersRequested = false, false
}

func (s *server) modifyChannel(b []byte) {
	if s.version < Version4_1 {
		s.violate("%w: MODIFYCHANNEL needs 4.1, connected at %s", ErrUnknownMessage, versionString(s.version))
		return
	}
	if s.short(b, sizeModifyChannel) {
		return
	}
	relid, vp := le.Uint32(b[8:]), le.Uint32(b[12:])
	o := s.lookup(relid)
	status := uint32(0)
	switch {
	case o == nil || !o.guestOpen:
		s.violate("%w: MODIFYCHANNEL relid %d", ErrChannelState, relid)
		status = statusFailure
	case int(vp) >= len(s.h.synics):
		s.violate("%w: MODIFYCHANNEL relid %d to VP %d", ErrBadOpen, relid, vp)
		status = statusFailure
	case o.ch != nil:
		o.ch.targetVP.Store(vp)
	}
	if s.version >= Version5_3 {
		m := newMsg(msgModifyChannelResponse, sizeModifyChannelResp)
		m.put32(8, relid)
		m.put32(12, status)
		s.send(m)
	}
}

// signal is HvSignalEvent on a channel's connection id.
func (s *server) signal(conn uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if conn == connEvent013 && s.connected && s.version == Version0_13 {
		s.scanInterruptPage()
		return true
	}
	o := s.byConn[conn]
	if o == nil {
		return false
	}
	if o.ch != nil {
		o.ch.guestSignaled()
	}
	return true
}

// scanInterruptPage serves the 0.13 doorbell: relid bits in the second
// half of the interrupt page (docs/hyperv-protocol.md §3.4, §3.12).
func (s *server) scanInterruptPage() {
	pg := s.h.arena.page(s.intPagePFN)
	if pg == nil {
		return
	}
	for w := 0; w < 2048/8; w++ {
		v := and64(pg, 2048+w*8, 0)
		for v != 0 {
			bit := uint32(w*64) + uint32(bits.TrailingZeros64(v))
			v &= v - 1
			if o := s.lookup(bit); o != nil && o.ch != nil {
				o.ch.guestSignaled()
			}
		}
	}
}

// ErrTooManyChannels says all relids (1..2047, docs/hyperv-protocol.md §2.5) are used.
var ErrTooManyChannels = errors.New("hvsim: no relid left")

func (s *server) addOffer(dev Device, spec OfferSpec, subIndex uint16) (uint32, error) {
	if s.nextRelID > maxRelID {
		return 0, ErrTooManyChannels
	}
	o := &offer{relid: s.nextRelID, subIndex: subIndex, spec: spec, dev: dev}
	s.nextRelID++
	o.connID = defaultChannelConnBase + o.relid
	s.offers = append(s.offers, o)
	s.byConn[o.connID] = o
	if s.connected && s.offersRequested {
		s.sendOffer(o) // hot add
	}
	return o.relid, nil
}

func (s *server) rescind(relid uint32) error {
	o := s.lookup(relid)
	if o == nil || o.rescinded {
		return fmt.Errorf("hvsim: rescind of relid %d: %w", relid, ErrUnknownChannel)
	}
	s.closeHost(o)
	if !o.sent {
		s.remove(o)
		return nil
	}
	o.rescinded = true
	m := newMsg(msgRescindChannelOffer, sizeRescind)
	m.put32(8, relid)
	s.send(m)
	return nil
}

func (s *server) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.offers {
		s.closeHost(o)
	}
}
