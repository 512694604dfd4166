package ondisk

import "fmt"

// Records and keys of the per-AG btrees: inobt and finobt (struct
// xfs_inobt_rec), bnobt and cntbt (struct xfs_alloc_rec), rmapbt (struct
// xfs_rmap_rec, xfs_rmap_key) and refcountbt (struct xfs_refcount_rec); and
// typed decoders of whole blocks of each. Each decoder checks bb_numrecs
// against the buffer before reading, so no input makes it panic.

// InobtRec is the inobt/finobt record in its incore form (struct
// xfs_inobt_rec_incore). On a filesystem without sparse inodes the disk
// record holds a 32-bit ir_freecount where the sparse form holds
// holemask, count and freecount; decoding such a record gives HoleMask 0
// and Count 64 (xfs_inobt_btrec_to_irec).
type InobtRec struct {
	StartIno  uint32 // 0 ir_startino
	HoleMask  uint16 // 4 ir_holemask (sparse only): a set bit is a hole of 4 inodes
	Count     uint8  // 6 ir_count (sparse only): inodes allocated
	FreeCount uint32 // 7 ir_freecount (u8 sparse) or 4 ir_freecount (u32)
	Free      uint64 // 8 ir_free: a set bit is a free inode (or a hole)
}

// DecodeInobtRec decodes a 16-byte inobt record.
func DecodeInobtRec(b []byte, sparse bool) InobtRec {
	_ = b[InobtRecLen-1]
	r := InobtRec{StartIno: be.Uint32(b[0:]), Free: be.Uint64(b[8:])}
	if sparse {
		r.HoleMask = be.Uint16(b[4:])
		r.Count = b[6]
		r.FreeCount = uint32(b[7])
	} else {
		r.Count = InodesPerChunk
		r.FreeCount = be.Uint32(b[4:])
	}
	return r
}

// Encode writes r as a 16-byte record (xfs_inobt_irec_to_btrec... the
// kernel's xfs_inobt_update). Without sparse inodes HoleMask and Count are
// not stored.
func (r InobtRec) Encode(b []byte, sparse bool) {
	_ = b[InobtRecLen-1]
	be.PutUint32(b[0:], r.StartIno)
	if sparse {
		be.PutUint16(b[4:], r.HoleMask)
		b[6] = r.Count
		b[7] = uint8(r.FreeCount)
	} else {
		be.PutUint32(b[4:], r.FreeCount)
	}
	be.PutUint64(b[8:], r.Free)
}

// AllocMask is the mask of allocated inodes of the chunk
// (xfs_inobt_irec_to_allocmask).
func (r InobtRec) AllocMask() uint64 { return HolemaskToAllocMask(r.HoleMask) }

// InobtKey is struct xfs_inobt_key.
type InobtKey struct {
	StartIno uint32 // 0 ir_startino
}

// DecodeInobtKey decodes a 4-byte inobt key.
func DecodeInobtKey(b []byte) InobtKey { return InobtKey{StartIno: be.Uint32(b[0:])} }

// Encode writes k.
func (k InobtKey) Encode(b []byte) { be.PutUint32(b[0:], k.StartIno) }

// AllocRec is struct xfs_alloc_rec, the bnobt and cntbt record; the keys
// of both btrees have the same layout (struct xfs_alloc_key).
type AllocRec struct {
	StartBlock uint32 // 0 ar_startblock
	BlockCount uint32 // 4 ar_blockcount
}

// DecodeAllocRec decodes an 8-byte alloc record or key.
func DecodeAllocRec(b []byte) AllocRec {
	return AllocRec{StartBlock: be.Uint32(b[0:]), BlockCount: be.Uint32(b[4:])}
}

// Encode writes r.
func (r AllocRec) Encode(b []byte) {
	be.PutUint32(b[0:], r.StartBlock)
	be.PutUint32(b[4:], r.BlockCount)
}

