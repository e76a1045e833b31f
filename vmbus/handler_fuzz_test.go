package vmbus

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/gohv/gohv/vmbus/chanmsg"
)

// FuzzHandler fills SINT 2's message slot and event-flag area with
// arbitrary bytes, runs the interrupt handler, and feeds whatever it
// queued to the message state machine. Invariants: no panic; the slot is
// released unless the queue was full; relid 0 is never marked pending;
// every queued message is at most 240 bytes.
func FuzzHandler(f *testing.F) {
	offer := make([]byte, 196)
	offer[0], offer[184] = 1, 5
	slot := func(typ uint32, size byte, flags byte, payload []byte) []byte {
		b := make([]byte, 256)
		binary.LittleEndian.PutUint32(b, typ)
		b[4], b[5] = size, flags
		copy(b[16:], payload)
		return b
	}
	f.Add(slot(1, 196, 1, offer), []byte{0x21, 0, 0, 0}, uint32(chanmsg.Version5_3))
	f.Add(slot(1, 255, 0, nil), []byte{1}, uint32(chanmsg.Version2_4))
	f.Add(slot(0x80000010, 24, 0, nil), []byte{0xff, 0xff}, uint32(chanmsg.Version1_1))
	f.Add(slot(1, 12, 0, []byte{2, 0, 0, 0, 0, 0, 0, 0, 5}), []byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, raw, events []byte, version uint32) {
		h := newFakeHost(t)
		b, err := newBus(h, h.synic, Config{CleanupTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		b.version.Store(version)
		zero := newChannel(b, Offer{}) // relid 0 is never a channel: it must never be kicked
		b.relids[0].Store(zero)
		copy(h.synic.simp[512:768], raw)
		copy(h.synic.siefp[512:768], events)
		copy(b.intPage.Mem, events) // < 2.4 reads relid bits here
		b.handler()
		if le32(h.synic.simp[512:]) != 0 && !b.q.full() {
			t.Fatal("slot not released")
		}
		if len(zero.kickCh) != 0 {
			t.Fatal("relid 0 kicked")
		}
		b.relids[0].Store(nil)
		var buf [240]byte
		for {
			n := b.q.pop(&buf)
			if n < 0 {
				break
			}
			if n > 240 {
				t.Fatalf("queued %d bytes", n)
			}
			b.handle(buf[:n])
		}
		b.cleanups.Wait()
	})
}
