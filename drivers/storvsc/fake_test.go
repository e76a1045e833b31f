package storvsc

// A fake VMBus channel and a fake StorVSP written for these tests. The
// host side decodes and encodes VSTOR packets with literal offsets from
// docs/hyperv-protocol.md §6.3 and §4.5, independently of wire.go, so a
// wrong offset in the driver shows up as a test failure.

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"unsafe"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

// fakeMem is host-visible memory with made-up PFNs. When translate is set
// it implements PhysTranslator for memory it handed out.
type fakeMem struct {
	mu      sync.Mutex
	next    uint64
	regions []memRegion
}

type memRegion struct {
	pfn uint64
	mem []byte
}

func newFakeMem() *fakeMem { return &fakeMem{next: 0x1000} }

func (m *fakeMem) AllocPages(n int) (hv.Pages, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := hv.Pages{Mem: make([]byte, n*hv.PageSize), PFN: m.next}
	m.next += uint64(n) + 1 // a hole between regions
	m.regions = append(m.regions, memRegion{p.PFN, p.Mem})
	return p, nil
}

func (m *fakeMem) FreePages(p hv.Pages) {}

// gpa finds the guest physical address of b, if b lies in one region.
func (m *fakeMem) gpa(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for _, r := range m.regions {
		base := uintptr(unsafe.Pointer(unsafe.SliceData(r.mem)))
		if p >= base && p+uintptr(len(b)) <= base+uintptr(len(r.mem)) {
			return r.pfn<<12 + uint64(p-base), true
		}
	}
	return 0, false
}

// page returns the 4096 bytes of guest page pfn.
func (m *fakeMem) page(pfn uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.regions {
		n := uint64(len(r.mem) / hv.PageSize)
		if pfn >= r.pfn && pfn < r.pfn+n {
			o := (pfn - r.pfn) * hv.PageSize
			return r.mem[o : o+hv.PageSize]
		}
	}
	return nil
}

// transMem adds PhysTranslator to fakeMem.
type transMem struct{ *fakeMem }

func (m transMem) PhysAddr(b []byte) (uint64, bool) { return m.gpa(b) }

// inPacket is one packet queued for the guest.
type inPacket struct {
	typ  ring.PacketType
	txid uint64
	n    int
	buf  [96]byte
}

// fakeChan is a Channel whose host side is a fakeHost. Packets sent by the
// guest are handled synchronously by the host; answers are queued and the
// guest's OnInterrupt runs on the channel's own dispatch goroutine (or,
// in manual mode, when the test calls dispatch).
type fakeChan struct {
	h     *fakeHost
	offer vmbus.Offer
	index int

	mu       sync.Mutex
	inbox    []inPacket // ring
	ihead    int
	ilen     int
	onInt    func()
	open     bool
	sendErr  error
	kick     chan struct{}
	stop     chan struct{}
	resc     chan struct{}
	rescOnce sync.Once
	manual   bool
	// masked is the inbound ring's interrupt mask: deliver does not kick
	// while it is set (docs/hyperv-protocol.md §4.6). masks and unmasks
	// count the driver's calls.
	masked         bool
	masks, unmasks int
	intMu          sync.Mutex
	wg             sync.WaitGroup
}

func newFakeChan(h *fakeHost, class chanmsg.GUID, index int) *fakeChan {
	c := &fakeChan{h: h, index: index, inbox: make([]inPacket, 1024),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), resc: make(chan struct{})}
	c.offer.InterfaceType = class
	c.offer.InterfaceInstance = chanmsg.MustParseGUID("aabbccdd-0000-1111-2222-333344445555")
	c.offer.SubChannelIndex = uint16(index)
	return c
}

func (c *fakeChan) Offer() vmbus.Offer { return c.offer }

