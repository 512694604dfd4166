package ondisk

import (
	"encoding/hex"
	"strconv"
)

// Btree blocks (struct xfs_btree_block): the v5 short-form header of the
// per-AG btrees (32-bit sibling pointers, owner = agno) and the long-form
// header of the inode fork btrees (64-bit fsbno siblings, owner = inode
// number); the layout of keys, pointers and records that follows; and the
// verifier shared by every btree (xfs_btree_agblock_v5hdr_verify,
// xfs_btree_agblock_verify and their long-form twins).
//
// Indexes in this file are 0-based; the kernel's xfs_btree_*_addr helpers
// count from 1.

// Btree magics, v5 (CRC) variants only (xfs_format.h).
const (
	BnobtMagic  = 0x41423342 // "AB3B", XFS_ABTB_CRC_MAGIC
	CntbtMagic  = 0x41423343 // "AB3C", XFS_ABTC_CRC_MAGIC
	RmapbtMagic = 0x524d4233 // "RMB3", XFS_RMAP_CRC_MAGIC
	RefcbtMagic = 0x52334643 // "R3FC", XFS_REFC_CRC_MAGIC
	InobtMagic  = 0x49414233 // "IAB3", XFS_IBT_CRC_MAGIC
	FinobtMagic = 0x46494233 // "FIB3", XFS_FIBT_CRC_MAGIC
	BmbtMagic   = 0x424d4133 // "BMA3", XFS_BMAP_CRC_MAGIC
)

// Header field offsets.
const (
	ShortBlockCrcOff = 52 // offsetof(struct xfs_btree_block, bb_u.s.bb_crc)
	ShortBlockLSNOff = 24 // bb_u.s.bb_lsn
	LongBlockCrcOff  = 64 // bb_u.l.bb_crc
	LongBlockLSNOff  = 32 // bb_u.l.bb_lsn
)

// ShortBlockFields names fields of the v5 short-form btree block header
// by bit, and LongBlockFields of the long-form one (the kernel's XFS_BB_*
// bits with xfs_btree_log_block's soffsets[] and loffsets[]).
type (
	ShortBlockFields uint32
	LongBlockFields  uint32
)

// The short-form header fields, in on-disk order.
const (
	ShortBlockMagic ShortBlockFields = 1 << iota
	ShortBlockLevel
	ShortBlockNumRecs
	ShortBlockLeftSib
	ShortBlockRightSib
	ShortBlockBlkno
	ShortBlockLsn
	ShortBlockUUID
	ShortBlockOwner
	ShortBlockCrc
)

// The long-form header fields, in on-disk order.
const (
	LongBlockMagic LongBlockFields = 1 << iota
	LongBlockLevel
	LongBlockNumRecs
	LongBlockLeftSib
	LongBlockRightSib
	LongBlockBlkno
	LongBlockLsn
	LongBlockUUID
	LongBlockOwner
	LongBlockCrc
	LongBlockPad
)

var shortBlockLayout = &Layout{Struct: "short-form btree block header", Size: ShortBlockHdrLen, Fields: []Field{
	{Name: "bb_magic", Off: 0, Size: 4},
	{Name: "bb_level", Off: 4, Size: 2},
	{Name: "bb_numrecs", Off: 6, Size: 2},
	{Name: "bb_u.s.bb_leftsib", Off: 8, Size: 4},
	{Name: "bb_u.s.bb_rightsib", Off: 12, Size: 4},
	{Name: "bb_u.s.bb_blkno", Off: 16, Size: 8},
	{Name: "bb_u.s.bb_lsn", Off: ShortBlockLSNOff, Size: 8},
	{Name: "bb_u.s.bb_uuid", Off: 32, Size: 16, Elem: 1},
	{Name: "bb_u.s.bb_owner", Off: 48, Size: 4},
	{Name: "bb_u.s.bb_crc", Off: ShortBlockCrcOff, Size: 4, LE: true},
}}

