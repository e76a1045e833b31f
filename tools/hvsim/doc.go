// Package hvsim is a simulated Hyper-V host partition: it owns a
// guest-physical memory arena, implements the hv.Platform seam for a guest
// driver stack running as an ordinary Linux process, and serves the host side
// of VMBus (docs/hyperv-protocol.md §2, §3, §4) and of the integration components
// (docs/hyperv-protocol.md §8) from goroutines that behave like the real host.
//
// hvsim is an independent implementation written from
// docs/hyperv-protocol.md. It must not import or share code with
// gohv's guest side (vmbus, drivers, kernel): the only gohv package it uses is
// hv, for the seam interfaces and hypercall status codes. That way a
// misunderstanding of the protocol cannot hide in both ends.
//
// The host is strict: whatever a real host would reject is rejected and
// recorded as a protocol violation (Host.Violations), so tests can assert that
// a guest broke no rule; among them RELID_RELEASED while a GPADL of the
// channel still exists. Where a real host simply does not act, neither does
// hvsim: it signals a blocked guest producer only when the free space comes
// to exceed the guest's pending send size (docs/hyperv-protocol.md §4.6), so a guest that
// asks for more than it needs is never woken; and like a real host it
// answers a GPADL of a channel it has rescinded with success, which the
// guest must tear down. Faults (lost interrupts, delays, busy message
// queues or any failing HvPostMessage status, malformed messages, rescinds,
// including one between GPADL_HEADER and GPADL_CREATED, full rings,
// black-holed requests) are injected through Host.Faults.
//
// hvsim/hvsimtest, a separate package that may import the guest side,
// starts a host and connects the guest's VMBus client for tests, as
// net/http/httptest does for HTTP.
//
// Integration components: Heartbeat, Shutdown, TimeSync, KVP and VSS each
// serve one util IC channel (docs/hyperv-protocol.md §8, §9.1) and offer the versions
// of the host's Profile. Time comes from Config.Clock: its wall clock is
// the time sync "parent time", its uptime the partition reference counter
// (Host.ReferenceTime), which the guest reads through the platform's
// TimeRefCount method (assert hv.Platform to
// interface{ TimeRefCount() uint64 }) the way bare metal reads the
// TIME_REF_COUNT MSR. Tests pass a *ManualClock and move time themselves.
// TimeSync, KVP and VSS also inject host faults into their next request
// (InjectFault: duplicate, out-of-order, truncated, oversized).
package hvsim