// Rmap offset flags and owner codes (xfs_format.h).
const (
	RmapOffAttrFork  = uint64(1) << 63   // XFS_RMAP_OFF_ATTR_FORK
	RmapOffBmbtBlock = uint64(1) << 62   // XFS_RMAP_OFF_BMBT_BLOCK
	RmapOffUnwritten = uint64(1) << 61   // XFS_RMAP_OFF_UNWRITTEN
	RmapOffMask      = uint64(1)<<54 - 1 // XFS_RMAP_OFF_MASK

	RmapOwnNull    = ^uint64(0)     // XFS_RMAP_OWN_NULL (-1)
	RmapOwnUnknown = ^uint64(0) - 1 // -2
	RmapOwnFS      = ^uint64(0) - 2 // -3: static fs metadata
	RmapOwnLog     = ^uint64(0) - 3 // -4
	RmapOwnAG      = ^uint64(0) - 4 // -5: AG freespace btrees and AGFL
	RmapOwnInobt   = ^uint64(0) - 5 // -6
	RmapOwnInodes  = ^uint64(0) - 6 // -7: inode chunks
	RmapOwnRefc    = ^uint64(0) - 7 // -8
	RmapOwnCow     = ^uint64(0) - 8 // -9
)

// RmapRec is struct xfs_rmap_rec. Offset is stored as on disk: the file
// offset in its low 54 bits and the flags in its top bits.
type RmapRec struct {
	StartBlock uint32 // 0 rm_startblock
	BlockCount uint32 // 4 rm_blockcount
	Owner      uint64 // 8 rm_owner: inode number or XFS_RMAP_OWN_*
	Offset     uint64 // 16 rm_offset: flags | file offset
}

// DecodeRmapRec decodes a 24-byte rmap record.
func DecodeRmapRec(b []byte) RmapRec {
	_ = b[RmapRecLen-1]
	return RmapRec{StartBlock: be.Uint32(b[0:]), BlockCount: be.Uint32(b[4:]), Owner: be.Uint64(b[8:]), Offset: be.Uint64(b[16:])}
}

// Encode writes r.
func (r RmapRec) Encode(b []byte) {
	_ = b[RmapRecLen-1]
	be.PutUint32(b[0:], r.StartBlock)
	be.PutUint32(b[4:], r.BlockCount)
	be.PutUint64(b[8:], r.Owner)
	be.PutUint64(b[16:], r.Offset)
}

// FileOffset is the file block offset without the flags.
func (r RmapRec) FileOffset() uint64 { return r.Offset & RmapOffMask }

// AttrFork, BmbtBlock and Unwritten test the offset flags.
func (r RmapRec) AttrFork() bool  { return r.Offset&RmapOffAttrFork != 0 }
func (r RmapRec) BmbtBlock() bool { return r.Offset&RmapOffBmbtBlock != 0 }
func (r RmapRec) Unwritten() bool { return r.Offset&RmapOffUnwritten != 0 }

// IsInodeOwner reports an owner that is an inode number rather than an
// XFS_RMAP_OWN_* code (XFS_RMAP_NON_INODE_OWNER is false).
func IsInodeOwner(owner uint64) bool { return owner < RmapOwnCow }

// RmapKey is struct xfs_rmap_key (a node slot holds a low and a high one).
// Offset carries the attr-fork and bmbt-block flags as on disk.
type RmapKey struct {
	StartBlock uint32 // 0 rm_startblock
	Owner      uint64 // 4 rm_owner
	Offset     uint64 // 12 rm_offset
}

// DecodeRmapKey decodes a 20-byte rmap key.
func DecodeRmapKey(b []byte) RmapKey {
	_ = b[RmapKeyLen-1]
	return RmapKey{StartBlock: be.Uint32(b[0:]), Owner: be.Uint64(b[4:]), Offset: be.Uint64(b[12:])}
}

// Encode writes k.
func (k RmapKey) Encode(b []byte) {
	_ = b[RmapKeyLen-1]
	be.PutUint32(b[0:], k.StartBlock)
	be.PutUint64(b[4:], k.Owner)
	be.PutUint64(b[12:], k.Offset)
}

// RefcCowFlag marks a CoW staging extent in rc_startblock
// (XFS_REFC_COWFLAG).
const RefcCowFlag = uint32(1) << 31

// RefcountRec is struct xfs_refcount_rec. StartBlock is stored as on disk,
// with the CoW domain bit.
type RefcountRec struct {
	StartBlock uint32 // 0 rc_startblock: CoW flag | agbno
	BlockCount uint32 // 4 rc_blockcount
	RefCount   uint32 // 8 rc_refcount
}

