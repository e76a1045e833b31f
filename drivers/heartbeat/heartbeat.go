// Package heartbeat is the heartbeat integration service (docs/hyperv-protocol.md §8.3):
// it answers the host's periodic heartbeat so that Hyper-V shows the VM as
// responsive, and records how many heartbeats arrived and the last sequence
// number.
//
// heartbeat owns only the heartbeat message body; framing, negotiation and
// the channel are drivers/ic's, and the ring and transaction ids vmbus's.
package heartbeat

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// Class is the heartbeat IC's device class GUID (docs/hyperv-protocol.md §5).
var Class = chanmsg.ClassHeartbeat

// Versions are the heartbeat message versions gohv implements (docs/hyperv-protocol.md
// §8.2).
var Versions = []ic.Version{{Major: 3, Minor: 0}, {Major: 1, Minor: 0}}

// Body offsets from the start of the IC message (docs/hyperv-protocol.md §8.3, §11 row
// 16).
const (
	offSequence = ic.HeaderSize     // u64
	offAppState = ic.HeaderSize + 8 // u32, OpenVMM only; Linux: reserved
	minMessage  = offSequence + 8   // sequence number present
	appStateEnd = offAppState + 4   // application state present
)

// AppState is the application state OpenVMM defines at offset 36 of a
// heartbeat reply (docs/hyperv-protocol.md §8.3); Linux leaves it reserved (§11 row 16).
type AppState uint32

// Application states (docs/hyperv-protocol.md §8.3).
const (
	StateUnknown  AppState = 0
	StateHealthy  AppState = 1
	StateCritical AppState = 2
	StateStopped  AppState = 3
)

// Stats are the heartbeat counters.
type Stats struct {
	// Beats counts heartbeats answered.
	Beats uint64
	// LastSequence is the sequence number of the last heartbeat received
	// (the reply carried LastSequence+1).
	LastSequence uint64
	// IC are the framework counters of the current channel.
	IC ic.Stats
}

// Driver answers heartbeats. The zero value is not usable; call New.
type Driver struct {
	att         ic.Attachment
	beats, last atomic.Uint64
	state       atomic.Uint32
}

// New returns a heartbeat driver, not yet attached to a channel.
func New() *Driver { return &Driver{} }

// Name returns "heartbeat".
func (d *Driver) Name() string { return "heartbeat" }

// SetApplicationState sets the state reported at offset 36 of every later
// reply. The default StateUnknown leaves those bytes as the host sent them,
// which is what Linux guests do.
func (d *Driver) SetApplicationState(s AppState) { d.state.Store(uint32(s)) }

// Stats returns the counters; safe from any goroutine.
func (d *Driver) Stats() Stats {
	st := Stats{Beats: d.beats.Load(), LastSequence: d.last.Load()}
	st.IC = d.att.Stats()
	return st
}

func (d *Driver) config() ic.Config {
	return ic.Config{Name: d.Name(), Type: ic.TypeHeartbeat, Versions: Versions, Handle: d.handle}
}

// handle answers one heartbeat in place: sequence + 1 (docs/hyperv-protocol.md §8.3).
func (d *Driver) handle(msg []byte, _ ic.Version) ic.Status {
	if len(msg) < minMessage {
		return ic.StatusInvalidArg
	}
	seq := binary.LittleEndian.Uint64(msg[offSequence:])
	binary.LittleEndian.PutUint64(msg[offSequence:], seq+1)
	if s := d.state.Load(); s != uint32(StateUnknown) && len(msg) >= appStateEnd {
		binary.LittleEndian.PutUint32(msg[offAppState:], s)
	}
	d.last.Store(seq)
	d.beats.Add(1)
	return ic.StatusOK
}
