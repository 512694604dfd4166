package icluster

import (
	"cmp"
	"slices"

	"github.com/xfsfree/xfsfree/bmap"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Truncating an orphan's forks to nothing (xfs_inactive_truncate,
// xfs_inactive_symlink_rmt, xfs_attr_inactive → xfs_itruncate_extents):
// every data extent and every bmbt block goes back to free space, and
// where the rmapbt is enabled its reverse mapping goes with it — except
// the data extents of a reflinked file, whose reference counts are lowered
// instead (reflink.go).

// Owner is the reverse-mapping owner of an extent being freed: the rmap
// owner (an inode number, or one of ondisk.RmapOwn*) and the rmap offset
// field with its flags (ondisk.RmapOffAttrFork, RmapOffBmbtBlock,
// RmapOffUnwritten). This struct does not represent an on-disk struct.
type Owner struct {
	Owner  uint64
	Offset uint64
}

// OwnerInodes is the owner of inode chunk blocks (XFS_RMAP_OINFO_INODES).
var OwnerInodes = Owner{Owner: ondisk.RmapOwnInodes}

// Extent is an extent to free: AG, first block in the AG, length, owner.
// This struct does not represent an on-disk struct.
type Extent struct {
	AG     uint32
	Agbno  uint32
	Len    uint32
	Owner  Owner
	Fsbno  uint64 // the extent's first block as a filesystem block number
	Bmbt   bool   // a block of the fork's block map btree
	Attr   bool   // of the attr fork
	Offset uint64 // file offset in blocks (data and attr extents)
	// Shared: a data extent of a reflinked file, released through
	// SharedSpace.FreeShared (reference counts lowered) rather than freed.
	Shared bool
}

// ForkExtents lists what truncating both forks of inode ino frees, in the
// kernel's order: each fork's extents from the highest file offset down
// (xfs_bunmapi_range), then its bmbt blocks; the data fork first, then the
// attr fork. data and attr are the forks' maps (bmap.Map).
func ForkExtents(g *ondisk.Geometry, ino uint64, data, attr *bmap.ForkMap) []Extent {
	var out []Extent
	for _, m := range []*bmap.ForkMap{data, attr} {
		if m == nil {
			continue
		}
		isAttr := m.Fork == ondisk.AttrFork
		var flag uint64
		if isAttr {
			flag = ondisk.RmapOffAttrFork
		}
		exts := slices.Clone(m.Extents)
		slices.SortStableFunc(exts, func(a, b ondisk.BmbtIrec) int { return cmp.Compare(b.StartOff, a.StartOff) })
		for _, e := range exts {
			off := e.StartOff | flag
			if e.Unwritten {
				off |= ondisk.RmapOffUnwritten
			}
			out = append(out, Extent{AG: g.FsbToAgno(e.StartBlock), Agbno: g.FsbToAgbno(e.StartBlock), Len: e.BlockCount,
				Owner: Owner{Owner: ino, Offset: off}, Fsbno: e.StartBlock, Attr: isAttr, Offset: e.StartOff})
		}
		// Leaves before their parents, as the btree empties bottom up.
		for i := len(m.BtreeBlocks) - 1; i >= 0; i-- {
			p := m.BtreeBlocks[i]
			out = append(out, Extent{AG: g.FsbToAgno(p), Agbno: g.FsbToAgbno(p), Len: 1,
				Owner: Owner{Owner: ino, Offset: ondisk.RmapOffBmbtBlock | flag}, Fsbno: p, Bmbt: true, Attr: isAttr})
		}
	}
	return out
}

// extentAGs returns the AGs the extents lie in, ascending, with agno
// added: the AGFs a transaction freeing them locks, in the order it locks
// them.
func extentAGs(exts []Extent, agno uint32) []uint32 {
	ags := []uint32{agno}
	for _, e := range exts {
		ags = append(ags, e.AG)
	}
	slices.Sort(ags)
	return slices.Compact(ags)
}
