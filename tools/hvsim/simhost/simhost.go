// Package simhost assembles a whole simulated Hyper-V machine for running a
// gohv program as a Linux process: an hvsim.Host with the standard device
// set of a Generation 2 VM (integration services, keyboard, video, ...), a
// synthetic SCSI controller whose LUNs are disk image files (raw or VHDX,
// served by tools/hvsim/storvsp), and, for Generation 1, an IDE controller
// holding the boot disk. gohv-sim and `gohv sim` both use it, so that the
// machine a user runs is the machine the demo shows.
//
// simhost is host-side code: like hvsim it must not import the guest's
// packages (vmbus, drivers, kernel).
package simhost

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/tools/hvsim/azurefabric"
	"github.com/gohv/gohv/tools/hvsim/netvsp"
	"github.com/gohv/gohv/tools/hvsim/storvsp"
)

// Disk is a disk image attached to the simulated machine.
type Disk struct {
	// Path is a raw or VHDX image (chosen by the .vhdx extension).
	Path string
	// ReadOnly attaches the disk read-only (the file is opened so).
	ReadOnly bool
	// IDE attaches the disk to the IDE controller (Generation 1 boot
	// disk) instead of SCSI.
	IDE bool
}

// ParseDisk parses the -disk flag syntax: PATH[,ro][,ide].
func ParseDisk(s string) (Disk, error) {
	parts := strings.Split(s, ",")
	d := Disk{Path: parts[0]}
	if d.Path == "" {
		return Disk{}, fmt.Errorf("simhost: -disk %q: empty path; use -disk PATH[,ro][,ide]", s)
	}
	for _, p := range parts[1:] {
		switch p {
		case "ro":
			d.ReadOnly = true
		case "ide":
			d.IDE = true
		default:
			return Disk{}, fmt.Errorf("simhost: -disk %q: unknown option %q; use -disk PATH[,ro][,ide]", s, p)
		}
	}
	return d, nil
}

// Config describes the machine.
type Config struct {
	Profile hvsim.Profile
	// Clock drives time sync; nil is the system clock.
	Clock hvsim.Clock
	// Disks are attached in order: SCSI LUNs 0, 1, ... and IDE targets.
	Disks []Disk
	// MemDiskBytes, when no disk is given, attaches one empty memory disk
	// of that size to SCSI LUN 0 (0: none).
	MemDiskBytes int64
	// Heartbeat replaces the standard heartbeat host (for a faster
	// demo); nil keeps it.
	Heartbeat *hvsim.Heartbeat
	// TAP plugs the synthetic NIC into the Linux TAP device of that name
	// (in the caller's network namespace; a DHCP server such as dnsmasq
	// on its other side gives the guest an address). Empty: the NIC is
	// plugged into an in-process peer stack (PeerAddr) with the
	// simulator's own DHCP server in front of it, and no packet leaves the
	// process.
	TAP string
	// NoNetwork keeps the standard set's NIC offer inert.
	NoNetwork bool
	// Azure makes the in-process network look like Azure's: the DHCP
	// server adds option 245 (the WireServer's address) and the peer
	// serves a simulated WireServer and IMDS at 168.63.129.16 and
	// 169.254.169.254 (Machine.Azure). Ignored with TAP.
	Azure bool
	// PeerNoOffload gives the in-process peer a link without GSO and
	// checksum offload, so the NIC cuts every large send into MTU frames
	// and the peer verifies every checksum. By default the peer's link
	// offloads (netvsp.PeerConfig.Offload), as a Hyper-V vSwitch port to
	// another VM does.
	PeerNoOffload bool
}

// The in-process network: the peer (router, DNS server and DHCP server)
// and the address its DHCP server gives the guest.
var (
	PeerAddr  = netip.MustParsePrefix("192.168.200.1/24")
	GuestAddr = netip.MustParseAddr("192.168.200.10")
	peerMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	// GuestMAC is the synthetic NIC's address (Hyper-V's OUI 00:15:5d).
	GuestMAC = [6]byte{0x00, 0x15, 0x5d, 0x67, 0x68, 0x76}
)

// Machine is the assembled simulated VM.
type Machine struct {
	Host     *hvsim.Host
	Standard hvsim.StandardDevices
	SCSI     *storvsp.StorVSP
	IDE      *storvsp.StorVSP // nil unless an IDE disk was given
	NIC      *netvsp.Device   // nil with NoNetwork
	// Peer is the in-process network's other end (nil with TAP or
	// NoNetwork): run servers and clients on it to reach the guest.
	Peer *netvsp.Peer
	// Azure is the simulated Azure fabric behind the peer (Config.Azure),
	// nil otherwise.
	Azure   *azurefabric.Fabric
	dhcp    *dhcpServer
	closers []io.Closer
}

// DHCPStats returns how many OFFERs and ACKs the in-process DHCP server
// sent.
func (m *Machine) DHCPStats() (offers, acks int) {
	if m.dhcp == nil {
		return 0, 0
	}
	m.dhcp.mu.Lock()
	defer m.dhcp.mu.Unlock()
	return m.dhcp.offers, m.dhcp.acks
}

// Instance GUIDs of the controllers (as a Hyper-V VM's own are fixed per
// VM, these are fixed per simulated machine).
var (
	scsiInstance = hvsim.MustParseGUID("f8b3781b-1e82-4818-a1c3-63d806ec15bb")
	ideInstance  = hvsim.MustParseGUID("00000000-0000-8899-0000-000000000000")
)

