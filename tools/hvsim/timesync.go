package hvsim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// TimeSync is the host of the time sync IC (docs/hyperv-protocol.md §8.5):
// once the guest negotiated, it sends one SYNC (the guest steps its clock)
// and then a SAMPLE every Interval. Parent time comes from the host's
// Config.Clock wall clock; with message version 4.0 each message also
// carries the partition reference counter read when the sample was taken
// (Host.ReferenceTime, the counter the guest reads with TimeRefCount), so
// the guest computes now = parent time + (its counter now − VM reference
// time).
//
// Offered versions: framework 3.0, 1.0; messages 4.0, 3.0, 1.0 on
// WS2016 and later, 3.0, 1.0 on WS2012R2 (4.0 came with Windows Server
// 2016: Linux commit "Drivers: hv: utils: Support TimeSync version 4.0
// protocol samples").
type TimeSync struct {
	icService
	icRequests

	interval time.Duration
	// timeout bounds each periodic request.
	timeout time.Duration

	smu     sync.Mutex
	synced  *Channel // the channel whose initial SYNC went out
	samples []TimeSample
	stats   TimeSyncStats
	changed chan struct{} // closed and replaced on every answer
}

// TimeSample is one time sync message and what the guest answered.
type TimeSample struct {
	Flags      uint8  // TimeSyncSync, TimeSyncSample or TimeSyncProbe
	ParentTime uint64 // 100 ns since 1601-01-01 UTC (FileTime)
	RefTime    uint64 // VM reference time (0 before message version 4.0)
	HResult    uint32 // the guest's status
}

// TimeSyncStats counts time sync exchanges.
type TimeSyncStats struct {
	Sent, Answered, Failed, Missed uint64
}

// maxStoredSamples bounds TimeSync.Samples.
const maxStoredSamples = 1000

// NewTimeSync returns a time sync IC host sending a SAMPLE every interval
// after the first SYNC (interval ≤ 0: no periodic samples, only Send).
// Hyper-V samples every 5 s.
func NewTimeSync(interval time.Duration) *TimeSync {
	t := &TimeSync{interval: interval, timeout: 5 * time.Second, icRequests: newICRequests(), changed: make(chan struct{})}
	t.icService = icService{name: "timesync", class: ClassTimeSync,
		inst: MustParseGUID("2dd1ce17-079e-403c-b352-a1921ee207ee"), icType: icTypeTimeSync,
		versions: timeSyncVersions}
	t.onReady = t.loop
	return t
}

func timeSyncVersions(p Profile) (fw, msg []uint32) {
	fw = []uint32{icVersion(3, 0), icVersion(1, 0)}
	if p == WS2012R2 {
		return fw, []uint32{icVersion(3, 0), icVersion(1, 0)}
	}
	return fw, []uint32{icVersion(4, 0), icVersion(3, 0), icVersion(1, 0)}
}

func (t *TimeSync) loop(ctx context.Context, ch *Channel) {
	flags := TimeSyncSync
	var tick <-chan time.Time
	if t.interval > 0 {
		tk := time.NewTicker(t.interval)
		defer tk.Stop()
		tick = tk.C
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, t.timeout)
		_, err := t.send(rctx, ch, flags)
		cancel()
		if flags == TimeSyncSync {
			t.smu.Lock()
			t.synced = ch
			t.smu.Unlock()
			t.count(func(*TimeSyncStats) {})
		}
		switch {
		case err != nil && (ctx.Err() != nil || errors.Is(err, ErrClosed)):
			return
		case err != nil && errors.Is(err, context.DeadlineExceeded):
			t.count(func(s *TimeSyncStats) { s.Missed++ })
		}
		flags = TimeSyncSample
		if tick == nil {
			return
		}
		select {
		case <-tick:
		case <-ctx.Done():
			return
		case <-ch.Done():
			return
		}
	}
}

