package ondisk

import "fmt"

// Block map btree (bmbt) records and blocks: the extent records of inode
// forks, both in the literal area (EXTENTS format) and in the leaves of a
// fork's btree (BTREE format), and the long-form btree blocks themselves.
// The generic long-form header and verifier are in btree.go (BtBmbt).

// Bit widths of the packed bmbt record (xfs_format.h BMBT_*_BITLEN).
const (
	BmbtExntflagBitlen    = 1
	BmbtStartoffBitlen    = 54
	BmbtStartblockBitlen  = 52
	BmbtBlockcountBitlen  = 21
	BmbtStartoffMask      = 1<<BmbtStartoffBitlen - 1
	BmbtStartblockMask    = 1<<BmbtStartblockBitlen - 1
	BmbtBlockcountMask    = 1<<BmbtBlockcountBitlen - 1
	BmbtOwnerAny          = ^uint64(0) // VerifyBmbtBlock: do not check bb_owner against an inode
	bmbtStartblockHiShift = 43         // low 43 bits of startblock sit at the top of l1
)

// BmbtIrec is one extent, unpacked (struct xfs_bmbt_irec). It covers every
// bit of the 16-byte on-disk record (struct xfs_bmbt_rec, two big-endian
// u64 l0 and l1): bit 127 the unwritten flag, bits 73..126 StartOff, bits
// 21..72 StartBlock, bits 0..20 BlockCount. This struct does not represent
// an on-disk struct.
type BmbtIrec struct {
	StartOff   uint64 // br_startoff: file offset, in blocks (54 bits)
	StartBlock uint64 // br_startblock: AG-encoded fsbno (52 bits)
	BlockCount uint32 // br_blockcount (21 bits)
	Unwritten  bool   // br_state == XFS_EXT_UNWRITTEN
}

// DecodeBmbtRec unpacks the 16-byte record at b (xfs_bmbt_disk_get_all).
func DecodeBmbtRec(b []byte) BmbtIrec {
	l0, l1 := be.Uint64(b[0:]), be.Uint64(b[8:])
	return BmbtIrec{
		Unwritten:  l0>>63 != 0,
		StartOff:   (l0 >> 9) & BmbtStartoffMask,
		StartBlock: (l0&0x1ff)<<bmbtStartblockHiShift | l1>>21,
		BlockCount: uint32(l1 & BmbtBlockcountMask),
	}
}

// Encode packs r into the 16 bytes at b (xfs_bmbt_disk_set_all); fields
// are truncated to their widths.
func (r BmbtIrec) Encode(b []byte) {
	var l0 uint64
	if r.Unwritten {
		l0 = 1 << 63
	}
	sb := r.StartBlock & BmbtStartblockMask
	l0 |= (r.StartOff&BmbtStartoffMask)<<9 | sb>>bmbtStartblockHiShift
	l1 := sb<<21 | uint64(r.BlockCount)&BmbtBlockcountMask
	be.PutUint64(b[0:], l0)
	be.PutUint64(b[8:], l1)
}

// End is the first file block after the extent.
func (r BmbtIrec) End() uint64 { return r.StartOff + uint64(r.BlockCount) }

func (r BmbtIrec) String() string {
	return fmt.Sprintf("[%d,%d,%d,%d]", r.StartOff, r.StartBlock, r.BlockCount, b2i(r.Unwritten))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BmbtMaxRecs is m_bmap_dmxr: records per leaf and key/pointer pairs per
// node of a bmbt block of blocksize bytes, both (blocksize-72)/16.
func BmbtMaxRecs(blocksize int, leaf bool) int { return BtBmbt.MaxRecs(blocksize, leaf) }

// BmbtBlock is a decoded bmbt block: its long-form header and either its
// leaf records or its node keys (br_startoff) and child pointers (fsbno).
// This struct does not represent an on-disk struct in this shape: node
// pointers start at 72 + BmbtMaxRecs(blocksize)*8.
type BmbtBlock struct {
	LongBlockHdr
	Recs []BmbtIrec // leaf (Level 0)
	Keys []uint64   // node
	Ptrs []uint64   // node
}

// DecodeBmbtBlock decodes a bmbt block; len(b) is the block size. It fails,
// rather than panics, when numrecs does not fit the block; it checks
// nothing else (see VerifyBmbtBlock).
func DecodeBmbtBlock(b []byte) (*BmbtBlock, error) {
	v, err := BtBmbt.View(b)
	if err != nil {
		return nil, err
	}
	h, err := DecodeLongBlockHdr(b)
	if err != nil {
		return nil, err
	}
	blk := &BmbtBlock{LongBlockHdr: h}
	if v.IsLeaf() {
		blk.Recs = make([]BmbtIrec, v.NumRecs)
		for i := range blk.Recs {
			blk.Recs[i] = DecodeBmbtRec(v.Rec(i))
		}
		return blk, nil
	}
	blk.Keys = make([]uint64, v.NumRecs)
	for i := range blk.Keys {
		blk.Keys[i] = be.Uint64(v.Key(i))
	}
	blk.Ptrs = v.Ptrs()
	return blk, nil
}

// Encode writes the header and the records (or keys and pointers) into b,
// a whole block; the bytes beyond them are left alone. NumRecs is written
// as stored in the header. The CRC is not recomputed (BlockKind.Stamp does).
func (blk *BmbtBlock) Encode(b []byte) {
	blk.LongBlockHdr.Encode(b)
	if blk.Level == 0 {
		for i, r := range blk.Recs {
			r.Encode(b[BtBmbt.RecOff(i):])
		}
		return
	}
	for i, k := range blk.Keys {
		be.PutUint64(b[BtBmbt.KeyOff(i):], k)
	}
	for i, p := range blk.Ptrs {
		be.PutUint64(b[BtBmbt.PtrOff(len(b), i):], p)
	}
}

// VerifyBmbtBlock is the bmbt read verifier (xfs_bmbt_read_verify:
// xfs_btree_fsblock_verify_crc, xfs_bmbt_verify) plus the owner check the
// kernel makes when it walks a fork's btree (xfs_btree_check_block →
// xfs_btree_check_fsblock owner): CRC, magic, uuid, blkno == c.Daddr,
// level, numrecs, siblings, and bb_owner == owner (the inode whose fork
// this is) unless owner is BmbtOwnerAny.
func VerifyBmbtBlock(b []byte, c VerifyCtx, owner uint64) error {
	if err := BtBmbt.Verify(b, c); err != nil {
		return err
	}
	return CheckBmbtOwner(b, c, owner)
}

// CheckBmbtOwner is the owner half of VerifyBmbtBlock, for a block the
// buffer cache already verified as KindBmbt: bb_owner == owner unless
// owner is BmbtOwnerAny.
func CheckBmbtOwner(b []byte, c VerifyCtx, owner uint64) error {
	if len(b) < LongBlockHdrLen {
		return c.Where().Corrupt("bmbt block", "length of buffer", len(b), LongBlockHdrLen, "")
	}
	if got := be.Uint64(b[56:]); owner != BmbtOwnerAny && got != owner {
		return c.Where().Corrupt("bmbt block", "bb_owner", got, owner, "")
	}
	return nil
}
