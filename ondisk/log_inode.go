package ondisk

import "fmt"

// Inode log items (struct xfs_inode_log_format) and the inode core as the
// kernel logs it (struct xfs_log_dinode), with its conversion to the disk
// format that recovery replays.

// Inode log item sizes.
const (
	InodeLogFormatSize   = 56  // sizeof(struct xfs_inode_log_format)
	InodeLogFormat32Size = 52  // sizeof(struct xfs_inode_log_format_32)
	LogDinodeSize        = 176 // sizeof(struct xfs_log_dinode) (v3 inodes)
	LogDinodeV2Size      = 96  // offsetof(struct xfs_log_dinode, di_next_unlinked)
)

// Inode log format field flags (XFS_ILOG_*).
const (
	ILogCore   = 0x001
	ILogDData  = 0x002
	ILogDExt   = 0x004
	ILogDBroot = 0x008
	ILogDev    = 0x010
	ILogUUID   = 0x020
	ILogAData  = 0x040
	ILogAExt   = 0x080
	ILogABroot = 0x100
	ILogDOwner = 0x200
	ILogAOwner = 0x400
	ILogDFork  = ILogDData | ILogDExt | ILogDBroot
	ILogAFork  = ILogAData | ILogAExt | ILogABroot
)

// InodeLogFormat mirrors struct xfs_inode_log_format (host byte order). The
// 32-bit variant without ilf_pad (xfs_inode_log_format_32) is decoded into
// the same struct.
type InodeLogFormat struct {
	Type    uint16   // ilf_type: LIInode
	Size    uint16   // ilf_size: regions in the item
	Fields  uint32   // ilf_fields: ILog* bits
	ASize   uint16   // ilf_asize: attr fork bytes logged
	DSize   uint16   // ilf_dsize: data fork bytes logged
	Ino     uint64   // ilf_ino
	U       [16]byte // ilf_u: ilfu_rdev in the first 4 bytes (host order)
	Blkno   int64    // ilf_blkno: daddr of the inode cluster buffer
	Len     int32    // ilf_len: cluster buffer length in BBs
	Boffset int32    // ilf_boffset: byte offset of the inode in the buffer
}

// Rdev is ilf_u.ilfu_rdev.
func (f *InodeLogFormat) Rdev() uint32 { return le.Uint32(f.U[:]) }

// DecodeInodeLogFormat decodes the format region of an inode log item; its
// length selects the 64-bit (56 bytes) or 32-bit (52 bytes) layout, as
// xfs_inode_item_format_convert does.
func DecodeInodeLogFormat(b []byte) (*InodeLogFormat, error) {
	f := &InodeLogFormat{}
	switch len(b) {
	case InodeLogFormatSize:
		f.Ino = le.Uint64(b[16:])
		copy(f.U[:], b[24:40])
		f.Blkno = int64(le.Uint64(b[40:]))
		f.Len = int32(le.Uint32(b[48:]))
		f.Boffset = int32(le.Uint32(b[52:]))
	case InodeLogFormat32Size:
		f.Ino = le.Uint64(b[12:])
		copy(f.U[:], b[20:36])
		f.Blkno = int64(le.Uint64(b[36:]))
		f.Len = int32(le.Uint32(b[44:]))
		f.Boffset = int32(le.Uint32(b[48:]))
	default:
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "inode log format", Field: "length", Found: len(b),
			Msg: fmt.Sprintf("is neither %d nor %d", InodeLogFormatSize, InodeLogFormat32Size)}
	}
	f.Type = le.Uint16(b)
	f.Size = le.Uint16(b[2:])
	f.Fields = le.Uint32(b[4:])
	f.ASize = le.Uint16(b[8:])
	f.DSize = le.Uint16(b[10:])
	return f, nil
}

