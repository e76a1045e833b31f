package hvsim

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// Wire formats of the time sync, KVP and VSS integration components
// (docs/hyperv-protocol.md §8.5, §8.6, §9.1; where the reference is silent,
// Linux include/uapi/linux/hyperv.h and OpenVMM vm/devices/hyperv_ic_protocol
// for facts). Every offset is counted from the start of the in-band packet
// payload, i.e. the pipe header is @0 and the IC body starts at icOffBody
// (@28). The state machines live in timesync.go, kvp.go and vss.go.

// IC message types (docs/hyperv-protocol.md §8.1).
const (
	icTypeKVP      = 2
	icTypeTimeSync = 4
	icTypeVSS      = 5
)

// More HRESULTs of IC replies (docs/hyperv-protocol.md §8.1).
const (
	HResultNoMoreItems        uint32 = 0x80070103 // KVP enumerate past the end
	HResultNotSupported       uint32 = 0x80070032
	HResultNotFound           uint32 = 0x80041002
	HResultInvalidArg         uint32 = 0x80070057
	HResultAlreadyExists      uint32 = 0x80070050
	HResultMachineLocked      uint32 = 0x800704F7
	HResultDeviceNotConnected uint32 = 0x8007048F
)

// Time sync (docs/hyperv-protocol.md §8.5).
const (
	tsOffParentTime = 28 // u64, 100 ns since 1601-01-01 UTC (all versions)
	// Before 4.0.
	tsOffChildTime = 36 // u64, unused
	tsOffRoundTrip = 44 // u64
	tsOffFlagsV3   = 52 // u8
	// OpenVMM's (naturally padded) body lengths; Linux declares the
	// structs packed (25 and 22 bytes) and echoes whatever length it got
	// (docs/hyperv-protocol.md §11 #17). The host sends the padded ones.
	tsBodyV3 = 28
	// 4.0.
	tsOffRefTime = 36 // u64, partition reference counter at sampling
	tsOffFlagsV4 = 44 // u8
	tsOffLeap    = 45 // u8 leap indicator
	tsOffStratum = 46 // u8
	tsBodyV4     = 24

	// fileTimeUnixEpoch is 1970-01-01 in 100 ns units since 1601-01-01.
	fileTimeUnixEpoch = 116444736000000000
)

// Time sync flags (docs/hyperv-protocol.md §8.5).
const (
	TimeSyncProbe  uint8 = 0 // no clock change
	TimeSyncSync   uint8 = 1 // step the clock (first message after boot or restore)
	TimeSyncSample uint8 = 2 // periodic sample (the guest may slew)
)

// timeSyncVersion4 is the first message version with the VM reference time.
var timeSyncVersion4 = icVersion(4, 0)

// FileTime converts t to Windows file time: 100 ns units since
// 1601-01-01 UTC, the unit of the time sync "parent time" (docs/hyperv-protocol.md §8.5).
func FileTime(t time.Time) uint64 {
	return uint64(t.Unix())*10_000_000 + uint64(t.Nanosecond()/100) + fileTimeUnixEpoch
}

// FromFileTime converts Windows file time back to a time.Time (UTC).
func FromFileTime(ft uint64) time.Time {
	u := int64(ft - fileTimeUnixEpoch)
	return time.Unix(u/10_000_000, (u%10_000_000)*100).UTC()
}

// encodeTimeSyncBody returns the body (from @28) of a time sync message of
// message version msg.
func encodeTimeSyncBody(msg uint32, parent, ref uint64, flags uint8) []byte {
	if msg >= timeSyncVersion4 {
		b := make([]byte, tsBodyV4)
		le.PutUint64(b[tsOffParentTime-icOffBody:], parent)
		le.PutUint64(b[tsOffRefTime-icOffBody:], ref)
		b[tsOffFlagsV4-icOffBody] = flags
		return b
	}
	b := make([]byte, tsBodyV3)
	le.PutUint64(b[tsOffParentTime-icOffBody:], parent)
	b[tsOffFlagsV3-icOffBody] = flags
	return b
}

