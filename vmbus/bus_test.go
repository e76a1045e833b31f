package vmbus

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

var (
	heartbeatClass = [16]byte{0x39, 0x4f, 0x16, 0x57, 0x15, 0x91, 0x78, 0x4e, 0xab, 0x55, 0x38, 0x2f, 0x3b, 0xd5, 0x42, 0x2d}
	scsiClass      = [16]byte{0xd9, 0x63, 0x61, 0xba, 0xa1, 0x04, 0x29, 0x4d, 0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f}
	instanceA      = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	instanceB      = [16]byte{0xb}
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, h *fakeHost, cfg Config) *Bus {
	t.Helper()
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	b, err := Connect(testCtx(t), h, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		if !b.isClosing() {
			_ = b.Close(context.Background())
		}
	})
	return b
}

// waitFor polls cond (the guest works asynchronously) with a generous
// deadline; it asserts no timing, only that cond eventually holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConnectVersion53(t *testing.T) {
	h := newFakeHost(t)
	h.connID = 7
	b := connect(t, h, Config{})
	if b.Version() != chanmsg.Version5_3 {
		t.Fatalf("Version = %v, want 5.3", b.Version())
	}
	msgs := h.messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want INITIATE_CONTACT and REQUESTOFFERS", len(msgs))
	}
	// INITIATE_CONTACT ≥ 5.0 (docs/hyperv-protocol.md §3.4): type 14, version 0x00050003,
	// target VP 3, @16 SINT 2, @17 VTL 0, monitor pages at PFN 0x1001 and
	// 0x1002 (the fake hands out PFNs from 0x1000; the interrupt page is
	// first).
	want := []byte{
		0x0e, 0, 0, 0, 0, 0, 0, 0,
		0x03, 0x00, 0x05, 0x00, 3, 0, 0, 0,
		2, 0, 0, 0, 0, 0, 0, 0,
		0x00, 0x10, 0x00, 0x01, 0, 0, 0, 0,
		0x00, 0x20, 0x00, 0x01, 0, 0, 0, 0,
	}
	if msgs[0].conn != 4 || !bytes.Equal(msgs[0].data, want) {
		t.Errorf("INITIATE_CONTACT on %d:\n got % x\nwant % x", msgs[0].conn, msgs[0].data, want)
	}
	if msgs[1].conn != 7 || !bytes.Equal(msgs[1].data, []byte{3, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("REQUESTOFFERS on %d: % x, want connection 7 and 03 00..", msgs[1].conn, msgs[1].data)
	}
}

func TestConnectStepDown(t *testing.T) {
	tests := []struct {
		name      string
		accept    func(uint32) bool
		noConn4   bool
		versions  []chanmsg.Version
		want      chanmsg.Version
		contacts  []uint32 // versions in the recorded INITIATE_CONTACTs
		wantErr   error
		lastConn1 bool
	}{
		{
			name:     "host rejects newer than 4.0",
			accept:   func(v uint32) bool { return v <= 0x40000 },
			want:     chanmsg.Version4_0,
			contacts: []uint32{0x50003, 0x50002, 0x50001, 0x50000, 0x40001, 0x40000},
		},
		{
			name:     "no connection 4",
			noConn4:  true,
			want:     chanmsg.Version4_1,
			contacts: []uint32{0x40001},
		},
		{
			name:     "all rejected",
			accept:   func(uint32) bool { return false },
			versions: []chanmsg.Version{chanmsg.Version5_0, chanmsg.Version3_0},
			contacts: []uint32{0x50000, 0x30000},
			wantErr:  ErrNoVersion,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.accept, h.noConn4 = tt.accept, tt.noConn4
			b, err := Connect(testCtx(t), h, Config{Versions: tt.versions, Logf: t.Logf})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Connect error %v, want %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close(context.Background())
				if b.Version() != tt.want {
					t.Errorf("Version %v, want %v", b.Version(), tt.want)
				}
			}
			var got []uint32
			for _, m := range h.messagesOfType(14) {
				got = append(got, le32(m.data[8:]))
				v := le32(m.data[8:])
				if v < 0x50000 {
					if m.conn != 1 {
						t.Errorf("version %#x on connection %d, want 1", v, m.conn)
					}
					// < 5.0: @16 = interrupt page GPA (PFN 0x1000).
					if gpa := le64(m.data[16:]); gpa != 0x1000<<12 {
						t.Errorf("interrupt page GPA %#x, want %#x", gpa, 0x1000<<12)
					}
				} else if m.conn != 4 {
					t.Errorf("version %#x on connection %d, want 4", v, m.conn)
				}
			}
			if !slices.Equal(got, tt.contacts) {
				t.Errorf("INITIATE_CONTACT versions %x, want %x", got, tt.contacts)
			}
		})
	}
}

