package vmbus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/vmbus/chanmsg"
	"github.com/gohv/gohv/vmbus/ring"
)

// Lifecycle ordering (docs/hyperv-protocol.md §3.10, §3.11): rescind → close → GPADL
// teardown → RELID_RELEASED, UNLOAD last, nothing after UNLOAD.

// afterUnload returns the guest message types posted after the first
// UNLOAD (type 16).
func afterUnload(h *fakeHost) []uint32 {
	seq := h.typeSequence()
	i := slices.Index(seq, 16)
	if i < 0 {
		return nil
	}
	return seq[i+1:]
}

// Below 5.3 ModifyTargetVP posts without waiting for an answer, so only
// the post itself can refuse it once the bus has unloaded.
func TestNothingPostedAfterUnload(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{Versions: []chanmsg.Version{chanmsg.Version4_1}})
	c := b.Channels()[0]
	if err := b.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.ModifyTargetVP(testCtx(t), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("ModifyTargetVP after Close: %v, want ErrClosed", err)
	}
	if _, err := c.CreateGPADL(testCtx(t), c.bus.pages.Slice(0, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateGPADL after Close: %v, want ErrClosed", err)
	}
	if rest := afterUnload(h); len(rest) != 0 {
		t.Errorf("guest posted %v after UNLOAD", rest)
	}
}

// A host that offers and rescinds a channel while the guest unloads: the
// rescind clean-up runs after Close took its snapshot of the channels, and
// its RELID_RELEASED must not follow UNLOAD.
func TestRescindDuringUnload(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	h.mu.Lock()
	h.onUnload = [][]byte{offerBytes(heartbeatClass, instanceB, 9, 0x2009, 0), rescindBytes(9)}
	h.mu.Unlock()
	if err := b.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if rest := afterUnload(h); len(rest) != 0 {
		t.Errorf("guest posted %v after UNLOAD", rest)
	}
}

// The host answers an abandoned OPENCHANNEL with success after Open gave
// up, and then rescinds. The clean-up must still send CLOSECHANNEL before
// the ring GPADL's teardown and RELID_RELEASED: the host has the channel
// open (the fake host fails the test on a GPADL_TEARDOWN of an open
// channel's ring). The race between the late answer waking the clean-up
// and the rescind being handled is decided here by building the state an
// abandoned Open leaves (answer delivered, then rescind) by hand.
func TestAbandonedOpenThenRescindCloses(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := openTestChannel(t, h, b, 5, OpenConfig{})
	c.opMu.Lock()
	c.detach()
	wt := &waiter{typ: chanmsg.TypeOpenChannelResult, key: 5, relID: 5, ch: make(chan result, 1)}
	wt.ch <- result{msg: chanmsg.OpenChannelResult{RelID: 5, OpenID: 5}}
	c.mu.Lock()
	c.state, c.abandoned = stateClosing, wt
	c.mu.Unlock()
	c.markRescinded()
	err := c.finishAbandonedOpen(testCtx(t))
	c.opMu.Unlock()
	if err != nil {
		t.Fatalf("finishAbandonedOpen: %v", err)
	}
	if err := c.release(testCtx(t)); err != nil {
		t.Fatalf("release: %v", err)
	}
	seq := h.typeSequence()
	if !slices.Equal(seq[len(seq)-3:], []uint32{7, 11, 13}) {
		t.Errorf("sequence %v, want ... CLOSECHANNEL(7), GPADL_TEARDOWN(11), RELID_RELEASED(13)", seq)
	}
}

// A driver tearing down its GPADL while the rescind clean-up tears down the
// same one: exactly one GPADL_TEARDOWN may reach the host, both callers
// succeed, and RELID_RELEASED follows.
func TestTeardownRacingRescindPostsOnce(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := b.Channels()[0]
	pages, _ := h.AllocPages(2)
	g, err := c.CreateGPADL(testCtx(t), pages)
	if err != nil {
		t.Fatal(err)
	}
	h.ignoreType.Store(11) // hold the TORNDOWN until the driver has raced
	h.send(rescindBytes(5))
	<-c.Rescinded()
	waitFor(t, "clean-up's GPADL_TEARDOWN", func() bool { return len(h.messagesOfType(11)) == 1 })
	driver := make(chan error, 1)
	go func() { driver <- c.TeardownGPADL(testCtx(t), g) }()
	// The final count, after both teardowns returned, shows whether the
	// driver's posted a second one.
	h.ignoreType.Store(0)
	h.send([]byte{12, 0, 0, 0, 0, 0, 0, 0, byte(g.ID), byte(g.ID >> 8), byte(g.ID >> 16), byte(g.ID >> 24)})
	if err := <-driver; err != nil {
		t.Errorf("driver's TeardownGPADL: %v", err)
	}
	waitFor(t, "RELID_RELEASED", func() bool { return len(h.messagesOfType(13)) == 1 })
	if n := len(h.messagesOfType(11)); n != 1 {
		t.Errorf("%d GPADL_TEARDOWNs for one GPADL", n)
	}
}

