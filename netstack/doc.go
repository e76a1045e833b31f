// Package netstack is gohv's TCP/IP stack: gVisor's netstack (pkg/tcpip)
// over the NICs of package nic (drivers/netvsc on Hyper-V, nictest fakes in
// tests), with address configuration (static, DHCPv4, IPv6 link-local and
// SLAAC), routes, DNS servers and a resolver, and adapters to Go's net
// types: Stack.Listen/Dial/ListenPacket hosted, and Stack.InstallNet on
// GOOS=tamago, which makes Go's own net package (and so net/http) use the
// stack through net.SocketFunc.
//
// netstack owns the gVisor stack, the link endpoints and the DHCP clients.
// It does not touch the NIC's internals (rings, RNDIS): it sees only the
// nic.NIC methods, and it never sends traffic other than through them.
//
// # Data path
//
// Transmit: gVisor calls the link endpoint's WritePackets on the sending
// goroutine (a TCP processor or the application's). The endpoint picks the
// NIC queue by a hash of the addresses and ports (one flow, one queue, in
// order), hands the packet's views to nic.NIC.Send as frame parts without
// copying them, and when Send reports nic.ErrBusy it waits in
// NIC.WaitWritable and sends again: packets are never dropped for lack of
// room, the sender is slowed instead. Send must be done with the parts when
// it returns (copied into the send buffer, or the GPA-direct send
// completed). Per queue one sender at a time (txQueue.mu).
//
// Offloads: when the NIC offers any transmit checksum offload the endpoint
// advertises gVisor's CapabilityTXChecksumOffload, so gVisor leaves TCP and
// UDP checksums to it; per packet the endpoint then either asks the NIC
// (nic.TxInfo.CsumTCP/CsumUDP, with the checksum field primed with the
// pseudo-header sum as nic.TxInfo documents) or computes the checksum
// itself when the NIC does not offload that protocol and family. When the
// NIC offers LSO for both IPv4 and IPv6 the endpoint is a gVisor host-GSO
// endpoint: TCP hands it segments up to min(LSOMaxSize, 64 KiB) which go to
// the NIC whole with TxInfo.GSO and the MSS.
//
// Receive: the NIC calls the endpoint's receiver on the queue's goroutine
// with a frame valid only during the call. The receiver never blocks: it
// copies the frame into pooled gVisor buffers (the first rxHeadChunk bytes
// apart from the rest: gVisor copies a whole shared chunk when it reads a
// header from it), and queues it (ring of
// rxRingSize per queue; a full ring drops and counts) for the queue's
// delivery goroutine, which hands it to gVisor. Delivery runs apart from
// the NIC's goroutine because gVisor may answer inline (ARP, ICMP, TCP
// resets) and a send that waits for a writable queue must not block the
// goroutine that would make the queue writable. With receive checksum
// offload the endpoint advertises CapabilityRXChecksumOffload (gVisor then
// trusts every frame), drops frames the NIC found bad, and verifies itself
// the frames the NIC did not check (nic.RxInfo.CsumChecked false): IPv4
// header, TCP, UDP, ICMPv4 and ICMPv6. Non-first IPv4 fragments and IPv6
// fragments are not verified at L4 in that mode (gVisor's reassembly
// inherits the capability). nic.RxInfo.VLAN is ignored: netstack has no
// VLAN interfaces.
//
// Allocation: per packet the transmit path allocates nothing (the frame
// parts reuse a per-queue slice); the receive path takes its buffer from
// gVisor's pools. TestLinkAllocs measures both.
//
// # Addresses
//
// DHCPv4 (package dhcp4) runs beside gVisor: its frames are built and sent
// by this package on NIC queue 0, and its replies (IPv4 UDP to port 68) are
// taken off the receive path before gVisor. A lease installs the address,
// the on-link and default routes, the DNS servers and the interface MTU
// (option 26); renewal, rebinding and expiry update them; Close releases
// the lease. IPv6 gets a link-local address and SLAAC addresses and routes
// from router advertisements (gVisor's NDP); RDNSS servers join the DNS
// list. Every change is an Event (Stack.Watch), for consumers such as KVP.
//
// TCP connections get a DefaultTCPSendBuffer (1 MiB) send buffer unless
// Config.TCPSendBuffer says otherwise: a bulk sender keeps at most that
// much unacknowledged.
//
// # Goroutines
//
// Event watchers are fed on the goroutine making the change (DHCP client,
// NDP serializer, AddNIC caller); they never block it. DHCP callbacks run
// on the interface's DHCP goroutine. NDP callbacks from gVisor are replayed
// on the stack's serializer goroutine.
package netstack
