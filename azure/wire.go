package azure

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/netip"
	"unicode/utf8"
)

// WireServer protocol constants (WALinuxAgent wire.py; cloud-init
// helpers/azure.py).
const (
	// DefaultWireServer is the WireServer's documented fixed address, used
	// when DHCP did not carry option 245.
	DefaultWireServer = "168.63.129.16"
	// DHCPOptionWireServer is the DHCP option whose 4-byte value is the
	// WireServer's IPv4 address.
	DHCPOptionWireServer = 245
	// WireProtocolVersion is the x-ms-version both agents send.
	WireProtocolVersion = "2012-11-30"

	goalStatePath = "/machine/?comp=goalstate"
	healthPath    = "/machine?comp=health"

	headerAgentName = "x-ms-agent-name"
	headerVersion   = "x-ms-version"
	// headerLatestIncarnation: the WireServer's answer to a health report
	// names the newest goal-state incarnation.
	headerLatestIncarnation = "x-ms-latest-goal-state-incarnation-number"
	healthContentType       = "text/xml; charset=utf-8"

	// maxGoalStateSize bounds the goal-state body. Real goal states are a
	// few kilobytes (URLs to further documents, not the documents).
	maxGoalStateSize = 256 << 10
	// maxFieldLen bounds each identifier echoed back to the fabric.
	maxFieldLen = 256
	// maxDescriptionLen is the health-report description cut-off
	// (cloud-init trims to 512 characters).
	maxDescriptionLen = 512
)

// Health states and sub-status for HealthReport.State / SubStatus.
const (
	StateReady              = "Ready"
	StateNotReady           = "NotReady"
	SubStatusProvisionFault = "ProvisioningFailed"
)

// WireServerFromDHCP validates the value of DHCP option 245 (the option's
// payload, without code and length bytes) and returns the WireServer
// address it carries. It accepts exactly 4 bytes of a unicast IPv4 address.
func WireServerFromDHCP(opt []byte) (netip.Addr, error) {
	if len(opt) != 4 {
		return netip.Addr{}, fmt.Errorf("%w: %d bytes, want 4", ErrBadOption, len(opt))
	}
	a := netip.AddrFrom4([4]byte(opt))
	if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, fmt.Errorf("%w: %v is not a unicast address", ErrBadOption, a)
	}
	return a, nil
}

// GoalState is the part of the WireServer's goal state a health report
// needs.
type GoalState struct {
	Incarnation string // e.g. "1"; echoed as GoalStateIncarnation
	ContainerID string // Container/ContainerId
	InstanceID  string // Container/RoleInstanceList/RoleInstance[0]/InstanceId
}

// goalStateXML mirrors the document's shape; unknown elements are ignored.
type goalStateXML struct {
	XMLName     xml.Name `xml:"GoalState"`
	Incarnation *string  `xml:"Incarnation"`
	Container   *struct {
		ContainerID *string `xml:"ContainerId"`
		Roles       []struct {
			InstanceID *string `xml:"InstanceId"`
		} `xml:"RoleInstanceList>RoleInstance"`
	} `xml:"Container"`
}

// ParseGoalState parses and validates a goal-state document. The first
// RoleInstance is the VM's own (a VM's goal state lists exactly one).
func ParseGoalState(b []byte) (*GoalState, error) {
	if len(b) > maxGoalStateSize {
		return nil, fmt.Errorf("%w: goal state %d bytes", ErrTooLarge, len(b))
	}
	var doc goalStateXML
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(b, utf8BOM)))
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: goal state: %v", ErrBadResponse, err)
	}
	if doc.Incarnation == nil || doc.Container == nil || doc.Container.ContainerID == nil ||
		len(doc.Container.Roles) == 0 || doc.Container.Roles[0].InstanceID == nil {
		return nil, fmt.Errorf("%w: goal state lacks Incarnation, ContainerId or InstanceId", ErrBadResponse)
	}
	gs := &GoalState{
		Incarnation: trimSpace(*doc.Incarnation),
		ContainerID: trimSpace(*doc.Container.ContainerID),
		InstanceID:  trimSpace(*doc.Container.Roles[0].InstanceID),
	}
	if err := gs.validate(); err != nil {
		return nil, err
	}
	return gs, nil
}

