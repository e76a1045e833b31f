// Package ring is the guest side of the VMBus shared ring buffer
// (docs/hyperv-protocol.md §4): the producer (Writer) of a channel's outbound ring, the
// consumer (Reader) of its inbound ring, packet framing (descriptor,
// type-specific headers, padding, trailer) and the signalling decisions.
//
// ring owns only the bytes of the ring memory it is given. It does not
// allocate ring memory, create GPADLs or signal anyone: it tells its caller
// (package vmbus) when a signal is due, and the caller rings the doorbell.
// It imports nothing from gohv.
//
// # Layout
//
// A ring is one 4096-byte header page followed by a data area of
// size = len(mem) − 4096 bytes (docs/hyperv-protocol.md §4.1, §4.2). The header holds
//
//	@0  write index       written by the producer only
//	@4  read index        written by the consumer only
//	@8  interrupt mask    written by the consumer: 1 = "do not signal me"
//	@12 pending send size written by the producer: bytes it waits for
//	@64 feature bits      bit 0 = pending send size supported
//
// A packet is a 16-byte descriptor, a type-specific header, the payload,
// zero padding to 8 bytes and an 8-byte trailer holding the packet's start
// offset << 32 (docs/hyperv-protocol.md §4.3). Packets wrap around the end of the data
// area byte for byte, so every copy may be two copies.
//
// # Invariants
//
//   - Indices are byte offsets into the data area, multiples of 8 and
//     below size. Each side keeps its own index privately and only
//     publishes it; it never reads its own index back from shared memory,
//     because the other side (the host) may scribble on it.
//   - The other side's index is read once per operation with an atomic
//     load and validated before use; an invalid value is a *CorruptError.
//   - w == r means empty, so the producer never fills the ring to w == r:
//     a packet of T bytes (trailer included) is written only if
//     writable > T (docs/hyperv-protocol.md §4.6). A full ring therefore always has at
//     least 8 free bytes.
//   - The reader copies a packet out of shared memory before it looks at
//     it: the descriptor into a private copy, which is validated (offset8 ≥
//     2, offset8 ≤ len8, len8×8 + 8 ≤ readable) and then used, never
//     re-read; the rest into the caller's buffer. The host cannot change
//     what we validated after we validated it.
//   - After a CorruptError the Reader stays failed: its position is no
//     longer known to be a packet boundary.
//
// # Ordering
//
// Index publications are atomic stores (sequentially consistent in Go, an
// XCHG on amd64), so all packet bytes are visible before the new index,
// and every later load (interrupt mask, other side's index, pending send
// size) is ordered after it: the full barrier that the signalling rules
// below need.
//
// # Signalling (docs/hyperv-protocol.md §4.6)
//
//   - Producer: after publishing the write index, signal iff the
//     consumer's interrupt mask is 0 and the read index equals the write
//     index from before the write (the ring was empty, so the consumer may
//     be asleep). A batch publishes once and applies the rule against the
//     index from before the batch.
//   - Consumer: to drain without interrupts, mask (1), drain, unmask (0),
//     then re-check for data (UnmaskInterrupts does both), else a packet
//     written between the last read and the unmask is never signalled.
//   - Consumer after freeing space: if the feature bit is set and the
//     pending send size P (masked to a multiple of 8) is non-zero, signal
//     the producer iff this Commit made the free space exceed P: before ≤
//     P < after. That is Linux's rule (drivers/hv/ring_buffer.c) and
//     OpenVMM's (vmbus_ring, whose free-space figure already leaves out
//     the 8 bytes that keep the ring from looking empty, so its
//     "before < P ≤ after" is the same test; docs/hyperv-protocol.md
//     §11 #14). before ≤ P keeps a second Commit from signalling again for
//     the same wait.
//   - Our producer stores SpaceNeeded = the packet's size T, trailer
//     included, and no more: the packet fits exactly when free > T, which
//     is when the consumer signals. Storing more would strand the largest
//     packet a ring allows (T = size − 8): free never exceeds size.
//   - Producer blocked: store the pending send size, re-check space, and
//     only then sleep until signalled.
//
// Neither Writer nor Reader is safe for concurrent use, Stats included.
package ring
