package hvsim

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
	"unicode/utf16"
)

// nextPacket waits for the host's next packet on the guest's inbound ring.
func (oc *openedChannel) nextPacket(t testing.TB) []byte {
	t.Helper()
	deadline := time.After(testWait)
	for {
		if p := oc.in.read(); p != nil {
			return p
		}
		select {
		case <-oc.g.evKick:
		case <-time.After(5 * time.Millisecond): // events may be coalesced
		case <-deadline:
			t.Fatal("no packet from the host")
		}
	}
}

// reply sends an IC response (docs/hyperv-protocol.md §8.1: same buffer, flags 0x05,
// in-band, same VMBus transaction id).
func (oc *openedChannel) reply(t testing.TB, txid uint64, payload []byte) {
	t.Helper()
	payload[25] = 0x05
	sig, ok := oc.out.write(6, 0, txid, payload)
	if !ok {
		t.Fatal("guest ring full")
	}
	if sig {
		if err := oc.g.p.SignalEvent(oc.conn, 0); err != nil {
			t.Fatal(err)
		}
	}
}

// negotiate answers the host's version negotiation with fw/msg.
func (oc *openedChannel) negotiate(t testing.TB, wantMsgVersions []byte, fw, msg [4]byte) {
	t.Helper()
	pkt := oc.nextPacket(t)
	if get16(pkt, 0) != 6 || get16(pkt, 2) != 2 {
		t.Fatalf("descriptor % x", pkt[:16])
	}
	p := pkt[16:]
	n := 2 + len(wantMsgVersions)/4
	want := []byte{
		1, 0, 0, 0, // pipe: data
		byte(20 + 8 + 4*n), 0, 0, 0, // pipe: size after the pipe header
		1, 0, 0, 0, // framework 1.0
		0, 0, // type 0 = negotiate
		1, 0, 0, 0, // message 1.0
		byte(8 + 4*n), 0, // message size
		0, 0, 0, 0, // status
		p[24], 0x03, 0, 0, // txid, flags transaction|request
		2, 0, byte(n - 2), 0, 0, 0, 0, 0, // counts + reserved
		3, 0, 0, 0, 1, 0, 0, 0, // framework 3.0, 1.0
	}
	want = append(want, wantMsgVersions...)
	if !bytes.Equal(p[:len(want)], want) {
		t.Fatalf("negotiate\n got % x\nwant % x", p[:len(want)], want)
	}
	r := bytes.Clone(p[:28+16])
	r[18] = 16
	r[28], r[30] = 1, 1
	copy(r[36:], fw[:])
	copy(r[40:], msg[:])
	oc.reply(t, binary64(pkt[8:]), r)
}

func TestHeartbeatIC(t *testing.T) {
	hb := NewHeartbeat(time.Millisecond)
	oc := setupDevice(t, Config{}, hb, 4, 2)
	oc.negotiate(t, []byte{3, 0, 0, 0, 1, 0, 0, 0}, [4]byte{3, 0, 0, 0}, [4]byte{3, 0, 0, 0})
	for i := uint64(1); i <= 3; i++ {
		pkt := oc.nextPacket(t)
		p := pkt[16:]
		if get16(p, 12) != 1 || get16(p, 14) != 3 || get16(p, 8) != 3 || p[25] != 0x03 {
			t.Fatalf("heartbeat header % x", p[:28])
		}
		seq := binary64(p[28:])
		if seq != i {
			t.Fatalf("sequence %d, want %d", seq, i)
		}
		r := bytes.Clone(p)
		put64(r, 28, seq+1)
		oc.reply(t, binary64(pkt[8:]), r)
	}
	// A wrong answer is counted and recorded.
	pkt := oc.nextPacket(t)
	r := bytes.Clone(pkt[16:])
	put64(r, 28, 12345)
	oc.reply(t, binary64(pkt[8:]), r)
	deadline := time.Now().Add(testWait)
	for hb.Stats().Wrong == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st := hb.Stats()
	if st.Correct != 3 || st.Wrong != 1 {
		t.Fatalf("stats %+v", st)
	}
	if v := oc.g.h.Violations(); len(v) != 1 || !errors.Is(v[0], ErrIC) {
		t.Fatalf("violations %v", v)
	}
	if fw, msg, ok := hb.Negotiated(); !ok || fw != 0x30000 || msg != 0x30000 {
		t.Errorf("negotiated %#x %#x %v", fw, msg, ok)
	}
}

func TestShutdownIC(t *testing.T) {
	sd := NewShutdown()
	oc := setupDevice(t, Config{}, sd, 4, 2)
	type result struct {
		hr  uint32
		err error
	}
	res := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		hr, err := sd.Request(ctx, ShutdownRestart, "bye")
		res <- result{hr, err}
	}()
	oc.negotiate(t, []byte{3, 0, 2, 0, 3, 0, 1, 0, 3, 0, 0, 0, 1, 0, 0, 0}, [4]byte{3, 0, 0, 0}, [4]byte{3, 0, 2, 0})
	pkt := oc.nextPacket(t)
	p := pkt[16:]
	if get16(p, 12) != 3 || get16(p, 14) != 3 || get16(p, 16) != 2 || get16(p, 18) != 12+2048 {
		t.Fatalf("shutdown header % x", p[:28])
	}
	if get32(p, 36) != 2 {
		t.Errorf("flags %d", get32(p, 36))
	}
	msg := utf16.Decode([]uint16{get16(p, 40), get16(p, 42), get16(p, 44), get16(p, 46)})
	if string(msg) != "bye\x00" {
		t.Errorf("message %q", string(msg))
	}
	r := bytes.Clone(p)
	put32(r, 20, 0x80004005)
	oc.reply(t, binary64(pkt[8:]), r)
	got := <-res
	if got.err != nil || got.hr != HResultFail {
		t.Fatalf("Request = %#x, %v", got.hr, got.err)
	}
	noViolations(t, oc.g.h)
}

func TestICNoCommonVersion(t *testing.T) {
	sd := NewShutdown()
	oc := setupDevice(t, Config{}, sd, 4, 2)
	pkt := oc.nextPacket(t)
	r := bytes.Clone(pkt[16 : 16+28+8])
	r[28], r[30] = 0, 0
	oc.reply(t, binary64(pkt[8:]), r)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if _, err := sd.Request(ctx, 0, ""); !errors.Is(err, ErrICUnusable) {
		t.Fatalf("Request: %v", err)
	}
}
