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
// included), and the btree.Blocks sources of new btree blocks: the AGFL for the bnobt,
// cntbt and rmapbt, free space for the inobt and finobt.
//
// Every record change goes through the generic btree engine; this package
// never edits a btree block itself. Every changed AGF field and AGFL slot
// is logged by byte range in the caller's transaction.
//
// Not done (refused or not reached): busy extents (a deterministic offline
// tool treats no extent as busy), mapping shared extents
// (xfs_rmap_map_shared, xfs_rmap_convert_shared), realtime extents, per-AG
// reservations.
package alloc
