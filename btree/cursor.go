package btree

// The modifying cursor: a path from the root to a leaf record, with the
// kernel's xfs_btree_cur positions (1-based: 0 is before the first entry,
// numrecs+1 after the last). Blocks are read through the transaction,
// which keeps every buffer it handed out joined and locked until it ends,
// so the cursor holds block numbers, not buffers.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

var be = binary.BigEndian

// LookupDir says which record a lookup positions the cursor at
// (XFS_LOOKUP_LE, _EQ, _GE).
type LookupDir int

// Lookup directions.
const (
	LE LookupDir = iota // the last record whose key is <= the key
	EQ                  // the record whose key equals the key, else where it would be inserted
	GE                  // the first record whose key is >= the key
)

// ErrExists is returned by Insert when a record with the same key exists.
var ErrExists = errors.New("btree: a record with this key exists")

// Cursor is a position in a btree within one transaction (struct
// xfs_btree_cur). It is valid until the transaction ends or another change
// is made to the btree through something other than this cursor.
type Cursor struct {
	t       *Tree
	tx      Tx
	nlevels int
	bno     []uint32 // the block at each level (0: leaf)
	ptr     []int    // the 1-based entry at each level

	// The memory of bno and ptr for the usual heights: one allocation
	// per cursor instead of three.
	bnoA [cursorLevels]uint32
	ptrA [cursorLevels]int
}

// cursorLevels is the height a cursor holds without more allocations.
const cursorLevels = 10

// Short-form header fields, as the kernel's XFS_BB_* log bits.
const (
	hdrNumrecs  = ondisk.ShortBlockNumRecs
	hdrLeftsib  = ondisk.ShortBlockLeftSib
	hdrRightsib = ondisk.ShortBlockRightSib
	hdrAll      = ondisk.ShortBlockMagic | ondisk.ShortBlockLevel | ondisk.ShortBlockNumRecs | ondisk.ShortBlockLeftSib |
		ondisk.ShortBlockRightSib | ondisk.ShortBlockBlkno | ondisk.ShortBlockLsn | ondisk.ShortBlockUUID |
		ondisk.ShortBlockOwner | ondisk.ShortBlockCrc
)

// The header fields a change reads and writes in place.
var (
	fLevel    = ondisk.ShortBlockLevel.Field()
	fNumrecs  = ondisk.ShortBlockNumRecs.Field()
	fLeftsib  = ondisk.ShortBlockLeftSib.Field()
	fRightsib = ondisk.ShortBlockRightSib.Field()
)

// block is one btree block joined to the transaction.
type block struct {
	agbno uint32
	b     *cache.Buf
	d     []byte
	t     *Tree
}

func (bl *block) level() int           { return int(fLevel.Uint(bl.d)) }
func (bl *block) numrecs() int         { return int(fNumrecs.Uint(bl.d)) }
func (bl *block) setNumrecs(n int)     { fNumrecs.PutUint(bl.d, uint64(n)) }
func (bl *block) leftsib() uint32      { return uint32(fLeftsib.Uint(bl.d)) }
func (bl *block) rightsib() uint32     { return uint32(fRightsib.Uint(bl.d)) }
func (bl *block) setLeftsib(a uint32)  { fLeftsib.PutUint(bl.d, uint64(a)) }
func (bl *block) setRightsib(a uint32) { fRightsib.PutUint(bl.d, uint64(a)) }

// rec returns leaf record i (1-based).
func (bl *block) rec(i int) []byte {
	o := bl.t.Type.RecOff(i - 1)
	return bl.d[o : o+bl.t.Type.RecLen]
}

// slot returns node key slot i (1-based): the key, or the low and high keys
// of an overlapping btree.
func (bl *block) slot(i int) []byte {
	o := bl.t.Type.KeyOff(i - 1)
	return bl.d[o : o+bl.t.Type.KeySlotLen()]
}

func (bl *block) ptr(i int) uint32 {
	return be.Uint32(bl.d[bl.t.Type.PtrOff(len(bl.d), i-1):])
}

