// Package bmbt owns the write side of an inode fork's block map: the
// extent list in the inode (EXTENTS format) and the block map btree
// (BTREE format: long-form blocks with 64-bit pointers, the root in the
// inode's literal area), changed as the kernel changes them — the
// generic btree code of libxfs/xfs_btree.c for an inode-rooted btree
// (lookup, insert with shifts to a sibling, splits and a new block under
// the inode root when the root is full, delete with shifts, joins and the
// root pulled back into the inode), and the fork operations of
// libxfs/xfs_bmap.c that bmap intents run: mapping an extent into a hole
// (xfs_bmapi_remap → xfs_bmap_add_extent_hole_real, merged with the
// extents it touches), unmapping a range without freeing it
// (__xfs_bunmapi with XFS_BMAPI_REMAP → xfs_bmap_del_extent_real), and
// the conversions between the two formats (xfs_bmap_extents_to_btree,
// xfs_bmap_btree_to_extents).
//
// Blocks are read through the caller's transaction, verified, owner
// checked, and changed in their decoded form; Flush encodes every changed
// block and logs it whole, and writes the fork back into the decoded
// inode, whose encoding and logging are the caller's. New blocks come
// from Blocks.Alloc (which records their owner in the rmapbt); freed
// ones are listed (Fork.Freed) for the caller to free once the operation
// is done, as the kernel frees them through deferred extent frees.
package bmbt

