// Package storvsp is the host side of Hyper-V synthetic storage for hvsim:
// a StorVSP device serving the VSTOR protocol (docs/hyperv-protocol.md §6)
// over VMBus channels, with a SCSI direct-access target behind it.
//
// It owns the VSTOR wire format as the host sees it (wire.go), the
// controller state machine and channels (storvsp.go, channel.go), the SCSI
// target emulation (scsi.go), the LUN backing stores and a write-back
// cache model (store.go, lun.go) and fault injection (faults.go).
//
// Like hvsim it is an independent implementation written from the
// reference, with OpenVMM's storvsp read for facts where the reference is
// silent. It must not import gohv's guest side (vmbus, drivers, kernel):
// only hv, hvsim and tools/image.
//
// # Controller
//
// New(Config) makes a SCSI controller or an IDE accelerator; Host.AddDevice
// offers it. The guest's primary channel negotiates (BEGIN_INITIALIZATION,
// QUERY_PROTOCOL_VERSION, QUERY_PROPERTIES, optionally CREATE_SUB_CHANNELS,
// END_INITIALIZATION); the versions accepted are those of the host's
// profile unless Config.Versions names them. Every completion is as long as
// the request it answers, capped at 64 bytes, which is what Hyper-V does.
// Sub-channels are offered through Host.AddSubChannels and serve
// EXECUTE_SRB like the primary.
//
// # Hot plug
//
// Attach and Detach work at any time. Once the guest finished
// initialization (VSTOR 4.2 or later), Attach sends ENUMERATE_BUS and
// Detach REMOVE_DEVICE on the primary channel: unsolicited in-band packets
// with transaction id 0 (§6.2). Linux and FreeBSD rescan on either; OpenVMM
// sends ENUMERATE_BUS for both, so a guest must treat both the same. SRBs
// to a detached LUN complete with SRB status INVALID LUN.
//
// # Strictness
//
// A guest packet that breaks the protocol (wrong packet type, no completion
// requested, short packet, operation out of order, malformed SRB or
// GPA-direct header, transfer larger than the range or than MaxTransfer)
// is recorded with Host.RecordViolation, wrapping ErrProtocol, and answered
// with an error status when it asked for an answer. Nothing panics.
//
// # Durability model
//
// A LUN with LUNConfig.WriteCache keeps completed writes in a volatile cache
// until SYNCHRONIZE CACHE (or a FUA write) writes them to the store and
// syncs it. Crash discards the cache and stops the controller answering,
// so a test that reopens the store after Crash sees exactly the writes the
// guest made durable.
//
// # Concurrency
//
// Each open channel is served by its own goroutine, which runs requests
// to completion one at a time; the API (Attach, Detach, faults, Crash,
// Stats) may be called from any goroutine. The goroutine drains the
// guest's ring with the guest's signals masked and keeps polling it for
// 10 µs after the last packet before it unmasks (re-checking the ring,
// docs/hyperv-protocol.md §4.6) and sleeps, as a host with processors of
// its own would see a stream of requests without a signal per batch.
// Reads and writes move data straight between the store and guest memory
// when the GPA-direct range is contiguous there (Host.PageRangeBytes), and
// through a per-channel buffer otherwise.
package storvsp
