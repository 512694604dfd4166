package refcount

// CoW staging extents (libxfs/xfs_refcount.c, "Recovering CoW Blocks
// After a Crash"): blocks allocated for a copy-on-write are recorded in
// the CoW domain with refcount 1 until they are remapped into the file or
// the CoW is cancelled; a crash leaves them there, and recovery after a
// dirty log frees them.

import (
	"fmt"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/ondisk"
)

// adjustCowExtents inserts (alloc) or deletes (free) the CoW record of the
// range, which must be free of CoW records (alloc) or be exactly one
// (free) (xfs_refcount_adjust_cow_extents).
func (r *AG) adjustCowExtents(tx Tx, agbno, aglen uint32, alloc bool) error {
	if aglen == 0 {
		return nil
	}
	c, _, err := r.lookup(tx, true, agbno, btree.GE)
	if err != nil {
		return err
	}
	ext, found, err := r.get(c)
	if err != nil {
		return err
	}
	if found && !ext.Cow {
		return r.corrupt(fmt.Sprintf("record %v", ext), nil, "is a shared extent found among the CoW staging extents")
	}
	if !found {
		ext = Rec{Start: r.A.G.AGBlocks, Cow: true}
	}
	if alloc {
		if uint64(agbno)+uint64(aglen) > uint64(ext.Start) {
			return r.corrupt(fmt.Sprintf("CoW staging extent [%d, %d)", agbno, uint64(agbno)+uint64(aglen)), ext.String(), "overlaps a CoW staging extent")
		}
		return r.insert(tx, Rec{Start: agbno, Len: aglen, Refcount: 1, Cow: true})
	}
	if ext.Start != agbno || ext.Len != aglen || ext.Refcount != 1 {
		return r.corrupt(fmt.Sprintf("CoW staging extent [%d, %d)", agbno, uint64(agbno)+uint64(aglen)), ext.String(), "is not exactly one CoW staging record of refcount 1")
	}
	return r.delete(c)
}

// adjustCow is xfs_refcount_adjust_cow.
func (r *AG) adjustCow(tx Tx, agbno, aglen uint32, alloc bool) error {
	for _, at := range []uint32{agbno, agbno + aglen} {
		if _, err := r.splitExtent(tx, true, at); err != nil {
			return err
		}
	}
	adj := adjCowFree
	if alloc {
		adj = adjCowAlloc
	}
	if _, err := r.mergeExtents(tx, true, &agbno, &aglen, adj); err != nil {
		return err
	}
	return r.adjustCowExtents(tx, agbno, aglen, alloc)
}

// CowAlloc records [agbno, agbno+n) as a CoW staging extent
// (__xfs_refcount_cow_alloc, XFS_REFCOUNT_ALLOC_COW): a CoW-domain record
// of refcount 1, merged with staging extents it touches. The caller
// allocated the blocks and records their owner OWN_COW in the rmapbt
// (xfs_refcount_alloc_cow_extent).
func (r *AG) CowAlloc(tx Tx, agbno, n uint32) error {
	if err := r.checkRange("CoW alloc", agbno, n); err != nil {
		return err
	}
	if err := r.adjustCow(tx, agbno, n, true); err != nil {
		return err
	}
	return r.finish(tx)
}

// CowFree forgets the CoW staging extent [agbno, agbno+n)
// (__xfs_refcount_cow_free, XFS_REFCOUNT_FREE_COW), splitting a larger
// staging record around it. The blocks are not freed: the caller remaps
// them into a file or frees them, and removes their OWN_COW rmap
// (xfs_refcount_free_cow_extent).
func (r *AG) CowFree(tx Tx, agbno, n uint32) error {
	if err := r.checkRange("CoW free", agbno, n); err != nil {
		return err
	}
	if err := r.adjustCow(tx, agbno, n, false); err != nil {
		return err
	}
	return r.finish(tx)
}

// CowRecords returns the AG's CoW staging records in order, as
// xfs_refcount_recover_cow_leftovers collects them before freeing them:
// every record of the CoW domain, each checked, and a count other than 1
// is corruption.
func (r *AG) CowRecords(tx Tx) ([]Rec, error) {
	c, ok, err := r.lookup(tx, true, 0, btree.GE)
	if err != nil {
		return nil, err
	}
	var out []Rec
	for ok {
		b := c.Rec()
		if b == nil {
			break
		}
		o := ondisk.DecodeRefcountRec(b)
		if !o.Cow() {
			return out, r.corrupt(fmt.Sprintf("record %v", fromOndisk(o)), nil, "is a shared extent found among the CoW staging extents")
		}
		if o.RefCount != 1 {
			return out, r.corrupt(fmt.Sprintf("record %v", fromOndisk(o)), nil, "is a CoW staging extent whose refcount is not 1")
		}
		if err := o.Check(r.A.G, r.A.Agno); err != nil {
			return out, err
		}
		out = append(out, fromOndisk(o))
		if ok, err = c.Increment(); err != nil {
			return out, err
		}
	}
	return out, nil
}