func (c *fakeChan) Open(ctx context.Context, cfg vmbus.OpenConfig) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open {
		return vmbus.ErrAlreadyOpen
	}
	c.open, c.onInt = true, cfg.OnInterrupt
	c.h.mu.Lock()
	c.h.ringSizes = append(c.h.ringSizes, cfg.SendRingSize)
	c.h.mu.Unlock()
	if !c.manual {
		c.wg.Add(1)
		go c.loop()
	}
	return nil
}

func (c *fakeChan) loop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
			c.dispatch()
		}
	}
}

// dispatch runs OnInterrupt once (never concurrently with itself).
func (c *fakeChan) dispatch() {
	c.intMu.Lock()
	defer c.intMu.Unlock()
	c.mu.Lock()
	fn := c.onInt
	c.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (c *fakeChan) Close(ctx context.Context) error {
	c.mu.Lock()
	was := c.open
	c.open = false
	c.mu.Unlock()
	if was && !c.manual {
		close(c.stop)
		c.wg.Wait()
	}
	return nil
}

func (c *fakeChan) rescind() {
	c.rescOnce.Do(func() {
		c.mu.Lock()
		c.sendErr = vmbus.ErrRescinded
		c.mu.Unlock()
		close(c.resc)
	})
}

func (c *fakeChan) Rescinded() <-chan struct{} { return c.resc }

func (c *fakeChan) CreateGPADL(ctx context.Context, p hv.Pages) (vmbus.GPADL, error) {
	return vmbus.GPADL{}, errors.New("fake: no GPADLs")
}
func (c *fakeChan) TeardownGPADL(ctx context.Context, g vmbus.GPADL) error { return nil }

func (c *fakeChan) TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	return c.TrySendWithHeader(typ, flags, txid, nil, parts...)
}

func (c *fakeChan) Send(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	return c.TrySendWithHeader(typ, flags, txid, nil, parts...)
}

func (c *fakeChan) SendWithHeader(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	return c.TrySendWithHeader(typ, flags, txid, hdr, parts...)
}

func (c *fakeChan) TrySendWithHeader(typ ring.PacketType, flags uint16, txid uint64, hdr []byte, parts ...[]byte) error {
	c.mu.Lock()
	err := c.sendErr
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if len(parts) != 1 {
		panic("fake: expected one payload part")
	}
	c.h.receive(c, typ, flags, txid, hdr, parts[0])
	return nil
}

// deliver queues a packet for the guest and signals it.
func (c *fakeChan) deliver(typ ring.PacketType, txid uint64, payload []byte) {
	c.mu.Lock()
	if c.ilen == len(c.inbox) {
		c.mu.Unlock()
		panic("fake: inbox full")
	}
	p := &c.inbox[(c.ihead+c.ilen)%len(c.inbox)]
	p.typ, p.txid, p.n = typ, txid, copy(p.buf[:], payload)
	c.ilen++
	masked := c.masked
	c.mu.Unlock()
	if masked {
		return // the guest polls: no interrupt
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *fakeChan) ReadPacket(buf []byte) (ring.Packet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ilen == 0 {
		if c.sendErr != nil {
			return ring.Packet{}, c.sendErr
		}
		return ring.Packet{}, vmbus.ErrEmpty
	}
	p := &c.inbox[c.ihead]
	need := 16 + (p.n+7)&^7
	if len(buf) < need {
		return ring.Packet{}, &ring.BufferTooSmallError{Need: need}
	}
	c.ihead = (c.ihead + 1) % len(c.inbox)
	c.ilen--
	clear(buf[16:need])
	n := copy(buf[16:], p.buf[:p.n])
	return ring.Packet{Type: p.typ, TransactionID: p.txid, Header: buf[16:16], Payload: buf[16 : 16+(n+7)&^7]}, nil
}

func (c *fakeChan) ModifyTargetVP(ctx context.Context, vp uint32) error { return nil }
func (c *fakeChan) Stats() vmbus.ChannelStats                           { return vmbus.ChannelStats{} }

func (c *fakeChan) MaskInterrupt() {
	c.mu.Lock()
	c.masked = true
	c.masks++
	c.mu.Unlock()
}

// UnmaskInterrupt clears the mask and reports packets queued meanwhile,
// which were not signalled.
func (c *fakeChan) UnmaskInterrupt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.masked = false
	c.unmasks++
	return c.ilen > 0
}

