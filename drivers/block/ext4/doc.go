// Package ext4 reads ext2, ext3 and ext4 filesystems from a block.Device
// and presents them as an io/fs file system (fs.FS, fs.ReadFileFS,
// fs.ReadDirFS, fs.StatFS, fs.ReadLinkFS); on volumes whose features it
// fully handles it also writes them (MountRW).
//
// It owns the on-disk format as documented in the Linux kernel's
// "ext4 Data Structures and Algorithms" (Documentation/filesystems/ext4/,
// sections "Super Block", "Block Group Descriptors", "Index Nodes",
// "The Contents of inode.i_block", "Directory Entries", "Checksums",
// "Journal (jbd2)";
// section names below refer to it). Nothing else: partition tables are
// block/part's, choosing a driver is block/mount's.
//
// # Reading
//
// Supported: 32- and 64-bit group descriptors, any block size from 1 KiB
// to 64 KiB, extent trees of any depth and legacy block maps (direct,
// indirect, double and triple indirect), sparse files and uninitialised
// extents (read as zeros), linear directories and hash-tree directories
// (read linearly: the tree's interior blocks look like empty entries),
// fast and slow symlinks, small inline-data files. Refused at mount:
// compression, a separate journal device, meta_bg, dirdata, encryption.
// A journal that needs recovery is not replayed: the volume is read as it
// is on disk (FS.NeedsRecovery says so).
//
// Every on-disk structure is untrusted: the superblock, group
// descriptors, inodes, extent nodes, block maps and directory entries are
// validated (sizes, counts, block numbers inside the filesystem, extent
// tree depth and ordering, record lengths inside their block) and a
// corrupt structure yields an error wrapping ErrCorrupt, never a panic.
// Path resolution follows at most maxSymlinks symlinks.
//
// # Writing
//
// MountRW mounts read-write only a volume that is marked clean (state
// "valid", no errors, no journal to recover: else ErrNeedsCheck) and
// whose every feature flag is one the writer handles (else a
// *FeatureError, which wraps ErrUnsupported; Mount still reads it):
//
//   - needed: extent, filetype;
//   - handled: 64bit, flex_bg, metadata_csum (crc32c of the superblock,
//     group descriptors, block and inode bitmaps, inodes, linear directory
//     blocks and extent blocks, seeded as section "Checksums" says),
//     metadata_csum_seed, sparse_super, large_file, huge_file, dir_nlink,
//     extra_isize, uninit_bg together with metadata_csum (BLOCK_UNINIT and
//     INODE_UNINIT groups are initialised when first used; itable_unused
//     is kept);
//   - has_journal: an internal jbd2 journal that is empty (else
//     ErrNeedsCheck) is used for Syncs (below) when it is version 2
//     with no features or only revoke, 64bit and checksum v3; any other
//     journal (v1 checksums, v2 checksums, fast commits, shared,
//     external) is left alone and Syncs go without it;
//   - left alone, and safe to: resize_inode (the reserved descriptor
//     blocks are not touched), ext_attr (no attributes are written; a file
//     with an attribute block is not removed), dir_index (see below),
//     orphan_file (empty; nothing is orphaned: a file open for writing
//     cannot be removed, ErrBusy);
//   - refused: everything else, e.g. inline_data, bigalloc, quota,
//     project, encrypt, casefold, verity, meta_bg, mmp, uninit_bg without
//     metadata_csum (crc16 descriptors), 64 KiB blocks, volumes without
//     extents (ext2/ext3).
//
// The write API matches block/fat's: Create, OpenFile (os.O_* flags),
// File.Write/WriteAt/Truncate/Sync/Close, Mkdir, Remove, Rename, Sync.
// Files are created with extents; a file's tree is written with depth 0
// (up to four extents in the inode) or depth 1 (up to four leaf blocks
// of (block size - 12) / 12 extents each: 336 extents with 1 KiB blocks,
// 1360 with 4 KiB); a file whose tree is deeper, or which would need more
// extents, is refused for writing and removal (FeatureError). Writing
// into an uninitialised (fallocated) extent is refused the same way.
// Holes stay holes. New directories are linear with checksum tails.
// Adding an entry to a hash-tree directory first makes it linear (the
// root's ".." record grows over the index, interior index blocks become
// empty blocks with checksum tails, the index flag is cleared), which
// e2fsck and Linux accept; removing entries keeps the index, since hash
// leaves are ordinary directory blocks; moving a hash-tree directory to
// another parent makes it linear too (its ".." is in the root block).
// Rename replaces files, never directories (fs.ErrExist), and moves
// directories between parents (".." and link counts updated), not into
// themselves.
//
// # Crash safety
//
// Nothing but file data reaches the disk between Syncs:
//
//   - Every metadata block changed (bitmaps, group descriptors, inode
//     table blocks, directory and extent blocks) is kept in memory, where
//     reads see it, until Sync. File data is written to the device at
//     once, into blocks that are free on disk (or, when overwriting, in
//     place in the file's own blocks).
//   - Blocks freed since the last Sync stay marked in use until that Sync,
//     so new data never lands on blocks the on-disk metadata still
//     references, and no block is both freed and reused in one Sync.
//
// With a usable journal, Sync is one jbd2 transaction (section "Journal
// (jbd2)"; flushes at "|"): the journal superblock gets the start and
// sequence and the filesystem superblock the needs_recovery flag, then
// descriptor blocks (tags with checksum v3 when the journal has it) and
// copies of every changed block, including the superblock's block with
// the new free counts | the commit block | the blocks in place | the
// journal superblock marked empty | needs_recovery cleared |. The
// journal is empty again after every Sync, so no revoke records are ever
// needed. A transaction that would not fit the journal (operations Sync
// by themselves long before), or a block that would need escaping, is
// synced as without a journal.
//
// Without a journal, Sync writes the superblock marked "not clean" and
// flushes (which also makes the data durable), writes every changed
// metadata block, flushes, then writes the superblock marked clean with
// exact free counts, and flushes again.
//
// Guarantees that follow (and that the crash tests check with e2fsck and
// debugfs after a simulated host crash at every write, and with the
// writes after the last flush torn):
//
//   - After Sync returns, everything written survives a host crash and the
//     volume is consistent (e2fsck -fn clean).
//   - A crash between Syncs leaves exactly the last synced metadata,
//     marked clean (e2fsck -fn clean); only data overwritten in place in
//     files being written may have changed.
//   - A crash during a journaled Sync leaves either the previous state or
//     the new one, all of it, once the journal is recovered (by e2fsck,
//     as at boot, or by Linux at mount): the new one exactly when the
//     commit block reached the disk.
//   - A crash during an unjournaled Sync leaves the volume marked not
//     clean, so e2fsck does a full check: the metadata is a mix of old and
//     new blocks in which the bytes describing unchanged files are the
//     same in both and no new block is one an old file still uses, so
//     e2fsck -fy repairs it without touching files that were not being
//     changed. Linux must not mount it before e2fsck.
//
// Backup superblocks and descriptors are not updated (e2fsck does not
// require it). Freed space is reusable after the next Sync. If a change or
// a Sync fails half-way (an I/O error), the mount refuses further changes
// and Syncs, so the disk keeps its last synced (or recoverable) state.
//
// A read-only handle knows the file's blocks from when it was opened: it
// does not see later changes made through a write handle (as in
// block/fat).
//
// One RWMutex serialises changes; reads share it. Write and WriteAt of
// whole blocks into allocated or newly allocated space allocate no memory
// once the group's metadata is cached.
package ext4
