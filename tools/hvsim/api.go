package hvsim

import "fmt"

// AddDevice offers dev. Before the guest's REQUESTOFFERS it joins the
// initial offer list; afterwards it is hot-added with an OFFERCHANNEL. It
// returns the relid.
func (h *Host) AddDevice(dev Device) (uint32, error) {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return h.srv.addOffer(dev, dev.Offer(), 0)
}

// AddSubChannels offers n sub-channels (sub_channel_index 1..n, same GUIDs,
// docs/hyperv-protocol.md §3.11) of the primary channel relid, served by the same device.
func (h *Host) AddSubChannels(primary uint32, n int) ([]uint32, error) {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	o := h.srv.lookup(primary)
	if o == nil || o.subIndex != 0 || o.rescinded {
		return nil, fmt.Errorf("hvsim: sub-channels of relid %d: %w", primary, ErrUnknownChannel)
	}
	next := uint16(1)
	for _, x := range h.srv.offers {
		if x.dev == o.dev && x.subIndex >= next {
			next = x.subIndex + 1
		}
	}
	var out []uint32
	for i := 0; i < n; i++ {
		relid, err := h.srv.addOffer(o.dev, o.spec, next+uint16(i))
		if err != nil {
			return out, err
		}
		out = append(out, relid)
	}
	return out, nil
}

// Rescind withdraws the offer of relid (RESCIND_CHANNELOFFER): the host
// side of an open channel closes at once, the guest is expected to close,
// tear down and send RELID_RELEASED.
func (h *Host) Rescind(relid uint32) error {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return h.srv.rescind(relid)
}

// Channel returns the open host channel of relid, or nil.
func (h *Host) Channel(relid uint32) *Channel {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	if o := h.srv.lookup(relid); o != nil {
		return o.ch
	}
	return nil
}

// ConnectionID returns the HvSignalEvent connection id offered for relid.
func (h *Host) ConnectionID(relid uint32) (uint32, bool) {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	if o := h.srv.lookup(relid); o != nil {
		return o.connID, true
	}
	return 0, false
}

// Version returns the negotiated VMBus version and whether the guest is
// connected.
func (h *Host) Version() (uint32, bool) {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return h.srv.version, h.srv.connected
}

// Malformed selects a malformed host→guest message for InjectMalformed.
type Malformed int

// Malformed messages (for guest robustness tests).
const (
	// MalformedTruncatedOffer is an OFFERCHANNEL of 100 bytes instead of
	// 196 for the next offered device (sent now: a fresh offer of relid
	// 0xFFFF with zero GUIDs).
	MalformedTruncatedOffer Malformed = iota
	// MalformedBadType is a channel message of unknown type 0x7F.
	MalformedBadType
	// MalformedOversizeSlot writes a slot whose payload size byte says 255
	// (more than the 240 a slot holds).
	MalformedOversizeSlot
	// MalformedShort is a 4-byte channel message (shorter than the header).
	MalformedShort
)

// InjectMalformed sends one malformed host→guest message.
func (h *Host) InjectMalformed(kind Malformed) error {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	switch kind {
	case MalformedTruncatedOffer:
		m := newMsg(msgOfferChannel, 100)
		h.srv.send(m)
	case MalformedBadType:
		h.srv.send(newMsg(0x7F, sizeHeader))
	case MalformedOversizeSlot:
		m := newMsg(msgAllOffersDelivered, sizeAllOffers)
		vp := h.srv.targetVP
		if int(vp) >= len(h.synics) {
			vp = 0
		}
		var q queuedMsg
		q.n = copy(q.data[:], m.bytes())
		q.badSize = true
		select {
		case h.synics[vp].queue <- q:
		default:
			return fmt.Errorf("hvsim: VP %d message queue full", vp)
		}
	case MalformedShort:
		m := newMsg(msgAllOffersDelivered, 4)
		h.srv.send(m)
	default:
		return fmt.Errorf("hvsim: unknown malformed kind %d", kind)
	}
	return nil
}