// maskCounts returns the mask state and the MaskInterrupt and
// UnmaskInterrupt calls so far.
func (c *fakeChan) maskCounts() (masked bool, masks, unmasks int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.masked, c.masks, c.unmasks
}

func (c *fakeChan) WaitSubChannels(ctx context.Context, n int) ([]Channel, error) {
	c.h.mu.Lock()
	subs := c.h.subs
	c.h.mu.Unlock()
	if len(subs) < n {
		return subs, context.DeadlineExceeded
	}
	return subs[:n], nil
}

var _ Channel = (*fakeChan)(nil)

// Literal VSTOR offsets for the fake host (docs/hyperv-protocol.md §6.3):
// operation @0, flags @4, status @8; vmscsi_request from @12: SRB status
// @14, SCSI status @15, path @17, target @18, LUN @19, CDB length @20,
// sense length @21, data_in @22, data length @24, CDB / sense @28.

// fakeDisk is one LUN's backing store.
type fakeDisk struct {
	data       []byte
	blockSize  int
	readOnly   bool
	wce        bool
	unmap      bool // VPD 0xB2 LBPU
	writeSame  bool // VPD 0xB2 LBPWS
	serial     string
	unmapped   [][2]uint64 // LBA, blocks
	writeSames [][2]uint64
	flushes    int
}

// srbSeen records one EXECUTE_SRB as the host parsed it.
type srbSeen struct {
	ch        int
	size      int
	pathID    uint8
	target    uint8
	lun       uint8
	cdb       []byte
	dataIn    uint8
	dataLen   uint32
	senseLen  uint8
	gpaDirect bool
	pfns      []uint64
	offset    uint32
}

// hookResult lets a test override the host's answer to one SRB.
type hookResult struct {
	handled    bool
	hold       bool // never answer (until a reset or release)
	srbStatus  uint8
	scsiStatus uint8
	sense      []byte
	mutate     func(p []byte) // edits the completion bytes last
	twice      bool           // send the completion twice
	txidDelta  int64          // answer with a wrong transaction id
}

type held struct {
	c    *fakeChan
	txid uint64
	s    srbSeen
}

type fakeHost struct {
	mem *fakeMem

	mu          sync.Mutex
	versions    map[uint16]bool
	maxTransfer uint32
	maxSubs     uint16
	multi       bool
	disks       map[[3]uint8]*fakeDisk
	subs        []Channel
	primary     *fakeChan
	ops         []uint32 // control operations in order
	packets     [][]byte // every control packet as sent
	srbs        []srbSeen
	recordSRBs  bool
	hook        func(s *srbSeen) hookResult
	held        []held
	resets      []uint32
	ringSizes   []int
	subRequest  uint16
	failVPD     bool
	failRC16    bool
	failReport  bool
	resetAborts bool // on RESET_BUS, complete held requests with bus reset
	respSize    int
	fast        bool // READ(10)/WRITE(10) without recording or allocating
}

func newFakeHost(mem *fakeMem) *fakeHost {
	return &fakeHost{mem: mem, versions: map[uint16]bool{0x0602: true, 0x0600: true, 0x0501: true, 0x0402: true, 0x0200: true},
		maxTransfer: 256 << 10, disks: map[[3]uint8]*fakeDisk{}, recordSRBs: true, respSize: 64}
}

func (h *fakeHost) addDisk(path, target, lun uint8, blocks, blockSize int) *fakeDisk {
	d := &fakeDisk{data: make([]byte, blocks*blockSize), blockSize: blockSize, wce: true, serial: "SN" + string(rune('A'+lun))}
	h.mu.Lock()
	h.disks[[3]uint8{path, target, lun}] = d
	h.mu.Unlock()
	return d
}