func (bl *block) setPtr(i int, p uint32) {
	be.PutUint32(bl.d[bl.t.Type.PtrOff(len(bl.d), i-1):], p)
}

// entryKey is the (low) key of entry i.
func (bl *block) entryKey(i int) []byte {
	if bl.level() == 0 {
		return bl.t.RecKey(bl.rec(i))
	}
	return bl.slot(i)[:bl.t.Type.KeyLen]
}

// moveEntries copies n entries (records, or keys and pointers) of src
// starting at from to dst starting at to; src and dst may be the same
// block (copy handles the overlap).
func moveEntries(dst *block, to int, src *block, from, n int) {
	if n <= 0 {
		return
	}
	t := src.t
	if src.level() == 0 {
		rl := t.Type.RecLen
		copy(dst.d[t.Type.RecOff(to-1):t.Type.RecOff(to-1)+n*rl], src.d[t.Type.RecOff(from-1):])
		return
	}
	kl := t.Type.KeySlotLen()
	copy(dst.d[t.Type.KeyOff(to-1):t.Type.KeyOff(to-1)+n*kl], src.d[t.Type.KeyOff(from-1):])
	bs := len(src.d)
	copy(dst.d[t.Type.PtrOff(bs, to-1):t.Type.PtrOff(bs, to-1)+n*ondisk.ShortPtrLen], src.d[t.Type.PtrOff(bs, from-1):])
}

// logEntries logs entries first..last (records, or keys and pointers).
func (t *Tree) logEntries(tx Tx, bl *block, first, last int) {
	if first > last {
		return
	}
	if bl.level() == 0 {
		tx.LogRange(bl.b, t.Type.RecOff(first-1), t.Type.RecOff(last)-1)
		return
	}
	t.logKeys(tx, bl, first, last)
	bs := len(bl.d)
	tx.LogRange(bl.b, t.Type.PtrOff(bs, first-1), t.Type.PtrOff(bs, last)-1)
}

func (t *Tree) logKeys(tx Tx, bl *block, first, last int) {
	tx.LogRange(bl.b, t.Type.KeyOff(first-1), t.Type.KeyOff(last)-1)
}

// logHdr logs header fields (xfs_btree_log_block).
func (t *Tree) logHdr(tx Tx, bl *block, fields ondisk.ShortBlockFields) {
	ondisk.LogFields(tx, bl.b, fields)
}

func (t *Tree) maxrecs(level int) int { return t.Type.MaxRecs(int(t.G.BlockSize), level == 0) }
func (t *Tree) minrecs(level int) int { return t.maxrecs(level) / 2 }

// readBlock reads a block of the btree through the transaction and checks
// its level (when level >= 0) and that numrecs fits.
func (t *Tree) readBlock(tx Tx, agbno uint32, level int) (*block, error) {
	if !t.validPtr(uint64(agbno)) {
		return nil, t.corrupt(agbno, "block pointer", agbno, nil, "is not a block of the AG")
	}
	d := t.G.AgbToDaddr(t.AG, agbno)
	b, err := tx.ReadBuf(d, t.G.BlockBBs(), t.Kind, ondisk.VerifyCtx{G: t.G, AG: t.AG, Daddr: d})
	if err != nil {
		return nil, err
	}
	if err := t.Type.CheckNumRecs(b.Data); err != nil {
		return nil, ondisk.SetLocation(err, t.AG, d)
	}
	bl := &block{agbno: agbno, b: b, d: b.Data, t: t}
	if level >= 0 && bl.level() != level {
		return nil, t.corrupt(agbno, "bb_level", bl.level(), level, "")
	}
	return bl, nil
}

