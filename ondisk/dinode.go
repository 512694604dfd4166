package ondisk

import (
	"fmt"
	"strconv"
)

// Inode core constants (xfs_format.h).
const (
	DinodeMagic           = 0x494e // "IN", XFS_DINODE_MAGIC
	DinodeCoreSize        = 176    // xfs_dinode_size(3): the v3 core; the literal area follows
	DinodeCrcOff          = 100    // XFS_DINODE_CRC_OFF
	DinodeNextUnlinkedOff = 96     // offsetof(struct xfs_dinode, di_next_unlinked)
	DinodeVersion3        = 3
)

// Data fork formats (enum xfs_dinode_fmt, di_format and di_aformat).
const (
	DinodeFmtDev       = 0
	DinodeFmtLocal     = 1
	DinodeFmtExtents   = 2
	DinodeFmtBtree     = 3
	DinodeFmtUUID      = 4
	DinodeFmtMetaBtree = 5
)

// di_flags bits (XFS_DIFLAG_*).
const (
	DiflagRealtime     = 1 << 0
	DiflagPrealloc     = 1 << 1
	DiflagNewRTBM      = 1 << 2
	DiflagImmutable    = 1 << 3
	DiflagAppend       = 1 << 4
	DiflagSync         = 1 << 5
	DiflagNoatime      = 1 << 6
	DiflagNodump       = 1 << 7
	DiflagRTInherit    = 1 << 8
	DiflagProjInherit  = 1 << 9
	DiflagNoSymlinks   = 1 << 10
	DiflagExtsize      = 1 << 11
	DiflagExtszInherit = 1 << 12
	DiflagNodefrag     = 1 << 13
	DiflagFilestream   = 1 << 14
)

// di_flags2 bits (XFS_DIFLAG2_*).
const (
	Diflag2DAX        = 1 << 0
	Diflag2Reflink    = 1 << 1
	Diflag2Cowextsize = 1 << 2
	Diflag2Bigtime    = 1 << 3
	Diflag2Nrext64    = 1 << 4
	Diflag2Metadata   = 1 << 5
)

// File type bits of di_mode (S_IFMT and friends).
const (
	SIFMT   = 0o170000
	SIFSOCK = 0o140000
	SIFLNK  = 0o120000
	SIFREG  = 0o100000
	SIFBLK  = 0o060000
	SIFDIR  = 0o040000
	SIFCHR  = 0o020000
	SIFIFO  = 0o010000
)

// Extent count limits (xfs_format.h XFS_MAX_EXTCNT_*, XFS_MAX_BMBT_EXTLEN).
const (
	MaxExtcntDataForkLarge = 1<<48 - 1
	MaxExtcntAttrForkLarge = 1<<32 - 1
	MaxExtcntDataForkSmall = 1<<31 - 1
	MaxExtcntAttrForkSmall = 1<<15 - 1
	MaxBmbtExtlen          = 1<<21 - 1
)

