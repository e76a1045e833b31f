package netvsc_test

import (
	"context"
	"testing"
	"time"

	"github.com/gohv/gohv/drivers/netvsc"
)

// TestCloseWithLostSendCompletion: the host never completes one send (its
// completion is lost). Close waits for outstanding sends only for part of
// its context, so teardown still has time to close the channels and tear
// down the buffers.
func TestCloseWithLostSendCompletion(t *testing.T) {
	r := newRig(t, netvsc.Config{})
	r.dev.Faults().DropCompletions(1)
	if err := r.nic.Send(0, [][]byte{frame([6]byte{2}, guestMAC, 60, 1)}, netvsc.TxInfo{}); err != nil {
		t.Fatal(err)
	}
	r.wait(t, r.w.frames)
	deadline := time.Now().Add(10 * time.Second)
	for r.dev.Stats().CompletionsLost != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the completion was not dropped")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.nic.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if ctx.Err() != nil {
		t.Error("Close used up its context waiting for the lost completion")
	}
}