// The host rescinds right after creating the ring GPADL, before the guest
// sends OPENCHANNEL. Open must fail with ErrRescinded (never succeed on a
// withdrawn offer), whichever of Open and the rescind handling wins.
func TestOpenRacingRescind(t *testing.T) {
	for i := range 20 {
		h := newFakeHost(t)
		h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
		b := connect(t, h, Config{})
		c := b.Channels()[0]
		h.mu.Lock()
		h.rescindAfterCreated = 5
		h.mu.Unlock()
		err := c.Open(testCtx(t), OpenConfig{})
		if !errors.Is(err, ErrRescinded) {
			t.Fatalf("run %d: Open: %v, want ErrRescinded", i, err)
		}
		waitFor(t, "RELID_RELEASED", func() bool { return len(h.messagesOfType(13)) == 1 })
		if err := b.Close(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// GPADL_CREATED with status 0 but naming another relid: the host may have
// created the GPADL, so Open fails without handing the ring pages back.
func TestGPADLCreatedForOtherRelIDKeepsPages(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	h.mu.Lock()
	h.createdRelID = 6
	freed := h.freed
	h.mu.Unlock()
	err := b.Channels()[0].Open(testCtx(t), OpenConfig{})
	var ge *GPADLError
	if !errors.As(err, &ge) || ge.RelID != 6 {
		t.Fatalf("Open: %v, want a GPADLError for relid 6", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.freed != freed {
		t.Errorf("%d ring pages freed although the host may use them", h.freed-freed)
	}
}

// Bus.Close leaves no goroutine behind: not the message and dispatch
// loops, nor the clean-ups after a rescind or an unanswered Open, nor a
// Send that was blocked on a full ring.
func TestNoGoroutineLeak(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{
		offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0),
		offerBytes(heartbeatClass, instanceB, 6, 0x2006, 0),
		offerBytes(scsiClass, instanceA, 7, 0x2007, 0),
	}
	runtime.GC()
	base := runtime.NumGoroutine()
	b, err := Connect(testCtx(t), h, Config{PollInterval: time.Millisecond, CleanupTimeout: 50 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	byRelID := map[uint32]*Channel{}
	for _, c := range b.Channels() {
		byRelID[c.Offer().RelID] = c
	}
	// relid 5: open, ring full, a Send blocked on it.
	c5 := byRelID[5]
	if err := c5.Open(testCtx(t), OpenConfig{SendRingSize: 2 * 4096, OnInterrupt: func() {}}); err != nil {
		t.Fatal(err)
	}
	h.noRead.Store(true)
	for c5.TrySend(ring.TypeDataInband, 0, 1, make([]byte, 500)) == nil {
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var sendErr error
	go func() {
		defer wg.Done()
		sendErr = c5.Send(context.Background(), ring.TypeDataInband, 0, 2, make([]byte, 500))
	}()
	// relid 6: rescinded (clean-up goroutine).
	h.send(rescindBytes(6))
	<-byRelID[6].Rescinded()
	// relid 7: an Open the host never answers (background clean-up).
	h.ignoreType.Store(5)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	if err := byRelID[7].Open(ctx, OpenConfig{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Open: %v", err)
	}
	cancel()
	h.ignoreType.Store(0)
	if err := b.Close(testCtx(t)); err != nil {
		t.Logf("Close: %v", err)
	}
	wg.Wait()
	if !errors.Is(sendErr, ErrClosed) {
		t.Errorf("blocked Send ended with %v, want ErrClosed", sendErr)
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
	if rest := afterUnload(h); len(rest) != 0 {
		t.Errorf("guest posted %v after UNLOAD", rest)
	}
}

// Two Sends wait on a full ring with polling off. The host frees room for
// the small one only and signals; the small one goes out, the big one
// sleeps again. The pending send size must still be set for the big one:
// it is the only way the host knows to signal it (docs/hyperv-protocol.md §4.6).
func TestPendingSendKeptForOtherWaiter(t *testing.T) {
	for run := range 10 {
		h := newFakeHost(t)
		h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
		b := connect(t, h, Config{PollInterval: -1})
		c := openTestChannel(t, h, b, 5, OpenConfig{SendRingSize: 2 * 4096})
		h.noRead.Store(true)
		h.mu.Lock()
		out := h.open[5].out
		h.mu.Unlock()
		small, big := make([]byte, 1000), make([]byte, 3000) // 1024 and 3024 ring bytes
		for range 3 {
			if err := c.TrySend(ring.TypeDataInband, 0, 1, small); err != nil {
				t.Fatal(err)
			}
		}
		ctx := testCtx(t)
		bigDone, smallDone := make(chan error, 1), make(chan error, 1)
		go func() { bigDone <- c.Send(ctx, ring.TypeDataInband, 0, 2, big) }()
		waitFor(t, "big Send asleep", func() bool { return c.Stats().SendWaits == 1 })
		go func() { smallDone <- c.Send(ctx, ring.TypeDataInband, 0, 3, small) }()
		waitFor(t, "small Send asleep", func() bool { return c.Stats().SendWaits == 2 })
		h.mu.Lock()
		hostReadRing(out) // room for one small packet, not for the big one
		h.mu.Unlock()
		h.signalGuest(5)
		if err := <-smallDone; err != nil {
			t.Fatal(err)
		}
		waitFor(t, "big Send asleep again", func() bool { return c.Stats().SendWaits == 3 })
		if p := atomicLoad(out, 12); p == 0 {
			t.Fatalf("run %d: pending send size cleared while a Send still waits", run)
		}
		h.mu.Lock()
		for {
			if _, ok := hostReadRing(out); !ok {
				break
			}
		}
		h.mu.Unlock()
		h.signalGuest(5)
		if err := <-bigDone; err != nil {
			t.Fatal(err)
		}
		if p := atomicLoad(out, 12); p != 0 {
			t.Errorf("pending send size %d left after the last Send", p)
		}
		if err := b.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// CLOSECHANNEL cannot be posted (a non-transient hypercall failure): the
// host still has the channel open, so its ring GPADL must stay, and Close
// may be retried. The same holds for the clean-up after a rescind. The
// fake host fails the test on a GPADL_TEARDOWN of an open channel's ring.
func TestCloseChannelPostFailureKeepsRing(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	var logs logRecorder
	b := connect(t, h, Config{Logf: logs.logf(t)})
	c := openTestChannel(t, h, b, 5, OpenConfig{})
	h.mu.Lock()
	h.postFail = []error{hv.StatusAccessDenied}
	h.mu.Unlock()
	if err := c.Close(testCtx(t)); !errors.Is(err, hv.StatusAccessDenied) {
		t.Fatalf("Close: %v, want the hypercall's status", err)
	}
	if n := len(h.messagesOfType(11)); n != 0 {
		t.Fatalf("%d GPADL_TEARDOWNs without a CLOSECHANNEL", n)
	}
	if err := c.TrySend(ring.TypeDataInband, 0, 1, []byte{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("TrySend after a failed Close: %v, want ErrClosed", err)
	}
	if err := c.Close(testCtx(t)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if seq := h.typeSequence(); !slices.Equal(seq[len(seq)-2:], []uint32{7, 11}) {
		t.Errorf("sequence %v, want ... CLOSECHANNEL, GPADL_TEARDOWN", seq)
	}

	// The rescind clean-up cannot post CLOSECHANNEL either.
	if err := c.Open(testCtx(t), OpenConfig{}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.postFail = []error{hv.StatusAccessDenied}
	h.mu.Unlock()
	h.send(rescindBytes(5))
	<-c.Rescinded()
	// The clean-up logs its failure when it has given up: from then on
	// nothing more can be posted for the relid until Bus.Close.
	waitFor(t, "the clean-up to give up", func() bool { return logs.has("clean-up of rescinded relid 5") })
	if seq := h.typeSequence(); seq[len(seq)-1] != 5 {
		t.Errorf("sequence %v: the guest went on after a failed CLOSECHANNEL", seq)
	}
	// Bus.Close retries the close and then releases the relid.
	if err := b.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if seq := h.typeSequence(); !slices.Equal(seq[len(seq)-4:], []uint32{7, 11, 13, 16}) {
		t.Errorf("sequence %v, want ... CLOSECHANNEL, GPADL_TEARDOWN, RELID_RELEASED, UNLOAD", seq)
	}
}

// logRecorder keeps the bus's log lines for tests that wait for one.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(t *testing.T) func(string, ...any) {
	return func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		t.Log(line)
		r.mu.Lock()
		r.lines = append(r.lines, line)
		r.mu.Unlock()
	}
}

func (r *logRecorder) has(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}