func (t *TimeSync) count(f func(*TimeSyncStats)) {
	t.smu.Lock()
	defer t.smu.Unlock()
	f(&t.stats)
	close(t.changed)
	t.changed = make(chan struct{})
}

// Send sends one time sync message with flags now and returns what was
// sent with the guest's status (a failure status is returned as
// *HResultError too). It first waits for the negotiation and for the
// initial SYNC of the channel to be done, so that SYNC is always first.
func (t *TimeSync) Send(ctx context.Context, flags uint8) (TimeSample, error) {
	ch, err := t.waitReady(ctx)
	if err != nil {
		return TimeSample{}, fmt.Errorf("hvsim: timesync: %w", err)
	}
	for {
		t.smu.Lock()
		synced, changed := t.synced == ch, t.changed
		t.smu.Unlock()
		if synced {
			break
		}
		select {
		case <-changed:
		case <-ch.Done():
			return TimeSample{}, fmt.Errorf("hvsim: timesync: %w", ErrClosed)
		case <-ctx.Done():
			return TimeSample{}, fmt.Errorf("hvsim: timesync: waiting for the initial SYNC: %w", ctx.Err())
		}
	}
	return t.send(ctx, ch, flags)
}

func (t *TimeSync) send(ctx context.Context, ch *Channel, flags uint8) (TimeSample, error) {
	if err := t.acquire(ctx); err != nil {
		return TimeSample{}, err
	}
	defer t.release()
	_, msg, _ := t.Negotiated()
	// Sample the clock as late as possible before sending.
	s := TimeSample{Flags: flags, ParentTime: FileTime(ch.h.cfg.Clock.Now())}
	if msg >= timeSyncVersion4 {
		s.RefTime = ch.h.ReferenceTime()
	}
	t.count(func(st *TimeSyncStats) { st.Sent++ })
	_, h, err := t.exchange(ctx, &t.icService, ch, icTypeTimeSync, encodeTimeSyncBody(msg, s.ParentTime, s.RefTime, flags))
	if err != nil {
		return s, fmt.Errorf("hvsim: timesync: %w", err)
	}
	if h.msgSize != h.sentSize {
		// The guest answers in the buffer it got (docs/hyperv-protocol.md §8.1, §11 #17).
		return s, violation(ch, "timesync", fmt.Errorf("reply message size %d, sent %d", h.msgSize, h.sentSize))
	}
	s.HResult = h.status
	t.smu.Lock()
	if len(t.samples) < maxStoredSamples {
		t.samples = append(t.samples, s)
	}
	t.smu.Unlock()
	t.count(func(st *TimeSyncStats) {
		st.Answered++
		if h.status != HResultOK {
			st.Failed++
		}
	})
	if h.status != HResultOK {
		return s, &HResultError{Service: "timesync", Op: timeSyncFlagName(flags), HResult: h.status}
	}
	return s, nil
}

func timeSyncFlagName(f uint8) string {
	switch f {
	case TimeSyncProbe:
		return "PROBE"
	case TimeSyncSync:
		return "SYNC"
	case TimeSyncSample:
		return "SAMPLE"
	}
	return fmt.Sprintf("flags %#x", f)
}

// Samples returns the answered messages so far (the first 1000), oldest
// first.
func (t *TimeSync) Samples() []TimeSample {
	t.smu.Lock()
	defer t.smu.Unlock()
	return append([]TimeSample(nil), t.samples...)
}

// Stats returns the counters.
func (t *TimeSync) Stats() TimeSyncStats {
	t.smu.Lock()
	defer t.smu.Unlock()
	return t.stats
}

// WaitAnswered waits until the guest answered at least n messages.
func (t *TimeSync) WaitAnswered(ctx context.Context, n uint64) error {
	for {
		t.smu.Lock()
		got, changed := t.stats.Answered, t.changed
		t.smu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("hvsim: timesync: %d of %d answers: %w", got, n, ctx.Err())
		}
	}
}
