package storvsp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gohv/gohv/tools/hvsim"
)

// This file holds the VSTOR wire format (docs/hyperv-protocol.md §6): the
// constants, the named offsets and the encoders/decoders of vstor_packet.
// It has no state; storvsp.go holds the state machine.

var le = binary.LittleEndian

// Interface GUIDs (docs/hyperv-protocol.md §5).
var (
	ClassSCSI = hvsim.MustParseGUID("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f")
	ClassIDE  = hvsim.MustParseGUID("32412632-86cb-44a2-9b5c-50d1417354f5")
)

// VSTOR protocol versions, major<<8 | minor (§6.1).
const (
	VersionWin6  uint16 = 0x0200
	VersionWin7  uint16 = 0x0402
	VersionWin8  uint16 = 0x0501
	VersionBlue  uint16 = 0x0600
	VersionWin10 uint16 = 0x0602
)

// Operations (§6.2).
const (
	opCompleteIO         = 1
	opRemoveDevice       = 2
	opExecuteSRB         = 3
	opResetLUN           = 4
	opResetAdapter       = 5
	opResetBus           = 6
	opBeginInit          = 7
	opEndInit            = 8
	opQueryVersion       = 9
	opQueryProperties    = 10
	opEnumerateBus       = 11
	opFCHBAData          = 12
	opCreateSubChannels  = 13
	opEventNotification  = 14
	vstorFlagRequestComp = 1 // vstor_packet.flags bit 0
)

// vstor_packet offsets (§6.3).
const (
	pktOffOperation = 0
	pktOffFlags     = 4
	pktOffStatus    = 8
	pktOffUnion     = 12

	// vmscsi_request, from the packet start (12 + the §6.3 offset).
	srbOffLength       = pktOffUnion + 0
	srbOffSRBStatus    = pktOffUnion + 2
	srbOffSCSIStatus   = pktOffUnion + 3
	srbOffPort         = pktOffUnion + 4
	srbOffPath         = pktOffUnion + 5
	srbOffTarget       = pktOffUnion + 6
	srbOffLUN          = pktOffUnion + 7
	srbOffCDBLength    = pktOffUnion + 8
	srbOffSenseLength  = pktOffUnion + 9
	srbOffDataIn       = pktOffUnion + 10
	srbOffTransferLen  = pktOffUnion + 12
	srbOffCDB          = pktOffUnion + 16 // CDB in, sense data out
	srbOffSRBFlags     = pktOffUnion + 40 // Win8 extension
	srbCDBMax          = 16
	senseBufWin8       = 0x14
	senseBufPreWin8    = 0x12
	srbLenWin8         = 0x34
	srbLenPreWin8      = 0x24
	packetSizeWin8     = pktOffUnion + srbLenWin8    // 64
	packetSizePreWin8  = pktOffUnion + srbLenPreWin8 // 48
	propOffMaxSubChans = pktOffUnion + 4             // u16
	propOffFlags       = pktOffUnion + 8             // u32
	propOffMaxTransfer = pktOffUnion + 12            // u32
	verOffMajorMinor   = pktOffUnion + 0             // u16
	verOffRevision     = pktOffUnion + 2             // u16
	subOffCount        = pktOffUnion + 0             // u16

	propFlagMultiChannel = 1
)

// data_in values (§6.3).
const (
	dataOut  = 0 // write: host reads guest memory
	dataIn   = 1 // read: host writes guest memory
	dataNone = 2
)

// SRB status codes (§6.5) and the flag bits of the status byte.
const (
	SRBSuccess        = 0x01
	SRBAborted        = 0x02
	SRBError          = 0x04
	SRBBusy           = 0x05
	SRBInvalidRequest = 0x06
	SRBDataOverrun    = 0x12
	SRBInvalidLUN     = 0x20
	SRBAutosenseValid = 0x80
)

// SCSI status bytes (§6.5).
const (
	SCSIGood           = 0x00
	SCSICheckCondition = 0x02
	SCSIBusy           = 0x08
	SCSITaskSetFull    = 0x28
)

// vstor_packet.status NTSTATUS values (§6.5).
const (
	statusSuccess            = 0x00000000
	statusBufferOverflow     = 0x80000005
	statusDeviceBusy         = 0x80000011
	statusUnsuccessful       = 0xC0000001
	statusInvalidParameter   = 0xC000000D
	statusInvalidDevRequest  = 0xC0000010
	statusRevisionMismatch   = 0xC0000059
	statusDeviceNotExist     = 0xC00000C0
	statusCancelled          = 0xC0000120
	statusInvalidDeviceState = 0xC0000184
	statusIODeviceError      = 0xC0000185
)

// IDE offer user data (§6.3, last paragraph).
const (
	ideOffPath    = 2
	ideOffTarget  = 3
	ideOffFlags   = 8
	ideFlagDevice = 0x2
)

// VMBus packet types the device sends (§4.4).
const (
	pktDataInband  = 0x6
	pktGPADirect   = 0x9
	pktCompletion  = 0xB
	pktFlagRequest = 1 // descriptor flag: completion requested (§4.3)
)

