// Package image holds what every gohv disk-image writer shares: the Source
// of a virtual disk's contents (with optional knowledge of where its data
// lies), a sparse in-memory disk that layouts are assembled on, the raw
// writer, size parsing, and the all-or-nothing file creation that keeps a
// failed run from leaving a half-written image behind.
//
// The container formats live in sub-packages (vhd, vhdx) and the partition
// layouts in layout. This package must not know about boot loaders or
// kernels: it moves bytes, it does not decide what they are.
package image
