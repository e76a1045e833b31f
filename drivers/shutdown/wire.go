package shutdown

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/gohv/gohv/drivers/ic"
)

// Body offsets from the start of the IC message (reference §8.4).
const (
	offReason  = ic.HeaderSize      // u32 reason code
	offTimeout = ic.HeaderSize + 4  // u32 timeout in seconds
	offFlags   = ic.HeaderSize + 8  // u32 flags
	offMessage = ic.HeaderSize + 12 // display message, up to messageMax bytes
	messageMax = 2048

	// minMessage is the shortest shutdown message gohv accepts: the
	// display message is optional, the flags are not.
	minMessage = offMessage
)

// Flag bits at offset 36 (reference §8.4).
const (
	flagForce     = 1 << 0
	flagRestart   = 1 << 1
	flagHibernate = 1 << 2
)

// ReasonPlanned is the planned-shutdown bit of the reason code (reference
// §8.4, from OpenVMM).
const ReasonPlanned = 0x80000000

// Kind is what the host asks the guest to do.
type Kind uint8

// Kinds of power request (reference §8.4).
const (
	PowerOff Kind = iota
	Reboot
	Hibernate
)

// String returns "power-off", "reboot" or "hibernate".
func (k Kind) String() string {
	switch k {
	case PowerOff:
		return "power-off"
	case Reboot:
		return "reboot"
	case Hibernate:
		return "hibernate"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Request is a host's shutdown request as the kernel receives it.
type Request struct {
	Kind Kind
	// Force: the host asks the guest not to wait for applications.
	Force bool
	// Reason is the host's reason code (Windows SHTDN_REASON_*).
	Reason uint32
	// Timeout is the time the host allows the guest to comply.
	Timeout time.Duration
	// Message is the host's display text, possibly empty.
	Message string
}

// ErrFlags reports a flags value that names no known request.
var ErrFlags = errors.New("shutdown: unknown flags")

// ParseRequest decodes the body of a shutdown message (reference §8.4). msg
// is the whole IC message, already copied out of the ring. Like Linux, it
// accepts exactly the flag values 0–5; anything else is ErrFlags.
func ParseRequest(msg []byte) (Request, error) {
	if len(msg) < minMessage {
		return Request{}, fmt.Errorf("%w: shutdown message of %d bytes, needs %d", ic.ErrShort, len(msg), minMessage)
	}
	le := binary.LittleEndian
	flags := le.Uint32(msg[offFlags:])
	var kind Kind
	switch flags &^ flagForce {
	case 0:
		kind = PowerOff
	case flagRestart:
		kind = Reboot
	case flagHibernate:
		kind = Hibernate
	default:
		return Request{}, fmt.Errorf("%w: %#x", ErrFlags, flags)
	}
	return Request{
		Kind:    kind,
		Force:   flags&flagForce != 0,
		Reason:  le.Uint32(msg[offReason:]),
		Timeout: time.Duration(le.Uint32(msg[offTimeout:])) * time.Second,
		Message: displayMessage(msg[offMessage:min(len(msg), offMessage+messageMax)]),
	}, nil
}

// displayMessage decodes the NUL-terminated display text. Its encoding is
// not specified (OpenVMM declares it as bytes; Windows hosts write UTF-16),
// so text whose second byte is NUL is read as UTF-16LE and anything else as
// UTF-8; invalid sequences become U+FFFD.
func displayMessage(b []byte) string {
	if len(b) >= 2 && b[0] != 0 && b[1] == 0 {
		u := make([]uint16, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			c := binary.LittleEndian.Uint16(b[i:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		return string(utf16.Decode(u))
	}
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
