package ic_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/drivers/ic/ictest"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

var v3 = ic.Version{Major: 3}

func counterService(t *testing.T) *ic.Service {
	t.Helper()
	s, err := ic.NewService(ic.Config{
		Name: "counter", Type: ic.TypeHeartbeat, Versions: []ic.Version{v3},
		Handle: func(msg []byte, _ ic.Version) ic.Status {
			if len(msg) < ic.HeaderSize+8 {
				return ic.StatusInvalidArg
			}
			n := binary.LittleEndian.Uint64(msg[ic.HeaderSize:])
			binary.LittleEndian.PutUint64(msg[ic.HeaderSize:], n+1)
			return ic.StatusOK
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestServiceOnChannel(t *testing.T) {
	ch := ictest.New(chanmsg.ClassHeartbeat)
	s := counterService(t)
	if err := s.Start(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	if cfg := ch.OpenConfig(); cfg.SendRingSize != ic.DefaultRingSize || cfg.RecvRingSize != ic.DefaultRingSize || cfg.OnInterrupt == nil {
		t.Fatalf("opened with %+v", cfg)
	}
	if err := s.Start(context.Background(), ch); !errors.Is(err, ic.ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}

	reply, err := ch.Call(0x1122334455, ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{{Major: 1}, v3}))
	if err != nil {
		t.Fatal(err)
	}
	// Reference §8.2: counts 1/1, 3.0 and 3.0 @36/@40, size 16 @18, flags 5.
	if !bytes.Equal(reply[28:44], []byte{1, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0}) || reply[18] != 16 || reply[25] != 5 {
		t.Fatalf("negotiation reply % x", reply)
	}

	body := make([]byte, 8)
	binary.LittleEndian.PutUint64(body, 99)
	reply, err = ch.Call(7, ictest.Message(ic.TypeHeartbeat, v3, body))
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(reply[28:]); got != 100 || reply[25] != 5 || !bytes.Equal(reply[20:24], []byte{0, 0, 0, 0}) {
		t.Fatalf("reply % x", reply)
	}

	// Non-in-band packets are counted and ignored.
	ch.Queue(ring.TypeCompletion, 8, ictest.Message(ic.TypeHeartbeat, v3, body))
	ch.Interrupt()

	// A full ring drops the response instead of blocking.
	ch.SetRingFull(true)
	if _, err := ch.Call(9, ictest.Message(ic.TypeHeartbeat, v3, body)); !errors.Is(err, ictest.ErrNoResponse) {
		t.Fatalf("full ring: %v", err)
	}
	ch.SetRingFull(false)

	st := s.Stats()
	want := ic.Stats{Messages: 3, BadMessages: 1, Dropped: 1, Negotiations: 1, Framework: v3, Message: v3, Negotiated: true}
	if st != want {
		t.Fatalf("Stats = %+v, want %+v", st, want)
	}

	if err := s.Close(context.Background()); err != nil || !ch.Closed() {
		t.Fatalf("Close: %v, closed %v", err, ch.Closed())
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestServiceOpenError(t *testing.T) {
	ch := ictest.New(chanmsg.ClassHeartbeat)
	ch.FailOpen(vmbus.ErrRescinded)
	s := counterService(t)
	if err := s.Start(context.Background(), ch); !errors.Is(err, vmbus.ErrRescinded) {
		t.Fatalf("Start = %v, want wrapped ErrRescinded", err)
	}
	// FailOpen fails one Open: a retry of Start succeeds.
	if err := s.Start(context.Background(), ch); err != nil {
		t.Fatalf("retried Start = %v", err)
	}
}

func TestServiceRescind(t *testing.T) {
	ch := ictest.New(chanmsg.ClassHeartbeat)
	s := counterService(t)
	if err := s.Start(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{v3})); err != nil {
		t.Fatal(err)
	}
	ch.Rescind()
	<-s.Done()
	if s.Stats().Negotiated {
		t.Fatal("still negotiated after rescind")
	}
	if ch.Closed() {
		t.Fatal("service closed a rescinded channel; the bus releases it")
	}
}

// loopChannel hands the same message to the service on every interrupt,
// without allocating, to measure the service's own allocations.
type loopChannel struct {
	msg     []byte
	pending bool
	onIntr  func()
	sent    int
}

func (c *loopChannel) Offer() vmbus.Offer { return vmbus.Offer{} }
func (c *loopChannel) Open(_ context.Context, cfg vmbus.OpenConfig) error {
	c.onIntr = cfg.OnInterrupt
	return nil
}
func (c *loopChannel) TrySend(ring.PacketType, uint16, uint64, ...[]byte) error {
	c.sent++
	return nil
}
func (c *loopChannel) ReadPacket(buf []byte) (ring.Packet, error) {
	if !c.pending {
		return ring.Packet{}, vmbus.ErrEmpty
	}
	c.pending = false
	n := copy(buf, c.msg)
	return ring.Packet{Type: ring.TypeDataInband, TransactionID: 1, Payload: buf[:n]}, nil
}
func (c *loopChannel) Rescinded() <-chan struct{}  { return nil }
func (c *loopChannel) Close(context.Context) error { return nil }

func TestServiceInterruptAllocatesNothing(t *testing.T) {
	ch := &loopChannel{}
	s := counterService(t)
	if err := s.Start(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	ch.msg, ch.pending = ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{v3}), true
	ch.onIntr()
	ch.msg = ictest.Message(ic.TypeHeartbeat, v3, make([]byte, 8))
	allocs := testing.AllocsPerRun(1000, func() {
		ch.pending = true
		ch.onIntr()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
	if ch.sent < 1000 {
		t.Fatalf("sent %d responses", ch.sent)
	}
}