// Dinode mirrors struct xfs_dinode (v3) field by field, offsets in comments,
// and keeps the literal area (the forks) as raw bytes so that
// Encode(Decode(b)) == b for every inode, allocated or free. Parsed views of
// the forks are methods (fork.go).
//
// The two unions of the core are kept raw, as stored: use Nextents and
// SetNextents rather than the three counter fields directly.
type Dinode struct {
	Magic    uint16 // 0 di_magic
	Mode     uint16 // 2 di_mode
	Version  uint8  // 4 di_version
	Format   uint8  // 5 di_format
	Metatype uint16 // 6 di_metatype (formerly di_onlink)
	UID      uint32 // 8 di_uid
	GID      uint32 // 12 di_gid
	Nlink    uint32 // 16 di_nlink
	ProjidLo uint16 // 20 di_projid_lo
	ProjidHi uint16 // 22 di_projid_hi
	// BigNextents is the 8-byte union at 24: di_big_nextents when
	// XFS_DIFLAG2_NREXT64 is set, otherwise di_v3_pad (zero on v3 inodes;
	// its last two bytes were di_flushiter on v2 inodes).
	BigNextents    uint64    // 24 di_big_nextents | di_v3_pad
	Atime          Timestamp // 32 di_atime
	Mtime          Timestamp // 40 di_mtime
	Ctime          Timestamp // 48 di_ctime
	Size           uint64    // 56 di_size
	Nblocks        uint64    // 64 di_nblocks
	Extsize        uint32    // 72 di_extsize
	SmallNextents  uint32    // 76 di_nextents | di_big_anextents (NREXT64)
	SmallAnextents uint16    // 80 di_anextents | di_nrext64_pad (NREXT64)
	Forkoff        uint8     // 82 di_forkoff (8-byte units into the literal area)
	Aformat        uint8     // 83 di_aformat (s8 on disk)
	Dmevmask       uint32    // 84 di_dmevmask
	Dmstate        uint16    // 88 di_dmstate
	Flags          uint16    // 90 di_flags
	Gen            uint32    // 92 di_gen
	NextUnlinked   uint32    // 96 di_next_unlinked (agino, NullAgino ends a chain)
	CRC            uint32    // 100 di_crc (little-endian on disk)
	ChangeCount    uint64    // 104 di_changecount
	LSN            uint64    // 112 di_lsn
	Flags2         uint64    // 120 di_flags2
	Cowextsize     uint32    // 128 di_cowextsize (di_used_blocks for zoned rtrmap)
	Pad2           [12]byte  // 132 di_pad2
	Crtime         Timestamp // 144 di_crtime
	Ino            uint64    // 152 di_ino
	UUID           [16]byte  // 160 di_uuid
	// Literal is the literal area (XFS_DFORK_DPTR): inode size - 176 bytes
	// holding the data fork and, from Forkoff*8, the attr fork.
	Literal []byte // 176
}

// DecodeDinode decodes one inode; len(b) is the inode size. It checks only
// that b can hold a v3 core; see VerifyDinode.
func DecodeDinode(b []byte) (*Dinode, error) {
	d := &Dinode{}
	if err := d.decode(b, true); err != nil {
		return nil, err
	}
	return d, nil
}

// decode fills d from b; with copyLiteral false, d.Literal aliases b (for
// a verification that does not keep d).
func (d *Dinode) decode(b []byte, copyLiteral bool) error {
	if len(b) < DinodeCoreSize {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: "dinode", Field: "length",
			Found: len(b), Want: DinodeCoreSize, Msg: "too short for a v3 inode core"}
	}
	*d = Dinode{
		Magic:          be.Uint16(b[0:]),
		Mode:           be.Uint16(b[2:]),
		Version:        b[4],
		Format:         b[5],
		Metatype:       be.Uint16(b[6:]),
		UID:            be.Uint32(b[8:]),
		GID:            be.Uint32(b[12:]),
		Nlink:          be.Uint32(b[16:]),
		ProjidLo:       be.Uint16(b[20:]),
		ProjidHi:       be.Uint16(b[22:]),
		BigNextents:    be.Uint64(b[24:]),
		Size:           be.Uint64(b[56:]),
		Nblocks:        be.Uint64(b[64:]),
		Extsize:        be.Uint32(b[72:]),
		SmallNextents:  be.Uint32(b[76:]),
		SmallAnextents: be.Uint16(b[80:]),
		Forkoff:        b[82],
		Aformat:        b[83],
		Dmevmask:       be.Uint32(b[84:]),
		Dmstate:        be.Uint16(b[88:]),
		Flags:          be.Uint16(b[90:]),
		Gen:            be.Uint32(b[92:]),
		NextUnlinked:   be.Uint32(b[96:]),
		CRC:            le.Uint32(b[100:]),
		ChangeCount:    be.Uint64(b[104:]),
		LSN:            be.Uint64(b[112:]),
		Flags2:         be.Uint64(b[120:]),
		Cowextsize:     be.Uint32(b[128:]),
		Ino:            be.Uint64(b[152:]),
	}
	copy(d.Pad2[:], b[132:144])
	copy(d.UUID[:], b[160:176])
	bt := d.HasBigtime()
	d.Atime = DecodeTimestamp(be.Uint64(b[32:]), bt)
	d.Mtime = DecodeTimestamp(be.Uint64(b[40:]), bt)
	d.Ctime = DecodeTimestamp(be.Uint64(b[48:]), bt)
	d.Crtime = DecodeTimestamp(be.Uint64(b[144:]), bt)
	if copyLiteral {
		d.Literal = append([]byte(nil), b[DinodeCoreSize:]...)
	} else {
		d.Literal = b[DinodeCoreSize:]
	}
	return nil
}

