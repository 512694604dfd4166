package icluster

// Cutting the tail off a fork's block map btree, for truncation in steps
// (truncate_step.go). The kernel unmaps from the highest file offset and
// deletes each record with xfs_btree_delete, which keeps every block but
// the in-inode root's children at least half full by shifting records
// from a sibling or joining siblings, and shrinks the tree from the top
// when the root's only child fits in the inode (xfs_btree_kill_iroot).
// A tail cut here does the same along the right edge of the tree, the
// only edge it changes:
//
//  1. The last records are removed, from the rightmost leaf leftwards;
//     a block left empty is freed and its pointer removed a level up, in
//     the same way (dropTail).
//  2. Bottom up, the new rightmost block of each level below the root's
//     children that holds fewer than half its maximum joins its left
//     sibling when both fit in one block (the pointer to it removed a
//     level up), or takes the entries it lacks from the end of its left
//     sibling (its key in its parent changes) (rebalance).
//  3. While the in-inode root has one child whose entries fit in the
//     inode, the child's entries move into the root and the tree loses a
//     level (collapse).
//
// Blocks keep their place; only the rightmost block of each level, its
// left sibling and the blocks freed are touched. The new rightmost block
// of each level gets a null right sibling. Nothing is written until the
// caller applies the cut: the blocks are changed in their decoded form.

import (
	"fmt"
	"slices"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// bnode is a bmbt block read for a cut, changed in its decoded form.
type bnode struct {
	fsb   uint64
	buf   *cache.Buf
	blk   *ondisk.BmbtBlock
	dirty bool
}

func (n *bnode) count() int {
	if n.blk.Level == 0 {
		return len(n.blk.Recs)
	}
	return len(n.blk.Ptrs)
}

func (n *bnode) firstKey() uint64 {
	if n.blk.Level == 0 {
		return n.blk.Recs[0].StartOff
	}
	return n.blk.Keys[0]
}

// keep truncates the block's entries to its first k.
func (n *bnode) keep(k int) {
	if n.blk.Level == 0 {
		n.blk.Recs = n.blk.Recs[:k]
	} else {
		n.blk.Keys, n.blk.Ptrs = n.blk.Keys[:k], n.blk.Ptrs[:k]
	}
	n.blk.NumRecs = uint16(k)
	n.dirty = true
}

// cutter is one step's cut of one fork's btree. This struct does not
// represent an on-disk struct.
type cutter struct {
	a      *AG
	tx     FreeTx
	ino    uint64
	fork   int
	root   *ondisk.BmdrRoot
	nodes  map[uint64]*bnode
	right  []*bnode // right[l]: the rightmost block of level l (l < root.Level)
	freed  []*bnode // blocks the cut frees, in the order it frees them
	pieces []ondisk.BmbtIrec
}

func newCutter(a *AG, tx FreeTx, ino uint64, fork int, root *ondisk.BmdrRoot) *cutter {
	return &cutter{a: a, tx: tx, ino: ino, fork: fork, root: root, nodes: map[uint64]*bnode{}}
}

func (c *cutter) corrupt(fsb uint64, field string, found, want any, msg string) error {
	g := c.a.G
	return &ondisk.CorruptError{AG: g.FsbToAgno(fsb), Daddr: g.FsbToDaddr(fsb), Struct: fmt.Sprintf("bmbt block of inode %d", c.ino),
		Field: field, Found: found, Want: want, Msg: msg}
}

// read joins the bmbt block fsb to the transaction (once), checked to be
// the inode's and at level.
func (c *cutter) read(fsb uint64, level int) (*bnode, error) {
	g := c.a.G
	if n := c.nodes[fsb]; n != nil {
		if int(n.blk.Level) != level {
			return nil, c.corrupt(fsb, "bb_level", n.blk.Level, level, "block reached at two levels")
		}
		return n, nil
	}
	agno, agbno := g.FsbToAgno(fsb), g.FsbToAgbno(fsb)
	if agno >= g.AGCount || agbno == 0 || agbno >= g.AGSize(agno) {
		return nil, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("bmbt of inode %d", c.ino), Field: "pointer",
			Found: fsb, Msg: "is not a block of the data device"}
	}
	daddr := g.FsbToDaddr(fsb)
	ctx := ondisk.VerifyCtx{G: g, AG: agno, Daddr: daddr}
	b, err := c.tx.ReadBuf(daddr, g.BlockBBs(), ondisk.KindBmbt, ctx)
	if err != nil {
		return nil, ondisk.SetLocation(err, agno, daddr)
	}
	// ReadBuf verified the block (or the transaction changed it: its CRC
	// is recomputed at commit); only the owner is left to check.
	if err := ondisk.CheckBmbtOwner(b.Data, ctx, c.ino); err != nil {
		return nil, ondisk.SetLocation(err, agno, daddr)
	}
	blk, err := ondisk.DecodeBmbtBlock(b.Data)
	if err != nil {
		return nil, ondisk.SetLocation(err, agno, daddr)
	}
	if int(blk.Level) != level {
		return nil, c.corrupt(fsb, "bb_level", blk.Level, level, "")
	}
	if blk.NumRecs == 0 {
		return nil, c.corrupt(fsb, "bb_numrecs", 0, nil, "empty block")
	}
	n := &bnode{fsb: fsb, buf: b, blk: blk}
	c.nodes[fsb] = n
	return n, nil
}