// New builds and starts the machine. The caller connects the guest to
// m.Host.Platform() and calls Close at the end.
func New(cfg Config) (*Machine, error) {
	h, err := hvsim.New(hvsim.Config{Profile: cfg.Profile, Clock: cfg.Clock})
	if err != nil {
		return nil, err
	}
	m := &Machine{Host: h, Standard: hvsim.Standard()}
	fail := func(err error) (*Machine, error) {
		m.Close()
		return nil, err
	}
	standardHB := m.Standard.Heartbeat
	if cfg.Heartbeat != nil {
		m.Standard.Heartbeat = cfg.Heartbeat
	}
	m.SCSI, err = storvsp.New(storvsp.Config{Kind: storvsp.SCSI, Instance: scsiInstance})
	if err != nil {
		return fail(err)
	}
	var scsiLUN, ideTarget uint8
	for _, d := range cfg.Disks {
		store, err := open(d)
		if err != nil {
			return fail(err)
		}
		m.closers = append(m.closers, store)
		lc := storvsp.LUNConfig{Store: store, ReadOnly: d.ReadOnly, WriteCache: true, Serial: serial(d.Path)}
		if d.IDE {
			if m.IDE == nil {
				if m.IDE, err = storvsp.New(storvsp.Config{Kind: storvsp.IDE, Instance: ideInstance}); err != nil {
					return fail(err)
				}
			}
			if ideTarget > 1 {
				return fail(errors.New("simhost: at most two IDE disks (targets 0 and 1)"))
			}
			err = m.IDE.Attach(storvsp.Addr{Target: ideTarget}, lc)
			ideTarget++
		} else {
			err = m.SCSI.Attach(storvsp.Addr{LUN: scsiLUN}, lc)
			scsiLUN++
		}
		if err != nil {
			return fail(fmt.Errorf("simhost: attaching %s: %w", d.Path, err))
		}
	}
	if len(cfg.Disks) == 0 && cfg.MemDiskBytes > 0 {
		if err := m.SCSI.Attach(storvsp.Addr{}, storvsp.LUNConfig{Store: storvsp.NewMemStore(cfg.MemDiskBytes), WriteCache: true, Serial: "memdisk"}); err != nil {
			return fail(err)
		}
	}
	if !cfg.NoNetwork {
		if err := m.plugNIC(cfg); err != nil {
			return fail(err)
		}
	}
	for i, d := range m.Standard.All {
		switch {
		case d.Offer().Class == hvsim.ClassStorVSC:
			d = m.SCSI // the standard set's inert SCSI offer, now served
		case d.Offer().Class == hvsim.ClassNetVSC && m.NIC != nil:
			d = m.NIC // likewise the NIC
		case d == hvsim.Device(standardHB):
			d = m.Standard.Heartbeat
		}
		m.Standard.All[i] = d
		if _, err := h.AddDevice(d); err != nil {
			return fail(fmt.Errorf("simhost: adding a device: %w", err))
		}
	}
	if m.IDE != nil {
		if _, err := h.AddDevice(m.IDE); err != nil {
			return fail(fmt.Errorf("simhost: adding the IDE controller: %w", err))
		}
	}
	return m, nil
}

// plugNIC creates the synthetic NIC and its network.
func (m *Machine) plugNIC(cfg Config) error {
	var be netvsp.Backend
	if cfg.TAP != "" {
		tap, err := netvsp.OpenTAP(cfg.TAP)
		if err != nil {
			return fmt.Errorf("simhost: TAP device %s: %w", cfg.TAP, err)
		}
		m.closers = append(m.closers, tap)
		be = tap
	} else {
		peer, err := netvsp.NewPeer(netvsp.PeerConfig{MAC: peerMAC, Addr: PeerAddr, Offload: !cfg.PeerNoOffload})
		if err != nil {
			return err
		}
		m.Peer = peer
		m.closers = append(m.closers, peer)
		m.dhcp = &dhcpServer{next: peer, serverMAC: peerMAC, server: PeerAddr.Addr(),
			client: GuestAddr, prefix: PeerAddr.Bits(), leaseSecs: 3600}
		if cfg.Azure {
			f, err := azurefabric.Attach(peer.Stack(), netvsp.PeerNIC)
			if err != nil {
				return fmt.Errorf("simhost: Azure fabric: %w", err)
			}
			m.Azure = f
			m.closers = append(m.closers, f)
			m.dhcp.wireServer = azurefabric.WireServerAddr
		}
		be = m.dhcp
	}
	nic, err := netvsp.New(m.Host, netvsp.Config{MAC: GuestMAC, Backend: be})
	if err != nil {
		return err
	}
	m.NIC = nic
	return nil
}

func open(d Disk) (storeCloser, error) {
	var s storeCloser
	var err error
	if strings.HasSuffix(strings.ToLower(d.Path), ".vhdx") {
		s, err = storvsp.OpenVHDX(d.Path, d.ReadOnly)
	} else {
		s, err = storvsp.OpenRaw(d.Path, d.ReadOnly)
	}
	if err != nil {
		return nil, fmt.Errorf("simhost: opening disk image %s: %w", d.Path, err)
	}
	return s, nil
}

type storeCloser interface {
	storvsp.Store
	io.Closer
}

// serial is the disk's VPD 0x80 serial: its file name, at most 20 bytes.
func serial(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		path = path[i+1:]
	}
	if len(path) > 20 {
		path = path[:20]
	}
	return path
}

// Close stops the host and closes the disk images (after the host, so that
// nothing is written to a closed file).
func (m *Machine) Close() error {
	var errs []error
	if m.Host != nil {
		errs = append(errs, m.Host.Close())
	}
	for _, c := range m.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
