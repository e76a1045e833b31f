// Package kernel is gohv's unikernel core. Today it owns two things: the
// driver registry, which binds drivers to VMBus channel offers by device
// class GUID (at start-up and for hot-added offers), and PowerRequests, the
// queue through which the host's shutdown and restart requests reach the
// application. The start-up sequence, clocks, console and the act of
// powering off come later.
//
// kernel holds no global state: a Registry and a PowerRequests are values,
// and a program (or a test) may create several. It does not speak any
// device protocol itself; drivers do, and the VMBus transport is package
// vmbus's.
package kernel
