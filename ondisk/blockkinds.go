package ondisk

import "errors"

// Block kinds: one BlockKind per kind of metadata block, as the kernel has
// one struct xfs_buf_ops per kind (its name, magics, read verifier, and
// where its LSN and CRC live for the write side). The buffer cache
// verifies every read with Verify and stamps every write with Stamp; no
// other code checks a magic or a CRC.

// VerifyCtx tells a verifier where a block was read from and what the
// filesystem's geometry is. This struct does not represent an on-disk struct.
type VerifyCtx struct {
	G     *Geometry
	AG    uint32 // NoAG when the block is not bound to an AG
	Daddr int64
}

// Where returns the location for error reports.
func (c VerifyCtx) Where() Where { return Where{AG: c.AG, Daddr: c.Daddr} }

// BlockKind describes one kind of metadata block, as the kernel's struct
// xfs_buf_ops does: its name, magic numbers, read verifier and where its
// LSN and CRC live (for the write side: Stamp). The buffer cache calls
// Verify on every read and Stamp before every write; no other code checks a
// magic or a CRC. This struct does not represent an on-disk struct.
type BlockKind struct {
	Name   string
	Magics []uint32
	// CrcOff is the offset of the CRC field, or -1 if the kind has none
	// (file data, inode clusters, whose inodes carry their own CRCs).
	CrcOff int
	// LSNOff is the offset of the big-endian LSN field, or -1.
	LSNOff int
	// CrcLen is the number of bytes the CRC covers: 0 means the whole buffer.
	CrcLen int
	// Blft is the log buffer type (enum xfs_blft) used in buffer log items.
	Blft uint16
	// Verify is the read verifier. nil means no verification.
	Verify func(b []byte, c VerifyCtx) error
}

// Stamp is the write verifier: for v5 kinds it stores lsn in the block's
// LSN field (when lsn != 0) and recomputes the CRC.
func (k *BlockKind) Stamp(b []byte, lsn uint64) {
	if k.LSNOff >= 0 && lsn != 0 {
		be.PutUint64(b[k.LSNOff:], lsn)
	}
	if k.CrcOff >= 0 {
		n := len(b)
		if k.CrcLen > 0 && k.CrcLen < n {
			n = k.CrcLen
		}
		UpdateCksum(b[:n], k.CrcOff)
	}
}

// The block kinds.
var (
	// KindSB is a superblock sector, primary (AG 0) or secondary (the
	// first sector of every other AG).
	KindSB = &BlockKind{Name: "superblock", Magics: []uint32{SBMagic}, CrcOff: SBCrcOff, LSNOff: SBLSNOff, Blft: BlftSB, Verify: verifySB}
	// KindAGF, KindAGI and KindAGFL are the AG header sectors.
	KindAGF  = &BlockKind{Name: "AGF", Magics: []uint32{AGFMagic}, CrcOff: AGFCrcOff, LSNOff: AGFLSNOff, Blft: BlftAGF, Verify: VerifyAGF}
	KindAGI  = &BlockKind{Name: "AGI", Magics: []uint32{AGIMagic}, CrcOff: AGICrcOff, LSNOff: AGILSNOff, Blft: BlftAGI, Verify: VerifyAGI}
	KindAGFL = &BlockKind{Name: "AGFL", Magics: []uint32{AGFLMagic}, CrcOff: AGFLCrcOff, LSNOff: AGFLLSNOff, Blft: BlftAGFL, Verify: VerifyAGFL}
	// The btree blocks. KindBmbt checks the long-form header only; its
	// records are decoded elsewhere.
	KindInobt  = btreeKind(BtInobt)
	KindFinobt = btreeKind(BtFinobt)
	KindBnobt  = btreeKind(BtBnobt)
	KindCntbt  = btreeKind(BtCntbt)
	KindRmapbt = btreeKind(BtRmapbt)
	KindRefcbt = btreeKind(BtRefcbt)
	KindBmbt   = btreeKind(BtBmbt)
	// KindInodeCluster is an inode cluster buffer. It has no CRC of its
	// own: every inode carries one, checked when the inode is read
	// (VerifyDinode). Its magic is the 16-bit di_magic at the start of every
	// inode slot; VerifyInodeBuf (dinode.go) is xfs_inode_buf_verify.
	KindInodeCluster = &BlockKind{Name: "inode cluster", Magics: []uint32{DinodeMagic}, CrcOff: -1, LSNOff: -1, Blft: BlftDino, Verify: VerifyInodeBuf}
	// KindData is file data or anything else without a verifier.
	KindData = &BlockKind{Name: "data", CrcOff: -1, LSNOff: -1, Blft: BlftUnknown}
)

