package ondisk

import "fmt"

// Inode chunk constants (xfs_format.h).
const (
	InodesPerChunk       = 64 // XFS_INODES_PER_CHUNK
	InodesPerHolemaskBit = 4  // XFS_INODES_PER_HOLEMASK_BIT
	InodeBigClusterSize  = 8192
	DinodeMinSize        = 256
	InobtAllFree         = ^uint64(0) // XFS_INOBT_ALL_FREE
)

// Geometry is derived from a Superblock the way the kernel derives struct
// xfs_mount and struct xfs_ino_geometry (xfs_ialloc_setup_geometry,
// xfs_sb_mount_common). This struct does not represent an on-disk struct.
type Geometry struct {
	SB *Superblock

	BlockSize  uint32
	BlockLog   uint8
	SectSize   uint32
	SectBBLog  uint8 // m_sectbb_log: log2(sectsize/512)
	BlkBBLog   uint8 // log2(blocksize/512)
	InodeSize  uint32
	InodeLog   uint8
	InoPBlock  uint32
	InoPBLog   uint8
	AGBlocks   uint32
	AGBlkLog   uint8
	AGCount    uint32
	AGInoLog   uint8 // m_agino_log = inopblog + agblklog
	DirBlkSize uint32

	IallocInos       uint32 // igeo->ialloc_inos
	IallocBlks       uint32 // igeo->ialloc_blks: blocks per inode chunk
	IallocMinBlks    uint32 // igeo->ialloc_min_blks
	ClusterSize      uint32 // igeo->inode_cluster_size (bytes)
	BlocksPerCluster uint32 // igeo->blocks_per_cluster
	InodesPerCluster uint32 // igeo->inodes_per_cluster
	ClusterAlign     uint32 // igeo->cluster_align (blocks)
	InoAlignMask     uint32 // igeo->inoalign_mask
	ClusterAlignInos uint32 // igeo->cluster_align_inodes
	InobtLeafMaxRecs int    // m_inobt_mxr[0]
	InobtNodeMaxRecs int    // m_inobt_mxr[1]
	AllocLeafMaxRecs int    // m_alloc_mxr[0]
	AllocNodeMaxRecs int    // m_alloc_mxr[1]
	RmapLeafMaxRecs  int    // m_rmap_mxr[0]
	RmapNodeMaxRecs  int    // m_rmap_mxr[1]
	AGFLSize         uint32 // xfs_agfl_size: slots in the AGFL
	LogStartDaddr    int64  // internal log start, daddr (0 if external)
	LogBBs           int64  // log length in BBs
	BlockUUID        [16]byte
	HasSparse        bool
	HasFinobt        bool
	HasRmapbt        bool
	HasInobtCount    bool
	HasBigtime       bool
	HasNrext64       bool
	HasReflink       bool
	HasFtype         bool
}

