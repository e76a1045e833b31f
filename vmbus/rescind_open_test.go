package vmbus

import (
	"errors"
	"slices"
	"testing"
)

// ringPageCount is the pages of a default ring pair (both directions).
const ringPageCount = 2 * DefaultRingSize / 4096

// TestRescindBeforeGPADLHeader stops Open after the ring pages are
// allocated and before GPADL_HEADER is posted, and delivers a rescind
// there: Open must fail with ErrRescinded having posted no GPADL message,
// free the ring pages, and the clean-up must release the relid.
func TestRescindBeforeGPADLHeader(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := b.Channels()[0]
	h.mu.Lock()
	freed := h.freed
	h.allocHook = func(n int) {
		if n != ringPageCount {
			return
		}
		h.send(rescindBytes(5))
		<-c.Rescinded() // the guest has seen it before it goes on
	}
	h.mu.Unlock()
	err := c.Open(testCtx(t), OpenConfig{})
	if !errors.Is(err, ErrRescinded) {
		t.Fatalf("Open: %v, want ErrRescinded", err)
	}
	waitFor(t, "RELID_RELEASED", func() bool { return len(h.messagesOfType(13)) == 1 })
	if n := len(h.messagesOfType(8)); n != 0 {
		t.Errorf("%d GPADL_HEADERs posted for a rescinded channel", n)
	}
	h.mu.Lock()
	got := h.freed - freed
	h.mu.Unlock()
	if got != ringPageCount {
		t.Errorf("%d pages freed, want the %d ring pages", got, ringPageCount)
	}
}

// TestRescindBetweenGPADLHeaderAndCreated: the host takes the ring's
// GPADL_HEADER, then rescinds the channel, then answers GPADL_CREATED with
// success (a real host does). The guest stops waiting at the rescind, but
// must resolve the GPADL: expect the answer, GPADL_TEARDOWN, wait for
// GPADL_TORNDOWN, and only then RELID_RELEASED and freeing the ring pages.
func TestRescindBetweenGPADLHeaderAndCreated(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := b.Channels()[0]
	h.mu.Lock()
	freed := h.freed
	h.rescindBeforeCreated = 5
	h.mu.Unlock()
	err := c.Open(testCtx(t), OpenConfig{})
	if !errors.Is(err, ErrRescinded) {
		t.Fatalf("Open: %v, want ErrRescinded", err)
	}
	waitFor(t, "RELID_RELEASED", func() bool { return len(h.messagesOfType(13)) == 1 })
	seq := h.typeSequence()
	td, rel := slices.Index(seq, 11), slices.Index(seq, 13)
	if td < 0 || td > rel {
		t.Fatalf("message sequence %v: want GPADL_TEARDOWN (11) before RELID_RELEASED (13)", seq)
	}
	if n := len(h.messagesOfType(5)); n != 0 {
		t.Errorf("OPENCHANNEL posted for a rescinded channel")
	}
	h.mu.Lock()
	got, left := h.freed-freed, len(h.gpadls)
	h.mu.Unlock()
	if left != 0 {
		t.Errorf("%d GPADLs left at the host", left)
	}
	if got != ringPageCount {
		t.Errorf("%d pages freed, want the %d ring pages", got, ringPageCount)
	}
	if n := b.Stats().UnexpectedMessages; n != 0 {
		t.Errorf("%d unexpected messages: the late GPADL_CREATED found no waiter", n)
	}
}

// TestCreateGPADLPendingAfterRescind: a driver's CreateGPADL interrupted
// by a rescind returns the GPADL with the error; the clean-up tears it
// down, and TeardownGPADL then reports nil.
func TestCreateGPADLPendingAfterRescind(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{})
	c := openTestChannel(t, h, b, 5, OpenConfig{})
	pages, err := h.AllocPages(2)
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.rescindBeforeCreated = 5
	h.mu.Unlock()
	g, err := c.CreateGPADL(testCtx(t), pages)
	if !errors.Is(err, ErrRescinded) || g.ID == 0 {
		t.Fatalf("CreateGPADL: %+v, %v; want a pending GPADL and ErrRescinded", g, err)
	}
	if err := c.TeardownGPADL(testCtx(t), g); err != nil {
		t.Fatalf("TeardownGPADL: %v", err)
	}
	waitFor(t, "RELID_RELEASED", func() bool { return len(h.messagesOfType(13)) == 1 })
	h.mu.Lock()
	left := len(h.gpadls)
	h.mu.Unlock()
	if left != 0 {
		t.Errorf("%d GPADLs left at the host", left)
	}
	if n := len(h.messagesOfType(11)); n != 2 { // the ring's and the driver's
		t.Errorf("%d GPADL_TEARDOWNs, want 2", n)
	}
}