// Kinds lists every kind of the table.
var Kinds = []*BlockKind{KindSB, KindAGF, KindAGI, KindAGFL, KindInobt, KindFinobt, KindBnobt, KindCntbt,
	KindRmapbt, KindRefcbt, KindBmbt, KindInodeCluster, KindData, KindSymlink, KindAttrDA, KindAttrRmt}

func btreeKind(t *BtreeType) *BlockKind {
	k := &BlockKind{Name: t.Name, Magics: []uint32{t.Magic}, CrcOff: ShortBlockCrcOff, LSNOff: ShortBlockLSNOff, Blft: BlftBtree, Verify: t.Verify}
	if t.Long {
		k.CrcOff, k.LSNOff = LongBlockCrcOff, LongBlockLSNOff
	}
	return k
}

// KindByMagic returns the kind whose blocks start with the 32-bit magic m,
// or, failing that, KindInodeCluster when the top 16 bits of m are the
// inode magic (the first 4 bytes of an inode are di_magic and di_mode), or
// nil. Log recovery uses it to pick the verifier of a replayed buffer.
func KindByMagic(m uint32) *BlockKind {
	for _, k := range Kinds {
		if k == KindInodeCluster {
			continue
		}
		for _, km := range k.Magics {
			if km == m {
				return k
			}
		}
	}
	if m>>16 == DinodeMagic {
		return KindInodeCluster
	}
	return nil
}

// verifySB verifies a superblock sector, primary or secondary.
func verifySB(b []byte, c VerifyCtx) error {
	s, err := DecodeSuperblock(b)
	if err == nil {
		err = s.Verify(b)
	}
	var ce *CorruptError
	if errors.As(err, &ce) {
		ce.AG, ce.Daddr = c.AG, c.Daddr
	}
	return err
}

// BufLSNFields says where the v5 metadata block b keeps its LSN and the
// uuid that says the LSN is this filesystem's, found by its magic, as
// xlog_recover_get_buf_lsn does (metaUUID: the superblock's uuid field is
// sb_meta_uuid). ok is false for a block recovery must replay whatever it
// holds: no magic it knows (inode clusters, dquots, realtime bitmap and
// summary, unknown contents) or a remote attribute value block (written
// synchronously, never with a valid LSN).
func BufLSNFields(b []byte, metaUUID bool) (lsn, uuid Field, ok bool) {
	f := func(lsnOff, uuidOff int) (Field, Field, bool) {
		return Field{Name: "lsn", Off: lsnOff, Size: 8}, Field{Name: "uuid", Off: uuidOff, Size: 16, Elem: 1}, true
	}
	if len(b) < 4 {
		return Field{}, Field{}, false
	}
	switch be.Uint32(b) {
	case BnobtMagic, CntbtMagic, RmapbtMagic, RefcbtMagic, FinobtMagic, InobtMagic:
		return f(ShortBlockLSNOff, ShortBlockUUID.Field().Off)
	case BmbtMagic:
		return f(LongBlockLSNOff, LongBlockUUID.Field().Off)
	case AGFMagic:
		return f(AGFLSNOff, AGFUUID.Field().Off)
	case AGFLMagic:
		return f(AGFLLSNOff, AGFLUUID.Field().Off)
	case AGIMagic:
		return f(AGILSNOff, AGIUUID.Field().Off)
	case SymlinkMagic:
		return f(SymlinkLSNOff, SymlinkUUIDOff)
	case Dir3BlockMagic, Dir3DataMagic, Dir3FreeMagic:
		return f(Dir3BlkHdrLSNOff, Dir3BlkHdrUUIDOff)
	case Attr3RmtMagic:
		return Field{}, Field{}, false
	case SBMagic:
		if metaUUID {
			return f(SBLSNOff, SBMetaUUID.Field().Off)
		}
		return f(SBLSNOff, SBUUID.Field().Off)
	}
	if len(b) >= DA3MagicOff+2 {
		switch be.Uint16(b[DA3MagicOff:]) {
		case Dir3Leaf1Magic, Dir3LeafNMagic, DA3NodeMagic, Attr3LeafMagic:
			return f(DA3LSNOff, DA3UUIDOff)
		}
	}
	return Field{}, Field{}, false
}
