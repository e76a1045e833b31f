package vss

import (
	"encoding/binary"
	"fmt"

	"github.com/gohv/gohv/drivers/ic"
)

// Message offsets from the start of the IC message (docs/hyperv-protocol.md
// §9.1; Linux include/linux/hyperv.h hv_vss_msg).
const (
	offOperation = ic.HeaderSize     // u8
	offReserved  = ic.HeaderSize + 1 // 7 bytes
	offData      = ic.HeaderSize + 8 // operation data (@36)

	// offFlags is the u32 flags field a HOT_BACKUP or GET_DM_INFO reply
	// fills in.
	offFlags = offData

	minMessage      = offData      // operation and reserved bytes
	minFlagsMessage = offFlags + 4 // room for the reply's flags
)

// Operation is the VSS operation byte (docs/hyperv-protocol.md §9.1).
type Operation uint8

// Operations, with the message version that introduced them.
const (
	OpCreate           Operation = 0
	OpDelete           Operation = 1
	OpHotBackup        Operation = 2 // check whether hot backup is supported
	OpGetDMInfo        Operation = 3 // direct-mapped devices
	OpBackupComplete   Operation = 4 // ≥ 4.0
	OpFreeze           Operation = 5 // ≥ 5.0
	OpThaw             Operation = 6 // ≥ 5.0
	OpAutoRecover      Operation = 7 // ≥ 5.0
	OpQueryClusterInfo Operation = 8 // ≥ 6.0
)

var opNames = [...]string{"create", "delete", "hot-backup", "get-dm-info", "backup-complete", "freeze", "thaw", "auto-recover", "query-cluster-info"}

// String names the operation.
func (o Operation) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("operation %d", uint8(o))
}

// since is the message version that introduced o (docs/hyperv-protocol.md
// §9.1; OpenVMM hyperv_ic_protocol vss.rs).
func (o Operation) since() ic.Version {
	switch {
	case o <= OpGetDMInfo:
		return ic.Version{Major: 1}
	case o == OpBackupComplete:
		return ic.Version{Major: 4}
	case o <= OpAutoRecover:
		return ic.Version{Major: 5}
	}
	return ic.Version{Major: 6}
}

// HotBackupFlags is gohv's answer to HOT_BACKUP: hot backup supported,
// without auto-recovery (the value Linux drivers/hv/hv_snapshot.c
// answers, VSS_HBU_NO_AUTO_RECOVERY).
const HotBackupFlags = 0x00000005

// ParseOperation reads the operation of a VSS message. msg is the whole IC
// message, already copied out of the ring.
func ParseOperation(msg []byte) (Operation, error) {
	if len(msg) < minMessage {
		return 0, fmt.Errorf("%w: VSS message of %d bytes, needs %d", ic.ErrShort, len(msg), minMessage)
	}
	return Operation(msg[offOperation]), nil
}

// putFlags writes the reply flags of HOT_BACKUP and GET_DM_INFO.
func putFlags(msg []byte, flags uint32) bool {
	if len(msg) < minFlagsMessage {
		return false
	}
	binary.LittleEndian.PutUint32(msg[offFlags:], flags)
	return true
}
