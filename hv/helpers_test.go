package hv

import "unsafe"

// newPage returns a zeroed 4096-byte page that is 8-byte aligned, as real
// SynIC and TSC pages are (a plain make([]byte) may live on the stack with
// byte alignment).
func newPage() []byte {
	w := make([]uint64, PageSize/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), PageSize)
}

// misalignedPage returns 4096 bytes starting one byte past an 8-byte
// boundary.
func misalignedPage() []byte {
	w := make([]uint64, PageSize/8+1)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), PageSize+8)[1 : PageSize+1]
}
