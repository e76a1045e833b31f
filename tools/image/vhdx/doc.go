// Package vhdx writes (and, for verification and inspection, parses)
// Hyper-V VHDX virtual disk files, dynamic or fixed, without a parent and
// with an empty log, following Microsoft's MS-VHDX specification v1.0.
//
// It owns the VHDX container format only; what goes on the virtual disk is
// the caller's (see package layout). It must not depend on any tool outside
// Go: qemu-img is used by its tests, never by the code.
package vhdx
