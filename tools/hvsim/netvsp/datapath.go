package netvsp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gohv/gohv/tools/hvsim"
)

// handleRNDIS handles SEND_RNDIS_PACKET (§7.3, §7.5): it copies the RNDIS
// message(s) out of the send-buffer section or the GPA-direct pages once,
// then parses the private copy.
func (q *queue) handleRNDIS(p hvsim.Packet, m nvspMsg) {
	d := q.d
	d.mu.Lock()
	version, send, operational := d.version, d.send, d.rndis == rndisOperational
	d.mu.Unlock()
	status := uint32(nvspStatusSuccess)
	msg, err := q.readRNDIS(p, m, version, send)
	if err == nil && m.A != channelTypeData && m.A != channelTypeControl {
		err = fmt.Errorf("%w: RNDIS channel type %d", ErrMalformed, m.A)
	}
	if err == nil {
		typ := le.Uint32(msg)
		switch {
		case typ == rndisPacket && m.A != channelTypeData:
			err = fmt.Errorf("%w: RNDIS PACKET on the control channel type", ErrMalformed)
		case typ != rndisPacket && m.A != channelTypeControl:
			err = fmt.Errorf("%w: RNDIS control message %#x on the data channel type", ErrMalformed, typ)
		case typ == rndisPacket && !operational:
			err = fmt.Errorf("%w: RNDIS PACKET before INITIALIZE (or after HALT)", ErrState)
		case typ == rndisPacket:
			err = q.transmit(msg)
		case q.idx != 0:
			err = fmt.Errorf("%w: RNDIS control message on sub-channel %d", ErrState, q.idx)
		default:
			err = q.handleRNDISControl(msg)
		}
	}
	if err != nil {
		d.violate(q, err)
		status = nvspStatusInvalidRNDS
	}
	if q.lentBuf != nil {
		d.lender.ReturnLent(q.lent)
		q.lent, q.lentBuf = Lent{}, nil
	}
	if p.Flags&flagCompletionWanted != 0 {
		q.complete(p.TransactionID, status)
	}
}

// lendMin is the smallest GPA-direct message read into a FrameLender's
// memory: smaller ones are cheaper to copy twice than to lend for.
const lendMin = 4096

// readRNDIS copies the RNDIS bytes of one SEND_RNDIS_PACKET into q.msg.
func (q *queue) readRNDIS(p hvsim.Packet, m nvspMsg, version uint32, send *hvsim.GPADLView) ([]byte, error) {
	if version == 0 {
		return nil, fmt.Errorf("%w: SEND_RNDIS_PACKET before INIT", ErrState)
	}
	var msg []byte
	if m.B != sectionIndexNone {
		if p.Type != pktInband {
			return nil, fmt.Errorf("%w: send-buffer section %d in a GPA-direct packet", ErrBufferRef, m.B)
		}
		if send == nil {
			return nil, fmt.Errorf("%w: send-buffer section %d without a send buffer", ErrBufferRef, m.B)
		}
		sections := uint32(send.Len() / sendSectionSize)
		if m.B >= sections || m.C == 0 || m.C > sendSectionSize {
			return nil, fmt.Errorf("%w: send-buffer section %d (of %d), %d bytes", ErrBufferRef, m.B, sections, m.C)
		}
		msg = q.msg[:m.C]
		if _, err := send.ReadAt(msg, int64(m.B)*sendSectionSize); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBufferRef, err)
		}
	} else {
		if p.Type != pktGPADirect {
			return nil, fmt.Errorf("%w: SEND_RNDIS_PACKET with neither a section nor pages", ErrBufferRef)
		}
		ranges, err := hvsim.ParseGPADirectInto(q.ranges, q.pfns, p.Header)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if cap(ranges) > cap(q.ranges) {
			q.ranges = ranges[:0] // keep the larger storage
		}
		if len(ranges) > 0 && cap(ranges[0].PFNs) > cap(q.pfns) {
			q.pfns = ranges[0].PFNs[:0:cap(ranges[0].PFNs)]
		}
		total := 0
		for _, r := range ranges {
			total += r.Len()
		}
		if total > len(q.msg) {
			return nil, fmt.Errorf("%w: GPA-direct message over %d bytes", ErrMalformed, len(q.msg))
		}
		dst := q.msg[:total]
		if l := q.d.lender; l != nil && total >= lendMin {
			if buf, lent, ok := l.LendFrame(total); ok && len(buf) == total {
				q.lent, q.lentBuf, dst = lent, buf, buf
			} else if ok {
				l.ReturnLent(lent)
			}
		}
		n := 0
		for _, r := range ranges {
			if err := q.d.host.ReadPageRange(r, 0, dst[n:n+r.Len()]); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrBufferRef, err)
			}
			n += r.Len()
		}
		msg = dst
	}
	if len(msg) < rndisHdrSize {
		return nil, fmt.Errorf("%w: RNDIS message of %d bytes", ErrMalformed, len(msg))
	}
	return msg, nil
}

