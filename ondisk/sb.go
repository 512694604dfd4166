package ondisk

import (
	"fmt"
	"strings"
)

// Superblock magic and sizes (xfs_format.h).
const (
	SBMagic   = 0x58465342 // "XFSB", XFS_SB_MAGIC
	SBCrcOff  = 224        // offsetof(struct xfs_dsb, sb_crc)
	SBSize    = 288        // sizeof(struct xfs_dsb) on current kernels
	SBDaddr   = 0          // XFS_SB_DADDR
	NullAgino = 0xffffffff // NULLAGINO
	NullAgbno = 0xffffffff // NULLAGBLOCK
	NullFsbno = ^uint64(0) // NULLFSBLOCK
	NullIno   = ^uint64(0) // NULLFSINO
	BBShift   = 9          // BBSHIFT
	BBSize    = 512
)

// sb_versionnum bits (XFS_SB_VERSION_*).
const (
	SBVersionNumbits   = 0x000f
	SBVersion5         = 5
	SBVersionAttrBit   = 0x0010
	SBVersionNlinkBit  = 0x0020
	SBVersionQuotaBit  = 0x0040
	SBVersionAlignBit  = 0x0080
	SBVersionDalignBit = 0x0100
	SBVersionSharedBit = 0x0200
	SBVersionLogV2Bit  = 0x0400
	SBVersionSectorBit = 0x0800
	SBVersionExtflgBit = 0x1000
	SBVersionDirV2Bit  = 0x2000
	SBVersionBorgBit   = 0x4000
	SBVersionMoreBits  = 0x8000
)

// sb_features2 bits (XFS_SB_VERSION2_*).
const (
	SBVersion2LazySBCount = 0x00000002
	SBVersion2Attr2       = 0x00000008
	SBVersion2Parent      = 0x00000010
	SBVersion2ProjID32    = 0x00000080
	SBVersion2Crc         = 0x00000100
	SBVersion2Ftype       = 0x00000200
)

// The quota "checked" flags of sb_qflags (XFS_*QUOTA_CHKD): quotacheck
// was done for that kind of quota. xfs_repair clears them when it changes
// usage behind the quota files' back, so that the next mount re-counts.
const (
	QFlagUquotaChkd = 0x0004 // XFS_UQUOTA_CHKD
	QFlagOquotaChkd = 0x0020 // XFS_OQUOTA_CHKD
	QFlagGquotaChkd = 0x0100 // XFS_GQUOTA_CHKD
	QFlagPquotaChkd = 0x0400 // XFS_PQUOTA_CHKD
	QFlagAllChkd    = QFlagUquotaChkd | QFlagOquotaChkd | QFlagGquotaChkd | QFlagPquotaChkd
)

// Read-only compatible features (XFS_SB_FEAT_RO_COMPAT_*).
const (
	FeatROCompatFinobt   = 1 << 0
	FeatROCompatRmapbt   = 1 << 1
	FeatROCompatReflink  = 1 << 2
	FeatROCompatInobtCnt = 1 << 3
)

// Incompatible features (XFS_SB_FEAT_INCOMPAT_*).
const (
	FeatIncompatFtype       = 1 << 0
	FeatIncompatSpinodes    = 1 << 1
	FeatIncompatMetaUUID    = 1 << 2
	FeatIncompatBigtime     = 1 << 3
	FeatIncompatNeedsRepair = 1 << 4
	FeatIncompatNrext64     = 1 << 5
	FeatIncompatExchrange   = 1 << 6
	FeatIncompatParent      = 1 << 7
	FeatIncompatMetadir     = 1 << 8
	FeatIncompatZoned       = 1 << 9
)

// Log incompatible features (XFS_SB_FEAT_INCOMPAT_LOG_*).
const (
	FeatLogIncompatXattrs = 1 << 0
	// FeatLogIncompatAll is every log-incompatible feature the kernel
	// knows (XFS_SB_FEAT_INCOMPAT_LOG_ALL).
	FeatLogIncompatAll = FeatLogIncompatXattrs
)

// FeatIncompatSupported is the set of incompat features xfsfree reads and
// writes correctly. Anything else is refused at open.
const FeatIncompatSupported = FeatIncompatFtype | FeatIncompatSpinodes | FeatIncompatMetaUUID |
	FeatIncompatBigtime | FeatIncompatNrext64 | FeatIncompatExchrange

