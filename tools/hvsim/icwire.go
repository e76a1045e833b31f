package hvsim

// Integration-component framing (docs/hyperv-protocol.md §8.1): every in-band packet
// payload starts with an 8-byte pipe header and a 20-byte ICMSG header.
const (
	icOffPipeFlags = 0  // u32, 1 = data
	icOffPipeSize  = 4  // u32, message size after the pipe header
	icOffFwMajor   = 8  // u16
	icOffFwMinor   = 10 // u16
	icOffType      = 12 // u16
	icOffMsgMajor  = 14 // u16
	icOffMsgMinor  = 16 // u16
	icOffMsgSize   = 18 // u16, body size
	icOffStatus    = 20 // u32 HRESULT
	icOffTxID      = 24 // u8
	icOffFlags     = 25 // u8
	icOffBody      = 28

	icPipeData = 1

	icFlagTransaction = 1
	icFlagRequest     = 2
	icFlagResponse    = 4

	icTypeNegotiate = 0
	icTypeHeartbeat = 1
	icTypeShutdown  = 3

	// Negotiate body (docs/hyperv-protocol.md §8.2), offsets from the payload start.
	icOffNegFwCount  = 28
	icOffNegMsgCount = 30
	icOffNegVersions = 36

	// Heartbeat body (docs/hyperv-protocol.md §8.3): sequence u64 + 32 reserved bytes.
	icOffHeartbeatSeq = 28
	icHeartbeatBody   = 40

	// Shutdown body (docs/hyperv-protocol.md §8.4).
	icOffShutdownReason  = 28
	icOffShutdownTimeout = 32
	icOffShutdownFlags   = 36
	icOffShutdownMessage = 40
	icShutdownMessageLen = 2048
	icShutdownBody       = 12 + icShutdownMessageLen
)

// HRESULTs the IC hosts see (docs/hyperv-protocol.md §8.1).
const (
	HResultOK   uint32 = 0
	HResultFail uint32 = 0x80004005
)

// icVersion is major<<16 | minor.
func icVersion(major, minor uint16) uint32 { return uint32(major)<<16 | uint32(minor) }

// putICHeader writes the pipe and ICMSG headers of a host request.
func putICHeader(b []byte, fw, msg uint32, typ uint16, txid uint8, bodyLen int) {
	le.PutUint32(b[icOffPipeFlags:], icPipeData)
	le.PutUint32(b[icOffPipeSize:], uint32(icOffBody-8+bodyLen))
	le.PutUint16(b[icOffFwMajor:], uint16(fw>>16))
	le.PutUint16(b[icOffFwMinor:], uint16(fw))
	le.PutUint16(b[icOffType:], typ)
	le.PutUint16(b[icOffMsgMajor:], uint16(msg>>16))
	le.PutUint16(b[icOffMsgMinor:], uint16(msg))
	le.PutUint16(b[icOffMsgSize:], uint16(bodyLen))
	le.PutUint32(b[icOffStatus:], 0)
	b[icOffTxID] = txid
	b[icOffFlags] = icFlagTransaction | icFlagRequest
}