// Encode writes the 64-bit layout (InodeLogFormatSize bytes) into b.
func (f *InodeLogFormat) Encode(b []byte) {
	le.PutUint16(b, f.Type)
	le.PutUint16(b[2:], f.Size)
	le.PutUint32(b[4:], f.Fields)
	le.PutUint16(b[8:], f.ASize)
	le.PutUint16(b[10:], f.DSize)
	le.PutUint32(b[12:], 0)
	le.PutUint64(b[16:], f.Ino)
	copy(b[24:40], f.U[:])
	le.PutUint64(b[40:], uint64(f.Blkno))
	le.PutUint32(b[48:], uint32(f.Len))
	le.PutUint32(b[52:], uint32(f.Boffset))
}

// LogDinode mirrors struct xfs_log_dinode: the inode core as the kernel logs
// it, in host byte order (little-endian here), laid out like struct
// xfs_dinode. Timestamps are the raw host-order 64-bit values
// (xfs_log_timestamp_t): with bigtime a nanosecond counter, otherwise
// t_sec in the low and t_nsec in the high 32 bits.
type LogDinode struct {
	Magic        uint16   // 0 di_magic
	Mode         uint16   // 2 di_mode
	Version      int8     // 4 di_version
	Format       int8     // 5 di_format
	Metatype     uint16   // 6 di_metatype
	UID          uint32   // 8 di_uid
	GID          uint32   // 12 di_gid
	Nlink        uint32   // 16 di_nlink
	ProjIDLo     uint16   // 20 di_projid_lo
	ProjIDHi     uint16   // 22 di_projid_hi
	BigNextents  uint64   // 24 di_big_nextents / di_v3_pad / (di_v2_pad, di_flushiter)
	Atime        uint64   // 32 di_atime
	Mtime        uint64   // 40 di_mtime
	Ctime        uint64   // 48 di_ctime
	ISize        int64    // 56 di_size
	NBlocks      uint64   // 64 di_nblocks
	ExtSize      uint32   // 72 di_extsize
	Nextents     uint32   // 76 di_nextents / di_big_anextents
	Anextents    uint16   // 80 di_anextents / di_nrext64_pad
	Forkoff      uint8    // 82 di_forkoff
	Aformat      int8     // 83 di_aformat
	DMEvMask     uint32   // 84 di_dmevmask
	DMState      uint16   // 88 di_dmstate
	Flags        uint16   // 90 di_flags
	Gen          uint32   // 92 di_gen
	NextUnlinked uint32   // 96 di_next_unlinked
	CRC          uint32   // 100 di_crc
	ChangeCount  uint64   // 104 di_changecount
	LSN          uint64   // 112 di_lsn (not replayed)
	Flags2       uint64   // 120 di_flags2
	CowExtSize   uint32   // 128 di_cowextsize / di_used_blocks
	Pad2         [12]byte // 132 di_pad2
	Crtime       uint64   // 144 di_crtime
	Ino          uint64   // 152 di_ino
	UUID         [16]byte // 160 di_uuid
}

// FlushIter is di_flushiter of a v2 inode (the last u16 of the union at 24).
func (d *LogDinode) FlushIter() uint16 { return uint16(d.BigNextents >> 48) }

// DecodeLogDinode decodes a logged inode core: LogDinodeSize bytes for v3
// inodes, at least LogDinodeV2Size for v2 (the v3 fields are then zero).
func DecodeLogDinode(b []byte) (*LogDinode, error) {
	if len(b) < LogDinodeV2Size {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log dinode", Field: "length", Found: len(b), Want: LogDinodeSize}
	}
	d := &LogDinode{
		Magic: le.Uint16(b), Mode: le.Uint16(b[2:]), Version: int8(b[4]), Format: int8(b[5]),
		Metatype: le.Uint16(b[6:]), UID: le.Uint32(b[8:]), GID: le.Uint32(b[12:]), Nlink: le.Uint32(b[16:]),
		ProjIDLo: le.Uint16(b[20:]), ProjIDHi: le.Uint16(b[22:]), BigNextents: le.Uint64(b[24:]),
		Atime: le.Uint64(b[32:]), Mtime: le.Uint64(b[40:]), Ctime: le.Uint64(b[48:]),
		ISize: int64(le.Uint64(b[56:])), NBlocks: le.Uint64(b[64:]), ExtSize: le.Uint32(b[72:]),
		Nextents: le.Uint32(b[76:]), Anextents: le.Uint16(b[80:]), Forkoff: b[82], Aformat: int8(b[83]),
		DMEvMask: le.Uint32(b[84:]), DMState: le.Uint16(b[88:]), Flags: le.Uint16(b[90:]), Gen: le.Uint32(b[92:]),
	}
	if len(b) < LogDinodeSize {
		return d, nil
	}
	d.NextUnlinked = le.Uint32(b[96:])
	d.CRC = le.Uint32(b[100:])
	d.ChangeCount = le.Uint64(b[104:])
	d.LSN = le.Uint64(b[112:])
	d.Flags2 = le.Uint64(b[120:])
	d.CowExtSize = le.Uint32(b[128:])
	copy(d.Pad2[:], b[132:144])
	d.Crtime = le.Uint64(b[144:])
	d.Ino = le.Uint64(b[152:])
	copy(d.UUID[:], b[160:176])
	return d, nil
}