// newBlock gets a freshly allocated block and initialises its header as
// xfs_btree_init_block does: magic, level, numrecs, NULL siblings, blkno,
// LSN 0, uuid, owner. The caller logs it.
func (t *Tree) newBlock(tx Tx, agbno uint32, level, numrecs int) (*block, error) {
	d := t.G.AgbToDaddr(t.AG, agbno)
	b, err := tx.GetBuf(d, t.G.BlockBBs(), t.Kind)
	if err != nil {
		return nil, err
	}
	h := ondisk.ShortBlockHdr{Magic: t.Type.Magic, Level: uint16(level), NumRecs: uint16(numrecs),
		LeftSib: ondisk.NullAgbno, RightSib: ondisk.NullAgbno, Blkno: uint64(d), UUID: t.G.BlockUUID, Owner: t.AG}
	h.Encode(b.Data)
	return &block{agbno: agbno, b: b, d: b.Data, t: t}, nil
}

// freeBlock gives a block back (xfs_btree_free_block): Blocks.Free, then
// the buffer is cancelled.
func (t *Tree) freeBlock(tx Tx, bl *block) error {
	if err := t.Blocks.Free(tx, bl.agbno); err != nil {
		return err
	}
	tx.Binval(bl.b)
	return nil
}

// setRoot records a new root (xfs_*bt_set_root).
func (t *Tree) setRoot(tx Tx, root uint32, levels int) error {
	t.Root, t.Levels = root, levels
	if t.SetRoot != nil {
		return t.SetRoot(tx, root, levels)
	}
	return nil
}

// slotKey returns a record's key as a node slot (low and high keys for
// overlapping btrees), a copy.
func (t *Tree) slotKey(rec []byte) []byte {
	k := append([]byte(nil), t.RecKey(rec)...)
	if t.Type.Overlapping {
		k = t.RecHighKey(k, rec)
	}
	return k
}

// blockKeys returns the slot its parent must hold for a non-empty block
// (xfs_btree_get_keys): its first key and, for overlapping btrees, the
// greatest high key of its entries.
func (t *Tree) blockKeys(bl *block) []byte {
	kl := t.Type.KeyLen
	var k []byte
	if bl.level() == 0 {
		k = append([]byte(nil), t.RecKey(bl.rec(1))...)
	} else {
		k = append([]byte(nil), bl.slot(1)[:kl]...)
	}
	if !t.Type.Overlapping {
		return k
	}
	v := &ondisk.BtreeBlock{Type: t.Type, B: bl.d, Level: bl.level(), NumRecs: bl.numrecs()}
	return append(k, t.blockHighKey(v)...)
}

func (t *Tree) newCursor(tx Tx) *Cursor {
	n := t.Type.MaxLevels(t.G) + 1
	c := &Cursor{t: t, tx: tx, nlevels: t.Levels}
	c.setLevels(n)
	return c
}

// setLevels points bno and ptr at n levels of zeros.
func (c *Cursor) setLevels(n int) {
	if n <= cursorLevels {
		c.bnoA, c.ptrA = [cursorLevels]uint32{}, [cursorLevels]int{}
		c.bno, c.ptr = c.bnoA[:n], c.ptrA[:n]
		return
	}
	c.bno, c.ptr = make([]uint32, n), make([]int, n)
}

func (c *Cursor) dup() *Cursor {
	d := *c
	d.setLevels(len(c.bno))
	copy(d.bno, c.bno)
	copy(d.ptr, c.ptr)
	return &d
}

func (c *Cursor) block(level int) (*block, error) {
	return c.t.readBlock(c.tx, c.bno[level], level)
}

// checkTx refuses changes without what they need.
func (t *Tree) checkTx(tx Tx) error {
	if tx == nil {
		return errors.New("btree: no transaction")
	}
	if t.Type.Long {
		return fmt.Errorf("btree: %s: long-form btrees are not supported", t.Type.Name)
	}
	if t.Type.Overlapping && t.RecHighKey == nil {
		return fmt.Errorf("btree: %s: overlapping btree without RecHighKey", t.Type.Name)
	}
	if t.Levels < 1 || t.Levels > t.Type.MaxLevels(t.G) {
		return &ondisk.CorruptError{AG: t.AG, Daddr: -1, Struct: t.Type.Name, Field: "levels", Found: t.Levels,
			Msg: fmt.Sprintf("outside 1..%d", t.Type.MaxLevels(t.G))}
	}
	return nil
}

