package block

import (
	"context"
	"errors"
	"sync"
)

// Queue turns any Device into a Submitter: each of its queues is a
// bounded channel of requests served by one worker goroutine, which runs
// the request synchronously on the device and then calls Done. Done thus
// runs on that queue's worker goroutine, never concurrently with another
// Done of the same queue, and must not block (it holds up the queue).
//
// Submit allocates nothing: a request travels as a pointer through a
// channel made once. When a queue is full, Submit waits for room; it must
// therefore not be called from Done of the same queue with the queue full
// (TrySubmit does not wait).
type Queue struct {
	dev    Device
	queues []chan *Request
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex // guards closed; held for reading while sending to queues
	closed bool
	wg     sync.WaitGroup
}

// ErrQueueFull is returned by TrySubmit when the request's queue has no
// room.
var ErrQueueFull = errors.New("block: queue full")

// NewQueue starts queues workers over dev, each taking up to depth
// waiting requests. Close stops them.
func NewQueue(dev Device, queues, depth int) *Queue {
	queues, depth = max(queues, 1), max(depth, 1)
	q := &Queue{dev: dev, queues: make([]chan *Request, queues)}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	for i := range q.queues {
		q.queues[i] = make(chan *Request, depth)
		q.wg.Add(1)
		go q.worker(q.queues[i])
	}
	return q
}

func (q *Queue) worker(ch chan *Request) {
	defer q.wg.Done()
	for r := range ch {
		if q.ctx.Err() != nil {
			r.N, r.Err = 0, &IOError{Op: r.Op, Off: r.Off, Err: ErrRemoved}
		} else {
			Do(q.ctx, q.dev, r)
		}
		r.Done(r)
	}
}

// Info implements Device; Queues is the adapter's queue count.
func (q *Queue) Info() Info {
	i := q.dev.Info()
	i.Queues = len(q.queues)
	return i
}

// ReadAt implements Device by calling the device directly.
func (q *Queue) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return q.dev.ReadAt(ctx, p, off)
}

// WriteAt implements Device by calling the device directly.
func (q *Queue) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	return q.dev.WriteAt(ctx, p, off)
}

// Flush implements Device.
func (q *Queue) Flush(ctx context.Context) error { return q.dev.Flush(ctx) }

// Discard implements Device.
func (q *Queue) Discard(ctx context.Context, off, n int64) error { return q.dev.Discard(ctx, off, n) }

// Submit implements Submitter. It checks r against the device (alignment,
// range, read-only) before queueing it; a rejected request is not
// completed.
func (q *Queue) Submit(r *Request) error { return q.submit(r, true) }

// TrySubmit is Submit that returns ErrQueueFull instead of waiting.
func (q *Queue) TrySubmit(r *Request) error { return q.submit(r, false) }

func (q *Queue) submit(r *Request, wait bool) error {
	if r.Done == nil {
		return &IOError{Op: r.Op, Off: r.Off, Err: errNoDone}
	}
	n := r.Len
	if r.Op == OpRead || r.Op == OpWrite {
		n = int64(len(r.Buf))
	}
	if err := Check(q.dev.Info(), r.Op, r.Off, n); err != nil {
		return err
	}
	r.Err, r.N = nil, 0
	ch := q.queues[uint(r.Queue)%uint(len(q.queues))]
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return &IOError{Op: r.Op, Off: r.Off, Err: ErrRemoved}
	}
	if wait {
		ch <- r
		return nil
	}
	select {
	case ch <- r:
		return nil
	default:
		return ErrQueueFull
	}
}

var errNoDone = errors.New("request has no Done callback")

// Close stops accepting requests, fails the ones still queued with
// ErrRemoved (cancelling the one in progress through its context) and
// waits for the workers to finish. The device itself is not closed.
func (q *Queue) Close() {
	q.cancel()
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		for _, ch := range q.queues {
			close(ch)
		}
	}
	q.mu.Unlock()
	q.wg.Wait()
}
