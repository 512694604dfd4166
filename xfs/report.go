package xfs

// Reports returned by Info and Scan, and the values every report shares:
// an LSN, a mode, a problem. They are plain values shaped for display and
// for JSON (the form docs/xfsfree.schema.json documents: snake_case
// members, lists never null, one form for each quantity); they do not
// represent on-disk structures. report_json.go holds their JSON methods.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xfsfree/xfsfree/ondisk"
)

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

// LogReport is the state of the internal log. For an external log (not
// read) only External and Note are meaningful, and JSON has only them.
type LogReport struct {
	External bool `json:"external"`
	// Clean: the log needs no recovery (its head is its tail).
	Clean bool `json:"log_clean"`
	// Head is where the next record goes (cycle and block); Tail is the
	// log's tail LSN (the last record's h_tail_lsn).
	Head LSN    `json:"head"`
	Tail LSN    `json:"tail"`
	Note string `json:"note,omitempty"`
}

// LSN is a log sequence number as reports give it: the cycle and the log
// block (512-byte units from the log's start). xfs_logprint writes it
// cycle:block, as String does.
type LSN struct {
	Cycle uint32 `json:"cycle"`
	Block uint32 `json:"block"`
}

// LSNOf splits an on-disk LSN.
func LSNOf(l ondisk.LSN) LSN { return LSN{Cycle: l.Cycle(), Block: l.Block()} }

// MakeLSN is the LSN of log block block in cycle cycle.
func MakeLSN(cycle uint32, block int64) LSN { return LSN{Cycle: cycle, Block: uint32(block)} }

func (l LSN) String() string { return fmt.Sprintf("%d:%d", l.Cycle, l.Block) }

// ParseLSN reads an LSN written cycle:block.
func ParseLSN(s string) (LSN, error) {
	var l LSN
	if _, err := fmt.Sscanf(s, "%d:%d", &l.Cycle, &l.Block); err != nil {
		return LSN{}, fmt.Errorf("LSN %q: want cycle:block", s)
	}
	return l, nil
}

// Mode is an inode's di_mode: its type and permission bits. Reports give
// it in octal as ls and stat do ("0100644"), in text and in JSON (a
// string), with its type's name beside it.
type Mode uint16

// String is the mode in octal with a leading 0: "0100644".
func (m Mode) String() string { return fmt.Sprintf("0%o", uint16(m)) }

// Type names the mode's file type: regular, directory, symlink, chardev,
// blockdev, fifo, socket; free for a zero mode (a free inode), unknown
// for a type bit pattern that is none of those.
func (m Mode) Type() string {
	switch uint16(m) & ondisk.SIFMT {
	case ondisk.SIFREG:
		return "regular"
	case ondisk.SIFDIR:
		return "directory"
	case ondisk.SIFLNK:
		return "symlink"
	case ondisk.SIFCHR:
		return "chardev"
	case ondisk.SIFBLK:
		return "blockdev"
	case ondisk.SIFIFO:
		return "fifo"
	case ondisk.SIFSOCK:
		return "socket"
	}
	if m == 0 {
		return "free"
	}
	return "unknown"
}

// Perm is the mode as ls shows it: "-rw-r--r--".
func (m Mode) Perm() string { return PermString(uint16(m)) }

// Problem is an error as reports give it, and the one JSON form of every
// error xfsfree reports (check's problems and warnings, scan's and free's
// per-AG and per-inode errors, a failed command's error): the message and,
// where known, the place: the AG, the block (daddr: 512-byte units from
// the filesystem's start), the on-disk structure and field, the inode.
type Problem struct {
	AG      uint32 // NoAG when not tied to one AG
	Daddr   int64  // -1 when no one block is to blame
	Struct  string // "AGI", "inobt block", "dinode 133", ...; "" when unknown
	Field   string // "agi_count", "crc", ...; "" when unknown
	Ino     uint64 // 0 when not about one inode
	Message string // the whole message, as the text output gives it
}

// NoAG is a Problem's AG when it is not tied to one AG.
const NoAG = ondisk.NoAG

// ProblemOf is err as a Problem: its place is taken from an
// *ondisk.CorruptError inside it, else from agno, daddr and ino (give
// NoAG, -1 and 0 for what is not known).
func ProblemOf(agno uint32, daddr int64, ino uint64, err error) Problem {
	p := Problem{AG: agno, Daddr: daddr, Ino: ino, Message: err.Error()}
	var ce *ondisk.CorruptError
	if errors.As(err, &ce) {
		p.Struct, p.Field = ce.Struct, ce.Field
		if ce.AG != ondisk.NoAG {
			p.AG = ce.AG
		}
		if ce.Daddr >= 0 {
			p.Daddr = ce.Daddr
		}
	}
	return p
}

// String is the message, preceded by its AG when it does not name it
// already (a message never says "AG 2: AG 2").
func (p Problem) String() string {
	if p.AG == ondisk.NoAG || strings.HasPrefix(p.Message, fmt.Sprintf("AG %d", p.AG)) {
		return p.Message
	}
	return fmt.Sprintf("AG %d: %s", p.AG, p.Message)
}

// AGInfo is one AG's header summary.
type AGInfo struct {
	AG          uint32 `json:"ag"`
	Length      uint32 `json:"length"`
	ICount      uint32 `json:"icount"`      // agi_count
	IFree       uint32 `json:"ifree"`       // agi_freecount
	FreeBlocks  uint32 `json:"free_blocks"` // agf_freeblks
	FLCount     uint32 `json:"agfl_blocks"` // agf_flcount
	BtreeBlocks uint32 `json:"btree_blocks"`
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
	FreeChunks  int         `json:"free_chunk_count"`
	ChunkInodes uint64      `json:"free_chunk_inodes"`
	ChunkBlks   uint64      `json:"free_chunk_blocks"`
	Errors      []ScanError `json:"errors"`
}

// AGScan is one AG's orphans and fully free chunks. Error is set when
// the AG could not be scanned (its lists are then empty).
type AGScan struct {
	AG         uint32      `json:"ag"`
	Chains     []Chain     `json:"unlinked_chains"`
	FreeChunks []FreeChunk `json:"free_chunks"`
	Error      *Problem    `json:"error,omitempty"`
}

// Chain is one AGI unlinked bucket's list, head first.
type Chain struct {
	Bucket int      `json:"bucket"`
	Inodes []Orphan `json:"inodes"`
}

// Orphan is an inode on an unlinked list. JSON gives its mode's type
// name beside the mode ("type").
type Orphan struct {
	Ino     uint64 `json:"ino"`
	Agino   uint32 `json:"agino"`
	Mode    Mode   `json:"mode"`
	Nlink   uint32 `json:"nlink"`
	Size    uint64 `json:"size"`
	NBlocks uint64 `json:"blocks"` // di_nblocks: data, attr and bmbt blocks
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
type ScanError = Problem
