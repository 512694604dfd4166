package icluster

// Reflinked orphans (DIFLAG2_REFLINK): their data extents may be shared
// with other files, so truncation does not free them directly. As the
// kernel's xfs_bmap_del_extent_real does for the data fork of a reflink
// inode, each extent's reverse mapping is removed as a shared one
// (XFS_RMAP_UNMAP_SHARED, where the rmapbt is enabled) and its reference
// count lowered (xfs_refcount_decrease_extent): blocks another file still
// maps stay allocated, blocks no one maps any more are freed. Attr fork
// extents and bmbt blocks are never shared and are freed as usual. The
// CoW fork lives in memory only, so an orphan has none on disk.

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// SharedSpace is a Space that also releases the data extents of reflinked
// files.
type SharedSpace interface {
	Space
	// FreeShared releases [agbno, agbno+length) of AG agno from owner (a
	// data extent of a reflinked file at its file offset): its reverse
	// mapping is removed as a shared extent's (UNMAP_SHARED) where the
	// rmapbt is enabled, then the reference count of the blocks is
	// lowered by one (XFS_REFCOUNT_DECREASE): blocks left mapped once
	// lose their refcount record, blocks mapped by no one are freed.
	FreeShared(tx FreeTx, agno, agbno, length uint32, owner Owner) error
}

// isReflink reports DIFLAG2_REFLINK.
func isReflink(d *ondisk.Dinode) bool { return d.Flags2&ondisk.Diflag2Reflink != 0 }

// markShared marks the data extents of a reflinked inode's fork list
// Shared (attr extents and bmbt blocks never are).
func markShared(exts []Extent, reflink bool) {
	for i := range exts {
		exts[i].Shared = reflink && !exts[i].Attr && !exts[i].Bmbt
	}
}

// checkShared refuses, before anything changes, to release shared extents
// without a SharedSpace.
func (a *AG) checkShared(ino uint64, exts []Extent) error {
	if _, ok := a.Space.(SharedSpace); ok {
		return nil
	}
	for _, e := range exts {
		if e.Shared {
			return &RefusedError{Ino: ino, Reason: "shares extents with other files (DIFLAG2_REFLINK) and no refcount btree update is available to free them"}
		}
	}
	return nil
}

// release unmaps extent e from its owner: shared data extents through
// SharedSpace.FreeShared, everything else freed to free space.
func (a *AG) release(tx FreeTx, e Extent) error {
	if !e.Shared {
		return a.Space.FreeExtent(tx, e.AG, e.Agbno, e.Len, e.Owner)
	}
	ss, ok := a.Space.(SharedSpace)
	if !ok {
		return fmt.Errorf("icluster: %s is shared and the Space cannot release shared extents", describe(e))
	}
	return ss.FreeShared(tx, e.AG, e.Agbno, e.Len, e.Owner)
}

// SharedBlocks is the number of blocks of the victim's shared data
// extents: blocks whose release lowers reference counts rather than
// freeing them (each may touch a refcount record of its own).
func (v *Victim) SharedBlocks() uint64 {
	var n uint64
	for _, e := range v.Extents {
		if e.Shared {
			n += uint64(e.Len)
		}
	}
	return n
}

// NeedsSteps reports whether freeing v in one transaction would release
// more than max extents, or, for a reflinked file, lower the counts of
// more than max shared blocks (the kernel bounds a reflinked file's unmap
// per transaction by blocks as well: xfs_refcount_max_unmap): such a
// victim is truncated in steps first (TruncateStep with max).
func (v *Victim) NeedsSteps(max int) bool {
	return uint64(len(v.Extents)) > uint64(max) || v.SharedBlocks() > uint64(max)
}