func TestConnectTransientRetry(t *testing.T) {
	h := newFakeHost(t)
	h.postFail = []error{hv.StatusInsufficientBuffers, hv.StatusInsufficientMemory}
	b := connect(t, h, Config{})
	if got := b.Stats().PostRetries; got != 2 {
		t.Errorf("PostRetries = %d, want 2", got)
	}
}

func TestConnectDeadline(t *testing.T) {
	h := newFakeHost(t)
	h.silent.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Connect(ctx, h, Config{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect error %v, want deadline exceeded", err)
	}
	if h.synic.handler.Load() != nil {
		t.Error("handler still installed after failed Connect")
	}
}

func TestOffers(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{
		offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0),
		offerBytes(scsiClass, instanceB, 2, 0x2002, 0),
		offerBytes(scsiClass, instanceB, 9, 0x2009, 1),
	}
	b := connect(t, h, Config{})
	chs := b.Channels()
	var relids []uint32
	for _, c := range chs {
		relids = append(relids, c.Offer().RelID)
	}
	if !slices.Equal(relids, []uint32{2, 5, 9}) {
		t.Fatalf("relids %v, want [2 5 9]", relids)
	}
	hb := chs[1].Offer()
	if hb.InterfaceType != chanmsg.ClassHeartbeat || hb.InterfaceInstance != instanceA || hb.ConnectionID != 0x2005 {
		t.Errorf("heartbeat offer %+v", hb)
	}
	if chanmsg.ClassName(chs[0].Offer().InterfaceType) != "storvsc" {
		t.Errorf("relid 2 class %v", chs[0].Offer().InterfaceType)
	}
	if subs := chs[0].SubChannels(); len(subs) != 1 || subs[0] != chs[2] || chs[2].Primary() != chs[0] {
		t.Errorf("sub-channels of relid 2: %v", subs)
	}
	// Many messages queued at once: each but the last carried the
	// message-pending flag, so the guest must have written EOM (§2.3).
	if h.synic.eoms.Load() == 0 || b.Stats().EOMs == 0 {
		t.Errorf("no EOM written (fake saw %d, stats %d)", h.synic.eoms.Load(), b.Stats().EOMs)
	}

	// Hot-add after ALLOFFERS_DELIVERED.
	got := make(chan *Channel, 1)
	b.SetOfferHandler(func(c *Channel) { got <- c })
	h.send(offerBytes(heartbeatClass, instanceB, 12, 0x200c, 0))
	select {
	case c := <-got:
		if c.Offer().RelID != 12 {
			t.Errorf("hot-added relid %d", c.Offer().RelID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("offer handler not called")
	}
	// Invalid messages are counted, not fatal.
	h.send(offerBytes(heartbeatClass, instanceB, 12, 0x200c, 0)) // duplicate
	h.send([]byte{0xff, 0, 0, 0, 0, 0, 0, 0})                    // unknown type
	h.send([]byte{1, 0, 0})                                      // short
	waitFor(t, "bad messages counted", func() bool { return b.Stats().BadMessages == 3 })
}

func openTestChannel(t *testing.T, h *fakeHost, b *Bus, relid uint32, cfg OpenConfig) *Channel {
	t.Helper()
	for _, c := range b.Channels() {
		if c.Offer().RelID == relid {
			if err := c.Open(testCtx(t), cfg); err != nil {
				t.Fatalf("Open: %v", err)
			}
			return c
		}
	}
	t.Fatalf("no relid %d", relid)
	return nil
}

func TestGPADLSplit(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(scsiClass, instanceA, 3, 0x2003, 0)}
	b := connect(t, h, Config{})
	c := b.Channels()[0]
	pages, _ := h.AllocPages(4096) // 16 MiB
	g, err := c.CreateGPADL(testCtx(t), pages)
	if err != nil {
		t.Fatal(err)
	}
	hdrs, bodies := h.messagesOfType(8), h.messagesOfType(9)
	if len(hdrs) != 1 {
		t.Fatalf("%d GPADL_HEADERs", len(hdrs))
	}
	// 26 PFNs in the header and 28 per body (docs/hyperv-protocol.md §3.9):
	// 4096 = 26 + 145×28 + 10.
	if len(bodies) != 146 {
		t.Fatalf("%d GPADL_BODYs, want 146", len(bodies))
	}
	hd := hdrs[0].data
	if len(hd) != 28+26*8 || le32(hd[8:]) != 3 || le32(hd[12:]) != g.ID ||
		le16(hd[16:]) != 8+8*4096 || le16(hd[18:]) != 1 || le32(hd[20:]) != 4096*4096 || le32(hd[24:]) != 0 {
		t.Errorf("GPADL_HEADER fields: len %d, % x", len(hd), hd[:28])
	}
	next := pages.PFN
	check := func(b []byte) {
		for off := 0; off < len(b); off += 8 {
			if p := le64(b[off:]); p != next {
				t.Fatalf("PFN %#x, want %#x", p, next)
			}
			next++
		}
	}
	check(hd[28:])
	for i, m := range bodies {
		want := 240
		if i == 145 {
			want = 16 + 10*8
		}
		if len(m.data) != want || le32(m.data[8:]) != uint32(i+1) || le32(m.data[12:]) != g.ID {
			t.Fatalf("body %d: len %d (want %d), msgnum %d, id %#x", i, len(m.data), want, le32(m.data[8:]), le32(m.data[12:]))
		}
		check(m.data[16:])
	}
	if next != pages.PFN+4096 {
		t.Errorf("PFNs end at %#x", next)
	}
	if err := c.TeardownGPADL(testCtx(t), g); err != nil {
		t.Fatal(err)
	}
	td := h.messagesOfType(11)
	if len(td) != 1 || !bytes.Equal(td[0].data, []byte{11, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, byte(g.ID), byte(g.ID >> 8), byte(g.ID >> 16), byte(g.ID >> 24)}) {
		t.Errorf("GPADL_TEARDOWN % x", td)
	}
	if err := c.TeardownGPADL(testCtx(t), g); !errors.Is(err, ErrUnknownGPADL) {
		t.Errorf("second teardown: %v", err)
	}
}

func TestOpenSendReceiveClose(t *testing.T) {
	h := newFakeHost(t)
	h.echo = true
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{PollInterval: -1}) // interrupts only
	type rx struct {
		typ  ring.PacketType
		txid uint64
		data []byte
	}
	got := make(chan rx, 4)
	var c *Channel
	buf := make([]byte, 4096)
	onInt := func() {
		for {
			p, err := c.ReadPacket(buf)
			if err != nil {
				// A run still in progress when Close detaches the ring
				// reads ErrClosed (OpenConfig.OnInterrupt).
				if !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrClosed) {
					t.Errorf("ReadPacket: %v", err)
				}
				return
			}
			got <- rx{p.Type, p.TransactionID, slices.Clone(p.Payload)}
		}
	}
	for _, ch := range b.Channels() {
		c = ch
	}
	user := []byte{0xaa, 0xbb}
	if err := c.Open(testCtx(t), OpenConfig{TargetVP: 3, UserData: user, OnInterrupt: onInt}); err != nil {
		t.Fatal(err)
	}
	// OPENCHANNEL (docs/hyperv-protocol.md §3.8): relid 5, open id 5, GPADL 0xE1E10 (the
	// first id), target VP 3, downstream offset 4 pages, user data.
	want := make([]byte, 148)
	copy(want, []byte{
		5, 0, 0, 0, 0, 0, 0, 0,
		5, 0, 0, 0, 5, 0, 0, 0,
		0x10, 0x1e, 0x0e, 0x00, 3, 0, 0, 0,
		4, 0, 0, 0, 0xaa, 0xbb,
	})
	opens := h.messagesOfType(5)
	if len(opens) != 1 || !bytes.Equal(opens[0].data, want) {
		t.Fatalf("OPENCHANNEL\n got % x\nwant % x", opens, want)
	}
	// The ring GPADL covers 8 pages; OPENCHANNEL came after GPADL_CREATED.
	if hd := h.messagesOfType(8); len(hd) != 1 || le16(hd[0].data[16:]) != 8+8*8 {
		t.Errorf("ring GPADL header %v", hd)
	}

	msg := []byte("hello, host!")
	if err := c.TrySend(ring.TypeDataInband, ring.FlagCompletionRequested, 42, msg[:5], msg[5:]); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		rev := slices.Clone(msg)
		slices.Reverse(rev)
		if r.typ != ring.TypeCompletion || r.txid != 42 || !bytes.Contains(r.data, rev) {
			t.Errorf("completion %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no completion")
	}
	h.mu.Lock()
	pk := h.gotPackets[0]
	sig := slices.Clone(h.signals)
	h.mu.Unlock()
	if pk.typ != 6 || pk.flags != 1 || pk.txid != 42 || pk.off8 != 2 || !bytes.HasPrefix(pk.body, msg) {
		t.Errorf("host got %+v", pk)
	}
	// ≥ 5.0: the doorbell is HvSignalEvent(offer connection id) only.
	if len(sig) != 1 || sig[0] != 0x2005 {
		t.Errorf("signals %x, want [2005]", sig)
	}
	if s := c.Stats(); s.PacketsSent != 1 || s.PacketsReceived != 1 || s.SignalsSent != 1 {
		t.Errorf("stats %+v", s)
	}
	t.Log(c.State())

	if err := c.Open(testCtx(t), OpenConfig{}); !errors.Is(err, ErrAlreadyOpen) {
		t.Errorf("second Open: %v", err)
	}
	h.mu.Lock()
	allocated := h.allocated
	h.mu.Unlock()
	if err := c.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	seq := h.typeSequence()
	if !slices.Equal(seq[len(seq)-2:], []uint32{7, 11}) {
		t.Errorf("close sequence %v, want ... CLOSECHANNEL(7), GPADL_TEARDOWN(11)", seq)
	}
	h.mu.Lock()
	freed := h.freed
	h.mu.Unlock()
	if allocated-freed != 3 { // only the interrupt and monitor pages remain
		t.Errorf("allocated %d, freed %d pages", allocated, freed)
	}
	if err := c.TrySend(ring.TypeDataInband, 0, 1, msg); !errors.Is(err, ErrClosed) {
		t.Errorf("TrySend after Close: %v", err)
	}
	if err := c.Close(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	// Reopen works.
	if err := c.Open(testCtx(t), OpenConfig{}); err != nil {
		t.Fatalf("reopen: %v", err)
	}

	if err := b.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	seq = h.typeSequence()
	if !slices.Equal(seq[len(seq)-3:], []uint32{7, 11, 16}) {
		t.Errorf("bus close sequence %v, want ... 7, 11, UNLOAD(16)", seq)
	}
	h.mu.Lock()
	allocated, freed = h.allocated, h.freed
	h.mu.Unlock()
	if allocated != freed {
		t.Errorf("after Close: allocated %d, freed %d pages", allocated, freed)
	}
	if h.synic.handler.Load() != nil {
		t.Error("handler still installed")
	}
}