// transmit handles one or more concatenated RNDIS PACKET messages: each
// frame, after its checksum and LSO requests, goes to the backend.
func (q *queue) transmit(msg []byte) error {
	d := q.d
	d.mu.Lock()
	mtu := int(d.ndisMTU)
	d.mu.Unlock()
	for len(msg) > 0 {
		pk, err := parseRNDISPacket(msg)
		if err != nil {
			return err
		}
		msg = msg[pk.Length:]
		d.stats.txPackets.Add(1)
		frame := pk.Data
		var vlan uint16
		if pk.HasVLAN {
			vlan = uint16(pk.VLAN&0x7)<<13 | uint16(pk.VLAN>>3&1)<<12 | uint16(pk.VLAN>>4&0xFFF)
		}
		if len(frame) < ethHdrLen {
			return fmt.Errorf("%w: frame of %d bytes", ErrMalformed, len(frame))
		}
		if pk.HasLSO {
			if pk.LSO&lsoTypeV2 == 0 {
				return fmt.Errorf("%w: LSOv1 request %#x (only LSOv2 is offered)", ErrMalformed, pk.LSO)
			}
			if !d.link.Load() {
				d.stats.txDroppedLink.Add(1)
				continue
			}
			if d.offload != nil && !(pk.HasVLAN && vlan != 0) {
				vouched, err := wholeLSO(frame, pk.LSO, mtu)
				if err != nil {
					return err
				}
				d.stats.txLSOWhole.Add(1)
				if vouched && q.lentBuf != nil && len(msg) == 0 {
					// The message's last frame, in the backend's
					// memory: it keeps it, no second copy.
					d.stats.txFrames.Add(1)
					d.stats.txBytes.Add(uint64(len(frame)))
					d.stats.txLent.Add(1)
					d.lender.SendLent(q.lent, q.lentBuf, frame)
					q.lent, q.lentBuf = Lent{}, nil
					continue
				}
				q.emitOffloaded(frame, vouched)
				continue
			}
			if _, err := segmentLSO(frame, pk.LSO, mtu, q.seg, func(seg []byte) { q.emit(seg, vlan, pk.HasVLAN) }); err != nil {
				return err
			}
			d.stats.txLSO.Add(1)
			continue
		}
		if len(frame) > mtu+vlanTagLen || (len(frame) > mtu && be.Uint16(frame[12:]) != etherTypeVLAN) {
			return fmt.Errorf("%w: frame of %d bytes over the %d-byte MTU", ErrMalformed, len(frame), mtu)
		}
		done := false
		if pk.HasCsum {
			if err := txChecksum(frame, pk.Csum); err != nil {
				return err
			}
			d.stats.txCsum.Add(1)
			// Vouched for: the TCP/UDP checksum the host computed,
			// and an IPv4 header checksum it computed or checked.
			done = pk.Csum&(txCsumTCP|txCsumUDP) != 0 && (pk.Csum&txCsumIPHeader != 0 || ipHeaderOK(frame))
		}
		if !d.link.Load() {
			d.stats.txDroppedLink.Add(1)
			continue
		}
		if done && d.offload != nil && !(pk.HasVLAN && vlan != 0) {
			q.emitOffloaded(frame, true)
			continue
		}
		q.emit(frame, vlan, pk.HasVLAN)
	}
	return nil
}

