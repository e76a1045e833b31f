package kernel

import (
	"context"
	"errors"
	"testing"

	"github.com/gohv/gohv/drivers/shutdown"
)

func TestPowerRequests(t *testing.T) {
	var p PowerRequests
	if p.Deliver(shutdown.Request{Kind: shutdown.Hibernate}) {
		t.Fatal("hibernate accepted")
	}
	if _, ok := p.Pending(); ok {
		t.Fatal("refused request is pending")
	}
	// Deliver never blocks, however many requests nobody takes.
	for range 100 {
		if !p.Deliver(shutdown.Request{Kind: shutdown.PowerOff}) {
			t.Fatal("power-off refused")
		}
	}
	if !p.Deliver(shutdown.Request{Kind: shutdown.Reboot, Force: true, Reason: 7}) {
		t.Fatal("reboot refused")
	}
	r, err := p.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r != (shutdown.Request{Kind: shutdown.Reboot, Force: true, Reason: 7}) {
		t.Fatalf("Wait = %+v, want the latest request", r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with nothing pending = %v, want context.Canceled", err)
	}
}

func TestPowerRequestsWaitThenDeliver(t *testing.T) {
	var p PowerRequests
	done := make(chan shutdown.Request)
	go func() {
		r, err := p.Wait(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	p.Deliver(shutdown.Request{Kind: shutdown.PowerOff, Message: shutdown.MakeText("maintenance")})
	if r := <-done; r.Kind != shutdown.PowerOff || r.Message.String() != "maintenance" {
		t.Fatalf("got %+v", r)
	}
}
