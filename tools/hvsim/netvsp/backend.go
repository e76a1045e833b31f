package netvsp

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
