package ondisk

// The superblock's field table (struct xfs_dsb), for reading, writing and
// logging superblock fields in place.

// SBLSNOff is offsetof(struct xfs_dsb, sb_lsn).
const SBLSNOff = 240

// SBFields names fields of the superblock by bit (the XFS_SB_* field bits
// of older kernels, one per field of struct xfs_dsb).
type SBFields uint64

// The superblock fields, in on-disk order.
const (
	SBMagicNum SBFields = 1 << iota
	SBBlockSize
	SBDBlocks
	SBRBlocks
	SBRExtents
	SBUUID
	SBLogStart
	SBRootIno
	SBRbmIno
	SBRsumIno
	SBRExtSize
	SBAGBlocks
	SBAGCount
	SBRbmBlocks
	SBLogBlocks
	SBVersionNum
	SBSectSize
	SBInodeSize
	SBInoPBlock
	SBFName
	SBBlockLog
	SBSectLog
	SBInodeLog
	SBInoPBLog
	SBAGBlkLog
	SBRExtSLog
	SBInProgress
	SBIMaxPct
	SBICount
	SBIFree
	SBFDBlocks
	SBFRExtents
	SBUQuotIno
	SBGQuotIno
	SBQFlags
	SBFlags
	SBSharedVN
	SBInoAlignMt
	SBUnit
	SBWidth
	SBDirBlkLog
	SBLogSectLog
	SBLogSectSize
	SBLogSUnit
	SBFeatures2
	SBBadFeatures2
	SBFeatCompat
	SBFeatROCompat
	SBFeatIncompat
	SBFeatLogIncompat
	SBCrc
	SBSpinoAlign
	SBPQuotIno
	SBLsn
	SBMetaUUID
	SBMetadirIno
	SBRGCount
	SBRGExtents
	SBRGBlkLog
	SBPad
)

// sbLayout is the field table of struct xfs_dsb.
var sbLayout = &Layout{Struct: "superblock", Size: SBSize, Fields: []Field{
	{Name: "sb_magicnum", Off: 0, Size: 4},
	{Name: "sb_blocksize", Off: 4, Size: 4},
	{Name: "sb_dblocks", Off: 8, Size: 8},
	{Name: "sb_rblocks", Off: 16, Size: 8},
	{Name: "sb_rextents", Off: 24, Size: 8},
	{Name: "sb_uuid", Off: 32, Size: 16, Elem: 1},
	{Name: "sb_logstart", Off: 48, Size: 8},
	{Name: "sb_rootino", Off: 56, Size: 8},
	{Name: "sb_rbmino", Off: 64, Size: 8},
	{Name: "sb_rsumino", Off: 72, Size: 8},
	{Name: "sb_rextsize", Off: 80, Size: 4},
	{Name: "sb_agblocks", Off: 84, Size: 4},
	{Name: "sb_agcount", Off: 88, Size: 4},
	{Name: "sb_rbmblocks", Off: 92, Size: 4},
	{Name: "sb_logblocks", Off: 96, Size: 4},
	{Name: "sb_versionnum", Off: 100, Size: 2},
	{Name: "sb_sectsize", Off: 102, Size: 2},
	{Name: "sb_inodesize", Off: 104, Size: 2},
	{Name: "sb_inopblock", Off: 106, Size: 2},
	{Name: "sb_fname", Off: 108, Size: 12, Elem: 1},
	{Name: "sb_blocklog", Off: 120, Size: 1},
	{Name: "sb_sectlog", Off: 121, Size: 1},
	{Name: "sb_inodelog", Off: 122, Size: 1},
	{Name: "sb_inopblog", Off: 123, Size: 1},
	{Name: "sb_agblklog", Off: 124, Size: 1},
	{Name: "sb_rextslog", Off: 125, Size: 1},
	{Name: "sb_inprogress", Off: 126, Size: 1},
	{Name: "sb_imax_pct", Off: 127, Size: 1},
	{Name: "sb_icount", Off: 128, Size: 8},
	{Name: "sb_ifree", Off: 136, Size: 8},
	{Name: "sb_fdblocks", Off: 144, Size: 8},
	{Name: "sb_frextents", Off: 152, Size: 8},
	{Name: "sb_uquotino", Off: 160, Size: 8},
	{Name: "sb_gquotino", Off: 168, Size: 8},
	{Name: "sb_qflags", Off: 176, Size: 2},
	{Name: "sb_flags", Off: 178, Size: 1},
	{Name: "sb_shared_vn", Off: 179, Size: 1},
	{Name: "sb_inoalignmt", Off: 180, Size: 4},
	{Name: "sb_unit", Off: 184, Size: 4},
	{Name: "sb_width", Off: 188, Size: 4},
	{Name: "sb_dirblklog", Off: 192, Size: 1},
	{Name: "sb_logsectlog", Off: 193, Size: 1},
	{Name: "sb_logsectsize", Off: 194, Size: 2},
	{Name: "sb_logsunit", Off: 196, Size: 4},
	{Name: "sb_features2", Off: 200, Size: 4},
	{Name: "sb_bad_features2", Off: 204, Size: 4},
	{Name: "sb_features_compat", Off: 208, Size: 4},
	{Name: "sb_features_ro_compat", Off: 212, Size: 4},
	{Name: "sb_features_incompat", Off: 216, Size: 4},
	{Name: "sb_features_log_incompat", Off: 220, Size: 4},
	{Name: "sb_crc", Off: SBCrcOff, Size: 4, LE: true},
	{Name: "sb_spino_align", Off: 228, Size: 4},
	{Name: "sb_pquotino", Off: 232, Size: 8},
	{Name: "sb_lsn", Off: SBLSNOff, Size: 8},
	{Name: "sb_meta_uuid", Off: 248, Size: 16, Elem: 1},
	{Name: "sb_metadirino", Off: 264, Size: 8},
	{Name: "sb_rgcount", Off: 272, Size: 4},
	{Name: "sb_rgextents", Off: 276, Size: 4},
	{Name: "sb_rgblklog", Off: 280, Size: 1},
	{Name: "sb_pad", Off: 281, Size: 7, Elem: 1},
}}

// Layout is the superblock's field table.
func (SBFields) Layout() *Layout { return sbLayout }

// Field returns the field of a single bit.
func (f SBFields) Field() Field { return sbLayout.field(uint64(f)) }

// Get returns the value of the single scalar field f in the superblock
// sector b.
func (f SBFields) Get(b []byte) uint64 { return f.Field().Uint(b) }

// Set stores v in the single scalar field f of the superblock sector b.
func (f SBFields) Set(b []byte, v uint64) { f.Field().PutUint(b, v) }