var longBlockLayout = &Layout{Struct: "long-form btree block header", Size: LongBlockHdrLen, Fields: []Field{
	{Name: "bb_magic", Off: 0, Size: 4},
	{Name: "bb_level", Off: 4, Size: 2},
	{Name: "bb_numrecs", Off: 6, Size: 2},
	{Name: "bb_u.l.bb_leftsib", Off: 8, Size: 8},
	{Name: "bb_u.l.bb_rightsib", Off: 16, Size: 8},
	{Name: "bb_u.l.bb_blkno", Off: 24, Size: 8},
	{Name: "bb_u.l.bb_lsn", Off: LongBlockLSNOff, Size: 8},
	{Name: "bb_u.l.bb_uuid", Off: 40, Size: 16, Elem: 1},
	{Name: "bb_u.l.bb_owner", Off: 56, Size: 8},
	{Name: "bb_u.l.bb_crc", Off: LongBlockCrcOff, Size: 4, LE: true},
	{Name: "bb_u.l.bb_pad", Off: 68, Size: 4},
}}

// Layout is the short-form header's field table.
func (ShortBlockFields) Layout() *Layout { return shortBlockLayout }

// Field returns the field of a single bit.
func (f ShortBlockFields) Field() Field { return shortBlockLayout.field(uint64(f)) }

// Get returns the value of the single scalar field f of the block b.
func (f ShortBlockFields) Get(b []byte) uint64 { return f.Field().Uint(b) }

// Set stores v in the single scalar field f of the block b.
func (f ShortBlockFields) Set(b []byte, v uint64) { f.Field().PutUint(b, v) }

// Layout is the long-form header's field table.
func (LongBlockFields) Layout() *Layout { return longBlockLayout }

// Field returns the field of a single bit.
func (f LongBlockFields) Field() Field { return longBlockLayout.field(uint64(f)) }

// Get returns the value of the single scalar field f of the block b.
func (f LongBlockFields) Get(b []byte) uint64 { return f.Field().Uint(b) }

// Set stores v in the single scalar field f of the block b.
func (f LongBlockFields) Set(b []byte, v uint64) { f.Field().PutUint(b, v) }

// ShortBlockHdr mirrors the v5 short-form struct xfs_btree_block header
// (bb_u.s), 56 bytes. Offsets in comments.
type ShortBlockHdr struct {
	Magic    uint32   // 0 bb_magic
	Level    uint16   // 4 bb_level (0 = leaf)
	NumRecs  uint16   // 6 bb_numrecs
	LeftSib  uint32   // 8 bb_leftsib (agbno or NULLAGBLOCK)
	RightSib uint32   // 12 bb_rightsib
	Blkno    uint64   // 16 bb_blkno: daddr of this block
	LSN      uint64   // 24 bb_lsn
	UUID     [16]byte // 32 bb_uuid
	Owner    uint32   // 48 bb_owner: agno
	CRC      uint32   // 52 bb_crc (little-endian on disk)
}

// DecodeShortBlockHdr decodes the first ShortBlockHdrLen bytes of b.
func DecodeShortBlockHdr(b []byte) (ShortBlockHdr, error) {
	var h ShortBlockHdr
	if len(b) < ShortBlockHdrLen {
		return h, &CorruptError{AG: NoAG, Daddr: -1, Struct: "btree block", Field: "length of buffer", Found: len(b), Want: ShortBlockHdrLen}
	}
	h.Magic = be.Uint32(b[0:])
	h.Level = be.Uint16(b[4:])
	h.NumRecs = be.Uint16(b[6:])
	h.LeftSib = be.Uint32(b[8:])
	h.RightSib = be.Uint32(b[12:])
	h.Blkno = be.Uint64(b[16:])
	h.LSN = be.Uint64(b[24:])
	copy(h.UUID[:], b[32:48])
	h.Owner = be.Uint32(b[48:])
	h.CRC = le.Uint32(b[52:])
	return h, nil
}

// Encode writes h into the first ShortBlockHdrLen bytes of b.
func (h *ShortBlockHdr) Encode(b []byte) {
	_ = b[ShortBlockHdrLen-1]
	be.PutUint32(b[0:], h.Magic)
	be.PutUint16(b[4:], h.Level)
	be.PutUint16(b[6:], h.NumRecs)
	be.PutUint32(b[8:], h.LeftSib)
	be.PutUint32(b[12:], h.RightSib)
	be.PutUint64(b[16:], h.Blkno)
	be.PutUint64(b[24:], h.LSN)
	copy(b[32:48], h.UUID[:])
	be.PutUint32(b[48:], h.Owner)
	le.PutUint32(b[52:], h.CRC)
}

