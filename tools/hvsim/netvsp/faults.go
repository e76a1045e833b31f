package netvsp

import "sync"

// Faults are the NIC's fault-injection controls, on top of the host's
// (hvsim.Faults: delayed completions, lost interrupts, ...). All are off by
// default and safe for concurrent use.
type Faults struct {
	d *Device

	mu      sync.Mutex
	drop    int
	reorder bool
	starve  bool
}

// Faults returns the device's fault-injection controls.
func (d *Device) Faults() *Faults { return &d.faults }

// DropCompletions makes the host never answer the next n RNDIS packets the
// guest sends (no SEND_RNDIS_PACKET_COMPLETE), as if lost.
func (f *Faults) DropCompletions(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop = n
}

// ReorderCompletions swaps send completions in pairs on every queue: the
// first is held back and written after the second.
func (f *Faults) ReorderCompletions(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reorder = on
}

// StarveReceiveBuffer makes the host behave as if the guest's receive
// buffer had no free data sub-allocation: frames towards the guest are
// held (up to Config.HoldFrames per queue) and then dropped and counted.
// Turning it off releases what is held.
func (f *Faults) StarveReceiveBuffer(on bool) {
	f.mu.Lock()
	f.starve = on
	f.mu.Unlock()
	if !on && f.d != nil {
		f.d.kickAll()
	}
}

func (f *Faults) takeDrop() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drop > 0 {
		f.drop--
		return true
	}
	return false
}

func (f *Faults) reordering() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reorder
}

func (f *Faults) starving() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starve
}