func (h *fakeHost) newPrimary(class chanmsg.GUID) *fakeChan {
	c := newFakeChan(h, class, 0)
	h.primary = c
	return c
}

// answer sends a COMPLETE_IO completion.
func (h *fakeHost) answer(c *fakeChan, txid uint64, status uint32, fill func(p []byte)) {
	var p [96]byte
	binary.LittleEndian.PutUint32(p[0:], 1) // COMPLETE_IO
	binary.LittleEndian.PutUint32(p[8:], status)
	if fill != nil {
		fill(p[:])
	}
	c.deliver(ring.TypeCompletion, txid, p[:h.respSize])
}

func (h *fakeHost) receive(c *fakeChan, typ ring.PacketType, flags uint16, txid uint64, hdr, pkt []byte) {
	if len(pkt) < 48 {
		panic("fake host: short vstor packet")
	}
	op := binary.LittleEndian.Uint32(pkt[0:])
	if op != 3 {
		h.mu.Lock()
		h.ops = append(h.ops, op)
		h.packets = append(h.packets, append([]byte(nil), pkt...))
		h.mu.Unlock()
	}
	switch op {
	case 7, 8: // BEGIN / END_INITIALIZATION
		h.answer(c, txid, 0, nil)
	case 9: // QUERY_PROTOCOL_VERSION
		v := binary.LittleEndian.Uint16(pkt[12:])
		h.mu.Lock()
		ok := h.versions[v]
		h.mu.Unlock()
		if ok {
			h.answer(c, txid, 0, func(p []byte) { binary.LittleEndian.PutUint16(p[12:], v) })
		} else {
			h.answer(c, txid, 0xC0000059, nil)
		}
	case 10: // QUERY_PROPERTIES
		h.answer(c, txid, 0, func(p []byte) {
			binary.LittleEndian.PutUint16(p[16:], h.maxSubs)
			if h.multi {
				binary.LittleEndian.PutUint32(p[20:], 1)
			}
			binary.LittleEndian.PutUint32(p[24:], h.maxTransfer)
		})
	case 13: // CREATE_SUB_CHANNELS
		n := binary.LittleEndian.Uint16(pkt[12:])
		h.mu.Lock()
		h.subRequest = n
		for i := range int(n) {
			h.subs = append(h.subs, newFakeChan(h, c.offer.InterfaceType, i+1))
		}
		h.mu.Unlock()
		h.answer(c, txid, 0, nil)
	case 4, 6: // RESET_LUN, RESET_BUS
		h.mu.Lock()
		h.resets = append(h.resets, op)
		var hs []held
		if op == 6 && h.resetAborts {
			hs, h.held = h.held, nil
		}
		h.mu.Unlock()
		for _, x := range hs {
			h.answer(x.c, x.txid, 0, func(p []byte) { p[14] = 0x0E }) // SRB bus reset
		}
		h.answer(c, txid, 0, nil)
	case 3:
		if h.fast && (pkt[28] == 0x28 || pkt[28] == 0x2A) {
			h.fastRW(c, txid, hdr, pkt)
			return
		}
		h.srb(c, typ, txid, hdr, pkt)
	default:
		h.answer(c, txid, 0xC0000010, nil)
	}
}

// guestCopy moves data between the guest's GPA-direct range and b.
func (h *fakeHost) guestCopy(s *srbSeen, b []byte, toGuest bool) {
	off := int(s.offset)
	for done := 0; done < len(b); {
		pg := h.mem.page(s.pfns[(off+done)/4096])
		if pg == nil {
			panic("fake host: PFN not in guest memory")
		}
		po := (off + done) % 4096
		var n int
		if toGuest {
			n = copy(pg[po:], b[done:])
		} else {
			n = copy(b[done:], pg[po:])
		}
		done += n
	}
}