// InodeSize is the size of the encoded inode: the core plus the literal area.
func (d *Dinode) InodeSize() int { return DinodeCoreSize + len(d.Literal) }

// Encode writes d into b, which must be InodeSize() bytes long. The stored
// CRC field is written as is; use EncodeCRC to recompute it. Timestamps are
// written in the form d.Flags2 selects (bigtime or legacy).
func (d *Dinode) Encode(b []byte) {
	if len(b) != d.InodeSize() {
		panic(fmt.Sprintf("ondisk: Dinode.Encode into %d bytes, inode is %d", len(b), d.InodeSize()))
	}
	be.PutUint16(b[0:], d.Magic)
	be.PutUint16(b[2:], d.Mode)
	b[4] = d.Version
	b[5] = d.Format
	be.PutUint16(b[6:], d.Metatype)
	be.PutUint32(b[8:], d.UID)
	be.PutUint32(b[12:], d.GID)
	be.PutUint32(b[16:], d.Nlink)
	be.PutUint16(b[20:], d.ProjidLo)
	be.PutUint16(b[22:], d.ProjidHi)
	be.PutUint64(b[24:], d.BigNextents)
	bt := d.HasBigtime()
	be.PutUint64(b[32:], d.Atime.Encode(bt))
	be.PutUint64(b[40:], d.Mtime.Encode(bt))
	be.PutUint64(b[48:], d.Ctime.Encode(bt))
	be.PutUint64(b[56:], d.Size)
	be.PutUint64(b[64:], d.Nblocks)
	be.PutUint32(b[72:], d.Extsize)
	be.PutUint32(b[76:], d.SmallNextents)
	be.PutUint16(b[80:], d.SmallAnextents)
	b[82] = d.Forkoff
	b[83] = d.Aformat
	be.PutUint32(b[84:], d.Dmevmask)
	be.PutUint16(b[88:], d.Dmstate)
	be.PutUint16(b[90:], d.Flags)
	be.PutUint32(b[92:], d.Gen)
	be.PutUint32(b[96:], d.NextUnlinked)
	le.PutUint32(b[100:], d.CRC)
	be.PutUint64(b[104:], d.ChangeCount)
	be.PutUint64(b[112:], d.LSN)
	be.PutUint64(b[120:], d.Flags2)
	be.PutUint32(b[128:], d.Cowextsize)
	copy(b[132:144], d.Pad2[:])
	be.PutUint64(b[144:], d.Crtime.Encode(bt))
	be.PutUint64(b[152:], d.Ino)
	copy(b[160:176], d.UUID[:])
	copy(b[DinodeCoreSize:], d.Literal)
}

// EncodeCRC encodes d into b and recomputes the CRC (xfs_dinode_calc_crc),
// storing it in d.CRC too.
func (d *Dinode) EncodeCRC(b []byte) {
	d.Encode(b)
	DinodeCalcCRC(b)
	d.CRC = le.Uint32(b[DinodeCrcOff:])
}

// Bytes returns a new encoding of d (with the stored CRC).
func (d *Dinode) Bytes() []byte {
	b := make([]byte, d.InodeSize())
	d.Encode(b)
	return b
}

// DinodeCalcCRC recomputes the CRC of the encoded inode b, which must be
// exactly one inode (xfs_dinode_calc_crc over sb_inodesize bytes).
func DinodeCalcCRC(b []byte) { UpdateCksum(b, DinodeCrcOff) }

// SetDinodeLSN sets di_lsn of the encoded v3 inode b and recomputes its
// CRC (xfs_iflush's stamp).
func SetDinodeLSN(b []byte, lsn uint64) {
	be.PutUint64(b[DinodeLSNOff:], lsn)
	DinodeCalcCRC(b)
}