var incompatNames = []struct {
	bit  uint32
	name string
}{
	{FeatIncompatFtype, "ftype"}, {FeatIncompatSpinodes, "sparse"}, {FeatIncompatMetaUUID, "meta_uuid"},
	{FeatIncompatBigtime, "bigtime"}, {FeatIncompatNeedsRepair, "needsrepair"}, {FeatIncompatNrext64, "nrext64"},
	{FeatIncompatExchrange, "exchange"}, {FeatIncompatParent, "parent"}, {FeatIncompatMetadir, "metadir"},
	{FeatIncompatZoned, "zoned"},
}

var roCompatNames = []struct {
	bit  uint32
	name string
}{
	{FeatROCompatFinobt, "finobt"}, {FeatROCompatRmapbt, "rmapbt"}, {FeatROCompatReflink, "reflink"},
	{FeatROCompatInobtCnt, "inobtcount"},
}

// Superblock mirrors struct xfs_dsb field by field. Offsets in comments.
type Superblock struct {
	MagicNum        uint32   // 0 sb_magicnum
	BlockSize       uint32   // 4 sb_blocksize
	DBlocks         uint64   // 8 sb_dblocks
	RBlocks         uint64   // 16 sb_rblocks
	RExtents        uint64   // 24 sb_rextents
	UUID            [16]byte // 32 sb_uuid
	LogStart        uint64   // 48 sb_logstart (fsbno; 0 = external log)
	RootIno         uint64   // 56 sb_rootino
	RbmIno          uint64   // 64 sb_rbmino
	RsumIno         uint64   // 72 sb_rsumino
	RExtSize        uint32   // 80 sb_rextsize
	AGBlocks        uint32   // 84 sb_agblocks
	AGCount         uint32   // 88 sb_agcount
	RbmBlocks       uint32   // 92 sb_rbmblocks
	LogBlocks       uint32   // 96 sb_logblocks
	VersionNum      uint16   // 100 sb_versionnum
	SectSize        uint16   // 102 sb_sectsize
	InodeSize       uint16   // 104 sb_inodesize
	InoPBlock       uint16   // 106 sb_inopblock
	FName           [12]byte // 108 sb_fname
	BlockLog        uint8    // 120 sb_blocklog
	SectLog         uint8    // 121 sb_sectlog
	InodeLog        uint8    // 122 sb_inodelog
	InoPBLog        uint8    // 123 sb_inopblog
	AGBlkLog        uint8    // 124 sb_agblklog
	RExtSLog        uint8    // 125 sb_rextslog
	InProgress      uint8    // 126 sb_inprogress
	IMaxPct         uint8    // 127 sb_imax_pct
	ICount          uint64   // 128 sb_icount
	IFree           uint64   // 136 sb_ifree
	FDBlocks        uint64   // 144 sb_fdblocks
	FRExtents       uint64   // 152 sb_frextents
	UQuotIno        uint64   // 160 sb_uquotino
	GQuotIno        uint64   // 168 sb_gquotino
	QFlags          uint16   // 176 sb_qflags
	Flags           uint8    // 178 sb_flags
	SharedVN        uint8    // 179 sb_shared_vn
	InoAlignMt      uint32   // 180 sb_inoalignmt
	Unit            uint32   // 184 sb_unit
	Width           uint32   // 188 sb_width
	DirBlkLog       uint8    // 192 sb_dirblklog
	LogSectLog      uint8    // 193 sb_logsectlog
	LogSectSize     uint16   // 194 sb_logsectsize
	LogSUnit        uint32   // 196 sb_logsunit
	Features2       uint32   // 200 sb_features2
	BadFeatures2    uint32   // 204 sb_bad_features2
	FeatCompat      uint32   // 208 sb_features_compat
	FeatROCompat    uint32   // 212 sb_features_ro_compat
	FeatIncompat    uint32   // 216 sb_features_incompat
	FeatLogIncompat uint32   // 220 sb_features_log_incompat
	CRC             uint32   // 224 sb_crc (little-endian on disk)
	SpinoAlign      uint32   // 228 sb_spino_align
	PQuotIno        uint64   // 232 sb_pquotino
	LSN             uint64   // 240 sb_lsn
	MetaUUID        [16]byte // 248 sb_meta_uuid
	MetadirIno      uint64   // 264 sb_metadirino
	RGCount         uint32   // 272 sb_rgcount
	RGExtents       uint32   // 276 sb_rgextents
	RGBlkLog        uint8    // 280 sb_rgblklog
	Pad             [7]byte  // 281 sb_pad
}