// NewGeometry derives the geometry. The superblock must have passed Verify.
func NewGeometry(sb *Superblock) (*Geometry, error) {
	g := &Geometry{SB: sb}
	g.BlockSize = sb.BlockSize
	g.BlockLog = sb.BlockLog
	g.SectSize = uint32(sb.SectSize)
	g.SectBBLog = sb.SectLog - BBShift
	g.BlkBBLog = sb.BlockLog - BBShift
	g.InodeSize = uint32(sb.InodeSize)
	g.InodeLog = sb.InodeLog
	g.InoPBlock = uint32(sb.InoPBlock)
	g.InoPBLog = sb.InoPBLog
	g.AGBlocks = sb.AGBlocks
	g.AGBlkLog = sb.AGBlkLog
	g.AGCount = sb.AGCount
	g.AGInoLog = sb.InoPBLog + sb.AGBlkLog
	g.DirBlkSize = sb.BlockSize << sb.DirBlkLog
	if g.AGInoLog > 32 {
		return nil, fmt.Errorf("%w: agino log %d > 32", ErrCorrupt, g.AGInoLog)
	}
	g.BlockUUID = sb.BlockUUID()
	g.HasSparse = sb.HasSparseInodes()
	g.HasFinobt = sb.HasFinobt()
	g.HasRmapbt = sb.HasRmapbt()
	g.HasInobtCount = sb.HasInobtCount()
	g.HasBigtime = sb.HasBigtime()
	g.HasNrext64 = sb.HasNrext64()
	g.HasReflink = sb.HasReflink()
	g.HasFtype = sb.HasFtype()

	// xfs_ialloc_setup_geometry.
	g.IallocInos = max(uint32(InodesPerChunk), g.InoPBlock)
	g.IallocBlks = g.IallocInos >> g.InoPBLog
	hasAlign := sb.VersionNum&SBVersionAlignBit != 0
	raw := uint32(InodeBigClusterSize)
	// v5 filesystems always have v3 inodes.
	if newSize := raw * (g.InodeSize / DinodeMinSize); hasAlign && sb.InoAlignMt >= newSize>>g.BlockLog {
		raw = newSize
	}
	g.BlocksPerCluster = max(1, raw>>g.BlockLog)
	g.ClusterSize = g.BlocksPerCluster << g.BlockLog
	g.InodesPerCluster = g.BlocksPerCluster << g.InoPBLog
	if hasAlign && sb.InoAlignMt >= g.BlocksPerCluster {
		g.ClusterAlign = sb.InoAlignMt
	} else {
		g.ClusterAlign = 1
	}
	g.InoAlignMask = g.ClusterAlign - 1
	g.ClusterAlignInos = g.ClusterAlign << g.InoPBLog
	if g.HasSparse {
		g.IallocMinBlks = sb.SpinoAlign
	} else {
		g.IallocMinBlks = g.IallocBlks
	}

	bs := int(g.BlockSize)
	g.InobtLeafMaxRecs = (bs - ShortBlockHdrLen) / InobtRecLen
	g.InobtNodeMaxRecs = (bs - ShortBlockHdrLen) / (InobtKeyLen + ShortPtrLen)
	g.AllocLeafMaxRecs = (bs - ShortBlockHdrLen) / AllocRecLen
	g.AllocNodeMaxRecs = (bs - ShortBlockHdrLen) / (AllocKeyLen + ShortPtrLen)
	g.RmapLeafMaxRecs = (bs - ShortBlockHdrLen) / RmapRecLen
	g.RmapNodeMaxRecs = (bs - ShortBlockHdrLen) / (2*RmapKeyLen + ShortPtrLen)
	g.AGFLSize = (g.SectSize - AGFLHdrLen) / 4

	if sb.LogStart != 0 {
		g.LogStartDaddr = g.FsbToDaddr(sb.LogStart)
	}
	g.LogBBs = int64(sb.LogBlocks) << g.BlkBBLog
	return g, nil
}

// Ino composes an inode number (XFS_AGINO_TO_INO).
func (g *Geometry) Ino(agno, agino uint32) uint64 {
	return uint64(agno)<<g.AGInoLog | uint64(agino)
}

// InoToAgno is XFS_INO_TO_AGNO.
func (g *Geometry) InoToAgno(ino uint64) uint32 { return uint32(ino >> g.AGInoLog) }

// InoToAgino is XFS_INO_TO_AGINO.
func (g *Geometry) InoToAgino(ino uint64) uint32 {
	return uint32(ino & (uint64(1)<<g.AGInoLog - 1))
}

// AginoToAgbno is XFS_AGINO_TO_AGBNO.
func (g *Geometry) AginoToAgbno(agino uint32) uint32 { return agino >> g.InoPBLog }

// AginoToOffset is XFS_AGINO_TO_OFFSET: the inode's slot in its block.
func (g *Geometry) AginoToOffset(agino uint32) uint32 { return agino & (1<<g.InoPBLog - 1) }

// Agino is XFS_OFFBNO_TO_AGINO.
func (g *Geometry) Agino(agbno, offset uint32) uint32 { return agbno<<g.InoPBLog | offset }

// ValidIno reports whether ino addresses an inode slot inside the data
// device (xfs_verify_ino without the metadata-region checks): its AG
// exists, its bits round-trip through (agno, agino) — no bits between the
// agino and the agno, so 1<<50|128 is not an alias of 128 — and its agino
// lies inside the AG.
func (g *Geometry) ValidIno(ino uint64) bool {
	agno, agino := g.InoToAgno(ino), g.InoToAgino(ino)
	if agno >= g.AGCount || g.Ino(agno, agino) != ino {
		return false
	}
	return g.ValidAgino(agno, agino)
}

// ValidAgino reports whether agino lies within AG agno's blocks.
func (g *Geometry) ValidAgino(agno, agino uint32) bool {
	if agino == NullAgino {
		return false
	}
	agbno := g.AginoToAgbno(agino)
	return agbno < g.AGSize(agno) && agbno > 0
}

