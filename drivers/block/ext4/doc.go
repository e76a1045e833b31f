// Package ext4 reads ext2, ext3 and ext4 filesystems from a block.Device
// and presents them as an io/fs file system (fs.FS, fs.ReadFileFS,
// fs.ReadDirFS, fs.StatFS, fs.ReadLinkFS). It is read-only: there is no
// write support (writing ext4 safely needs the journal, bitmaps, group
// checksums and orphan handling, which are not done).
//
// It owns the on-disk format as documented in the Linux kernel's
// "ext4 Data Structures and Algorithms" (Documentation/filesystems/ext4/,
// sections "Super Block", "Block Group Descriptors", "Index Nodes",
// "The Contents of inode.i_block", "Directory Entries"; section names below
// refer to it). Nothing else: partition tables are block/part's.
//
// Supported: 32- and 64-bit group descriptors, any block size from 1 KiB
// to 64 KiB, extent trees of any depth and legacy block maps (direct,
// indirect, double and triple indirect), sparse files and uninitialised
// extents (read as zeros), linear directories and hash-tree directories
// (read linearly: the tree's interior blocks look like empty entries),
// fast and slow symlinks, small inline-data files. Refused at mount:
// compression, a separate journal device, meta_bg, dirdata, encryption.
// A journal that needs recovery is not replayed: the volume is read as it
// is on disk (Volume.NeedsRecovery says so).
//
// Every on-disk structure is untrusted: the superblock, group
// descriptors, inodes, extent nodes, block maps and directory entries are
// validated (sizes, counts, block numbers inside the filesystem, extent
// tree depth and ordering, record lengths inside their block) and a
// corrupt structure yields an error wrapping ErrCorrupt, never a panic.
// Path resolution follows at most maxSymlinks symlinks.
package ext4