// KVP (docs/hyperv-protocol.md §8.6).
const (
	kvpOffOp   = 28 // u8 operation
	kvpOffPool = 29 // u8 pool
	kvpOffBody = 32 // value operations: after the u16 pad
	kvpOffIP   = 30 // IP operations: the IP record follows op/pool directly

	// ENUMERATE: index u32, then a value record.
	kvpOffEnumIndex  = 32
	kvpOffEnumRecord = 36
	// GET / SET: a value record.
	kvpOffRecord = 32
	// DELETE: key size u32, key[512].
	kvpOffDelKeySize = 32
	kvpOffDelKey     = 36

	// Value record, offsets from its start.
	kvpRecType      = 0
	kvpRecKeySize   = 4
	kvpRecValueSize = 8
	kvpRecKey       = 12
	kvpRecValue     = 524
	kvpRecordLen    = 2572

	// KVPMaxKeySize and KVPMaxValueSize are the key and value fields'
	// sizes in bytes (UTF-16LE, NUL included).
	KVPMaxKeySize   = 512
	KVPMaxValueSize = 2048

	// Message sizes counted from @28: every value operation uses the
	// ENUMERATE size, every IP operation the IP record size.
	kvpValueBody = 2580
	kvpIPBody    = 7428

	// IP record, offsets from its start (@30).
	kvpIPAdapter   = 0    // u16[128]
	kvpIPFamily    = 256  // u8
	kvpIPDHCP      = 257  // u8
	kvpIPAddrs     = 258  // u16[1024]
	kvpIPSubnets   = 2306 // u16[1024]
	kvpIPGateways  = 4354 // u16[512]
	kvpIPDNS       = 5378 // u16[1024]
	kvpIPRecordLen = 7426

	kvpIPAdapterLen = 256
	kvpIPAddrLen    = 2048
	kvpIPGatewayLen = 1024
)

// KVP operations (docs/hyperv-protocol.md §8.6).
const (
	kvpOpGet       = 0
	kvpOpSet       = 1
	kvpOpDelete    = 2
	kvpOpEnumerate = 3
	kvpOpGetIPInfo = 4
	kvpOpSetIPInfo = 5
)

var kvpOpNames = [...]string{"GET", "SET", "DELETE", "ENUMERATE", "GET_IP_INFO", "SET_IP_INFO"}

func kvpOpName(op uint8) string {
	if int(op) < len(kvpOpNames) {
		return kvpOpNames[op]
	}
	return fmt.Sprintf("op %d", op)
}

// KVPPool is a KVP pool (docs/hyperv-protocol.md §8.6).
type KVPPool uint8

// KVP pools.
const (
	KVPPoolExternal     KVPPool = 0 // host → guest data
	KVPPoolGuest        KVPPool = 1 // guest-published
	KVPPoolAuto         KVPPool = 2 // guest intrinsic data, enumerated by the host
	KVPPoolAutoExternal KVPPool = 3 // host-provided facts
	KVPPoolAutoInternal KVPPool = 4 // never exchanged
)

// KVP value types (docs/hyperv-protocol.md §8.6, §11 #18).
const (
	KVPTypeString       uint32 = 1  // REG_SZ, UTF-16LE
	KVPTypeExpandString uint32 = 2  // REG_EXPAND_SZ
	KVPTypeDWord        uint32 = 4  // REG_DWORD
	KVPTypeU64Linux     uint32 = 8  // Linux REG_U64
	KVPTypeQWord        uint32 = 11 // REG_QWORD
)

// KVP address families of the IP record.
const (
	KVPFamilyNone uint8 = 0
	KVPFamilyIPv4 uint8 = 1
	KVPFamilyIPv6 uint8 = 2
	KVPFamilyBoth uint8 = 3
)

