// Package dhcp4 is a DHCPv4 client (RFC 2131, options from RFC 2132 and
// Azure's option 245): the wire format (wire.go: named offsets, Parse and
// Message.Append) apart from the client state machine (client.go:
// DISCOVER/OFFER/REQUEST/ACK, renewal at T1, rebinding at T2, expiry,
// RELEASE).
//
// The client does no I/O of its own: it sends and receives UDP payloads
// through a Transport (package netstack supplies one that builds raw
// Ethernet frames, since before a lease there is no address to bind). It
// owns only its lease; applying the lease (addresses, routes, DNS) is the
// caller's job in the OnBound/OnExpired callbacks.
//
// Everything a server sends is untrusted: Parse checks every option length
// against the message and the client ignores replies whose transaction id,
// hardware address or type do not match.
package dhcp4
