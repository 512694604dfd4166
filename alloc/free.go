package alloc

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/ondisk"
)

// extent is a free extent, as a bnobt or cntbt record holds it.
type extent struct{ bno, n uint32 }

func (e extent) end() uint64 { return uint64(e.bno) + uint64(e.n) }

func (ag *AG) freeCorrupt(bno, n uint32, msg string, found *extent) error {
	e := &ondisk.CorruptError{AG: ag.Agno, Daddr: -1, Struct: "bnobt", Field: fmt.Sprintf("extent [%d, %d)", bno, uint64(bno)+uint64(n)), Msg: msg}
	if found != nil {
		e.Found = fmt.Sprintf("free extent [%d, %d)", found.bno, found.end())
	}
	return e
}

// getRec decodes and checks an alloc record (xfs_alloc_get_rec,
// xfs_alloc_check_irec).
func (ag *AG) getRec(c cursor, which string) (extent, error) {
	r := ondisk.DecodeAllocRec(c.Rec())
	e := extent{r.StartBlock, r.BlockCount}
	if !ag.validExtent(e.bno, e.n) {
		return e, &ondisk.CorruptError{AG: ag.Agno, Daddr: -1, Struct: which, Field: "record",
			Found: fmt.Sprintf("[%d, %d)", e.bno, e.end()), Msg: "is not a valid extent of the AG"}
	}
	return e, nil
}

// lookupAlloc looks up (bno, n) in btree i.
func (ag *AG) lookupAlloc(tx Tx, i int, e extent, d btree.LookupDir) (cursor, bool, error) {
	t := ag.tree(i)
	return t.Lookup(tx, allocRec(e.bno, e.n), d)
}

// findAlloc positions a cursor at exactly the record e of btree i.
func (ag *AG) findAlloc(tx Tx, i int, e extent) (cursor, error) {
	c, ok, err := ag.lookupAlloc(tx, i, e, lookEQ)
	if err != nil {
		return nil, err
	}
	name := []string{"bnobt", "cntbt"}[i]
	if ok {
		if got, err := ag.getRec(c, name); err != nil {
			return nil, err
		} else if got == e {
			return c, nil
		}
	}
	return nil, &ondisk.CorruptError{AG: ag.Agno, Daddr: -1, Struct: name, Field: fmt.Sprintf("record [%d, %d)", e.bno, e.end()),
		Msg: "is missing (the bnobt and cntbt disagree)"}
}

func (ag *AG) deleteAlloc(tx Tx, i int, e extent) error {
	c, err := ag.findAlloc(tx, i, e)
	if err != nil {
		return err
	}
	return c.Delete()
}

func (ag *AG) updateAlloc(tx Tx, i int, old, nw extent) error {
	c, err := ag.findAlloc(tx, i, old)
	if err != nil {
		return err
	}
	return c.Update(allocRec(nw.bno, nw.n))
}

// insertAlloc inserts e into btree i; Insert's own EQ lookup refuses a
// record already there.
func (ag *AG) insertAlloc(tx Tx, i int, e extent) error {
	err := ag.tree(i).Insert(tx, allocRec(e.bno, e.n))
	if errors.Is(err, btree.ErrExists) {
		return ag.freeCorrupt(e.bno, e.n, "is already in the "+[]string{"bnobt", "cntbt"}[i], &e)
	}
	return err
}

// fixLongest sets agf_longest to the length of the last cntbt record, or 0
// (xfs_alloc_fixup_longest).
func (ag *AG) fixLongest(tx Tx) error {
	t := ag.tree(ondisk.AGFCnt)
	rec, ok, err := lastRec(tx, t)
	if err != nil {
		return err
	}
	var n uint32
	if ok {
		n = ondisk.DecodeAllocRec(rec).BlockCount
	}
	ag.setLongest(tx, n)
	return nil
}

// FreeExtent frees [agbno, agbno+n) of the AG (__xfs_free_extent): the AGFL
// is fixed up first in freeing mode, then the extent goes into the bnobt
// and cntbt, merged with the free extents it touches, agf_freeblks grows
// by n, agf_longest follows, and owner o's rmap records for the range are
// removed (for OwnerNull, the rmapbt is left alone: the caller removed
// them, as the kernel's RUI does for file data). The AGFL blocks a shrink
// took off are freed last. Freeing space that is already partly free is
// corruption, reported with the AG and both extents.
func FreeExtent(tx Tx, ag *AG, agbno, n uint32, o Owner) error {
	if !ag.validExtent(agbno, n) {
		return ag.freeCorrupt(agbno, n, fmt.Sprintf("is not an extent of the AG (length %d)", ag.blockCount()), nil)
	}
	if err := ag.FixFreelist(tx, true); err != nil {
		return err
	}
	if err := ag.freeAGExtent(tx, agbno, n, o); err != nil {
		return err
	}
	if ag.Busy != nil {
		ag.Busy.Add(ag.Agno, agbno, n)
	}
	return ag.finishDeferred(tx)
}

// place is where n blocks of the free extent e go for near, keeping off
// busy extents when it can (ok false: only busy space there).
func (ag *AG) place(e extent, n, near uint32) (uint32, bool) {
	if ag.Busy == nil {
		return clampNear(e.bno, e.n, n, near), e.n >= n
	}
	return ag.Busy.Place(ag.Agno, e.bno, e.n, n, near)
}

