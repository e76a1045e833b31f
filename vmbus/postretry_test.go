package vmbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gohv/gohv/hv"
	"github.com/gohv/gohv/tools/hvsim"
	"github.com/gohv/gohv/vmbus"
	"github.com/gohv/gohv/vmbus/chanmsg"
)

// HV_STATUS_INVALID_CONNECTION_ID is retried for every message but
// INITIATE_CONTACT (docs/hyperv-protocol.md §1.8; Linux vmbus_post_msg).
func TestPostInvalidConnectionIDRetried(t *testing.T) {
	h := newHost(t, hvsim.Config{}, sinkDevice{})
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, sinkClass)
	before := bus.Stats().PostRetries
	// GPADL_HEADER and OPENCHANNEL meet the failures.
	h.Faults().FailPostMessageWith(3, hv.StatusInvalidConnectionID)
	if err := ch.Open(ctx, vmbus.OpenConfig{}); err != nil {
		t.Fatalf("Open with 3 INVALID_CONNECTION_ID posts: %v", err)
	}
	if got := bus.Stats().PostRetries - before; got != 3 {
		t.Errorf("PostRetries grew by %d, want 3", got)
	}
}

// INITIATE_CONTACT failing with INVALID_CONNECTION_ID is not retried: on
// connection 4 it means the host predates 5.0, and the guest steps down at
// once to the next version.
func TestInitiateContactInvalidConnectionIDNotRetried(t *testing.T) {
	h := newHost(t, hvsim.Config{})
	h.Faults().FailPostMessageWith(1, hv.StatusInvalidConnectionID)
	bus, _ := connect(t, h, vmbus.Config{})
	if v := bus.Version(); v != chanmsg.Version5_2 {
		t.Errorf("version %v, want 5.2 (5.3 failed, the next tried at once)", v)
	}
	if n := bus.Stats().PostRetries; n != 0 {
		t.Errorf("INITIATE_CONTACT retried %d times", n)
	}
}

// The retries are bounded: a host that always answers INVALID_CONNECTION_ID
// fails the request with that status; and they end with ctx.
func TestPostInvalidConnectionIDBounded(t *testing.T) {
	h := newHost(t, hvsim.Config{}, sinkDevice{})
	bus, ctx := connect(t, h, vmbus.Config{})
	ch := findChannel(t, bus, sinkClass)

	h.Faults().FailPostMessageWith(1<<30, hv.StatusInvalidConnectionID)
	err := ch.Open(ctx, vmbus.OpenConfig{})
	if !errors.Is(err, hv.StatusInvalidConnectionID) {
		t.Fatalf("Open against a host that always fails: %v, want INVALID_CONNECTION_ID", err)
	}
	if n := bus.Stats().PostRetries; n != 99 {
		t.Errorf("PostRetries = %d, want 99 (100 attempts)", n)
	}

	cctx, cancel := context.WithCancel(ctx)
	go func() {
		// Cancel once the guest is retrying: ctx must end the loop.
		for bus.Stats().PostRetries < 102 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err = ch.Open(cctx, vmbus.OpenConfig{})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, hv.StatusInvalidConnectionID) {
		t.Fatalf("Open with ctx cancelled while retrying: %v, want Canceled with the last status", err)
	}
	h.Faults().FailPostMessageWith(0, hv.StatusSuccess)
}
