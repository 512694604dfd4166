package btree

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Update replaces the record at the cursor (xfs_btree_update) and logs it;
// if it is the block's first record (or always, for overlapping btrees,
// whose high keys can come from any record) the parent keys follow. The
// new record must keep the records in key order: only its neighbours in
// the same block are checked.
func (c *Cursor) Update(rec []byte) error {
	t := c.t
	if len(rec) != t.Type.RecLen {
		return fmt.Errorf("btree: %s record of %d bytes, want %d", t.Type.Name, len(rec), t.Type.RecLen)
	}
	bl, err := c.block(0)
	if err != nil {
		return err
	}
	ptr, n := c.ptr[0], bl.numrecs()
	if ptr < 1 || ptr > n {
		return fmt.Errorf("btree: %s update: the cursor is not at a record", t.Type.Name)
	}
	k := t.RecKey(rec)
	if (ptr > 1 && t.Cmp(t.RecKey(bl.rec(ptr-1)), k) >= 0) || (ptr < n && t.Cmp(k, t.RecKey(bl.rec(ptr+1))) >= 0) {
		return &ondisk.CorruptError{AG: t.AG, Daddr: bl.b.Daddr, Struct: t.Type.Name + " block", Field: fmt.Sprintf("record %d", ptr-1),
			Found: fmt.Sprintf("%x", k), Msg: "update would put the records out of key order"}
	}
	copy(bl.rec(ptr), rec)
	t.logEntries(c.tx, bl, ptr, ptr)
	if t.needsKeyUpdate(ptr) {
		return c.updateKeys(0)
	}
	return nil
}
