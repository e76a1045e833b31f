// Package storvsc is gohv's guest driver for Hyper-V synthetic storage:
// the SCSI controller and the IDE accelerator (docs/hyperv-protocol.md §6,
// the VSTOR protocol). It negotiates the protocol (6.2 down to 2.0), opens
// sub-channels, scans targets and LUNs, and exposes every direct-access
// LUN as a Disk implementing the block-layer contract (Device and
// Submitter).
//
// Layout: wire.go holds the VSTOR packet format (named offsets, encode and
// decode); controller.go the set-up state machine (init sequence,
// sub-channels, rescind, close); queue.go the per-channel I/O engine
// (request slots, completions, retries, timeouts, resets); scan.go
// discovery; disk.go the block device. SCSI CDBs and response parsing are
// package drivers/scsi.
//
// Data path: a read or write is one or more EXECUTE_SRB packets of type
// GPA-direct (§4.5, one range), split at the host's maximum transfer. When
// Config.Memory implements PhysTranslator and translates the caller's
// buffer, the PFN list points at the caller's pages (zero copy); otherwise
// the data goes through the request slot's bounce buffer, allocated once.
// Each channel has a fixed number of request slots (the queue depth,
// bounded by the ring), so an I/O allocates nothing.
//
// Concurrency: each channel's completions are handled on that channel's
// dispatch goroutine (OpenConfig.OnInterrupt), where Request.Done runs.
// While requests are at the host that goroutine keeps polling for
// completions, with the channel's interrupt masked, for Config.PollTime
// after the last one (yielding the processor between looks), then
// unmasks and re-checks the ring before it returns (docs/hyperv-protocol.md
// §4.6).
// Timeouts and back-off retries run on timer goroutines; a rescind is
// handled on a watcher goroutine that fails every outstanding request with
// ErrRemoved. Scans (Attach, Rescan, and automatic rescans after
// ENUMERATE_BUS, REMOVE_DEVICE or a capacity / LUN-inventory unit
// attention) run one at a time and report disks through Config.OnEvent.
//
// The host is untrusted: every host packet is length-checked before use,
// transaction ids are matched against the slot's generation, transfer
// lengths and sense lengths are bounded by what was asked. The package
// owns no VMBus machinery (rings, GPADLs, signalling belong to vmbus) and
// no block-layer policy (registry, partitions belong to drivers/block).
package storvsc