func TestSignalBelow5(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 37, 0x2025, 0)}
	b := connect(t, h, Config{Versions: []chanmsg.Version{chanmsg.Version4_0}})
	c := openTestChannel(t, h, b, 37, OpenConfig{})
	if err := c.TrySend(ring.TypeDataInband, 0, 1, []byte{1}); err != nil {
		t.Fatal(err)
	}
	// < 5.0, not dedicated: bit relid in the interrupt page's second half
	// (§3.12): byte 2048 + 37/8 = 2052, bit 37%8 = 5.
	h.mu.Lock()
	page := h.mem[0x1000]
	sig := slices.Clone(h.signals)
	h.mu.Unlock()
	if page[2052] != 1<<5 || sig[0] != 0x2025 {
		t.Errorf("interrupt page byte %#x, signals %x", page[2052], sig)
	}
}

func TestOpenFailure(t *testing.T) {
	h := newFakeHost(t)
	h.openStatus = 0xC0000001
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := b.Channels()[0]
	err := c.Open(testCtx(t), OpenConfig{})
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Status != 0xC0000001 || !errors.Is(err, ErrHostStatus) {
		t.Fatalf("Open error %v", err)
	}
	if seq := h.typeSequence(); seq[len(seq)-1] != 11 {
		t.Errorf("no GPADL teardown after failed open: %v", seq)
	}
	if _, err := c.ReadPacket(make([]byte, 64)); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadPacket on failed channel: %v", err)
	}
}

