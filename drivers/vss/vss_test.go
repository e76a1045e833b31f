package vss

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/ic"
	"github.com/gohv/gohv/drivers/ic/ictest"
	"github.com/gohv/gohv/vmbus/ring"
)

// channel is an ictest.Channel that also reports every send, so tests
// can wait for deferred replies.
type channel struct {
	*ictest.Channel
	sent chan ictest.Sent
}

func (c *channel) TrySend(typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	if err := c.Channel.TrySend(typ, flags, txid, parts...); err != nil {
		return err
	}
	s := c.Channel.Sent()
	c.sent <- s[len(s)-1]
	return nil
}

// call delivers m and returns the reply sent at once, or fails.
func (c *channel) call(t *testing.T, txid uint64, m []byte) []byte {
	t.Helper()
	c.Queue(ring.TypeDataInband, txid, m)
	c.Interrupt()
	select {
	case s := <-c.sent:
		if s.TransactionID != txid || s.Type != ring.TypeDataInband || s.Flags != 0 {
			t.Fatalf("reply txid %d type %v flags %d", s.TransactionID, s.Type, s.Flags)
		}
		return s.Payload
	default:
		t.Fatal("no immediate reply")
		return nil
	}
}

// post delivers m without expecting an immediate reply.
func (c *channel) post(t *testing.T, txid uint64, m []byte) {
	t.Helper()
	c.Queue(ring.TypeDataInband, txid, m)
	c.Interrupt()
}

// await waits for the deferred reply with txid.
func (c *channel) await(t *testing.T, txid uint64) []byte {
	t.Helper()
	select {
	case s := <-c.sent:
		if s.TransactionID != txid {
			t.Fatalf("reply for txid %d, want %d", s.TransactionID, txid)
		}
		return s.Payload
	case <-time.After(10 * time.Second):
		t.Fatalf("no reply for txid %d", txid)
		return nil
	}
}

// vssMsg is a VSS request with operation op; the body is 8 bytes of
// header plus 24 of data (OpenVMM VssMessage) so replies have room.
func vssMsg(op byte, v ic.Version) []byte {
	body := make([]byte, 32)
	body[0] = op
	return ictest.Message(ic.TypeVSS, v, body)
}

var v5 = ic.Version{Major: 5}

func status(reply []byte) ic.Status { return ic.Status(binary.LittleEndian.Uint32(reply[20:])) }

func attached(t *testing.T, cfg Config, versions []ic.Version) (*Driver, *channel) {
	t.Helper()
	d := New(cfg)
	ch := &channel{Channel: ictest.New(Class), sent: make(chan ictest.Sent, 16)}
	if err := d.attach(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	ch.call(t, 1, ictest.Negotiation(ictest.WindowsFrameworks, versions))
	return d, ch
}

// events records freeze and thaw calls in order.
type events struct {
	mu  sync.Mutex
	log []string
	ch  chan string
}

func newEvents() *events { return &events{ch: make(chan string, 32)} }

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
	e.ch <- s
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.log...)
}

