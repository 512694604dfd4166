package bmbt

import (
	"fmt"
	"slices"
	"sort"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Fork is one fork of an inode opened for changes in a transaction. D is
// the decoded inode: di_nblocks, the fork's extent count and format and
// its part of the literal area change in it (the literal area only at
// Flush); encoding and logging the inode are the caller's. This struct
// does not represent an on-disk struct.
type Fork struct {
	G      *ondisk.Geometry
	Ino    uint64
	Which  int // ondisk.DataFork or ondisk.AttrFork
	D      *ondisk.Dinode
	Blocks Blocks
	// Allocated lists the btree blocks the changes allocated, Freed those
	// they freed (in order): the caller frees the freed ones, with the
	// inode's bmbt owner, once the operation is done (the kernel's
	// xfs_free_extent_later).
	Allocated, Freed []uint64

	tx       Tx
	exts     []ondisk.BmbtIrec // EXTENTS format: the extent list
	rootNode *node             // BTREE format: the root in the inode
	nodes    map[uint64]*node
}

// Open opens fork which of inode ino, decoded as d, for changes in tx.
// The fork must be in EXTENTS or BTREE format (xfs_ifork_has_extents).
func Open(tx Tx, g *ondisk.Geometry, ino uint64, d *ondisk.Dinode, which int, blocks Blocks) (*Fork, error) {
	f := &Fork{G: g, Ino: ino, Which: which, D: d, Blocks: blocks, tx: tx, nodes: map[uint64]*node{}}
	if which == ondisk.AttrFork && !d.HasAttrFork() {
		return nil, f.corrupt(0, "di_forkoff", 0, nil, "the inode has no attr fork")
	}
	switch d.ForkFormat(which) {
	case ondisk.DinodeFmtExtents:
		exts, err := d.Extents(which)
		if err != nil {
			return nil, err
		}
		for i := 1; i < len(exts); i++ {
			if exts[i-1].End() > exts[i].StartOff {
				return nil, f.corrupt(0, fmt.Sprintf("extent %d", i), exts[i].String(), nil, "overlaps or precedes the extent before it")
			}
		}
		f.exts = exts
	case ondisk.DinodeFmtBtree:
		root, err := d.BmdrRoot(which)
		if err != nil {
			return nil, err
		}
		f.rootNode = &node{root: true, blk: &ondisk.BmbtBlock{
			LongBlockHdr: ondisk.LongBlockHdr{Level: root.Level, LeftSib: ondisk.NullFsbno, RightSib: ondisk.NullFsbno},
			Keys:         root.Keys, Ptrs: root.Ptrs}}
	default:
		return nil, f.corrupt(0, "format", d.ForkFormat(which), nil, "the fork maps no extents (neither EXTENTS nor BTREE format)")
	}
	return f, nil
}

// Btree reports whether the fork is in BTREE format.
func (f *Fork) Btree() bool { return f.rootNode != nil }

// Levels is the btree's height, the root in the inode included (0 for
// an extents fork).
func (f *Fork) Levels() int {
	if f.rootNode == nil {
		return 0
	}
	return f.rootNode.level() + 1
}

// Nextents is the fork's extent count.
func (f *Fork) Nextents() uint64 { return f.D.Nextents(f.Which) }

func (f *Fork) addNextents(delta int) {
	f.D.SetNextents(f.Which, uint64(int64(f.Nextents())+int64(delta)))
}

// maxExt is XFS_IFORK_MAXEXT: the extents the literal area holds.
func (f *Fork) maxExt() uint64 { return uint64(f.D.ForkSize(f.Which) / ondisk.BmbtRecLen) }

func (f *Fork) setFormat(fmt uint8) {
	if f.Which == ondisk.AttrFork {
		f.D.Aformat = fmt
	} else {
		f.D.Format = fmt
	}
}

// extentLE returns the extent with the greatest start offset <= off.
func (f *Fork) extentLE(off uint64) (ondisk.BmbtIrec, bool, error) {
	if f.rootNode == nil {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff > off })
		if i == 0 {
			return ondisk.BmbtIrec{}, false, nil
		}
		return f.exts[i-1], true, nil
	}
	c := f.newCursor()
	ok, err := c.lookup(off, lookLE)
	if err != nil || !ok {
		return ondisk.BmbtIrec{}, false, err
	}
	r, _ := c.rec()
	return r, true, nil
}