// DinodeNextUnlinked reads di_next_unlinked from the encoded inode b.
func DinodeNextUnlinked(b []byte) uint32 { return be.Uint32(b[DinodeNextUnlinkedOff:]) }

// SetDinodeNextUnlinked writes di_next_unlinked into the encoded inode b and
// recomputes its CRC, as the kernel's xfs_iunlink_log_dinode does on the
// cluster buffer. The byte range a caller logs is
// [DinodeNextUnlinkedOff, DinodeNextUnlinkedOff+4) plus the CRC.
func SetDinodeNextUnlinked(b []byte, agino uint32) {
	be.PutUint32(b[DinodeNextUnlinkedOff:], agino)
	DinodeCalcCRC(b)
}

// PutDinodeRdev stores the device number of a device inode in the encoded
// inode b: the first 4 bytes of its data fork (xfs_dinode_put_rdev).
func PutDinodeRdev(b []byte, rdev uint32) { be.PutUint32(b[DinodeCoreSize:], rdev) }

// HasBigtime reports XFS_DIFLAG2_BIGTIME (xfs_dinode_has_bigtime).
func (d *Dinode) HasBigtime() bool { return d.Version >= 3 && d.Flags2&Diflag2Bigtime != 0 }

// HasLargeExtentCounts reports XFS_DIFLAG2_NREXT64
// (xfs_dinode_has_large_extent_counts).
func (d *Dinode) HasLargeExtentCounts() bool {
	return d.Version >= 3 && d.Flags2&Diflag2Nrext64 != 0
}

// IsMetadir reports a metadata-directory inode (xfs_dinode_is_metadir).
func (d *Dinode) IsMetadir() bool { return d.Version >= 3 && d.Flags2&Diflag2Metadata != 0 }

// Projid is the 32-bit project id.
func (d *Dinode) Projid() uint32 { return uint32(d.ProjidHi)<<16 | uint32(d.ProjidLo) }

// IsFree reports an unallocated inode (di_mode 0).
func (d *Dinode) IsFree() bool { return d.Mode == 0 }

// IsDir, IsReg and IsSymlink test the file type in di_mode.
func (d *Dinode) IsDir() bool     { return d.Mode&SIFMT == SIFDIR }
func (d *Dinode) IsReg() bool     { return d.Mode&SIFMT == SIFREG }
func (d *Dinode) IsSymlink() bool { return d.Mode&SIFMT == SIFLNK }

// IsDev reports a device, fifo or socket inode (data fork format DEV).
func (d *Dinode) IsDev() bool {
	switch d.Mode & SIFMT {
	case SIFCHR, SIFBLK, SIFIFO, SIFSOCK:
		return true
	}
	return false
}

// ResetForFree resets the core the way the kernel frees an inode
// (xfs_ifree → xfs_inode_uninit, then xfs_inode_to_disk at flush): mode 0,
// generation + 1, di_flags 0, di_flags2 = newFlags2 (the filesystem's
// new_diflags2: BIGTIME and NREXT64 where the filesystem has them), forkoff
// 0, both fork formats EXTENTS, extent counts and nblocks 0, next_unlinked
// NULLAGINO. di_size becomes 0 unless keepSize (inline symlinks and
// shortform directories keep theirs). The v3 pad and metatype are zeroed
// as xfs_inode_to_disk does. uid, gid, nlink, timestamps (re-encoded in the
// new form), extsize, cowextsize and the literal area are left alone;
// ChangeCount and LSN are the caller's (one iversion bump per logging
// transaction). The CRC is not recomputed: encode with EncodeCRC.
func (d *Dinode) ResetForFree(keepSize bool, newFlags2 uint64) {
	d.Mode = 0
	d.Gen++
	d.Flags = 0
	d.Flags2 = newFlags2
	d.Forkoff = 0
	d.Format = DinodeFmtExtents
	d.Aformat = DinodeFmtExtents
	d.Metatype = 0
	d.BigNextents = 0 // di_big_nextents or di_v3_pad, zero either way
	d.SmallNextents = 0
	d.SmallAnextents = 0
	d.Nblocks = 0
	if !keepSize {
		d.Size = 0
	}
	d.Pad2 = [12]byte{}
	d.NextUnlinked = NullAgino
}

