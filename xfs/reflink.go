package xfs

// Reflinked orphans in the free engine: icluster.SharedSpace over
// packages alloc and refcount, as the kernel's deferred work for a
// reflinked file's data extent runs it (xfs_bmap_del_extent_real queues
// an rmap UNMAP_SHARED and a refcount DECREASE; the decrease frees the
// blocks no one maps any more through an EFI with owner NULL).

import (
	"fmt"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/refcount"
)

// FreeShared is icluster.SharedSpace: the reverse mapping of the extent
// removed as a shared one (where the rmapbt is enabled), then its blocks'
// reference counts lowered, unshared blocks freed.
func (s *space) FreeShared(tx icluster.FreeTx, agno, agbno, n uint32, o icluster.Owner) error {
	ag, err := alloc.ReadAG(tx, s.g, agno)
	if err != nil {
		return err
	}
	ag.Busy = s.busy
	if err := alloc.UnmapShared(tx, ag, agbno, n, allocOwner(o)); err != nil {
		return err
	}
	// No log reservation is given: the decrease never stops early (the
	// engine bounds the blocks a transaction unmaps instead).
	rest, err := refcount.New(ag).Decrease(tx, agbno, n)
	if err == nil && rest.Len != 0 {
		err = fmt.Errorf("refcount decrease of AG %d [%d, %d) stopped early at %+v", agno, agbno, uint64(agbno)+uint64(n), rest)
	}
	return err
}
