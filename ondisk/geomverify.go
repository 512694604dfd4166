package ondisk

// Range checks of block, extent and inode numbers against the geometry,
// exactly as the kernel's libxfs/xfs_types.c and xfs_ag.c make them
// (xfs_verify_fsbno, xfs_verify_fsbext, xfs_verify_fileext, xfs_verify_ino
// with xfs_agino_range, xfs_verify_rtbext without rtgroups), and the fixed
// AG block numbers they and the btrees need (XFS_AGFL_BLOCK,
// xfs_refc_block).

// MaxFileoff is XFS_MAX_FILEOFF: the largest file block offset a bmbt
// record can map (BMBT_STARTOFF_MASK + BMBT_BLOCKCOUNT_MASK).
const MaxFileoff = uint64(1)<<54 - 1 + uint64(1)<<21 - 1

// AGFLBlock is XFS_AGFL_BLOCK: the block holding the AG's fourth sector
// (the AGFL); blocks at or below it are static AG metadata.
func (g *Geometry) AGFLBlock() uint32 {
	return uint32((uint64(3) << g.SectBBLog) >> g.BlkBBLog)
}

// RefcBlock is xfs_refc_block: where mkfs puts the refcount btree root,
// the block after the rmapbt root (rmapbt), else after the finobt root
// (finobt), else after the inobt root. The refcount btree allocates its
// blocks near it (xfs_refcountbt_alloc_block).
func (g *Geometry) RefcBlock() uint32 {
	ibt := g.AGFLBlock() + 3 // XFS_BNO_BLOCK, XFS_CNT_BLOCK, then XFS_IBT_BLOCK
	switch {
	case g.HasRmapbt && g.HasFinobt:
		return ibt + 3 // XFS_FIBT_BLOCK + 1 = XFS_RMAP_BLOCK, then + 1
	case g.HasRmapbt || g.HasFinobt:
		return ibt + 2
	}
	return ibt + 1
}

// VerifyAgbno is xfs_verify_agno_agbno: agbno is past the AG headers and
// inside AG agno.
func (g *Geometry) VerifyAgbno(agno, agbno uint32) bool {
	return agno < g.AGCount && agbno < g.AGSize(agno) && agbno > g.AGFLBlock()
}

// VerifyFsbno is xfs_verify_fsbno: fsbno addresses a block of an AG of the
// data device that is not static AG metadata.
func (g *Geometry) VerifyFsbno(fsbno uint64) bool {
	agno := fsbno >> g.AGBlkLog
	if agno >= uint64(g.AGCount) {
		return false
	}
	return g.VerifyAgbno(uint32(agno), g.FsbToAgbno(fsbno))
}

// VerifyFsbext is xfs_verify_fsbext: [fsbno, fsbno+n) is non-empty, does
// not wrap, lies in one AG and avoids its static metadata.
func (g *Geometry) VerifyFsbext(fsbno, n uint64) bool {
	if fsbno+n <= fsbno {
		return false
	}
	if !g.VerifyFsbno(fsbno) || !g.VerifyFsbno(fsbno+n-1) {
		return false
	}
	return g.FsbToAgno(fsbno) == g.FsbToAgno(fsbno+n-1)
}

// VerifyRtbext is xfs_verify_rtbext on a filesystem without realtime
// groups: [rtbno, rtbno+n) is non-empty, does not wrap and lies on the
// realtime device (sb_rblocks; none without one).
func (g *Geometry) VerifyRtbext(rtbno, n uint64) bool {
	if rtbno+n <= rtbno {
		return false
	}
	return rtbno < g.SB.RBlocks && rtbno+n-1 < g.SB.RBlocks
}

// VerifyFileext is xfs_verify_fileext: [off, off+n) is non-empty, does not
// wrap and stays at or below MaxFileoff.
func VerifyFileext(off, n uint64) bool {
	if off+n <= off {
		return false
	}
	return off <= MaxFileoff && off+n-1 <= MaxFileoff
}

// AginoRange is xfs_agino_range: the first and last inode numbers AG agno
// can hold, those of the first cluster-aligned block after the AGFL and of
// the end of the last whole aligned cluster.
func (g *Geometry) AginoRange(agno uint32) (first, last uint32) {
	align := max(g.ClusterAlign, 1)
	bno := (g.AGFLBlock() + 1 + align - 1) / align * align
	first = bno << g.InoPBLog
	bno = g.AGSize(agno) / align * align
	last = bno<<g.InoPBLog - 1
	return first, last
}

// VerifyIno is xfs_verify_ino: ino's AG exists, ino has no bits above the
// AG inode number, and its AG inode number is in AginoRange.
func (g *Geometry) VerifyIno(ino uint64) bool {
	agno := ino >> g.AGInoLog
	if agno >= uint64(g.AGCount) {
		return false
	}
	agino := g.InoToAgino(ino)
	first, last := g.AginoRange(uint32(agno))
	return agino >= first && agino <= last
}