// extentGE returns the extent with the least start offset >= off.
func (f *Fork) extentGE(off uint64) (ondisk.BmbtIrec, bool, error) {
	if f.rootNode == nil {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff >= off })
		if i == len(f.exts) {
			return ondisk.BmbtIrec{}, false, nil
		}
		return f.exts[i], true, nil
	}
	c := f.newCursor()
	ok, err := c.lookup(off, lookGE)
	if err != nil || !ok {
		return ondisk.BmbtIrec{}, false, err
	}
	r, _ := c.rec()
	return r, true, nil
}

// Extents returns every extent of the fork in offset order (for tests
// and checks).
func (f *Fork) Extents() ([]ondisk.BmbtIrec, error) {
	var out []ondisk.BmbtIrec
	for off := uint64(0); ; {
		r, ok, err := f.extentGE(off)
		if err != nil || !ok {
			return out, err
		}
		out = append(out, r)
		off = r.End()
	}
}

// cursorAt positions a cursor at the record starting at r's offset
// (xfs_bmbt_lookup_eq); found is whether there is one.
func (f *Fork) cursorAt(off uint64) (*cursor, bool, error) {
	c := f.newCursor()
	ok, err := c.lookup(off, lookEQ)
	return c, ok, err
}

func (f *Fork) mustFind(off uint64) (*cursor, error) {
	c, ok, err := f.cursorAt(off)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, f.corrupt(0, "extent", off, nil, "no btree record starts at this file offset, which the fork maps")
	}
	return c, nil
}

// replace changes the extent starting at old.StartOff into nw.
func (f *Fork) replace(old, nw ondisk.BmbtIrec) error {
	i, c, err := f.locate(old)
	if err != nil {
		return err
	}
	if c == nil {
		f.exts[i] = nw
		return nil
	}
	return c.update(nw)
}

// locate finds the extent old: its index in the extent list (EXTENTS
// format, c nil) or a cursor at its btree record. Either must hold old
// exactly.
func (f *Fork) locate(old ondisk.BmbtIrec) (int, *cursor, error) {
	if f.rootNode == nil {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff >= old.StartOff })
		if i == len(f.exts) || f.exts[i] != old {
			return 0, nil, f.corrupt(0, "extent", old.String(), nil, "is not in the extent list")
		}
		return i, nil, nil
	}
	c, err := f.mustFind(old.StartOff)
	if err != nil {
		return 0, nil, err
	}
	if r, _ := c.rec(); r != old {
		return 0, nil, f.corrupt(c.nodes[0].fsb, "record", r.String(), old.String(), "differs from the extent looked up")
	}
	return 0, c, nil
}

// remove deletes the extent old.
func (f *Fork) remove(old ondisk.BmbtIrec) error {
	f.addNextents(-1)
	i, c, err := f.locate(old)
	if err != nil {
		return err
	}
	if c == nil {
		f.exts = slices.Delete(f.exts, i, i+1)
		return nil
	}
	return c.delete()
}

// add inserts a new extent r where there is none.
func (f *Fork) add(r ondisk.BmbtIrec) error {
	f.addNextents(1)
	if f.rootNode == nil {
		i := sort.Search(len(f.exts), func(i int) bool { return f.exts[i].StartOff >= r.StartOff })
		f.exts = slices.Insert(f.exts, i, r)
		return nil
	}
	c, found, err := f.cursorAt(r.StartOff)
	if err != nil {
		return err
	}
	if found {
		return f.corrupt(c.nodes[0].fsb, "record", r.String(), nil, "a record with this file offset is already in the btree")
	}
	return c.insert(r)
}

// MaxExtlen is XFS_MAX_BMBT_EXTLEN: the longest extent a record holds.
const MaxExtlen = ondisk.MaxBmbtExtlen

// Remap maps r into the fork where it has a hole, as xfs_bmapi_remap does
// for a bmap intent of type MAP: di_nblocks grows by its length, it is
// merged with the extents it touches in offsets, blocks and state
// (xfs_bmap_add_extent_hole_real), an extents fork that outgrows the
// inode becomes a btree fork (xfs_bmap_extents_to_btree), and a btree fork
// whose extents now fit in the inode an extents fork
// (xfs_bmap_btree_to_extents). The reverse mapping of r is the caller's
// (an rmap MAP or MAP_SHARED, as the kernel's deferred work). A range not
// a hole is refused.
func (f *Fork) Remap(r ondisk.BmbtIrec) error {
	if r.BlockCount == 0 || r.BlockCount > MaxExtlen {
		return f.corrupt(0, "extent", r.String(), nil, "has a length outside 1..XFS_MAX_BMBT_EXTLEN")
	}
	f.D.Nblocks += uint64(r.BlockCount)
	if err := f.addHoleReal(r); err != nil {
		return err
	}
	return f.btreeToExtents()
}

