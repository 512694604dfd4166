package alloc

// The reverse-mapping changes rmap intents make, each as the kernel's
// xfs_rmap_finish_one runs it: the AGFL fixed up in freeing mode first,
// then the rmapbt change, then the AGFL blocks a shrink took off freed.
// Map (XFS_RMAP_MAP, _ALLOC: xfs_rmap_map), MapShared (_MAP_SHARED:
// xfs_rmap_map_shared, for the data fork of reflinked files, whose
// records may overlap other owners' and so change key only by a delete
// and an insert), Convert and ConvertShared (_CONVERT, _CONVERT_SHARED:
// xfs_rmap_convert, xfs_rmap_convert_shared: a mapping turned unwritten
// or written, the record split or merged with its neighbours). Unmap and
// UnmapShared are in rmap_shared.go.

import (
	"github.com/xfsfree/xfsfree/ondisk"
)

// Map records [agbno, agbno+n) as owned by o, as an rmap intent of type
// MAP (or ALLOC) does: merged with a record of the same owner it touches
// on either side (xfs_rmap_map). Nothing happens without an rmapbt or for
// OwnerNull.
func Map(tx Tx, ag *AG, agbno, n uint32, o Owner) error {
	return ag.rmapIntent(tx, agbno, n, o, ag.rmapMap)
}

// MapShared records [agbno, agbno+n) as owned by o as an rmap intent of
// type MAP_SHARED does, for a data extent of a reflinked file
// (xfs_rmap_map_shared): the record of o that ends where the extent
// starts, in blocks and in file offsets, is found among the records that
// may overlap (xfs_rmap_find_left_neighbor), the one that starts where it
// ends by its exact key; the extent joins them (a changed start key is a
// delete and an insert) or becomes a record of its own.
func MapShared(tx Tx, ag *AG, agbno, n uint32, o Owner) error {
	return ag.rmapIntent(tx, agbno, n, o, ag.rmapMapShared)
}

// Convert turns owner o's mapping of [agbno, agbno+n) unwritten (if
// o.Unwritten) or written (if not), as an rmap intent of type CONVERT
// does: o.Unwritten is the state the intent records, the state the
// mapping is converted to (xfs_rmap_finish_one passes the other one to
// xfs_rmap_convert). The record holding the range is split in up to three
// and the converted part merged with a neighbouring record of the same
// owner, flags and contiguous blocks and offsets, as xfs_rmap_convert
// does. o must be an inode's data or attr extent owner.
func Convert(tx Tx, ag *AG, agbno, n uint32, o Owner) error {
	return ag.rmapIntent(tx, agbno, n, o, func(tx Tx, bno, n uint32, o Owner) error { return ag.rmapConvert(tx, bno, n, o, false) })
}

// ConvertShared is Convert for a data extent of a reflinked file
// (CONVERT_SHARED: xfs_rmap_convert_shared): the records are found as
// MapShared finds them, and a changed start key is a delete and an
// insert.
func ConvertShared(tx Tx, ag *AG, agbno, n uint32, o Owner) error {
	return ag.rmapIntent(tx, agbno, n, o, func(tx Tx, bno, n uint32, o Owner) error { return ag.rmapConvert(tx, bno, n, o, true) })
}

// rmapIntent runs op as xfs_rmap_finish_one does.
func (ag *AG) rmapIntent(tx Tx, agbno, n uint32, o Owner, op func(tx Tx, bno, n uint32, o Owner) error) error {
	if ag.skipRmap(o) {
		return nil
	}
	if !ag.validExtent(agbno, n) {
		return ag.rmapCorrupt(agbno, n, o, "is not an extent of the AG", nil)
	}
	if err := ag.FixFreelist(tx, true); err != nil {
		return err
	}
	if err := op(tx, agbno, n, o); err != nil {
		return err
	}
	return ag.finishDeferred(tx)
}

// rmapLookupEq returns the record whose key is exactly (bno, o's owner,
// offset and flags), nil if there is none (xfs_rmap_lookup_eq and
// xfs_rmap_get_rec).
func (ag *AG) rmapLookupEq(tx Tx, bno uint32, o Owner) (*ondisk.RmapRec, error) {
	c, ok, err := ag.tree(ondisk.AGFRmap).Lookup(tx, rmapKey(bno, o), lookEQ)
	if err != nil || !ok {
		return nil, err
	}
	r := ondisk.DecodeRmapRec(c.Rec())
	return &r, nil
}