// emit gives one finished frame to the backend, tagged when the guest
// asked for 802.1Q (§7.8 PPI 6).
func (q *queue) emit(frame []byte, vlan uint16, tagged bool) {
	d := q.d
	if tagged && vlan != 0 && len(frame)+vlanTagLen <= len(q.tag) {
		copy(q.tag, frame[:12])
		be.PutUint16(q.tag[12:], etherTypeVLAN)
		be.PutUint16(q.tag[14:], vlan)
		copy(q.tag[16:], frame[12:])
		frame = q.tag[:len(frame)+vlanTagLen]
	}
	d.stats.txFrames.Add(1)
	d.stats.txBytes.Add(uint64(len(frame)))
	if b := d.cfg.Backend; b != nil {
		b.Send(frame)
	}
}

// emitOffloaded gives one frame to an OffloadBackend: through
// SendOffloaded when the host vouches for its checksums, else through Send
// (the backend verifies them).
func (q *queue) emitOffloaded(frame []byte, vouched bool) {
	d := q.d
	d.stats.txFrames.Add(1)
	d.stats.txBytes.Add(uint64(len(frame)))
	if vouched {
		d.offload.SendOffloaded(frame)
	} else {
		d.offload.Send(frame)
	}
}

// handleRNDISControl answers one RNDIS control message (§7.6, §7.7); the
// answer waits in the control queue for a control sub-allocation.
func (q *queue) handleRNDISControl(b []byte) error {
	d := q.d
	m, err := parseRNDISControl(b)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer func() {
		d.mu.Unlock()
		if q.late != nil {
			d.violate(q, q.late)
			q.late = nil
		}
		q.kickControl()
	}()
	haveRecv := d.hasRecv()
	switch {
	case m.Type == rndisHalt:
		if d.rndis != rndisOperational {
			return fmt.Errorf("%w: HALT in RNDIS state %d", ErrState, d.rndis)
		}
		d.rndis = rndisHalted
		return nil
	case !haveRecv:
		return fmt.Errorf("%w: RNDIS message %#x before the receive buffer", ErrState, m.Type)
	case d.ndisMajor == 0:
		return fmt.Errorf("%w: RNDIS message %#x before SEND_NDIS_VERSION", ErrState, m.Type)
	case m.Type == rndisInit && d.rndis != rndisUninit:
		return fmt.Errorf("%w: INITIALIZE in RNDIS state %d", ErrState, d.rndis)
	case m.Type != rndisInit && d.rndis != rndisOperational:
		return fmt.Errorf("%w: RNDIS message %#x before INITIALIZE", ErrState, m.Type)
	}
	out := d.ctrl.push()
	if out == nil {
		return fmt.Errorf("%w: more than %d RNDIS requests without reading the answers", ErrState, maxControlQueued)
	}
	d.stats.control.Add(1)
	switch m.Type {
	case rndisInit:
		status := uint32(rndisStatusSuccess)
		if m.Major != rndisMajor {
			status = rndisStatusNotSupported
		} else {
			d.rndis = rndisOperational
		}
		out.n = encodeInitCmplt(out.b[:], m.ReqID, status)
	case rndisQuery:
		info := out.b[sizeQueryCmplt:]
		n, status := d.queryLocked(m.OID, info)
		out.n = encodeQueryCmplt(out.b[:], m.ReqID, status, n)
	case rndisSet:
		out.n = encodeSetCmplt(out.b[:], m.ReqID, d.setLocked(q, m.OID, m.Info))
	case rndisSetEx:
		out.n = encodeSetCmplt(out.b[:], m.ReqID, rndisStatusNotSupported)
		le.PutUint32(out.b[offRNDISType:], rndisSetEx|0x80000000)
	case rndisKeepalive:
		out.n = encodeKeepaliveCmplt(out.b[:], m.ReqID, rndisStatusSuccess)
	case rndisReset:
		out.n = encodeResetCmplt(out.b[:], rndisStatusSuccess)
	}
	return nil
}

