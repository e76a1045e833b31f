package kvp

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"

	"github.com/gohv/gohv/drivers/ic"
)

// Message offsets from the start of the IC message (docs/hyperv-protocol.md
// §8.6).
const (
	offOperation = ic.HeaderSize     // u8
	offPool      = ic.HeaderSize + 1 // u8
	offBody      = ic.HeaderSize + 4 // value, delete and enumerate bodies, after u16 padding
	offIPBody    = ic.HeaderSize + 2 // IP record: packed, no padding

	// GET and SET: a value record at offBody.
	offGetSetRecord = offBody
	// DELETE: key size u32, key[KeyMax].
	offDeleteKeySize = offBody
	offDeleteKey     = offBody + 4
	// ENUMERATE: index u32, then a value record.
	offEnumIndex  = offBody
	offEnumRecord = offBody + 4

	minGetSet    = offGetSetRecord + RecordSize
	minDelete    = offDeleteKey + KeyMax
	minEnumerate = offEnumRecord + RecordSize
	minIP        = offIPBody + IPRecordSize
)

// Value record layout, relative to its start (docs/hyperv-protocol.md
// §8.6).
const (
	recValueType = 0   // u32
	recKeySize   = 4   // u32, bytes including the NUL
	recValueSize = 8   // u32, bytes
	recKey       = 12  // KeyMax bytes, UTF-16LE
	recValue     = 524 // ValueMax bytes

	// RecordSize is the size of a value record.
	RecordSize = recValue + ValueMax

	// KeyMax and ValueMax are the key and value fields' sizes in bytes:
	// a key holds at most KeyMax/2-1 UTF-16 code units plus its NUL.
	KeyMax   = 512
	ValueMax = 2048
)

// IP record layout, relative to its start at offIPBody
// (docs/hyperv-protocol.md §8.6; Linux include/uapi/linux/hyperv.h
// hv_kvp_ipaddr_value).
const (
	ipAdapterID = 0    // 128 UTF-16 code units
	ipFamily    = 256  // u8
	ipDHCP      = 257  // u8
	ipAddresses = 258  // 1024 code units
	ipSubnets   = 2306 // 1024 code units
	ipGateways  = 4354 // 512 code units
	ipDNS       = 5378 // 1024 code units

	adapterIDSize = ipFamily - ipAdapterID
	addressesSize = ipSubnets - ipAddresses
	subnetsSize   = ipGateways - ipSubnets
	gatewaysSize  = ipDNS - ipGateways
	dnsSize       = IPRecordSize - ipDNS

	// IPRecordSize is the size of the IP record.
	IPRecordSize = 7426
)

// Operation is the KVP operation byte (docs/hyperv-protocol.md §8.6).
type Operation uint8

// Operations.
const (
	OpGet       Operation = 0
	OpSet       Operation = 1
	OpDelete    Operation = 2
	OpEnumerate Operation = 3
	OpGetIPInfo Operation = 4
	OpSetIPInfo Operation = 5
)

var opNames = [...]string{"get", "set", "delete", "enumerate", "get-ip-info", "set-ip-info"}

// String names the operation.
func (o Operation) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("operation %d", uint8(o))
}

// Pool is a KVP pool (docs/hyperv-protocol.md §8.6).
type Pool uint8

// Pools.
const (
	// PoolExternal holds data the host sends the guest.
	PoolExternal Pool = 0
	// PoolGuest holds data guest applications publish for the host.
	PoolGuest Pool = 1
	// PoolAuto holds the guest's intrinsic data, which the host
	// enumerates.
	PoolAuto Pool = 2
	// PoolAutoExternal holds facts the host provides, such as its name.
	PoolAutoExternal Pool = 3
	// PoolAutoInternal is never exchanged with the host.
	PoolAutoInternal Pool = 4

	numPools = 5
)

var poolNames = [...]string{"external", "guest", "auto", "auto-external", "auto-internal"}

// String names the pool.
func (p Pool) String() string {
	if int(p) < len(poolNames) {
		return poolNames[p]
	}
	return fmt.Sprintf("pool %d", uint8(p))
}

// ValueType is a value's registry type (docs/hyperv-protocol.md §8.6).
type ValueType uint32

// Value types. Linux sends 8 for a u64 where Windows uses 11; both are
// read as a QWORD.
const (
	TypeString       ValueType = 1  // REG_SZ, UTF-16LE with NUL
	TypeExpandString ValueType = 2  // REG_EXPAND_SZ
	TypeDWORD        ValueType = 4  // REG_DWORD, u32
	TypeQWORDLinux   ValueType = 8  // Linux's REG_U64
	TypeQWORD        ValueType = 11 // REG_QWORD, u64
)

// Address families of the IP record.
const (
	familyNone = 0
	familyIPv4 = 1
	familyIPv6 = 2
)

// Header is the operation and pool of a KVP message.
type Header struct {
	Operation Operation
	Pool      Pool
}

// ParseHeader reads the operation and pool and checks that msg holds the
// whole body the operation needs. msg is the IC message, already copied
// out of the ring.
func ParseHeader(msg []byte) (Header, error) {
	h, need := parseHeader(msg)
	switch {
	case need == 0:
		return h, nil
	case need < 0:
		return h, fmt.Errorf("%w: %v", ErrOperation, h.Operation)
	}
	return h, fmt.Errorf("%w: KVP %v of %d bytes, needs %d", ic.ErrShort, h.Operation, len(msg), need)
}

