package hvsim

import (
	"fmt"
	"strings"
	"sync/atomic"
)

type hostStats struct {
	posts, signals, messagesDropped, blackholed atomic.Uint64
}

// Stats are host-wide counters.
type Stats struct {
	PostMessages    uint64 // HvPostMessage calls
	SignalEvents    uint64 // HvSignalEvent calls
	MessagesDropped uint64 // host→guest messages lost to a full VP queue
	BlackHoled      uint64 // guest messages ignored by the BlackHole fault
	Violations      uint64
	// Received and Sent count channel messages by type (docs/hyperv-protocol.md §3.2).
	Received, Sent map[uint32]uint64
	// Per VP: messages placed in the slot, pending flags set, EOMs seen,
	// handler calls.
	Delivered, PendingSet, EOMs, Interrupts []uint64
}

// Stats returns a snapshot of the host counters.
func (h *Host) Stats() Stats {
	st := Stats{
		PostMessages: h.stats.posts.Load(), SignalEvents: h.stats.signals.Load(),
		MessagesDropped: h.stats.messagesDropped.Load(), BlackHoled: h.stats.blackholed.Load(),
		Violations: h.nViolation.Load(), Received: map[uint32]uint64{}, Sent: map[uint32]uint64{},
	}
	for i := range h.srv.rx {
		if v := h.srv.rx[i].Load(); v != 0 {
			st.Received[uint32(i)] = v
		}
		if v := h.srv.tx[i].Load(); v != 0 {
			st.Sent[uint32(i)] = v
		}
	}
	for _, s := range h.synics {
		st.Delivered = append(st.Delivered, s.delivered.Load())
		st.PendingSet = append(st.PendingSet, s.pendingSets.Load())
		st.EOMs = append(st.EOMs, s.eoms.Load())
		st.Interrupts = append(st.Interrupts, s.interrupts.Load())
	}
	return st
}

// Dump returns a human-readable state dump: connection, offers, GPADLs and
// per-channel counters.
func (h *Host) Dump() string {
	var b strings.Builder
	st := h.Stats()
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	s := h.srv
	fmt.Fprintf(&b, "hvsim %v: connected=%v version=%s msgconn=%d vp=%d offers-requested=%v\n",
		h.cfg.Profile, s.connected, versionString(s.version), s.msgConn, s.targetVP, s.offersRequested)
	fmt.Fprintf(&b, "posts=%d signals=%d dropped=%d blackholed=%d violations=%d rx=%v tx=%v\n",
		st.PostMessages, st.SignalEvents, st.MessagesDropped, st.BlackHoled, st.Violations, st.Received, st.Sent)
	for _, o := range s.offers {
		fmt.Fprintf(&b, "relid %d conn %#x class %v sub %d sent=%v open=%v rescinded=%v",
			o.relid, o.connID, o.spec.Class, o.subIndex, o.sent, o.guestOpen, o.rescinded)
		if o.ch != nil {
			cs := o.ch.Stats()
			fmt.Fprintf(&b, " in=%d/%dB out=%d/%dB sig-in=%d sig-out=%d suppressed=%d full=%d",
				cs.PacketsIn, cs.BytesIn, cs.PacketsOut, cs.BytesOut, cs.SignalsIn, cs.SignalsOut,
				cs.SignalsSuppressed, cs.RingFull)
		}
		b.WriteByte('\n')
	}
	for id, g := range s.gpadls {
		fmt.Fprintf(&b, "gpadl %#x relid %d pages %d/%d created=%v\n", id, g.relid, len(g.pfns), g.total, g.created)
	}
	return b.String()
}
