// Package icluster owns freeing inodes: inspecting an orphan (what freeing
// it releases, or why it is refused), truncating its forks (over several
// transactions for a big one, as xfs_itruncate_extents, at any bmbt
// depth; a reflinked file's shared data extents through SharedSpace:
// rmap UNMAP_SHARED and refcount decrease), the inode core
// reset, inode btree and AGI updates and unlinked-chain fix of the
// kernel's xfs_ifree, releasing chunks that are entirely free, and the
// stale-marking cluster free of xfs_ifree_cluster that runs when a chunk
// becomes entirely free.
package icluster

import (
	"runtime"
	"slices"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// FreeClusters is the kernel's xfs_ifree_cluster for the chunk starting at
// startino in AG agno, whose allocated inodes are alloc (a sparse chunk's
// holes have no cluster buffer and are skipped). held reports the inodes
// whose ILOCK the caller's transaction holds already (the inode being
// freed, and inodes freed earlier in the same transaction); nil: none.
//
// For each cluster buffer: get it without reading it and take its lock
// (the transaction holds it until commit); mark every cached inode of the
// cluster STALE; then invalidate the buffer. Under the buffer lock the
// inodes' ILOCKs and flush locks are only tried, never waited for (the
// lock order is ILOCK → buffers: a transaction holding an ILOCK may be
// waiting for this buffer).
func FreeClusters(tx FreeTx, ic *cache.InodeCache, g *ondisk.Geometry, agno, startino uint32, alloc uint64, held func(*cache.Inode) bool) error {
	for _, cl := range g.ChunkClusters(agno, startino, alloc) {
		if !cl.Allocated {
			continue
		}
		bp, err := tx.GetBuf(cl.Daddr, cl.Len, ondisk.KindInodeCluster) // buffer lock
		if err != nil {
			return err
		}
		for i := uint32(0); i < g.InodesPerCluster; i++ {
			if undo := markStale(ic, g, bp, agno, cl.FirstAgino+i, held); undo != nil {
				tx.OnCancel(undo) // the STALE marks of a cancelled free are taken back
			}
		}
		tx.Binval(bp)
	}
	return nil
}

// markStale is xfs_ifree_mark_inode_stale for one inode number. It returns
// what undoes it if the transaction is cancelled (nil: nothing was done).
func markStale(ic *cache.InodeCache, g *ondisk.Geometry, bp *cache.Buf, agno, agino uint32, held func(*cache.Inode) bool) (undo func()) {
	ino := g.Ino(agno, agino)
	if ic == nil {
		return nil
	}
	for {
		ip, ok := ic.Lookup(agno, agino)
		if !ok {
			return // not cached: nothing in memory can write it
		}
		mine := held != nil && held(ip)
		ip.LockFlags()
		// Reclaimed (its number changed to 0) or already stale: skip.
		if ip.InoLocked() != ino || ip.FlagsLocked()&cache.IStale != 0 {
			ip.UnlockFlags()
			return nil
		}
		// ILOCK without waiting, under the flags lock: waiting here
		// would invert the lock order against a holder of the ILOCK that
		// wants this buffer. Never for the inode being freed, whose ILOCK
		// the caller holds (nor for others its transaction holds).
		if !mine && !ip.ITryLock(cache.ILockExcl) {
			ip.UnlockFlags()
			runtime.Gosched()
			continue
		}
		ip.SetFlagsLocked(cache.IStale)
		undo = func() { ip.ClearFlags(cache.IStale) }
		switch {
		case !ip.TryFlushLockLocked():
			// Writeback holds its flush lock: it is already attached to
			// this buffer, and the STALE flag is all it needed.
			ip.UnlockFlags()
		case ip.DirtyFieldsLocked() == 0:
			// Clean: nothing to abort; release the flush lock.
			ip.ClearFlagsLocked(cache.IFlushing)
			ip.UnlockFlags()
		default:
			// Dirty: its fields become "being flushed" and it rides on the
			// cancelled buffer, so the commit aborts its flush
			// (AbortStaleFlushes) instead of writing it.
			// A dirty inode is attached to its cluster buffer already
			// (the commit that dirtied it attached it): attach it once.
			ip.MoveDirtyToLastFlushedLocked()
			ip.UnlockFlags()
			attachNow := !slices.Contains(bp.Items(), any(ip))
			if attachNow {
				bp.Attach(ip)
			}
			undo = func() {
				if attachNow { // detach only what this free attached
					bp.DetachItem(ip)
				}
				ip.LockFlags()
				ip.UndoMoveDirtyLocked()
				ip.ClearFlagsLocked(cache.IStale)
				ip.UnlockFlags()
			}
		}
		if !mine {
			ip.IUnlock(cache.ILockExcl)
		}
		return undo
	}
}