// NewDiflags2 is the di_flags2 a filesystem gives new (and freed) inodes
// (xfs_ialloc_setup_geometry: igeo->new_diflags2).
func (g *Geometry) NewDiflags2() uint64 {
	var f uint64
	if g.HasBigtime {
		f |= Diflag2Bigtime
	}
	if g.HasNrext64 {
		f |= Diflag2Nrext64
	}
	return f
}

// modeKnown mirrors xfs_mode_to_ftype != XFS_DIR3_FT_UNKNOWN.
func modeKnown(mode uint16) bool {
	switch mode & SIFMT {
	case SIFREG, SIFDIR, SIFCHR, SIFBLK, SIFIFO, SIFSOCK, SIFLNK:
		return true
	}
	return false
}

// DirMaxExtents is m_dir_geo->max_extents:
// (XFS_DIR2_MAX_SPACES * XFS_DIR2_SPACE_SIZE) >> sb_blocklog.
func (g *Geometry) DirMaxExtents() uint64 { return (3 << 35) >> g.BlockLog }

// VerifyDinode is the inode read verifier (xfs_dinode_verify) for the
// encoded inode b (len(b) = inode size) that should be inode number ino.
// Errors are *CorruptError with Struct "dinode <ino>" and the failing field.
// c.Daddr and c.AG locate the cluster buffer in the report.
func VerifyDinode(b []byte, ino uint64, c VerifyCtx) error {
	var d Dinode
	return verifyDinode(&d, b, ino, c, false)
}

// DecodeVerifiedDinodeInto is DecodeVerifiedDinode into d, without a
// copy: d.Literal aliases b.
func DecodeVerifiedDinodeInto(d *Dinode, b []byte, ino uint64, c VerifyCtx) error {
	return verifyDinode(d, b, ino, c, false)
}

// DecodeVerifiedDinode is VerifyDinode and DecodeDinode in one decode.
func DecodeVerifiedDinode(b []byte, ino uint64, c VerifyCtx) (*Dinode, error) {
	d := &Dinode{}
	if err := verifyDinode(d, b, ino, c, true); err != nil {
		return nil, err
	}
	return d, nil
}

func verifyDinode(d *Dinode, b []byte, ino uint64, c VerifyCtx, copyLiteral bool) error {
	w := c.Where()
	if len(b) != int(c.G.InodeSize) {
		return w.Corrupt(dinodeStruct(ino), "length", len(b), int(c.G.InodeSize), "buffer is not one inode")
	}
	if err := d.decode(b, copyLiteral); err != nil {
		return err
	}
	if d.Magic != DinodeMagic {
		return w.Corrupt(dinodeStruct(ino), "di_magic", d.Magic, uint16(DinodeMagic), "")
	}
	if d.Version != DinodeVersion3 {
		return w.Corrupt(dinodeStruct(ino), "di_version", d.Version, uint8(DinodeVersion3), "")
	}
	if !VerifyCksum(b, DinodeCrcOff) {
		return w.Corrupt(dinodeStruct(ino), "di_crc", d.CRC, Cksum(b, DinodeCrcOff), "")
	}
	return d.verify(ino, c)
}

// Verify runs VerifyDinode on d's encoding. The CRC checked is the stored
// d.CRC: after changing fields, encode with EncodeCRC first.
func (d *Dinode) Verify(ino uint64, c VerifyCtx) error {
	if d.InodeSize() != int(c.G.InodeSize) {
		return c.Where().Corrupt(dinodeStruct(ino), "length", d.InodeSize(), int(c.G.InodeSize), "")
	}
	return VerifyDinode(d.Bytes(), ino, c)
}

