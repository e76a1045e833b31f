package storvsc

// The driver's disks are block devices of package drivers/block; these
// aliases keep the names the driver was written with.

import (
	"github.com/gohv/gohv/drivers/block"
	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus"
)

type (
	// Info describes a block device.
	Info = block.Info
	// Device is a block device.
	Device = block.Device
	// Op is a block request's operation.
	Op = block.Op
	// Request is an asynchronous block request.
	Request = block.Request
	// Submitter is a Device that also takes asynchronous requests.
	Submitter = block.Submitter
	// IOError is a failed request.
	IOError = block.IOError
	// Channel is the part of a VMBus channel the driver uses.
	Channel = vmbus.DriverChannel
	// PhysTranslator is implemented by memory the host can reach directly.
	PhysTranslator = hv.PhysTranslator
)

// Operations.
const (
	OpRead    = block.OpRead
	OpWrite   = block.OpWrite
	OpFlush   = block.OpFlush
	OpDiscard = block.OpDiscard
)

// Block-layer errors.
var (
	ErrReadOnly     = block.ErrReadOnly
	ErrNotSupported = block.ErrNotSupported
	ErrRemoved      = block.ErrRemoved
	ErrOutOfRange   = block.ErrOutOfRange
	ErrUnaligned    = block.ErrUnaligned
)
