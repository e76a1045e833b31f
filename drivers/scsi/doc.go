// Package scsi is gohv's SCSI wire format: builders for the command
// descriptor blocks (CDBs) a disk driver sends, and parsers for the data
// and sense bytes a target returns. It follows SPC-4 / SBC-3 as Hyper-V's
// StorVSP and Linux drivers/scsi use them.
//
// Builders write into a fixed-size CDB value and never allocate, so they
// can run on a per-I/O path. Parsers take bytes that came from an untrusted
// host: every length and offset is checked against the bytes actually
// received, a short or inconsistent buffer yields an error wrapping
// ErrMalformed, and no parser panics (each has a fuzz target). Parsers copy
// what they keep; they never retain the input slice.
//
// The package knows nothing about transports: it does not touch VMBus,
// VSTOR packets or block devices (those belong to drivers/storvsc and
// drivers/block).
package scsi
