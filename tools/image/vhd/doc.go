// Package vhd writes fixed-size VHD images, the format Azure requires for
// uploaded disks, and parses VHD footers for verification and inspection.
//
// It owns the VHD footer only (Microsoft's "Virtual Hard Disk Image Format
// Specification", section numbers refer to it); what goes on the disk is the
// caller's. Dynamic and differencing VHDs are not written: VHDX serves
// Hyper-V and Azure takes only fixed VHDs.
package vhd