// Lookup positions a cursor in the transaction tx at the record dir asks
// for (xfs_btree_lookup): found reports that the cursor is at a record and,
// for EQ, that its key equals key. With EQ and no such record the cursor is
// where a record with this key would be inserted.
func (t *Tree) Lookup(tx Tx, key []byte, dir LookupDir) (cur *Cursor, found bool, err error) {
	if err := t.checkTx(tx); err != nil {
		return nil, false, err
	}
	c := t.newCursor(tx)
	found, err = c.lookup(key, dir)
	if err != nil {
		return nil, false, err
	}
	return c, found, nil
}

func (c *Cursor) lookup(key []byte, dir LookupDir) (bool, error) {
	t := c.t
	c.nlevels = t.Levels
	agbno := t.Root
	diff, keyno := 1, 0
	var bl *block
	for level := c.nlevels - 1; level >= 0; level-- {
		var err error
		if bl, err = t.readBlock(c.tx, agbno, level); err != nil {
			return false, err
		}
		c.bno[level] = agbno
		if diff == 0 {
			keyno = 1 // an exact match above: the first entry of each block below
		} else {
			n := bl.numrecs()
			if n == 0 {
				if level != 0 || c.nlevels != 1 {
					return false, t.corrupt(agbno, "bb_numrecs", 0, nil, "empty block below the root")
				}
				c.ptr[0] = 0
				if dir != LE {
					c.ptr[0] = 1
				}
				return false, nil
			}
			low, high := 1, n
			for low <= high {
				keyno = (low + high) / 2
				diff = t.Cmp(bl.entryKey(keyno), key)
				if diff < 0 {
					low = keyno + 1
				} else if diff > 0 {
					high = keyno - 1
				} else {
					break
				}
			}
		}
		if level > 0 {
			if diff > 0 && keyno > 1 {
				keyno--
			}
			c.ptr[level] = keyno
			agbno = bl.ptr(keyno)
		}
	}
	n := bl.numrecs()
	if dir != LE && diff < 0 {
		keyno++
		if dir == GE && keyno > n && bl.rightsib() != ondisk.NullAgbno {
			c.ptr[0] = keyno
			ok, err := c.increment(0)
			if err == nil && !ok {
				err = t.corrupt(bl.agbno, "bb_rightsib", bl.rightsib(), nil, "the right sibling is not reachable from the parent")
			}
			return ok, err
		}
	} else if dir == LE && diff > 0 {
		keyno--
	}
	c.ptr[0] = keyno
	if keyno == 0 || keyno > n {
		return false, nil
	}
	return dir != EQ || diff == 0, nil
}

// Valid reports whether the cursor is at a record.
func (c *Cursor) Valid() bool {
	bl, err := c.block(0)
	return err == nil && c.ptr[0] >= 1 && c.ptr[0] <= bl.numrecs()
}

// Rec returns a copy of the record at the cursor, or nil if the cursor is
// not at a record (xfs_btree_get_rec).
func (c *Cursor) Rec() []byte {
	bl, err := c.block(0)
	if err != nil || c.ptr[0] < 1 || c.ptr[0] > bl.numrecs() {
		return nil
	}
	return append([]byte(nil), bl.rec(c.ptr[0])...)
}

// Increment moves the cursor to the next record (xfs_btree_increment);
// false at the end of the btree.
func (c *Cursor) Increment() (bool, error) { return c.increment(0) }

// Decrement moves the cursor to the previous record (xfs_btree_decrement);
// false at the start of the btree.
func (c *Cursor) Decrement() (bool, error) { return c.decrement(0) }