func (h *fakeHost) srb(c *fakeChan, typ ring.PacketType, txid uint64, hdr, pkt []byte) {
	s := srbSeen{ch: c.index, size: len(pkt), pathID: pkt[17], target: pkt[18], lun: pkt[19],
		cdb: append([]byte(nil), pkt[28:28+int(pkt[20])]...), senseLen: pkt[21], dataIn: pkt[22],
		dataLen: binary.LittleEndian.Uint32(pkt[24:])}
	if typ == ring.TypeDataGPADirect {
		// §4.5 header (offsets relative to packet byte 16): @4 range
		// count, @8 byte count, @12 byte offset, @16 PFNs.
		if binary.LittleEndian.Uint32(hdr[4:]) != 1 {
			panic("fake host: expected one range")
		}
		s.gpaDirect = true
		cnt := binary.LittleEndian.Uint32(hdr[8:])
		s.offset = binary.LittleEndian.Uint32(hdr[12:])
		if cnt != s.dataLen {
			panic("fake host: range byte count != data transfer length")
		}
		for i := 16; i < len(hdr); i += 8 {
			s.pfns = append(s.pfns, binary.LittleEndian.Uint64(hdr[i:]))
		}
		if len(s.pfns) != (int(s.offset)+int(cnt)+4095)/4096 {
			panic("fake host: PFN count does not match the range")
		}
	}
	h.mu.Lock()
	if h.recordSRBs {
		h.srbs = append(h.srbs, s)
	}
	hook := h.hook
	h.mu.Unlock()
	if hook != nil {
		if r := hook(&s); r.handled {
			if r.hold {
				h.mu.Lock()
				h.held = append(h.held, held{c, txid, s})
				h.mu.Unlock()
				return
			}
			fill := func(p []byte) {
				p[14], p[15] = r.srbStatus, r.scsiStatus
				if len(r.sense) > 0 {
					p[14] |= 0x80
					p[21] = uint8(copy(p[28:48], r.sense))
				}
				if r.mutate != nil {
					r.mutate(p)
				}
			}
			h.answer(c, uint64(int64(txid)+r.txidDelta), 0, fill)
			if r.twice {
				h.answer(c, txid, 0, fill)
			}
			return
		}
	}
	h.run(c, txid, &s)
}

// run executes s and answers it.
func (h *fakeHost) run(c *fakeChan, txid uint64, s *srbSeen) {
	srbStatus, scsiStatus, sense, n := h.execute(s)
	h.answer(c, txid, 0, func(p []byte) {
		p[14], p[15] = srbStatus, scsiStatus
		binary.LittleEndian.PutUint32(p[24:], uint32(n))
		if sense != nil {
			p[14] |= 0x80
			p[21] = uint8(copy(p[28:48], sense))
		}
	})
}

func senseFixed(key, asc, ascq uint8) []byte {
	return []byte{0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0}
}

