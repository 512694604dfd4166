package btree

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Delete removes the record at the cursor (xfs_btree_delete). A block left
// with fewer than minrecs (maxrecs/2) entries takes one from its right
// sibling, else from its left one, else is joined with its left sibling if
// both fit in one block, else with its right one: the emptied block is
// freed (Blocks.Free, Tx.Binval) and the parent's entry for it deleted the
// same way, up the tree. A node root left with one child is replaced by it
// (the height drops, SetRoot); an empty leaf root stays. Afterwards the
// cursor is at the record that followed the deleted one (not Valid if there
// is none).
func (c *Cursor) Delete() error {
	t := c.t
	rec := c.Rec()
	if rec == nil {
		return fmt.Errorf("btree: %s delete: the cursor is not at a record", t.Type.Name)
	}
	key := append([]byte(nil), t.RecKey(rec)...)
	var survivors []survivor
	stat := 2
	for level := 0; stat == 2; level++ {
		var err error
		if stat, err = c.delrec(level, &survivors); err != nil {
			return err
		}
		if stat == 0 {
			return t.corrupt(c.bno[level], "cursor", c.ptr[level], nil, "delete found no entry")
		}
	}
	if len(survivors) > 0 && t.Type.Overlapping {
		// A join moved entries into a block whose parent's high key was
		// not updated (xfs_btree_delete's updkeys_force). Each block that
		// took entries is found again by its first key, and the keys on
		// its path are rewritten.
		for _, s := range survivors {
			if err := t.fixKeysOf(c.tx, s); err != nil {
				return err
			}
		}
	}
	// Where the record was: the first record above its key.
	_, err := c.lookup(key, GE)
	return err
}

// survivor is a block that took its sibling's entries in a join.
type survivor struct {
	agbno uint32
	level int
}

// fixKeysOf finds the path to a block by its first key and rewrites the
// low and high keys of every slot above it.
func (t *Tree) fixKeysOf(tx Tx, s survivor) error {
	if s.level >= t.Levels-1 {
		return nil // the root (or gone with a killed root)
	}
	bl, err := t.readBlock(tx, s.agbno, s.level)
	if err != nil || bl.numrecs() == 0 {
		return err
	}
	c := t.newCursor(tx)
	key := bl.entryKey(1)
	agbno := t.Root
	for level := t.Levels - 1; level > s.level; level-- {
		pb, err := t.readBlock(tx, agbno, level)
		if err != nil {
			return err
		}
		c.bno[level] = agbno
		p := 1
		for p < pb.numrecs() && t.Cmp(pb.entryKey(p+1), key) <= 0 {
			p++
		}
		c.ptr[level] = p
		agbno = pb.ptr(p)
	}
	if agbno != s.agbno {
		return t.corrupt(s.agbno, "first key", fmt.Sprintf("%x", key), nil, "the block is not reached by a lookup of its first key")
	}
	c.bno[s.level] = agbno
	return c.updkeysOverlapped(s.level, true)
}

// decCursor is xfs_btree_dec_cursor.
func (c *Cursor) decCursor(level int) error {
	if level > 0 {
		_, err := c.decrement(level)
		return err
	}
	return nil
}