// DecodeRefcountRec decodes a 12-byte refcount record.
func DecodeRefcountRec(b []byte) RefcountRec {
	_ = b[RefcRecLen-1]
	return RefcountRec{StartBlock: be.Uint32(b[0:]), BlockCount: be.Uint32(b[4:]), RefCount: be.Uint32(b[8:])}
}

// Encode writes r.
func (r RefcountRec) Encode(b []byte) {
	_ = b[RefcRecLen-1]
	be.PutUint32(b[0:], r.StartBlock)
	be.PutUint32(b[4:], r.BlockCount)
	be.PutUint32(b[8:], r.RefCount)
}

// Refcount record limits (XFS_REFC_LEN_MAX, XFS_REFC_REFCOUNT_MAX). A
// record whose count reaches RefcRefcountMax keeps it for ever.
const (
	RefcLenMax      = ^uint32(0)
	RefcRefcountMax = ^uint32(0)
)

// Check is xfs_refcount_check_irec for a record of AG agno: a length in
// 1..RefcLenMax, a count of exactly 1 in the CoW domain and at least 2 in
// the shared one (xfs_refcount_check_domain), an extent of the AG's blocks
// past its headers that does not wrap (xfs_verify_agbext), and a count
// below the maximum. The error names the record.
func (r RefcountRec) Check(g *Geometry, agno uint32) error {
	w := Where{AG: agno, Daddr: -1}
	what := func(msg string) error {
		dom := "shared"
		if r.Cow() {
			dom = "CoW"
		}
		return w.Corrupt("refcountbt record", fmt.Sprintf("[%d, %d) refcount %d (%s)", r.Agbno(), uint64(r.Agbno())+uint64(r.BlockCount), r.RefCount, dom), nil, nil, msg)
	}
	start, n := r.Agbno(), r.BlockCount
	switch {
	case n == 0 || n > RefcLenMax:
		return what("has a bad length")
	case r.Cow() && r.RefCount != 1:
		return what("is a CoW staging extent whose refcount is not 1")
	case !r.Cow() && r.RefCount < 2:
		return what("is a shared extent whose refcount is below 2")
	case start+n <= start || !g.VerifyAgbno(agno, start) || !g.VerifyAgbno(agno, start+n-1):
		return what("is not an extent of the AG's blocks past its headers")
	case r.RefCount == 0:
		return what("has a refcount of 0")
	}
	return nil
}

// Cow reports a CoW staging extent; Agbno is the start without the flag.
func (r RefcountRec) Cow() bool     { return r.StartBlock&RefcCowFlag != 0 }
func (r RefcountRec) Agbno() uint32 { return r.StartBlock &^ RefcCowFlag }

// RefcountKey is struct xfs_refcount_key.
type RefcountKey struct {
	StartBlock uint32 // 0 rc_startblock
}

// DecodeRefcountKey decodes a 4-byte refcount key.
func DecodeRefcountKey(b []byte) RefcountKey { return RefcountKey{StartBlock: be.Uint32(b[0:])} }

// Encode writes k.
func (k RefcountKey) Encode(b []byte) { be.PutUint32(b[0:], k.StartBlock) }

// ShortBlock is a decoded short-form btree block: the header and either
// the records (leaf) or the keys and pointers (node). HighKeys is set for
// overlapping btrees only. This struct does not represent an on-disk struct
// beyond what its fields mirror.
type ShortBlock[R, K any] struct {
	Hdr      ShortBlockHdr
	Recs     []R
	Keys     []K
	HighKeys []K
	Ptrs     []uint32
}

// Decoded blocks of each btree.
type (
	InobtBlock    struct{ ShortBlock[InobtRec, InobtKey] }
	AllocBlock    struct{ ShortBlock[AllocRec, AllocRec] }
	RmapBlock     struct{ ShortBlock[RmapRec, RmapKey] }
	RefcountBlock struct {
		ShortBlock[RefcountRec, RefcountKey]
	}
)

