package alloc

import (
	"github.com/xfsfree/xfsfree/ondisk"
)

// AllocNear allocates n blocks of the AG as close to near as the free
// space allows, for owner o — a simplified xfs_alloc_vextent_near_bno with
// minlen = maxlen = n and no alignment, as the inode btrees allocate their
// blocks. The AGFL is fixed up first. The chosen extent is the free extent
// nearest near that holds n blocks, searched on both sides through the
// bnobt: inside a free extent that holds near the blocks start at near;
// on the left they end where the free extent ends; on the right they start
// where it starts; the closer wins, the left one on a tie. The free extent
// shrinks or splits in both btrees, agf_freeblks drops by n, agf_longest
// follows and the rmapbt records the owner. ErrNoSpace if no free extent
// is long enough.
func AllocNear(tx Tx, ag *AG, near, n uint32, o Owner) (uint32, error) {
	if n == 0 {
		return 0, ag.freeCorrupt(near, 0, "is an allocation of no blocks", nil)
	}
	if near >= ag.blockCount() {
		near = ag.blockCount() - 1
	}
	if err := ag.FixFreelist(tx, false); err != nil {
		return 0, err
	}
	f, bno, err := ag.nearCandidate(tx, near, n)
	if err != nil {
		return 0, err
	}
	if err := ag.takeFree(tx, f.bno, f.n, bno, n); err != nil {
		return 0, err
	}
	if err := ag.updateFreeBlks(tx, -int64(n)); err != nil {
		return 0, err
	}
	if err := ag.rmapMap(tx, bno, n, o); err != nil {
		return 0, err
	}
	if err := ag.finishDeferred(tx); err != nil {
		return 0, err
	}
	return bno, nil
}

// nearCandidate finds the free extent f and the start bno of the n blocks
// AllocNear takes from it: off busy extents if any place allows, else
// anywhere (counted as a reuse of busy space).
func (ag *AG) nearCandidate(tx Tx, near, n uint32) (f extent, bno uint32, err error) {
	if ag.Busy != nil {
		f, bno, err := ag.nearSearch(tx, near, n, true)
		if err != ErrNoSpace {
			return f, bno, err
		}
		ag.Busy.Reuse()
	}
	return ag.nearSearch(tx, near, n, false)
}

// nearSearch looks for the n blocks nearest near, on both sides, through
// the bnobt; with avoidBusy, only places clear of busy extents count.
func (ag *AG) nearSearch(tx Tx, near, n uint32, avoidBusy bool) (f extent, bno uint32, err error) {
	t := ag.tree(ondisk.AGFBno)
	place := func(e extent) (uint32, bool) {
		if avoidBusy {
			return ag.place(e, n, near)
		}
		return clampNear(e.bno, e.n, n, near), e.n >= n
	}
	// Left: the last free extent starting at or before near, walking left
	// until one holds the blocks.
	var left, right *extent
	var lbno, rbno uint32
	key := near
	for {
		c, ok, err := t.Lookup(tx, allocRec(key, 0), lookLE)
		if err != nil {
			return f, 0, err
		}
		if !ok {
			break
		}
		e, err := ag.getRec(c, "bnobt")
		if err != nil {
			return f, 0, err
		}
		if s, ok := place(e); ok {
			if s == near {
				return e, near, nil // near itself is free
			}
			left, lbno = &e, s
			break
		}
		if e.bno == 0 {
			break
		}
		key = e.bno - 1
	}
	// Right: the first free extent starting after near that holds them.
	key = near + 1
	for key != 0 && key < ag.blockCount() {
		c, ok, err := t.Lookup(tx, allocRec(key, 0), lookGE)
		if err != nil {
			return f, 0, err
		}
		if !ok {
			break
		}
		e, err := ag.getRec(c, "bnobt")
		if err != nil {
			return f, 0, err
		}
		if s, ok := place(e); ok {
			right, rbno = &e, s
			break
		}
		key = e.bno + 1
	}
	switch {
	case left != nil && (right == nil || dist(near, lbno) <= dist(rbno, near)):
		return *left, lbno, nil
	case right != nil:
		return *right, rbno, nil
	}
	return f, 0, ErrNoSpace
}
