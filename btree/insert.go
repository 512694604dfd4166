package btree

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Insert adds a record (xfs_btree_insert after an EQ lookup): ErrExists if
// a record with its key is there. A full block first gives an entry to its
// right sibling, else to its left one, else is split in two (a new block
// from Blocks.Alloc near it takes the upper half); a split root gets a new
// root above it (SetRoot).
func (t *Tree) Insert(tx Tx, rec []byte) error {
	if len(rec) != t.Type.RecLen {
		return fmt.Errorf("btree: %s record of %d bytes, want %d", t.Type.Name, len(rec), t.Type.RecLen)
	}
	c, found, err := t.Lookup(tx, t.RecKey(rec), EQ)
	if err != nil {
		return err
	}
	if found {
		return fmt.Errorf("%s AG %d key %x: %w", t.Type.Name, t.AG, t.RecKey(rec), ErrExists)
	}
	return c.insert(rec)
}

// insert is the level loop of xfs_btree_insert: each level's insertion
// may split the block and hand the next level a new entry (and a cursor
// at the new block's parent slot).
func (c *Cursor) insert(rec []byte) error {
	pcur := c
	key := c.t.slotKey(rec)
	nptr := uint32(ondisk.NullAgbno)
	for level := 0; ; level++ {
		var ncur *Cursor
		var err error
		nptr, key, ncur, err = pcur.insrec(level, nptr, rec, key)
		if err != nil {
			return err
		}
		if ncur != nil {
			pcur = ncur
		}
		if nptr == ondisk.NullAgbno {
			return nil
		}
	}
}

// insrec inserts one entry at level (xfs_btree_insrec): the record rec at
// the leaf, the slot key and pointer ptrIn above. It returns the new block
// and its slot key when the block was split, with the cursor to use above.
func (c *Cursor) insrec(level int, ptrIn uint32, rec, key []byte) (nptr uint32, nkey []byte, ncur *Cursor, err error) {
	t := c.t
	nptr = uint32(ondisk.NullAgbno)
	if level >= c.nlevels {
		return nptr, nil, nil, c.newRoot()
	}
	ptr := c.ptr[level]
	if ptr == 0 {
		return nptr, nil, nil, t.corrupt(c.bno[level], "cursor", 0, nil, "insert before the first entry")
	}
	optr := ptr
	oldBno := c.bno[level]
	bl, err := c.block(level)
	if err != nil {
		return nptr, nil, nil, err
	}
	if bl.numrecs() == t.maxrecs(level) {
		// xfs_btree_make_block_unfull: rshift, lshift, split.
		ok, err := c.rshift(level)
		if err != nil {
			return nptr, nil, nil, err
		}
		if !ok {
			if ok, err = c.lshift(level); err != nil {
				return nptr, nil, nil, err
			}
			if ok {
				optr, ptr = c.ptr[level], c.ptr[level]
			} else {
				if nptr, nkey, ncur, err = c.split(level); err != nil {
					return ondisk.NullAgbno, nil, nil, err
				}
				ptr = c.ptr[level]
			}
		}
		if bl, err = c.block(level); err != nil {
			return ondisk.NullAgbno, nil, nil, err
		}
	}
	n := bl.numrecs()
	moveEntries(bl, ptr+1, bl, ptr, n-ptr+1)
	if level > 0 {
		copy(bl.slot(ptr), key)
		bl.setPtr(ptr, ptrIn)
	} else {
		copy(bl.rec(ptr), rec)
	}
	n++
	bl.setNumrecs(n)
	t.logEntries(c.tx, bl, ptr, n)
	t.logHdr(c.tx, bl, hdrNumrecs)
	if c.bno[level] != oldBno {
		// The entry went into the new block: its slot key is recomputed.
		nkey = t.blockKeys(bl)
	} else if t.needsKeyUpdate(optr) {
		if err := c.updateKeys(level); err != nil {
			return ondisk.NullAgbno, nil, nil, err
		}
	}
	if nptr == ondisk.NullAgbno {
		return nptr, nil, nil, nil
	}
	return nptr, nkey, ncur, nil
}

