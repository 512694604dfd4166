// Package alloc owns the free space of an allocation group, as the kernel's
// libxfs/xfs_alloc.c does: the AGF read and logged through a transaction
// (AG), the AGFL ring and its fix-up to the bounds the free-space btrees
// need (xfs_alloc_get_freelist, xfs_alloc_put_freelist,
// xfs_alloc_fix_freelist), freeing an extent into the bnobt and cntbt with
// merges on both sides (xfs_free_ag_extent), taking one free block near a
// target (a simplified xfs_alloc_vextent_near_bno), the reverse-mapping
// records of what it frees and allocates (xfs_rmap_unmap, xfs_rmap_map),
// rmap removals on their own as rmap intents make them (the shared
// variant for reflinked files' data extents, xfs_rmap_unmap_shared,
// included), and the btree.Blocks sources of new btree blocks: the AGFL
// for the bnobt, cntbt and rmapbt, free space for the inobt and finobt.
//
// Every record change goes through the generic btree engine; this package
// never edits a btree block itself. Every changed AGF field and AGFL slot
// is logged by name (ondisk.LogFields) in the caller's transaction.
//
// Busy extents (xfs_extent_busy_*, busy.go): with an AG's Busy set, what
// FreeExtent frees is busy until its transaction is durable, and the
// allocations from free space (a btree's new block, the AGFL refill) keep
// off busy extents while they can. What the kernel's busy list guards
// against is also kept out elsewhere: no block is written in place before the log records
// of the transactions that freed and reused it are durable (package
// journal), a block cancelled and reused in one transaction is revived by
// its new owner (journal.Transaction.GetBuf), and the free engine commits
// a transaction that released an inode chunk before anything else can
// allocate the chunk's blocks (package xfs).
//
// Shared (reflinked) extents: only removing one owner's reverse mapping of
// them (xfs_rmap_unmap_shared) is here; their reference counts are package
// refcount's. Not done here: mapping shared extents (xfs_rmap_map_shared,
// xfs_rmap_convert_shared), realtime extents, per-AG reservations.
package alloc