// LongBlockHdr mirrors the v5 long-form struct xfs_btree_block header
// (bb_u.l), 72 bytes. Offsets in comments.
type LongBlockHdr struct {
	Magic    uint32   // 0 bb_magic
	Level    uint16   // 4 bb_level
	NumRecs  uint16   // 6 bb_numrecs
	LeftSib  uint64   // 8 bb_leftsib (fsbno or NULLFSBLOCK)
	RightSib uint64   // 16 bb_rightsib
	Blkno    uint64   // 24 bb_blkno: daddr of this block
	LSN      uint64   // 32 bb_lsn
	UUID     [16]byte // 40 bb_uuid
	Owner    uint64   // 56 bb_owner: inode number
	CRC      uint32   // 64 bb_crc (little-endian on disk)
	Pad      uint32   // 68 bb_pad
}

// DecodeLongBlockHdr decodes the first LongBlockHdrLen bytes of b.
func DecodeLongBlockHdr(b []byte) (LongBlockHdr, error) {
	var h LongBlockHdr
	if len(b) < LongBlockHdrLen {
		return h, &CorruptError{AG: NoAG, Daddr: -1, Struct: "btree block", Field: "length of buffer", Found: len(b), Want: LongBlockHdrLen}
	}
	h.Magic = be.Uint32(b[0:])
	h.Level = be.Uint16(b[4:])
	h.NumRecs = be.Uint16(b[6:])
	h.LeftSib = be.Uint64(b[8:])
	h.RightSib = be.Uint64(b[16:])
	h.Blkno = be.Uint64(b[24:])
	h.LSN = be.Uint64(b[32:])
	copy(h.UUID[:], b[40:56])
	h.Owner = be.Uint64(b[56:])
	h.CRC = le.Uint32(b[64:])
	h.Pad = be.Uint32(b[68:])
	return h, nil
}

// Encode writes h into the first LongBlockHdrLen bytes of b.
func (h *LongBlockHdr) Encode(b []byte) {
	_ = b[LongBlockHdrLen-1]
	be.PutUint32(b[0:], h.Magic)
	be.PutUint16(b[4:], h.Level)
	be.PutUint16(b[6:], h.NumRecs)
	be.PutUint64(b[8:], h.LeftSib)
	be.PutUint64(b[16:], h.RightSib)
	be.PutUint64(b[24:], h.Blkno)
	be.PutUint64(b[32:], h.LSN)
	copy(b[40:56], h.UUID[:])
	be.PutUint64(b[56:], h.Owner)
	le.PutUint32(b[64:], h.CRC)
	be.PutUint32(b[68:], h.Pad)
}

// BtreeType describes one kind of btree: its magic, header form and the
// sizes of its records, keys and pointers (the kernel's struct
// xfs_btree_ops geometry). This struct does not represent an on-disk struct.
type BtreeType struct {
	Name  string // "inobt", ...; errors name the structure Name+" block"
	Magic uint32
	Long  bool // long-form header, 64-bit fsbno pointers (bmbt)
	// RecLen and KeyLen are the sizes of one record and one key.
	RecLen, KeyLen int
	// Overlapping btrees (rmapbt) store a low and a high key per node slot.
	Overlapping bool
}

// The btree types.
var (
	BtInobt  = &BtreeType{Name: "inobt", Magic: InobtMagic, RecLen: InobtRecLen, KeyLen: InobtKeyLen}
	BtFinobt = &BtreeType{Name: "finobt", Magic: FinobtMagic, RecLen: InobtRecLen, KeyLen: InobtKeyLen}
	BtBnobt  = &BtreeType{Name: "bnobt", Magic: BnobtMagic, RecLen: AllocRecLen, KeyLen: AllocKeyLen}
	BtCntbt  = &BtreeType{Name: "cntbt", Magic: CntbtMagic, RecLen: AllocRecLen, KeyLen: AllocKeyLen}
	BtRmapbt = &BtreeType{Name: "rmapbt", Magic: RmapbtMagic, RecLen: RmapRecLen, KeyLen: RmapKeyLen, Overlapping: true}
	BtRefcbt = &BtreeType{Name: "refcountbt", Magic: RefcbtMagic, RecLen: RefcRecLen, KeyLen: RefcKeyLen}
	BtBmbt   = &BtreeType{Name: "bmbt", Magic: BmbtMagic, Long: true, RecLen: BmbtRecLen, KeyLen: BmbtKeyLen}
)

// BtreeTypeByMagic returns the btree type with magic m, or nil.
func BtreeTypeByMagic(m uint32) *BtreeType {
	for _, t := range []*BtreeType{BtInobt, BtFinobt, BtBnobt, BtCntbt, BtRmapbt, BtRefcbt, BtBmbt} {
		if t.Magic == m {
			return t
		}
	}
	return nil
}