func (e *events) hook(name string, err error) Hook {
	return HookFuncs{
		FreezeFunc: func(context.Context) error { e.add("freeze " + name); return err },
		ThawFunc:   func() { e.add("thaw " + name) },
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hotBackup is a HOT_BACKUP request laid out by hand from
// docs/hyperv-protocol.md §8.1/§9.1: message version 5.0, operation 2,
// 7 reserved bytes, 24 data bytes.
var hotBackup = []byte{
	0x01, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00, // pipe header, size 52
	0x03, 0x00, 0x00, 0x00, // @8 framework 3.0
	0x05, 0x00, // @12 type VSS
	0x05, 0x00, 0x00, 0x00, // @14 message version 5.0
	0x20, 0x00, // @18 size 32
	0x00, 0x00, 0x00, 0x00, // @20 status
	0x01, 0x03, 0x00, 0x00, // @24 txid, flags, reserved
	0x02,                                     // @28 operation HOT_BACKUP
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // @29 reserved
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // @36 data
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}

func TestHotBackupReplyBytes(t *testing.T) {
	_, ch := attached(t, Config{}, []ic.Version{{Major: 5}})
	reply := ch.call(t, 9, hotBackup)
	want := bytes.Clone(hotBackup)
	want[25] = 0x05                        // transaction | response
	copy(want[36:], []byte{0x05, 0, 0, 0}) // flags: no auto-recovery
	if !bytes.Equal(reply[:len(want)], want) {
		t.Fatalf("reply\n% x\nwant\n% x", reply, want)
	}
}

func TestImmediateOperations(t *testing.T) {
	d, ch := attached(t, Config{}, []ic.Version{{Major: 4}, {Major: 5}, {Major: 6}, {Major: 7}})
	if st := d.Stats(); st.IC.Message != (ic.Version{Major: 6}) {
		t.Fatalf("negotiated %v", st.IC.Message)
	}
	v6 := ic.Version{Major: 6}
	dm := vssMsg(3, v6)
	copy(dm[36:], []byte{0xff, 0xff, 0xff, 0xff})
	cases := []struct {
		name string
		m    []byte
		want ic.Status
	}{
		{"create", vssMsg(0, v6), ic.StatusOK},
		{"delete", vssMsg(1, v6), ic.StatusOK},
		{"get-dm-info", dm, ic.StatusOK},
		{"auto-recover", vssMsg(7, v6), ic.StatusOK},
		{"query-cluster-info", vssMsg(8, v6), ic.StatusNotSupported},
		{"unknown", vssMsg(9, v6), ic.StatusNotSupported},
		{"short", ictest.Message(ic.TypeVSS, v6, []byte{2, 0, 0}), ic.StatusInvalidArg},
	}
	for _, c := range cases {
		reply := ch.call(t, 3, c.m)
		if got := status(reply); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if reply := ch.call(t, 4, dm); !bytes.Equal(reply[36:40], []byte{0, 0, 0, 0}) {
		t.Errorf("GET_DM_INFO flags % x, want 0", reply[36:40])
	}
	// A HOT_BACKUP with no room for the reply's flags (the ring pads
	// messages to 8 bytes, so only a direct call can show it).
	if st, _ := d.handle(newRunner(d, nil), ictest.Message(ic.TypeVSS, v6, []byte{2, 0, 0, 0, 0, 0, 0, 0}), 5, v6); st != ic.StatusInvalidArg {
		t.Errorf("HOT_BACKUP without data: %v", st)
	}
}

func TestFreezeThaw(t *testing.T) {
	ev := newEvents()
	d, ch := attached(t, Config{Freezer: ev.hook("disks", nil)}, []ic.Version{{Major: 5}})
	d.AddHook(ev.hook("db", nil))
	remove := d.AddHook(ev.hook("gone", nil))
	d.AddHook(ev.hook("cache", nil))
	remove()

	freeze := vssMsg(5, v5)
	ch.post(t, 10, freeze)
	reply := ch.await(t, 10)
	// The deferred reply is the request with flags 5 and S_OK.
	wantReply := bytes.Clone(freeze)
	wantReply[25] = 5
	if !bytes.Equal(reply[:len(wantReply)], wantReply) {
		t.Fatalf("FREEZE reply\n% x\nwant\n% x", reply, wantReply)
	}
	if st := d.Stats(); !st.Frozen || st.Freezes != 1 {
		t.Fatalf("after FREEZE: %+v", st)
	}
	ch.post(t, 11, vssMsg(6, v5))
	if reply := ch.await(t, 11); status(reply) != ic.StatusOK {
		t.Fatalf("THAW status %v", status(reply))
	}
	want := []string{"freeze db", "freeze cache", "freeze disks", "thaw disks", "thaw cache", "thaw db"}
	if got := ev.get(); !equal(got, want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	// BACKUP_COMPLETE after a normal thaw: nothing to do.
	ch.post(t, 12, vssMsg(4, v5))
	if reply := ch.await(t, 12); status(reply) != ic.StatusOK {
		t.Fatalf("BACKUP_COMPLETE status %v", status(reply))
	}
	if st := d.Stats(); st.Frozen || st.Thaws != 1 || st.Operations[OpFreeze] != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestFreezeHookFailure(t *testing.T) {
	ev := newEvents()
	d, ch := attached(t, Config{Freezer: ev.hook("disks", nil)}, []ic.Version{{Major: 5}})
	d.AddHook(ev.hook("a", nil))
	d.AddHook(ev.hook("b", errors.New("busy")))
	ch.post(t, 20, vssMsg(5, v5))
	if reply := ch.await(t, 20); status(reply) != ic.StatusFail {
		t.Fatalf("FREEZE with failing hook: %v", status(reply))
	}
	want := []string{"freeze a", "freeze b", "thaw disks", "thaw a"}
	if got := ev.get(); !equal(got, want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if st := d.Stats(); st.Frozen || st.FreezeFailures != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

// blockingFreezer blocks Freeze until its context ends.
type blockingFreezer struct {
	entered chan struct{}
	thawed  chan struct{}
}

func (f *blockingFreezer) Freeze(ctx context.Context) error {
	f.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}
func (f *blockingFreezer) Thaw() { f.thawed <- struct{}{} }

func TestFreezeTimeout(t *testing.T) {
	f := &blockingFreezer{entered: make(chan struct{}, 1), thawed: make(chan struct{}, 4)}
	d, ch := attached(t, Config{Freezer: f, FreezeTimeout: 20 * time.Millisecond}, []ic.Version{{Major: 5}})
	ch.post(t, 30, vssMsg(5, v5))
	if reply := ch.await(t, 30); status(reply) != ic.StatusFail {
		t.Fatalf("timed-out FREEZE: %v", status(reply))
	}
	<-f.thawed
	if d.Stats().Frozen {
		t.Fatal("frozen after a failed freeze")
	}
}

func TestThawCancelsFreezeInProgress(t *testing.T) {
	f := &blockingFreezer{entered: make(chan struct{}, 1), thawed: make(chan struct{}, 4)}
	_, ch := attached(t, Config{Freezer: f}, []ic.Version{{Major: 5}})
	ch.post(t, 40, vssMsg(5, v5))
	<-f.entered
	ch.post(t, 41, vssMsg(6, v5))
	if reply := ch.await(t, 40); status(reply) != ic.StatusFail {
		t.Fatalf("cancelled FREEZE: %v", status(reply))
	}
	if reply := ch.await(t, 41); status(reply) != ic.StatusOK {
		t.Fatalf("THAW: %v", status(reply))
	}
	<-f.thawed
}

func TestHoldTimeoutResumesAndReportsFailure(t *testing.T) {
	ev := newEvents()
	d, ch := attached(t, Config{Freezer: ev.hook("disks", nil), HoldTimeout: 10 * time.Millisecond}, []ic.Version{{Major: 5}})
	ch.post(t, 50, vssMsg(5, v5))
	if reply := ch.await(t, 50); status(reply) != ic.StatusOK {
		t.Fatalf("FREEZE: %v", status(reply))
	}
	for e := range ev.ch {
		if e == "thaw disks" {
			break
		}
	}
	if frozenSettled(d) {
		t.Fatal("frozen after the thaw")
	}
	if st := d.Stats(); st.Frozen || st.HoldTimeouts != 1 {
		t.Fatalf("after hold timeout: %+v", st)
	}
	ch.post(t, 51, vssMsg(6, v5))
	if reply := ch.await(t, 51); status(reply) != ic.StatusFail {
		t.Fatalf("late THAW: %v, want E_FAIL", status(reply))
	}
	ch.post(t, 52, vssMsg(6, v5))
	if reply := ch.await(t, 52); status(reply) != ic.StatusOK {
		t.Fatalf("second THAW: %v", status(reply))
	}
}

func TestRescindWhileFrozenThaws(t *testing.T) {
	ev := newEvents()
	d, ch := attached(t, Config{Freezer: ev.hook("disks", nil)}, []ic.Version{{Major: 5}})
	ch.post(t, 60, vssMsg(5, v5))
	ch.await(t, 60)
	ch.Rescind()
	for e := range ev.ch {
		if e == "thaw disks" {
			break
		}
	}
	if frozenSettled(d) {
		t.Fatal("frozen after the thaw")
	}
	if d.Stats().Frozen {
		t.Fatal("still frozen after rescind")
	}
}

// gatedFreezer blocks Freeze until release is closed.
type gatedFreezer struct {
	entered chan struct{}
	release chan struct{}
}

func (f *gatedFreezer) Freeze(ctx context.Context) error {
	f.entered <- struct{}{}
	select {
	case <-f.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (f *gatedFreezer) Thaw() {}

func TestBusy(t *testing.T) {
	f := &gatedFreezer{entered: make(chan struct{}, 1), release: make(chan struct{})}
	d, ch := attached(t, Config{Freezer: f}, []ic.Version{{Major: 5}})
	ch.post(t, 70, vssMsg(5, v5))
	<-f.entered // the worker holds this FREEZE; two more may wait
	// Repeated FREEZEs (unlike THAW) do not cancel the one in progress.
	ch.post(t, 71, vssMsg(5, v5))
	ch.post(t, 72, vssMsg(5, v5))
	reply := ch.call(t, 73, vssMsg(5, v5))
	if status(reply) != ic.StatusMachineLocked || d.Stats().Busy != 1 {
		t.Fatalf("third waiting message: %v", status(reply))
	}
	close(f.release)
	for _, id := range []uint64{70, 71, 72} {
		if reply := ch.await(t, id); status(reply) != ic.StatusOK {
			t.Fatalf("txid %d: %v", id, status(reply))
		}
	}
	if st := d.Stats(); st.Freezes != 1 || !st.Frozen {
		t.Fatalf("Stats = %+v", st)
	}
}

// Version lists the hosts offer (docs/hyperv-protocol.md §8.2). Windows
// lists are inferred from OpenVMM's version names (4.0 Windows 8 /
// Server 2012, 5.0 "Blue" / 2012 R2, 6.0 and 7.0 "Threshold" / 2016).
func TestNegotiationWithHosts(t *testing.T) {
	hosts := []struct {
		name     string
		versions []ic.Version
		want     ic.Version
		ok       bool
	}{
		{"WS2012", []ic.Version{{Major: 4}}, ic.Version{}, false},
		{"WS2012R2", []ic.Version{{Major: 4}, {Major: 5}}, ic.Version{Major: 5}, true},
		{"WS2016", []ic.Version{{Major: 4}, {Major: 5}, {Major: 6}, {Major: 7}}, ic.Version{Major: 6}, true},
		{"WS2019", []ic.Version{{Major: 4}, {Major: 5}, {Major: 6}, {Major: 7}}, ic.Version{Major: 6}, true},
		{"WS2022", []ic.Version{{Major: 7}, {Major: 6}, {Major: 5}, {Major: 4}}, ic.Version{Major: 6}, true},
	}
	for _, h := range hosts {
		d, ch := attached(t, Config{}, h.versions)
		st := d.Stats().IC
		if st.Negotiated != h.ok || st.Message != h.want {
			t.Errorf("%s: negotiated %v %v, want %v %v", h.name, st.Negotiated, st.Message, h.ok, h.want)
		}
		if !h.ok {
			// Unusable IC: every message is refused.
			if reply := ch.call(t, 2, hotBackup); status(reply) != ic.StatusNotSupported {
				t.Errorf("%s: HOT_BACKUP on unusable IC: %v", h.name, status(reply))
			}
		}
	}
}

func TestHandleAllocatesNothing(t *testing.T) {
	d := New(Config{})
	r := newRunner(d, nil)
	for _, m := range [][]byte{hotBackup, vssMsg(3, v5), vssMsg(0, v5), vssMsg(9, v5), vssMsg(5, v5), vssMsg(6, v5), {1, 2}} {
		m := bytes.Clone(m)
		if n := testing.AllocsPerRun(50, func() { d.handle(r, m, 1, v5) }); n != 0 {
			t.Errorf("operation %d: %v allocations", m[min(len(m)-1, 28)], n)
		}
	}
}

func FuzzHandle(f *testing.F) {
	f.Add(hotBackup, uint16(5))
	f.Add(vssMsg(5, v5), uint16(5))
	f.Add(vssMsg(8, v5), uint16(6))
	f.Add([]byte{}, uint16(4))
	f.Fuzz(func(t *testing.T, b []byte, major uint16) {
		d := New(Config{})
		r := newRunner(d, nil)
		m := bytes.Clone(b)
		st, deferred := d.handle(r, m, 1, ic.Version{Major: major})
		if len(b) < 36 && (deferred || st == ic.StatusOK) {
			t.Fatalf("short message accepted: %v %v", st, deferred)
		}
		if deferred {
			if s := r.next(); s == nil || !bytes.Equal(s.msg[:s.n], b) {
				t.Fatal("deferred message not queued as received")
			}
		}
	})
}

// frozenSettled reports whether d is frozen once the freeze or thaw in
// progress (they run under opMu) completed.
func frozenSettled(d *Driver) bool {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	return d.frozen
}

// FuzzProcess feeds arbitrary messages through the runner's framing and
// negotiation, after a successful negotiation.
func FuzzProcess(f *testing.F) {
	f.Add(hotBackup)
	f.Add(ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{{Major: 5}}))
	f.Add(vssMsg(5, v5))
	f.Add([]byte{1, 0, 0, 0})
	neg := ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{{Major: 5}, {Major: 6}})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := New(Config{})
		r := newRunner(d, nil)
		if !r.process(bytes.Clone(neg), 1) || !r.negotiated.Load() {
			t.Fatal("negotiation failed")
		}
		m := bytes.Clone(b)
		reply := r.process(m, 2)
		if reply && len(m) >= ic.HeaderSize && m[25] != byte(ic.FlagTransaction|ic.FlagResponse) {
			t.Fatalf("reply flags %#x", m[25])
		}
		if len(b) < ic.HeaderSize && reply {
			t.Fatal("runt answered")
		}
	})
}

// sendChannel also has the blocking Send of *vmbus.Channel, which deferred
// replies must prefer.
type sendChannel struct {
	*channel
	sends chan uint64
}

func (c *sendChannel) Send(ctx context.Context, typ ring.PacketType, flags uint16, txid uint64, parts ...[]byte) error {
	c.sends <- txid
	return c.channel.TrySend(typ, flags, txid, parts...)
}

func TestDeferredReplyUsesSend(t *testing.T) {
	d := New(Config{})
	ch := &sendChannel{channel: &channel{Channel: ictest.New(Class), sent: make(chan ictest.Sent, 16)}, sends: make(chan uint64, 4)}
	if err := d.attach(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	ch.call(t, 1, ictest.Negotiation(ictest.WindowsFrameworks, []ic.Version{{Major: 5}}))
	ch.post(t, 80, vssMsg(5, v5))
	if reply := ch.await(t, 80); status(reply) != ic.StatusOK {
		t.Fatalf("FREEZE: %v", status(reply))
	}
	if id := <-ch.sends; id != 80 {
		t.Fatalf("Send carried txid %d", id)
	}
}

// TestLayoutPinned pins the wire constants to docs/hyperv-protocol.md §9.1.
func TestLayoutPinned(t *testing.T) {
	if offOperation != 28 || offData != 36 || offFlags != 36 || minFlagsMessage != 40 {
		t.Fatalf("offsets %d %d %d %d", offOperation, offData, offFlags, minFlagsMessage)
	}
	for op, since := range map[Operation]ic.Version{
		OpCreate: {Major: 1}, OpGetDMInfo: {Major: 1}, OpBackupComplete: {Major: 4},
		OpFreeze: {Major: 5}, OpThaw: {Major: 5}, OpAutoRecover: {Major: 5}, OpQueryClusterInfo: {Major: 6},
	} {
		if op.since() != since {
			t.Errorf("%v since %v, want %v", op, op.since(), since)
		}
	}
}
