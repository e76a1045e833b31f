package kvp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// getIPInfo answers GET_IP_INFO from the AdapterProvider: address family,
// DHCP flag, and semicolon-separated addresses, subnets (IPv4 as a dotted
// mask, IPv6 as "/length", in the addresses' order), gateways and DNS
// servers (docs/hyperv-protocol.md §8.6; formats as Linux
// tools/hv/hv_kvp_daemon.c reports them). The adapter id, a MAC address,
// goes back as received.
func (d *Driver) getIPInfo(msg []byte) ic.Status {
	if d.cfg.Adapters == nil {
		return ic.StatusNotSupported
	}
	rec := msg[offIPBody : offIPBody+IPRecordSize]
	mac, ok := parseMAC(trimNUL(rec[ipAdapterID : ipAdapterID+adapterIDSize]))
	if !ok {
		return ic.StatusInvalidArg
	}
	info := &d.adapter
	info.DHCP, info.Addrs, info.Gateways, info.DNS = false, info.Addrs[:0], info.Gateways[:0], info.DNS[:0]
	if !d.cfg.Adapters.AdapterInfo(mac, info) {
		// Linux tools/hv/hv_kvp_daemon.c answers an unknown MAC E_FAIL.
		return ic.StatusFail
	}
	var family byte
	addrs := utf16Writer{b: rec[ipAddresses : ipAddresses+addressesSize]}
	subnets := utf16Writer{b: rec[ipSubnets : ipSubnets+subnetsSize]}
	// IPv4 first, then IPv6; an address is written only with its subnet.
	for _, want4 := range [2]bool{true, false} {
		for _, p := range info.Addrs {
			a := p.Addr().Unmap()
			if !p.IsValid() || a.Is4() != want4 {
				continue
			}
			d.text = a.AppendTo(d.text[:0])
			if !writeItem(&addrs, d.text, ';') {
				continue
			}
			if want4 {
				family |= familyIPv4
				d.text = maskV4(p.Bits()).AppendTo(d.text[:0])
			} else {
				family |= familyIPv6
				d.text = strconv.AppendInt(append(d.text[:0], '/'), int64(p.Bits()), 10)
			}
			writeItem(&subnets, d.text, ';')
		}
	}
	addrs.finish()
	subnets.finish()
	d.writeAddrList(rec[ipGateways:ipGateways+gatewaysSize], info.Gateways)
	d.writeAddrList(rec[ipDNS:ipDNS+dnsSize], info.DNS)
	rec[ipFamily] = family
	rec[ipDHCP] = 0
	if info.DHCP {
		rec[ipDHCP] = 1
	}
	return ic.StatusOK
}

func (d *Driver) writeAddrList(field []byte, list []netip.Addr) {
	w := utf16Writer{b: field}
	for _, a := range list {
		if a.IsValid() {
			d.text = a.Unmap().AppendTo(d.text[:0])
			writeItem(&w, d.text, ';')
		}
	}
	w.finish()
}

