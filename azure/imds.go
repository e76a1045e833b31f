package azure

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
)

// Instance Metadata Service constants (Microsoft's "Azure Instance Metadata
// Service" documentation).
const (
	// IMDSAddress is the link-local address IMDS answers on.
	IMDSAddress = "169.254.169.254"
	// IMDSAPIVersion is the api-version of the instance document.
	IMDSAPIVersion = "2021-02-01"
	// UserDataAPIVersion is the api-version of the user-data endpoint
	// (the first version that serves it).
	UserDataAPIVersion = "2021-01-01"

	instancePath = "/metadata/instance?api-version=" + IMDSAPIVersion
	userDataPath = "/metadata/instance/compute/userData?api-version=" + UserDataAPIVersion + "&format=text"

	headerMetadata = "Metadata"

	// maxInstanceSize bounds the instance document (a few kilobytes in
	// practice; tags and many NICs make it larger).
	maxInstanceSize = 1 << 20
	// MaxUserData is Azure's documented user-data limit (64 KiB decoded).
	MaxUserData = 64 << 10
	// maxUserDataBody bounds the base64 text of MaxUserData bytes, plus
	// room for line breaks.
	maxUserDataBody = (MaxUserData+2)/3*4 + 4<<10
	maxInterfaces   = 64  // per VM
	maxAddresses    = 256 // per interface and family
	maxNameLen      = 256
)

// Instance is the validated subset of the IMDS instance document.
type Instance struct {
	Name           string // compute.name: the VM's resource name
	VMSize         string // compute.vmSize, e.g. "Standard_D2s_v5"
	Location       string // compute.location, e.g. "westeurope"
	VMID           string // compute.vmId: the VM's unique id (a GUID)
	ResourceGroup  string // compute.resourceGroupName
	SubscriptionID string // compute.subscriptionId
	ComputerName   string // compute.osProfile.computerName: the host name to use
	Interfaces     []Interface
}

// Interface is one entry of network.interface.
type Interface struct {
	MAC     [6]byte        // macAddress ("000D3A..." without separators)
	IPv4    []IPAddress    // ipv4.ipAddress
	Subnets []netip.Prefix // ipv4.subnet (address/prefix)
	IPv6    []netip.Addr   // ipv6.ipAddress[].privateIpAddress
}

// IPAddress is a private address and the public address mapped to it, if
// any (Public is the zero Addr when there is none).
type IPAddress struct {
	Private netip.Addr
	Public  netip.Addr
}

type instanceJSON struct {
	Compute *struct {
		Name              string `json:"name"`
		VMSize            string `json:"vmSize"`
		Location          string `json:"location"`
		VMID              string `json:"vmId"`
		ResourceGroupName string `json:"resourceGroupName"`
		SubscriptionID    string `json:"subscriptionId"`
		OSProfile         struct {
			ComputerName string `json:"computerName"`
		} `json:"osProfile"`
	} `json:"compute"`
	Network struct {
		Interface []struct {
			MACAddress string `json:"macAddress"`
			IPv4       struct {
				IPAddress []ipJSON `json:"ipAddress"`
				Subnet    []struct {
					Address string `json:"address"`
					Prefix  string `json:"prefix"`
				} `json:"subnet"`
			} `json:"ipv4"`
			IPv6 struct {
				IPAddress []ipJSON `json:"ipAddress"`
			} `json:"ipv6"`
		} `json:"interface"`
	} `json:"network"`
}

type ipJSON struct {
	Private string `json:"privateIpAddress"`
	Public  string `json:"publicIpAddress"`
}

