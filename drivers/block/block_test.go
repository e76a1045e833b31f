package block

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	info := Info{SectorSize: 512, Sectors: 8}
	ro := info
	ro.ReadOnly = true
	for _, c := range []struct {
		name   string
		info   Info
		op     Op
		off, n int64
		want   error
	}{
		{"read ok", info, OpRead, 0, 4096, nil},
		{"last sector", info, OpWrite, 3584, 512, nil},
		{"unaligned off", info, OpRead, 1, 512, ErrUnaligned},
		{"unaligned len", info, OpRead, 0, 100, ErrUnaligned},
		{"past end", info, OpRead, 3584, 1024, ErrOutOfRange},
		{"negative", info, OpRead, -512, 512, ErrOutOfRange},
		{"start past end", info, OpRead, 4608, 0, ErrOutOfRange},
		{"huge len overflow", info, OpRead, 512, 1 << 62, ErrOutOfRange},
		{"ro write", ro, OpWrite, 0, 512, ErrReadOnly},
		{"ro discard", ro, OpDiscard, 0, 512, ErrReadOnly},
		{"ro read", ro, OpRead, 0, 512, nil},
		{"flush", ro, OpFlush, 0, 0, nil},
		{"zero sector size", Info{}, OpRead, 0, 0, ErrUnaligned},
	} {
		err := Check(c.info, c.op, c.off, c.n)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		var ioe *IOError
		if err != nil && (!errors.As(err, &ioe) || ioe.Op != c.op || ioe.Off != c.off) {
			t.Errorf("%s: %#v is not an IOError naming the op and offset", c.name, err)
		}
	}
}

func TestMem(t *testing.T) {
	ctx := context.Background()
	m, err := NewMem("m", 512, 4)
	if err != nil {
		t.Fatal(err)
	}
	if i := m.Info(); i.Size() != 2048 || i.Name != "m" || i.Queues != 1 {
		t.Fatalf("info %+v", i)
	}
	w := bytes.Repeat([]byte{0xAB}, 1024)
	if n, err := m.WriteAt(ctx, w, 512); n != 1024 || err != nil {
		t.Fatal(n, err)
	}
	r := make([]byte, 2048)
	if _, err := m.ReadAt(ctx, r, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r[512:1536], w) || r[0] != 0 || r[1536] != 0 {
		t.Error("contents wrong")
	}
	if _, err := m.ReadAt(ctx, r[:10], 0); !errors.Is(err, ErrUnaligned) {
		t.Errorf("unaligned read: %v", err)
	}
	if err := m.Discard(ctx, 512, 512); err != nil {
		t.Fatal(err)
	}
	if m.Bytes()[512] != 0 || m.Bytes()[1024] != 0xAB {
		t.Error("discard did not zero exactly its range")
	}
	m.SetReadOnly(true)
	if _, err := m.WriteAt(ctx, w[:512], 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only write: %v", err)
	}
	if err := m.Flush(ctx); err != nil || m.Flushes() != 1 {
		t.Errorf("flush %v count %d", err, m.Flushes())
	}
	m.Remove()
	if _, err := m.ReadAt(ctx, r[:512], 0); !errors.Is(err, ErrRemoved) {
		t.Errorf("read after remove: %v", err)
	}
	if err := m.Flush(ctx); !errors.Is(err, ErrRemoved) {
		t.Errorf("flush after remove: %v", err)
	}
	if _, err := NewMem("x", 500, 1); err == nil {
		t.Error("sector size 500 accepted")
	}
	if _, err := NewMemFrom("x", 512, make([]byte, 100)); err == nil {
		t.Error("partial sector accepted")
	}
}