func maskV4(bits int) netip.Addr {
	m := ^uint32(0) << (32 - bits)
	if bits <= 0 {
		m = 0
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
}

// setIPInfo applies a host's IP injection through the AdapterProvider. An
// unknown adapter is StatusNotFound (HV_GUID_NOTFOUND, as Linux's daemon
// answers), any other refusal StatusFail.
func (d *Driver) setIPInfo(msg []byte) ic.Status {
	if d.cfg.Adapters == nil {
		return ic.StatusNotSupported
	}
	adapter, info, err := ParseIPInfo(msg[offIPBody : offIPBody+IPRecordSize])
	if err != nil {
		return ic.StatusInvalidArg
	}
	if err := d.cfg.Adapters.SetAdapterInfo(adapter, info); err != nil {
		if errors.Is(err, ErrNotFound) {
			return ic.StatusNotFound
		}
		return ic.StatusFail
	}
	return ic.StatusOK
}

// ErrIPInfo reports an IP record that does not parse.
var ErrIPInfo = errors.New("kvp: invalid IP information")

// ParseIPInfo decodes an IP record (docs/hyperv-protocol.md §8.6) as a host
// sends it with SET_IP_INFO: the adapter, named by its network device's
// VMBus instance GUID (braces optional; Linux tools/hv/hv_kvp_daemon.c
// looks SET_IP_INFO adapters up by device id, GET_IP_INFO ones by MAC),
// and the requested configuration. Lists may be separated by ';' or ','; subnets pair with
// addresses by position and are an IPv4 dotted mask or an IPv6 prefix
// length ("64" or "/64"). rec must be at least IPRecordSize bytes.
func ParseIPInfo(rec []byte) (adapter chanmsg.GUID, info AdapterInfo, err error) {
	if len(rec) < IPRecordSize {
		return adapter, info, fmt.Errorf("%w: IP record of %d bytes", ic.ErrShort, len(rec))
	}
	id := decodeUTF16(trimNUL(rec[ipAdapterID : ipAdapterID+adapterIDSize]))
	if adapter, err = chanmsg.ParseGUID(id); err != nil {
		return adapter, info, fmt.Errorf("%w: adapter id %q", ErrIPInfo, id)
	}
	info.DHCP = rec[ipDHCP] != 0
	addrs := splitList(rec[ipAddresses : ipAddresses+addressesSize])
	subnets := splitList(rec[ipSubnets : ipSubnets+subnetsSize])
	for i, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return adapter, info, fmt.Errorf("%w: address %q", ErrIPInfo, s)
		}
		if i >= len(subnets) {
			return adapter, info, fmt.Errorf("%w: address %q has no subnet", ErrIPInfo, s)
		}
		bits, ok := prefixLen(subnets[i], a.Is4())
		if !ok {
			return adapter, info, fmt.Errorf("%w: subnet %q for %v", ErrIPInfo, subnets[i], a)
		}
		info.Addrs = append(info.Addrs, netip.PrefixFrom(a, bits))
	}
	for _, f := range []struct {
		field []byte
		dst   *[]netip.Addr
	}{{rec[ipGateways : ipGateways+gatewaysSize], &info.Gateways}, {rec[ipDNS : ipDNS+dnsSize], &info.DNS}} {
		for _, s := range splitList(f.field) {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return adapter, info, fmt.Errorf("%w: address %q", ErrIPInfo, s)
			}
			*f.dst = append(*f.dst, a)
		}
	}
	return adapter, info, nil
}

func splitList(field []byte) []string {
	s := decodeUTF16(trimNUL(field))
	return strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' || r == ' ' })
}

// prefixLen reads a subnet: a dotted IPv4 mask, or an IPv6 prefix length
// with or without its slash.
func prefixLen(s string, is4 bool) (int, bool) {
	if is4 {
		m, err := netip.ParseAddr(s)
		if err != nil || !m.Is4() {
			return 0, false
		}
		b := m.As4()
		v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		bits := 0
		for v&0x80000000 != 0 {
			bits++
			v <<= 1
		}
		return bits, v == 0
	}
	n, err := strconv.Atoi(strings.TrimPrefix(s, "/"))
	return n, err == nil && n >= 0 && n <= 128
}

// parseMAC reads a MAC address from UTF-16LE text: twelve hex digits,
// optionally separated by ':' or '-'.
func parseMAC(b []byte) (mac [6]byte, ok bool) {
	n := 0
	for i := 0; i+1 < len(b); i += 2 {
		if b[i+1] != 0 {
			return mac, false
		}
		c := b[i]
		var v byte
		switch {
		case c == ':' || c == '-':
			continue
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return mac, false
		}
		if n == 12 {
			return mac, false
		}
		mac[n/2] |= v << (4 * (1 - n%2))
		n++
	}
	return mac, n == 12
}
