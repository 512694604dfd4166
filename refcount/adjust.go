package refcount

// Raising and lowering reference counts (xfs_refcount_adjust and its
// helpers in libxfs/xfs_refcount.c): split the records crossing either end
// of the range, merge the range's ends with their neighbours when the new
// count allows, then walk the range record by record, a gap counting as a
// record of refcount 1.

import (
	"fmt"

	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Adjustment amounts (enum xfs_refc_adjust_op).
const (
	adjIncrease = 1
	adjDecrease = -1
	adjCowAlloc = 0
	adjCowFree  = -1
)

// refcountItemOverhead is XFS_REFCOUNT_ITEM_OVERHEAD: what one record
// change is taken to log.
const refcountItemOverhead = 32

// nullRec is an invalid record (rc_startblock NULLAGBLOCK: xfs_refc_valid).
var nullRec = Rec{Start: ondisk.NullAgbno}

func valid(r Rec) bool { return r.Start != ondisk.NullAgbno }

// splitExtent splits the record of the domain that crosses agbno in two
// (xfs_refcount_split_extent) and reports whether it did.
func (r *AG) splitExtent(tx Tx, cow bool, agbno uint32) (bool, error) {
	c, found, err := r.lookup(tx, cow, agbno, btree.LE)
	if err != nil || !found {
		return false, err
	}
	rc, found, err := r.get(c)
	if err != nil {
		return false, err
	}
	if err := r.mustFind(found, "record at or before", agbno, cow); err != nil {
		return false, err
	}
	if rc.Cow != cow || rc.Start == agbno || rc.next() <= agbno {
		return false, nil
	}
	right := rc
	right.Start = agbno
	right.Len -= agbno - rc.Start
	if err := r.update(c, right); err != nil {
		return false, err
	}
	left := rc
	left.Len = agbno - rc.Start
	return true, r.insert(tx, left)
}

// findLeftExtents finds the record ending at agbno (left) and the one
// starting there (cleft), synthesising a refcount-1 cleft over a gap
// (xfs_refcount_find_left_extents).
func (r *AG) findLeftExtents(tx Tx, cow bool, agbno, aglen uint32) (left, cleft Rec, err error) {
	left, cleft = nullRec, nullRec
	c, found, err := r.lookup(tx, cow, agbno-1, btree.LE)
	if err != nil || !found {
		return left, cleft, err
	}
	tmp, found, err := r.get(c)
	if err != nil {
		return left, cleft, err
	}
	if err := r.mustFind(found, "record at or before", agbno-1, cow); err != nil {
		return left, cleft, err
	}
	if tmp.Cow != cow || tmp.next() != agbno {
		return left, cleft, nil
	}
	left = tmp
	ok, err := c.Increment()
	if err != nil {
		return left, cleft, err
	}
	if ok {
		if tmp, found, err = r.get(c); err != nil {
			return left, cleft, err
		}
		if err := r.mustFind(found, "record after", agbno, cow); err != nil {
			return left, cleft, err
		}
		if tmp.Cow == cow {
			if tmp.Start == agbno {
				return left, tmp, nil
			}
			return left, Rec{Start: agbno, Len: min(aglen, tmp.Start-agbno), Refcount: 1, Cow: cow}, nil
		}
	}
	return left, Rec{Start: agbno, Len: aglen, Refcount: 1, Cow: cow}, nil
}

// findRightExtents finds the record starting at agbno+aglen (right) and
// the one ending there (cright), synthesising a refcount-1 cright over a
// gap (xfs_refcount_find_right_extents).
func (r *AG) findRightExtents(tx Tx, cow bool, agbno, aglen uint32) (right, cright Rec, err error) {
	right, cright = nullRec, nullRec
	end := agbno + aglen
	c, found, err := r.lookup(tx, cow, end, btree.GE)
	if err != nil || !found {
		return right, cright, err
	}
	tmp, found, err := r.get(c)
	if err != nil {
		return right, cright, err
	}
	if err := r.mustFind(found, "record at or after", end, cow); err != nil {
		return right, cright, err
	}
	if tmp.Cow != cow || tmp.Start != end {
		return right, cright, nil
	}
	right = tmp
	ok, err := c.Decrement()
	if err != nil {
		return right, cright, err
	}
	if ok {
		if tmp, found, err = r.get(c); err != nil {
			return right, cright, err
		}
		if err := r.mustFind(found, "record before", end, cow); err != nil {
			return right, cright, err
		}
		if tmp.Cow == cow {
			if tmp.next() == end {
				return right, tmp, nil
			}
			s := max(agbno, tmp.next())
			return right, Rec{Start: s, Len: right.Start - s, Refcount: 1, Cow: cow}, nil
		}
	}
	return right, Rec{Start: agbno, Len: aglen, Refcount: 1, Cow: cow}, nil
}

// mergeRefcount is xfs_refc_merge_refcount: the count a record would have
// after the adjustment; RefcRefcountMax is sticky.
func mergeRefcount(rc Rec, adj int) uint32 {
	if rc.Refcount == ondisk.RefcRefcountMax {
		return ondisk.RefcRefcountMax
	}
	return uint32(int64(rc.Refcount) + int64(adj))
}

// mergeExtents merges the ends of the range with their neighbours where
// the new count matches (xfs_refcount_merge_extents: centre, else left,
// else right), narrowing the range to what is left to adjust.
func (r *AG) mergeExtents(tx Tx, cow bool, agbno, aglen *uint32, adj int) (bool, error) {
	left, cleft, err := r.findLeftExtents(tx, cow, *agbno, *aglen)
	if err != nil {
		return false, err
	}
	right, cright, err := r.findRightExtents(tx, cow, *agbno, *aglen)
	if err != nil {
		return false, err
	}
	if !valid(left) && !valid(right) {
		return false, nil
	}
	cequal := cleft.Start == cright.Start && cleft.Len == cright.Len
	// Centre: left, the one record of the range, right.
	if valid(left) && valid(right) && valid(cleft) && valid(cright) && cequal {
		nr := mergeRefcount(cleft, adj)
		ulen := uint64(left.Len) + uint64(cleft.Len) + uint64(right.Len)
		if left.Refcount == nr && right.Refcount == nr && ulen < uint64(ondisk.RefcLenMax) {
			return true, r.mergeCenter(tx, left, cleft, uint32(ulen), aglen)
		}
	}
	// Left.
	if valid(left) && valid(cleft) && left.Refcount == mergeRefcount(cleft, adj) &&
		uint64(left.Len)+uint64(cleft.Len) < uint64(ondisk.RefcLenMax) {
		if err := r.mergeLeft(tx, left, cleft, agbno, aglen); err != nil {
			return true, err
		}
		if cequal {
			return true, nil
		}
		// Right, after a left merge.
		if valid(right) && valid(cright) && right.Refcount == mergeRefcount(cright, adj) &&
			uint64(right.Len)+uint64(cright.Len) < uint64(ondisk.RefcLenMax) {
			return true, r.mergeRight(tx, right, cright, aglen)
		}
		return true, nil
	}
	if valid(right) && valid(cright) && right.Refcount == mergeRefcount(cright, adj) &&
		uint64(right.Len)+uint64(cright.Len) < uint64(ondisk.RefcLenMax) {
		return true, r.mergeRight(tx, right, cright, aglen)
	}
	return false, nil
}

// mergeCenter is xfs_refcount_merge_center_extents: the centre record (if
// it exists) and the right one go, the left one covers all three.
func (r *AG) mergeCenter(tx Tx, left, center Rec, extlen uint32, aglen *uint32) error {
	c, found, err := r.lookup(tx, center.Cow, center.Start, btree.GE)
	if err != nil {
		return err
	}
	if err := r.mustFind(found, "centre or right", center.Start, center.Cow); err != nil {
		return err
	}
	if err := r.delete(c); err != nil {
		return err
	}
	if center.Refcount > 1 {
		if err := r.delete(c); err != nil {
			return err
		}
	}
	if c, found, err = r.lookup(tx, left.Cow, left.Start, btree.LE); err != nil {
		return err
	}
	if err := r.mustFind(found, "left", left.Start, left.Cow); err != nil {
		return err
	}
	left.Len = extlen
	*aglen = 0
	return r.update(c, left)
}

// mergeLeft is xfs_refcount_merge_left_extent.
func (r *AG) mergeLeft(tx Tx, left, cleft Rec, agbno, aglen *uint32) error {
	if cleft.Refcount > 1 {
		c, found, err := r.lookup(tx, cleft.Cow, cleft.Start, btree.LE)
		if err != nil {
			return err
		}
		if err := r.mustFind(found, "centre-left", cleft.Start, cleft.Cow); err != nil {
			return err
		}
		if err := r.delete(c); err != nil {
			return err
		}
	}
	c, found, err := r.lookup(tx, left.Cow, left.Start, btree.LE)
	if err != nil {
		return err
	}
	if err := r.mustFind(found, "left", left.Start, left.Cow); err != nil {
		return err
	}
	left.Len += cleft.Len
	if err := r.update(c, left); err != nil {
		return err
	}
	*agbno += cleft.Len
	*aglen -= cleft.Len
	return nil
}

// mergeRight is xfs_refcount_merge_right_extent.
func (r *AG) mergeRight(tx Tx, right, cright Rec, aglen *uint32) error {
	if cright.Refcount > 1 {
		c, found, err := r.lookup(tx, cright.Cow, cright.Start, btree.LE)
		if err != nil {
			return err
		}
		if err := r.mustFind(found, "centre-right", cright.Start, cright.Cow); err != nil {
			return err
		}
		if err := r.delete(c); err != nil {
			return err
		}
	}
	c, found, err := r.lookup(tx, right.Cow, right.Start, btree.LE)
	if err != nil {
		return err
	}
	if err := r.mustFind(found, "right", right.Start, right.Cow); err != nil {
		return err
	}
	right.Start -= cright.Len
	right.Len += cright.Len
	if err := r.update(c, right); err != nil {
		return err
	}
	*aglen -= cright.Len
	return nil
}

// allocfreeBlockCount is xfs_allocfree_block_count: the worst case of
// free-space and rmap btree blocks n changes of the refcount btree's shape
// can cost.
func (r *AG) allocfreeBlockCount(n int) int {
	g := r.A.G
	blocks := n * 2 * (2*ondisk.BtBnobt.MaxLevels(g) - 1)
	if g.HasRmapbt {
		blocks += n * (2*ondisk.BtRmapbt.MaxLevels(g) - 1)
	}
	return blocks
}

// stillHaveSpace is xfs_refcount_still_have_space.
func (r *AG) stillHaveSpace() bool {
	if r.LogRes <= 0 || r.NrOps == 0 {
		return true
	}
	overhead := (r.allocfreeBlockCount(r.ShapeChanges) + ondisk.BtRefcbt.MaxLevels(r.A.G)) * int(r.A.G.BlockSize)
	if overhead > r.LogRes {
		return false
	}
	return r.LogRes-overhead > r.NrOps*refcountItemOverhead
}

// adjustExtents walks the rest of the range once its ends are settled
// (xfs_refcount_adjust_extents): a gap becomes a record of refcount 2 on
// an increase and is freed on a decrease; a record's count moves by adj,
// and a record left at 1 is deleted (its blocks are no longer shared);
// RefcRefcountMax stays. It stops early when stillHaveSpace says so.
func (r *AG) adjustExtents(tx Tx, agbno, aglen *uint32, adj int) error {
	if *aglen == 0 {
		return nil
	}
	c, _, err := r.lookup(tx, false, *agbno, btree.GE)
	if err != nil {
		return err
	}
	for *aglen > 0 && r.stillHaveSpace() {
		ext, found, err := r.get(c)
		if err != nil {
			return err
		}
		if !found || ext.Cow {
			ext = Rec{Start: r.A.G.AGBlocks}
		}
		if ext.Start != *agbno {
			// A gap: blocks mapped once.
			tmp := Rec{Start: *agbno, Len: min(*aglen, ext.Start-*agbno), Refcount: uint32(1 + adj)}
			r.NrOps++
			if tmp.Refcount > 0 {
				if err := r.insert(tx, tmp); err != nil {
					return err
				}
			} else {
				r.deferFree(tmp.Start, tmp.Len, alloc.OwnerNull)
			}
			*agbno += tmp.Len
			*aglen -= tmp.Len
			if *aglen == 0 || !r.stillHaveSpace() {
				break
			}
			if c, _, err = r.lookup(tx, false, *agbno, btree.GE); err != nil {
				return err
			}
		}
		if ext.Len == 0 || ext.Len > *aglen {
			return r.corrupt(fmt.Sprintf("record %v", ext), nil,
				fmt.Sprintf("crosses the end of the range [%d, %d) being adjusted", *agbno, uint64(*agbno)+uint64(*aglen)))
		}
		if ext.Refcount != ondisk.RefcRefcountMax {
			ext.Refcount = uint32(int64(ext.Refcount) + int64(adj))
			r.NrOps++
			switch {
			case ext.Refcount > 1:
				if err := r.update(c, ext); err != nil {
					return err
				}
			case ext.Refcount == 1:
				if err := r.delete(c); err != nil {
					return err
				}
				*agbno += ext.Len
				*aglen -= ext.Len
				continue
			default:
				r.deferFree(ext.Start, ext.Len, alloc.OwnerNull)
			}
		}
		if _, err := c.Increment(); err != nil {
			return err
		}
		*agbno += ext.Len
		*aglen -= ext.Len
	}
	return nil
}

// adjust is xfs_refcount_adjust in the shared domain.
func (r *AG) adjust(tx Tx, agbno, aglen uint32, adj int) (Extent, error) {
	changed := false
	for _, at := range []uint32{agbno, agbno + aglen} {
		sc, err := r.splitExtent(tx, false, at)
		if err != nil {
			return Extent{}, err
		}
		changed = changed || sc
	}
	sc, err := r.mergeExtents(tx, false, &agbno, &aglen, adj)
	if err != nil {
		return Extent{}, err
	}
	if changed || sc {
		r.ShapeChanges++
	}
	if err := r.adjustExtents(tx, &agbno, &aglen, adj); err != nil {
		return Extent{}, err
	}
	return Extent{Start: agbno, Len: aglen}, nil
}

// checkRange refuses a range that is not an extent of the AG's blocks
// (xfs_verify_agbext, as xfs_refcount_continue_op and the intent checks
// make sure of).
func (r *AG) checkRange(op string, agbno, n uint32) error {
	g := r.A.G
	if n == 0 || agbno+n <= agbno || !g.VerifyAgbno(r.A.Agno, agbno) || !g.VerifyAgbno(r.A.Agno, agbno+n-1) {
		return r.corrupt(fmt.Sprintf("%s of [%d, %d)", op, agbno, uint64(agbno)+uint64(n)), nil, "is not an extent of the AG's blocks past its headers")
	}
	return nil
}

// Increase adds one to the reference count of [agbno, agbno+n) of the AG,
// as a new file mapping of those blocks does (XFS_REFCOUNT_INCREASE):
// blocks without a record (mapped once) get a record of 2. It returns the
// part not done when stillHaveSpace stopped it early (the kernel logs it
// in a new intent: xfs_refcount_continue_op), of length 0 when all is
// done.
func (r *AG) Increase(tx Tx, agbno, n uint32) (rest Extent, err error) {
	if err := r.checkRange("increase", agbno, n); err != nil {
		return Extent{}, err
	}
	rest, err = r.adjust(tx, agbno, n, adjIncrease)
	if err != nil {
		return rest, err
	}
	return rest, r.finish(tx)
}

// Decrease subtracts one from the reference count of [agbno, agbno+n), as
// removing a file mapping of those blocks does (XFS_REFCOUNT_DECREASE):
// a record left at 1 is deleted (the blocks stay, mapped once), and
// blocks without a record are no longer mapped at all and are freed,
// through Free with owner alloc.OwnerNull, when the btree work is done.
// It returns the part not done when stillHaveSpace stopped it early.
func (r *AG) Decrease(tx Tx, agbno, n uint32) (rest Extent, err error) {
	if err := r.checkRange("decrease", agbno, n); err != nil {
		return Extent{}, err
	}
	rest, err = r.adjust(tx, agbno, n, adjDecrease)
	if err != nil {
		return rest, err
	}
	return rest, r.finish(tx)
}
