package vmbus

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestTransactions(t *testing.T) {
	tx := NewTransactions(2, 8)
	a, err := tx.Begin()
	if err != nil || a == 0 {
		t.Fatal(a, err)
	}
	b, _ := tx.Begin()
	if _, err := tx.Begin(); !errors.Is(err, ErrNoTransactions) {
		t.Errorf("third Begin: %v", err)
	}
	if tx.Outstanding() != 2 {
		t.Errorf("outstanding %d", tx.Outstanding())
	}
	// Completions out of order.
	if err := tx.Complete(b, []byte("bee")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Complete(b, []byte("again")); !errors.Is(err, ErrUnknownTransaction) {
		t.Errorf("double completion: %v", err)
	}
	go func() {
		time.Sleep(time.Millisecond)
		_ = tx.Complete(a, []byte("ay"))
	}()
	dst := make([]byte, 8)
	n, err := tx.Wait(testCtx(t), a, dst)
	if err != nil || string(dst[:n]) != "ay" {
		t.Errorf("Wait a: %q %v", dst[:n], err)
	}
	n, err = tx.Wait(testCtx(t), b, dst)
	if err != nil || string(dst[:n]) != "bee" {
		t.Errorf("Wait b: %q %v", dst[:n], err)
	}
	// Stale and unknown ids.
	if err := tx.Complete(a, nil); !errors.Is(err, ErrUnknownTransaction) {
		t.Errorf("stale completion: %v", err)
	}
	if err := tx.Complete(0xdead<<32|7, nil); !errors.Is(err, ErrUnknownTransaction) {
		t.Errorf("unknown completion: %v", err)
	}
	if tx.Unknown() != 3 {
		t.Errorf("unknown count %d, want 3", tx.Unknown())
	}
	// A Wait that gives up frees the slot; the late completion is rejected.
	c, _ := tx.Begin()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := tx.Wait(ctx, c, dst); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait timeout: %v", err)
	}
	if err := tx.Complete(c, []byte("late")); !errors.Is(err, ErrUnknownTransaction) {
		t.Errorf("late completion: %v", err)
	}
	// The reused slot gets a new id and works.
	d, _ := tx.Begin()
	if d == c {
		t.Error("id reused")
	}
	_ = tx.Complete(d, []byte("0123456789"))
	if n, err := tx.Wait(testCtx(t), d, make([]byte, 4)); !errors.Is(err, io.ErrShortBuffer) || n != 10 {
		t.Errorf("short buffer: %d %v", n, err)
	}
	e, _ := tx.Begin()
	tx.Cancel(e)
	if tx.Outstanding() != 0 {
		t.Errorf("outstanding %d after all done", tx.Outstanding())
	}
}

func TestTransactionsNoAlloc(t *testing.T) {
	tx := NewTransactions(4, 64)
	ctx := context.Background()
	payload, dst := make([]byte, 32), make([]byte, 64)
	n := testing.AllocsPerRun(100, func() {
		id, _ := tx.Begin()
		_ = tx.Complete(id, payload)
		_, _ = tx.Wait(ctx, id, dst)
	})
	if n != 0 {
		t.Errorf("%v allocations per transaction", n)
	}
}
