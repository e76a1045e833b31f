// Package fat is gohv's FAT32 implementation: it builds volumes in one
// pass from a tree of files (Write: the EFI System Partition of Gen2 disks
// and the data partitions of both generations, used by tools/image), and
// it mounts an existing FAT32 volume on a block.Device to read and change
// it (Mount: an io/fs view plus a write API, used by the kernel).
//
// It owns the FAT32 on-disk format (Microsoft's "FAT32 File System
// Specification" 1.03; section names refer to it) and nothing else: no
// partition tables (block/part), no FAT12/16.
//
// # Building
//
// Write lays files out contiguously, sets every directory's ".." right
// (cluster 0 for the root's children), gives empty files no cluster, and
// writes an exact FSInfo free count, so fsck.fat finds nothing to fix.
//
// # Mounted volumes
//
// Mount validates the boot sector (ParseBootSector) and then reads FAT
// sectors and directories on demand; the FAT sectors it has read stay
// cached (at most the size of one FAT). Everything on the disk is
// untrusted: cluster numbers are checked against the volume, chains
// against loops and free or bad links, directory sizes against the spec's
// 2 MiB cap and path depth against maxDepth; a corrupt volume yields
// errors wrapping ErrFormat, never a panic.
//
// FS implements fs.FS, fs.ReadFileFS, fs.ReadDirFS and fs.StatFS. Names
// compare without regard to case, by long (VFAT) or short name; long names
// are read and written, short names for new entries are generated with a
// numeric tail (~1, ~2, …) unique in their directory. The write API is
// Create, OpenFile (os.O_* flags), File.Write/WriteAt/Truncate/Sync/Close,
// Mkdir, Remove, Rename and Sync. One mutex serialises all operations.
// A file open for writing cannot be removed or renamed (ErrBusy).
//
// # Crash consistency
//
// There is no journal; instead every change is ordered so that a crash at
// any point leaves at worst lost clusters or a stale size, which fsck.fat
// repairs, and never an entry or chain pointing at garbage:
//
//   - Growing a file: each new cluster is marked end-of-chain in every FAT
//     copy, then the previous tail is linked to it; then the data (and
//     any zero fill) is written; only then does the directory entry get
//     the new size and first cluster. A crash leaves a chain longer than
//     the size (fsck truncates it) or unreferenced clusters.
//   - New directory clusters are zeroed before they are linked, and a new
//     subdirectory's "." and ".." are written before its parent's entry.
//   - Shrinking: the entry's size is written first, then the new tail is
//     marked end-of-chain, then the rest is freed.
//   - Remove: the entry's slots are marked free, then the chain is freed.
//   - Rename: the new entry is written, then the old one freed (a crash in
//     between leaves two names for one chain, never none); replacing a file
//     frees the victim's entry first and its clusters last.
//   - The FSInfo free count and hint are written by Sync (and File.Sync),
//     followed by the device's Flush; between Syncs the FSInfo count may be
//     stale, which the specification allows (it is only a hint).
//
// Writes reach the device as they happen (no write-back cache), but a
// device with a volatile write cache (block.Info.WriteCache) needs Sync
// for durability.
package fat
