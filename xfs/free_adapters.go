package xfs

// The free engine's adapters: icluster's InodeBtrees and Space over the
// btree engine and package alloc, and the busy extents of a transaction.

import (
	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// inodeBtrees is icluster.InodeBtrees over the btree engine: the AG's
// inobt and finobt as the AGI in the transaction says, their root changes
// and block counts logged in the AGI, their blocks from and to free space.
type inodeBtrees struct {
	g    *ondisk.Geometry
	c    *FS
	agno uint32
	busy alloc.BusyTracker // the transaction's busy extents (nil: none tracked)
	// The trees as built for transaction tx (the AGI and AGF are joined
	// to it, and a tree keeps its root and height up to date as it
	// changes them): built once per transaction, not per lookup.
	tx    icluster.FreeTx
	trees [2]*btree.Tree
}

func (t *inodeBtrees) tree(tx icluster.FreeTx, fin bool) (*btree.Tree, error) {
	i := 0
	if fin {
		i = 1
	}
	if t.tx != tx {
		t.tx, t.trees = tx, [2]*btree.Tree{}
	}
	if t.trees[i] == nil {
		tr, err := t.build(tx, fin)
		if err != nil {
			return nil, err
		}
		t.trees[i] = tr
	}
	return t.trees[i], nil
}

// build makes the inobt (or finobt) of the AGI joined to tx.
func (t *inodeBtrees) build(tx icluster.FreeTx, fin bool) (*btree.Tree, error) {
	agiBuf, err := icluster.LockAGI(tx, t.g, t.agno)
	if err != nil {
		return nil, err
	}
	a, err := ondisk.DecodeAGI(agiBuf.Data)
	if err != nil {
		return nil, ondisk.SetLocation(err, t.agno, agiBuf.Daddr)
	}
	tr := inobt.Tree(t.c.Cache, t.g, a, fin)
	rootF, levelF, countF := ondisk.AGIRoot, ondisk.AGILevel, ondisk.AGIIBlocks
	if fin {
		rootF, levelF, countF = ondisk.AGIFreeRoot, ondisk.AGIFreeLevel, ondisk.AGIFBlocks
	}
	tr.SetRoot = func(tx btree.Tx, root uint32, levels int) error {
		rootF.Set(agiBuf.Data, uint64(root))
		levelF.Set(agiBuf.Data, uint64(levels))
		ondisk.LogFields(tx, agiBuf, rootF|levelF)
		return nil
	}
	ag, err := alloc.ReadAG(tx, t.g, t.agno)
	if err != nil {
		return nil, err
	}
	ag.Busy = t.busy
	tr.Blocks = &alloc.InobtBlocks{AG: ag, Count: func(tx alloc.Tx, delta int) error {
		n := int64(countF.Get(agiBuf.Data)) + int64(delta)
		if n < 0 {
			return (ondisk.Where{AG: t.agno, Daddr: agiBuf.Daddr}).Corrupt("AGI", "agi_iblocks/agi_fblocks", n-int64(delta), nil, "would go below 0")
		}
		countF.Set(agiBuf.Data, uint64(n))
		ondisk.LogFields(tx, agiBuf, countF)
		return nil
	}}
	return tr, nil
}

func (t *inodeBtrees) LookupLE(tx icluster.FreeTx, fin bool, agino uint32) (ondisk.InobtRec, bool, error) {
	tr, err := t.tree(tx, fin)
	if err != nil {
		return ondisk.InobtRec{}, false, err
	}
	cur, found, err := tr.Lookup(tx, inobt.Key(agino), btree.LE)
	if err != nil || !found {
		return ondisk.InobtRec{}, false, err
	}
	r := ondisk.DecodeInobtRec(cur.Rec(), t.g.HasSparse)
	if err := inobt.CheckRec(t.g, t.agno, r, tr.Type.Name); err != nil {
		return r, false, err
	}
	return r, true, nil
}

func (t *inodeBtrees) exact(tx icluster.FreeTx, fin bool, startino uint32) (*btree.Cursor, *btree.Tree, error) {
	tr, err := t.tree(tx, fin)
	if err != nil {
		return nil, nil, err
	}
	cur, found, err := tr.Lookup(tx, inobt.Key(startino), btree.EQ)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, nil, (ondisk.Where{AG: t.agno, Daddr: -1}).Corrupt(tr.Type.Name, "record", nil, startino, "no record for the chunk")
	}
	return cur, tr, nil
}

func (t *inodeBtrees) Update(tx icluster.FreeTx, fin bool, r ondisk.InobtRec) error {
	cur, _, err := t.exact(tx, fin, r.StartIno)
	if err != nil {
		return err
	}
	rec := make([]byte, ondisk.InobtRecLen)
	r.Encode(rec, t.g.HasSparse)
	return cur.Update(rec)
}

func (t *inodeBtrees) Insert(tx icluster.FreeTx, fin bool, r ondisk.InobtRec) error {
	tr, err := t.tree(tx, fin)
	if err != nil {
		return err
	}
	rec := make([]byte, ondisk.InobtRecLen)
	r.Encode(rec, t.g.HasSparse)
	return tr.Insert(tx, rec)
}

func (t *inodeBtrees) Delete(tx icluster.FreeTx, fin bool, startino uint32) error {
	cur, _, err := t.exact(tx, fin, startino)
	if err != nil {
		return err
	}
	return cur.Delete()
}

// space is icluster.Space over package alloc.
type space struct {
	g    *ondisk.Geometry
	busy alloc.BusyTracker // the transaction's busy extents (nil: none tracked)
}

func (s *space) FreeExtent(tx icluster.FreeTx, agno, agbno, n uint32, o icluster.Owner) error {
	ag, err := alloc.ReadAG(tx, s.g, agno)
	if err != nil {
		return err
	}
	ag.Busy = s.busy
	return alloc.FreeExtent(tx, ag, agbno, n, allocOwner(o))
}

// txBusy is the busy-extent tracker of one transaction: the extents it
// frees are busy in the run's set until the transaction is durable, or
// cancelled.
type txBusy struct {
	set *alloc.Busy
	tx  *journal.Transaction
}

func (b txBusy) Add(agno, bno, n uint32) {
	e := b.set.Add(agno, bno, n)
	release := func() { b.set.Remove(e) }
	b.tx.OnCommit(release)
	b.tx.OnCancel(release)
}

func (b txBusy) Place(agno, fbno, flen, n, near uint32) (uint32, bool) {
	return b.set.Place(agno, fbno, flen, n, near)
}

func (b txBusy) Reuse() { b.set.Reuse() }

// allocOwner converts an rmap owner and offset field with flags.
func allocOwner(o icluster.Owner) alloc.Owner {
	a := alloc.Owner{Owner: o.Owner}
	if ondisk.IsInodeOwner(o.Owner) {
		a.Offset = o.Offset & ondisk.RmapOffMask
		a.Attr = o.Offset&ondisk.RmapOffAttrFork != 0
		a.Bmbt = o.Offset&ondisk.RmapOffBmbtBlock != 0
		a.Unwritten = o.Offset&ondisk.RmapOffUnwritten != 0
	}
	return a
}