// rshift moves the last entry of the cursor's block at level to the front
// of its right sibling (xfs_btree_rshift); false if there is none, it is
// full, or the cursor's entry would be the one moved.
func (c *Cursor) rshift(level int) (bool, error) {
	t := c.t
	left, err := c.block(level)
	if err != nil {
		return false, err
	}
	rsib := left.rightsib()
	if rsib == ondisk.NullAgbno {
		return false, nil
	}
	lrecs := left.numrecs()
	if c.ptr[level] >= lrecs {
		return false, nil
	}
	right, err := t.readBlock(c.tx, rsib, level)
	if err != nil {
		return false, err
	}
	rrecs := right.numrecs()
	if rrecs == t.maxrecs(level) {
		return false, nil
	}
	moveEntries(right, 2, right, 1, rrecs)
	moveEntries(right, 1, left, lrecs, 1)
	t.logEntries(c.tx, right, 1, rrecs+1)
	left.setNumrecs(lrecs - 1)
	t.logHdr(c.tx, left, hdrNumrecs)
	right.setNumrecs(rrecs + 1)
	t.logHdr(c.tx, right, hdrNumrecs)

	// A cursor at the right block updates its parent keys.
	tcur := c.dup()
	tcur.ptr[level] = lrecs - 1
	ok, err := tcur.increment(level)
	if err != nil {
		return false, err
	}
	if !ok || tcur.bno[level] != rsib {
		return false, t.corrupt(left.agbno, "bb_rightsib", rsib, nil, "the right sibling is not the next block through the parents")
	}
	if t.Type.Overlapping {
		if err := c.updateKeys(level); err != nil {
			return false, err
		}
	}
	return true, tcur.updateKeys(level)
}

// lshift moves the first entry of the cursor's block at level to the end
// of its left sibling (xfs_btree_lshift); false if there is none, it is
// full, or the cursor's entry would be the one moved.
func (c *Cursor) lshift(level int) (bool, error) {
	t := c.t
	right, err := c.block(level)
	if err != nil {
		return false, err
	}
	lsib := right.leftsib()
	if lsib == ondisk.NullAgbno || c.ptr[level] <= 1 {
		return false, nil
	}
	left, err := t.readBlock(c.tx, lsib, level)
	if err != nil {
		return false, err
	}
	lrecs := left.numrecs()
	if lrecs == t.maxrecs(level) {
		return false, nil
	}
	rrecs := right.numrecs()
	lrecs++
	rrecs--
	moveEntries(left, lrecs, right, 1, 1)
	t.logEntries(c.tx, left, lrecs, lrecs)
	left.setNumrecs(lrecs)
	t.logHdr(c.tx, left, hdrNumrecs)
	right.setNumrecs(rrecs)
	t.logHdr(c.tx, right, hdrNumrecs)
	moveEntries(right, 1, right, 2, rrecs)
	t.logEntries(c.tx, right, 1, rrecs)

	if t.Type.Overlapping {
		// A cursor at the left block updates its parent's high keys.
		tcur := c.dup()
		tcur.ptr[level] = 1
		ok, err := tcur.decrement(level)
		if err != nil {
			return false, err
		}
		if !ok || tcur.bno[level] != lsib {
			return false, t.corrupt(right.agbno, "bb_leftsib", lsib, nil, "the left sibling is not the previous block through the parents")
		}
		if err := tcur.updateKeys(level); err != nil {
			return false, err
		}
	}
	if err := c.updateKeys(level); err != nil {
		return false, err
	}
	c.ptr[level]--
	return true, nil
}