func (c *Cursor) increment(level int) (bool, error) {
	bl, err := c.block(level)
	if err != nil {
		return false, err
	}
	if c.ptr[level]++; c.ptr[level] <= bl.numrecs() {
		return true, nil
	}
	if bl.rightsib() == ondisk.NullAgbno {
		return false, nil
	}
	// Up until a block has an entry to the right, then down its left edge.
	lev := level + 1
	for ; lev < c.nlevels; lev++ {
		pb, err := c.block(lev)
		if err != nil {
			return false, err
		}
		if c.ptr[lev]++; c.ptr[lev] <= pb.numrecs() {
			break
		}
	}
	if lev == c.nlevels {
		return false, c.t.corrupt(bl.agbno, "bb_rightsib", bl.rightsib(), nil, "the right sibling is not reachable from the parent")
	}
	for ; lev > level; lev-- {
		pb, err := c.block(lev)
		if err != nil {
			return false, err
		}
		c.bno[lev-1] = pb.ptr(c.ptr[lev])
		if _, err := c.block(lev - 1); err != nil {
			return false, err
		}
		c.ptr[lev-1] = 1
	}
	return true, nil
}

func (c *Cursor) decrement(level int) (bool, error) {
	bl, err := c.block(level)
	if err != nil {
		return false, err
	}
	if c.ptr[level]--; c.ptr[level] > 0 {
		return true, nil
	}
	if bl.leftsib() == ondisk.NullAgbno {
		return false, nil
	}
	lev := level + 1
	for ; lev < c.nlevels; lev++ {
		if c.ptr[lev]--; c.ptr[lev] > 0 {
			break
		}
	}
	if lev == c.nlevels {
		return false, c.t.corrupt(bl.agbno, "bb_leftsib", bl.leftsib(), nil, "the left sibling is not reachable from the parent")
	}
	for ; lev > level; lev-- {
		pb, err := c.block(lev)
		if err != nil {
			return false, err
		}
		c.bno[lev-1] = pb.ptr(c.ptr[lev])
		child, err := c.block(lev - 1)
		if err != nil {
			return false, err
		}
		c.ptr[lev-1] = child.numrecs()
	}
	return true, nil
}

// needsKeyUpdate is xfs_btree_needs_key_update.
func (t *Tree) needsKeyUpdate(ptr int) bool { return t.Type.Overlapping || ptr == 1 }

// updateKeys brings the parent keys of the block at level up to date,
// towards the root (xfs_btree_update_keys; the overlapping variant stops
// at the first slot that already holds the right keys).
func (c *Cursor) updateKeys(level int) error {
	if c.t.Type.Overlapping {
		return c.updkeysOverlapped(level, false)
	}
	t := c.t
	bl, err := c.block(level)
	if err != nil {
		return err
	}
	if bl.numrecs() == 0 {
		return nil
	}
	key := t.blockKeys(bl)
	ptr := 1
	for lev := level + 1; ptr == 1 && lev < c.nlevels; lev++ {
		pb, err := c.block(lev)
		if err != nil {
			return err
		}
		ptr = c.ptr[lev]
		copy(pb.slot(ptr), key)
		t.logKeys(c.tx, pb, ptr, ptr)
	}
	return nil
}

// updkeysOverlapped is __xfs_btree_updkeys: the low and high keys of the
// block at level go into its parent's slot, and so on up.
func (c *Cursor) updkeysOverlapped(level int, force bool) error {
	t := c.t
	if level+1 >= c.nlevels {
		return nil
	}
	bl, err := c.block(level)
	if err != nil {
		return err
	}
	if bl.numrecs() == 0 {
		return nil
	}
	kl := t.Type.KeyLen
	key := t.blockKeys(bl)
	for lev := level + 1; lev < c.nlevels; lev++ {
		pb, err := c.block(lev)
		if err != nil {
			return err
		}
		p := c.ptr[lev]
		if p < 1 || p > pb.numrecs() {
			return t.corrupt(pb.agbno, "cursor", p, nil, "updating keys outside the block")
		}
		s := pb.slot(p)
		if !force && t.Cmp(s[:kl], key[:kl]) == 0 && t.Cmp(s[kl:], key[kl:]) == 0 {
			break
		}
		copy(s, key)
		t.logKeys(c.tx, pb, p, p)
		if lev+1 >= c.nlevels {
			break
		}
		key = t.blockKeys(pb)
	}
	return nil
}
