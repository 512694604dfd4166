package alloc

// Removing reverse mappings on their own, as the kernel's rmap intents do
// (xfs_rmap_finish_one: the AGFL fixed up first, then the rmapbt change),
// and the shared variant for the data extents of reflinked files
// (xfs_rmap_unmap_shared): on a reflink filesystem records of different
// owners may overlap, so a record is found by its owner and file offset
// among those covering the block, and a change of its start key is a
// delete and an insert, never an update.

import (
	"errors"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Unmap removes owner o's reverse mapping of [agbno, agbno+n) of the AG
// as an rmap intent of type UNMAP (or FREE) does: the AGFL is fixed up in
// freeing mode, then the record is deleted, trimmed or split
// (xfs_rmap_unmap); the AGFL blocks a shrink took off are freed last.
// Nothing happens without an rmapbt or for OwnerNull.
func Unmap(tx Tx, ag *AG, agbno, n uint32, o Owner) error {
	return ag.rmapIntent(tx, agbno, n, o, ag.rmapUnmap)
}

// UnmapShared removes owner o's reverse mapping of [agbno, agbno+n) as an
// rmap intent of type UNMAP_SHARED does, for a data extent of a reflinked
// file (xfs_rmap_unmap_extent picks it for those): the AGFL is fixed up in
// freeing mode, the record of o that covers agbno at o's file offset is
// found among the records that may overlap it (xfs_rmap_lookup_le_range),
// and it is deleted, trimmed on the right (updated), trimmed on the left
// (deleted and inserted again: its start key changes) or split (the left
// part updated, the right part inserted). The record must cover the whole
// range, with the same unwritten flag and file offsets. Nothing happens
// without an rmapbt or for OwnerNull.
func UnmapShared(tx Tx, ag *AG, agbno, n uint32, o Owner) error {
	return ag.rmapIntent(tx, agbno, n, o, ag.rmapUnmapShared)
}

// covers reports whether record r is owner o's mapping of block bno at
// o's file offset (xfs_rmap_lookup_le_range_helper, plus the physical
// cover the overlapping query implies).
func covers(r ondisk.RmapRec, bno uint32, o Owner) bool {
	if r.Owner != o.Owner || r.StartBlock > bno || uint64(r.StartBlock)+uint64(r.BlockCount) <= uint64(bno) {
		return false
	}
	if o.ignoreOffset() {
		return true
	}
	if r.AttrFork() != o.Attr || r.BmbtBlock() {
		return false
	}
	off := o.Offset & ondisk.RmapOffMask
	return r.FileOffset() <= off && off < r.FileOffset()+uint64(r.BlockCount)
}

// lookupRange finds owner o's record covering block bno at o's file
// offset, as xfs_rmap_lookup_le_range does: the record at or before the
// key (bno, o) if it is the one, else the first in key order among those
// whose key range holds the key (an overlapping query: records of other
// owners may overlap it). nil if there is none.
func (ag *AG) lookupRange(tx Tx, bno uint32, o Owner) (*ondisk.RmapRec, error) {
	t := ag.tree(ondisk.AGFRmap)
	key := rmapKey(bno, o)
	c, ok, err := t.Lookup(tx, key, btree.LE)
	if err != nil {
		return nil, err
	}
	if ok {
		if r := ondisk.DecodeRmapRec(c.Rec()); covers(r, bno, o) {
			return &r, nil
		}
	}
	var found *ondisk.RmapRec
	err = t.QueryOverlap(tx, key, key, func(rec []byte) (bool, error) {
		if r := ondisk.DecodeRmapRec(rec); covers(r, bno, o) {
			found = &r
			return true, nil
		}
		return false, nil
	})
	return found, err
}

// rmapInsert inserts record r; one already there with its key is
// corruption (xfs_rmap_insert).
func (ag *AG) rmapInsert(tx Tx, r ondisk.RmapRec) error {
	err := ag.tree(ondisk.AGFRmap).Insert(tx, rmapRec(r))
	if errors.Is(err, btree.ErrExists) {
		return ag.rmapCorrupt(r.StartBlock, r.BlockCount, Owner{Owner: r.Owner}, "is already in the rmapbt", &r)
	}
	return err
}

// rmapUnmapShared is xfs_rmap_unmap_shared.
func (ag *AG) rmapUnmapShared(tx Tx, bno, n uint32, o Owner) error {
	lt, err := ag.lookupRange(tx, bno, o)
	if err != nil {
		return err
	}
	if lt == nil {
		return ag.rmapCorrupt(bno, n, o, "has no rmap record of its owner covering it", nil)
	}
	end, ltEnd := uint64(bno)+uint64(n), uint64(lt.StartBlock)+uint64(lt.BlockCount)
	if ltEnd < end {
		return ag.rmapCorrupt(bno, n, o, "is not covered by one rmap record", lt)
	}
	if lt.Unwritten() != o.Unwritten {
		return ag.rmapCorrupt(bno, n, o, "differs in the unwritten flag from its rmap record", lt)
	}
	off := o.Offset & ondisk.RmapOffMask
	if !o.ignoreOffset() && (lt.FileOffset()+uint64(bno-lt.StartBlock) != off) {
		return ag.rmapCorrupt(bno, n, o, "has a file offset that its rmap record maps elsewhere", lt)
	}
	flags := lt.Offset &^ ondisk.RmapOffMask
	switch {
	case lt.StartBlock == bno && uint64(lt.BlockCount) == uint64(n):
		return ag.rmapDeleteExact(tx, *lt)
	case lt.StartBlock == bno:
		// The start key changes: delete and insert.
		if err := ag.rmapDeleteExact(tx, *lt); err != nil {
			return err
		}
		nr := *lt
		nr.StartBlock += n
		nr.BlockCount -= n
		if !o.ignoreOffset() {
			nr.Offset = (lt.FileOffset() + uint64(n)) | flags
		}
		return ag.rmapInsert(tx, nr)
	case ltEnd == end:
		nr := *lt
		nr.BlockCount -= n
		return ag.rmapUpdateExact(tx, *lt, nr)
	}
	// The middle: the left part keeps the record's key, the right part is
	// a new record.
	left := *lt
	left.BlockCount = bno - lt.StartBlock
	if err := ag.rmapUpdateExact(tx, *lt, left); err != nil {
		return err
	}
	right := ondisk.RmapRec{StartBlock: uint32(end), BlockCount: uint32(ltEnd - end), Owner: lt.Owner, Offset: lt.Offset}
	if !o.ignoreOffset() {
		right.Offset = (off + uint64(n)) | flags
	}
	return ag.rmapInsert(tx, right)
}