// parseHeader is ParseHeader without an error value, for the handler: need
// is 0 if msg is complete, the bytes it needs if short, -1 for an unknown
// operation.
func parseHeader(msg []byte) (h Header, need int) {
	if len(msg) < offBody {
		return Header{}, offBody
	}
	h = Header{Operation: Operation(msg[offOperation]), Pool: Pool(msg[offPool])}
	switch h.Operation {
	case OpGet, OpSet:
		need = minGetSet
	case OpDelete:
		need = minDelete
	case OpEnumerate:
		need = minEnumerate
	case OpGetIPInfo, OpSetIPInfo:
		need = minIP
	default:
		return h, -1
	}
	if len(msg) >= need {
		need = 0
	}
	return h, need
}

// key validates a key field (sentinel errors only: the handler must not
// allocate even for malformed messages) of size bytes (NUL included) and returns its
// code units up to the first NUL, as raw UTF-16LE bytes aliasing field.
func key(field []byte, size uint32) ([]byte, error) {
	if size == 0 || size > KeyMax || size%2 != 0 {
		return nil, ErrKey
	}
	k := trimNUL(field[:size])
	if len(k) == 0 || len(k) > KeyMax-2 {
		return nil, ErrKey
	}
	return k, nil
}

// trimNUL cuts UTF-16LE text b at its first NUL code unit.
func trimNUL(b []byte) []byte {
	for i := 0; i+1 < len(b); i += 2 {
		if b[i] == 0 && b[i+1] == 0 {
			return b[:i]
		}
	}
	return b[:len(b)&^1]
}

// record is a validated view of a value record.
type record struct {
	typ   ValueType
	key   []byte // UTF-16LE, no NUL
	value []byte // value bytes as sent
}

// parseRecord validates the value record at rec. A GET carries only the
// key; withValue also checks the value.
func parseRecord(rec []byte, withValue bool) (record, error) {
	le := binary.LittleEndian
	k, err := key(rec[recKey:recKey+KeyMax], le.Uint32(rec[recKeySize:]))
	if err != nil {
		return record{}, err
	}
	r := record{typ: ValueType(le.Uint32(rec[recValueType:])), key: k}
	if !withValue {
		return r, nil
	}
	size := le.Uint32(rec[recValueSize:])
	if size > ValueMax {
		return record{}, ErrValue
	}
	r.value = rec[recValue : recValue+size]
	switch r.typ {
	case TypeString, TypeExpandString:
	case TypeDWORD:
		if size < 4 {
			return record{}, ErrValue
		}
	case TypeQWORD, TypeQWORDLinux:
		if size < 8 {
			return record{}, ErrValue
		}
	default:
		return record{}, ErrValue
	}
	return r, nil
}

// putRecordValue writes a value into the record at rec, clearing the rest
// of the value field.
func putRecordValue(rec []byte, typ ValueType, value []byte) {
	le := binary.LittleEndian
	le.PutUint32(rec[recValueType:], uint32(typ))
	le.PutUint32(rec[recValueSize:], uint32(len(value)))
	n := copy(rec[recValue:recValue+ValueMax], value)
	clear(rec[recValue+n : recValue+ValueMax])
}

// putRecordKey writes key (UTF-16LE without NUL) and its NUL.
func putRecordKey(rec []byte, k []byte) {
	n := copy(rec[recKey:recKey+KeyMax-2], k)
	clear(rec[recKey+n : recKey+KeyMax])
	binary.LittleEndian.PutUint32(rec[recKeySize:], uint32(n+2))
}

// utf16Writer writes text as UTF-16LE into a fixed field, always leaving
// room for a NUL; text that does not fit is dropped whole (per item) and
// flagged.
type utf16Writer struct {
	b         []byte
	n         int
	truncated bool
}

// writeItem appends text (UTF-8), preceded by sep if the field is not
// empty and sep is not 0. It reports whether the item fit.
func writeItem[T string | []byte](w *utf16Writer, text T, sep byte) bool {
	need := 0
	for _, r := range string(text) {
		need += 2 * utf16.RuneLen(r)
	}
	if w.n > 0 && sep != 0 {
		need += 2
	}
	if w.n+need > len(w.b)-2 {
		w.truncated = true
		return false
	}
	if w.n > 0 && sep != 0 {
		w.unit(uint16(sep))
	}
	for _, r := range string(text) {
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			w.unit(uint16(r1))
			w.unit(uint16(r2))
		} else {
			w.unit(uint16(r))
		}
	}
	return true
}

func (w *utf16Writer) unit(u uint16) {
	binary.LittleEndian.PutUint16(w.b[w.n:], u)
	w.n += 2
}

// finish writes the NUL, clears the rest of the field and returns the
// bytes used including the NUL.
func (w *utf16Writer) finish() int {
	clear(w.b[w.n:])
	return w.n + 2
}

// decodeUTF16 returns UTF-16LE text b (no NUL) as a string.
func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// equalASCII reports whether UTF-16LE text b is exactly ASCII string s.
func equalASCII(b []byte, s string) bool {
	if len(b) != 2*len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b[2*i] != s[i] || b[2*i+1] != 0 {
			return false
		}
	}
	return true
}

// encodeUTF16 returns s as UTF-16LE without NUL, or false if it is empty,
// contains a NUL or needs more than max bytes.
func encodeUTF16(s string, max int) ([]byte, bool) {
	if s == "" {
		return nil, false
	}
	b := make([]byte, 0, 2*len(s))
	for _, r := range s {
		if r == 0 {
			return nil, false
		}
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			b = binary.LittleEndian.AppendUint16(b, uint16(r1))
			b = binary.LittleEndian.AppendUint16(b, uint16(r2))
		} else {
			b = binary.LittleEndian.AppendUint16(b, uint16(r))
		}
		if len(b) > max {
			return nil, false
		}
	}
	return b, true
}
