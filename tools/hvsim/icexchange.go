package hvsim

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// This file is the request path shared by the time sync, KVP and VSS
// hosts: one transaction at a time per service, injected host faults, and
// the checks every guest reply gets before a service decodes its body.

// ICFault is a host misbehaviour injected into the next request of a time
// sync, KVP or VSS host (InjectFault), to test how the guest copes.
type ICFault int

// IC faults.
const (
	ICFaultNone ICFault = iota
	// ICFaultDuplicate sends the request twice with the same VMBus and IC
	// transaction ids. The host uses the first answer and accepts a
	// second one silently.
	ICFaultDuplicate
	// ICFaultOutOfOrder gives the request a transaction id lower than the
	// previous request's (ids go backwards).
	ICFaultOutOfOrder
	// ICFaultTruncated cuts the request after half its body while both
	// size fields still claim the full body. The guest should reject it;
	// if it does not answer, the request ends with the caller's context.
	ICFaultTruncated
	// ICFaultOversized appends ICOversizeExtra bytes of 0xEE after the
	// body, counted in both size fields.
	ICFaultOversized
)

// ICOversizeExtra is how much ICFaultOversized adds to a request.
const ICOversizeExtra = 4096

// String names the fault.
func (f ICFault) String() string {
	switch f {
	case ICFaultNone:
		return "none"
	case ICFaultDuplicate:
		return "duplicate"
	case ICFaultOutOfOrder:
		return "out-of-order"
	case ICFaultTruncated:
		return "truncated"
	case ICFaultOversized:
		return "oversized"
	}
	return fmt.Sprintf("ICFault(%d)", int(f))
}

// HResultError is a guest's answer with a failure status.
type HResultError struct {
	Service, Op string
	HResult     uint32
}

func (e *HResultError) Error() string {
	return fmt.Sprintf("hvsim: %s %s: guest answered HRESULT %#08x", e.Service, e.Op, e.HResult)
}

// icRequests serialises a service's requests (one transaction
// outstanding, docs/hyperv-protocol.md §8.6) and holds the armed faults.
type icRequests struct {
	sem chan struct{} // capacity 1: the outstanding transaction

	mu     sync.Mutex
	faults []ICFault
	lastTx uint64
}

func newICRequests() icRequests { return icRequests{sem: make(chan struct{}, 1)} }

// InjectFault arms f for the service's next request (several calls queue
// up, one fault per request).
func (r *icRequests) InjectFault(f ICFault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, f)
}

func (r *icRequests) takeFault() ICFault {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.faults) == 0 {
		return ICFaultNone
	}
	f := r.faults[0]
	r.faults = r.faults[1:]
	return f
}

// acquire waits until no other request of the service is outstanding.
func (r *icRequests) acquire(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *icRequests) release() { <-r.sem }

// exchange sends one request of type typ with the negotiated versions and
// returns the guest's validated reply (its IC headers are checked; the
// body is the service's to check). A reply that breaks the framing rules
// is recorded as a violation and returned as an error wrapping ErrIC.
// The caller holds r (acquire).
func (r *icRequests) exchange(ctx context.Context, s *icService, ch *Channel, typ uint16, body []byte) (icReply, icReplyHeader, error) {
	fw, msg, _ := s.Negotiated()
	fault := r.takeFault()

	s.mu.Lock()
	if s.waiters == nil || s.ch != ch {
		s.mu.Unlock()
		return icReply{}, icReplyHeader{}, ErrClosed
	}
	s.nextTx++
	txid := s.nextTx
	r.mu.Lock()
	if fault == ICFaultOutOfOrder && r.lastTx > 1 && s.waiters[r.lastTx-1] == nil {
		txid = r.lastTx - 1
	}
	r.lastTx = txid
	r.mu.Unlock()
	wait := make(chan icReply, 2)
	s.waiters[txid] = wait
	s.mu.Unlock()
	if fault != ICFaultDuplicate {
		// A duplicated request keeps its waiter (and its spare slot for
		// the second answer) for the channel's life.
		defer func() {
			s.mu.Lock()
			delete(s.waiters, txid)
			s.mu.Unlock()
		}()
	}

	full := len(body)
	switch fault {
	case ICFaultOversized:
		body = append(slices.Clone(body), make([]byte, ICOversizeExtra)...)
		for i := full; i < len(body); i++ {
			body[i] = 0xEE
		}
		full = len(body)
	case ICFaultTruncated:
		body = body[:len(body)/2]
	}
	payload := make([]byte, icOffBody+len(body))
	putICHeader(payload, fw, msg, typ, uint8(txid), full)
	copy(payload[icOffBody:], body)
	if fault == ICFaultTruncated {
		le.PutUint32(payload[icOffPipeSize:], uint32(icOffBody-8+full))
	}
	sends := 1
	if fault == ICFaultDuplicate {
		sends = 2
	}
	for range sends {
		if err := ch.Send(ctx, pktDataInband, 0, txid, payload); err != nil {
			return icReply{}, icReplyHeader{}, err
		}
	}
	var rep icReply
	select {
	case rep = <-wait:
	case <-ctx.Done():
		return icReply{}, icReplyHeader{}, ctx.Err()
	case <-ch.Done():
		return icReply{}, icReplyHeader{}, ErrClosed
	}
	h, err := parseICReply(rep.body)
	h.sentSize = full
	if err == nil && h.typ != typ {
		err = fmt.Errorf("%w: reply of IC type %d to type %d", errWire, h.typ, typ)
	}
	if err == nil && h.msg != msg {
		err = fmt.Errorf("%w: reply message version %s, negotiated %s", errWire, versionString(h.msg), versionString(msg))
	}
	if err != nil {
		err = fmt.Errorf("%w: %s: %w", ErrIC, s.name, err)
		ch.h.violate(err)
		return rep, h, err
	}
	return rep, h, nil
}

// request is exchange wrapped in acquire/release, after waiting for the
// negotiation.
func (r *icRequests) request(ctx context.Context, s *icService, typ uint16, body []byte) (icReply, icReplyHeader, *Channel, error) {
	ch, err := s.waitReady(ctx)
	if err != nil {
		return icReply{}, icReplyHeader{}, nil, err
	}
	if err := r.acquire(ctx); err != nil {
		return icReply{}, icReplyHeader{}, ch, err
	}
	defer r.release()
	rep, h, err := r.exchange(ctx, s, ch, typ, body)
	return rep, h, ch, err
}

// violation records a service-level violation found in a reply body.
func violation(ch *Channel, service string, err error) error {
	err = fmt.Errorf("%w: %s: %w", ErrIC, service, err)
	ch.h.violate(err)
	return err
}
