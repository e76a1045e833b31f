// Package shutdown is the shutdown integration service (docs/hyperv-protocol.md §8.4): it
// turns the host's power-off, restart and hibernate requests into Request
// values for the kernel and tells the host whether the guest will comply.
//
// shutdown owns only the shutdown message body and the flags policy; it
// does not power anything off. The kernel does, from its own goroutine,
// after the request was handed over by the callback given to New.
// Framing, negotiation and the channel belong to drivers/ic.
package shutdown

import (
	"sync/atomic"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Class is the shutdown IC's device class GUID (docs/hyperv-protocol.md §5).
var Class = chanmsg.ClassShutdown

// Versions are the shutdown message versions gohv implements (docs/hyperv-protocol.md
// §8.2).
var Versions = []ic.Version{{Major: 3, Minor: 2}, {Major: 3, Minor: 1}, {Major: 3, Minor: 0}, {Major: 1, Minor: 0}}

// Stats are the shutdown driver's counters.
type Stats struct {
	// Requests counts shutdown messages received.
	Requests uint64
	// Accepted counts requests the kernel took (answered S_OK).
	Accepted uint64
	// Refused counts requests answered with a failure: malformed, unknown
	// flags, or declined by the kernel.
	Refused uint64
	// IC are the framework counters of the current channel.
	IC ic.Stats
}

// Driver answers shutdown requests. Create it with New.
type Driver struct {
	deliver func(Request) bool

	att                         ic.Attachment
	requests, accepted, refused atomic.Uint64
}

// New returns a shutdown driver that hands each well-formed request to
// deliver. deliver reports whether the guest will act on the request: the
// host is told S_OK only then, E_FAIL otherwise (docs/hyperv-protocol.md §8.4). deliver
// runs on the channel's dispatch goroutine and must not block; the kernel queues
// the request and acts on it elsewhere (see kernel.PowerRequests).
func New(deliver func(Request) bool) *Driver { return &Driver{deliver: deliver} }

// Name returns "shutdown".
func (d *Driver) Name() string { return "shutdown" }

// Stats returns the counters; safe from any goroutine.
func (d *Driver) Stats() Stats {
	st := Stats{Requests: d.requests.Load(), Accepted: d.accepted.Load(), Refused: d.refused.Load()}
	st.IC = d.att.Stats()
	return st
}

func (d *Driver) config() ic.Config {
	return ic.Config{Name: d.Name(), Type: ic.TypeShutdown, Versions: Versions, Handle: d.handle}
}

// handle answers one shutdown message. The body is left as received; only
// the status tells the host the outcome. It does not allocate (drivers/ic
// contract): the Request is built on the stack, its text in a fixed
// buffer.
func (d *Driver) handle(msg []byte, _ ic.Version) ic.Status {
	d.requests.Add(1)
	var req Request
	if err := parseRequest(msg, &req); err != nil {
		d.refused.Add(1)
		if err == ErrFlags {
			return ic.StatusFail
		}
		return ic.StatusInvalidArg
	}
	if d.deliver == nil || !d.deliver(req) {
		d.refused.Add(1)
		return ic.StatusFail
	}
	d.accepted.Add(1)
	return ic.StatusOK
}