// DecodeSuperblock decodes the first SBSize bytes of b. It checks nothing;
// see Verify.
func DecodeSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SBSize {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "superblock", Field: "length", Found: len(b), Want: SBSize}
	}
	s := &Superblock{}
	s.MagicNum = be.Uint32(b[0:])
	s.BlockSize = be.Uint32(b[4:])
	s.DBlocks = be.Uint64(b[8:])
	s.RBlocks = be.Uint64(b[16:])
	s.RExtents = be.Uint64(b[24:])
	copy(s.UUID[:], b[32:48])
	s.LogStart = be.Uint64(b[48:])
	s.RootIno = be.Uint64(b[56:])
	s.RbmIno = be.Uint64(b[64:])
	s.RsumIno = be.Uint64(b[72:])
	s.RExtSize = be.Uint32(b[80:])
	s.AGBlocks = be.Uint32(b[84:])
	s.AGCount = be.Uint32(b[88:])
	s.RbmBlocks = be.Uint32(b[92:])
	s.LogBlocks = be.Uint32(b[96:])
	s.VersionNum = be.Uint16(b[100:])
	s.SectSize = be.Uint16(b[102:])
	s.InodeSize = be.Uint16(b[104:])
	s.InoPBlock = be.Uint16(b[106:])
	copy(s.FName[:], b[108:120])
	s.BlockLog = b[120]
	s.SectLog = b[121]
	s.InodeLog = b[122]
	s.InoPBLog = b[123]
	s.AGBlkLog = b[124]
	s.RExtSLog = b[125]
	s.InProgress = b[126]
	s.IMaxPct = b[127]
	s.ICount = be.Uint64(b[128:])
	s.IFree = be.Uint64(b[136:])
	s.FDBlocks = be.Uint64(b[144:])
	s.FRExtents = be.Uint64(b[152:])
	s.UQuotIno = be.Uint64(b[160:])
	s.GQuotIno = be.Uint64(b[168:])
	s.QFlags = be.Uint16(b[176:])
	s.Flags = b[178]
	s.SharedVN = b[179]
	s.InoAlignMt = be.Uint32(b[180:])
	s.Unit = be.Uint32(b[184:])
	s.Width = be.Uint32(b[188:])
	s.DirBlkLog = b[192]
	s.LogSectLog = b[193]
	s.LogSectSize = be.Uint16(b[194:])
	s.LogSUnit = be.Uint32(b[196:])
	s.Features2 = be.Uint32(b[200:])
	s.BadFeatures2 = be.Uint32(b[204:])
	s.FeatCompat = be.Uint32(b[208:])
	s.FeatROCompat = be.Uint32(b[212:])
	s.FeatIncompat = be.Uint32(b[216:])
	s.FeatLogIncompat = be.Uint32(b[220:])
	s.CRC = StoredCksum(b, SBCrcOff)
	s.SpinoAlign = be.Uint32(b[228:])
	s.PQuotIno = be.Uint64(b[232:])
	s.LSN = be.Uint64(b[240:])
	copy(s.MetaUUID[:], b[248:264])
	s.MetadirIno = be.Uint64(b[264:])
	s.RGCount = be.Uint32(b[272:])
	s.RGExtents = be.Uint32(b[276:])
	s.RGBlkLog = b[280]
	copy(s.Pad[:], b[281:288])
	return s, nil
}

