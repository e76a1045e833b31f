package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"
)

// hangGuard bounds each wait so a lost wake-up fails the test instead of
// hanging it; it is not a timing assertion.
const hangGuard = 20 * time.Second

// fill makes payload bytes that identify the packet and position.
func fill(p []byte, seq uint64) {
	for i := range p {
		p[i] = byte(seq*131 + uint64(i)*7)
	}
}

// TestConcurrentProducerConsumer runs a Writer and a Reader on the same
// memory in two goroutines, with the full signalling protocol (doorbells as
// channels, interrupt mask, pending send size), and checks every byte.
func TestConcurrentProducerConsumer(t *testing.T) {
	total := 8 << 20
	if testing.Short() {
		total = 1 << 20
	}
	mem := newMem(4) // 16 KiB data: the ring runs full often
	w, r := mustPair(t, mem)
	dataBell := make(chan struct{}, 1)  // producer → consumer
	spaceBell := make(chan struct{}, 1) // consumer → producer
	ring := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	wait := func(c chan struct{}) error {
		select {
		case <-c:
			return nil
		case <-time.After(hangGuard):
			return errors.New("no signal: lost wake-up")
		}
	}

	werr := make(chan error, 1)
	go func() {
		werr <- func() error {
			payload := make([]byte, 6000)
			hdr := make([]byte, 8)
			sent := 0
			for seq := uint64(0); sent < total; seq++ {
				n := int(seq*7919) % len(payload)
				p := payload[:n]
				fill(p, seq)
				binary.LittleEndian.PutUint64(hdr, seq^0xA5A5)
				h := hdr[:8*int(seq%2)]
				for {
					sig, err := w.TryWrite(TypeDataInband, uint16(seq%2), seq, h, p[:n/2], p[n/2:])
					if err == nil {
						w.SetPendingSend(0)
						if sig {
							ring(dataBell)
						}
						break
					}
					if !errors.Is(err, ErrFull) {
						return err
					}
					// Blocked producer: publish the need, re-check, sleep.
					w.SetPendingSend(SpaceNeeded(len(h), n))
					if sig, err = w.TryWrite(TypeDataInband, uint16(seq%2), seq, h, p[:n/2], p[n/2:]); err == nil {
						w.SetPendingSend(0)
						if sig {
							ring(dataBell)
						}
						break
					}
					if err := wait(spaceBell); err != nil {
						return fmt.Errorf("producer at seq %d: %w", seq, err)
					}
				}
				sent += n
			}
			// End marker.
			for {
				sig, err := w.TryWrite(TypeCompletion, 0, ^uint64(0), nil)
				if err == nil {
					if sig {
						ring(dataBell)
					}
					return nil
				}
				w.SetPendingSend(SpaceNeeded(0, 0))
				if err := wait(spaceBell); err != nil {
					return err
				}
			}
		}()
	}()

	buf := make([]byte, 8192)
	want := make([]byte, 6000)
	var seq uint64
	received := 0
	err := func() error {
		for {
			r.MaskInterrupts()
			for {
				pkt, err := r.Read(buf)
				if errors.Is(err, ErrEmpty) {
					break
				}
				if err != nil {
					return err
				}
				if pkt.TransactionID == ^uint64(0) {
					return nil
				}
				if pkt.TransactionID != seq || pkt.Flags != uint16(seq%2) || pkt.Type != TypeDataInband {
					return fmt.Errorf("packet %d: got id %d flags %d type %v", seq, pkt.TransactionID, pkt.Flags, pkt.Type)
				}
				if seq%2 == 1 && (len(pkt.Header) != 8 || binary.LittleEndian.Uint64(pkt.Header) != seq^0xA5A5) {
					return fmt.Errorf("packet %d: header % x", seq, pkt.Header)
				}
				n := int(seq*7919) % len(want)
				fill(want[:n], seq)
				if len(pkt.Payload) != align8(16+len(pkt.Header)+n)-16-len(pkt.Header) {
					return fmt.Errorf("packet %d: payload length %d for %d bytes", seq, len(pkt.Payload), n)
				}
				for i := 0; i < n; i++ {
					if pkt.Payload[i] != want[i] {
						return fmt.Errorf("packet %d: byte %d = %#x, want %#x", seq, i, pkt.Payload[i], want[i])
					}
				}
				for _, b := range pkt.Payload[n:] {
					if b != 0 {
						return fmt.Errorf("packet %d: non-zero padding", seq)
					}
				}
				received += n
				seq++
				// Give space back often so the producer's pending send
				// size is crossed in many different ways.
				if seq%3 == 0 && r.Commit() {
					ring(spaceBell)
				}
			}
			if r.Commit() {
				ring(spaceBell)
			}
			if r.UnmaskInterrupts() {
				continue
			}
			if err := wait(dataBell); err != nil {
				return fmt.Errorf("consumer at seq %d: %w", seq, err)
			}
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if received < total {
		t.Fatalf("received %d bytes, want ≥ %d", received, total)
	}
	ws, rs := w.Stats(), r.Stats()
	if ws.Packets != rs.Packets || ws.Bytes != rs.Bytes {
		t.Errorf("writer %+v vs reader %+v", ws, rs)
	}
	t.Logf("%d packets, %d bytes; writer %+v; reader %+v", rs.Packets, received, ws, rs)
}