func decodeShort[R, K any](t *BtreeType, b []byte, rec func([]byte) R, key func([]byte) K) (*ShortBlock[R, K], error) {
	v, err := t.View(b)
	if err != nil {
		return nil, err
	}
	h, _ := DecodeShortBlockHdr(b)
	blk := &ShortBlock[R, K]{Hdr: h}
	if v.IsLeaf() {
		blk.Recs = make([]R, v.NumRecs)
		for i := range blk.Recs {
			blk.Recs[i] = rec(v.Rec(i))
		}
		return blk, nil
	}
	blk.Keys = make([]K, v.NumRecs)
	blk.Ptrs = make([]uint32, v.NumRecs)
	if t.Overlapping {
		blk.HighKeys = make([]K, v.NumRecs)
	}
	for i := range blk.Keys {
		blk.Keys[i] = key(v.Key(i))
		if t.Overlapping {
			blk.HighKeys[i] = key(v.HighKey(i))
		}
		blk.Ptrs[i] = uint32(v.Ptr(i))
	}
	return blk, nil
}

func (blk *ShortBlock[R, K]) encode(t *BtreeType, b []byte, rec func(R, []byte), key func(K, []byte)) {
	blk.Hdr.Encode(b)
	v := &BtreeBlock{Type: t, B: b, Level: int(blk.Hdr.Level), NumRecs: int(blk.Hdr.NumRecs)}
	for i, r := range blk.Recs {
		rec(r, v.Rec(i))
	}
	for i, k := range blk.Keys {
		key(k, v.Key(i))
		v.SetPtr(i, uint64(blk.Ptrs[i]))
	}
	for i, k := range blk.HighKeys {
		key(k, v.HighKey(i))
	}
}

// DecodeInobtBlock decodes an inobt or finobt block (the two share a
// layout) of a filesystem with or without sparse inodes.
func DecodeInobtBlock(b []byte, sparse bool) (*InobtBlock, error) {
	blk, err := decodeShort(BtInobt, b, func(b []byte) InobtRec { return DecodeInobtRec(b, sparse) }, DecodeInobtKey)
	if err != nil {
		return nil, err
	}
	return &InobtBlock{*blk}, nil
}

// Encode writes the header and the live records or keys and pointers of
// blk into the block b (len(b) is the block size); the rest of b is left
// alone. Recs, Keys and Ptrs must not exceed what the block holds.
func (blk *InobtBlock) Encode(b []byte, sparse bool) {
	blk.encode(BtInobt, b, func(r InobtRec, b []byte) { r.Encode(b, sparse) }, InobtKey.Encode)
}

// DecodeAllocBlock decodes a bnobt or cntbt block.
func DecodeAllocBlock(b []byte) (*AllocBlock, error) {
	blk, err := decodeShort(BtBnobt, b, DecodeAllocRec, DecodeAllocRec)
	if err != nil {
		return nil, err
	}
	return &AllocBlock{*blk}, nil
}

// Encode writes blk into b; see InobtBlock.Encode.
func (blk *AllocBlock) Encode(b []byte) {
	blk.encode(BtBnobt, b, AllocRec.Encode, AllocRec.Encode)
}

// DecodeRmapBlock decodes an rmapbt block; node slots give Keys (low) and
// HighKeys.
func DecodeRmapBlock(b []byte) (*RmapBlock, error) {
	blk, err := decodeShort(BtRmapbt, b, DecodeRmapRec, DecodeRmapKey)
	if err != nil {
		return nil, err
	}
	return &RmapBlock{*blk}, nil
}

// Encode writes blk into b; see InobtBlock.Encode.
func (blk *RmapBlock) Encode(b []byte) {
	blk.encode(BtRmapbt, b, RmapRec.Encode, RmapKey.Encode)
}

// DecodeRefcountBlock decodes a refcountbt block.
func DecodeRefcountBlock(b []byte) (*RefcountBlock, error) {
	blk, err := decodeShort(BtRefcbt, b, DecodeRefcountRec, DecodeRefcountKey)
	if err != nil {
		return nil, err
	}
	return &RefcountBlock{*blk}, nil
}

// Encode writes blk into b; see InobtBlock.Encode.
func (blk *RefcountBlock) Encode(b []byte) {
	blk.encode(BtRefcbt, b, RefcountRec.Encode, RefcountKey.Encode)
}
