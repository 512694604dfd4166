package icluster

import (
	"fmt"
	"slices"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Truncating an orphan too big for one transaction, in several, as the
// kernel's xfs_itruncate_extents does: each transaction unmaps the fork's
// last extents (the highest file offsets first), frees what they map
// (or, for a reflinked file's data, lowers its reference counts) and logs
// the inode with fewer extents; the inode stays on its unlinked list until
// the last transaction (Ifree) frees it. A crash in between leaves a valid
// orphan with fewer extents, which the kernel's mount, or xfsfree again,
// goes on truncating.
//
// The data fork of a regular file goes first, then the attr fork (of any
// file) in one step of its own, whatever its size: the kernel's
// xfs_attr_inactive walks the attr btree (xfs_attr3_root_inactive) before
// it truncates the fork, so an attr fork left cut short by a crash would
// be an orphan the kernel cannot finish — xfs_itruncate_extents' own
// rolls leave that hazard, which freeing the fork at once avoids. In a
// btree fork the
// tail is cut as xfs_btree_delete would leave it (bmbt_tail.go), at any
// depth; when what is left fits in the inode the fork becomes an extents
// fork and every bmbt block is freed (xfs_bmap_btree_to_extents: a btree
// fork must hold more extents than the inode could hold inline,
// xfs_iformat_btree). A step unmaps at most max extents and, of a
// reflinked file's data, at most max blocks: the last extent it reaches is
// cut short when the blocks run out (__xfs_bunmapi's xfs_refcount_max_unmap
// bound), so that one extent shared with many refcount records is unmapped
// over several transactions. A regular file's size is set to 0 by the
// first step (xfs_inactive_truncate); its REFLINK flag is cleared when its
// data fork is empty (xfs_itruncate_clear_reflink_flags); an attr fork
// left empty is removed (xfs_attr_fork_remove) unless the data fork is a
// btree, whose in-inode root would have to move.

// stepBudget decides a step's cut from the fork's last records (last
// first): k whole records, then trim blocks off the next one.
func stepBudget(tail []ondisk.BmbtIrec, max int, shared bool) (k int, trim uint32) {
	var used uint64
	for _, r := range tail {
		if k >= max {
			break
		}
		if shared && used+uint64(r.BlockCount) > uint64(max) {
			return k, uint32(uint64(max) - used)
		}
		used += uint64(r.BlockCount)
		k++
	}
	return k, 0
}

// TruncateStep does one such transaction for v (from Inspect) in tx,
// unmapping at most maxExtents extents (and at most maxExtents blocks of a
// reflinked file's data), or the whole attr fork. It returns the extents it unmapped (one cut
// short counts), the blocks it took from the inode (data, attr and bmbt),
// and the work left, in the same units as maxExtents (the extents of both
// forks, or, for a reflinked file, its blocks if more: Victim.NeedsSteps
// of the rest); freed 0 means no step applies (the rest is for Ifree) and
// tx is unchanged. A *RefusedError means nothing was changed; any other
// error leaves tx half changed, to be cancelled.
func (a *AG) TruncateStep(tx FreeTx, v *Victim, maxExtents int) (freed int, blocks uint64, left uint64, err error) {
	g, agno := a.G, a.Agno
	maxExtents = max(maxExtents, 1)
	refuse := func(err error) error { return &RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err} }
	ip, err := a.iget(tx, v.Agino)
	if err != nil {
		return 0, 0, 0, refuse(err)
	}
	ib, err := readCluster(tx, g, v.Loc)
	if err != nil {
		return 0, 0, 0, refuse(err)
	}
	raw := ib.Data[v.Loc.Offset : v.Loc.Offset+int(g.InodeSize)]
	d, err := decodeVerified(g, raw, v.Ino, agno, v.Loc.Daddr)
	if err != nil {
		return 0, 0, 0, refuse(err)
	}
	if err := CheckFreeable(g, d); err != nil {
		return 0, 0, 0, &RefusedError{Ino: v.Ino, Reason: err.Error()}
	}
	if d.Nblocks != v.Nblocks {
		return 0, 0, 0, &RefusedError{Ino: v.Ino, Reason: fmt.Sprintf("changed since it was inspected (di_nblocks %d, was %d)", d.Nblocks, v.Nblocks)}
	}
	fork := -1
	switch {
	case d.IsReg() && d.Nextents(ondisk.DataFork) > 0:
		fork = ondisk.DataFork
	case d.HasAttrFork() && d.Nextents(ondisk.AttrFork) > 0:
		fork = ondisk.AttrFork
	}
	if fork < 0 {
		return 0, 0, workLeft(d), nil
	}
	if fork == ondisk.AttrFork {
		// The whole attr fork at once: the kernel's inactivation walks
		// the attr btree before it truncates the fork
		// (xfs_attr3_root_inactive), so an attr fork cut part of the way
		// is an orphan the kernel cannot finish (it stays on its
		// unlinked list).
		maxExtents = int(min(d.Nextents(fork), uint64(1<<31-2)))
	}
	st, err := a.planStep(tx, d, v.Ino, fork, maxExtents)
	if err != nil {
		return 0, 0, 0, refuse(err)
	}
	if err := a.checkShared(v.Ino, st.exts); err != nil {
		return 0, 0, 0, err
	}
	for _, e := range st.exts {
		blocks += uint64(e.Len)
	}
	if blocks > d.Nblocks {
		err := (ondisk.Where{AG: agno, Daddr: v.Loc.Daddr}).Corrupt(fmt.Sprintf("dinode %d", v.Ino), "di_nblocks", d.Nblocks, nil,
			fmt.Sprintf("fewer than the %d blocks a truncation step unmaps", blocks))
		return 0, 0, 0, refuse(err)
	}
	for _, ag := range extentAGs(st.exts, agno) {
		if _, err := LockAGF(tx, g, ag); err != nil {
			return 0, 0, 0, refuse(err)
		}
	}

	// From here on the transaction changes. The freed bmbt blocks are
	// cancelled first (xfs_btree_free_block): a block the free-space
	// btrees reuse in this transaction is revived by its new owner.
	for _, n := range st.freedBlocks {
		tx.Binval(n.buf)
	}
	for _, e := range st.exts {
		if err := a.release(tx, e); err != nil {
			return 0, 0, 0, fmt.Errorf("inode %d: truncating: freeing %s: %w", v.Ino, describe(e), err)
		}
	}
	if st.cut != nil && st.inline == nil {
		st.cut.write()
		st.cut.root.Encode(d.ForkBytes(fork))
	}
	if st.inline != nil {
		fb := d.ForkBytes(fork)
		for i, r := range st.inline {
			r.Encode(fb[i*ondisk.BmbtRecLen:])
		}
		if fork == ondisk.DataFork {
			d.Format = ondisk.DinodeFmtExtents
		} else {
			d.Aformat = ondisk.DinodeFmtExtents
		}
	}
	n := d.Nextents(fork) - uint64(st.removed)
	d.SetNextents(fork, n)
	d.Nblocks -= blocks
	if d.IsReg() {
		d.Size = 0
	}
	switch {
	case fork == ondisk.DataFork && n == 0:
		d.Flags2 &^= ondisk.Diflag2Reflink
	case fork == ondisk.AttrFork && n == 0 && d.Format != ondisk.DinodeFmtBtree:
		d.Forkoff = 0
		d.Aformat = ondisk.DinodeFmtExtents
	}
	d.ChangeCount++
	d.EncodeCRC(raw)
	logInode(tx, ib, v.Loc.Offset, ip)
	freed = st.removed
	if st.trimmed {
		freed++
	}
	return freed, blocks, workLeft(d), nil
}

