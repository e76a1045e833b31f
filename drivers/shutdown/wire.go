package shutdown

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/gohv/gohv/drivers/ic"
)

// Body offsets from the start of the IC message (docs/hyperv-protocol.md §8.4).
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

// Flag bits at offset 36 (docs/hyperv-protocol.md §8.4).
const (
	flagForce     = 1 << 0
	flagRestart   = 1 << 1
	flagHibernate = 1 << 2
)

// ReasonPlanned is the planned-shutdown bit of the reason code (docs/hyperv-protocol.md
// §8.4, from OpenVMM).
const ReasonPlanned = 0x80000000

// Kind is what the host asks the guest to do.
type Kind uint8

// Kinds of power request (docs/hyperv-protocol.md §8.4).
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

// Request is a host's shutdown request as the kernel receives it. It holds
// no pointers: the driver builds it without allocating.
type Request struct {
	Kind Kind
	// Force: the host asks the guest not to wait for applications.
	Force bool
	// Reason is the host's reason code (Windows SHTDN_REASON_*).
	Reason uint32
	// Timeout is the time the host allows the guest to comply.
	Timeout time.Duration
	// Message is the host's display text, possibly empty.
	Message Text
}

// textCap is the most UTF-8 bytes a display message decodes to: 2048
// bytes of UTF-16 are at most 1024 BMP characters of 3 bytes, and 2048
// bytes of invalid UTF-8 at most 1024 replacement characters (3 bytes)
// after 1024 valid bytes.
const textCap = 2 * messageMax

// Text is a display message as valid UTF-8 in a fixed buffer, so that a
// Request is built and handed over without allocating.
type Text struct {
	n int
	b [textCap]byte
}

// MakeText returns s as a Text, truncated to whole runes if it is longer
// than a display message can be, with invalid UTF-8 replaced.
func MakeText(s string) Text {
	var t Text
	t.appendUTF8([]byte(s))
	return t
}

// String returns the text.
func (t Text) String() string { return string(t.b[:t.n]) }

// Len returns the text's length in bytes.
func (t *Text) Len() int { return t.n }

// appendRune adds r, unless it does not fit.
func (t *Text) appendRune(r rune) bool {
	if t.n+utf8.RuneLen(r) > len(t.b) {
		return false
	}
	t.n += utf8.EncodeRune(t.b[t.n:], r)
	return true
}

// appendUTF8 adds the valid UTF-8 of b, each run of invalid bytes replaced
// by one U+FFFD (as strings.ToValidUTF8 does), up to the capacity.
func (t *Text) appendUTF8(b []byte) {
	invalid := false
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if r == utf8.RuneError && size == 1 {
			if invalid {
				continue
			}
			invalid = true
		} else {
			invalid = false
		}
		if !t.appendRune(r) {
			return
		}
	}
}

// ErrFlags reports a flags value that names no known request.
var ErrFlags = errors.New("shutdown: unknown flags")

// errShort is ic.ErrShort for the handler's allocation-free parse.
var errShort = fmt.Errorf("%w: shutdown message shorter than %d bytes", ic.ErrShort, minMessage)

// ParseRequest decodes the body of a shutdown message (docs/hyperv-protocol.md §8.4). msg
// is the whole IC message, already copied out of the ring. Like Linux, it
// accepts exactly the flag values 0–5; anything else is ErrFlags.
func ParseRequest(msg []byte) (Request, error) {
	var r Request
	if err := parseRequest(msg, &r); err != nil {
		if err == ErrFlags {
			return Request{}, fmt.Errorf("%w: %#x", ErrFlags, binary.LittleEndian.Uint32(msg[offFlags:]))
		}
		return Request{}, fmt.Errorf("%w: shutdown message of %d bytes, needs %d", ic.ErrShort, len(msg), minMessage)
	}
	return r, nil
}

// parseRequest is ParseRequest into *r, without allocating: its errors are
// ErrFlags and errShort, unwrapped.
func parseRequest(msg []byte, r *Request) error {
	if len(msg) < minMessage {
		return errShort
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
		return ErrFlags
	}
	r.Kind = kind
	r.Force = flags&flagForce != 0
	r.Reason = le.Uint32(msg[offReason:])
	r.Timeout = time.Duration(le.Uint32(msg[offTimeout:])) * time.Second
	r.Message.n = 0
	r.Message.decode(msg[offMessage:min(len(msg), offMessage+messageMax)])
	return nil
}

// decode adds the NUL-terminated display text b. Its encoding is not
// specified (OpenVMM declares it as bytes; Windows hosts write UTF-16), so
// text whose second byte is NUL is read as UTF-16LE and anything else as
// UTF-8; invalid sequences become U+FFFD.
func (t *Text) decode(b []byte) {
	if len(b) >= 2 && b[0] != 0 && b[1] == 0 {
		for i := 0; i+1 < len(b); i += 2 {
			c := rune(binary.LittleEndian.Uint16(b[i:]))
			if c == 0 {
				return
			}
			if utf16.IsSurrogate(c) {
				r := utf8.RuneError
				if i+3 < len(b) {
					if d := utf16.DecodeRune(c, rune(binary.LittleEndian.Uint16(b[i+2:]))); d != utf8.RuneError {
						r = d
						i += 2
					}
				}
				c = r
			}
			if !t.appendRune(c) {
				return
			}
		}
		return
	}
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	t.appendUTF8(b)
}
