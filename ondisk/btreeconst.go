package ondisk

// Btree record, key and pointer sizes, and header lengths (xfs_format.h).
const (
	ShortBlockHdrLen = 56 // XFS_BTREE_SBLOCK_CRC_LEN
	LongBlockHdrLen  = 72 // XFS_BTREE_LBLOCK_CRC_LEN
	ShortPtrLen      = 4
	LongPtrLen       = 8

	InobtRecLen = 16 // struct xfs_inobt_rec
	InobtKeyLen = 4  // struct xfs_inobt_key
	AllocRecLen = 8  // struct xfs_alloc_rec
	AllocKeyLen = 8
	RmapRecLen  = 24 // struct xfs_rmap_rec
	RmapKeyLen  = 20 // struct xfs_rmap_key (a node holds a low and a high key)
	RefcRecLen  = 12 // struct xfs_refcount_rec
	RefcKeyLen  = 4
	BmbtRecLen  = 16 // struct xfs_bmbt_rec
	BmbtKeyLen  = 8
	BmdrHdrLen  = 4 // struct xfs_bmdr_block

	AGFLHdrLen = 36 // offsetof(struct xfs_agfl, agfl_bno)
)