func (d *Dinode) verify(ino uint64, c VerifyCtx) error {
	w := c.Where()
	g := c.G
	bad := func(field string, found, want any, msg string) error {
		return w.Corrupt(dinodeStruct(ino), field, found, want, msg)
	}
	if d.Ino != ino {
		return bad("di_ino", d.Ino, ino, "")
	}
	if d.UUID != g.BlockUUID {
		return bad("di_uuid", fmtUUID(d.UUID), fmtUUID(g.BlockUUID), "")
	}
	if !d.IsMetadir() && d.Metatype != 0 {
		return bad("di_metatype", d.Metatype, uint16(0), "")
	}
	if d.Size&(1<<63) != 0 {
		return bad("di_size", d.Size, nil, "negative")
	}
	mode := d.Mode
	if mode != 0 && !modeKnown(mode) {
		return bad("di_mode", fmt.Sprintf("%#o", mode), nil, "unknown file type")
	}
	if (d.IsSymlink() || d.IsDir()) && d.Size == 0 && d.Nlink != 0 {
		return bad("di_size", d.Size, nil, "zero-length linked symlink or directory")
	}
	// xfs_dinode_verify_nrext64
	if d.HasLargeExtentCounts() {
		if !g.HasNrext64 {
			return bad("di_flags2", d.Flags2, nil, "NREXT64 on a filesystem without nrext64")
		}
		if d.SmallAnextents != 0 {
			return bad("di_nrext64_pad", d.SmallAnextents, uint16(0), "")
		}
	} else if d.BigNextents != 0 {
		return bad("di_v3_pad", d.BigNextents, uint64(0), "")
	}
	nextents := d.Nextents(DataFork)
	naextents := d.Nextents(AttrFork)
	if mode != 0 && nextents+naextents > d.Nblocks {
		return bad("di_nblocks", d.Nblocks, nil, fmt.Sprintf("fewer than the %d extents", nextents+naextents))
	}
	if d.IsDir() && nextents > g.DirMaxExtents() {
		return bad("di_nextents", nextents, g.DirMaxExtents(), "directory extent count")
	}
	if mode != 0 && int(d.Forkoff)<<3 > int(g.InodeSize) {
		return bad("di_forkoff", d.Forkoff, nil, "beyond the inode")
	}
	if mode != 0 && d.Flags&DiflagRealtime != 0 && g.SB.RBlocks == 0 {
		return bad("di_flags", d.Flags, nil, "realtime file without a realtime device")
	}
	// xfs_dinode_verify_forkoff
	if d.Forkoff != 0 {
		switch d.Format {
		case DinodeFmtDev:
			if d.Forkoff != 1 {
				return bad("di_forkoff", d.Forkoff, uint8(1), "device inode")
			}
		case DinodeFmtLocal, DinodeFmtExtents, DinodeFmtBtree:
			if int(d.Forkoff) >= len(d.Literal)>>3 {
				return bad("di_forkoff", d.Forkoff, nil, fmt.Sprintf("not below the literal area (%d bytes)", len(d.Literal)))
			}
		default:
			return bad("di_format", d.Format, nil, "invalid data fork format")
		}
	}
	switch mode & SIFMT {
	case SIFIFO, SIFCHR, SIFBLK, SIFSOCK:
		if d.Format != DinodeFmtDev {
			return bad("di_format", d.Format, uint8(DinodeFmtDev), "device inode")
		}
	case SIFREG, SIFLNK, SIFDIR:
		if err := d.verifyFork(DataFork, bad); err != nil {
			return err
		}
	case 0:
		// Uninitialized inode ok.
	default:
		return bad("di_mode", fmt.Sprintf("%#o", mode), nil, "unknown file type")
	}
	if d.Forkoff != 0 {
		if err := d.verifyFork(AttrFork, bad); err != nil {
			return err
		}
	} else {
		// A fresh inode of a new cluster has di_aformat 0; any other
		// inode without an attr fork, free ones too, has EXTENTS.
		if d.Aformat != 0 && d.Aformat != DinodeFmtExtents {
			return bad("di_aformat", d.Aformat, uint8(DinodeFmtExtents), "no attr fork")
		}
		if naextents != 0 {
			return bad("di_anextents", naextents, uint64(0), "no attr fork")
		}
	}
	if err := d.verifyExtsize(g, bad); err != nil {
		return err
	}
	flags2 := d.Flags2
	if flags2&(Diflag2Reflink|Diflag2Cowextsize) != 0 && !g.HasReflink {
		return bad("di_flags2", flags2, nil, "reflink flags on a filesystem without reflink")
	}
	if flags2&Diflag2Reflink != 0 && mode&SIFMT != SIFREG {
		return bad("di_flags2", flags2, nil, "reflink on a non-regular file")
	}
	if flags2&Diflag2Reflink != 0 && d.Flags&DiflagRealtime != 0 {
		return bad("di_flags2", flags2, nil, "reflink on a realtime file")
	}
	if err := d.verifyCowextsize(g, bad); err != nil {
		return err
	}
	if d.HasBigtime() && !g.HasBigtime {
		return bad("di_flags2", flags2, nil, "BIGTIME on a filesystem without bigtime")
	}
	if flags2&Diflag2Metadata != 0 && g.SB.FeatIncompat&FeatIncompatMetadir == 0 {
		return bad("di_flags2", flags2, nil, "METADATA on a filesystem without metadir")
	}
	if d.Format != DinodeFmtMetaBtree && nextents+naextents == 0 && d.Nblocks != 0 {
		return bad("di_nblocks", d.Nblocks, uint64(0), "blocks without extents")
	}
	return nil
}

