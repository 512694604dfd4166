package icluster

import (
	"fmt"
	"slices"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Truncating an orphan too big for one transaction, in several, as the
// kernel's xfs_itruncate_extents does (it unmaps a few extents a
// transaction from the highest file offset and logs the inode each time;
// the inode stays on its unlinked list until the last transaction frees
// it). A crash in between leaves an orphan with fewer extents, which the
// kernel's mount, or xfsfree again, goes on truncating.
//
// A step removes whole bmbt leaves from the right of the data fork's
// btree: their extents and the leaves are freed, the leaf left of them
// gets a null right sibling, their parent loses its last pointers (an
// emptied node is freed too), and the inode's extent count, block count
// and size (0, as xfs_inactive_truncate sets it first) are logged. The
// remaining blocks keep their records untouched, so every block left is as
// full as it was; a parent that loses pointers is the in-inode root or a
// block right under it, which have no minimum number of records. Steps
// stop while the fork still holds more extents than its inode could hold
// inline (xfs_iformat_btree refuses a btree fork with fewer), and for
// btrees deeper than root → node → leaf; the last transaction (Ifree)
// frees the rest.

type stepBlock struct {
	fsb uint64
	buf *cache.Buf
	blk *ondisk.BmbtBlock
}

// TruncateStep does one such transaction for v (from Inspect) in tx,
// removing leaves while they hold at most maxExtents extents in all (at
// least one leaf). It returns the extents and blocks it freed and the
// extents left in the data fork; freed 0 means no step applies (the rest
// is for Ifree) and tx is unchanged. A *RefusedError means nothing was
// changed; any other error leaves tx half changed, to be cancelled.
func (a *AG) TruncateStep(tx FreeTx, v *Victim, maxExtents int) (freed int, blocks uint64, left uint64, err error) {
	g, agno := a.G, a.Agno
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
	nextents := d.Nextents(ondisk.DataFork)
	if d.Format != ondisk.DinodeFmtBtree || !d.IsReg() {
		return 0, 0, nextents, nil
	}
	root, err := d.BmdrRoot(ondisk.DataFork)
	if err != nil {
		return 0, 0, 0, refuse(ondisk.SetLocation(err, agno, v.Loc.Daddr))
	}
	if root.Level > 2 || root.Numrecs == 0 {
		return 0, 0, nextents, nil
	}
	readBlk := func(fsb uint64, level int) (stepBlock, error) {
		daddr, bag := g.FsbToDaddr(fsb), g.FsbToAgno(fsb)
		ctx := ondisk.VerifyCtx{G: g, AG: bag, Daddr: daddr}
		b, err := tx.ReadBuf(daddr, g.BlockBBs(), ondisk.KindBmbt, ctx)
		if err != nil {
			return stepBlock{}, err
		}
		// ReadBuf verified the block (or the transaction changed it: its CRC
		// is recomputed at commit); only the owner is left to check.
		if err := ondisk.CheckBmbtOwner(b.Data, ctx, v.Ino); err != nil {
			return stepBlock{}, ondisk.SetLocation(err, bag, daddr)
		}
		blk, err := ondisk.DecodeBmbtBlock(b.Data)
		if err == nil && int(blk.Level) != level {
			err = (ondisk.Where{AG: bag, Daddr: daddr}).Corrupt(fmt.Sprintf("bmbt block of inode %d", v.Ino), "bb_level", blk.Level, level, "")
		}
		return stepBlock{fsb: fsb, buf: b, blk: blk}, err
	}
	// The rightmost parent of leaves: the root itself, or its last node.
	children := root.Ptrs
	var parent stepBlock
	if root.Level == 2 {
		if parent, err = readBlk(root.Ptrs[len(root.Ptrs)-1], 1); err != nil {
			return 0, 0, 0, refuse(err)
		}
		children = parent.blk.Ptrs
	}
	keep := uint64(2 * (d.ForkSize(ondisk.DataFork) / ondisk.BmbtRecLen))
	var leaves []stepBlock
	for i := len(children) - 1; i >= 0; i-- {
		if root.Level == 1 && i == 0 {
			break // the root keeps a leaf
		}
		leaf, err := readBlk(children[i], 0)
		if err != nil {
			return 0, 0, 0, refuse(err)
		}
		k := len(leaf.blk.Recs)
		if len(leaves) > 0 && freed+k > maxExtents {
			break
		}
		if nextents < uint64(freed+k)+keep {
			break
		}
		leaves = append(leaves, leaf)
		freed += k
	}
	if len(leaves) == 0 {
		return 0, 0, nextents, nil
	}
	freeParent := root.Level == 2 && len(leaves) == len(children)
	if freeParent && len(root.Ptrs) == 1 {
		return 0, 0, nextents, nil // cannot happen with keep > 0
	}
	leftmost := leaves[len(leaves)-1]
	var leftLeaf, leftNode stepBlock
	if s := leftmost.blk.LeftSib; s != ondisk.NullFsbno {
		if leftLeaf, err = readBlk(s, 0); err != nil {
			return 0, 0, 0, refuse(err)
		}
	}
	if freeParent {
		if s := parent.blk.LeftSib; s != ondisk.NullFsbno {
			if leftNode, err = readBlk(s, 1); err != nil {
				return 0, 0, 0, refuse(err)
			}
		}
	}
	// What is freed, highest offset first, then the leaves (and the
	// parent); the AGFs in ascending order before anything changes.
	var exts []Extent
	for _, l := range leaves {
		for i := len(l.blk.Recs) - 1; i >= 0; i-- {
			r := l.blk.Recs[i]
			off := r.StartOff
			if r.Unwritten {
				off |= ondisk.RmapOffUnwritten
			}
			exts = append(exts, Extent{AG: g.FsbToAgno(r.StartBlock), Agbno: g.FsbToAgbno(r.StartBlock), Len: r.BlockCount,
				Owner: Owner{Owner: v.Ino, Offset: off}, Fsbno: r.StartBlock, Offset: r.StartOff})
		}
	}
	bmbtBlocks := leaves
	if freeParent {
		bmbtBlocks = append(slices.Clone(leaves), parent)
	}
	for _, b := range bmbtBlocks {
		exts = append(exts, Extent{AG: g.FsbToAgno(b.fsb), Agbno: g.FsbToAgbno(b.fsb), Len: 1,
			Owner: Owner{Owner: v.Ino, Offset: ondisk.RmapOffBmbtBlock}, Fsbno: b.fsb, Bmbt: true})
	}
	for _, ag := range extentAGs(exts, agno) {
		if _, err := LockAGF(tx, g, ag); err != nil {
			return 0, 0, 0, refuse(err)
		}
	}

	// From here on the transaction changes. The freed bmbt blocks are
	// cancelled first (xfs_btree_free_block): a block the free-space
	// btrees reuse in this transaction is revived by its new owner.
	for _, b := range bmbtBlocks {
		tx.Binval(b.buf)
	}
	for _, e := range exts {
		if err := a.Space.FreeExtent(tx, e.AG, e.Agbno, e.Len, e.Owner); err != nil {
			return 0, 0, 0, fmt.Errorf("inode %d: truncating: freeing %s: %w", v.Ino, describe(e), err)
		}
		blocks += uint64(e.Len)
	}
	if leftLeaf.buf != nil {
		ondisk.LongBlockRightSib.Set(leftLeaf.buf.Data, ondisk.NullFsbno)
		ondisk.LogFields(tx, leftLeaf.buf, ondisk.LongBlockRightSib)
	}
	switch {
	case root.Level == 1:
		n := len(root.Ptrs) - len(leaves)
		root.Numrecs, root.Keys, root.Ptrs = uint16(n), root.Keys[:n], root.Ptrs[:n]
	case freeParent:
		if leftNode.buf != nil {
			ondisk.LongBlockRightSib.Set(leftNode.buf.Data, ondisk.NullFsbno)
			ondisk.LogFields(tx, leftNode.buf, ondisk.LongBlockRightSib)
		}
		n := len(root.Ptrs) - 1
		root.Numrecs, root.Keys, root.Ptrs = uint16(n), root.Keys[:n], root.Ptrs[:n]
	default:
		ondisk.LongBlockNumRecs.Set(parent.buf.Data, uint64(len(children)-len(leaves)))
		ondisk.LogFields(tx, parent.buf, ondisk.LongBlockNumRecs)
	}
	root.Encode(d.ForkBytes(ondisk.DataFork))
	left = nextents - uint64(freed)
	d.SetNextents(ondisk.DataFork, left)
	d.Nblocks -= blocks
	d.Size = 0
	d.ChangeCount++
	d.EncodeCRC(raw)
	logInode(tx, ib, v.Loc.Offset, ip)
	return freed, blocks, left, nil
}