// leftNeighbor is xfs_rmap_find_left_neighbor: the record of o's owner
// whose file range ends just before o's offset (any, for owners without
// offsets) among the record at or before (bno, o) and those whose key
// range holds (bno-1, o at offset-1). nil if there is none.
func (ag *AG) leftNeighbor(tx Tx, bno uint32, o Owner) (*ondisk.RmapRec, error) {
	if bno == 0 {
		return nil, nil
	}
	off := o.Offset & ondisk.RmapOffMask
	fileData := !o.ignoreOffset()
	if fileData && off == 0 {
		return nil, nil
	}
	match := func(r ondisk.RmapRec) bool {
		if r.Owner != o.Owner {
			return false
		}
		if ondisk.IsInodeOwner(r.Owner) && !r.BmbtBlock() && r.FileOffset()+uint64(r.BlockCount) != off {
			return false
		}
		return true
	}
	t := ag.tree(ondisk.AGFRmap)
	c, ok, err := t.Lookup(tx, rmapKey(bno, o), lookLE)
	if err != nil {
		return nil, err
	}
	if ok {
		if r := ondisk.DecodeRmapRec(c.Rec()); match(r) {
			return &r, nil
		}
	}
	ko := o
	ko.Offset = 0
	if fileData {
		ko.Offset = off - 1
	}
	key := rmapKey(bno-1, ko)
	var found *ondisk.RmapRec
	err = t.QueryOverlap(tx, key, key, func(rec []byte) (bool, error) {
		if r := ondisk.DecodeRmapRec(rec); match(r) {
			found = &r
			return true, nil
		}
		return false, nil
	})
	return found, err
}

// rmapMapShared is xfs_rmap_map_shared.
func (ag *AG) rmapMapShared(tx Tx, bno, n uint32, o Owner) error {
	off := o.Offset & ondisk.RmapOffMask
	lt, err := ag.leftNeighbor(tx, bno, o)
	if err != nil {
		return err
	}
	if lt != nil && !mergeable(*lt, o) {
		lt = nil
	}
	ro := o
	ro.Offset = off + uint64(n)
	gt, err := ag.rmapLookupEq(tx, bno+n, ro)
	if err != nil {
		return err
	}
	if gt != nil && !mergeable(*gt, o) {
		gt = nil
	}
	switch {
	case lt != nil && uint64(lt.StartBlock)+uint64(lt.BlockCount) == uint64(bno) && lt.FileOffset()+uint64(lt.BlockCount) == off:
		nl := *lt
		nl.BlockCount += n
		if gt != nil && uint64(bno)+uint64(n) == uint64(gt.StartBlock) && off+uint64(n) == gt.FileOffset() {
			nl.BlockCount += gt.BlockCount
			if err := ag.rmapDeleteExact(tx, *gt); err != nil {
				return err
			}
		}
		return ag.rmapUpdateExact(tx, *lt, nl)
	case gt != nil && uint64(bno)+uint64(n) == uint64(gt.StartBlock) && off+uint64(n) == gt.FileOffset():
		if err := ag.rmapDeleteExact(tx, *gt); err != nil {
			return err
		}
		ng := *gt
		ng.StartBlock = bno
		ng.BlockCount += n
		ng.Offset = off | (gt.Offset &^ ondisk.RmapOffMask)
		return ag.rmapInsert(tx, ng)
	}
	return ag.rmapInsert(tx, ondisk.RmapRec{StartBlock: bno, BlockCount: n, Owner: o.Owner, Offset: o.offsetField()})
}

// Convert states (xfs_rmap.c RMAP_*).
const (
	rmapLeftContig   = 1 << 0
	rmapRightContig  = 1 << 1
	rmapLeftFilling  = 1 << 2
	rmapRightFilling = 1 << 3
)

// withState returns r with its unwritten flag set to unwritten.
func withState(r ondisk.RmapRec, unwritten bool) ondisk.RmapRec {
	r.Offset &^= ondisk.RmapOffUnwritten
	if unwritten {
		r.Offset |= ondisk.RmapOffUnwritten
	}
	return r
}