// Encode writes s into the first SBSize bytes of b, leaving the rest of the
// sector alone. The CRC field is written as stored in s; call
// UpdateCksum(b[:sectsize], SBCrcOff) after changing fields.
func (s *Superblock) Encode(b []byte) {
	be.PutUint32(b[0:], s.MagicNum)
	be.PutUint32(b[4:], s.BlockSize)
	be.PutUint64(b[8:], s.DBlocks)
	be.PutUint64(b[16:], s.RBlocks)
	be.PutUint64(b[24:], s.RExtents)
	copy(b[32:48], s.UUID[:])
	be.PutUint64(b[48:], s.LogStart)
	be.PutUint64(b[56:], s.RootIno)
	be.PutUint64(b[64:], s.RbmIno)
	be.PutUint64(b[72:], s.RsumIno)
	be.PutUint32(b[80:], s.RExtSize)
	be.PutUint32(b[84:], s.AGBlocks)
	be.PutUint32(b[88:], s.AGCount)
	be.PutUint32(b[92:], s.RbmBlocks)
	be.PutUint32(b[96:], s.LogBlocks)
	be.PutUint16(b[100:], s.VersionNum)
	be.PutUint16(b[102:], s.SectSize)
	be.PutUint16(b[104:], s.InodeSize)
	be.PutUint16(b[106:], s.InoPBlock)
	copy(b[108:120], s.FName[:])
	b[120] = s.BlockLog
	b[121] = s.SectLog
	b[122] = s.InodeLog
	b[123] = s.InoPBLog
	b[124] = s.AGBlkLog
	b[125] = s.RExtSLog
	b[126] = s.InProgress
	b[127] = s.IMaxPct
	be.PutUint64(b[128:], s.ICount)
	be.PutUint64(b[136:], s.IFree)
	be.PutUint64(b[144:], s.FDBlocks)
	be.PutUint64(b[152:], s.FRExtents)
	be.PutUint64(b[160:], s.UQuotIno)
	be.PutUint64(b[168:], s.GQuotIno)
	be.PutUint16(b[176:], s.QFlags)
	b[178] = s.Flags
	b[179] = s.SharedVN
	be.PutUint32(b[180:], s.InoAlignMt)
	be.PutUint32(b[184:], s.Unit)
	be.PutUint32(b[188:], s.Width)
	b[192] = s.DirBlkLog
	b[193] = s.LogSectLog
	be.PutUint16(b[194:], s.LogSectSize)
	be.PutUint32(b[196:], s.LogSUnit)
	be.PutUint32(b[200:], s.Features2)
	be.PutUint32(b[204:], s.BadFeatures2)
	be.PutUint32(b[208:], s.FeatCompat)
	be.PutUint32(b[212:], s.FeatROCompat)
	be.PutUint32(b[216:], s.FeatIncompat)
	be.PutUint32(b[220:], s.FeatLogIncompat)
	le.PutUint32(b[224:], s.CRC)
	be.PutUint32(b[228:], s.SpinoAlign)
	be.PutUint64(b[232:], s.PQuotIno)
	be.PutUint64(b[240:], s.LSN)
	copy(b[248:264], s.MetaUUID[:])
	be.PutUint64(b[264:], s.MetadirIno)
	be.PutUint32(b[272:], s.RGCount)
	be.PutUint32(b[276:], s.RGExtents)
	b[280] = s.RGBlkLog
	copy(b[281:288], s.Pad[:])
}

// IsV5 reports a version 5 (CRC-enabled) superblock.
func (s *Superblock) IsV5() bool { return s.VersionNum&SBVersionNumbits == SBVersion5 }

// HasFinobt and friends test feature bits.
func (s *Superblock) HasFinobt() bool     { return s.FeatROCompat&FeatROCompatFinobt != 0 }
func (s *Superblock) HasRmapbt() bool     { return s.FeatROCompat&FeatROCompatRmapbt != 0 }
func (s *Superblock) HasReflink() bool    { return s.FeatROCompat&FeatROCompatReflink != 0 }
func (s *Superblock) HasInobtCount() bool { return s.FeatROCompat&FeatROCompatInobtCnt != 0 }
func (s *Superblock) HasSparseInodes() bool {
	return s.FeatIncompat&FeatIncompatSpinodes != 0
}
func (s *Superblock) HasBigtime() bool  { return s.FeatIncompat&FeatIncompatBigtime != 0 }
func (s *Superblock) HasNrext64() bool  { return s.FeatIncompat&FeatIncompatNrext64 != 0 }
func (s *Superblock) HasMetaUUID() bool { return s.FeatIncompat&FeatIncompatMetaUUID != 0 }
func (s *Superblock) HasFtype() bool    { return s.FeatIncompat&FeatIncompatFtype != 0 }
func (s *Superblock) HasLogV2() bool    { return s.VersionNum&SBVersionLogV2Bit != 0 }
func (s *Superblock) HasSectorBit() bool {
	return s.VersionNum&SBVersionSectorBit != 0
}
func (s *Superblock) HasLazySBCount() bool { return s.Features2&SBVersion2LazySBCount != 0 }