// maxrecs and minrecs are m_bmap_dmxr and m_bmap_dmnr of a level.
func (c *cutter) maxrecs(level int) int { return ondisk.BmbtMaxRecs(int(c.a.G.BlockSize), level == 0) }
func (c *cutter) minrecs(level int) int { return c.maxrecs(level) / 2 }

// loadRight reads the right edge: the last child of the root, its last
// child, down to the last leaf.
func (c *cutter) loadRight() error {
	levels := int(c.root.Level)
	c.right = make([]*bnode, levels)
	fsb := c.root.Ptrs[len(c.root.Ptrs)-1]
	for l := levels - 1; l >= 0; l-- {
		n, err := c.read(fsb, l)
		if err != nil {
			return err
		}
		if n.blk.RightSib != ondisk.NullFsbno {
			return c.corrupt(fsb, "bb_rightsib", n.blk.RightSib, ondisk.NullFsbno, "the last block of its level has a right sibling")
		}
		c.right[l] = n
		if l > 0 {
			fsb = n.blk.Ptrs[len(n.blk.Ptrs)-1]
		}
	}
	return nil
}

// tailRecords returns up to want records from the end of the fork, last
// first, reading leaves leftwards from the rightmost one (which the cut
// reads anyway). It changes nothing.
func (c *cutter) tailRecords(want int) ([]ondisk.BmbtIrec, error) {
	var out []ondisk.BmbtIrec
	n := c.right[0]
	for {
		for i := len(n.blk.Recs) - 1; i >= 0 && len(out) < want; i-- {
			out = append(out, n.blk.Recs[i])
		}
		if len(out) >= want || n.blk.LeftSib == ondisk.NullFsbno {
			return out, nil
		}
		left, err := c.read(n.blk.LeftSib, 0)
		if err != nil {
			return nil, err
		}
		n = left
	}
}

func (c *cutter) free(n *bnode) { c.freed = append(c.freed, n) }

// leftOf reads the left sibling of n, checking that it points back.
func (c *cutter) leftOf(n *bnode, level int) (*bnode, error) {
	left, err := c.read(n.blk.LeftSib, level)
	if err != nil {
		return nil, err
	}
	if left.blk.RightSib != n.fsb {
		return nil, c.corrupt(left.fsb, "bb_rightsib", left.blk.RightSib, n.fsb, "its right sibling does not point back")
	}
	return left, nil
}

// dropTail removes the last m entries of level l, from its rightmost
// block leftwards (leaf records become pieces, last first); blocks left
// empty are freed and their pointers dropped a level up. The root keeps
// at least one entry.
func (c *cutter) dropTail(l, m int) error {
	if l == len(c.right) {
		r := c.root
		if m >= len(r.Ptrs) {
			return c.corrupt(r.Ptrs[0], "root numrecs", len(r.Ptrs), nil, fmt.Sprintf("the cut would empty the in-inode root (%d entries dropped)", m))
		}
		k := len(r.Ptrs) - m
		r.Keys, r.Ptrs, r.Numrecs = r.Keys[:k], r.Ptrs[:k], uint16(k)
		return nil
	}
	emptied := 0
	for m > 0 {
		n := c.right[l]
		cnt := n.count()
		k := min(m, cnt)
		if l == 0 {
			for i := cnt - 1; i >= cnt-k; i-- {
				c.pieces = append(c.pieces, n.blk.Recs[i])
			}
		}
		n.keep(cnt - k)
		m -= k
		if n.count() > 0 {
			break
		}
		c.free(n)
		emptied++
		if n.blk.LeftSib == ondisk.NullFsbno {
			return c.corrupt(n.fsb, "bb_leftsib", nil, nil, "the cut would empty a level of the btree")
		}
		left, err := c.leftOf(n, l)
		if err != nil {
			return err
		}
		c.right[l] = left
	}
	if n := c.right[l]; n.blk.RightSib != ondisk.NullFsbno {
		n.blk.RightSib = ondisk.NullFsbno
		n.dirty = true
	}
	if emptied == 0 {
		return nil
	}
	return c.dropTail(l+1, emptied)
}

// setLastKey sets the key of the last entry of level l (the root's when l
// is the root's level) and carries it up while that entry is its block's
// first.
func (c *cutter) setLastKey(l int, key uint64) {
	for ; l < len(c.right); l++ {
		n := c.right[l]
		i := len(n.blk.Keys) - 1
		n.blk.Keys[i] = key
		n.dirty = true
		if i != 0 {
			return
		}
	}
	c.root.Keys[len(c.root.Keys)-1] = key
}

