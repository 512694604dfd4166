package bmbt

import "github.com/xfsfree/xfsfree/ondisk"

// delete removes the record at the cursor (xfs_btree_delete): a block
// left with fewer than minrecs entries takes one from its right sibling,
// else its left one, else is joined with its left sibling if both fit in
// one block, else with its right one, the emptied block freed and the
// parent's entry for it deleted the same way, up the tree; the root's
// only child is pulled back into the inode when its entries fit there
// (xfs_btree_kill_iroot). The cursor is not valid afterwards.
func (c *cursor) delete() error {
	if _, ok := c.rec(); !ok {
		return c.f.corrupt(c.nodes[0].fsb, "cursor", c.ptr[0], nil, "delete at no record")
	}
	for level := 0; ; level++ {
		stat, err := c.delrec(level)
		if err != nil {
			return err
		}
		if stat == 0 {
			return c.f.corrupt(c.nodes[level].fsb, "cursor", c.ptr[level], nil, "delete found no entry")
		}
		if stat != 2 {
			return nil
		}
	}
}

// decCursor is xfs_btree_dec_cursor.
func (c *cursor) decCursor(level int) error {
	if level > 0 && level < c.nlevels {
		_, err := c.decrement(level)
		return err
	}
	return nil
}

// delrec deletes the entry at the cursor's position at level and
// rebalances (xfs_btree_delrec): 0 nothing there, 1 done, 2 a join was
// made and the parent's entry at the cursor must go too.
func (c *cursor) delrec(level int) (int, error) {
	f := c.f
	ptr := c.ptr[level]
	if ptr == 0 {
		return 0, nil
	}
	n := c.nodes[level]
	if ptr > n.count() {
		return 0, nil
	}
	n.removeAt(ptr, 1)
	numrecs := n.count()
	if n.root {
		// The root in the inode: pull its only child back in if that
		// fits.
		if err := c.killIroot(); err != nil {
			return 0, err
		}
		return 1, c.decCursor(level)
	}
	if ptr == 1 {
		c.updateKeys(level)
	}
	if numrecs >= f.minrecs(level) {
		return 1, c.decCursor(level)
	}
	rptr, lptr := n.blk.RightSib, n.blk.LeftSib
	null := ondisk.NullFsbno
	if rptr == null && lptr == null && level == c.nlevels-2 {
		// The root's only child: it may move into the inode.
		if err := c.killIroot(); err != nil {
			return 0, err
		}
		return 1, c.decCursor(level)
	}
	if rptr == null && lptr == null {
		return 0, f.corrupt(n.fsb, "bb_leftsib", lptr, nil, "a block below the root's children without siblings")
	}
	tcur := c.dup()
	var lrecs, rrecs int
	if rptr != null {
		// Take the right sibling's first entry if it can spare one.
		tcur.ptr[level] = numrecs
		ok, err := tcur.increment(level)
		if err != nil {
			return 0, err
		}
		if !ok || tcur.nodes[level].fsb != rptr {
			return 0, f.corrupt(n.fsb, "bb_rightsib", rptr, nil, "the right sibling is not the next block through the parents")
		}
		right := tcur.nodes[level]
		tcur.ptr[level] = right.count()
		if right.count()-1 >= f.minrecs(level) {
			ok, err := tcur.lshift(level)
			if err != nil {
				return 0, err
			}
			if ok {
				return 1, c.decCursor(level)
			}
		}
		rrecs = right.count()
		if lptr != null {
			tcur.ptr[level] = 1
			if _, err := tcur.decrement(level); err != nil {
				return 0, err
			}
		}
	}
	if lptr != null {
		// Take the left sibling's last entry if it can spare one.
		tcur.ptr[level] = 1
		ok, err := tcur.decrement(level)
		if err != nil {
			return 0, err
		}
		if !ok || tcur.nodes[level].fsb != lptr {
			return 0, f.corrupt(n.fsb, "bb_leftsib", lptr, nil, "the left sibling is not the previous block through the parents")
		}
		tcur.ptr[level] = 1
		left := tcur.nodes[level]
		if left.count()-1 >= f.minrecs(level) {
			ok, err := tcur.rshift(level)
			if err != nil {
				return 0, err
			}
			if ok {
				if level == 0 {
					c.ptr[0]++
				}
				return 1, nil
			}
		}
		lrecs = left.count()
	}
	// Join: everything of "right" moves to the end of "left".
	maxrecs := f.maxrecs(n)
	var left, right *node
	var err error
	switch {
	case lptr != null && lrecs+numrecs <= maxrecs:
		right = n
		if left, err = f.read(lptr, level); err != nil {
			return 0, err
		}
	case rptr != null && rrecs+numrecs <= maxrecs:
		left = n
		if right, err = f.read(rptr, level); err != nil {
			return 0, err
		}
	default:
		// Cannot rebalance; not fatal (the kernel gives up the same way).
		return 1, c.decCursor(level)
	}
	lrecs = left.count()
	moved := right.removeAt(1, right.count())
	left.insertAt(lrecs+1, moved...)
	left.blk.RightSib = right.blk.RightSib
	left.dirty = true
	if rr := left.blk.RightSib; rr != null {
		rrn, err := f.read(rr, level)
		if err != nil {
			return 0, err
		}
		rrn.blk.LeftSib = left.fsb
		rrn.dirty = true
	}
	f.freeBlock(right)
	if left != n {
		// Joined into the left sibling: the cursor follows its entries.
		c.nodes[level] = left
		c.ptr[level] += lrecs
	} else if level+1 < c.nlevels {
		// The right sibling went: the parent's entry to delete is its.
		if _, err := c.increment(level + 1); err != nil {
			return 0, err
		}
	}
	if level > 0 {
		c.ptr[level]--
	}
	return 2, nil
}

// killIroot moves the entries of the root's only child into the root when
// they fit there, freeing the child, unless the root's children are
// leaves (the fork then becomes an extents fork instead:
// xfs_btree_kill_iroot).
func (c *cursor) killIroot() error {
	f := c.f
	level := c.nlevels - 1
	if level == 1 {
		return nil
	}
	root := f.rootNode
	if root.count() != 1 {
		return nil
	}
	child := c.nodes[level-1]
	if child == nil || child.fsb != root.ptr(1) {
		var err error
		if child, err = f.read(root.ptr(1), level-1); err != nil {
			return err
		}
	}
	if child.count() > f.maxrecs(root) {
		return nil
	}
	root.blk.Keys = append([]uint64(nil), child.blk.Keys...)
	root.blk.Ptrs = append([]uint64(nil), child.blk.Ptrs...)
	root.blk.Level--
	root.dirty = true
	f.freeBlock(child)
	// The root now holds the child's entries, at the child's level: the
	// cursor keeps the child's position there.
	c.nodes[level-1] = root
	c.nodes[level] = nil
	c.nlevels--
	return nil
}
