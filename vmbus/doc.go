// Package vmbus is the guest's VMBus client (docs/hyperv-protocol.md §2–§4): it
// negotiates the protocol version with the host, collects channel offers,
// creates and tears down GPADLs, opens and closes channels, moves packets
// through each channel's pair of rings (package vmbus/ring) with the
// signalling rules of docs/hyperv-protocol.md §3.12 and §4.6, handles rescinds and
// sub-channels, and dispatches host interrupts to drivers.
//
// The wire format of the channel messages lives in vmbus/chanmsg, the ring
// buffer in vmbus/ring. vmbus reaches the machine only through hv.Platform:
// it never executes a privileged instruction, and it knows nothing of any
// device class beyond its GUID (drivers live in drivers/...).
//
// Concurrency: the SynIC handler (interrupt context) only copies messages
// into a preallocated queue, takes event flags and wakes goroutines with
// non-blocking sends: the Bus's message goroutine, which runs the
// control-plane state machines, and the dispatch goroutine of each
// signalled channel. Every open channel has its own dispatch goroutine,
// started by Open and ended by Close, the rescind or Bus.Close, which runs
// its OpenConfig.OnInterrupt: channels are served independently and in
// parallel, each never concurrently with itself. A ticker
// (Config.PollInterval) repeats the handler's scan and pokes open channels
// so that a lost interrupt costs latency, not a hang.
package vmbus
