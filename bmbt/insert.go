package bmbt

import "github.com/xfsfree/xfsfree/ondisk"

// insert adds record r at the cursor's position (xfs_btree_insert after a
// lookup that found no record with its key): each level's insertion may
// make room by shifting an entry to a sibling or splitting the block, and
// hand the next level the new block's entry; a full root gets a new block
// under it (xfs_btree_new_iroot). The cursor is not valid afterwards.
func (c *cursor) insert(r ondisk.BmbtIrec) error {
	pcur := c
	e := entry{rec: r, key: r.StartOff}
	for level := 0; ; level++ {
		ne, ncur, split, err := pcur.insrec(level, e)
		if err != nil {
			return err
		}
		if ncur != nil {
			pcur = ncur
		}
		if !split {
			return nil
		}
		e = ne
	}
}

// insrec is xfs_btree_insrec: it inserts e at the cursor's position at
// level and returns, when a block was split, the entry for the new block
// (its first key and its block) and the cursor to use a level up.
func (c *cursor) insrec(level int, e entry) (ne entry, ncur *cursor, split bool, err error) {
	f := c.f
	ptr := c.ptr[level]
	if ptr == 0 {
		return ne, nil, false, f.corrupt(c.nodes[level].fsb, "cursor", 0, nil, "insert before the first entry")
	}
	optr := ptr
	old := c.nodes[level]
	n := old
	if n.count() >= f.maxrecs(n) {
		// xfs_btree_make_block_unfull.
		if n.root {
			if err := c.newIroot(); err != nil {
				return ne, nil, false, err
			}
		} else if ok, err := c.rshift(level); err != nil {
			return ne, nil, false, err
		} else if !ok {
			ok, err := c.lshift(level)
			if err != nil {
				return ne, nil, false, err
			}
			if ok {
				optr, ptr = c.ptr[level], c.ptr[level]
			} else {
				if ne, ncur, err = c.split(level); err != nil {
					return ne, nil, false, err
				}
				split = true
				ptr = c.ptr[level]
			}
		}
		n = c.nodes[level]
	}
	if level == 0 {
		n.insertAt(ptr, entry{rec: e.rec})
	} else {
		n.insertAt(ptr, entry{key: e.key, ptr: e.ptr})
	}
	if n != old && !old.root {
		// Inserted into the new block of a split: its key for the
		// parent is taken afresh.
		ne.key = n.firstKey()
	} else if n == old && optr == 1 {
		c.updateKeys(level)
	}
	return ne, ncur, split, nil
}

// rshift moves the last entry of the cursor's block at level to the front
// of its right sibling (xfs_btree_rshift): false if there is none, it is
// full, or the entry would be the cursor's.
func (c *cursor) rshift(level int) (bool, error) {
	f := c.f
	left := c.nodes[level]
	if left.root || left.blk.RightSib == ondisk.NullFsbno {
		return false, nil
	}
	lrecs := left.count()
	if c.ptr[level] >= lrecs {
		return false, nil
	}
	right, err := f.read(left.blk.RightSib, level)
	if err != nil {
		return false, err
	}
	if right.count() >= f.maxrecs(right) {
		return false, nil
	}
	moved := left.removeAt(lrecs, 1)
	right.insertAt(1, moved...)
	// A cursor at the right block updates its parent keys.
	tcur := c.dup()
	tcur.ptr[level] = lrecs - 1
	ok, err := tcur.increment(level)
	if err != nil {
		return false, err
	}
	if !ok || tcur.nodes[level] != right {
		return false, f.corrupt(left.fsb, "bb_rightsib", left.blk.RightSib, nil, "the right sibling is not the next block through the parents")
	}
	tcur.updateKeys(level)
	return true, nil
}

// lshift moves the first entry of the cursor's block at level to the end
// of its left sibling (xfs_btree_lshift): false if there is none, it is
// full, or the entry would be the cursor's.
func (c *cursor) lshift(level int) (bool, error) {
	f := c.f
	right := c.nodes[level]
	if right.root || right.blk.LeftSib == ondisk.NullFsbno || c.ptr[level] <= 1 {
		return false, nil
	}
	left, err := f.read(right.blk.LeftSib, level)
	if err != nil {
		return false, err
	}
	if left.count() >= f.maxrecs(left) {
		return false, nil
	}
	moved := right.removeAt(1, 1)
	left.insertAt(left.count()+1, moved...)
	c.updateKeys(level)
	c.ptr[level]--
	return true, nil
}

// split moves the upper half of the cursor's full block at level into a
// new right sibling allocated near it (xfs_btree_split), and returns the
// new block's entry for the parent and a cursor whose parent position is
// the slot after the old block's.
func (c *cursor) split(level int) (entry, *cursor, error) {
	f := c.f
	left := c.nodes[level]
	right, err := f.newBlock(left.fsb, level)
	if err != nil {
		return entry{}, nil, err
	}
	lrecs := left.count()
	rrecs := lrecs / 2
	if lrecs&1 != 0 && c.ptr[level] <= rrecs+1 {
		rrecs++
	}
	src := lrecs - rrecs + 1
	moved := left.removeAt(src, rrecs)
	right.insertAt(1, moved...)
	lrecs -= rrecs
	ne := entry{key: right.firstKey(), ptr: right.fsb}
	rr := left.blk.RightSib
	right.blk.RightSib = rr
	right.blk.LeftSib = left.fsb
	left.blk.RightSib = right.fsb
	left.dirty = true
	if rr != ondisk.NullFsbno {
		rrn, err := f.read(rr, level)
		if err != nil {
			return entry{}, nil, err
		}
		rrn.blk.LeftSib = right.fsb
		rrn.dirty = true
	}
	if c.ptr[level] > lrecs+1 {
		c.nodes[level] = right
		c.ptr[level] -= lrecs
	}
	var ncur *cursor
	if level+1 < c.nlevels {
		ncur = c.dup()
		ncur.ptr[level+1]++
	}
	return ne, ncur, nil
}

// newIroot copies the full root into a new block under it, allocated near
// the root's first child, and leaves the root one entry pointing at it
// (xfs_btree_new_iroot); the cursor's level is now the new block's.
func (c *cursor) newIroot() error {
	f := c.f
	root := f.rootNode
	level := c.nlevels - 1
	child, err := f.newBlock(root.ptr(1), level)
	if err != nil {
		return err
	}
	child.blk.Keys = append([]uint64(nil), root.blk.Keys...)
	child.blk.Ptrs = append([]uint64(nil), root.blk.Ptrs...)
	root.blk.Level++
	root.blk.Keys = []uint64{child.firstKey()}
	root.blk.Ptrs = []uint64{child.fsb}
	root.dirty = true
	c.grow()
	c.nlevels++
	c.nodes[level+1] = root
	c.ptr[level+1] = 1
	c.nodes[level] = child
	return nil
}