// execute runs a CDB against the fake disks. It returns SRB status, SCSI
// status, sense and bytes transferred.
func (h *fakeHost) execute(s *srbSeen) (uint8, uint8, []byte, int) {
	h.mu.Lock()
	d := h.disks[[3]uint8{s.pathID, s.target, s.lun}]
	anyLUN := false
	for k := range h.disks {
		if k[0] == s.pathID && k[1] == s.target {
			anyLUN = true
		}
	}
	failVPD, failRC16, failReport := h.failVPD, h.failRC16, h.failReport
	h.mu.Unlock()
	cdb := s.cdb
	illegal := senseFixed(5, 0x24, 0)
	in := func(b []byte) (uint8, uint8, []byte, int) {
		n := min(len(b), int(s.dataLen))
		h.guestCopy(s, b[:n], true)
		return 1, 0, nil, n
	}
	if cdb[0] == 0xA0 { // REPORT LUNS
		if !anyLUN {
			return 0x21, 0, nil, 0 // invalid target id
		}
		if failReport {
			return 4, 2, illegal, 0
		}
		var luns []uint8
		h.mu.Lock()
		for k := range h.disks {
			if k[0] == s.pathID && k[1] == s.target {
				luns = append(luns, k[2])
			}
		}
		h.mu.Unlock()
		b := make([]byte, 8+8*len(luns))
		binary.BigEndian.PutUint32(b, uint32(8*len(luns)))
		for i, l := range luns {
			b[8+8*i+1] = l
		}
		return in(b)
	}
	if d == nil {
		if cdb[0] == 0x12 && anyLUN {
			return in([]byte{0x7F, 0, 6, 2, 0}) // no LUN here
		}
		return 0x20, 0, nil, 0 // invalid LUN
	}
	blocks := uint64(len(d.data) / d.blockSize)
	switch cdb[0] {
	case 0x00: // TEST UNIT READY
		return 1, 0, nil, 0
	case 0x12: // INQUIRY
		if cdb[1]&1 == 0 {
			b := []byte{0, 0, 6, 2, 31, 0, 0, 2, 'M', 's', 'f', 't', ' ', ' ', ' ', ' ',
				'V', 'i', 'r', 't', 'u', 'a', 'l', ' ', 'D', 'i', 's', 'k', ' ', ' ', ' ', ' ', '1', '.', '0', ' '}
			return in(b)
		}
		if failVPD {
			return 4, 2, illegal, 0
		}
		switch cdb[2] {
		case 0x00:
			return in([]byte{0, 0, 0, 5, 0x00, 0x80, 0x83, 0xB0, 0xB2})
		case 0x80:
			return in(append([]byte{0, 0x80, 0, byte(len(d.serial))}, d.serial...))
		case 0x83:
			return in([]byte{0, 0x83, 0, 12, 1, 3, 0, 8, 0x60, 0, 0, 0, 0, 0, 0, s.lun})
		case 0xB0:
			b := make([]byte, 64)
			b[1], b[3] = 0xB0, 60
			binary.BigEndian.PutUint32(b[20:], 0x1000) // max unmap LBAs
			binary.BigEndian.PutUint32(b[24:], 1)
			return in(b)
		case 0xB2:
			f := byte(0)
			if d.unmap {
				f |= 0x80
			}
			if d.writeSame {
				f |= 0x40
			}
			return in([]byte{0, 0xB2, 0, 4, 0, f, 2, 0})
		}
		return 4, 2, illegal, 0
	case 0x9E: // READ CAPACITY(16)
		if failRC16 {
			return 4, 2, senseFixed(5, 0x20, 0), 0
		}
		b := make([]byte, 32)
		binary.BigEndian.PutUint64(b, blocks-1)
		binary.BigEndian.PutUint32(b[8:], uint32(d.blockSize))
		return in(b)
	case 0x25: // READ CAPACITY(10)
		b := make([]byte, 8)
		binary.BigEndian.PutUint32(b, uint32(blocks-1))
		binary.BigEndian.PutUint32(b[4:], uint32(d.blockSize))
		return in(b)
	case 0x1A: // MODE SENSE(6), caching page
		b := []byte{3 + 20, 0, 0, 0, 0x08, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if d.readOnly {
			b[2] = 0x80
		}
		if d.wce {
			b[6] = 0x04
		}
		return in(b)
	case 0x28, 0x2A, 0x88, 0x8A: // READ/WRITE(10/16)
		var lba uint64
		var n uint32
		if cdb[0] == 0x28 || cdb[0] == 0x2A {
			lba, n = uint64(binary.BigEndian.Uint32(cdb[2:])), uint32(binary.BigEndian.Uint16(cdb[7:]))
		} else {
			lba, n = binary.BigEndian.Uint64(cdb[2:]), binary.BigEndian.Uint32(cdb[10:])
		}
		bytes := int(n) * d.blockSize
		if lba+uint64(n) > blocks || uint32(bytes) != s.dataLen || !s.gpaDirect {
			return 4, 2, senseFixed(5, 0x21, 0), 0
		}
		if s.dataLen > h.maxTransfer {
			return 6, 0, nil, 0 // invalid request
		}
		region := d.data[int(lba)*d.blockSize : int(lba)*d.blockSize+bytes]
		if cdb[0] == 0x28 || cdb[0] == 0x88 {
			h.guestCopy(s, region, true)
		} else {
			h.guestCopy(s, region, false)
		}
		return 1, 0, nil, bytes
	case 0x35: // SYNCHRONIZE CACHE(10)
		h.mu.Lock()
		d.flushes++
		h.mu.Unlock()
		return 1, 0, nil, 0
	case 0x42: // UNMAP
		p := make([]byte, s.dataLen)
		h.guestCopy(s, p, false)
		if len(p) < 24 || binary.BigEndian.Uint16(p[2:]) != 16 {
			return 4, 2, illegal, 0
		}
		lba, n := binary.BigEndian.Uint64(p[8:]), binary.BigEndian.Uint32(p[16:])
		h.mu.Lock()
		d.unmapped = append(d.unmapped, [2]uint64{lba, uint64(n)})
		h.mu.Unlock()
		return 1, 0, nil, int(s.dataLen)
	case 0x93: // WRITE SAME(16)
		if cdb[1]&0x08 == 0 || s.dataLen != uint32(d.blockSize) {
			return 4, 2, illegal, 0
		}
		h.mu.Lock()
		d.writeSames = append(d.writeSames, [2]uint64{binary.BigEndian.Uint64(cdb[2:]), uint64(binary.BigEndian.Uint32(cdb[10:]))})
		h.mu.Unlock()
		return 1, 0, nil, int(s.dataLen)
	}
	return 4, 2, senseFixed(5, 0x20, 0), 0
}

// release answers every held request successfully (executing it).
func (h *fakeHost) releaseHeld() int {
	h.mu.Lock()
	hs := h.held
	h.held = nil
	h.mu.Unlock()
	for _, x := range hs {
		h.run(x.c, x.txid, &x.s)
	}
	return len(hs)
}

func (h *fakeHost) heldCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}

