package alloc

import (
	"strconv"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// The AGFL ring: agf_flcount live slots of agfl_bno from agf_flfirst
// through agf_fllast, wrapping at g.AGFLSize. Blocks are taken at flfirst
// and put after fllast.

// checkRing is xfs_agfl_needs_reset's check: the indexes are inside the
// ring and flcount is the number of slots from flfirst to fllast.
func (ag *AG) checkRing() error {
	return ondisk.CheckAGFLRing(ondisk.Where{AG: ag.Agno, Daddr: ag.agf.Daddr},
		ag.get(ondisk.AGFFLFirst), ag.get(ondisk.AGFFLLast), ag.get(ondisk.AGFFLCount), ag.G.AGFLSize)
}

// readAGFL reads the AGFL sector through tx (xfs_alloc_read_agfl).
func (ag *AG) readAGFL(tx Tx) (*cache.Buf, error) {
	d := ag.G.AGFLDaddr(ag.Agno)
	return tx.ReadBuf(d, ag.G.SectBBs(), ondisk.KindAGFL, ondisk.VerifyCtx{G: ag.G, AG: ag.Agno, Daddr: d})
}

// MinFreelist is the number of blocks the AGFL must hold before a change
// of the free-space btrees (xfs_alloc_min_freelist): for the bnobt, the
// cntbt and, where enabled, the rmapbt, min(levels+1, maxlevels)*2-2 — a
// split of every level plus a new root, then another split of every level
// below the old root while the AGFL is refilled.
func (ag *AG) MinFreelist() uint32 {
	maxAlloc := ondisk.BtBnobt.MaxLevels(ag.G)
	one := func(levels, maxLevels int) uint32 { return uint32(min(levels+1, maxLevels)*2 - 2) }
	n := one(ag.Levels(ondisk.AGFBno), maxAlloc) + one(ag.Levels(ondisk.AGFCnt), maxAlloc)
	if ag.G.HasRmapbt {
		n += one(ag.Levels(ondisk.AGFRmap), ondisk.BtRmapbt.MaxLevels(ag.G))
	}
	return n
}

// GetFreelist takes the block at the head of the AGFL
// (xfs_alloc_get_freelist). It returns ondisk.NullAgbno when the list is
// empty. A btree block (btreeblk) is counted in agf_btreeblks.
func (ag *AG) GetFreelist(tx Tx, btreeblk bool) (uint32, error) {
	if ag.FLCount() == 0 {
		return ondisk.NullAgbno, nil
	}
	if err := ag.checkRing(); err != nil {
		return 0, err
	}
	fl, err := ag.readAGFL(tx)
	if err != nil {
		return 0, err
	}
	first := ag.get(ondisk.AGFFLFirst)
	bno := uint32(ondisk.AGFLSlot(int(first)).Uint(fl.Data))
	if !ag.validAgbno(bno) {
		return 0, &ondisk.CorruptError{AG: ag.Agno, Daddr: fl.Daddr, Struct: "AGFL", Field: "agfl_bno[" + strconv.Itoa(int(first)) + "]",
			Found: bno, Msg: "is not a block inside the AG"}
	}
	first++
	if first == ag.G.AGFLSize {
		first = 0
	}
	ag.set(ondisk.AGFFLFirst, first)
	ag.set(ondisk.AGFFLCount, ag.FLCount()-1)
	fields := ondisk.AGFFLFirst | ondisk.AGFFLCount
	if btreeblk {
		if err := ag.addCounter(tx, ondisk.AGFBtreeBlks, 1); err != nil {
			return 0, err
		}
	}
	ag.log(tx, fields)
	return bno, nil
}

// PutFreelist puts agbno after the tail of the AGFL
// (xfs_alloc_put_freelist), logging the slot. A btree block (btreeblk)
// leaves agf_btreeblks.
func (ag *AG) PutFreelist(tx Tx, agbno uint32, btreeblk bool) error {
	if !ag.validAgbno(agbno) {
		return &ondisk.CorruptError{AG: ag.Agno, Daddr: -1, Struct: "AGFL", Field: "block put on the free list", Found: agbno,
			Msg: "is not a block inside the AG"}
	}
	if ag.FLCount() >= ag.G.AGFLSize {
		return ag.corrupt("agf_flcount", ag.FLCount(), nil, "the AGFL is full: cannot put block "+strconv.Itoa(int(agbno)))
	}
	if err := ag.checkRing(); err != nil {
		return err
	}
	fl, err := ag.readAGFL(tx)
	if err != nil {
		return err
	}
	last := ag.get(ondisk.AGFFLLast) + 1
	if last == ag.G.AGFLSize {
		last = 0
	}
	ag.set(ondisk.AGFFLLast, last)
	ag.set(ondisk.AGFFLCount, ag.FLCount()+1)
	fields := ondisk.AGFFLLast | ondisk.AGFFLCount
	if btreeblk {
		if err := ag.addCounter(tx, ondisk.AGFBtreeBlks, -1); err != nil {
			return err
		}
	}
	ag.log(tx, fields)
	slot := ondisk.AGFLSlot(int(last))
	slot.PutUint(fl.Data, uint64(agbno))
	ondisk.LogField(tx, fl, slot)
	return nil
}

// FixFreelist brings the AGFL to MinFreelist blocks before a change of
// the free-space btrees (xfs_alloc_fix_freelist). Extra blocks are taken
// off the list and freed into free space when the operation ends (their
// rmap owner stays OWN_AG until then); missing ones are allocated from
// free space — the smallest free extent holding them all, taken from its
// start, else the largest — and recorded in the rmapbt as OWN_AG. In
// freeing mode (XFS_ALLOC_FLAG_FREEING) running out of free space ends the
// refill quietly; otherwise it is ErrNoSpace.
func (ag *AG) FixFreelist(tx Tx, freeing bool) error {
	need := ag.MinFreelist()
	if !freeing {
		// xfs_alloc_space_available, without reservations: the free
		// space and the AGFL must cover the AGFL's need and one block.
		if uint64(ag.FreeBlks())+uint64(min(ag.FLCount(), need)) < uint64(need)+1 {
			return ErrNoSpace
		}
	}
	for ag.FLCount() > need {
		bno, err := ag.GetFreelist(tx, false)
		if err != nil {
			return err
		}
		ag.deferred = append(ag.deferred, bno)
	}
	for ag.FLCount() < need {
		want := need - ag.FLCount()
		fbno, flen, ok, err := ag.sizeCandidate(tx, want)
		if err != nil {
			return err
		}
		if !ok {
			if freeing {
				break
			}
			return ErrNoSpace
		}
		n := min(flen, want)
		start := fbno
		if ag.Busy != nil {
			// Off busy extents if the extent allows it.
			if s, ok := ag.place(extent{fbno, flen}, n, fbno); ok {
				start = s
			} else {
				ag.Busy.Reuse()
			}
		}
		if err := ag.takeFree(tx, fbno, flen, start, n); err != nil {
			return err
		}
		if err := ag.rmapMap(tx, start, n, OwnerAG); err != nil {
			return err
		}
		if err := ag.updateFreeBlks(tx, -int64(n)); err != nil {
			return err
		}
		for b := start; b < start+n; b++ {
			if err := ag.PutFreelist(tx, b, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishDeferred frees the AGFL blocks a shrink took off the list
// (xfs_agfl_free_finish_item → xfs_free_agfl_block): into free space with
// owner OWN_AG. The kernel also cancels any cached buffer of the block;
// here a block reaches the AGFL only from free space or from a btree that
// cancelled its buffer when it freed it (btree.Tree's freeBlock), so there
// is nothing to cancel — and a cancel would stop the block's reuse later in
// the same transaction.
func (ag *AG) finishDeferred(tx Tx) error {
	for len(ag.deferred) > 0 {
		bno := ag.deferred[0]
		ag.deferred = ag.deferred[1:]
		if err := ag.freeAGExtent(tx, bno, 1, OwnerAG); err != nil {
			return err
		}
	}
	return nil
}