func (gs *GoalState) validate() error {
	for _, f := range []struct{ name, v string }{
		{"Incarnation", gs.Incarnation},
		{"ContainerId", gs.ContainerID},
		{"InstanceId", gs.InstanceID},
	} {
		if err := checkField(f.name, f.v, maxFieldLen); err != nil {
			return err
		}
	}
	return nil
}

// checkField accepts 1..max bytes of printable ASCII without spaces: the
// character set of every identifier the fabric issues (decimal
// incarnations, GUIDs, "<hex>.<name>" instance ids).
func checkField(name, v string, max int) error {
	if len(v) == 0 || len(v) > max {
		return fmt.Errorf("%w: %s length %d, want 1..%d", ErrBadResponse, name, len(v), max)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: %s has byte %#x at %d", ErrBadResponse, name, c, i)
		}
	}
	return nil
}

func trimSpace(s string) string { return string(bytes.TrimSpace([]byte(s))) }

// HealthReport is the content of a health report.
type HealthReport struct {
	GoalState
	State string // StateReady or StateNotReady
	// SubStatus and Description are sent only when SubStatus is not empty
	// (a provisioning failure); Description is cut to 512 bytes.
	SubStatus   string
	Description string
}

type healthXML struct {
	XMLName     xml.Name     `xml:"Health"`
	XSI         string       `xml:"xmlns:xsi,attr"`
	XSD         string       `xml:"xmlns:xsd,attr"`
	Incarnation string       `xml:"GoalStateIncarnation"`
	ContainerID string       `xml:"Container>ContainerId"`
	Roles       []healthRole `xml:"Container>RoleInstanceList>Role"`
}

type healthRole struct {
	InstanceID string     `xml:"InstanceId"`
	Health     roleHealth `xml:"Health"`
}

type roleHealth struct {
	State   string         `xml:"State"`
	Details *healthDetails `xml:"Details,omitempty"`
}

type healthDetails struct {
	SubStatus   string `xml:"SubStatus"`
	Description string `xml:"Description"`
}

const (
	xmlnsXSI = "http://www.w3.org/2001/XMLSchema-instance"
	xmlnsXSD = "http://www.w3.org/2001/XMLSchema"
)

// EncodeHealth writes the health-report document: an XML declaration and a
// Health element without indentation, the shape WALinuxAgent sends.
func EncodeHealth(r HealthReport) ([]byte, error) {
	if err := r.GoalState.validate(); err != nil {
		return nil, err
	}
	if r.State != StateReady && r.State != StateNotReady {
		return nil, fmt.Errorf("azure: health state %q", r.State)
	}
	doc := healthXML{
		XSI:         xmlnsXSI,
		XSD:         xmlnsXSD,
		Incarnation: r.Incarnation,
		ContainerID: r.ContainerID,
		Roles: []healthRole{{
			InstanceID: r.InstanceID,
			Health:     roleHealth{State: r.State},
		}},
	}
	if r.SubStatus != "" {
		desc := r.Description
		if len(desc) > maxDescriptionLen {
			// Cut on a rune boundary so that the text stays UTF-8.
			n := maxDescriptionLen
			for n > 0 && !utf8.RuneStart(desc[n]) {
				n--
			}
			desc = desc[:n]
		}
		doc.Roles[0].Health.Details = &healthDetails{SubStatus: r.SubStatus, Description: desc}
	}
	var buf bytes.Buffer
	buf.WriteString(`<?xml version="1.0" encoding="utf-8"?>`)
	if err := xml.NewEncoder(&buf).Encode(&doc); err != nil {
		return nil, fmt.Errorf("azure: encode health: %w", err)
	}
	return buf.Bytes(), nil
}
