// Package alloc owns the free space of an allocation group, as the kernel's
// libxfs/xfs_alloc.c does: the AGF read and logged through a transaction
// (AG), the AGFL ring and its fix-up to the bounds the free-space btrees
// need (xfs_alloc_get_freelist, xfs_alloc_put_freelist,
// xfs_alloc_fix_freelist), freeing an extent into the bnobt and cntbt with
// merges on both sides (xfs_free_ag_extent), taking one free block near a
// target (a simplified xfs_alloc_vextent_near_bno), the reverse-mapping
// records of what it frees and allocates (xfs_rmap_unmap, xfs_rmap_map),
// and the btree.Blocks sources of new btree blocks: the AGFL for the bnobt,
// cntbt and rmapbt, free space for the inobt and finobt.
//
// Every record change goes through the generic btree engine; this package
// never edits a btree block itself. Every changed AGF field and AGFL slot
// is logged by name (ondisk.LogFields) in the caller's transaction.
//
// Busy extents (xfs_extent_busy_*) are not tracked: an allocation may take
// any free block, one freed earlier in the same transaction or in one not
// checkpointed yet included. What the kernel's busy list guards against is
// kept out elsewhere: no block is written in place before the log records
// of the transactions that freed and reused it are durable (package
// journal), a block cancelled and reused in one transaction is revived by
// its new owner (journal.Transaction.GetBuf), and the free engine commits
// a transaction that released an inode chunk before anything else can
// allocate the chunk's blocks (package xfs).
//
// Not done here: shared (reflinked) extents, which are package refcount's;
// realtime extents; per-AG reservations.
package alloc