// AGSize is the number of blocks in AG agno (the last AG may be short).
func (g *Geometry) AGSize(agno uint32) uint32 {
	if agno == g.AGCount-1 {
		return uint32(g.SB.DBlocks - uint64(agno)*uint64(g.AGBlocks))
	}
	return g.AGBlocks
}

// AgbToDaddr is XFS_AGB_TO_DADDR.
func (g *Geometry) AgbToDaddr(agno, agbno uint32) int64 {
	return (int64(agno)*int64(g.AGBlocks) + int64(agbno)) << g.BlkBBLog
}

// FsbToDaddr is XFS_FSB_TO_DADDR for an AG-encoded fsbno.
func (g *Geometry) FsbToDaddr(fsbno uint64) int64 {
	return g.AgbToDaddr(uint32(fsbno>>g.AGBlkLog), uint32(fsbno&(uint64(1)<<g.AGBlkLog-1)))
}

// FsbToAgno and FsbToAgbno split an AG-encoded fsbno.
func (g *Geometry) FsbToAgno(fsbno uint64) uint32 { return uint32(fsbno >> g.AGBlkLog) }
func (g *Geometry) FsbToAgbno(fsbno uint64) uint32 {
	return uint32(fsbno & (uint64(1)<<g.AGBlkLog - 1))
}

// Fsbno composes an AG-encoded fsbno (XFS_AGB_TO_FSB).
func (g *Geometry) Fsbno(agno, agbno uint32) uint64 { return uint64(agno)<<g.AGBlkLog | uint64(agbno) }

// DaddrToAgno and DaddrToAgbno invert AgbToDaddr (xfs_daddr_to_agno).
func (g *Geometry) DaddrToAgno(d int64) uint32 {
	return uint32((d >> g.BlkBBLog) / int64(g.AGBlocks))
}
func (g *Geometry) DaddrToAgbno(d int64) uint32 {
	return uint32((d >> g.BlkBBLog) % int64(g.AGBlocks))
}

// InoAt is the number of the inode at byte offset off of the inode
// cluster buffer at daddr.
func (g *Geometry) InoAt(daddr int64, off int) uint64 {
	agbno := g.DaddrToAgbno(daddr) + uint32(off>>g.BlockLog)
	slot := uint32(off&(1<<g.BlockLog-1)) / uint32(g.InodeSize)
	return g.Ino(g.DaddrToAgno(daddr), g.Agino(agbno, slot))
}

// BlockBBs is the length of one filesystem block in BBs.
func (g *Geometry) BlockBBs() int { return 1 << g.BlkBBLog }

// SectBBs is the length of one sector in BBs.
func (g *Geometry) SectBBs() int { return 1 << g.SectBBLog }

// AG header locations (XFS_AGF_DADDR, XFS_AGI_DADDR, XFS_AGFL_DADDR): the
// second, third and fourth sector of the AG.
func (g *Geometry) AGFDaddr(agno uint32) int64  { return g.AgbToDaddr(agno, 0) + 1<<g.SectBBLog }
func (g *Geometry) AGIDaddr(agno uint32) int64  { return g.AgbToDaddr(agno, 0) + 2<<g.SectBBLog }
func (g *Geometry) AGFLDaddr(agno uint32) int64 { return g.AgbToDaddr(agno, 0) + 3<<g.SectBBLog }

// InodeLoc is where an inode lives: its cluster buffer and its byte offset
// in it (struct xfs_imap). This struct does not represent an on-disk struct.
type InodeLoc struct {
	Agno         uint32
	Agino        uint32
	ClusterAgbno uint32
	Daddr        int64 // im_blkno: cluster buffer daddr
	Len          int   // im_len: cluster buffer length in BBs
	Offset       int   // im_boffset: byte offset of the inode in the buffer
}

// ImapAligned locates an inode whose chunk alignment can be derived from its
// number alone (xfs_imap with inoalign_mask set, or one block per cluster).
// ok is false when a chunk lookup in the inobt is needed; use ImapInChunk.
func (g *Geometry) ImapAligned(agno, agino uint32) (InodeLoc, bool) {
	agbno := g.AginoToAgbno(agino)
	if g.BlocksPerCluster == 1 {
		return g.imap(agno, agino, agbno), true
	}
	if g.InoAlignMask == 0 {
		return InodeLoc{}, false
	}
	chunk := agbno &^ g.InoAlignMask
	return g.imap(agno, agino, chunk+((agbno-chunk)/g.BlocksPerCluster)*g.BlocksPerCluster), true
}