// verifyFork is xfs_dinode_verify_fork.
func (d *Dinode) verifyFork(fork int, bad func(string, any, any, string) error) error {
	size := uint64(d.ForkSize(fork))
	format := d.ForkFormat(fork)
	n := d.Nextents(fork)
	ff, nf := "di_format", "di_nextents"
	if fork == AttrFork {
		ff, nf = "di_aformat", "di_anextents"
	}
	if fork == DataFork {
		if d.IsDir() && d.Size != 0 && d.Size <= size && format != DinodeFmtLocal {
			return bad(ff, format, uint8(DinodeFmtLocal), "directory small enough to be shortform")
		}
		if d.IsSymlink() && d.Size <= size && format != DinodeFmtExtents && format != DinodeFmtLocal {
			return bad(ff, format, nil, "symlink small enough to be local")
		}
		if d.Size > size && format == DinodeFmtLocal {
			return bad("di_size", d.Size, size, "local fork larger than the fork")
		}
	}
	switch format {
	case DinodeFmtLocal:
		if d.IsReg() && fork == DataFork {
			return bad(ff, format, nil, "local regular file")
		}
		if n != 0 {
			return bad(nf, n, uint64(0), "local fork")
		}
	case DinodeFmtExtents:
		if max := size / BmbtRecLen; n > max {
			return bad(nf, n, max, "more extents than the fork holds")
		}
	case DinodeFmtBtree:
		if max := MaxExtents(d.HasLargeExtentCounts(), fork); n > max {
			return bad(nf, n, max, "")
		}
	default:
		return bad(ff, format, nil, "invalid fork format")
	}
	return nil
}

// MaxExtents is xfs_iext_max_nextents.
func MaxExtents(large bool, fork int) uint64 {
	switch {
	case large && fork == DataFork:
		return MaxExtcntDataForkLarge
	case large:
		return MaxExtcntAttrForkLarge
	case fork == DataFork:
		return MaxExtcntDataForkSmall
	default:
		return MaxExtcntAttrForkSmall
	}
}