// sendUnsolicited sends a host-initiated vstor packet (txid 0).
func (h *fakeHost) sendUnsolicited(op uint32) {
	var p [64]byte
	binary.LittleEndian.PutUint32(p[0:], op)
	h.primary.deliver(ring.TypeDataInband, 0, p[:h.respSize])
}

func (h *fakeHost) srbList() []srbSeen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]srbSeen(nil), h.srbs...)
}

// fastRW serves READ(10)/WRITE(10) on LUN 0:0:0 without allocating: the
// allocation test and the benchmarks use it.
func (h *fakeHost) fastRW(c *fakeChan, txid uint64, hdr, pkt []byte) {
	h.mu.Lock()
	d := h.disks[[3]uint8{pkt[17], pkt[18], pkt[19]}]
	h.mu.Unlock()
	cdb := pkt[28:38]
	lba, n := int(binary.BigEndian.Uint32(cdb[2:])), int(binary.BigEndian.Uint16(cdb[7:]))
	region := d.data[lba*d.blockSize : (lba+n)*d.blockSize]
	off := int(binary.LittleEndian.Uint32(hdr[12:]))
	for done := 0; done < len(region); {
		pg := h.mem.page(binary.LittleEndian.Uint64(hdr[16+8*((off+done)/4096):]))
		po := (off + done) % 4096
		var k int
		if cdb[0] == 0x28 {
			k = copy(pg[po:], region[done:])
		} else {
			k = copy(region[done:], pg[po:])
		}
		done += k
	}
	var p [64]byte
	binary.LittleEndian.PutUint32(p[0:], 1)
	p[14] = 1
	binary.LittleEndian.PutUint32(p[24:], uint32(len(region)))
	c.deliver(ring.TypeCompletion, txid, p[:])
}

func ringType(t uint8) ring.PacketType { return ring.PacketType(t) }
