package storvsc

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// A host that lies in its completions must not corrupt memory, complete
// a request twice or hang the driver.
func TestHostileCompletions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		res    hookResult
		want   error // nil: success
		protoN uint64
	}{
		{"transfer longer than asked", hookResult{handled: true, srbStatus: 1,
			mutate: func(p []byte) { binary.LittleEndian.PutUint32(p[24:], 1<<20) }}, ErrProtocol, 0},
		{"short transfer", hookResult{handled: true, srbStatus: 1,
			mutate: func(p []byte) { binary.LittleEndian.PutUint32(p[24:], 256) }}, errShort, 0},
		{"sense length beyond the buffer", hookResult{handled: true, srbStatus: 0x84, scsiStatus: 2,
			mutate: func(p []byte) { p[21] = 200 }}, ErrProtocol, 1},
		{"garbage sense", hookResult{handled: true, srbStatus: 0x84, scsiStatus: 2,
			mutate: func(p []byte) { p[21] = 3; p[28] = 0x42 }}, ErrSCSI, 0},
		{"duplicate completion", hookResult{handled: true, srbStatus: 1, twice: true,
			mutate: func(p []byte) { binary.LittleEndian.PutUint32(p[24:], 512) }}, nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, SCSIClass, func(h *fakeHost) { h.addDisk(0, 0, 0, 64, 512) }, Config{})
			r.host.mu.Lock()
			r.host.hook = hookN(1, tc.res)
			r.host.mu.Unlock()
			var dones atomic.Int32
			done := make(chan error, 2)
			req := Request{Op: OpRead, Buf: make([]byte, 512), Done: func(r *Request) { dones.Add(1); done <- r.Err }}
			if err := r.disk(0).Submit(&req); err != nil {
				t.Fatal(err)
			}
			err := <-done
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The driver still works, and a stale duplicate did not
			// complete anything twice.
			if _, err := r.disk(0).ReadAt(ctx(t), make([]byte, 512), 0); err != nil {
				t.Fatal(err)
			}
			if n := dones.Load(); n != 1 {
				t.Fatalf("Done ran %d times", n)
			}
			if st := r.c.Stats(); st.ProtocolErrors != tc.protoN {
				t.Fatalf("protocol errors %d, want %d", st.ProtocolErrors, tc.protoN)
			}
		})
	}
}

var errShort = io.ErrUnexpectedEOF

// A completion with an id no request has is dropped; the request it was
// meant for times out after RESET_LUN and RESET_BUS, and the driver goes
// on with its other slots.
func TestWrongTransactionID(t *testing.T) {
	r := newRig(t, SCSIClass, func(h *fakeHost) {
		h.addDisk(0, 0, 0, 64, 512)
	}, Config{Timeout: 20 * time.Millisecond, ResetTimeout: 20 * time.Millisecond})
	r.host.mu.Lock()
	first := true
	r.host.hook = func(s *srbSeen) hookResult {
		if s.cdb[0] != 0x28 || !first {
			return hookResult{}
		}
		first = false
		return hookResult{handled: true, srbStatus: 1, txidDelta: 1 << 40}
	}
	r.host.mu.Unlock()
	_, err := r.disk(0).ReadAt(ctx(t), make([]byte, 512), 0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v", err)
	}
	if st := r.c.Stats(); st.ProtocolErrors != 1 || st.Timeouts != 3 || st.Resets != 2 {
		t.Fatalf("stats %+v", st)
	}
	r.host.mu.Lock()
	resets := append([]uint32(nil), r.host.resets...)
	r.host.mu.Unlock()
	if len(resets) != 2 || resets[0] != 4 || resets[1] != 6 {
		t.Fatalf("resets %v", resets)
	}
	if _, err := r.disk(0).ReadAt(ctx(t), make([]byte, 512), 0); err != nil {
		t.Fatal(err)
	}
}
