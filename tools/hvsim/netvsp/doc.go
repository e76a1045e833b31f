// Package netvsp is the host side of the Hyper-V synthetic NIC (NetVSP) in
// the simulated host: an hvsim.Device that speaks NVSP and RNDIS
// (docs/hyperv-protocol.md §7) to a guest's netvsc driver and bridges its
// frames to a Backend: an in-process gVisor peer stack (Peer) or a Linux
// TAP device (TAP, linux only).
//
// It is written from the reference alone, independently of gohv's guest
// driver, and may import only hv, tools/hvsim and gVisor (for Peer). It
// must never import gohv's vmbus, drivers, kernel or netstack packages: a
// misunderstanding shared by both ends would otherwise pass unseen.
//
// # Files
//
//   - nvsp.go, rndis.go, oid.go: wire formats (named offsets, §7.2–§7.9),
//     decoders for what the guest sends, encoders for what the host sends;
//   - frame.go, rss.go: what a NIC does to frames (checksums, LSOv2
//     segmentation or a whole LSOv2 send's fix-up, Toeplitz hashing);
//   - rxbuf.go: the receive buffer's sub-allocations and outstanding
//     transfer-page packets;
//   - device.go, queue.go, datapath.go, rx.go: the state machine and the
//     data path; faults.go: fault injection; peer.go, tap_linux.go: backends.
//
// # Protocol as the host enforces it
//
// Primary channel, in order (§7.4): INIT (versions 1, 2, 4, 5, 6, 6.1;
// anything else is refused with status failure, so a guest can step
// down), SEND_NDIS_CONFIG (NVSP ≥ 2, before the receive buffer),
// SEND_NDIS_VERSION (major 6), SEND_RECEIVE_BUFFER (one section of
// sub-allocations of 256 + MTU + 36 bytes, OpenVMM's size; at most 15 MiB
// for NVSP 1–2, 31 MiB from 4), SEND_SEND_BUFFER (sections of 6144 bytes),
// then RNDIS INITIALIZE and queries/sets. SUBCHANNEL (NVSP ≥ 5) makes the
// host offer the sub-channels (Host.AddSubChannels); once all are open the
// host sends SEND_INDIRECTION_TABLE (16 entries, entry i = i mod channels,
// table at offset 12). Sub-channels carry only data and completions. NVSP
// messages the host sends are 40 bytes under 6.1 and 28 before (§7.2).
//
// Guest sends arrive as SEND_RNDIS_PACKET either in-band naming a
// send-buffer section or GPA-direct (§4.5) with section 0xFFFFFFFF; the host
// copies the RNDIS bytes out once, then parses the copy. One message may
// hold several concatenated RNDIS PACKETs. Checksum requests are carried
// out (the host computes the IPv4 header, TCP and UDP checksums from
// scratch), LSOv2 sends are cut into MSS-sized segments with correct
// lengths, IPv4 ids, sequence numbers, flags and checksums, and 802.1Q
// per-packet info becomes a tag. A Backend that is an OffloadBackend and
// takes offloaded frames (Peer with PeerConfig.Offload, as a vSwitch port
// to a VM with offloads) gets an untagged LSOv2 send whole instead, with
// its IP length and IPv4 header checksum set and vouched for when its TCP
// checksum field holds the LSOv2 pseudo-header sum, and frames whose
// checksums the host computed vouched for (SendOffloaded); other frames
// still go through Send. A FrameLender (Peer) lends the memory a large
// GPA-direct message is copied out into, and keeps the LSO send in it, so
// the host copies it once. Each RNDIS packet is completed with
// SEND_RNDIS_PACKET_COMPLETE (status 1, or 5 for a malformed message).
//
// Frames towards the guest are written into data sub-allocations, one RNDIS
// PACKET each with checksum per-packet info (and the RSS hash when RSS is
// on), several per transfer-page packet when they have queued up (at most
// 64 ranges). A sub-allocation is reused only after the guest's completion
// (type 0xB, NVSP 108) of the transaction id the host gave that packet,
// on the channel it went out on. RNDIS answers and status indications use
// 16 sub-allocations reserved for them. When the receive buffer is full, a
// queue holds Config.HoldFrames frames and drops (and counts) the rest.
// The packet filter starts at 0: nothing reaches the guest until it sets
// one (§7.7, §7.9). After REVOKE_RECEIVE_BUFFER nothing more is written
// into that buffer, but completions of packets outstanding at the revoke
// are still taken.
//
// Whatever breaks these rules is recorded with Host.RecordViolation (an
// error wrapping ErrMalformed, ErrState, ErrUnknownCompletion or
// ErrBufferRef) and the message is ignored or failed; nothing a guest
// sends can panic the host.
//
// # Concurrency
//
// Each open channel has two goroutines: serve (guest→host packets, NVSP and
// RNDIS control, completions, and on the primary the control messages and
// indirection table) and rxLoop (host→guest frames). Backends call the
// receiver from their own goroutine; it copies the frame into a fixed
// per-queue slot, waiting for one only while rxLoop is behind and not
// itself waiting for the guest (a frame is lost only for want of guest
// room, never because a host goroutine ran late). Device.mu guards the
// protocol state, Device.rxMu the receive buffer; mu is taken before rxMu,
// and neither is held while calling into hvsim.Host, whose server lock
// ranks first (it is held when Open and Close run). The per-packet paths
// allocate nothing.
//
// # Faults
//
// Device.Faults: dropped and reordered send completions, a starved receive
// buffer. Device.SetLink flaps the link (with media indications),
// IndicateNetworkChange asks the guest to renew its address,
// FillGuestRing fills a queue's host→guest ring, Rescind withdraws the
// offer with I/O outstanding. hvsim.Host.Faults adds delayed completions,
// lost interrupts and the rest of the VMBus-level faults.
package netvsp
