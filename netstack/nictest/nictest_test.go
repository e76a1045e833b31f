package nictest

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/gohv/gohv/netstack/nic"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// gsoFrame builds by hand an Ethernet/IPv4/TCP frame with payload bytes
// 0..n-1 (mod 251) and the checksum field primed as nic.TxInfo prescribes
// for GSO (pseudo-header without length).
func gsoFrame(n int) []byte {
	f := make([]byte, 14+20+20+n)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45                                        // version 4, IHL 5
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+n)) // total length
	binary.BigEndian.PutUint16(ip[4:], 100)             // identification
	ip[8], ip[9] = 64, 6                                // TTL, TCP
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 1000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], 5000) // sequence number
	tcp[12] = 5 << 4                          // data offset
	tcp[13] = 0x18 | 0x01                     // PSH, ACK, FIN
	src, dst := tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
	binary.BigEndian.PutUint16(tcp[16:], header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, 0))
	for i := range n {
		tcp[20+i] = byte(i % 251)
	}
	return f
}

func TestSegmentation(t *testing.T) {
	off := nic.Offloads{TxCsumTCP4: true, LSOv4: true, LSOv6: true, LSOMaxSize: 62780}
	a, b := Pair(Config{Offloads: off}, Config{})
	defer a.Close()
	defer b.Close()
	type seg struct {
		seq   uint32
		flags uint8
		id    uint16
		data  []byte
		csums bool
	}
	got := make(chan seg, 16)
	b.SetReceiver(func(q int, f []byte, _ nic.RxInfo) {
		ip := header.IPv4(f[14:])
		tcp := header.TCP(ip[20:ip.TotalLength()])
		sum := checksum.Checksum(tcp, header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp))))
		got <- seg{tcp.SequenceNumber(), uint8(tcp.Flags()), ip.ID(), append([]byte(nil), tcp[20:]...), ip.IsChecksumValid() && sum == 0xffff}
	})
	const n, mss = 3000, 1400
	f := gsoFrame(n)
	if err := a.Send(0, [][]byte{f[:30], f[30:]}, nic.TxInfo{CsumTCP: true, L3Offset: 14, L4Offset: 34, GSO: true, MSS: mss}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		seq   uint32
		flags uint8
		len   int
	}{{5000, 0x10, 1400}, {6400, 0x10, 1400}, {7800, 0x19, 200}} // PSH and FIN only on the last
	for i, w := range want {
		s := <-got
		if s.seq != w.seq || s.flags != w.flags || len(s.data) != w.len || s.id != uint16(100+i) || !s.csums {
			t.Fatalf("segment %d: seq %d flags %#x len %d id %d checksums ok %v; want seq %d flags %#x len %d id %d",
				i, s.seq, s.flags, len(s.data), s.id, s.csums, w.seq, w.flags, w.len, 100+i)
		}
		for j, c := range s.data {
			if c != byte((int(w.seq-5000)+j)%251) {
				t.Fatalf("segment %d byte %d = %d", i, j, c)
			}
		}
	}
	if s := a.Stats(); s.BadMeta != 0 || s.BadPartialCsum != 0 || s.TxGSO != 1 {
		t.Fatalf("stats %+v", s)
	}

	// A wrongly primed checksum field is counted and the frame dropped.
	binary.BigEndian.PutUint16(f[14+20+16:], 0)
	a.Send(0, [][]byte{f}, nic.TxInfo{CsumTCP: true, L3Offset: 14, L4Offset: 34, GSO: true, MSS: mss})
	// GSO without CsumTCP is bad metadata.
	a.Send(0, [][]byte{f}, nic.TxInfo{L3Offset: 14, L4Offset: 34, GSO: true, MSS: mss})
	// A plain frame after them proves both were processed (one queue, in order).
	p := gsoFrame(10)
	a.Send(0, [][]byte{p}, nic.TxInfo{})
	if s := <-got; len(s.data) != 10 {
		t.Fatalf("plain frame: %d bytes", len(s.data))
	}
	if s := a.Stats(); s.BadPartialCsum != 1 || s.BadMeta != 1 {
		t.Fatalf("stats %+v, want one bad checksum and one bad metadata", s)
	}
}

func TestBusy(t *testing.T) {
	a, b := Pair(Config{Slots: 1}, Config{Slots: 1})
	defer a.Close()
	defer b.Close()
	release := make(chan struct{})
	b.SetReceiver(func(int, []byte, nic.RxInfo) { <-release })
	f := gsoFrame(10)
	if err := a.Send(0, [][]byte{f}, nic.TxInfo{}); err != nil {
		t.Fatal(err)
	}
	// The only slot is in flight (the receiver holds it): the next send is busy.
	var err error
	for err == nil {
		err = a.Send(0, [][]byte{f}, nic.TxInfo{})
	}
	if !errors.Is(err, nic.ErrBusy) {
		t.Fatalf("Send on a full queue: %v, want ErrBusy", err)
	}
	close(release)
	if err := a.WaitWritable(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(0, [][]byte{f}, nic.TxInfo{}); err != nil {
		t.Fatalf("Send after WaitWritable: %v", err)
	}
}
