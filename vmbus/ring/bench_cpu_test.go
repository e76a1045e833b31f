//go:build linux

package ring

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock reports the process's CPU time, so that benchmarks can report
// CPU ns/op next to wall-clock ns/op: on a shared, loaded machine wall
// time measures the neighbours as much as the code.
func cpuClock() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuClock()-start)/float64(b.N), "cpu-ns/op")
}