// workLeft is what truncating d's forks still has to do, in the units of
// Victim.NeedsSteps: its extents, or a reflinked file's blocks if more.
func workLeft(d *ondisk.Dinode) uint64 {
	n := d.Nextents(ondisk.DataFork) + d.Nextents(ondisk.AttrFork)
	if isReflink(d) {
		n = max(n, d.Nblocks)
	}
	return n
}

// step is a planned truncation step of one fork. This struct does not
// represent an on-disk struct.
type step struct {
	exts        []Extent // unmapped pieces, highest offset first, then the bmbt blocks freed
	freedBlocks []*bnode
	removed     int  // whole records removed
	trimmed     bool // and the last one left cut short
	cut         *cutter
	// inline, when not nil, is the fork's new extent list (an extents
	// fork, or a btree fork that becomes one).
	inline []ondisk.BmbtIrec
}

// planStep reads what a step of fork of d unmaps, changing nothing in the
// transaction's buffers (btree blocks are changed in their decoded form).
func (a *AG) planStep(tx FreeTx, d *ondisk.Dinode, ino uint64, fork, maxExtents int) (*step, error) {
	n := d.Nextents(fork)
	inlineMax := uint64(d.ForkSize(fork) / ondisk.BmbtRecLen)
	shared := fork == ondisk.DataFork && isReflink(d)
	st := &step{}
	var pieces []ondisk.BmbtIrec
	switch d.ForkFormat(fork) {
	case ondisk.DinodeFmtExtents:
		recs, err := d.Extents(fork)
		if err != nil {
			return nil, err
		}
		pieces = st.cutList(recs, maxExtents, shared)
	case ondisk.DinodeFmtBtree:
		root, err := d.BmdrRoot(fork)
		if err != nil {
			return nil, err
		}
		c := newCutter(a, tx, ino, fork, root)
		st.cut = c
		if err := c.loadRight(); err != nil {
			return nil, err
		}
		tail, err := c.tailRecords(maxExtents + 1)
		if err != nil {
			return nil, err
		}
		k, trim := stepBudget(tail, maxExtents, shared)
		if n-uint64(k) <= inlineMax {
			// What is left fits in the inode: the fork becomes an
			// extents fork, every block of the tree is freed.
			blocks, recs, err := c.all()
			if err != nil {
				return nil, err
			}
			if uint64(len(recs)) != n {
				return nil, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d", ino), Field: "nextents",
					Found: n, Msg: fmt.Sprintf("the fork's btree holds %d records", len(recs))}
			}
			pieces = st.cutList(recs, maxExtents, shared)
			st.freedBlocks = blocks
			break
		}
		if k > 0 {
			if err := c.dropTail(0, k); err != nil {
				return nil, err
			}
		}
		if trim > 0 {
			c.trimLast(trim)
		}
		if err := c.rebalance(); err != nil {
			return nil, err
		}
		if err := c.collapse(ondisk.BmdrMaxRecs(d.ForkSize(fork))); err != nil {
			return nil, err
		}
		pieces, st.freedBlocks = c.pieces, c.freed
		st.removed, st.trimmed = k, trim > 0
	default:
		return st, nil
	}
	var flag uint64
	if fork == ondisk.AttrFork {
		flag = ondisk.RmapOffAttrFork
	}
	g := a.G
	for _, r := range pieces {
		off := r.StartOff | flag
		if r.Unwritten {
			off |= ondisk.RmapOffUnwritten
		}
		st.exts = append(st.exts, Extent{AG: g.FsbToAgno(r.StartBlock), Agbno: g.FsbToAgbno(r.StartBlock), Len: r.BlockCount,
			Owner: Owner{Owner: ino, Offset: off}, Fsbno: r.StartBlock, Attr: fork == ondisk.AttrFork, Offset: r.StartOff, Shared: shared})
	}
	for _, b := range st.freedBlocks {
		st.exts = append(st.exts, Extent{AG: g.FsbToAgno(b.fsb), Agbno: g.FsbToAgbno(b.fsb), Len: 1,
			Owner: Owner{Owner: ino, Offset: ondisk.RmapOffBmbtBlock | flag}, Fsbno: b.fsb, Bmbt: true, Attr: fork == ondisk.AttrFork})
	}
	return st, nil
}

// cutList cuts the tail off a whole extent list (an extents fork, or a
// btree fork becoming one): the kept records become st.inline and the
// pieces unmapped are returned, last first.
func (st *step) cutList(recs []ondisk.BmbtIrec, maxExtents int, shared bool) []ondisk.BmbtIrec {
	tail := slices.Clone(recs[max(0, len(recs)-maxExtents-1):])
	slices.Reverse(tail)
	k, trim := stepBudget(tail, maxExtents, shared)
	keep := slices.Clone(recs[:len(recs)-k])
	pieces := slices.Clone(tail[:k])
	if trim > 0 {
		last := &keep[len(keep)-1]
		pieces = append(pieces, tailOf(*last, trim))
		last.BlockCount -= trim
	}
	st.inline = keep
	if st.inline == nil {
		st.inline = []ondisk.BmbtIrec{}
	}
	st.removed, st.trimmed = k, trim > 0
	return pieces
}