// queryLocked answers OID oid into info (§7.7).
func (d *Device) queryLocked(oid uint32, info []byte) (int, uint32) {
	u32 := func(v uint32) (int, uint32) { le.PutUint32(info, v); return 4, rndisStatusSuccess }
	switch oid {
	case oidGenSupportedList:
		for i, o := range supportedOIDs {
			le.PutUint32(info[4*i:], o)
		}
		return 4 * len(supportedOIDs), rndisStatusSuccess
	case oidGenMaximumFrameSize:
		return u32(d.ndisMTU - ethHdrLen)
	case oidGenMaximumTotalSize:
		return u32(d.ndisMTU)
	case oidGenLinkSpeed:
		return u32(uint32(min(d.cfg.LinkSpeed/100, 0xFFFFFFFF)))
	case oidGenCurrentPacketFilter:
		return u32(d.filter)
	case oidGenMACOptions:
		return u32(macOptions)
	case oidGenMediaConnectStatus:
		if d.link.Load() {
			return u32(mediaConnected)
		}
		return u32(mediaDisconnected)
	case oidGenLinkState:
		return encodeLinkState(info, d.link.Load(), d.cfg.LinkSpeed), rndisStatusSuccess
	case oid8023PermanentAddress:
		return copy(info, d.cfg.MAC[:]), rndisStatusSuccess
	case oid8023CurrentAddress:
		return copy(info, d.mac[:]), rndisStatusSuccess
	case oid8023MaximumListSize:
		return u32(0)
	case oidGenFriendlyName:
		const name = "gohv hvsim network adapter"
		for i, c := range name {
			le.PutUint16(info[2*i:], uint16(c))
		}
		le.PutUint16(info[2*len(name):], 0)
		return 2*len(name) + 2, rndisStatusSuccess
	case oidTCPOffloadHWCaps:
		return encodeNDISOffload(info, allOffloads), rndisStatusSuccess
	case oidTCPOffloadCurrentConfig:
		return encodeNDISOffload(info, d.offl), rndisStatusSuccess
	case oidOffloadEncapsulation:
		return encodeEncapsulation(info), rndisStatusSuccess
	case oidGenRSSCapabilities:
		if d.ndisMajor < 6 || (d.ndisMajor == 6 && d.ndisMinor < 30) {
			return 0, rndisStatusNotSupported
		}
		return encodeRSSCaps(info, uint32(d.cfg.MaxQueues)), rndisStatusSuccess
	}
	return 0, rndisStatusNotSupported
}

// setLocked applies SET of oid (§7.7) and returns the RNDIS status. A
// malformed information buffer is a violation as well as a failure.
func (d *Device) setLocked(q *queue, oid uint32, info []byte) uint32 {
	fail := func(err error) uint32 {
		q.late = err
		return rndisStatusInvalidData
	}
	switch oid {
	case oidGenCurrentPacketFilter:
		if len(info) != 4 {
			return fail(fmt.Errorf("%w: packet filter of %d bytes", ErrMalformed, len(info)))
		}
		f := le.Uint32(info)
		if f&^filterKnown != 0 {
			return rndisStatusNotSupported
		}
		d.filter = f
	case oidTCPOffloadParameters:
		err := applyOffloadParams(info, &d.offl)
		if err == errNotSupported {
			return rndisStatusNotSupported
		}
		if err != nil {
			return fail(err)
		}
	case oidOffloadEncapsulation:
		if err := checkObjHeader(info, objTypeEncap, 1, sizeEncap); err != nil {
			return fail(err)
		}
		for _, o := range [][2]int{{offEncV4Enabled, offEncV4Type}, {offEncV6Enabled, offEncV6Type}} {
			if le.Uint32(info[o[0]:]) == encapSetOn && (le.Uint32(info[o[1]:]) != encap8023 || le.Uint32(info[o[1]+4:]) != ethHdrLen) {
				return rndisStatusNotSupported
			}
		}
	case oidGenRSSParameters:
		p, err := parseRSSParams(info, d.cfg.MaxQueues)
		if err != nil {
			return fail(err)
		}
		d.rss, d.rssOn = p, !p.Disable
	case oidGenRNDISConfigParameter:
		c, err := parseConfigParam(info)
		if err != nil {
			return fail(err)
		}
		return d.configParamLocked(c)
	case oidGenNetworkLayerAddrs:
		// Accepted and ignored, as OpenVMM does.
	case oid8023MulticastList:
		if len(info) != 0 {
			return rndisStatusNotSupported // maximum list size is 0
		}
	default:
		return rndisStatusNotSupported
	}
	return rndisStatusSuccess
}

