// Package fat builds FAT32 volumes in one pass from a tree of files: the
// EFI System Partition of Gen2 disks and the data partitions of both
// generations.
//
// It owns the FAT32 on-disk format as written by gohv (Microsoft's "FAT32
// File System Specification" 1.03; section names refer to it) and nothing
// else: no partition tables, no reading back, no in-place modification.
// Files are laid out contiguously, every directory's ".." is right (cluster
// 0 for the root's children), empty files own no cluster, and the FSInfo
// free count is exact, so fsck.fat finds nothing to fix.
package fat