// rmapConvert is xfs_rmap_convert (shared false) and
// xfs_rmap_convert_shared (shared true); o.Unwritten is the new state.
func (ag *AG) rmapConvert(tx Tx, bno, n uint32, o Owner, shared bool) error {
	if !ondisk.IsInodeOwner(o.Owner) || o.Bmbt {
		return ag.rmapCorrupt(bno, n, o, "is converted between written and unwritten, which only inode data extents are", nil)
	}
	newUnwritten := o.Unwritten
	oldO, newO := o, o
	oldO.Unwritten = !newUnwritten
	off := o.Offset & ondisk.RmapOffMask
	end := off + uint64(n)
	// PREV: the record holding the range, in the old state.
	var prev *ondisk.RmapRec
	if shared {
		p, err := ag.lookupRange(tx, bno, oldO)
		if err != nil {
			return err
		}
		prev = p
	} else {
		_, p, err := ag.lookupRmapLE(tx, bno, oldO)
		if err != nil {
			return err
		}
		prev = p
	}
	if prev == nil {
		return ag.rmapCorrupt(bno, n, o, "has no rmap record to convert", nil)
	}
	if prev.Owner != o.Owner || prev.AttrFork() != o.Attr || prev.BmbtBlock() || prev.Unwritten() == newUnwritten ||
		prev.StartBlock > bno || uint64(prev.StartBlock)+uint64(prev.BlockCount) < uint64(bno)+uint64(n) ||
		prev.FileOffset() > off || prev.FileOffset()+uint64(prev.BlockCount) < end ||
		prev.FileOffset()+uint64(bno-prev.StartBlock) != off {
		return ag.rmapCorrupt(bno, n, o, "is not held by one rmap record of its owner in the state it is converted from", prev)
	}
	state := 0
	if prev.FileOffset() == off {
		state |= rmapLeftFilling
	}
	if prev.FileOffset()+uint64(prev.BlockCount) == end {
		state |= rmapRightFilling
	}
	// LEFT and RIGHT: the neighbours the converted range may merge with.
	var left, right *ondisk.RmapRec
	if shared {
		l, err := ag.leftNeighbor(tx, bno, newO)
		if err != nil {
			return err
		}
		if l != nil && uint64(l.StartBlock)+uint64(l.BlockCount) > uint64(bno) {
			return ag.rmapCorrupt(bno, n, o, "overlaps its left neighbour", l)
		}
		left = l
		ro := newO
		ro.Offset = end
		r, err := ag.rmapLookupEq(tx, bno+n, ro)
		if err != nil {
			return err
		}
		right = r
	} else {
		l, r, err := ag.neighbours(tx, *prev)
		if err != nil {
			return err
		}
		if l != nil && uint64(l.StartBlock)+uint64(l.BlockCount) > uint64(bno) {
			return ag.rmapCorrupt(bno, n, o, "overlaps its left neighbour", l)
		}
		left, right = l, r
	}
	if right != nil && uint64(bno)+uint64(n) > uint64(right.StartBlock) {
		return ag.rmapCorrupt(bno, n, o, "overlaps its right neighbour", right)
	}
	// (The shared variant's neighbours are found adjacent in file
	// offsets; blocks are checked for both.)
	if left != nil && mergeable(*left, newO) && uint64(left.StartBlock)+uint64(left.BlockCount) == uint64(bno) &&
		left.FileOffset()+uint64(left.BlockCount) == off {
		state |= rmapLeftContig
	}
	if right != nil && mergeable(*right, newO) && uint64(bno)+uint64(n) == uint64(right.StartBlock) && end == right.FileOffset() {
		state |= rmapRightContig
	}
	all := rmapLeftFilling | rmapLeftContig | rmapRightFilling | rmapRightContig
	if state&all == all && uint64(left.BlockCount)+uint64(n)+uint64(right.BlockCount) > rmapLenMax {
		state &^= rmapRightContig
	}
	// The pieces.
	newRec := ondisk.RmapRec{StartBlock: bno, BlockCount: n, Owner: o.Owner, Offset: newO.offsetField()}
	trimmedLeft := *prev // PREV without the converted range at its start
	trimmedLeft.StartBlock += n
	trimmedLeft.BlockCount -= n
	trimmedLeft.Offset += uint64(n)
	upd := func(old, nw ondisk.RmapRec) error { return ag.rmapUpdateExact(tx, old, nw) }
	del := func(r ondisk.RmapRec) error { return ag.rmapDeleteExact(tx, r) }
	ins := func(r ondisk.RmapRec) error { return ag.rmapInsert(tx, r) }
	// moveStart changes a record's start key: an update where records
	// cannot overlap, a delete and an insert where they can.
	moveStart := func(old, nw ondisk.RmapRec) error {
		if !shared {
			return upd(old, nw)
		}
		if err := del(old); err != nil {
			return err
		}
		return ins(nw)
	}
	switch state & all {
	case rmapLeftFilling | rmapLeftContig | rmapRightFilling | rmapRightContig:
		if err := del(*right); err != nil {
			return err
		}
		if err := del(*prev); err != nil {
			return err
		}
		nl := *left
		nl.BlockCount += prev.BlockCount + right.BlockCount
		return upd(*left, nl)
	case rmapLeftFilling | rmapRightFilling | rmapLeftContig:
		if err := del(*prev); err != nil {
			return err
		}
		nl := *left
		nl.BlockCount += prev.BlockCount
		return upd(*left, nl)
	case rmapLeftFilling | rmapRightFilling | rmapRightContig:
		if err := del(*right); err != nil {
			return err
		}
		np := withState(*prev, newUnwritten)
		np.BlockCount = n + right.BlockCount
		return upd(*prev, np)
	case rmapLeftFilling | rmapRightFilling:
		return upd(*prev, withState(*prev, newUnwritten))
	case rmapLeftFilling | rmapLeftContig:
		if err := moveStart(*prev, trimmedLeft); err != nil {
			return err
		}
		nl := *left
		nl.BlockCount += n
		return upd(*left, nl)
	case rmapLeftFilling:
		if err := moveStart(*prev, trimmedLeft); err != nil {
			return err
		}
		return ins(newRec)
	case rmapRightFilling | rmapRightContig:
		np := *prev
		np.BlockCount -= n
		if err := upd(*prev, np); err != nil {
			return err
		}
		nr := *right
		nr.StartBlock = bno
		nr.BlockCount += n
		nr.Offset = off | (right.Offset &^ ondisk.RmapOffMask)
		return moveStart(*right, nr)
	case rmapRightFilling:
		np := *prev
		np.BlockCount -= n
		if err := upd(*prev, np); err != nil {
			return err
		}
		return ins(newRec)
	case 0:
		// The middle: one record becomes three.
		rightPiece := ondisk.RmapRec{StartBlock: bno + n, Owner: o.Owner, Offset: end | (prev.Offset &^ ondisk.RmapOffMask),
			BlockCount: uint32(prev.FileOffset() + uint64(prev.BlockCount) - end)}
		leftPiece := *prev
		leftPiece.BlockCount = uint32(off - prev.FileOffset())
		if shared {
			if err := ins(rightPiece); err != nil {
				return err
			}
			if err := upd(*prev, leftPiece); err != nil {
				return err
			}
		} else {
			// xfs_rmap_convert updates PREV into the right piece and
			// inserts the left one before it.
			if err := upd(*prev, rightPiece); err != nil {
				return err
			}
			if err := ins(leftPiece); err != nil {
				return err
			}
		}
		return ins(newRec)
	}
	return ag.rmapCorrupt(bno, n, o, "has neighbours contiguous with it in an impossible way", prev)
}

// neighbours returns the records just before and just after r in the
// rmapbt (xfs_btree_decrement and _increment from r), nil where there is
// none.
func (ag *AG) neighbours(tx Tx, r ondisk.RmapRec) (left, right *ondisk.RmapRec, err error) {
	c, err := ag.rmapFind(tx, r)
	if err != nil {
		return nil, nil, err
	}
	if ok, err := c.Decrement(); err != nil {
		return nil, nil, err
	} else if ok {
		l := ondisk.DecodeRmapRec(c.Rec())
		left = &l
	}
	c, err = ag.rmapFind(tx, r)
	if err != nil {
		return nil, nil, err
	}
	if ok, err := c.Increment(); err != nil {
		return nil, nil, err
	} else if ok {
		x := ondisk.DecodeRmapRec(c.Rec())
		right = &x
	}
	return left, right, nil
}