// ImapInChunk locates an inode given its chunk's first inode (the inobt
// record's ir_startino), as xfs_imap_lookup does.
func (g *Geometry) ImapInChunk(agno, agino, startino uint32) InodeLoc {
	chunk := g.AginoToAgbno(startino)
	agbno := g.AginoToAgbno(agino)
	return g.imap(agno, agino, chunk+((agbno-chunk)/g.BlocksPerCluster)*g.BlocksPerCluster)
}

func (g *Geometry) imap(agno, agino, clusterAgbno uint32) InodeLoc {
	agbno := g.AginoToAgbno(agino)
	off := (agbno-clusterAgbno)*g.InoPBlock + g.AginoToOffset(agino)
	return InodeLoc{
		Agno: agno, Agino: agino, ClusterAgbno: clusterAgbno,
		Daddr:  g.AgbToDaddr(agno, clusterAgbno),
		Len:    int(g.BlocksPerCluster) << g.BlkBBLog,
		Offset: int(off << g.InodeLog),
	}
}

// Cluster is one inode cluster buffer of a chunk. This struct does not
// represent an on-disk struct.
type Cluster struct {
	Agbno      uint32
	Daddr      int64
	Len        int    // BBs
	FirstAgino uint32 // first inode of the cluster
	Allocated  bool   // false for a sparse hole (never read, never cancelled)
}

// ChunkClusters lists the cluster buffers of the chunk starting at startino,
// with their allocation per the allocated-inode mask (xfs_ifree_cluster:
// nbufs = ialloc_blks / blocks_per_cluster; a cluster counts as allocated
// when its first inode's bit is set in alloc).
func (g *Geometry) ChunkClusters(agno, startino uint32, alloc uint64) []Cluster {
	n := g.IallocBlks / g.BlocksPerCluster
	out := make([]Cluster, 0, n)
	base := g.AginoToAgbno(startino)
	for j := uint32(0); j < n; j++ {
		ioff := g.InodesPerCluster * j
		agbno := base + j*g.BlocksPerCluster
		out = append(out, Cluster{
			Agbno: agbno, Daddr: g.AgbToDaddr(agno, agbno), Len: int(g.BlocksPerCluster) << g.BlkBBLog,
			FirstAgino: startino + ioff, Allocated: ioff >= 64 || alloc&(uint64(1)<<ioff) != 0,
		})
	}
	return out
}

// HolemaskToAllocMask expands an inobt holemask to a 64-bit mask of
// allocated inodes (xfs_inobt_irec_to_allocmask): each holemask bit covers
// InodesPerHolemaskBit inodes and a set bit is a hole.
func HolemaskToAllocMask(holemask uint16) uint64 {
	var alloc uint64
	for i := 0; i < 16; i++ {
		if holemask&(1<<i) == 0 {
			alloc |= uint64(0xf) << (i * InodesPerHolemaskBit)
		}
	}
	return alloc
}

// SparseExtent is a run of allocated blocks of a sparse chunk.
// This struct does not represent an on-disk struct.
type SparseExtent struct{ Agbno, Len uint32 }

// ChunkExtents lists the block runs a chunk occupies, per holemask
// (xfs_difree_inode_chunk): the whole chunk if not sparse, else one run per
// run of zero bits in the holemask.
func (g *Geometry) ChunkExtents(startino uint32, holemask uint16) []SparseExtent {
	sagbno := g.AginoToAgbno(startino)
	if holemask == 0 {
		return []SparseExtent{{sagbno, g.IallocBlks}}
	}
	var out []SparseExtent
	i := 0
	for i < 16 {
		if holemask&(1<<i) != 0 {
			i++
			continue
		}
		start := i
		for i < 16 && holemask&(1<<i) == 0 {
			i++
		}
		nbits := uint32(i - start)
		out = append(out, SparseExtent{
			Agbno: sagbno + uint32(start)*InodesPerHolemaskBit/g.InoPBlock,
			Len:   nbits * InodesPerHolemaskBit / g.InoPBlock,
		})
	}
	return out
}