// ToDisk is xfs_log_dinode_to_disk for v3 inodes: the logged core ld
// written over the encoded inode to, in the disk format and byte order,
// with di_lsn set to lsn, leaving di_next_unlinked (logged through the
// cluster buffer) and the CRC (recomputed after) alone.
func (ld *LogDinode) ToDisk(to []byte, lsn uint64) {
	bigtime := ld.Version >= 3 && ld.Flags2&Diflag2Bigtime != 0
	ts := func(v uint64) uint64 {
		if bigtime {
			return v
		}
		// Legacy: host-order {int32 t_sec; int32 t_nsec} to big-endian.
		return uint64(uint32(v))<<32 | v>>32
	}
	be.PutUint16(to[0:], ld.Magic)
	be.PutUint16(to[2:], ld.Mode)
	to[4] = byte(ld.Version)
	to[5] = byte(ld.Format)
	be.PutUint16(to[6:], ld.Metatype)
	be.PutUint32(to[8:], ld.UID)
	be.PutUint32(to[12:], ld.GID)
	be.PutUint32(to[16:], ld.Nlink)
	be.PutUint16(to[20:], ld.ProjIDLo)
	be.PutUint16(to[22:], ld.ProjIDHi)
	be.PutUint64(to[32:], ts(ld.Atime))
	be.PutUint64(to[40:], ts(ld.Mtime))
	be.PutUint64(to[48:], ts(ld.Ctime))
	be.PutUint64(to[56:], uint64(ld.ISize))
	be.PutUint64(to[64:], ld.NBlocks)
	be.PutUint32(to[72:], ld.ExtSize)
	to[82] = ld.Forkoff
	to[83] = byte(ld.Aformat)
	be.PutUint32(to[84:], ld.DMEvMask)
	be.PutUint16(to[88:], ld.DMState)
	be.PutUint16(to[90:], ld.Flags)
	be.PutUint32(to[92:], ld.Gen)
	if ld.Version == 3 {
		be.PutUint64(to[104:], ld.ChangeCount)
		be.PutUint64(to[144:], ts(ld.Crtime))
		be.PutUint64(to[120:], ld.Flags2)
		be.PutUint32(to[128:], ld.CowExtSize)
		be.PutUint64(to[152:], ld.Ino)
		be.PutUint64(to[112:], lsn)
		clear(to[132:144])
		copy(to[160:176], ld.UUID[:])
		be.PutUint64(to[24:], 0) // di_v3_pad
	} else {
		be.PutUint16(to[30:], ld.FlushIter())
		clear(to[24:30])
	}
	// xfs_log_dinode_to_disk_iext_counters.
	if ld.Version >= 3 && ld.Flags2&Diflag2Nrext64 != 0 {
		be.PutUint64(to[24:], ld.BigNextents)
		be.PutUint32(to[76:], ld.Nextents)  // di_big_anextents
		be.PutUint16(to[80:], ld.Anextents) // di_nrext64_pad
	} else {
		be.PutUint32(to[76:], ld.Nextents)
		be.PutUint16(to[80:], ld.Anextents)
	}
}