// verifyExtsize is xfs_inode_validate_extsize.
func (d *Dinode) verifyExtsize(g *Geometry, bad func(string, any, any, string) error) error {
	ext, mode := d.Extsize, d.Mode
	rt := d.Flags&DiflagRealtime != 0
	hint := d.Flags&DiflagExtsize != 0
	inherit := d.Flags&DiflagExtszInherit != 0
	isDir, isReg := mode&SIFMT == SIFDIR, mode&SIFMT == SIFREG
	unit := uint64(g.BlockSize)
	if rt {
		unit = uint64(g.SB.RExtSize) << g.BlockLog
	}
	switch {
	case (hint || inherit) && !(isDir || isReg):
		return bad("di_flags", d.Flags, nil, "extent size hint on a special file")
	case hint && !isReg:
		return bad("di_flags", d.Flags, nil, "EXTSIZE on a non-regular file")
	case inherit && !isDir:
		return bad("di_flags", d.Flags, nil, "EXTSZINHERIT on a non-directory")
	case (hint || inherit) && ext == 0:
		return bad("di_extsize", ext, nil, "hint flag with zero size")
	case mode != 0 && !(hint || inherit) && ext != 0:
		return bad("di_extsize", ext, uint32(0), "size without hint flag")
	case unit == 0 || (uint64(ext)<<g.BlockLog)%unit != 0:
		return bad("di_extsize", ext, nil, "not a multiple of the extent unit")
	case ext > MaxBmbtExtlen:
		return bad("di_extsize", ext, nil, "larger than the largest extent")
	case !rt && ext > g.SB.AGBlocks/2:
		return bad("di_extsize", ext, g.SB.AGBlocks/2, "larger than half an AG")
	}
	return nil
}

// verifyCowextsize is xfs_inode_validate_cowextsize.
func (d *Dinode) verifyCowextsize(g *Geometry, bad func(string, any, any, string) error) error {
	ext, mode := d.Cowextsize, d.Mode
	rt := d.Flags&DiflagRealtime != 0
	hint := d.Flags2&Diflag2Cowextsize != 0
	isDir, isReg := mode&SIFMT == SIFDIR, mode&SIFMT == SIFREG
	unit := uint64(g.BlockSize)
	if rt {
		unit = uint64(g.SB.RExtSize) << g.BlockLog
	}
	switch {
	case hint && !g.HasReflink:
		return bad("di_flags2", d.Flags2, nil, "COWEXTSIZE without reflink")
	case hint && !(isDir || isReg):
		return bad("di_flags2", d.Flags2, nil, "COWEXTSIZE on a special file")
	case hint && ext == 0:
		return bad("di_cowextsize", ext, nil, "hint flag with zero size")
	case mode != 0 && !hint && ext != 0:
		return bad("di_cowextsize", ext, uint32(0), "size without hint flag")
	case unit == 0 || (uint64(ext)<<g.BlockLog)%unit != 0:
		return bad("di_cowextsize", ext, nil, "not a multiple of the extent unit")
	case ext > MaxBmbtExtlen:
		return bad("di_cowextsize", ext, nil, "larger than the largest extent")
	case !rt && ext > g.SB.AGBlocks/2:
		return bad("di_cowextsize", ext, g.SB.AGBlocks/2, "larger than half an AG")
	}
	return nil
}

// VerifyInodeBuf is the inode cluster buffer verifier (xfs_inode_buf_verify):
// every inode slot has the dinode magic, version 3, and a next_unlinked
// that is NULLAGINO or a valid agino of the buffer's AG. Per-inode CRCs are
// checked when an inode is read (VerifyDinode), not here.
func VerifyInodeBuf(b []byte, c VerifyCtx) error {
	isz := int(c.G.InodeSize)
	agno := c.AG
	if agno == NoAG {
		agno = c.G.DaddrToAgno(c.Daddr)
	}
	for off := 0; off+isz <= len(b); off += isz {
		ip := b[off : off+isz]
		magic, ver, next := be.Uint16(ip), ip[4], be.Uint32(ip[DinodeNextUnlinkedOff:])
		slot := func() string { return fmt.Sprintf("inode buffer slot %d", off/isz) } // only for errors: this is per slot of every cluster read
		switch {
		case magic != DinodeMagic:
			return c.Where().Corrupt(slot(), "di_magic", magic, uint16(DinodeMagic), "")
		case ver != DinodeVersion3:
			return c.Where().Corrupt(slot(), "di_version", ver, uint8(DinodeVersion3), "")
		case next != NullAgino && !c.G.ValidAgino(agno, next):
			return c.Where().Corrupt(slot(), "di_next_unlinked", next, nil, "not an inode of this AG")
		}
	}
	return nil
}

// dinodeStruct names inode ino in errors ("dinode 133"); strconv, not fmt:
// every inode verification builds it.
func dinodeStruct(ino uint64) string { return "dinode " + strconv.FormatUint(ino, 10) }

func fmtUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