func TestOpenDeadline(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	h.silent.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if err := b.Channels()[0].Open(ctx, OpenConfig{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open error %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if err := b.Close(ctx2); err == nil {
		t.Error("Close against a silent host succeeded")
	}
}

func TestRescindOpenChannel(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := openTestChannel(t, h, b, 5, OpenConfig{})
	h.send([]byte{2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0}) // RESCIND_CHANNELOFFER relid 5
	select {
	case <-c.Rescinded():
	case <-time.After(10 * time.Second):
		t.Fatal("not rescinded")
	}
	if err := c.TrySend(ring.TypeDataInband, 0, 1, []byte{1}); !errors.Is(err, ErrRescinded) {
		t.Errorf("TrySend after rescind: %v", err)
	}
	waitFor(t, "RELID_RELEASED", func() bool { return len(h.messagesOfType(13)) == 1 })
	seq := h.typeSequence()
	if !slices.Equal(seq[len(seq)-3:], []uint32{7, 11, 13}) {
		t.Errorf("rescind sequence %v, want CLOSECHANNEL, GPADL_TEARDOWN, RELID_RELEASED", seq)
	}
	if rr := h.messagesOfType(13)[0].data; !bytes.Equal(rr, []byte{13, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0}) {
		t.Errorf("RELID_RELEASED % x", rr)
	}
	waitFor(t, "relid forgotten", func() bool { return len(b.Channels()) == 0 })
	if err := c.Close(testCtx(t)); err != nil {
		t.Errorf("Close after rescind: %v", err)
	}
}

func TestSendWaitsForSpace(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{PollInterval: -1})
	c := openTestChannel(t, h, b, 5, OpenConfig{SendRingSize: 2 * 4096})
	h.mu.Lock()
	out := h.open[5].out
	h.mu.Unlock()
	// The fake consumes the ring only on a doorbell; a host that is not
	// reading leaves it full.
	h.noRead.Store(true)
	payload := make([]byte, 1000)
	n := 0
	for {
		err := c.TrySend(ring.TypeDataInband, 0, uint64(n), payload)
		if errors.Is(err, ErrRingFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	err := c.Send(ctx, ring.TypeDataInband, 0, 99, payload)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send on full ring: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Send(testCtx(t), ring.TypeDataInband, 0, 100, payload) }()
	waitFor(t, "pending send size", func() bool { return atomicLoad(out, 12) != 0 })
	if p := atomicLoad(out, 12); p < 1000 {
		t.Errorf("pending send size %d", p)
	}
	// The host drains and, since pending send size is set, signals.
	h.mu.Lock()
	for {
		if _, ok := hostReadRing(out); !ok {
			break
		}
	}
	h.mu.Unlock()
	h.signalGuest(5)
	if err := <-done; err != nil {
		t.Fatalf("Send: %v", err)
	}
	if atomicLoad(out, 12) != 0 {
		t.Error("pending send size not cleared")
	}
	if c.Stats().SendWaits == 0 {
		t.Error("SendWaits not counted")
	}
}

func TestPollingFallback(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{PollInterval: time.Millisecond})
	got := make(chan uint64, 1)
	var c *Channel
	buf := make([]byte, 256)
	c = openTestChannel(t, h, b, 5, OpenConfig{OnInterrupt: func() {
		if p, err := c.ReadPacket(buf); err == nil {
			got <- p.TransactionID
		}
	}})
	// A packet without any interrupt: the poller must find it.
	h.mu.Lock()
	hostWriteRing(h.open[5].in, 6, 0, 77, []byte("lost interrupt"))
	h.mu.Unlock()
	select {
	case id := <-got:
		if id != 77 {
			t.Errorf("txid %d", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("poller did not deliver the packet")
	}
	if b.Stats().Polls == 0 {
		t.Error("no polls counted")
	}
}

func TestQueueOverflow(t *testing.T) {
	h := newFakeHost(t)
	for i := range 3 * msgQueueLen {
		h.offers = append(h.offers, offerBytes(heartbeatClass, instanceA, uint32(i+1), 0x2000, 0))
	}
	b := connect(t, h, Config{PollInterval: -1})
	if n := len(b.Channels()); n != 3*msgQueueLen {
		t.Errorf("%d channels, want %d", n, 3*msgQueueLen)
	}
	t.Logf("stats %+v", b.Stats())
}

func atomicLoad(mem []byte, off int) uint32 { return atomicLoad32(mem, off) }

func TestModifyTargetVP(t *testing.T) {
	for _, v := range []chanmsg.Version{chanmsg.Version5_3, chanmsg.Version4_1} {
		h := newFakeHost(t)
		h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
		b := connect(t, h, Config{Versions: []chanmsg.Version{v}})
		c := b.Channels()[0]
		if err := c.ModifyTargetVP(testCtx(t), 6); err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		m := h.messagesOfType(22)
		if len(m) != 1 || !bytes.Equal(m[0].data, []byte{22, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0}) {
			t.Errorf("%v: MODIFYCHANNEL %v", v, m)
		}
		if v == chanmsg.Version5_3 {
			h.mu.Lock()
			h.modifyStatus = 1
			h.mu.Unlock()
			var me *ModifyError
			if err := c.ModifyTargetVP(testCtx(t), 7); !errors.As(err, &me) || me.Status != 1 {
				t.Errorf("failed modify: %v", err)
			}
		}
	}
}

func TestRescindOfferedChannel(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := b.Channels()[0]
	h.send([]byte{2, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0})
	<-c.Rescinded()
	waitFor(t, "RELID_RELEASED", func() bool { return len(h.messagesOfType(13)) == 1 })
	// Not open: no CLOSECHANNEL, no teardown.
	if len(h.messagesOfType(7)) != 0 || len(h.messagesOfType(11)) != 0 {
		t.Errorf("sequence %v", h.typeSequence())
	}
	if err := c.Open(testCtx(t), OpenConfig{}); !errors.Is(err, ErrRescinded) {
		t.Errorf("Open after rescind: %v", err)
	}
	// The relid can be offered again.
	h.send(offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0))
	waitFor(t, "re-offer", func() bool { return len(b.Channels()) == 1 && b.Channels()[0] != c })
}

func TestInterruptOnSecondVP(t *testing.T) {
	h := newFakeHost(t)
	h.vp1 = &fakeSynIC{h: h, simp: make([]byte, 4096), siefp: make([]byte, 4096)}
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 40, 0x2028, 0)}
	b := connect(t, h, Config{PollInterval: -1})
	fired := make(chan struct{}, 1)
	openTestChannel(t, h, b, 40, OpenConfig{TargetVP: 1, OnInterrupt: func() { wake(fired) }})
	fn := h.vp1.handler.Load()
	if fn == nil {
		t.Fatal("no handler on the second SynIC")
	}
	hv.SetEventFlag(h.vp1.siefp, 2, 40)
	(*fn)()
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("OnInterrupt not run for a signal on VP 1")
	}
	if hv.TestAndClearEventFlag(h.vp1.siefp, 2, 40) {
		t.Error("event flag not cleared")
	}
	_ = b.Close(testCtx(t))
	if h.vp1.handler.Load() != nil {
		t.Error("second handler not removed")
	}
}