// addHoleReal is xfs_bmap_add_extent_hole_real.
func (f *Fork) addHoleReal(r ondisk.BmbtIrec) error {
	left, haveLeft, err := f.extentLE(r.StartOff)
	if err != nil {
		return err
	}
	right, haveRight, err := f.extentGE(r.StartOff)
	if err != nil {
		return err
	}
	if haveLeft && left.End() > r.StartOff {
		return f.corrupt(0, "extent", r.String(), left.String(), "is mapped over an extent of the fork, not into a hole")
	}
	if haveRight && right.StartOff < r.End() {
		return f.corrupt(0, "extent", r.String(), right.String(), "is mapped over an extent of the fork, not into a hole")
	}
	lc := haveLeft && left.End() == r.StartOff && left.StartBlock+uint64(left.BlockCount) == r.StartBlock &&
		left.Unwritten == r.Unwritten && uint64(left.BlockCount)+uint64(r.BlockCount) <= MaxExtlen
	rc := haveRight && r.End() == right.StartOff && r.StartBlock+uint64(r.BlockCount) == right.StartBlock &&
		r.Unwritten == right.Unwritten && uint64(r.BlockCount)+uint64(right.BlockCount) <= MaxExtlen &&
		(!lc || uint64(left.BlockCount)+uint64(r.BlockCount)+uint64(right.BlockCount) <= MaxExtlen)
	switch {
	case lc && rc:
		nl := left
		nl.BlockCount += r.BlockCount + right.BlockCount
		if err := f.remove(right); err != nil {
			return err
		}
		if err := f.replace(left, nl); err != nil {
			return err
		}
	case lc:
		nl := left
		nl.BlockCount += r.BlockCount
		if err := f.replace(left, nl); err != nil {
			return err
		}
	case rc:
		nr := right
		nr.StartOff, nr.StartBlock = r.StartOff, r.StartBlock
		nr.BlockCount += r.BlockCount
		if err := f.replace(right, nr); err != nil {
			return err
		}
	default:
		if err := f.add(r); err != nil {
			return err
		}
	}
	return f.extentsToBtree()
}

// Unmap removes the mappings of [start, start+length) of the fork from
// the highest offset down, at most nexts extents (0: all), as
// __xfs_bunmapi with XFS_BMAPI_REMAP does for a bmap intent of type UNMAP:
// nothing is freed and no reference count changes, di_nblocks drops by
// what is unmapped; a piece in the middle of an extent splits it
// (xfs_bmap_del_extent_real); afterwards the fork changes format if it
// must. It returns the pieces unmapped, highest offset first (the caller
// removes their reverse mappings: rmap UNMAP, or UNMAP_SHARED for a
// reflinked file's data), and the length still to unmap from start (0:
// all done, the rest being holes).
func (f *Fork) Unmap(start, length uint64, nexts int) (dels []ondisk.BmbtIrec, rest uint64, err error) {
	if length == 0 || f.Nextents() == 0 {
		return nil, 0, nil
	}
	got, ok, err := f.extentLE(start + length - 1)
	if err != nil || !ok {
		return nil, 0, err
	}
	end := int64(start + length - 1)
	done := false
	for extno := 0; end >= int64(start) && (nexts == 0 || extno < nexts); {
		end = min(end, int64(got.End())-1)
		if end < int64(start) {
			break
		}
		del := got
		if got.StartOff < start {
			del.StartOff = start
			del.BlockCount -= uint32(start - got.StartOff)
			del.StartBlock += start - got.StartOff
		}
		if del.End() > uint64(end)+1 {
			del.BlockCount = uint32(uint64(end) + 1 - del.StartOff)
		}
		if err := f.delExtentReal(got, del); err != nil {
			return dels, 0, err
		}
		dels = append(dels, del)
		end = int64(del.StartOff) - 1
		if end >= int64(start) {
			if got, ok, err = f.extentLE(uint64(end)); err != nil {
				return dels, 0, err
			}
			if !ok {
				done = true
				break
			}
			extno++
		}
	}
	if !done && end >= int64(start) {
		rest = uint64(end) - start + 1
	}
	if err := f.extentsToBtree(); err != nil {
		return dels, rest, err
	}
	return dels, rest, f.btreeToExtents()
}