// BlockUUID is the uuid stamped into v5 metadata blocks: sb_meta_uuid when
// the meta_uuid feature is set, else sb_uuid (xfs_sb_from_disk).
func (s *Superblock) BlockUUID() [16]byte {
	if s.HasMetaUUID() {
		return s.MetaUUID
	}
	return s.UUID
}

// FeatureNames lists the named features set, for display.
func (s *Superblock) FeatureNames() []string {
	var out []string
	out = append(out, fmt.Sprintf("v%d", s.VersionNum&SBVersionNumbits))
	if s.IsV5() {
		out = append(out, "crc")
	}
	for _, n := range roCompatNames {
		if s.FeatROCompat&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	for _, n := range incompatNames {
		if s.FeatIncompat&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if s.HasLazySBCount() {
		out = append(out, "lazy-count")
	}
	if s.HasLogV2() {
		out = append(out, "logv2")
	}
	if s.QFlags != 0 {
		out = append(out, "quota")
	}
	return out
}

func unknownBits(v, known uint32) []string {
	var out []string
	for i := 0; i < 32; i++ {
		if v&(1<<i) != 0 && known&(1<<i) == 0 {
			out = append(out, fmt.Sprintf("bit %d", i))
		}
	}
	return out
}

func incompatName(bit uint32) string {
	for _, n := range incompatNames {
		if n.bit == bit {
			return n.name
		}
	}
	return ""
}

// Verify checks a primary superblock sector (b is the whole sector; the
// CRC covers sb_sectsize bytes... the kernel checksums the sector read,
// XFS_SB_CRC over BBTOB(bp->b_length)). It checks magic, version, CRC and
// the geometry invariants xfsfree depends on (the kernel's
// xfs_validate_sb_common, the parts that matter here).
func (s *Superblock) Verify(b []byte) error {
	w := Where{AG: 0, Daddr: 0}
	if s.MagicNum != SBMagic {
		return w.Corrupt("superblock", "sb_magicnum", s.MagicNum, uint32(SBMagic), "")
	}
	if !s.IsV5() {
		return fmt.Errorf("%w: version %d superblock (v4, no metadata CRCs): xfsfree supports only v5 filesystems (mkfs.xfs -m crc=1)", ErrUnsupported, s.VersionNum&SBVersionNumbits)
	}
	if len(b) < int(s.SectSize) || s.SectSize < BBSize {
		return w.Corrupt("superblock", "sb_sectsize", s.SectSize, nil, "does not fit the sector read")
	}
	if !VerifyCksum(b[:s.SectSize], SBCrcOff) {
		return w.Corrupt("superblock", "sb_crc", s.CRC, Cksum(b[:s.SectSize], SBCrcOff), "")
	}
	// Each check runs only once the ones before it passed (sb_inopblock
	// divides by sb_inodesize, the log's AG by sb_agblklog).
	checks := []struct {
		ok    func() bool
		field string
		val   any
		msg   string
	}{
		{func() bool { return s.BlockSize >= 512 && s.BlockSize <= 65536 && s.BlockSize == 1<<s.BlockLog }, "sb_blocksize", s.BlockSize, ""},
		{func() bool { return s.SectSize == 1<<s.SectLog && s.SectLog >= 9 && s.SectLog <= 15 }, "sb_sectsize", s.SectSize, ""},
		{func() bool { return s.InodeSize >= 256 && s.InodeSize <= 2048 && s.InodeSize == 1<<s.InodeLog }, "sb_inodesize", s.InodeSize, ""},
		{func() bool { return s.InodeSize >= 512 }, "sb_inodesize", s.InodeSize, "below the v5 minimum of 512"},
		{func() bool {
			return uint32(s.InoPBlock) == s.BlockSize/uint32(s.InodeSize) && s.InoPBLog == s.BlockLog-s.InodeLog
		}, "sb_inopblock", s.InoPBlock, ""},
		{func() bool { return s.AGCount > 0 }, "sb_agcount", s.AGCount, ""},
		{func() bool { return s.AGBlocks >= 64 && s.AGBlkLog == log2Roundup(s.AGBlocks) }, "sb_agblocks", s.AGBlocks, ""},
		{func() bool {
			return s.DBlocks > uint64(s.AGCount-1)*uint64(s.AGBlocks) && s.DBlocks <= uint64(s.AGCount)*uint64(s.AGBlocks)
		}, "sb_dblocks", s.DBlocks, ""},
		{func() bool { return s.InoAlignMt == 0 || s.VersionNum&SBVersionAlignBit != 0 }, "sb_inoalignmt", s.InoAlignMt, ""},
		{func() bool { return !s.HasSparseInodes() || (s.SpinoAlign != 0 && s.InoAlignMt != 0) }, "sb_spino_align", s.SpinoAlign, ""},
		// The log: XFS_MIN_LOG_BLOCKS..XFS_MAX_LOG_BLOCKS, and an internal
		// log lies inside one AG of the data device (where mkfs.xfs puts
		// it): a log placed elsewhere would be written over metadata.
		{func() bool { return s.LogBlocks >= 512 && s.LogBlocks <= 1<<20 }, "sb_logblocks", s.LogBlocks, "outside 512..1048576 blocks"},
		{func() bool {
			if s.LogStart == 0 {
				return true // external
			}
			agno, agbno := s.LogStart>>s.AGBlkLog, s.LogStart&(1<<s.AGBlkLog-1)
			return agno < uint64(s.AGCount) && agbno > 0 && agbno+uint64(s.LogBlocks) <= uint64(s.AGBlocks) &&
				agno*uint64(s.AGBlocks)+agbno+uint64(s.LogBlocks) <= s.DBlocks
		}, "sb_logstart", s.LogStart, fmt.Sprintf("the internal log (%d blocks) does not lie inside one AG of the filesystem", s.LogBlocks)},
	}
	for _, c := range checks {
		if !c.ok() {
			msg := c.msg
			if msg == "" {
				msg = "is out of range or inconsistent"
			}
			return w.Corrupt("superblock", c.field, c.val, nil, msg)
		}
	}
	return nil
}

// CheckSupported refuses features xfsfree does not handle: unknown or
// unsupported incompat bits, NEEDSREPAIR, a v1 log, realtime subvolumes with
// rt groups. Read-only callers may choose to ignore ro_compat bits; this
// check is for every open.
func (s *Superblock) CheckSupported() error {
	if s.FeatIncompat&FeatIncompatNeedsRepair != 0 {
		return fmt.Errorf("%w: the superblock has NEEDSREPAIR set: run xfs_repair first", ErrUnsupported)
	}
	if bad := s.FeatIncompat &^ FeatIncompatSupported; bad != 0 {
		var names []string
		for i := 0; i < 32; i++ {
			if bad&(1<<i) != 0 {
				if n := incompatName(1 << i); n != "" {
					names = append(names, n)
				} else {
					names = append(names, fmt.Sprintf("unknown bit %d", i))
				}
			}
		}
		return fmt.Errorf("%w: incompatible feature(s) %s (sb_features_incompat %#x)", ErrUnsupported, strings.Join(names, ", "), s.FeatIncompat)
	}
	if u := unknownBits(s.FeatROCompat, FeatROCompatFinobt|FeatROCompatRmapbt|FeatROCompatReflink|FeatROCompatInobtCnt); len(u) > 0 {
		return fmt.Errorf("%w: unknown read-only-compatible feature(s) %s (sb_features_ro_compat %#x)", ErrUnsupported, strings.Join(u, ", "), s.FeatROCompat)
	}
	if !s.HasLogV2() {
		return fmt.Errorf("%w: version 1 log", ErrUnsupported)
	}
	return nil
}

func log2Roundup(v uint32) uint8 {
	var l uint8
	for (uint64(1) << l) < uint64(v) {
		l++
	}
	return l
}
