package scsi

import "strconv"

// Status is a SCSI status byte (SAM-5 §5.3).
type Status uint8

// Status values.
const (
	StatusGood                Status = 0x00
	StatusCheckCondition      Status = 0x02
	StatusConditionMet        Status = 0x04
	StatusBusy                Status = 0x08
	StatusReservationConflict Status = 0x18
	StatusTaskSetFull         Status = 0x28
	StatusACAActive           Status = 0x30
	StatusTaskAborted         Status = 0x40
)

func (s Status) String() string {
	switch s {
	case StatusGood:
		return "good"
	case StatusCheckCondition:
		return "check condition"
	case StatusConditionMet:
		return "condition met"
	case StatusBusy:
		return "busy"
	case StatusReservationConflict:
		return "reservation conflict"
	case StatusTaskSetFull:
		return "task set full"
	case StatusACAActive:
		return "ACA active"
	case StatusTaskAborted:
		return "task aborted"
	}
	return "status 0x" + strconv.FormatUint(uint64(s), 16)
}

// SenseKey is the 4-bit sense key (SPC-4 §4.5.6).
type SenseKey uint8

// Sense keys.
const (
	KeyNoSense        SenseKey = 0x0
	KeyRecoveredError SenseKey = 0x1
	KeyNotReady       SenseKey = 0x2
	KeyMediumError    SenseKey = 0x3
	KeyHardwareError  SenseKey = 0x4
	KeyIllegalRequest SenseKey = 0x5
	KeyUnitAttention  SenseKey = 0x6
	KeyDataProtect    SenseKey = 0x7
	KeyBlankCheck     SenseKey = 0x8
	KeyVendorSpecific SenseKey = 0x9
	KeyCopyAborted    SenseKey = 0xA
	KeyAbortedCommand SenseKey = 0xB
	KeyVolumeOverflow SenseKey = 0xD
	KeyMiscompare     SenseKey = 0xE
	KeyCompleted      SenseKey = 0xF
)

var keyNames = [16]string{"no sense", "recovered error", "not ready", "medium error",
	"hardware error", "illegal request", "unit attention", "data protect", "blank check",
	"vendor specific", "copy aborted", "aborted command", "reserved", "volume overflow",
	"miscompare", "completed"}

func (k SenseKey) String() string { return keyNames[k&0xF] }

// Additional sense codes the drivers act on (SPC-4 Annex D).
const (
	ASCInvalidOpcode         = 0x20
	ASCInvalidFieldInCDB     = 0x24
	ASCLUNNotSupported       = 0x25
	ASCPowerOnReset          = 0x29
	ASCParametersChanged     = 0x2A // ASCQ 0x09: capacity data has changed
	ASCQCapacityChanged      = 0x09
	ASCOperatingCondsChanged = 0x3F // ASCQ 0x0E: reported LUNs data has changed
	ASCQReportedLUNsChanged  = 0x0E
	ASCWriteProtected        = 0x27
	ASCMediumNotPresent      = 0x3A
)