// delrec deletes the entry at the cursor's position at level and
// rebalances (xfs_btree_delrec): 0 nothing there, 1 done, 2 a join was
// made and the parent's entry at the cursor must go too.
func (c *Cursor) delrec(level int, survivors *[]survivor) (int, error) {
	t := c.t
	tx := c.tx
	null := uint32(ondisk.NullAgbno)
	ptr := c.ptr[level]
	if ptr == 0 {
		return 0, nil
	}
	bl, err := c.block(level)
	if err != nil {
		return 0, err
	}
	n := bl.numrecs()
	if ptr > n {
		return 0, nil
	}
	if ptr < n {
		moveEntries(bl, ptr, bl, ptr+1, n-ptr)
		t.logEntries(tx, bl, ptr, n-1)
	}
	n--
	bl.setNumrecs(n)
	t.logHdr(tx, bl, hdrNumrecs)

	if level == c.nlevels-1 {
		// The root: a node with one child gives way to the child.
		if n == 1 && level > 0 {
			if err := c.killRoot(bl, level); err != nil {
				return 0, err
			}
		} else if level > 0 {
			if err := c.decCursor(level); err != nil {
				return 0, err
			}
		}
		return 1, nil
	}
	if t.needsKeyUpdate(ptr) {
		if err := c.updateKeys(level); err != nil {
			return 0, err
		}
	}
	if n >= t.minrecs(level) {
		return 1, c.decCursor(level)
	}

	rptr, lptr := bl.rightsib(), bl.leftsib()
	if rptr == null && lptr == null {
		return 0, t.corrupt(bl.agbno, "bb_leftsib", lptr, nil, "a block below the root without siblings")
	}
	cptr := bl.agbno
	tcur := c.dup()
	var lrecs, rrecs int
	if rptr != null {
		// Take the right sibling's first entry if it can spare one.
		tcur.ptr[level] = n
		if ok, err := tcur.increment(level); err != nil || !ok || tcur.bno[level] != rptr {
			if err == nil {
				err = t.corrupt(bl.agbno, "bb_rightsib", rptr, nil, "the right sibling is not the next block through the parents")
			}
			return 0, err
		}
		right, err := tcur.block(level)
		if err != nil {
			return 0, err
		}
		tcur.ptr[level] = right.numrecs()
		if right.numrecs()-1 >= t.minrecs(level) {
			ok, err := tcur.lshift(level)
			if err != nil {
				return 0, err
			}
			if ok {
				return 1, c.decCursor(level)
			}
		}
		rrecs = right.numrecs()
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
		if ok, err := tcur.decrement(level); err != nil || !ok || tcur.bno[level] != lptr {
			if err == nil {
				err = t.corrupt(bl.agbno, "bb_leftsib", lptr, nil, "the left sibling is not the previous block through the parents")
			}
			return 0, err
		}
		tcur.ptr[level] = 1
		left, err := tcur.block(level)
		if err != nil {
			return 0, err
		}
		if left.numrecs()-1 >= t.minrecs(level) {
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
		lrecs = left.numrecs()
	}

	// Join: everything of "right" moves to the end of "left".
	var left, right *block
	switch {
	case lptr != null && lrecs+n <= t.maxrecs(level):
		right = bl
		if left, err = t.readBlock(tx, lptr, level); err != nil {
			return 0, err
		}
	case rptr != null && rrecs+n <= t.maxrecs(level):
		left = bl
		if right, err = t.readBlock(tx, rptr, level); err != nil {
			return 0, err
		}
	default:
		// Cannot rebalance; not fatal (the kernel gives up the same way).
		return 1, c.decCursor(level)
	}
	rrecs, lrecs = right.numrecs(), left.numrecs()
	moveEntries(left, lrecs+1, right, 1, rrecs)
	t.logEntries(tx, left, lrecs+1, lrecs+rrecs)
	left.setNumrecs(lrecs + rrecs)
	left.setRightsib(right.rightsib())
	t.logHdr(tx, left, hdrNumrecs|hdrRightsib)
	if rr := left.rightsib(); rr != null {
		rrb, err := t.readBlock(tx, rr, level)
		if err != nil {
			return 0, err
		}
		rrb.setLeftsib(left.agbno)
		t.logHdr(tx, rrb, hdrLeftsib)
	}
	if err := t.freeBlock(tx, right); err != nil {
		return 0, err
	}
	*survivors = append(*survivors, survivor{left.agbno, level})
	if left.agbno != cptr {
		// Joined into the left sibling: the cursor follows its entries.
		c.bno[level] = left.agbno
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

// killRoot replaces a node root that has one child by the child
// (xfs_btree_kill_root).
func (c *Cursor) killRoot(root *block, level int) error {
	t := c.t
	child := root.ptr(1)
	if err := t.setRoot(c.tx, child, level); err != nil {
		return err
	}
	if err := t.freeBlock(c.tx, root); err != nil {
		return err
	}
	c.bno[level] = 0
	c.ptr[level] = 0
	c.nlevels--
	return nil
}
