package heartbeat

import (
	"bytes"
	"context"
	"testing"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/drivers/ic/ictest"
)

// beat is a heartbeat request laid out by hand from docs/hyperv-protocol.md §8.1/§8.3:
// message version 3.0, sequence 0x0102030405060708, 32 reserved bytes.
var beat = []byte{
	0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, // pipe header
	0x03, 0x00, 0x00, 0x00, // @8 framework 3.0
	0x01, 0x00, // @12 type heartbeat
	0x03, 0x00, 0x00, 0x00, // @14 message version 3.0
	0x28, 0x00, // @18 size 40
	0x00, 0x00, 0x00, 0x00, // @20 status
	0x2a,       // @24 IC transaction id
	0x03,       // @25 transaction | request
	0x00, 0x00, // @26
	0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // @28 sequence
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // @36 reserved
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}

// beatReply is the exact reply: flags 5, S_OK, sequence + 1.
var beatReply = []byte{
	0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00,
	0x03, 0x00, 0x00, 0x00,
	0x01, 0x00,
	0x03, 0x00, 0x00, 0x00,
	0x28, 0x00,
	0x00, 0x00, 0x00, 0x00,
	0x2a,
	0x05, // transaction | response
	0x00, 0x00,
	0x09, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // sequence + 1
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}

func attached(t *testing.T) (*Driver, *ictest.Channel) {
	t.Helper()
	d := New()
	ch := ictest.New(Class)
	if err := d.attach(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	reply, err := ch.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{{Major: 1}, {Major: 3}}))
	if err != nil {
		t.Fatal(err)
	}
	if reply[28] != 1 || reply[36] != 3 || reply[40] != 3 {
		t.Fatalf("negotiation reply % x", reply)
	}
	return d, ch
}

func TestHeartbeatReplyBytes(t *testing.T) {
	d, ch := attached(t)
	reply, err := ch.Call(0xfeedface, beat)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[:len(beatReply)], beatReply) {
		t.Fatalf("reply =\n% x\nwant\n% x", reply, beatReply)
	}
	st := d.Stats()
	if st.Beats != 1 || st.LastSequence != 0x0102030405060708 || !st.IC.Negotiated || st.IC.Message != (ic.Version{Major: 3}) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestHeartbeatSequenceWraps(t *testing.T) {
	_, ch := attached(t)
	for _, c := range []struct{ seq, want uint64 }{{0, 1}, {41, 42}, {^uint64(0), 0}} {
		body := make([]byte, 40)
		for i := range 8 {
			body[i] = byte(c.seq >> (8 * i))
		}
		reply, err := ch.Call(c.seq, ictest.Message(ic.TypeHeartbeat, ic.Version{Major: 3}, body))
		if err != nil {
			t.Fatal(err)
		}
		var got uint64
		for i := range 8 {
			got |= uint64(reply[28+i]) << (8 * i)
		}
		if got != c.want {
			t.Errorf("seq %d: reply %d, want %d", c.seq, got, c.want)
		}
	}
}

func TestHeartbeatApplicationState(t *testing.T) {
	d, ch := attached(t)
	d.SetApplicationState(StateHealthy)
	reply, err := ch.Call(2, beat)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[36:40], []byte{1, 0, 0, 0}) {
		t.Fatalf("@36 = % x, want healthy (1)", reply[36:40])
	}
	// A host that sends only the sequence gets no state written past it.
	reply, err = ch.Call(3, beat[:36])
	if err != nil {
		t.Fatal(err)
	}
	if reply[28] != 0x09 || reply[20] != 0 {
		t.Fatalf("short heartbeat reply % x", reply)
	}
}

func TestHeartbeatTruncated(t *testing.T) {
	d, ch := attached(t)
	reply, err := ch.Call(4, beat[:32]) // 32 bytes: still 32 after ring padding
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reply[20:24], []byte{0x57, 0x00, 0x07, 0x80}) {
		t.Fatalf("status % x, want E_INVALIDARG", reply[20:24])
	}
	if d.Stats().Beats != 0 {
		t.Fatal("truncated heartbeat counted")
	}
}

func TestHeartbeatHandleAllocatesNothing(t *testing.T) {
	d := New()
	msg := bytes.Clone(beat)
	if n := testing.AllocsPerRun(100, func() { d.handle(msg, ic.Version{Major: 3}) }); n != 0 {
		t.Fatalf("%v allocations per heartbeat", n)
	}
}

func TestHeartbeatReattach(t *testing.T) {
	d, ch := attached(t)
	if _, err := ch.Call(5, beat); err != nil {
		t.Fatal(err)
	}
	ch.Rescind()
	ch2 := ictest.New(Class)
	if err := d.attach(context.Background(), ch2); err != nil {
		t.Fatal(err)
	}
	if _, err := ch2.Call(1, ictest.Negotiation(ictest.WindowsFrameworks, Versions)); err != nil {
		t.Fatal(err)
	}
	if _, err := ch2.Call(6, beat); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Beats != 2 || st.IC.Messages != 2 {
		t.Fatalf("Stats after re-attach = %+v", st)
	}
	if err := d.Close(context.Background()); err != nil || !ch2.Closed() {
		t.Fatalf("Close: %v", err)
	}
}
