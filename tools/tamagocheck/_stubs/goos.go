// Package goos is a type-checking stand-in for tamago-go's runtime/goos
// (the hooks a board provides); it is never linked.
package goos

import "unsafe"

var (
	RamStart       uint
	RamSize        uint
	RamStackOffset uint
)

func CPUinit()               {}
func Hwinit0()               {}
func InitRNG()               {}
func GetRandomData(b []byte) {}
func Nanotime() int64        { return 0 }
func Printk(c byte)          {}
func Hwinit1()               {}

var (
	Bloc   uintptr
	Exit   func(code int32)
	Idle   func(until int64)
	ProcID func() uint64
	Task   func(sp, mp, gp, fn unsafe.Pointer)
	Wake   func(procid uint64)
)

var _ unsafe.Pointer