// rebalance brings the rightmost block of each level below the root's
// children back to half full, bottom up (xfs_btree_delrec's join or shift
// with the left sibling). A rightmost block that is alone on its level
// is left to collapse, which makes it a child of the root.
func (c *cutter) rebalance() error {
	for l := 0; l < len(c.right)-1; l++ {
		n := c.right[l]
		if n.count() >= c.minrecs(l) || n.blk.LeftSib == ondisk.NullFsbno {
			continue
		}
		s, err := c.leftOf(n, l)
		if err != nil {
			return err
		}
		s.dirty, n.dirty = true, true
		if s.count()+n.count() <= c.maxrecs(l) {
			// Join n into its left sibling.
			if l == 0 {
				s.blk.Recs = append(s.blk.Recs, n.blk.Recs...)
			} else {
				s.blk.Keys = append(s.blk.Keys, n.blk.Keys...)
				s.blk.Ptrs = append(s.blk.Ptrs, n.blk.Ptrs...)
			}
			s.blk.NumRecs = uint16(s.count())
			s.blk.RightSib = ondisk.NullFsbno
			c.free(n)
			c.right[l] = s
			if err := c.dropTail(l+1, 1); err != nil {
				return err
			}
			continue
		}
		// Take the entries n lacks from the end of s.
		k := c.minrecs(l) - n.count()
		from := s.count() - k
		if l == 0 {
			n.blk.Recs = append(slices.Clone(s.blk.Recs[from:]), n.blk.Recs...)
		} else {
			n.blk.Keys = append(slices.Clone(s.blk.Keys[from:]), n.blk.Keys...)
			n.blk.Ptrs = append(slices.Clone(s.blk.Ptrs[from:]), n.blk.Ptrs...)
		}
		n.blk.NumRecs = uint16(n.count())
		s.keep(from)
		c.setLastKey(l+1, n.firstKey())
	}
	return nil
}

// collapse moves the entries of the root's only child into the root
// while they fit (xfs_btree_kill_iroot), freeing the child.
func (c *cutter) collapse(rootMax int) error {
	for len(c.right) >= 2 && len(c.root.Ptrs) == 1 {
		ch := c.right[len(c.right)-1]
		if ch.fsb != c.root.Ptrs[0] {
			return c.corrupt(ch.fsb, "root pointer", c.root.Ptrs[0], ch.fsb, "the root's only child is not the rightmost block below it")
		}
		if ch.count() > rootMax {
			return nil
		}
		c.root.Keys, c.root.Ptrs = slices.Clone(ch.blk.Keys), slices.Clone(ch.blk.Ptrs)
		c.root.Numrecs = uint16(len(c.root.Ptrs))
		c.root.Level--
		c.free(ch)
		c.right = c.right[:len(c.right)-1]
	}
	return nil
}

// trimLast shortens the fork's last record by t blocks, which become a
// piece.
func (c *cutter) trimLast(t uint32) {
	n := c.right[0]
	r := &n.blk.Recs[len(n.blk.Recs)-1]
	c.pieces = append(c.pieces, tailOf(*r, t))
	r.BlockCount -= t
	n.dirty = true
}

// tailOf is the last t blocks of extent r.
func tailOf(r ondisk.BmbtIrec, t uint32) ondisk.BmbtIrec {
	keep := uint64(r.BlockCount - t)
	return ondisk.BmbtIrec{StartOff: r.StartOff + keep, StartBlock: r.StartBlock + keep, BlockCount: t, Unwritten: r.Unwritten}
}

// all reads the whole tree: every block (top level first) and every
// record in order.
func (c *cutter) all() ([]*bnode, []ondisk.BmbtIrec, error) {
	var blocks []*bnode
	var recs []ondisk.BmbtIrec
	level := c.root.Ptrs
	for l := int(c.root.Level) - 1; l >= 0; l-- {
		var next []uint64
		for _, p := range level {
			n, err := c.read(p, l)
			if err != nil {
				return nil, nil, err
			}
			blocks = append(blocks, n)
			if l == 0 {
				recs = append(recs, n.blk.Recs...)
			} else {
				next = append(next, n.blk.Ptrs...)
			}
		}
		level = next
	}
	return blocks, recs, nil
}

// write encodes every changed block that is kept into its buffer and logs
// it whole.
func (c *cutter) write() {
	gone := map[uint64]bool{}
	for _, n := range c.freed {
		gone[n.fsb] = true
	}
	for _, n := range c.nodes {
		if !n.dirty || gone[n.fsb] {
			continue
		}
		n.blk.Encode(n.buf.Data)
		c.tx.LogRange(n.buf, 0, len(n.buf.Data)-1)
	}
}
