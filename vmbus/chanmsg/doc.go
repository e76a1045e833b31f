// Package chanmsg holds the wire definitions of the VMBus channel messages
// (docs/hyperv-protocol.md §3): their type numbers, sizes and field offsets, encoders that
// write into a caller-provided buffer without allocating, and decoders that
// validate host-supplied bytes and return errors instead of panicking. It
// also defines the protocol Version and the Windows-order GUID type with the
// table of device class GUIDs (docs/hyperv-protocol.md §5).
//
// chanmsg owns no state and performs no I/O: the state machines that send and
// receive these messages live in package vmbus. Messages travel as SynIC
// message payloads and never exceed MaxSize (240) bytes.
package chanmsg
