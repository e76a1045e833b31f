// Package part reads partition tables (GPT and MBR) from a block.Device
// and exposes each partition as a block.Device of its own.
//
// It owns the on-disk formats of the UEFI specification's GUID Partition
// Table (UEFI 2.10 §5.3: header, entry array, protective MBR) and of the
// classic MBR partition table (UEFI 2.10 §5.2.1, "Legacy MBR"); section
// names below refer to them. It writes nothing to disk and knows no
// filesystem.
//
// Logical partitions inside an MBR extended partition are read by
// following the chain of extended boot records (numbered from 5, as Linux
// does), bounded in length and refused when it loops or leaves the
// extended partition.
//
// Everything read from the disk is untrusted: every size, LBA and count is
// validated before use, and a malformed table is an error, never a panic.
//
// # GPT validation
//
// The primary header (LBA 1) must carry the signature, a header size in
// [92, sector size], a header CRC32 over HeaderSize bytes with the CRC
// field zeroed, MyLBA = 1, usable LBAs inside the disk, and an entry array
// (entry size a power of two ≥ 128, at most 1 MiB in all) whose CRC32
// matches. The backup header is read from the disk's last LBA (the spec
// says AlternateLBA; a table whose AlternateLBA is not the last LBA is
// reported as a mismatch) and validated the same way with MyLBA = last
// LBA. When both are valid they must agree (disk GUID, usable range, entry
// count, size and array CRC). When the primary is invalid the backup is
// used and Table.UsedBackup and Table.PrimaryErr say so; Table.BackupErr
// reports a missing or mismatched backup while the primary is in use.
// Partitions must lie inside the usable range and may not overlap.
package part
