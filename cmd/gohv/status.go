package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// status shows what a long step is doing, with a spinner and the time it
// took, on stderr when stdout and stderr are terminals; elsewhere (pipes,
// files, tests) it prints nothing.
type status struct {
	w  io.Writer // nil: quiet
	mu sync.Mutex
}

func newStatus(quiet bool) *status {
	if quiet || !isTerminal(os.Stdout) || !isTerminal(os.Stderr) {
		return &status{}
	}
	return &status{w: os.Stderr}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// step shows msg with a spinner until the returned function is called,
// which ends the line with "done" and the elapsed time, or clears it when
// the step failed (the error is printed by the caller).
func (s *status) step(msg string) (end func(ok bool)) {
	if s.w == nil {
		return func(bool) {}
	}
	start := time.Now()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		frames := `|/-\`
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			s.mu.Lock()
			fmt.Fprintf(s.w, "\r\033[K%s %c %.0fs", msg, frames[i%len(frames)], time.Since(start).Seconds())
			s.mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func(ok bool) {
		once.Do(func() {
			close(stop)
			<-stopped
			s.mu.Lock()
			defer s.mu.Unlock()
			if ok {
				fmt.Fprintf(s.w, "\r\033[K%s: done (%.1fs)\n", msg, time.Since(start).Seconds())
			} else {
				fmt.Fprint(s.w, "\r\033[K")
			}
		})
	}
}