// freeAGExtent is xfs_free_ag_extent.
func (ag *AG) freeAGExtent(tx Tx, bno, n uint32, o Owner) error {
	if err := ag.rmapUnmap(tx, bno, n, o); err != nil {
		return err
	}
	var lt, gt extent
	haveLeft, haveRight := false, false
	// A free extent on the left, touching ours?
	c, ok, err := ag.lookupAlloc(tx, ondisk.AGFBno, extent{bno, n}, lookLE)
	if err != nil {
		return err
	}
	if ok {
		if lt, err = ag.getRec(c, "bnobt"); err != nil {
			return err
		}
		if lt.end() > uint64(bno) {
			return ag.freeCorrupt(bno, n, "is (partly) free already", &lt)
		}
		haveLeft = lt.end() == uint64(bno)
	}
	// On the right? (No record starts at bno: the left check saw it.)
	c, ok, err = ag.lookupAlloc(tx, ondisk.AGFBno, extent{bno, n}, lookGE)
	if err != nil {
		return err
	}
	if ok {
		if gt, err = ag.getRec(c, "bnobt"); err != nil {
			return err
		}
		if uint64(bno)+uint64(n) > uint64(gt.bno) {
			return ag.freeCorrupt(bno, n, "is (partly) free already", &gt)
		}
		haveRight = uint64(bno)+uint64(n) == uint64(gt.bno)
	}
	var nw extent
	switch {
	case haveLeft && haveRight:
		nw = extent{lt.bno, lt.n + n + gt.n}
		if err := ag.deleteAlloc(tx, ondisk.AGFCnt, lt); err != nil {
			return err
		}
		if err := ag.deleteAlloc(tx, ondisk.AGFCnt, gt); err != nil {
			return err
		}
		if err := ag.deleteAlloc(tx, ondisk.AGFBno, gt); err != nil {
			return err
		}
		if err := ag.updateAlloc(tx, ondisk.AGFBno, lt, nw); err != nil {
			return err
		}
	case haveLeft:
		nw = extent{lt.bno, lt.n + n}
		if err := ag.deleteAlloc(tx, ondisk.AGFCnt, lt); err != nil {
			return err
		}
		if err := ag.updateAlloc(tx, ondisk.AGFBno, lt, nw); err != nil {
			return err
		}
	case haveRight:
		nw = extent{bno, n + gt.n}
		if err := ag.deleteAlloc(tx, ondisk.AGFCnt, gt); err != nil {
			return err
		}
		if err := ag.updateAlloc(tx, ondisk.AGFBno, gt, nw); err != nil {
			return err
		}
	default:
		nw = extent{bno, n}
		if err := ag.insertAlloc(tx, ondisk.AGFBno, nw); err != nil {
			return err
		}
	}
	if err := ag.insertAlloc(tx, ondisk.AGFCnt, nw); err != nil {
		return err
	}
	if err := ag.fixLongest(tx); err != nil {
		return err
	}
	return ag.updateFreeBlks(tx, int64(n))
}

// takeFree removes [rbno, rbno+rlen) from the free extent [fbno,
// fbno+flen) that holds it, in both btrees (xfs_alloc_fixup_trees): the
// free extent goes, shrinks, or splits in two. Counters are the caller's.
func (ag *AG) takeFree(tx Tx, fbno, flen, rbno, rlen uint32) error {
	f := extent{fbno, flen}
	if rbno < fbno || uint64(rbno)+uint64(rlen) > f.end() || rlen == 0 {
		return ag.freeCorrupt(rbno, rlen, "is not inside the free extent it is taken from", &f)
	}
	var n1, n2 *extent
	switch {
	case rbno == fbno && rlen == flen:
	case rbno == fbno:
		n1 = &extent{rbno + rlen, flen - rlen}
	case uint64(rbno)+uint64(rlen) == f.end():
		n1 = &extent{fbno, flen - rlen}
	default:
		n1 = &extent{fbno, rbno - fbno}
		n2 = &extent{rbno + rlen, uint32(f.end() - uint64(rbno) - uint64(rlen))}
	}
	if err := ag.deleteAlloc(tx, ondisk.AGFCnt, f); err != nil {
		return err
	}
	for _, e := range []*extent{n1, n2} {
		if e != nil {
			if err := ag.insertAlloc(tx, ondisk.AGFCnt, *e); err != nil {
				return err
			}
		}
	}
	if n1 == nil {
		if err := ag.deleteAlloc(tx, ondisk.AGFBno, f); err != nil {
			return err
		}
	} else if err := ag.updateAlloc(tx, ondisk.AGFBno, f, *n1); err != nil {
		return err
	}
	if n2 != nil {
		if err := ag.insertAlloc(tx, ondisk.AGFBno, *n2); err != nil {
			return err
		}
	}
	return ag.fixLongest(tx)
}

// sizeCandidate is the search of xfs_alloc_ag_vextent_size for the AGFL
// refill: the smallest free extent of at least want blocks (a cntbt
// lookup_ge), else the largest one; ok is false when no space is free.
func (ag *AG) sizeCandidate(tx Tx, want uint32) (bno, n uint32, ok bool, err error) {
	c, found, err := ag.lookupAlloc(tx, ondisk.AGFCnt, extent{0, want}, lookGE)
	if err != nil {
		return 0, 0, false, err
	}
	if !found {
		t := ag.tree(ondisk.AGFCnt)
		rec, found, err := lastRec(tx, t)
		if err != nil || !found {
			return 0, 0, false, err
		}
		r := ondisk.DecodeAllocRec(rec)
		e := extent{r.StartBlock, r.BlockCount}
		if !ag.validExtent(e.bno, e.n) {
			return 0, 0, false, ag.freeCorrupt(e.bno, e.n, "is the last cntbt record but not an extent of the AG", nil)
		}
		return e.bno, e.n, true, nil
	}
	e, err := ag.getRec(c, "cntbt")
	if err != nil {
		return 0, 0, false, err
	}
	return e.bno, e.n, true, nil
}
