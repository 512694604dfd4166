package alloc

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Owner is who an extent belongs to in the rmapbt (struct
// xfs_owner_info): an inode (with the file offset of the extent, and
// whether it is in the attr fork, a bmbt block, unwritten) or one of the
// special owners ondisk.RmapOwn*. This struct does not represent an
// on-disk struct.
type Owner struct {
	Owner     uint64 // inode number or ondisk.RmapOwn*
	Offset    uint64 // file block offset (inode owners, not bmbt blocks)
	Attr      bool   // attr fork
	Bmbt      bool   // a bmbt block of the fork
	Unwritten bool   // an unwritten data extent
}

// The special owners.
var (
	OwnerNull   = Owner{Owner: ondisk.RmapOwnNull}   // no rmap change
	OwnerAG     = Owner{Owner: ondisk.RmapOwnAG}     // AGFL and free-space btree blocks
	OwnerInobt  = Owner{Owner: ondisk.RmapOwnInobt}  // inobt and finobt blocks
	OwnerInodes = Owner{Owner: ondisk.RmapOwnInodes} // inode chunks
	OwnerRefc   = Owner{Owner: ondisk.RmapOwnRefc}   // refcount btree blocks
	OwnerCow    = Owner{Owner: ondisk.RmapOwnCow}    // CoW staging extents
)

// OwnerUnknown removes whatever reverse mapping covers the range, or none
// if no record overlaps it (XFS_RMAP_OINFO_ANY_OWNER: a recovered EFI,
// which does not record the owner; xfs_rmap_unmap's special case #2).
var OwnerUnknown = Owner{Owner: ondisk.RmapOwnUnknown}

// InodeOwner is the owner of a data or attr extent of inode ino at file
// block offset off.
func InodeOwner(ino, off uint64, attr bool) Owner { return Owner{Owner: ino, Offset: off, Attr: attr} }

// BmbtOwner is the owner of a bmbt block of inode ino.
func BmbtOwner(ino uint64, attr bool) Owner { return Owner{Owner: ino, Attr: attr, Bmbt: true} }

func (o Owner) String() string {
	names := map[uint64]string{ondisk.RmapOwnNull: "OWN_NULL", ondisk.RmapOwnUnknown: "OWN_UNKNOWN", ondisk.RmapOwnFS: "OWN_FS",
		ondisk.RmapOwnLog: "OWN_LOG", ondisk.RmapOwnAG: "OWN_AG", ondisk.RmapOwnInobt: "OWN_INOBT", ondisk.RmapOwnInodes: "OWN_INODES",
		ondisk.RmapOwnRefc: "OWN_REFC", ondisk.RmapOwnCow: "OWN_COW"}
	if n, ok := names[o.Owner]; ok {
		return n
	}
	s := fmt.Sprintf("inode %d", o.Owner)
	if o.Attr {
		s += " attr"
	}
	if o.Bmbt {
		return s + " bmbt"
	}
	return s + fmt.Sprintf(" offset %d", o.Offset)
}

// ignoreOffset: special owners and bmbt blocks have no file offset.
func (o Owner) ignoreOffset() bool { return !ondisk.IsInodeOwner(o.Owner) || o.Bmbt }

// flags is the owner's rm_offset flag bits.
func (o Owner) flags() uint64 {
	var f uint64
	if o.Attr {
		f |= ondisk.RmapOffAttrFork
	}
	if o.Bmbt {
		f |= ondisk.RmapOffBmbtBlock
	}
	if o.Unwritten {
		f |= ondisk.RmapOffUnwritten
	}
	return f
}

// offsetField is rm_offset as stored: the offset (0 when ignored) and the
// flags (xfs_rmap_irec_offset_pack).
func (o Owner) offsetField() uint64 {
	off := o.Offset & ondisk.RmapOffMask
	if o.ignoreOffset() {
		off = 0
	}
	return off | o.flags()
}

// skipRmap is xfs_rmap_should_skip_owner_update, plus filesystems
// without an rmapbt.
func (ag *AG) skipRmap(o Owner) bool { return !ag.G.HasRmapbt || o.Owner == ondisk.RmapOwnNull }

// mergeable is xfs_rmap_is_mergeable.
func mergeable(r ondisk.RmapRec, o Owner) bool {
	const fl = ondisk.RmapOffUnwritten | ondisk.RmapOffAttrFork | ondisk.RmapOffBmbtBlock
	return r.Owner != ondisk.RmapOwnNull && r.Owner == o.Owner && r.Offset&fl == o.flags()
}

// rmapLen max is XFS_RMAP_LEN_MAX.
const rmapLenMax = uint64(^uint32(0))

func (ag *AG) rmapCorrupt(bno, n uint32, o Owner, msg string, rec *ondisk.RmapRec) error {
	e := &ondisk.CorruptError{AG: ag.Agno, Daddr: -1, Struct: "rmapbt",
		Field: fmt.Sprintf("extent [%d, %d) of %v", bno, uint64(bno)+uint64(n), o), Msg: msg}
	if rec != nil {
		e.Found = fmt.Sprintf("record [%d, %d) owner %#x offset %#x", rec.StartBlock, uint64(rec.StartBlock)+uint64(rec.BlockCount), rec.Owner, rec.Offset)
	}
	return e
}

// lookupRmapLE finds the rmap record at or before (bno, owner, offset).
func (ag *AG) lookupRmapLE(tx Tx, bno uint32, o Owner) (cursor, *ondisk.RmapRec, error) {
	t := ag.tree(ondisk.AGFRmap)
	c, ok, err := t.Lookup(tx, rmapKey(bno, o), lookLE)
	if err != nil || !ok {
		return nil, nil, err
	}
	r := ondisk.DecodeRmapRec(c.Rec())
	return c, &r, nil
}

// rmapRec encodes an rmap record.
func rmapRec(r ondisk.RmapRec) []byte {
	b := make([]byte, ondisk.RmapRecLen)
	r.Encode(b)
	return b
}

// rmapMap records [bno, bno+n) as owned by o, merging with a left and a
// right record of the same owner that it touches (xfs_rmap_map, for a
// btree without shared extents).
func (ag *AG) rmapMap(tx Tx, bno, n uint32, o Owner) error {
	if ag.skipRmap(o) {
		return nil
	}
	off := o.offsetField() & ondisk.RmapOffMask
	ignore := o.ignoreOffset()
	_, lt, err := ag.lookupRmapLE(tx, bno, o)
	if err != nil {
		return err
	}
	haveLT := lt != nil && mergeable(*lt, o)
	if lt != nil && uint64(lt.StartBlock)+uint64(lt.BlockCount) > uint64(bno) {
		return ag.rmapCorrupt(bno, n, o, "overlaps a record on its left", lt)
	}
	// The next record after lt (or the first one, if there is no lt).
	t := ag.tree(ondisk.AGFRmap)
	var gt *ondisk.RmapRec
	if c, ok, err := t.Lookup(tx, rmapKey(bno, Owner{Owner: 0}), lookGE); err != nil {
		return err
	} else if ok {
		r := ondisk.DecodeRmapRec(c.Rec())
		gt = &r
		if uint64(bno)+uint64(n) > uint64(gt.StartBlock) {
			return ag.rmapCorrupt(bno, n, o, "overlaps a record on its right", gt)
		}
	}
	haveGT := gt != nil && mergeable(*gt, o)
	switch {
	case haveLT && lt.StartBlock+lt.BlockCount == bno && (ignore || lt.FileOffset()+uint64(lt.BlockCount) == off):
		nl := *lt
		nl.BlockCount += n
		if haveGT && bno+n == gt.StartBlock && (ignore || off+uint64(n) == gt.FileOffset()) &&
			uint64(nl.BlockCount)+uint64(n)+uint64(gt.BlockCount) <= rmapLenMax {
			nl.BlockCount += gt.BlockCount
			if err := ag.rmapDeleteExact(tx, *gt); err != nil {
				return err
			}
		}
		return ag.rmapUpdateExact(tx, *lt, nl)
	case haveGT && bno+n == gt.StartBlock && (ignore || off+uint64(n) == gt.FileOffset()):
		ng := *gt
		ng.StartBlock = bno
		ng.BlockCount += n
		if !ignore {
			ng.Offset = off | (gt.Offset &^ ondisk.RmapOffMask)
		}
		return ag.rmapUpdateExact(tx, *gt, ng)
	}
	return t.Insert(tx, rmapRec(ondisk.RmapRec{StartBlock: bno, BlockCount: n, Owner: o.Owner, Offset: o.offsetField()}))
}

// rmapFind positions a cursor at exactly record r.
func (ag *AG) rmapFind(tx Tx, r ondisk.RmapRec) (cursor, error) {
	t := ag.tree(ondisk.AGFRmap)
	c, ok, err := t.Lookup(tx, rmapRecKey(rmapRec(r)), lookEQ)
	if err != nil {
		return nil, err
	}
	if !ok || ondisk.DecodeRmapRec(c.Rec()) != r {
		return nil, ag.rmapCorrupt(r.StartBlock, r.BlockCount, Owner{Owner: r.Owner}, "record vanished from the rmapbt", &r)
	}
	return c, nil
}

func (ag *AG) rmapDeleteExact(tx Tx, r ondisk.RmapRec) error {
	c, err := ag.rmapFind(tx, r)
	if err != nil {
		return err
	}
	return c.Delete()
}

func (ag *AG) rmapUpdateExact(tx Tx, old, nw ondisk.RmapRec) error {
	c, err := ag.rmapFind(tx, old)
	if err != nil {
		return err
	}
	return c.Update(rmapRec(nw))
}

// rmapUnmap removes [bno, bno+n) of owner o from the rmapbt: the record
// covering it is deleted, trimmed on the left or right, or split in two
// (xfs_rmap_unmap, for a btree without shared extents). The record must
// cover the whole range and belong to o (xfs_rmap_free_check_owner).
func (ag *AG) rmapUnmap(tx Tx, bno, n uint32, o Owner) error {
	if ag.skipRmap(o) {
		return nil
	}
	off := o.offsetField() & ondisk.RmapOffMask
	ignore := o.ignoreOffset()
	c, lt, err := ag.lookupRmapLE(tx, bno, o)
	if err != nil {
		return err
	}
	if lt == nil {
		return ag.rmapCorrupt(bno, n, o, "has no rmap record at or before it", nil)
	}
	unknown := o.Owner == ondisk.RmapOwnUnknown
	if unknown && uint64(lt.StartBlock)+uint64(lt.BlockCount) <= uint64(bno) {
		// The wildcard of a recovered EFI: the whole range, or nothing
		// if no record overlaps either end (xfs_rmap_unmap's special
		// case #2: an RUI removed the owner's record already).
		ok, err := c.Increment()
		if err != nil || !ok {
			return err
		}
		if next := ondisk.DecodeRmapRec(c.Rec()); uint64(next.StartBlock) >= uint64(bno)+uint64(n) {
			return nil
		}
	}
	if lt.StartBlock > bno || uint64(lt.StartBlock)+uint64(lt.BlockCount) < uint64(bno)+uint64(n) {
		return ag.rmapCorrupt(bno, n, o, "is not covered by one rmap record", lt)
	}
	if !unknown && lt.Unwritten() != o.Unwritten {
		return ag.rmapCorrupt(bno, n, o, "differs in the unwritten flag from its rmap record", lt)
	}
	if !unknown && lt.Owner != o.Owner {
		return ag.rmapCorrupt(bno, n, o, "belongs to another owner in the rmapbt", lt)
	}
	if ondisk.IsInodeOwner(o.Owner) {
		// Stricter than xfs_rmap_free_check_owner: the fork and the bmbt
		// flag must match too.
		if lt.AttrFork() != o.Attr || lt.BmbtBlock() != o.Bmbt {
			return ag.rmapCorrupt(bno, n, o, "differs in the attr-fork or bmbt flag from its rmap record", lt)
		}
		if !o.Bmbt && (lt.FileOffset() > off || lt.FileOffset()+uint64(lt.BlockCount) < off+uint64(n)) {
			return ag.rmapCorrupt(bno, n, o, "has file offsets outside its rmap record", lt)
		}
	}
	end, ltEnd := bno+n, lt.StartBlock+lt.BlockCount
	switch {
	case lt.StartBlock == bno && lt.BlockCount == n:
		return c.Delete()
	case lt.StartBlock == bno:
		nl := *lt
		nl.StartBlock += n
		nl.BlockCount -= n
		if !ignore {
			nl.Offset += uint64(n)
		}
		return c.Update(rmapRec(nl))
	case ltEnd == end:
		nl := *lt
		nl.BlockCount -= n
		return c.Update(rmapRec(nl))
	}
	// The middle: keep the left part, insert the right part.
	nl := *lt
	nl.BlockCount = bno - lt.StartBlock
	if err := c.Update(rmapRec(nl)); err != nil {
		return err
	}
	right := ondisk.RmapRec{StartBlock: end, BlockCount: ltEnd - end, Owner: lt.Owner, Offset: o.flags()}
	if !ignore {
		right.Offset |= off + uint64(n)
	}
	t := ag.tree(ondisk.AGFRmap)
	return t.Insert(tx, rmapRec(right))
}
