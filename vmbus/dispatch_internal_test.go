package vmbus

import (
	"testing"
	"time"
)

// waitDispatchersDone waits, with a hang guard, until no channel dispatch
// goroutine of b runs.
func waitDispatchersDone(t *testing.T, b *Bus, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { b.dispatchers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("dispatch goroutine still running after %s", what)
	}
}

// A channel's dispatch goroutine starts with Open and ends with Close or
// the rescind, not only with the bus; a reopened channel gets a new one.
func TestDispatchGoroutineLifetime(t *testing.T) {
	h := newFakeHost(t)
	h.offers = [][]byte{offerBytes(heartbeatClass, instanceA, 5, 0x2005, 0)}
	b := connect(t, h, Config{PollInterval: -1})
	runs := make(chan struct{}, 8)
	onInterrupt := func() { runs <- struct{}{} }
	c := openTestChannel(t, h, b, 5, OpenConfig{OnInterrupt: onInterrupt})
	h.signalGuest(5)
	<-runs
	if err := c.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitDispatchersDone(t, b, "Close")
	if err := c.Open(testCtx(t), OpenConfig{OnInterrupt: onInterrupt}); err != nil {
		t.Fatal(err)
	}
	h.signalGuest(5)
	<-runs // the reopened channel is served again
	h.send(rescindBytes(5))
	<-c.Rescinded()
	waitDispatchersDone(t, b, "the rescind")
}
