package xfs

// Reports returned by Info and Scan. They are plain values shaped for
// display and for --json; they do not represent on-disk structures.

// InfoReport is what `xfsfree info` shows.
type InfoReport struct {
	Device   string     `json:"device"`
	Buffered bool       `json:"buffered_io"`
	Geometry GeomReport `json:"geometry"`
	Features []string   `json:"features"`
	Counters Counters   `json:"superblock_counters"`
	AGSums   Counters   `json:"ag_sums"`
	Log      LogReport  `json:"log"`
	AGs      []AGInfo   `json:"ags"`
}

// GeomReport is the filesystem geometry.
type GeomReport struct {
	UUID             string `json:"uuid"`
	Label            string `json:"label"`
	BlockSize        uint32 `json:"block_size"`
	SectorSize       uint32 `json:"sector_size"`
	InodeSize        uint32 `json:"inode_size"`
	DataBlocks       uint64 `json:"data_blocks"`
	AGCount          uint32 `json:"ag_count"`
	AGBlocks         uint32 `json:"ag_blocks"`
	RootIno          uint64 `json:"root_ino"`
	InodesPerChunk   uint32 `json:"inodes_per_chunk"`
	ChunkBlocks      uint32 `json:"chunk_blocks"`
	ClusterBlocks    uint32 `json:"cluster_blocks"`
	InodesPerCluster uint32 `json:"inodes_per_cluster"`
	InodeAlignment   uint32 `json:"inode_alignment_blocks"`
	SparseAlignment  uint32 `json:"sparse_alignment_blocks"`
	LogStart         uint64 `json:"log_start_fsb"`
	LogBlocks        uint32 `json:"log_blocks"`
	LogSectorSize    uint32 `json:"log_sector_size"`
	LogStripeUnit    uint32 `json:"log_stripe_unit"`
}

// Counters are the inode and free-block summary counters.
type Counters struct {
	ICount   uint64 `json:"icount"`
	IFree    uint64 `json:"ifree"`
	FDBlocks uint64 `json:"fdblocks"`
}

// LogReport is the state of the internal log.
type LogReport struct {
	External  bool   `json:"external"`
	Clean     bool   `json:"clean"`
	HeadBlock int64  `json:"head_block"`
	HeadCycle uint32 `json:"head_cycle"`
	TailBlock int64  `json:"tail_block"`
	TailCycle uint32 `json:"tail_cycle"`
	Note      string `json:"note,omitempty"`
}

// AGInfo is one AG's header summary.
type AGInfo struct {
	AG          uint32 `json:"ag"`
	Length      uint32 `json:"length"`
	ICount      uint32 `json:"icount"`
	IFree       uint32 `json:"ifree"`
	FreeBlocks  uint32 `json:"freeblks"`
	FLCount     uint32 `json:"flcount"`
	BtreeBlocks uint32 `json:"btreeblks"`
	Longest     uint32 `json:"longest"`
	InobtLevel  uint32 `json:"inobt_level"`
	FinobtLevel uint32 `json:"finobt_level,omitempty"`
	Unlinked    int    `json:"unlinked_buckets_in_use"`
}

// ScanReport is what `xfsfree scan` shows: what `free` would release.
type ScanReport struct {
	Device      string      `json:"device"`
	LogClean    bool        `json:"log_clean"`
	Note        string      `json:"note,omitempty"`
	AGs         []AGScan    `json:"ags"`
	Orphans     int         `json:"orphans"`
	OrphanBlks  uint64      `json:"orphan_blocks"`
	FreeChunks  int         `json:"free_chunks"`
	ChunkInodes uint64      `json:"free_chunk_inodes"`
	ChunkBlks   uint64      `json:"free_chunk_blocks"`
	Errors      []ScanError `json:"errors,omitempty"`
}

// AGScan is one AG's orphans and fully free chunks.
type AGScan struct {
	AG         uint32      `json:"ag"`
	Chains     []Chain     `json:"unlinked_chains"`
	FreeChunks []FreeChunk `json:"free_chunks"`
	Err        string      `json:"error,omitempty"`
}

// Chain is one AGI unlinked bucket's list, head first.
type Chain struct {
	Bucket int      `json:"bucket"`
	Inodes []Orphan `json:"inodes"`
}

// Orphan is an inode on an unlinked list.
type Orphan struct {
	Ino     uint64 `json:"ino"`
	Agino   uint32 `json:"agino"`
	Mode    uint16 `json:"mode"`
	Nlink   uint32 `json:"nlink"`
	Size    uint64 `json:"size"`
	NBlocks uint64 `json:"nblocks"`
	Next    uint32 `json:"next_unlinked"`
	// Detail is filled by DescribeOrphans (scan -v): what the orphan
	// holds. DetailErr says why it could not be.
	Detail    *InodeInfo `json:"detail,omitempty"`
	DetailErr string     `json:"detail_error,omitempty"`
}

// FreeChunk is an inode chunk whose inodes are all free.
type FreeChunk struct {
	StartIno   uint64 `json:"start_ino"`
	StartAgino uint32 `json:"start_agino"`
	Holemask   uint16 `json:"holemask"`
	Inodes     uint32 `json:"inodes"`
	Blocks     uint32 `json:"blocks"`
}

// ScanError is a problem found in one AG that stopped its scan.
type ScanError struct {
	AG  uint32 `json:"ag"`
	Err string `json:"error"`
}
