package chanmsg

import (
	"errors"
	"fmt"
)

// GUID is a GUID in Windows wire order (docs/hyperv-protocol.md, Conventions): the first
// 32-bit field and the next two 16-bit fields little-endian, the last eight
// bytes as written.
type GUID [16]byte

// ErrBadGUID is returned by ParseGUID for malformed text.
var ErrBadGUID = errors.New("chanmsg: malformed GUID")

// textOrder maps the 16 byte positions of the canonical text form
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, read left to right) to wire
// positions.
var textOrder = [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}

// ParseGUID parses the canonical 36-character form, optionally in braces.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("%w: %q", ErrBadGUID, s)
	}
	n := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return GUID{}, fmt.Errorf("%w: %q", ErrBadGUID, s)
		}
		g[textOrder[n]] = hi<<4 | lo
		n++
		i += 2
	}
	return g, nil
}

// MustParseGUID is ParseGUID for constants; it panics on malformed text.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String returns the canonical lower-case text form.
func (g GUID) String() string {
	const hexdig = "0123456789abcdef"
	var b [36]byte
	n := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			b[i] = '-'
			i++
			continue
		}
		v := g[textOrder[n]]
		b[i], b[i+1] = hexdig[v>>4], hexdig[v&15]
		n++
		i += 2
	}
	return string(b[:])
}

// Device class (interface type) GUIDs, docs/hyperv-protocol.md §5.
var (
	ClassNetwork       = MustParseGUID("f8615163-df3e-46c5-913f-f2d2f965ed0e")
	ClassSCSI          = MustParseGUID("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f")
	ClassIDE           = MustParseGUID("32412632-86cb-44a2-9b5c-50d1417354f5")
	ClassFibreChannel  = MustParseGUID("2f9bcc4a-0069-4af3-b76b-6fd0be528cda")
	ClassHeartbeat     = MustParseGUID("57164f39-9115-4e78-ab55-382f3bd5422d")
	ClassShutdown      = MustParseGUID("0e0b6031-5213-4934-818b-38d90ced39db")
	ClassTimeSync      = MustParseGUID("9527e630-d0ae-497b-adce-e80ab0175caf")
	ClassKVP           = MustParseGUID("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6")
	ClassVSS           = MustParseGUID("35fa2e29-ea23-4236-96ae-3a6ebacba440")
	ClassFileCopy      = MustParseGUID("34d14be3-dee4-41c8-9ae7-6b174977c192")
	ClassBalloon       = MustParseGUID("525074dc-8985-46e2-8057-a307dc18a502")
	ClassKeyboard      = MustParseGUID("f912ad6d-2b17-48ea-bd65-f927a61c7684")
	ClassMouse         = MustParseGUID("cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a")
	ClassVideo         = MustParseGUID("da0a7802-e377-4aac-8e77-0558eb1073f8")
	ClassPCI           = MustParseGUID("44c4f61d-4444-4400-9d52-802e27ede19f")
	ClassNetworkDirect = MustParseGUID("8c2eaf3d-32a7-4b09-ab99-bd1f1c86b501")
	ClassAVMA1         = MustParseGUID("f8e65716-3cb3-4a06-9a60-1889c5cccab5")
	ClassAVMA2         = MustParseGUID("3375baf4-9e15-4b30-b765-67acb10d607b")
	ClassRDV           = MustParseGUID("276aacf4-ac15-426c-98dd-7521ad3f01fe")
	ClassVMBusFS       = MustParseGUID("c376c1c3-d276-48d2-90a9-c04748072c60")
)

// classNames is read-only after package initialisation.
var classNames = map[GUID]string{
	ClassNetwork:       "netvsc",
	ClassSCSI:          "storvsc",
	ClassIDE:           "ide",
	ClassFibreChannel:  "fibre-channel",
	ClassHeartbeat:     "heartbeat",
	ClassShutdown:      "shutdown",
	ClassTimeSync:      "timesync",
	ClassKVP:           "kvp",
	ClassVSS:           "vss",
	ClassFileCopy:      "fcopy",
	ClassBalloon:       "balloon",
	ClassKeyboard:      "keyboard",
	ClassMouse:         "mouse",
	ClassVideo:         "video",
	ClassPCI:           "vpci",
	ClassNetworkDirect: "network-direct",
	ClassAVMA1:         "avma1",
	ClassAVMA2:         "avma2",
	ClassRDV:           "rdv",
	ClassVMBusFS:       "vmbfs",
}

// ClassName returns a short name for a device class GUID of docs/hyperv-protocol.md §5,
// or "" if the class is unknown (for example an hv_sock endpoint).
func ClassName(g GUID) string { return classNames[g] }