// ParseInstance parses and validates an IMDS instance document. Fields that
// are absent stay empty, except compute.vmId, which must be a GUID. Unknown
// fields are ignored.
func ParseInstance(b []byte) (*Instance, error) {
	if len(b) > maxInstanceSize {
		return nil, fmt.Errorf("%w: instance document %d bytes", ErrTooLarge, len(b))
	}
	// A UTF-8 byte-order mark (which some HTTP servers prepend) is not
	// JSON; WALinuxAgent strips it too.
	b = bytes.TrimPrefix(b, utf8BOM)
	var doc instanceJSON
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%w: instance document: %v", ErrBadResponse, err)
	}
	c := doc.Compute
	if c == nil {
		return nil, fmt.Errorf("%w: instance document has no compute object", ErrBadResponse)
	}
	in := &Instance{
		Name:           c.Name,
		VMSize:         c.VMSize,
		Location:       c.Location,
		VMID:           c.VMID,
		ResourceGroup:  c.ResourceGroupName,
		SubscriptionID: c.SubscriptionID,
		ComputerName:   c.OSProfile.ComputerName,
	}
	for _, f := range []struct{ name, v string }{
		{"compute.name", in.Name},
		{"compute.vmSize", in.VMSize},
		{"compute.location", in.Location},
		{"compute.resourceGroupName", in.ResourceGroup},
		{"compute.subscriptionId", in.SubscriptionID},
		{"compute.osProfile.computerName", in.ComputerName},
	} {
		if f.v == "" {
			continue
		}
		if err := checkField(f.name, f.v, maxNameLen); err != nil {
			return nil, err
		}
	}
	if !isGUID(in.VMID) {
		return nil, fmt.Errorf("%w: compute.vmId %q is not a GUID", ErrBadResponse, in.VMID)
	}
	if n := len(doc.Network.Interface); n > maxInterfaces {
		return nil, fmt.Errorf("%w: %d network interfaces", ErrBadResponse, n)
	}
	for i, ni := range doc.Network.Interface {
		var out Interface
		mac, err := parseMAC(ni.MACAddress)
		if err != nil {
			return nil, fmt.Errorf("%w: interface %d: %v", ErrBadResponse, i, err)
		}
		out.MAC = mac
		if len(ni.IPv4.IPAddress) > maxAddresses || len(ni.IPv4.Subnet) > maxAddresses ||
			len(ni.IPv6.IPAddress) > maxAddresses {
			return nil, fmt.Errorf("%w: interface %d: too many addresses", ErrBadResponse, i)
		}
		for _, a := range ni.IPv4.IPAddress {
			ip, err := parseIPv4Pair(a)
			if err != nil {
				return nil, fmt.Errorf("%w: interface %d: %v", ErrBadResponse, i, err)
			}
			out.IPv4 = append(out.IPv4, ip)
		}
		for _, s := range ni.IPv4.Subnet {
			p, err := parseSubnet(s.Address, s.Prefix)
			if err != nil {
				return nil, fmt.Errorf("%w: interface %d: %v", ErrBadResponse, i, err)
			}
			out.Subnets = append(out.Subnets, p)
		}
		for _, a := range ni.IPv6.IPAddress {
			ip, err := netip.ParseAddr(a.Private)
			if err != nil || !ip.Is6() || ip.Zone() != "" {
				return nil, fmt.Errorf("%w: interface %d: IPv6 address %q", ErrBadResponse, i, a.Private)
			}
			out.IPv6 = append(out.IPv6, ip)
		}
		in.Interfaces = append(in.Interfaces, out)
	}
	return in, nil
}

func parseMAC(s string) ([6]byte, error) {
	var mac [6]byte
	if len(s) != 12 {
		return mac, fmt.Errorf("macAddress %q: want 12 hex digits", s)
	}
	if _, err := hex.Decode(mac[:], []byte(s)); err != nil {
		return mac, fmt.Errorf("macAddress %q: %v", s, err)
	}
	return mac, nil
}

func parseIPv4Pair(a ipJSON) (IPAddress, error) {
	var out IPAddress
	p, err := netip.ParseAddr(a.Private)
	if err != nil || !p.Is4() {
		return out, fmt.Errorf("privateIpAddress %q is not IPv4", a.Private)
	}
	out.Private = p
	if a.Public != "" {
		q, err := netip.ParseAddr(a.Public)
		if err != nil || !q.Is4() {
			return out, fmt.Errorf("publicIpAddress %q is not IPv4", a.Public)
		}
		out.Public = q
	}
	return out, nil
}

func parseSubnet(addr, prefix string) (netip.Prefix, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("subnet address %q is not IPv4", addr)
	}
	n, err := strconv.Atoi(prefix)
	if err != nil || n < 0 || n > 32 || len(prefix) > 2 {
		return netip.Prefix{}, fmt.Errorf("subnet prefix %q", prefix)
	}
	return netip.PrefixFrom(a, n).Masked(), nil
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// isGUID accepts the 8-4-4-4-12 hexadecimal form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// DecodeUserData decodes the user-data endpoint's body (base64 text, with
// format=text) and checks the 64 KiB limit. Surrounding white space and
// line breaks are tolerated. An empty body is no user data (nil, nil).
func DecodeUserData(b []byte) ([]byte, error) {
	if len(b) > maxUserDataBody {
		return nil, fmt.Errorf("%w: user data %d bytes", ErrTooLarge, len(b))
	}
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		if c != '\n' && c != '\r' && c != ' ' && c != '\t' {
			clean = append(clean, c)
		}
	}
	if len(clean) == 0 {
		return nil, nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("%w: user data: %v", ErrBadResponse, err)
	}
	if n > MaxUserData {
		return nil, fmt.Errorf("%w: user data decodes to %d bytes", ErrTooLarge, n)
	}
	return bytes.Clone(out[:n]), nil
}
