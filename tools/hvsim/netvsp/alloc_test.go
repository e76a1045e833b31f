package netvsp

import (
	"testing"

	"github.com/gohv/gohv/tools/hvsim"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

type nullBackend struct{ frames, bytes int }

func (b *nullBackend) Send(f []byte)              { b.frames++; b.bytes += len(f) }
func (b *nullBackend) SetReceiver(func(f []byte)) {}

// testQueue is a device with one queue that is not attached to a channel:
// enough for the per-packet paths, which touch no channel.
func testQueue(t testing.TB, be Backend) *queue {
	t.Helper()
	h, err := hvsim.New(hvsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	d, err := New(h, Config{Backend: be, HoldFrames: 8})
	if err != nil {
		t.Fatal(err)
	}
	maxFrame := d.cfg.MTU + ethHdrLen + vlanTagLen
	q := &queue{d: d, seg: make([]byte, maxFrame), tag: make([]byte, maxFrame+vlanTagLen),
		rxb: make([]byte, rxHeaderRoom+maxFrame), rxKick: make(chan struct{}, 1),
		frames: make([][]byte, 8), flen: make([]int, 8), fhash: make([]uint32, 8), fhas: make([]bool, 8)}
	for i := range q.frames {
		q.frames[i] = make([]byte, maxFrame)
	}
	d.primary, d.queues[0], d.rndis, d.filter = q, q, rndisOperational, FilterBroadcast|FilterDirected
	return q
}

// TestHotPathsAllocateNothing covers the per-packet work: parsing a guest
// PACKET with its PPI, checksum offload, LSO segmentation, handing frames
// to the backend, receive-side checksum verification, RNDIS header
// encoding, receive-buffer accounting and queueing a received frame.
func TestHotPathsAllocateNothing(t *testing.T) {
	be := &nullBackend{}
	q := testQueue(t, be)
	csumMsg := guestPacket(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 1000)), false), ppi{0, csumReqTCP4}, ppi{6, 5 << 4})
	lsoMsg := guestPacket(ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 20000)), true), ppi{2, lsoInfo(1460)})
	frame := ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 1000)), false)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	r := newAccounting(1000, 1806)
	o := allOffloads
	for name, fn := range map[string]func(){
		"transmit with checksum and VLAN": func() {
			if err := q.transmit(csumMsg); err != nil {
				t.Fatal(err)
			}
		},
		"transmit LSO": func() {
			if err := q.transmit(lsoMsg); err != nil {
				t.Fatal(err)
			}
		},
		"receive checksum and header": func() {
			cs := rxChecksum(frame, &o)
			encodeRxPacketHeader(q.rxb, len(frame), cs, true, 7, true)
		},
		"receive-buffer batch": func() {
			slot, got := r.alloc(64, false, 0)
			for i := 0; i < got; i++ {
				r.sub(slot, i)
			}
			r.lookup(r.txid(slot))
			r.release(slot)
		},
		"deliver and drain": func() {
			q.d.deliver(frame)
			q.drop(1)
		},
	} {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s: %v allocations per run", name, a)
		}
	}
	if be.frames == 0 {
		t.Fatal("nothing reached the backend")
	}

	// An LSO send given whole to a backend that takes offloaded frames.
	ob := &nullOffloadBackend{}
	q = testQueue(t, ob)
	f := ipv4Frame(6, tcpSegment(1, 2, 3, 4, 0x10, make([]byte, 20000)), true)
	header.TCP(f[34:]).SetChecksum(partialSum(f))
	wholeMsg := guestPacket(f, ppi{2, lsoInfo(1460)})
	if a := testing.AllocsPerRun(100, func() {
		if err := q.transmit(wholeMsg); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("transmit LSO whole: %v allocations per run", a)
	}
	if ob.offloaded == 0 {
		t.Fatal("nothing reached SendOffloaded")
	}
}

type nullOffloadBackend struct {
	nullBackend
	offloaded int
}

func (b *nullOffloadBackend) SendOffloaded([]byte) { b.offloaded++ }
func (b *nullOffloadBackend) TakesOffloaded() bool { return true }