// errWire is wrapped by every parser error of guest replies.
var errWire = errors.New("malformed reply")

// encodeUTF16Z encodes s as NUL-terminated UTF-16LE into dst and returns
// the size in bytes, NUL included. It fails when that exceeds len(dst).
func encodeUTF16Z(dst []byte, s string) (int, error) {
	if strings.ContainsRune(s, 0) {
		return 0, fmt.Errorf("hvsim: string %q contains NUL", s)
	}
	u := utf16.Encode([]rune(s))
	n := 2 * (len(u) + 1)
	if n > len(dst) {
		return 0, fmt.Errorf("hvsim: string of %d UTF-16 bytes with NUL exceeds the %d-byte field", n, len(dst))
	}
	for i, c := range u {
		le.PutUint16(dst[2*i:], c)
	}
	le.PutUint16(dst[2*len(u):], 0)
	return n, nil
}

// decodeUTF16Z decodes UTF-16LE up to the first NUL.
func decodeUTF16Z(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := le.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// KVPRecord is one key/value pair as carried by a value record.
type KVPRecord struct {
	Type  uint32 // KVPTypeString, KVPTypeDWord, …
	Key   string
	Value string // for string types; see Raw for the others
	// Raw is the value field's first ValueSize bytes exactly as sent.
	Raw []byte
}

// putKVPRecord writes a value record at rec (kvpRecordLen bytes).
func putKVPRecord(rec []byte, typ uint32, key string, value []byte) error {
	n, err := encodeUTF16Z(rec[kvpRecKey:kvpRecKey+KVPMaxKeySize], key)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if len(value) > KVPMaxValueSize {
		return fmt.Errorf("hvsim: KVP value of %d bytes exceeds %d", len(value), KVPMaxValueSize)
	}
	le.PutUint32(rec[kvpRecType:], typ)
	le.PutUint32(rec[kvpRecKeySize:], uint32(n))
	le.PutUint32(rec[kvpRecValueSize:], uint32(len(value)))
	copy(rec[kvpRecValue:], value)
	return nil
}

// kvpStringValue encodes s as a REG_SZ value (NUL-terminated UTF-16LE).
func kvpStringValue(s string) ([]byte, error) {
	b := make([]byte, KVPMaxValueSize)
	n, err := encodeUTF16Z(b, s)
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	return b[:n], nil
}

// parseKVPRecord validates and decodes a guest-filled value record.
func parseKVPRecord(rec []byte) (KVPRecord, error) {
	if len(rec) < kvpRecordLen {
		return KVPRecord{}, fmt.Errorf("%w: value record of %d bytes, want %d", errWire, len(rec), kvpRecordLen)
	}
	typ := le.Uint32(rec[kvpRecType:])
	ks, vs := le.Uint32(rec[kvpRecKeySize:]), le.Uint32(rec[kvpRecValueSize:])
	if ks > KVPMaxKeySize || vs > KVPMaxValueSize {
		return KVPRecord{}, fmt.Errorf("%w: key size %d / value size %d over %d / %d", errWire, ks, vs, KVPMaxKeySize, KVPMaxValueSize)
	}
	if ks%2 != 0 {
		return KVPRecord{}, fmt.Errorf("%w: odd UTF-16 key size %d", errWire, ks)
	}
	r := KVPRecord{Type: typ, Key: decodeUTF16Z(rec[kvpRecKey : kvpRecKey+ks])}
	r.Raw = append([]byte(nil), rec[kvpRecValue:kvpRecValue+vs]...)
	switch typ {
	case KVPTypeString, KVPTypeExpandString:
		if vs%2 != 0 {
			return KVPRecord{}, fmt.Errorf("%w: odd UTF-16 value size %d", errWire, vs)
		}
		r.Value = decodeUTF16Z(r.Raw)
	case KVPTypeDWord:
		if vs != 4 {
			return KVPRecord{}, fmt.Errorf("%w: REG_DWORD of %d bytes", errWire, vs)
		}
		r.Value = fmt.Sprint(le.Uint32(r.Raw))
	case KVPTypeQWord, KVPTypeU64Linux:
		if vs != 8 {
			return KVPRecord{}, fmt.Errorf("%w: 64-bit value of %d bytes", errWire, vs)
		}
		r.Value = fmt.Sprint(le.Uint64(r.Raw))
	default:
		return KVPRecord{}, fmt.Errorf("%w: value type %d", errWire, typ)
	}
	return r, nil
}

// encodeKVPValueMsg returns the body (from @28, kvpValueBody bytes) of a
// GET, SET or ENUMERATE message.
func encodeKVPValueMsg(op uint8, pool KVPPool, index uint32, typ uint32, key string, value []byte) ([]byte, error) {
	b := make([]byte, kvpValueBody)
	b[kvpOffOp-icOffBody] = op
	b[kvpOffPool-icOffBody] = uint8(pool)
	switch op {
	case kvpOpEnumerate:
		le.PutUint32(b[kvpOffEnumIndex-icOffBody:], index)
	case kvpOpGet, kvpOpSet:
		if err := putKVPRecord(b[kvpOffRecord-icOffBody:], typ, key, value); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("hvsim: not a KVP value operation: %d", op)
	}
	return b, nil
}

// encodeKVPDeleteMsg returns the body of a DELETE message.
func encodeKVPDeleteMsg(pool KVPPool, key string) ([]byte, error) {
	b := make([]byte, kvpValueBody)
	b[kvpOffOp-icOffBody] = kvpOpDelete
	b[kvpOffPool-icOffBody] = uint8(pool)
	n, err := encodeUTF16Z(b[kvpOffDelKey-icOffBody:kvpOffDelKey-icOffBody+KVPMaxKeySize], key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	le.PutUint32(b[kvpOffDelKeySize-icOffBody:], uint32(n))
	return b, nil
}

// IPInfo is the KVP IP record (docs/hyperv-protocol.md §8.6, Linux struct
// hv_kvp_ipaddr_value): the lists are semicolon-separated on the wire.
type IPInfo struct {
	// AdapterID names the adapter: Hyper-V sends the MAC address
	// (GET_IP_INFO) or the adapter's id string.
	AdapterID     string
	AddressFamily uint8 // KVPFamilyNone, KVPFamilyIPv4, …
	DHCP          bool
	Addresses     []string
	Subnets       []string
	Gateways      []string
	DNS           []string
}

func putUTF16List(dst []byte, l []string, name string) error {
	if _, err := encodeUTF16Z(dst, strings.Join(l, ";")); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ";")
}

// encodeKVPIPMsg returns the body (from @28, kvpIPBody bytes) of a
// GET_IP_INFO or SET_IP_INFO message.
func encodeKVPIPMsg(op uint8, info IPInfo) ([]byte, error) {
	b := make([]byte, kvpIPBody)
	b[kvpOffOp-icOffBody] = op
	b[kvpOffPool-icOffBody] = 0
	r := b[kvpOffIP-icOffBody:]
	if _, err := encodeUTF16Z(r[kvpIPAdapter:kvpIPAdapter+kvpIPAdapterLen], info.AdapterID); err != nil {
		return nil, fmt.Errorf("adapter id: %w", err)
	}
	r[kvpIPFamily] = info.AddressFamily
	if info.DHCP {
		r[kvpIPDHCP] = 1
	}
	for _, f := range []struct {
		off, n int
		l      []string
		name   string
	}{
		{kvpIPAddrs, kvpIPAddrLen, info.Addresses, "addresses"},
		{kvpIPSubnets, kvpIPAddrLen, info.Subnets, "subnets"},
		{kvpIPGateways, kvpIPGatewayLen, info.Gateways, "gateways"},
		{kvpIPDNS, kvpIPAddrLen, info.DNS, "DNS servers"},
	} {
		if err := putUTF16List(r[f.off:f.off+f.n], f.l, f.name); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// parseKVPIPRecord decodes a guest-filled IP record (kvpIPRecordLen bytes).
func parseKVPIPRecord(r []byte) (IPInfo, error) {
	if len(r) < kvpIPRecordLen {
		return IPInfo{}, fmt.Errorf("%w: IP record of %d bytes, want %d", errWire, len(r), kvpIPRecordLen)
	}
	if r[kvpIPFamily] > KVPFamilyBoth {
		return IPInfo{}, fmt.Errorf("%w: address family %d", errWire, r[kvpIPFamily])
	}
	if r[kvpIPDHCP] > 1 {
		return IPInfo{}, fmt.Errorf("%w: DHCP flag %d", errWire, r[kvpIPDHCP])
	}
	return IPInfo{
		AdapterID:     decodeUTF16Z(r[kvpIPAdapter : kvpIPAdapter+kvpIPAdapterLen]),
		AddressFamily: r[kvpIPFamily],
		DHCP:          r[kvpIPDHCP] == 1,
		Addresses:     splitList(decodeUTF16Z(r[kvpIPAddrs : kvpIPAddrs+kvpIPAddrLen])),
		Subnets:       splitList(decodeUTF16Z(r[kvpIPSubnets : kvpIPSubnets+kvpIPAddrLen])),
		Gateways:      splitList(decodeUTF16Z(r[kvpIPGateways : kvpIPGateways+kvpIPGatewayLen])),
		DNS:           splitList(decodeUTF16Z(r[kvpIPDNS : kvpIPDNS+kvpIPAddrLen])),
	}, nil
}

// VSS (docs/hyperv-protocol.md §9.1; Linux struct hv_vss_msg: an 8-byte header, then a
// u32 of operation data).
const (
	vssOffOp    = 28 // u8 operation, then 7 reserved bytes
	vssOffData  = 36 // u32 flags (HOT_BACKUP, GET_DM_INFO)
	vssBody     = 12
	vssOpCreate = 0
	vssOpDelete = 1
	// VSS operations the host sends.
	vssOpHotBackup   = 2
	vssOpGetDMInfo   = 3
	vssOpBUComplete  = 4
	vssOpFreeze      = 5
	vssOpThaw        = 6
	vssOpAutoRecover = 7

	// VSSNoAutoRecovery is the HOT_BACKUP answer of a guest that cannot
	// auto-recover a snapshot (Linux VSS_HBU_NO_AUTO_RECOVERY).
	VSSNoAutoRecovery uint32 = 0x5
)

var vssOpNames = [...]string{"CREATE", "DELETE", "HOT_BACKUP", "GET_DM_INFO", "BU_COMPLETE", "FREEZE", "THAW", "AUTO_RECOVER"}

func vssOpName(op uint8) string {
	if int(op) < len(vssOpNames) {
		return vssOpNames[op]
	}
	return fmt.Sprintf("op %d", op)
}

// encodeVSSMsg returns the body (from @28) of a VSS request.
func encodeVSSMsg(op uint8) []byte {
	b := make([]byte, vssBody)
	b[vssOffOp-icOffBody] = op
	return b
}

// icReplyHeader is what the host checks in every IC reply's headers.
type icReplyHeader struct {
	typ     uint16
	msg     uint32 // message version
	msgSize int
	status  uint32
	// sentSize is the message size of the request (set by exchange).
	sentSize int
}

// parseICReply validates the pipe and ICMSG headers of a guest reply b
// (the payload from @0, copied out of the ring) and checks that the body
// the header claims fits.
func parseICReply(b []byte) (icReplyHeader, error) {
	if len(b) < icOffBody {
		return icReplyHeader{}, fmt.Errorf("%w: %d bytes, shorter than the IC headers", errWire, len(b))
	}
	if le.Uint32(b[icOffPipeFlags:]) != icPipeData {
		return icReplyHeader{}, fmt.Errorf("%w: pipe flags %d", errWire, le.Uint32(b[icOffPipeFlags:]))
	}
	h := icReplyHeader{
		typ:     le.Uint16(b[icOffType:]),
		msg:     icVersion(le.Uint16(b[icOffMsgMajor:]), le.Uint16(b[icOffMsgMinor:])),
		msgSize: int(le.Uint16(b[icOffMsgSize:])),
		status:  le.Uint32(b[icOffStatus:]),
	}
	if icOffBody+h.msgSize > len(b) {
		return icReplyHeader{}, fmt.Errorf("%w: message size %d in a %d-byte reply", errWire, h.msgSize, len(b))
	}
	if ps := int(le.Uint32(b[icOffPipeSize:])); 8+ps > len(b) || ps < icOffBody-8 {
		return icReplyHeader{}, fmt.Errorf("%w: pipe size %d in a %d-byte reply", errWire, ps, len(b))
	}
	if b[icOffFlags]&(icFlagTransaction|icFlagResponse) != icFlagTransaction|icFlagResponse || b[icOffFlags]&icFlagRequest != 0 {
		return icReplyHeader{}, fmt.Errorf("%w: flags %#x, want transaction|response", errWire, b[icOffFlags])
	}
	return h, nil
}

// kvpReply is a decoded KVP reply.
type kvpReply struct {
	op     uint8
	pool   KVPPool
	index  uint32
	record KVPRecord // GET, ENUMERATE with S_OK
	ip     IPInfo    // GET_IP_INFO with S_OK
}

// parseKVPReply validates a guest's KVP reply b (payload from @0) to a
// request of operation op and pool, with HRESULT status from its header.
func parseKVPReply(b []byte, op uint8, pool KVPPool, status uint32) (kvpReply, error) {
	need := icOffBody + kvpValueBody
	if op == kvpOpGetIPInfo || op == kvpOpSetIPInfo {
		need = icOffBody + kvpIPBody
	}
	if len(b) < need {
		return kvpReply{}, fmt.Errorf("%w: KVP %s reply of %d bytes, want %d", errWire, kvpOpName(op), len(b), need)
	}
	r := kvpReply{op: b[kvpOffOp], pool: KVPPool(b[kvpOffPool])}
	if r.op != op {
		return kvpReply{}, fmt.Errorf("%w: KVP reply operation %s to %s", errWire, kvpOpName(r.op), kvpOpName(op))
	}
	if op != kvpOpGetIPInfo && op != kvpOpSetIPInfo && r.pool != pool {
		return kvpReply{}, fmt.Errorf("%w: KVP reply pool %d to pool %d", errWire, r.pool, pool)
	}
	if status != HResultOK {
		return r, nil
	}
	var err error
	switch op {
	case kvpOpEnumerate:
		r.index = le.Uint32(b[kvpOffEnumIndex:])
		r.record, err = parseKVPRecord(b[kvpOffEnumRecord:])
	case kvpOpGet:
		r.record, err = parseKVPRecord(b[kvpOffRecord:])
	case kvpOpGetIPInfo:
		r.ip, err = parseKVPIPRecord(b[kvpOffIP:])
	}
	return r, err
}

// parseVSSReply validates a guest's VSS reply to operation op and returns
// its operation data (flags).
func parseVSSReply(b []byte, op uint8) (flags uint32, err error) {
	if len(b) < icOffBody+vssBody {
		return 0, fmt.Errorf("%w: VSS reply of %d bytes, want %d", errWire, len(b), icOffBody+vssBody)
	}
	if b[vssOffOp] != op {
		return 0, fmt.Errorf("%w: VSS reply operation %s to %s", errWire, vssOpName(b[vssOffOp]), vssOpName(op))
	}
	return le.Uint32(b[vssOffData:]), nil
}