// Errors of guest packets. Each recorded violation wraps ErrProtocol and
// one of the more precise sentinels.
var (
	ErrProtocol = errors.New("storvsp: VSTOR protocol violation")
	// ErrNotRunning is returned by the fault and hot-plug API when the
	// device has no open primary channel.
	ErrNotRunning = errors.New("storvsp: controller not running")
	// ErrAddress says a LUN address is taken (Attach) or empty (Detach),
	// or outside what the controller supports.
	ErrAddress = errors.New("storvsp: bad LUN address")
)

// srbRequest is the decoded part of a guest's vmscsi_request the host
// uses.
type srbRequest struct {
	path, target, lun byte
	cdbLen            byte
	senseLen          byte
	dataIn            byte
	transferLen       uint32
	srbFlags          uint32
	cdb               [srbCDBMax]byte
}

// decodeSRB copies the request out of payload (which the caller already
// copied out of the ring) and checks what a host must: length for the
// version, CDB length and direction. srbLen is the vmscsi_request size of
// the negotiated version.
func decodeSRB(payload []byte, srbLen int) (srbRequest, error) {
	var r srbRequest
	if len(payload) < pktOffUnion+srbLen {
		return r, fmt.Errorf("%w: EXECUTE_SRB of %d bytes, want %d", ErrProtocol, len(payload), pktOffUnion+srbLen)
	}
	r.path, r.target, r.lun = payload[srbOffPath], payload[srbOffTarget], payload[srbOffLUN]
	r.cdbLen = payload[srbOffCDBLength]
	r.senseLen = payload[srbOffSenseLength]
	r.dataIn = payload[srbOffDataIn]
	r.transferLen = le.Uint32(payload[srbOffTransferLen:])
	if srbLen == srbLenWin8 {
		r.srbFlags = le.Uint32(payload[srbOffSRBFlags:])
	}
	copy(r.cdb[:], payload[srbOffCDB:srbOffCDB+srbCDBMax])
	switch {
	case r.cdbLen == 0 || r.cdbLen > srbCDBMax:
		return r, fmt.Errorf("%w: CDB length %d", ErrProtocol, r.cdbLen)
	case r.dataIn > dataNone:
		return r, fmt.Errorf("%w: data_in %d", ErrProtocol, r.dataIn)
	case r.dataIn == dataNone && r.transferLen != 0:
		return r, fmt.Errorf("%w: data_in none with %d bytes", ErrProtocol, r.transferLen)
	}
	clear(r.cdb[r.cdbLen:])
	return r, nil
}

// putHeader writes the 12-byte vstor_packet header.
func putHeader(b []byte, op, status uint32) {
	le.PutUint32(b[pktOffOperation:], op)
	le.PutUint32(b[pktOffFlags:], 0)
	le.PutUint32(b[pktOffStatus:], status)
}

// encodeSRBCompletion fills b (12 + srbLen bytes) with COMPLETE_IO for
// request r: the request's addressing echoed, then the out fields.
func encodeSRBCompletion(b []byte, r *srbRequest, srbLen int, res *result) {
	clear(b)
	putHeader(b, opCompleteIO, ntStatus(res.srb))
	le.PutUint16(b[srbOffLength:], uint16(srbLen))
	st := res.srb
	if res.senseLen > 0 {
		st |= SRBAutosenseValid
	}
	b[srbOffSRBStatus] = st
	b[srbOffSCSIStatus] = res.scsi
	b[srbOffPath], b[srbOffTarget], b[srbOffLUN] = r.path, r.target, r.lun
	b[srbOffCDBLength] = r.cdbLen
	senseBuf := senseBufWin8
	if srbLen == srbLenPreWin8 {
		senseBuf = senseBufPreWin8
	}
	if res.senseLen > 0 {
		n := copy(b[srbOffCDB:srbOffCDB+senseBuf], res.sense[:res.senseLen])
		b[srbOffSenseLength] = byte(n)
	} else {
		b[srbOffSenseLength] = byte(senseBuf)
	}
	b[srbOffDataIn] = r.dataIn
	le.PutUint32(b[srbOffTransferLen:], res.transferred)
	if srbLen == srbLenWin8 {
		le.PutUint32(b[srbOffSRBFlags:], r.srbFlags)
	}
}

// ntStatus maps an SRB status code to the vstor_packet status, as OpenVMM's
// storvsp does.
func ntStatus(srb byte) uint32 {
	switch srb &^ (SRBAutosenseValid | 0x40) {
	case SRBSuccess:
		return statusSuccess
	case SRBBusy:
		return statusDeviceBusy
	case SRBInvalidLUN, 0x21, 0x08, 0x11: // invalid LUN/target, no device, no HBA
		return statusDeviceNotExist
	case SRBDataOverrun:
		return statusBufferOverflow
	case SRBAborted:
		return statusCancelled
	case 0x22, 0x15: // bad function, bad SRB block length
		return statusInvalidDevRequest
	case 0x16: // request flushed
		return statusUnsuccessful
	}
	return statusIODeviceError
}

// offerUserData encodes the IDE accelerator offer's user data.
func ideUserData(path, target uint8) [120]byte {
	var u [120]byte
	u[ideOffPath] = path
	u[ideOffTarget] = target
	le.PutUint32(u[ideOffFlags:], ideFlagDevice)
	return u
}