// configParamLocked applies a named RNDIS configuration parameter: the
// MAC address ("NetworkAddress", §7.7) and the offload switches Windows
// drivers set by name.
func (d *Device) configParamLocked(c configParam) uint32 {
	if c.Type != cpTypeString {
		return rndisStatusNotSupported
	}
	if c.Name == "NetworkAddress" {
		s := strings.ReplaceAll(strings.ReplaceAll(c.Value, "-", ""), ":", "")
		v, err := strconv.ParseUint(s, 16, 64)
		if len(s) != 12 || err != nil {
			return rndisStatusInvalidData
		}
		var mac [6]byte
		for i := range mac {
			mac[i] = byte(v >> (40 - 8*i))
		}
		if mac[0]&1 != 0 {
			return rndisStatusInvalidData
		}
		d.mac = mac
		return rndisStatusSuccess
	}
	if len(c.Value) == 0 || c.Value[0] < '0' || c.Value[0] > '9' {
		return rndisStatusInvalidData
	}
	v := c.Value[0] - '0'
	tx, rx := v&1 != 0, v&2 != 0
	o := &d.offl
	switch c.Name {
	case "*IPChecksumOffloadIPv4":
		o.TxIPv4, o.RxIPv4 = tx, rx
	case "*TCPChecksumOffloadIPv4":
		o.TxTCP4, o.RxTCP4 = tx, rx
	case "*TCPChecksumOffloadIPv6":
		o.TxTCP6, o.RxTCP6 = tx, rx
	case "*UDPChecksumOffloadIPv4":
		o.TxUDP4, o.RxUDP4 = tx, rx
	case "*UDPChecksumOffloadIPv6":
		o.TxUDP6, o.RxUDP6 = tx, rx
	case "*LsoV2IPv4":
		o.LSO4 = v != 0
	case "*LsoV2IPv6":
		o.LSO6 = v != 0
	}
	return rndisStatusSuccess
}

// flushControl (primary's serve goroutine) sends the indirection table
// when due and queued control messages while control sub-allocations are
// free.
func (q *queue) flushControl() {
	d := q.d
	d.mu.Lock()
	due := d.subsWant > 0 && !d.tableSent && nvspRank(d.version) >= nvspRank(NVSPVersion5)
	if due {
		open := 0
		for _, x := range d.queues[1:] {
			if x != nil {
				open++
			}
		}
		due = open == d.subsWant
	}
	if due {
		d.tableSent = true
	}
	channels := uint32(d.subsWant + 1)
	d.mu.Unlock()
	if due {
		n := encodeIndirectionTable(q.tbl[:], channels)
		_ = q.ch.Send(q.ctx, pktInband, 0, 0, q.tbl[:n])
	}
	for {
		d.mu.Lock()
		m := d.ctrl.front()
		if m == nil {
			d.mu.Unlock()
			return
		}
		d.rxMu.Lock()
		r := d.recv
		if r == nil {
			d.rxMu.Unlock()
			d.ctrl.reset()
			d.mu.Unlock()
			return
		}
		slot, got := r.alloc(1, true, q.idx)
		if got == 0 {
			d.rxMu.Unlock()
			d.mu.Unlock()
			return // a control completion will call again
		}
		sub := r.sub(slot, 0)
		off := sub * r.subSize
		n := copy(q.ctrlB[:], m.b[:m.n])
		if m.indication {
			d.stats.indications.Add(1)
		}
		d.ctrl.pop()
		_, werr := r.view.WriteAt(q.ctrlB[:n], int64(off))
		txid, id := r.txid(slot), r.id
		if werr != nil {
			r.release(slot)
		}
		size := d.msgSize
		d.rxMu.Unlock()
		d.mu.Unlock()
		if werr != nil {
			continue
		}
		if err := q.sendControl(txid, id, size, uint32(off), uint32(n)); err != nil {
			return
		}
	}
}

// sendControl sends a transfer-page packet (§4.5, §7.5) naming one
// range of the receive buffer that holds a control message.
func (q *queue) sendControl(txid uint64, id uint16, size int, off, n uint32) error {
	hdr := q.ctph[:]
	le.PutUint16(hdr[offTPSetID:], id)
	le.PutUint16(hdr[offTPReserved:], 0)
	le.PutUint32(hdr[offTPCount:], 1)
	le.PutUint32(hdr[offTPRanges+offTPRangeCount:], n)
	le.PutUint32(hdr[offTPRanges+offTPRangeOffset:], off)
	k := encodeSendRNDISPacket(q.nv[:], size, channelTypeControl)
	return q.ch.SendRaw(q.ctx, pktTransferPages, flagCompletionWanted, txid, hdr, q.nv[:k])
}
