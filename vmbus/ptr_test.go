package vmbus

import (
	"sync/atomic"
	"unsafe"
)

func ptr(b []byte, off int) unsafe.Pointer { return unsafe.Pointer(&b[off]) }

func atomicLoad32(mem []byte, off int) uint32 { return atomic.LoadUint32((*uint32)(ptr(mem, off))) }

func atomicStore32(mem []byte, off int, v uint32) { atomic.StoreUint32((*uint32)(ptr(mem, off)), v) }