// HdrLen is the block header length.
func (t *BtreeType) HdrLen() int {
	if t.Long {
		return LongBlockHdrLen
	}
	return ShortBlockHdrLen
}

// PtrLen is the size of one child pointer.
func (t *BtreeType) PtrLen() int {
	if t.Long {
		return LongPtrLen
	}
	return ShortPtrLen
}

// KeySlotLen is the size of one node key slot: two keys (low, high) for
// overlapping btrees.
func (t *BtreeType) KeySlotLen() int {
	if t.Overlapping {
		return 2 * t.KeyLen
	}
	return t.KeyLen
}

// MaxRecs is the number of records (leaf) or key/pointer pairs (node) a
// block of blocksize bytes holds (xfs_*bt_maxrecs).
func (t *BtreeType) MaxRecs(blocksize int, leaf bool) int {
	n := blocksize - t.HdrLen()
	if n < 0 {
		return 0
	}
	if leaf {
		return n / t.RecLen
	}
	return n / (t.KeySlotLen() + t.PtrLen())
}

// RecOff is the byte offset of leaf record i.
func (t *BtreeType) RecOff(i int) int { return t.HdrLen() + i*t.RecLen }

// KeyOff is the byte offset of node key slot i (its low key for
// overlapping btrees).
func (t *BtreeType) KeyOff(i int) int { return t.HdrLen() + i*t.KeySlotLen() }

// HighKeyOff is the byte offset of the high key of node slot i of an
// overlapping btree.
func (t *BtreeType) HighKeyOff(i int) int { return t.KeyOff(i) + t.KeyLen }

// PtrOff is the byte offset of node pointer i in a block of blocksize
// bytes: the pointers follow MaxRecs key slots.
func (t *BtreeType) PtrOff(blocksize, i int) int {
	return t.HdrLen() + t.MaxRecs(blocksize, false)*t.KeySlotLen() + i*t.PtrLen()
}

// MaxLevels is the tallest this btree can be on the filesystem
// (m_alloc_maxlevels, inobt_maxlevels, m_rmap_maxlevels, m_refc_maxlevels,
// the larger of m_bm_maxlevels).
func (t *BtreeType) MaxLevels(g *Geometry) int {
	bs := int(g.BlockSize)
	mnr := [2]uint64{uint64(t.MaxRecs(bs, true) / 2), uint64(t.MaxRecs(bs, false) / 2)}
	switch t.Magic {
	case InobtMagic, FinobtMagic:
		return computeMaxLevels(mnr, (uint64(1)<<g.AGInoLog)>>6)
	case BnobtMagic, CntbtMagic:
		return computeMaxLevels(mnr, (uint64(g.AGBlocks)+1)/2)
	case RmapbtMagic:
		if g.HasReflink {
			return spaceToHeight(mnr, uint64(g.AGBlocks))
		}
		return computeMaxLevels(mnr, uint64(g.AGBlocks))
	case RefcbtMagic:
		return computeMaxLevels(mnr, uint64(g.AGBlocks))
	case BmbtMagic:
		// xfs_bmap_compute_maxlevels for the data fork (3 root pointers in
		// the inode) and the attr fork (2), with the extent count limits
		// of xfs_iext_max_nextents.
		data, attr := uint64(1)<<31-1, uint64(1)<<15-1
		if g.HasNrext64 {
			data, attr = uint64(1)<<48-1, uint64(1)<<32-1
		}
		return max(bmapMaxLevels(mnr, data, 3), bmapMaxLevels(mnr, attr, 2))
	}
	return 0
}

// computeMaxLevels is xfs_btree_compute_maxlevels.
func computeMaxLevels(mnr [2]uint64, records uint64) int {
	if mnr[0] == 0 || mnr[1] == 0 {
		return 1
	}
	blocks := (records + mnr[0] - 1) / mnr[0]
	level := 1
	for blocks > 1 {
		blocks = (blocks + mnr[1] - 1) / mnr[1]
		level++
	}
	return level
}

// spaceToHeight is xfs_btree_space_to_height.
func spaceToHeight(mnr [2]uint64, leafBlocks uint64) int {
	if leafBlocks < 1 {
		return 0
	}
	nodeBlocks, left, height := uint64(2), leafBlocks-1, 1
	for nodeBlocks < left && mnr[1] > 1 {
		left -= nodeBlocks
		nodeBlocks *= mnr[1]
		height++
	}
	return height
}

