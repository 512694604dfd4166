package btree

import "fmt"

// QueryOverlap calls fn with every record of an overlapping btree (the
// rmapbt) whose key range meets [low, high]: its low key <= high and its
// high key >= low, in key order, as the kernel's
// xfs_btree_overlapped_query_range finds them: a node's slot is followed
// only if its low key <= high and its high key >= low, and a block is left
// at its first entry whose low key exceeds high. fn returns true to stop.
// The blocks are read through tx (joined to it).
func (t *Tree) QueryOverlap(tx Tx, low, high []byte, fn func(rec []byte) (stop bool, err error)) error {
	if err := t.checkTx(tx); err != nil {
		return err
	}
	if !t.Type.Overlapping || t.RecHighKey == nil {
		return fmt.Errorf("btree: %s: QueryOverlap on a btree without high keys", t.Type.Name)
	}
	kl := t.Type.KeyLen
	n := t.Levels
	bno := make([]uint32, n)
	ptr := make([]int, n)
	level := n - 1
	bno[level], ptr[level] = t.Root, 1
	for level < n {
		bl, err := t.readBlock(tx, bno[level], level)
		if err != nil {
			return err
		}
		if ptr[level] > bl.numrecs() {
			// End of the block: back up towards the root.
			if level < n-1 {
				ptr[level+1]++
			}
			level++
			continue
		}
		if level == 0 {
			rec := bl.rec(ptr[level])
			if t.Cmp(high, t.RecKey(rec)) < 0 {
				if level < n-1 {
					ptr[level+1]++
				}
				level++
				continue
			}
			if t.Cmp(t.RecHighKey(nil, rec), low) >= 0 {
				stop, err := fn(append([]byte(nil), rec...))
				if err != nil || stop {
					return err
				}
			}
			ptr[level]++
			continue
		}
		s := bl.slot(ptr[level])
		if t.Cmp(high, s[:kl]) < 0 {
			if level < n-1 {
				ptr[level+1]++
			}
			level++
			continue
		}
		if t.Cmp(s[kl:], low) >= 0 {
			child := bl.ptr(ptr[level])
			level--
			bno[level], ptr[level] = child, 1
			continue
		}
		ptr[level]++
	}
	return nil
}
