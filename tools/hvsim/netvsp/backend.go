package netvsp

import "gvisor.dev/gvisor/pkg/buffer"

// Backend is the network a Device is plugged into.
type Backend interface {
	// Send takes one Ethernet frame from the guest (checksums done,
	// LSO already segmented). frame is valid only during the call; Send
	// runs on a channel's goroutine and must not block for long.
	Send(frame []byte)
	// SetReceiver installs the function the backend calls with each frame
	// for the guest, from any goroutine; fn copies the frame and never
	// waits for the guest, only (briefly) for the Device's own goroutine
	// when it is behind. The Device calls it once, from New.
	SetReceiver(fn func(frame []byte))
}

// OffloadBackend is a Backend that can also take frames the way a Hyper-V
// vSwitch hands a VM's sends to another VM with offloads: a large send
// (LSOv2) whole instead of cut into MTU-sized segments, with checksums the
// host vouches for instead of ones the receiver must verify.
type OffloadBackend interface {
	Backend
	// TakesOffloaded reports whether SendOffloaded may be used; the
	// Device asks once, in New.
	TakesOffloaded() bool
	// SendOffloaded takes one frame from the guest whose checksums need no
	// verification: the host computed the TCP/UDP checksum as the guest
	// asked and computed or checked the IPv4 header checksum, or the
	// frame is a whole LSOv2 send whose IP length and header checksum the
	// host set and whose TCP checksum field holds the pseudo-header sum an
	// LSOv2 sender puts there (the data went memory to memory, as
	// Hyper-V's receive checksum bit 6, "loopback", says of VM-to-VM
	// frames; docs/hyperv-protocol.md §7.8). Such a frame may exceed the
	// MTU (at most the LSO size the host advertises plus headers). Same
	// rules as Send otherwise.
	SendOffloaded(frame []byte)
}

// FrameLender is an OffloadBackend that can lend the Device memory to
// copy a guest's large send into, then keep a frame in it without copying
// it again: the host copies each large send out of guest memory once,
// into the memory the receiver keeps, as a vSwitch copies a VM's send
// into the receiving VM's buffer.
type FrameLender interface {
	OffloadBackend
	// LendFrame returns n bytes of the backend's memory, or ok false when
	// it lends none (then the Device uses its own). The Device fills
	// them, then either passes a frame within them to SendLent or gives
	// them back with ReturnLent, on the same goroutine.
	LendFrame(n int) (buf []byte, l Lent, ok bool)
	// SendLent is SendOffloaded for frame, a part of buf (the memory of
	// l): the backend keeps the memory instead of copying the frame.
	SendLent(l Lent, buf, frame []byte)
	// ReturnLent takes back memory not sent.
	ReturnLent(l Lent)
}

// Lent is a FrameLender's handle on memory it lent.
type Lent struct{ v *buffer.View }