// bmapMaxLevels is the per-fork loop of xfs_bmap_compute_maxlevels.
func bmapMaxLevels(mnr [2]uint64, maxLeafEnts, maxRootRecs uint64) int {
	if mnr[0] == 0 || mnr[1] == 0 {
		return 1
	}
	blocks := (maxLeafEnts + mnr[0] - 1) / mnr[0]
	level := 1
	for ; blocks > 1; level++ {
		if blocks <= maxRootRecs {
			blocks = 1
		} else {
			blocks = (blocks + mnr[1] - 1) / mnr[1]
		}
	}
	return level
}

// BtreeBlock is a view of one btree block whose header fits the buffer:
// numrecs is within what the block holds at its level, so every accessor
// below index NumRecs is in bounds. It aliases the buffer. This struct does
// not represent an on-disk struct.
type BtreeBlock struct {
	Type    *BtreeType
	B       []byte
	Level   int
	NumRecs int
}

// View checks that b's header describes records or key/pointer pairs that
// fit in b (numrecs <= MaxRecs(len(b), level == 0)) and returns a view. It
// does not check the magic, CRC or owner: see Verify.
func (t *BtreeType) View(b []byte) (*BtreeBlock, error) {
	if err := t.CheckNumRecs(b); err != nil {
		return nil, err
	}
	return &BtreeBlock{Type: t, B: b, Level: int(be.Uint16(b[4:])), NumRecs: int(be.Uint16(b[6:]))}, nil
}

// CheckNumRecs checks what View checks (the header fits, and bb_numrecs
// fits in the block at its level) without making a view.
func (t *BtreeType) CheckNumRecs(b []byte) error {
	if len(b) < t.HdrLen() {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: t.Name + " block", Field: "length of buffer", Found: len(b), Want: t.HdrLen()}
	}
	level := int(be.Uint16(b[4:]))
	n := int(be.Uint16(b[6:]))
	if m := t.MaxRecs(len(b), level == 0); n > m {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: t.Name + " block", Field: "bb_numrecs", Found: n, Want: nil,
			Msg: "exceeds the " + strconv.Itoa(m) + " entries a level " + strconv.Itoa(level) + " block holds"}
	}
	return nil
}

// IsLeaf reports a leaf block (level 0).
func (v *BtreeBlock) IsLeaf() bool { return v.Level == 0 }

// Rec returns the bytes of leaf record i.
func (v *BtreeBlock) Rec(i int) []byte {
	o := v.Type.RecOff(i)
	return v.B[o : o+v.Type.RecLen]
}

// Key returns the bytes of node key i (the low key for overlapping btrees).
func (v *BtreeBlock) Key(i int) []byte {
	o := v.Type.KeyOff(i)
	return v.B[o : o+v.Type.KeyLen]
}

// HighKey returns the bytes of the high key of node slot i of an
// overlapping btree.
func (v *BtreeBlock) HighKey(i int) []byte {
	o := v.Type.HighKeyOff(i)
	return v.B[o : o+v.Type.KeyLen]
}

// Ptr returns node pointer i: an agbno for short-form btrees, an fsbno for
// long-form ones.
func (v *BtreeBlock) Ptr(i int) uint64 {
	o := v.Type.PtrOff(len(v.B), i)
	if v.Type.Long {
		return be.Uint64(v.B[o:])
	}
	return uint64(be.Uint32(v.B[o:]))
}

// SetPtr stores node pointer i.
func (v *BtreeBlock) SetPtr(i int, p uint64) {
	o := v.Type.PtrOff(len(v.B), i)
	if v.Type.Long {
		be.PutUint64(v.B[o:], p)
	} else {
		be.PutUint32(v.B[o:], uint32(p))
	}
}

// Ptrs returns the node's NumRecs pointers.
func (v *BtreeBlock) Ptrs() []uint64 {
	if v.IsLeaf() {
		return nil
	}
	out := make([]uint64, v.NumRecs)
	for i := range out {
		out[i] = v.Ptr(i)
	}
	return out
}

