// Package bmap owns the block maps of inode forks: reading a fork's
// extents in any format (local, extents, btree), walking the fork's block
// map btree with its checks, and listing every block a fork holds (data
// extents and bmbt blocks) for truncation.
package bmap

import (
	"fmt"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// ForkMap is what one fork of an inode maps. This struct does not
// represent an on-disk struct.
type ForkMap struct {
	Fork    int
	Format  uint8
	Extents []ondisk.BmbtIrec // ascending file offset
	// BtreeBlocks are the fsbnos of the fork's bmbt blocks (not the
	// in-inode root), top level first.
	BtreeBlocks []uint64
}

// Blocks is the number of filesystem blocks the fork holds.
func (m *ForkMap) Blocks() uint64 {
	n := uint64(len(m.BtreeBlocks))
	for _, e := range m.Extents {
		n += uint64(e.BlockCount)
	}
	return n
}

// Map reads the block map of fork of inode d (already verified). Every
// extent must lie inside the data device's AGs, extents must ascend by
// file offset without overlap, and the count must equal the inode's extent
// count. Local and device forks map nothing.
func Map(c *cache.Cache, g *ondisk.Geometry, d *ondisk.Dinode, fork int) (*ForkMap, error) {
	m := &ForkMap{Fork: fork, Format: d.ForkFormat(fork)}
	if fork == ondisk.AttrFork && !d.HasAttrFork() {
		return m, nil
	}
	var err error
	switch m.Format {
	case ondisk.DinodeFmtLocal, ondisk.DinodeFmtDev:
		return m, nil
	case ondisk.DinodeFmtExtents:
		m.Extents, err = d.Extents(fork)
	case ondisk.DinodeFmtBtree:
		err = m.walkBtree(c, g, d, fork)
	default:
		return nil, corrupt(d, fork, "format", m.Format, "unknown fork format")
	}
	if err != nil {
		return nil, err
	}
	if uint64(len(m.Extents)) != d.Nextents(fork) {
		return nil, corrupt(d, fork, "nextents", d.Nextents(fork), fmt.Sprintf("the fork maps %d extents", len(m.Extents)))
	}
	var end uint64
	for i, e := range m.Extents {
		if i > 0 && e.StartOff < end {
			return nil, corrupt(d, fork, fmt.Sprintf("extent %d", i), e.String(), "overlaps the previous extent")
		}
		end = e.End()
		if e.BlockCount == 0 || !validExtent(g, e.StartBlock, uint64(e.BlockCount)) {
			return nil, corrupt(d, fork, fmt.Sprintf("extent %d", i), e.String(), "is not inside one AG of the data device")
		}
	}
	return m, nil
}

func forkName(fork int) string {
	if fork == ondisk.AttrFork {
		return "attr fork"
	}
	return "data fork"
}

func corrupt(d *ondisk.Dinode, fork int, field string, found any, msg string) error {
	f := forkName(fork)
	return &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d %s", d.Ino, f), Field: field, Found: found, Msg: msg}
}

// validExtent: the extent lies inside one AG, past the AG headers.
func validExtent(g *ondisk.Geometry, fsbno, n uint64) bool {
	agno, agbno := g.FsbToAgno(fsbno), uint64(g.FsbToAgbno(fsbno))
	return agno < g.AGCount && agbno > 0 && agbno+n <= uint64(g.AGSize(agno))
}

// walkBtree reads the fork's bmbt a level at a time from the in-inode root,
// checking levels, sibling links, owners and that each child's first key is
// its parent's key; the leaves' records become m.Extents.
func (m *ForkMap) walkBtree(c *cache.Cache, g *ondisk.Geometry, d *ondisk.Dinode, fork int) error {
	root, err := d.BmdrRoot(fork)
	if err != nil {
		return err
	}
	level := root.Ptrs
	keys := root.Keys
	seen := map[uint64]bool{}
	for lvl := int(root.Level) - 1; lvl >= 0; lvl-- {
		exts := make([]cache.Extent, len(level))
		for i, p := range level {
			if !validExtent(g, p, 1) {
				return corrupt(d, fork, "bmbt pointer", p, "is not a block of the data device")
			}
			exts[i] = cache.Extent{Daddr: g.FsbToDaddr(p), Len: g.BlockBBs()}
		}
		if len(level) > 1 {
			c.ReadAhead(exts)
		}
		var next, nextKeys []uint64
		for i, p := range level {
			if seen[p] {
				return corrupt(d, fork, "bmbt pointer", p, "reached twice")
			}
			seen[p] = true
			m.BtreeBlocks = append(m.BtreeBlocks, p)
			blk, err := readBmbt(c, g, d.Ino, p)
			if err != nil {
				return fmt.Errorf("inode %d %s btree: %w", d.Ino, forkName(fork), err)
			}
			where := func(field string, found, want any) error {
				return &ondisk.CorruptError{AG: g.FsbToAgno(p), Daddr: g.FsbToDaddr(p), Struct: fmt.Sprintf("bmbt block of inode %d", d.Ino),
					Field: field, Found: found, Want: want}
			}
			if int(blk.Level) != lvl {
				return where("bb_level", blk.Level, lvl)
			}
			left, right := ondisk.NullFsbno, ondisk.NullFsbno
			if i > 0 {
				left = level[i-1]
			}
			if i+1 < len(level) {
				right = level[i+1]
			}
			if blk.LeftSib != left {
				return where("bb_leftsib", blk.LeftSib, left)
			}
			if blk.RightSib != right {
				return where("bb_rightsib", blk.RightSib, right)
			}
			if blk.NumRecs == 0 {
				return where("bb_numrecs", 0, nil)
			}
			first := uint64(0)
			if lvl == 0 {
				first = blk.Recs[0].StartOff
				// Check the records here, where the block holding a bad
				// one can be named (Map checks them all again).
				for j, r := range blk.Recs {
					if n := len(m.Extents); n > 0 && r.StartOff < m.Extents[n-1].End() {
						return where(fmt.Sprintf("recs[%d].startoff", j), r.StartOff,
							fmt.Sprintf(">= %d (overlaps the previous extent %v)", m.Extents[n-1].End(), m.Extents[n-1]))
					}
					if r.BlockCount == 0 || !validExtent(g, r.StartBlock, uint64(r.BlockCount)) {
						return where(fmt.Sprintf("recs[%d]", j), r.String(), "an extent inside one AG of the data device")
					}
					m.Extents = append(m.Extents, r)
				}
			} else {
				first = blk.Keys[0]
				next = append(next, blk.Ptrs...)
				nextKeys = append(nextKeys, blk.Keys...)
			}
			if first != keys[i] {
				return where("first key", first, keys[i])
			}
		}
		level, keys = next, nextKeys
	}
	return nil
}

func readBmbt(c *cache.Cache, g *ondisk.Geometry, ino, fsbno uint64) (*ondisk.BmbtBlock, error) {
	daddr := g.FsbToDaddr(fsbno)
	agno := g.FsbToAgno(fsbno)
	ctx := ondisk.VerifyCtx{G: g, AG: agno, Daddr: daddr}
	b, err := c.Get(daddr, g.BlockBBs(), ondisk.KindBmbt, ctx) // verified as a bmbt block
	if err != nil {
		return nil, err
	}
	defer b.Release()
	if err := ondisk.CheckBmbtOwner(b.Data, ctx, ino); err != nil {
		return nil, err
	}
	return ondisk.DecodeBmbtBlock(b.Data)
}

// CheckBlocks checks that the two forks' blocks add up to the inode's
// di_nblocks (realtime inodes excepted, whose data lives elsewhere).
func CheckBlocks(d *ondisk.Dinode, data, attr *ForkMap) error {
	if n := data.Blocks() + attr.Blocks(); n != d.Nblocks {
		return &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d", d.Ino), Field: "di_nblocks",
			Found: d.Nblocks, Want: n, Msg: "differs from the blocks its forks map"}
	}
	return nil
}
