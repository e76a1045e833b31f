// Package netvsc is gohv's driver for the Hyper-V synthetic network
// adapter (class f8615163-df3e-46c5-913f-f2d2f965ed0e, docs/hyperv-protocol.md
// §5, §7): NVSP negotiation, the shared receive and send buffers, RNDIS
// control (initialisation, OID queries and sets, status indications,
// keepalives), the data path in both directions with checksum offload and
// LSOv2, and vRSS queues on sub-channels.
//
// It owns the NIC's state machine only. Wire formats live in the
// sub-packages nvsp and rndis; the ring, channels and GPADLs are package
// vmbus's, reached through the narrow Channel interface; memory the host
// sees comes from hv.Memory. It must not touch the network stack above
// it: *NIC implements the NIC contract netstack consumes (MAC, MTU,
// Queues, LinkUp, Offloads, SetReceiver, Send, WaitWritable,
// SetLinkHandler, SetNetworkChangeHandler, Stats).
//
// # Layout
//
// One receive buffer (16 MiB by default, capped at the host's limit for
// the NVSP version) and one send buffer (1 MiB, cut into the sections the
// host chooses) serve every queue. Queue 0 is the primary channel; each
// vRSS sub-channel adds a queue. Each queue has a fixed table of send
// slots whose index is the VMBus transaction id of a send; a slot holds
// the send-buffer section or bounce buffer to free on completion.
//
//   - Small frames (RNDIS header + frame ≤ section size) are copied into
//     a section found in a lock-free bitmap (packet type 6).
//   - Larger frames go GPA-direct (type 9): the RNDIS header from the
//     slot's own 128-byte header area, the frame from the caller's memory
//     when Config.Memory is an hv.PhysTranslator that vouches for it,
//     else everything from one of a few bounce buffers of an hv/dma Pool
//     allocated at Open.
//   - Receives arrive as transfer-page packets (type 7); each range is
//     one RNDIS message in the receive buffer. Each range is checked
//     against the buffer and the host's sub-allocation area and copied
//     out before it is parsed (the host may rewrite shared memory at any
//     time), so the receiver sees guest-private bytes. Every packet is
//     completed (NVSP 108 with its transaction id) so the host can reuse
//     the space; a completion that does not fit the ring is queued and
//     sent by the queue's flush goroutine, which waits for space.
//
// # Goroutines and locks
//
// Each queue's onInterrupt runs on its channel's dispatch goroutine
// (never concurrently with itself): it reads the ring, frees completed
// sends, delivers frames to the receiver and control completions to their
// waiters, and never blocks. Send runs on the caller's goroutine under
// the queue's sendMu. Link and network-change handlers run on the NIC's
// event goroutine. A watcher goroutine turns a rescind into ErrRemoved for
// every waiter. Lock order: queue.sendMu, then queue.slotMu; control.mu,
// queue.pendMu, queue.wakeMu, eventQueue.mu and bouncePool.mu are leaves.
//
// Close quiesces (packet filter 0, HALT, sends drained), revokes both
// buffers, closes the channels and tears down the buffers' GPADLs, after
// CLOSECHANNEL from VMBus 4.0 on and before it below (§7.4 step 8); memory
// is freed only once the channels are closed and the GPADLs gone.
//
// Host input is untrusted: every NVSP and RNDIS message, transfer-page
// range, per-packet info entry, OID result and indirection table is
// validated; a bad one is counted (Stats.RxBadPackets) and dropped,
// never trusted.
package netvsc