import (
	"fmt"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Tx is what fork changes need of a transaction: exactly what the btree
// engine needs (joined, verified reads; fresh buffers for new blocks;
// logged byte ranges; cancelled buffers of freed blocks), so it is that
// interface (journal.Transaction provides it).
type Tx = btree.Tx

// Blocks gives the btree its blocks (xfs_bmbt_alloc_block): one block
// near the filesystem block hint, recorded in the rmapbt as a bmbt block
// of the fork's inode.
type Blocks interface {
	Alloc(tx Tx, hint uint64) (fsbno uint64, err error)
}

// node is one btree block, or the root in the inode (root true: fsb 0, no
// buffer), in decoded form.
type node struct {
	fsb   uint64
	buf   *cache.Buf
	blk   *ondisk.BmbtBlock
	root  bool
	dirty bool
	freed bool
}

func (n *node) level() int { return int(n.blk.Level) }

func (n *node) count() int {
	if n.blk.Level == 0 {
		return len(n.blk.Recs)
	}
	return len(n.blk.Keys)
}

// key is the key of entry i (1-based).
func (n *node) key(i int) uint64 {
	if n.blk.Level == 0 {
		return n.blk.Recs[i-1].StartOff
	}
	return n.blk.Keys[i-1]
}

func (n *node) ptr(i int) uint64 { return n.blk.Ptrs[i-1] }

// entry is one entry of a block: a record (leaf) or a key and a pointer.
type entry struct {
	rec ondisk.BmbtIrec
	key uint64
	ptr uint64
}

func (n *node) entryAt(i int) entry {
	if n.blk.Level == 0 {
		return entry{rec: n.blk.Recs[i-1]}
	}
	return entry{key: n.blk.Keys[i-1], ptr: n.blk.Ptrs[i-1]}
}

// insertAt puts e at position i (1-based), moving the entries from i on.
func (n *node) insertAt(i int, es ...entry) {
	if n.blk.Level == 0 {
		recs := make([]ondisk.BmbtIrec, len(es))
		for j, e := range es {
			recs[j] = e.rec
		}
		n.blk.Recs = append(n.blk.Recs[:i-1], append(recs, n.blk.Recs[i-1:]...)...)
	} else {
		keys, ptrs := make([]uint64, len(es)), make([]uint64, len(es))
		for j, e := range es {
			keys[j], ptrs[j] = e.key, e.ptr
		}
		n.blk.Keys = append(n.blk.Keys[:i-1], append(keys, n.blk.Keys[i-1:]...)...)
		n.blk.Ptrs = append(n.blk.Ptrs[:i-1], append(ptrs, n.blk.Ptrs[i-1:]...)...)
	}
	n.dirty = true
}

// removeAt removes k entries from position i (1-based) and returns them.
func (n *node) removeAt(i, k int) []entry {
	out := make([]entry, k)
	for j := range out {
		out[j] = n.entryAt(i + j)
	}
	if n.blk.Level == 0 {
		n.blk.Recs = append(n.blk.Recs[:i-1], n.blk.Recs[i-1+k:]...)
	} else {
		n.blk.Keys = append(n.blk.Keys[:i-1], n.blk.Keys[i-1+k:]...)
		n.blk.Ptrs = append(n.blk.Ptrs[:i-1], n.blk.Ptrs[i-1+k:]...)
	}
	n.dirty = true
	return out
}

// firstKey is the key its parent holds for a non-empty block
// (xfs_btree_get_keys).
func (n *node) firstKey() uint64 { return n.key(1) }

// maxrecs is how many entries a block of the level holds (m_bmap_dmxr);
// the root's capacity is the fork's (xfs_bmbt_get_dmaxrecs).
func (f *Fork) maxrecs(n *node) int {
	if n.root {
		return ondisk.BmdrMaxRecs(f.D.ForkSize(f.Which))
	}
	return ondisk.BmbtMaxRecs(int(f.G.BlockSize), n.blk.Level == 0)
}

// minrecs is m_bmap_dmnr for a block below the root.
func (f *Fork) minrecs(level int) int { return ondisk.BmbtMaxRecs(int(f.G.BlockSize), level == 0) / 2 }

func (f *Fork) corrupt(fsb uint64, field string, found, want any, msg string) error {
	g := f.G
	ag, daddr := uint32(ondisk.NoAG), int64(-1)
	st := fmt.Sprintf("bmbt block of inode %d", f.Ino)
	if fsb == 0 {
		st = fmt.Sprintf("dinode %d %s root", f.Ino, forkName(f.Which))
	} else {
		ag, daddr = g.FsbToAgno(fsb), g.FsbToDaddr(fsb)
	}
	return &ondisk.CorruptError{AG: ag, Daddr: daddr, Struct: st, Field: field, Found: found, Want: want, Msg: msg}
}

func forkName(which int) string {
	if which == ondisk.AttrFork {
		return "attr fork"
	}
	return "data fork"
}

// validFsb is xfs_verify_fsbno: a block of an AG past its headers.
func (f *Fork) validFsb(fsb uint64) bool {
	g := f.G
	agno, agbno := g.FsbToAgno(fsb), g.FsbToAgbno(fsb)
	return agno < g.AGCount && g.VerifyAgbno(agno, agbno)
}

// read returns the block fsb at level, read through the transaction
// (once per fork), verified, checked to be the inode's and at level.
func (f *Fork) read(fsb uint64, level int) (*node, error) {
	if n := f.nodes[fsb]; n != nil {
		if n.freed {
			return nil, f.corrupt(fsb, "pointer", fsb, nil, "points to a block freed by this change")
		}
		if n.level() != level {
			return nil, f.corrupt(fsb, "bb_level", n.level(), level, "block reached at two levels")
		}
		return n, nil
	}
	if !f.validFsb(fsb) {
		return nil, f.corrupt(0, "pointer", fsb, nil, "is not a block of the data device past its AG's headers")
	}
	g := f.G
	agno, daddr := g.FsbToAgno(fsb), g.FsbToDaddr(fsb)
	ctx := ondisk.VerifyCtx{G: g, AG: agno, Daddr: daddr}
	b, err := f.tx.ReadBuf(daddr, g.BlockBBs(), ondisk.KindBmbt, ctx)
	if err != nil {
		return nil, ondisk.SetLocation(err, agno, daddr)
	}
	if err := ondisk.CheckBmbtOwner(b.Data, ctx, f.Ino); err != nil {
		return nil, ondisk.SetLocation(err, agno, daddr)
	}
	blk, err := ondisk.DecodeBmbtBlock(b.Data)
	if err != nil {
		return nil, ondisk.SetLocation(err, agno, daddr)
	}
	if int(blk.Level) != level {
		return nil, f.corrupt(fsb, "bb_level", blk.Level, level, "")
	}
	n := &node{fsb: fsb, buf: b, blk: blk}
	f.nodes[fsb] = n
	return n, nil
}

// newBlock allocates a block near hint and initialises its header
// (xfs_bmbt_init_block: magic, level, no records, NULL siblings, blkno,
// uuid, owner), counting it in di_nblocks (xfs_bmbt_alloc_block).
func (f *Fork) newBlock(hint uint64, level int) (*node, error) {
	fsb, err := f.Blocks.Alloc(f.tx, hint)
	if err != nil {
		return nil, err
	}
	if !f.validFsb(fsb) {
		return nil, f.corrupt(0, "new block", fsb, nil, "the allocator returned a block outside the AGs")
	}
	g := f.G
	b, err := f.tx.GetBuf(g.FsbToDaddr(fsb), g.BlockBBs(), ondisk.KindBmbt)
	if err != nil {
		return nil, err
	}
	clear(b.Data)
	blk := &ondisk.BmbtBlock{LongBlockHdr: ondisk.LongBlockHdr{Magic: ondisk.BmbtMagic, Level: uint16(level),
		LeftSib: ondisk.NullFsbno, RightSib: ondisk.NullFsbno, Blkno: uint64(g.FsbToDaddr(fsb)), UUID: g.BlockUUID, Owner: f.Ino}}
	if level == 0 {
		blk.Recs = []ondisk.BmbtIrec{}
	} else {
		blk.Keys, blk.Ptrs = []uint64{}, []uint64{}
	}
	n := &node{fsb: fsb, buf: b, blk: blk, dirty: true}
	f.nodes[fsb] = n
	f.D.Nblocks++
	f.Allocated = append(f.Allocated, fsb)
	return n, nil
}

// freeBlock gives a block back (xfs_btree_free_block → xfs_bmbt_free_block):
// di_nblocks lowered, the buffer cancelled, the block listed in Freed for
// the caller to free.
func (f *Fork) freeBlock(n *node) {
	n.freed = true
	f.tx.Binval(n.buf)
	f.D.Nblocks--
	f.Freed = append(f.Freed, n.fsb)
}

// cursor is a position in the btree (struct xfs_btree_cur): at each level
// the block and the 1-based entry; the root is level nlevels-1.
type cursor struct {
	f       *Fork
	nlevels int
	nodes   []*node
	ptr     []int
}

func (f *Fork) newCursor() *cursor {
	n := int(f.rootNode.blk.Level) + 1
	c := &cursor{f: f, nlevels: n, nodes: make([]*node, n+1), ptr: make([]int, n+1)}
	c.nodes[n-1] = f.rootNode
	return c
}

func (c *cursor) dup() *cursor {
	d := *c
	d.nodes = append([]*node(nil), c.nodes...)
	d.ptr = append([]int(nil), c.ptr...)
	return &d
}

// grow makes room for one more level in the cursor.
func (c *cursor) grow() {
	c.nodes = append(c.nodes, nil)
	c.ptr = append(c.ptr, 0)
}

// Lookup directions (XFS_LOOKUP_LE, _EQ, _GE).
type lookupDir int

const (
	lookLE lookupDir = iota
	lookEQ
	lookGE
)

// lookup positions the cursor at the record dir asks for by file offset
// (xfs_btree_lookup with xfs_bmbt_key_diff): found is whether it is at a
// record (for EQ, one starting at off).
func (c *cursor) lookup(off uint64, dir lookupDir) (bool, error) {
	f := c.f
	n := f.rootNode
	c.nlevels = n.level() + 1
	diff, keyno := int64(1), 0
	for level := c.nlevels - 1; level >= 0; level-- {
		if level < c.nlevels-1 {
			var err error
			fsb := c.nodes[level+1].ptr(c.ptr[level+1])
			if n, err = f.read(fsb, level); err != nil {
				return false, err
			}
		}
		c.nodes[level] = n
		if diff == 0 {
			keyno = 1
		} else {
			cnt := n.count()
			if cnt == 0 {
				return false, f.corrupt(n.fsb, "bb_numrecs", 0, nil, "empty block in the btree")
			}
			low, high := 1, cnt
			for low <= high {
				keyno = (low + high) / 2
				k := n.key(keyno)
				switch {
				case k < off:
					diff = -1
					low = keyno + 1
				case k > off:
					diff = 1
					high = keyno - 1
				default:
					diff = 0
				}
				if diff == 0 {
					break
				}
			}
		}
		if level > 0 {
			if diff > 0 && keyno > 1 {
				keyno--
			}
			if diff > 0 && keyno < 1 {
				keyno = 1
			}
			c.ptr[level] = keyno
		}
	}
	n = c.nodes[0]
	cnt := n.count()
	if dir != lookLE && diff < 0 {
		keyno++
		if dir == lookGE && keyno > cnt && n.blk.RightSib != ondisk.NullFsbno {
			c.ptr[0] = keyno
			ok, err := c.increment(0)
			if err == nil && !ok {
				err = f.corrupt(n.fsb, "bb_rightsib", n.blk.RightSib, nil, "the right sibling is not reachable from the parent")
			}
			return ok, err
		}
	} else if dir == lookLE && diff > 0 {
		keyno--
	}
	c.ptr[0] = keyno
	if keyno == 0 || keyno > cnt {
		return false, nil
	}
	return dir != lookEQ || diff == 0, nil
}

// rec returns the record at the cursor, ok false if it is at none.
func (c *cursor) rec() (ondisk.BmbtIrec, bool) {
	n := c.nodes[0]
	if n == nil || c.ptr[0] < 1 || c.ptr[0] > n.count() {
		return ondisk.BmbtIrec{}, false
	}
	return n.blk.Recs[c.ptr[0]-1], true
}

// increment moves the cursor to the next entry at level
// (xfs_btree_increment); false at the end.
func (c *cursor) increment(level int) (bool, error) {
	f := c.f
	n := c.nodes[level]
	if c.ptr[level]++; c.ptr[level] <= n.count() {
		return true, nil
	}
	if n.root || n.blk.RightSib == ondisk.NullFsbno {
		return false, nil
	}
	lev := level + 1
	for ; lev < c.nlevels; lev++ {
		if c.ptr[lev]++; c.ptr[lev] <= c.nodes[lev].count() {
			break
		}
	}
	if lev == c.nlevels {
		return false, f.corrupt(n.fsb, "bb_rightsib", n.blk.RightSib, nil, "the right sibling is not reachable from the parent")
	}
	for ; lev > level; lev-- {
		ch, err := f.read(c.nodes[lev].ptr(c.ptr[lev]), lev-1)
		if err != nil {
			return false, err
		}
		c.nodes[lev-1] = ch
		c.ptr[lev-1] = 1
	}
	return true, nil
}

// decrement moves the cursor to the previous entry at level
// (xfs_btree_decrement); false at the start.
func (c *cursor) decrement(level int) (bool, error) {
	f := c.f
	n := c.nodes[level]
	if c.ptr[level]--; c.ptr[level] > 0 {
		return true, nil
	}
	if n.root || n.blk.LeftSib == ondisk.NullFsbno {
		return false, nil
	}
	lev := level + 1
	for ; lev < c.nlevels; lev++ {
		if c.ptr[lev]--; c.ptr[lev] > 0 {
			break
		}
	}
	if lev == c.nlevels {
		return false, f.corrupt(n.fsb, "bb_leftsib", n.blk.LeftSib, nil, "the left sibling is not reachable from the parent")
	}
	for ; lev > level; lev-- {
		ch, err := f.read(c.nodes[lev].ptr(c.ptr[lev]), lev-1)
		if err != nil {
			return false, err
		}
		c.nodes[lev-1] = ch
		c.ptr[lev-1] = ch.count()
	}
	return true, nil
}

// updateKeys brings the parent keys of the block at level up to date,
// towards the root, while the entry changed is its block's first
// (xfs_btree_update_keys).
func (c *cursor) updateKeys(level int) {
	n := c.nodes[level]
	if n.count() == 0 {
		return
	}
	key := n.firstKey()
	ptr := 1
	for lev := level + 1; ptr == 1 && lev < c.nlevels; lev++ {
		p := c.nodes[lev]
		ptr = c.ptr[lev]
		p.blk.Keys[ptr-1] = key
		p.dirty = true
	}
}

// update replaces the record at the cursor (xfs_btree_update), and the
// parent keys if it is its block's first.
func (c *cursor) update(r ondisk.BmbtIrec) error {
	n := c.nodes[0]
	p := c.ptr[0]
	if p < 1 || p > n.count() {
		return c.f.corrupt(n.fsb, "cursor", p, nil, "update at no record")
	}
	if (p > 1 && n.blk.Recs[p-2].End() > r.StartOff) || (p < n.count() && r.End() > n.blk.Recs[p].StartOff) {
		return c.f.corrupt(n.fsb, fmt.Sprintf("record %d", p-1), r.String(), nil, "the update would overlap a neighbouring record")
	}
	n.blk.Recs[p-1] = r
	n.dirty = true
	if p == 1 {
		c.updateKeys(0)
	}
	return nil
}
