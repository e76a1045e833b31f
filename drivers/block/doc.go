// Package block is gohv's block layer: the contract between disk drivers
// (storvsc, memory and file disks, partitions) and what reads and writes
// sectors (partition tables, filesystems, applications).
//
// It owns the Device and Submitter interfaces, the Request type, the error
// values callers branch on, the bounds/alignment/read-only checks every
// driver applies (Check), the Registry of attached disks with hot-add and
// removal events, a memory-backed Device (Mem) and a generic asynchronous
// adapter (Queue) that turns any Device into a Submitter. It does not know
// any wire format or filesystem: partition tables live in block/part,
// filesystems in block/fat and block/ext4, the file-backed disk for hosted
// use in block/blockfile.
//
// # Units and alignment
//
// Offsets and lengths are in bytes. Every ReadAt/WriteAt offset and length
// is a multiple of Info.SectorSize and the range lies inside the device
// (ErrUnaligned, ErrOutOfRange otherwise). A short transfer always comes
// with an error. Flush makes every completed write durable (the SCSI
// SYNCHRONIZE CACHE of storvsc); Discard is a hint that the range's
// contents are no longer needed and reads back as unspecified data.
//
// # Asynchronous requests
//
// A Submitter takes caller-owned Requests: the caller fills Op, Off, Buf
// (or Len for a discard), Queue and Done and keeps the Request (and Buf)
// untouched until Done runs. Done runs on the device's completion
// goroutine with Err and N set; it must not block (hand the result to a
// channel with room, or a waiting goroutine). A Request is reusable after
// Done: Submit allocates nothing, so steady-state I/O is garbage-free.
//
// # Removal
//
// A device that goes away (a VMBus rescind, a hot-removed disk) fails
// every later call, and every request still in flight, with an error
// wrapping ErrRemoved; the driver that owns it also removes it from the
// Registry it was added to, which tells every watcher.
package block