// split moves the upper half of the cursor's full block at level into a
// new right sibling (xfs_btree_split). It returns the new block, its slot
// key for the parent and, below the root, a cursor whose parent position is
// the slot after the old block's, where the new block's entry goes.
func (c *Cursor) split(level int) (uint32, []byte, *Cursor, error) {
	t := c.t
	null := uint32(ondisk.NullAgbno)
	if t.Blocks == nil {
		return null, nil, nil, fmt.Errorf("btree: %s: a split needs Blocks", t.Type.Name)
	}
	left, err := c.block(level)
	if err != nil {
		return null, nil, nil, err
	}
	lbno := left.agbno
	rbno, err := t.Blocks.Alloc(c.tx, lbno)
	if err != nil {
		return null, nil, nil, err
	}
	if !t.validPtr(uint64(rbno)) {
		return null, nil, nil, fmt.Errorf("btree: %s AG %d: allocated block %d is not a block of the AG", t.Type.Name, t.AG, rbno)
	}
	right, err := t.newBlock(c.tx, rbno, level, 0)
	if err != nil {
		return null, nil, nil, err
	}
	lrecs := left.numrecs()
	rrecs := lrecs / 2
	if lrecs&1 != 0 && c.ptr[level] <= rrecs+1 {
		rrecs++
	}
	src := lrecs - rrecs + 1
	lrecs -= rrecs
	left.setNumrecs(lrecs)
	right.setNumrecs(rrecs)
	moveEntries(right, 1, left, src, rrecs)
	t.logEntries(c.tx, right, 1, rrecs)
	nkey := t.blockKeys(right)

	rrbno := left.rightsib()
	right.setRightsib(rrbno)
	right.setLeftsib(lbno)
	left.setRightsib(rbno)
	t.logHdr(c.tx, right, hdrAll)
	t.logHdr(c.tx, left, hdrNumrecs|hdrRightsib)
	if rrbno != null {
		rr, err := t.readBlock(c.tx, rrbno, level)
		if err != nil {
			return null, nil, nil, err
		}
		rr.setLeftsib(rbno)
		t.logHdr(c.tx, rr, hdrLeftsib)
	}
	if t.Type.Overlapping {
		if err := c.updateKeys(level); err != nil {
			return null, nil, nil, err
		}
	}
	if c.ptr[level] > lrecs+1 {
		c.bno[level] = rbno
		c.ptr[level] -= lrecs
	}
	var ncur *Cursor
	if level+1 < c.nlevels {
		ncur = c.dup()
		ncur.ptr[level+1]++
	}
	return rbno, nkey, ncur, nil
}

// newRoot puts a new root above the split old root and its new right
// sibling (xfs_btree_new_root) and raises the height.
func (c *Cursor) newRoot() error {
	t := c.t
	nbno, err := t.Blocks.Alloc(c.tx, t.Root)
	if err != nil {
		return err
	}
	if !t.validPtr(uint64(nbno)) {
		return fmt.Errorf("btree: %s AG %d: allocated block %d is not a block of the AG", t.Type.Name, t.AG, nbno)
	}
	nb, err := t.newBlock(c.tx, nbno, c.nlevels, 2)
	if err != nil {
		return err
	}
	if err := t.setRoot(c.tx, nbno, c.nlevels+1); err != nil {
		return err
	}
	bl, err := c.block(c.nlevels - 1)
	if err != nil {
		return err
	}
	var left, right *block
	nptr := 1
	if s := bl.rightsib(); s != ondisk.NullAgbno {
		left = bl
		if right, err = t.readBlock(c.tx, s, c.nlevels-1); err != nil {
			return err
		}
	} else {
		right, nptr = bl, 2
		if left, err = t.readBlock(c.tx, bl.leftsib(), c.nlevels-1); err != nil {
			return err
		}
	}
	t.logHdr(c.tx, nb, hdrAll)
	copy(nb.slot(1), t.blockKeys(left))
	copy(nb.slot(2), t.blockKeys(right))
	t.logKeys(c.tx, nb, 1, 2)
	nb.setPtr(1, left.agbno)
	nb.setPtr(2, right.agbno)
	bs := len(nb.d)
	c.tx.LogRange(nb.b, t.Type.PtrOff(bs, 0), t.Type.PtrOff(bs, 2)-1)
	c.bno[c.nlevels] = nbno
	c.ptr[c.nlevels] = nptr
	c.nlevels++
	return nil
}
