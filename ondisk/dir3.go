package ondisk

// Directory blocks (xfs_da_format.h), as far as xfsfree touches them: it
// never reads a directory block, but log recovery replays logged ones and
// must know their v5 header to order replays by LSN and to stamp them.
// Every v5 directory data, block and free block starts with struct
// xfs_dir3_blk_hdr; leaf and node blocks with struct xfs_da3_blkinfo
// (attr.go's DA3Blkinfo, whose 16-bit magic is at offset 8).

// Directory block magics (v5 variants).
const (
	Dir3BlockMagic = 0x58444233 // "XDB3", XFS_DIR3_BLOCK_MAGIC
	Dir3DataMagic  = 0x58444433 // "XDD3", XFS_DIR3_DATA_MAGIC
	Dir3FreeMagic  = 0x58444633 // "XDF3", XFS_DIR3_FREE_MAGIC
	Dir3Leaf1Magic = 0x3df1     // XFS_DIR3_LEAF1_MAGIC (da3 blkinfo)
	Dir3LeafNMagic = 0x3dff     // XFS_DIR3_LEAFN_MAGIC (da3 blkinfo)
	DquotMagic     = 0x4451     // "DQ", XFS_DQUOT_MAGIC (16 bits)
)

// struct xfs_dir3_blk_hdr field offsets and size.
const (
	Dir3BlkHdrCrcOff  = 4  // offsetof(struct xfs_dir3_blk_hdr, crc)
	Dir3BlkHdrLSNOff  = 16 // offsetof(struct xfs_dir3_blk_hdr, lsn)
	Dir3BlkHdrUUIDOff = 24 // offsetof(struct xfs_dir3_blk_hdr, uuid)
	Dir3BlkHdrLen     = 48 // sizeof(struct xfs_dir3_blk_hdr)
)

// DA3MagicOff is offsetof(struct xfs_da3_blkinfo, magic), and DA3UUIDOff
// offsetof(struct xfs_da3_blkinfo, uuid).
const (
	DA3MagicOff = 8
	DA3UUIDOff  = 32
)