func TestQueue(t *testing.T) {
	m, _ := NewMem("m", 512, 64)
	q := NewQueue(m, 4, 8)
	defer q.Close()
	if q.Info().Queues != 4 {
		t.Fatalf("queues %d", q.Info().Queues)
	}
	done := make(chan *Request, 64)
	reqs := make([]Request, 32)
	bufs := make([][]byte, 32)
	for i := range reqs {
		bufs[i] = bytes.Repeat([]byte{byte(i + 1)}, 512)
		reqs[i] = Request{Op: OpWrite, Off: int64(i) * 512, Buf: bufs[i], Queue: i, Done: func(r *Request) { done <- r }}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	for range reqs {
		r := <-done
		if r.Err != nil || r.N != 512 {
			t.Errorf("write at %d: n %d err %v", r.Off, r.N, r.Err)
		}
	}
	for i := range 32 {
		if m.Bytes()[i*512] != byte(i+1) {
			t.Errorf("sector %d = %d", i, m.Bytes()[i*512])
		}
	}
	// Read one back asynchronously.
	rb := make([]byte, 512)
	rr := Request{Op: OpRead, Off: 5 * 512, Buf: rb, Done: func(r *Request) { done <- r }}
	if err := q.Submit(&rr); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Err != nil || rb[0] != 6 {
		t.Errorf("read: %v %d", r.Err, rb[0])
	}
	// Rejected requests never complete.
	bad := []Request{
		{Op: OpRead, Off: 1, Buf: rb, Done: func(*Request) { t.Error("Done of a rejected request") }},
		{Op: OpRead, Off: 64 * 512, Buf: rb, Done: func(*Request) { t.Error("Done of a rejected request") }},
		{Op: OpRead, Buf: rb},
	}
	for i := range bad {
		if err := q.Submit(&bad[i]); err == nil {
			t.Errorf("bad request %d accepted", i)
		}
	}
}

// TestQueueSubmitAllocs: the submit path (and the completion) allocates
// nothing once the request exists.
func TestQueueSubmitAllocs(t *testing.T) {
	m, _ := NewMem("m", 512, 8)
	q := NewQueue(m, 2, 4)
	defer q.Close()
	done := make(chan struct{}, 1)
	r := &Request{Op: OpRead, Off: 512, Buf: make([]byte, 512)}
	r.Done = func(*Request) { done <- struct{}{} }
	allocs := testing.AllocsPerRun(200, func() {
		if err := q.Submit(r); err != nil {
			t.Fatal(err)
		}
		<-done
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
}

// blocker is a device whose reads wait until released, to hold requests
// in a queue.
type blocker struct {
	*Mem
	started chan struct{}
	release chan struct{}
}

func (b *blocker) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return 0, &IOError{Op: OpRead, Off: off, Err: ErrRemoved}
	}
	return b.Mem.ReadAt(ctx, p, off)
}

func TestQueueCloseFailsPending(t *testing.T) {
	m, _ := NewMem("m", 512, 8)
	b := &blocker{Mem: m, started: make(chan struct{}, 8), release: make(chan struct{})}
	q := NewQueue(b, 1, 3)
	var mu sync.Mutex
	var errs []error
	reqs := make([]Request, 3)
	for i := range reqs {
		reqs[i] = Request{Op: OpRead, Buf: make([]byte, 512), Done: func(r *Request) {
			mu.Lock()
			errs = append(errs, r.Err)
			mu.Unlock()
		}}
		if err := q.Submit(&reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	<-b.started // the first is in the device; the others wait in the queue
	if err := q.TrySubmit(&Request{Op: OpRead, Buf: make([]byte, 512), Done: func(*Request) {}}); err != nil {
		t.Fatal(err) // depth 3, two waiting: room for one more
	}
	if err := q.TrySubmit(&Request{Op: OpRead, Buf: make([]byte, 512), Done: func(*Request) {}}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("TrySubmit on a full queue: %v", err)
	}
	q.Close()
	if len(errs) != 3 {
		t.Fatalf("%d completions, want 3", len(errs))
	}
	for i, err := range errs {
		if !errors.Is(err, ErrRemoved) {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if err := q.Submit(&reqs[0]); !errors.Is(err, ErrRemoved) {
		t.Errorf("submit after close: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var reg Registry
	a, _ := NewMem("a", 512, 1)
	b, _ := NewMem("b", 512, 1)
	if err := reg.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := reg.Add(a); !errors.Is(err, ErrDuplicate) {
		t.Errorf("duplicate add: %v", err)
	}
	w := reg.Watch()
	if err := reg.Add(b); err != nil {
		t.Fatal(err)
	}
	if !reg.Remove(a) || reg.Remove(a) {
		t.Error("Remove results wrong")
	}
	want := []Event{{Added, a}, {Added, b}, {Removed, a}}
	for _, we := range want {
		e, err := w.Next(ctx)
		if err != nil || e != we {
			t.Fatalf("event %v %v, want %v", e, err, we)
		}
	}
	if d := reg.Devices(); len(d) != 1 || d[0] != b {
		t.Errorf("devices %v", d)
	}
	// Next waits for the next change: one that happens in another
	// goroutine, after Next started or before, arrives.
	go reg.Remove(b)
	if e, err := w.Next(ctx); err != nil || e.Kind != Removed || e.Device != b {
		t.Errorf("event %v %v", e, err)
	}
	short, c2 := context.WithCancel(ctx)
	c2()
	if _, err := w.Next(short); !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a done ctx: %v", err)
	}
	w.Close()
	if _, err := w.Next(ctx); !errors.Is(err, ErrWatcherClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if err := reg.Add(a); err != nil { // no watcher left to queue to
		t.Fatal(err)
	}
}

func BenchmarkQueueRead4K(b *testing.B) {
	m, _ := NewMem("m", 512, 1024)
	ctx := context.Background()
	buf := make([]byte, 4096)
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(4096)
		for i := 0; b.Loop(); i++ {
			if _, err := m.ReadAt(ctx, buf, int64(i%128)*4096); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("queue", func(b *testing.B) {
		q := NewQueue(m, 1, 4)
		defer q.Close()
		done := make(chan struct{}, 1)
		r := &Request{Op: OpRead, Buf: buf, Done: func(*Request) { done <- struct{}{} }}
		b.SetBytes(4096)
		for i := 0; b.Loop(); i++ {
			r.Off = int64(i%128) * 4096
			if err := q.Submit(r); err != nil {
				b.Fatal(err)
			}
			<-done
		}
	})
}