// Verify is the read verifier of every v5 btree block of type t
// (xfs_btree_agblock_v5hdr_verify + xfs_btree_agblock_verify for
// short-form blocks, the fsblock variants for long-form ones, and each
// btree's level check): CRC, magic, uuid, blkno == c.Daddr, owner ==
// c.AG (short form) or a valid inode number (long form), level below the
// btree's maximum height, numrecs within the block, siblings NULL or blocks
// inside the AG (filesystem) other than this one.
func (t *BtreeType) Verify(b []byte, c VerifyCtx) error {
	st := t.Name + " block"
	w := c.Where()
	g := c.G
	if len(b) != int(g.BlockSize) {
		return w.Corrupt(st, "length of buffer", len(b), int(g.BlockSize), "")
	}
	crcOff := ShortBlockCrcOff
	if t.Long {
		crcOff = LongBlockCrcOff
	}
	if !VerifyCksum(b, crcOff) {
		return w.Corrupt(st, "bb_crc", StoredCksum(b, crcOff), Cksum(b, crcOff), "")
	}
	if m := be.Uint32(b[0:]); m != t.Magic {
		return w.Corrupt(st, "bb_magic", m, t.Magic, "")
	}
	level := int(be.Uint16(b[4:]))
	numrecs := int(be.Uint16(b[6:]))
	var uuid [16]byte
	var blkno uint64
	if t.Long {
		copy(uuid[:], b[40:56])
		blkno = be.Uint64(b[24:])
	} else {
		copy(uuid[:], b[32:48])
		blkno = be.Uint64(b[16:])
	}
	if uuid != g.BlockUUID {
		return w.Corrupt(st, "bb_uuid", hdrUUID(uuid), hdrUUID(g.BlockUUID), "")
	}
	if c.Daddr >= 0 && blkno != uint64(c.Daddr) {
		return w.Corrupt(st, "bb_blkno", blkno, uint64(c.Daddr), "")
	}
	if t.Long {
		if owner := be.Uint64(b[56:]); !g.ValidIno(owner) {
			return w.Corrupt(st, "bb_owner", owner, nil, "is not a valid inode number")
		}
	} else if owner := be.Uint32(b[48:]); c.AG != NoAG && owner != c.AG {
		return w.Corrupt(st, "bb_owner", owner, c.AG, "")
	}
	// The maximum height of a fork btree counts the root in the inode, so a
	// bmbt block may sit at level maxlevels-1 + 1 (xfs_bmbt_verify uses >).
	if m := t.MaxLevels(g); level >= m && !(t.Long && level == m) {
		return w.Corrupt(st, "bb_level", uint16(level), nil, "is beyond the maximum height "+strconv.Itoa(m))
	}
	if m := t.MaxRecs(len(b), level == 0); numrecs > m {
		return w.Corrupt(st, "bb_numrecs", uint16(numrecs), nil,
			"exceeds the "+strconv.Itoa(m)+" entries a level "+strconv.Itoa(level)+" block holds")
	}
	if c.Daddr < 0 {
		return nil
	}
	if t.Long {
		self := g.Fsbno(g.DaddrToAgno(c.Daddr), g.DaddrToAgbno(c.Daddr))
		for _, f := range []struct {
			name string
			off  int
		}{{"bb_leftsib", 8}, {"bb_rightsib", 16}} {
			s := be.Uint64(b[f.off:])
			if s == NullFsbno {
				continue
			}
			if s == self || !validFsbno(g, s) {
				return w.Corrupt(st, f.name, s, nil, "is neither NULLFSBLOCK nor another block of the filesystem")
			}
		}
		return nil
	}
	ag := c.AG
	if ag == NoAG {
		ag = g.DaddrToAgno(c.Daddr)
	}
	if ag >= g.AGCount {
		return w.Corrupt(st, "bb_owner", be.Uint32(b[48:]), nil, "AG beyond sb_agcount")
	}
	self := g.DaddrToAgbno(c.Daddr)
	for _, f := range []struct {
		name string
		off  int
	}{{"bb_leftsib", 8}, {"bb_rightsib", 12}} {
		s := be.Uint32(b[f.off:])
		if s == NullAgbno {
			continue
		}
		if s == self || !validAgbnoIn(g, g.AGSize(ag), s) {
			return w.Corrupt(st, f.name, s, nil, "is neither NULLAGBLOCK nor another block of the AG")
		}
	}
	return nil
}

// validFsbno is xfs_verify_fsbno.
func validFsbno(g *Geometry, fsbno uint64) bool {
	agno := g.FsbToAgno(fsbno)
	return agno < g.AGCount && validAgbnoIn(g, g.AGSize(agno), g.FsbToAgbno(fsbno))
}

// hdrUUID formats a uuid as xfs_db prints it.
func hdrUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
