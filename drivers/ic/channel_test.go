package ic_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

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

// TestServiceCloseLetsAnswerOut: Close while the handler is answering a
// message (a shutdown request the kernel acts on at once) waits for that
// answer to be sent before it closes the channel, and answers nothing
// after.
func TestServiceCloseLetsAnswerOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		entered, release := make(chan struct{}), make(chan struct{})
		let := sync.OnceFunc(func() { close(release) })
		defer let() // on failure too, so that no goroutine stays blocked
		s, err := ic.NewService(ic.Config{
			Name: "slow", Type: ic.TypeShutdown, Versions: []ic.Version{v3},
			Handle: func([]byte, ic.Version) ic.Status {
				close(entered)
				<-release
				return ic.StatusOK
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		ch := ictest.New(chanmsg.ClassShutdown)
		if err := s.Start(context.Background(), ch); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{v3})); err != nil {
			t.Fatal(err)
		}
		ch.Queue(ring.TypeDataInband, 2, ictest.Message(ic.TypeShutdown, v3, make([]byte, 8)))
		go ch.Interrupt() // the dispatch goroutine
		<-entered
		closed := make(chan error, 1)
		go func() { closed <- s.Close(context.Background()) }()
		synctest.Wait() // Close has gone as far as it goes while the handler runs
		if ch.Closed() {
			t.Fatal("Close closed the channel while the handler was still answering")
		}
		let()
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		sent := ch.Sent()
		if !ch.Closed() || len(sent) != 2 || sent[1].TransactionID != 2 {
			t.Fatalf("closed %v, sent %+v: want the answer to txid 2, then the close", ch.Closed(), sent)
		}
		if st := s.Stats(); st.Dropped != 0 {
			t.Fatalf("Stats %+v", st)
		}
		// A message arriving after Close is not answered.
		ch.Queue(ring.TypeDataInband, 3, ictest.Message(ic.TypeShutdown, v3, make([]byte, 8)))
		ch.Interrupt()
		if n := len(ch.Sent()); n != 2 {
			t.Fatalf("%d packets sent after Close", n-2)
		}
	})
}