// delExtentReal is xfs_bmap_del_extent_real with XFS_BMAPI_REMAP: del, a
// part of extent got, leaves the fork; di_nblocks drops by its length.
func (f *Fork) delExtentReal(got, del ondisk.BmbtIrec) error {
	f.D.Nblocks -= uint64(del.BlockCount)
	delEnd, delEndBlock := del.End(), del.StartBlock+uint64(del.BlockCount)
	switch lf, rf := got.StartOff == del.StartOff, got.End() == delEnd; {
	case lf && rf:
		return f.remove(got)
	case lf:
		ng := got
		ng.StartOff, ng.StartBlock = delEnd, delEndBlock
		ng.BlockCount -= del.BlockCount
		return f.replace(got, ng)
	case rf:
		ng := got
		ng.BlockCount -= del.BlockCount
		return f.replace(got, ng)
	}
	// The middle: the left part stays in the record, the right part is a
	// new one, inserted after it (the cursor incremented, as the kernel
	// does).
	nl := got
	nl.BlockCount = uint32(del.StartOff - got.StartOff)
	nr := ondisk.BmbtIrec{StartOff: delEnd, StartBlock: delEndBlock, BlockCount: uint32(got.End() - delEnd), Unwritten: got.Unwritten}
	if f.rootNode == nil {
		if err := f.replace(got, nl); err != nil {
			return err
		}
		return f.add(nr)
	}
	c, err := f.mustFind(got.StartOff)
	if err != nil {
		return err
	}
	if err := c.update(nl); err != nil {
		return err
	}
	if _, err := c.increment(0); err != nil {
		return err
	}
	f.addNextents(1)
	return c.insert(nr)
}

// inodeFsb is XFS_INO_TO_FSB: the block holding the inode.
func (f *Fork) inodeFsb() uint64 {
	g := f.G
	return g.Fsbno(g.InoToAgno(f.Ino), g.AginoToAgbno(g.InoToAgino(f.Ino)))
}

// extentsToBtree is xfs_bmap_extents_to_btree, when the extent list no
// longer fits in the inode (xfs_bmap_needs_btree): a leaf allocated near
// the inode takes every extent, and the root in the inode points at it.
func (f *Fork) extentsToBtree() error {
	if f.rootNode != nil || uint64(len(f.exts)) <= f.maxExt() {
		return nil
	}
	root := &node{root: true, dirty: true, blk: &ondisk.BmbtBlock{
		LongBlockHdr: ondisk.LongBlockHdr{Level: 1, LeftSib: ondisk.NullFsbno, RightSib: ondisk.NullFsbno}}}
	leaf, err := f.newBlock(f.inodeFsb(), 0)
	if err != nil {
		return err
	}
	leaf.blk.Recs = f.exts
	root.blk.Keys = []uint64{leaf.firstKey()}
	root.blk.Ptrs = []uint64{leaf.fsb}
	f.rootNode, f.exts = root, nil
	f.setFormat(ondisk.DinodeFmtBtree)
	return nil
}

// btreeToExtents is xfs_bmap_btree_to_extents, when the extents fit in
// the inode again (xfs_bmap_wants_extents): the root's one leaf is freed
// and its records become the extent list.
func (f *Fork) btreeToExtents() error {
	if f.rootNode == nil || f.Nextents() > f.maxExt() {
		return nil
	}
	root := f.rootNode
	if root.level() != 1 || root.count() != 1 {
		return f.corrupt(0, "bb_level", root.level(), 1, fmt.Sprintf("a btree fork of %d extents whose root has %d entries", f.Nextents(), root.count()))
	}
	leaf, err := f.read(root.ptr(1), 0)
	if err != nil {
		return err
	}
	if uint64(leaf.count()) != f.Nextents() {
		return f.corrupt(leaf.fsb, "bb_numrecs", leaf.count(), f.Nextents(), "the fork's only leaf does not hold its extents")
	}
	f.exts = slices.Clone(leaf.blk.Recs)
	f.freeBlock(leaf)
	f.rootNode = nil
	f.setFormat(ondisk.DinodeFmtExtents)
	return nil
}

// Flush encodes every block the changes touched, logs each whole, and
// writes the fork's extent list or btree root into D's literal area
// (zeroing the rest of the fork).
func (f *Fork) Flush() {
	keys := make([]uint64, 0, len(f.nodes))
	for k := range f.nodes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		n := f.nodes[k]
		if !n.dirty || n.freed {
			continue
		}
		n.blk.NumRecs = uint16(n.count())
		n.blk.Encode(n.buf.Data)
		f.tx.LogRange(n.buf, 0, len(n.buf.Data)-1)
		n.dirty = false
	}
	fb := f.D.ForkBytes(f.Which)
	clear(fb)
	if f.rootNode == nil {
		for i, r := range f.exts {
			r.Encode(fb[i*ondisk.BmbtRecLen:])
		}
		return
	}
	rn := f.rootNode
	r := &ondisk.BmdrRoot{Level: rn.blk.Level, Numrecs: uint16(rn.count()), Keys: rn.blk.Keys, Ptrs: rn.blk.Ptrs}
	r.Encode(fb)
}
