package ondisk

import "strconv"

// AGF: the free space header of an allocation group (struct xfs_agf),
// stored in the AG's second sector. Its CRC covers the whole sector.

// AGF magic, version, size and field offsets (xfs_format.h).
const (
	AGFMagic   = 0x58414746 // "XAGF", XFS_AGF_MAGIC
	AGFVersion = 1          // XFS_AGF_VERSION
	AGFSize    = 224        // sizeof(struct xfs_agf)
	AGFCrcOff  = 216        // offsetof(struct xfs_agf, agf_crc)
	AGFLSNOff  = 208        // offsetof(struct xfs_agf, agf_lsn)
)

// Btree indexes of AGF.Roots and AGF.Levels (XFS_BTNUM_BNOi, CNTi, RMAPi).
const (
	AGFBno  = 0
	AGFCnt  = 1
	AGFRmap = 2
)

// AGFFields names fields of the AGF by bit, for reading, writing and
// logging them in place (the kernel's XFS_AGF_* bits, in their order, then
// the fields the kernel never logs by name).
type AGFFields uint32

// The AGF fields, in on-disk order.
const (
	AGFMagicNum AGFFields = 1 << iota
	AGFVersionNum
	AGFSeqNo
	AGFLength
	AGFRoots  // agf_bno_root, agf_cnt_root, agf_rmap_root: AGFRoot(i)
	AGFLevels // agf_bno_level, agf_cnt_level, agf_rmap_level: AGFLevel(i)
	AGFFLFirst
	AGFFLLast
	AGFFLCount
	AGFFreeBlks
	AGFLongest
	AGFBtreeBlks
	AGFUUID
	AGFRmapBlocks
	AGFRefcountBlocks
	AGFRefcountRoot
	AGFRefcountLevel
	AGFSpare64
	AGFLsn
	AGFCrc
	AGFSpare2
)

// agfLayout is the field table of struct xfs_agf (xfs_alloc_log_agf's
// offsets[]).
var agfLayout = &Layout{Struct: "AGF", Size: AGFSize, Fields: []Field{
	{Name: "agf_magicnum", Off: 0, Size: 4},
	{Name: "agf_versionnum", Off: 4, Size: 4},
	{Name: "agf_seqno", Off: 8, Size: 4},
	{Name: "agf_length", Off: 12, Size: 4},
	{Name: "agf_roots", Off: 16, Size: 12, Elem: 4},
	{Name: "agf_levels", Off: 28, Size: 12, Elem: 4},
	{Name: "agf_flfirst", Off: 40, Size: 4},
	{Name: "agf_fllast", Off: 44, Size: 4},
	{Name: "agf_flcount", Off: 48, Size: 4},
	{Name: "agf_freeblks", Off: 52, Size: 4},
	{Name: "agf_longest", Off: 56, Size: 4},
	{Name: "agf_btreeblks", Off: 60, Size: 4},
	{Name: "agf_uuid", Off: 64, Size: 16, Elem: 1},
	{Name: "agf_rmap_blocks", Off: 80, Size: 4},
	{Name: "agf_refcount_blocks", Off: 84, Size: 4},
	{Name: "agf_refcount_root", Off: 88, Size: 4},
	{Name: "agf_refcount_level", Off: 92, Size: 4},
	{Name: "agf_spare64", Off: 96, Size: 112, Elem: 8},
	{Name: "agf_lsn", Off: AGFLSNOff, Size: 8},
	{Name: "agf_crc", Off: AGFCrcOff, Size: 4, LE: true},
	{Name: "agf_spare2", Off: 220, Size: 4},
}}

// Layout is the AGF's field table.
func (AGFFields) Layout() *Layout { return agfLayout }

// Field returns the field of a single bit.
func (f AGFFields) Field() Field { return agfLayout.field(uint64(f)) }

// Get returns the value of the single scalar field f in the AGF sector b.
func (f AGFFields) Get(b []byte) uint64 { return f.Field().Uint(b) }

// Set stores v in the single scalar field f of the AGF sector b.
func (f AGFFields) Set(b []byte, v uint64) { f.Field().PutUint(b, v) }

// AGFRoot and AGFLevel are agf_roots[i] and agf_levels[i] (i: AGFBno,
// AGFCnt, AGFRmap).
func AGFRoot(i int) Field  { return agfRoots[i] }
func AGFLevel(i int) Field { return agfLevels[i] }

// The elements of agf_roots and agf_levels, named once (a name built per
// call cost an allocation on every btree change).
var agfRoots, agfLevels = elements(AGFRoots.Field(), 3), elements(AGFLevels.Field(), 3)

// AGF mirrors struct xfs_agf field by field. Offsets in comments.
type AGF struct {
	MagicNum       uint32     // 0 agf_magicnum
	VersionNum     uint32     // 4 agf_versionnum
	SeqNo          uint32     // 8 agf_seqno
	Length         uint32     // 12 agf_length
	Roots          [3]uint32  // 16 agf_bno_root, agf_cnt_root, agf_rmap_root
	Levels         [3]uint32  // 28 agf_bno_level, agf_cnt_level, agf_rmap_level
	FLFirst        uint32     // 40 agf_flfirst
	FLLast         uint32     // 44 agf_fllast
	FLCount        uint32     // 48 agf_flcount
	FreeBlks       uint32     // 52 agf_freeblks
	Longest        uint32     // 56 agf_longest
	BtreeBlks      uint32     // 60 agf_btreeblks
	UUID           [16]byte   // 64 agf_uuid
	RmapBlocks     uint32     // 80 agf_rmap_blocks
	RefcountBlocks uint32     // 84 agf_refcount_blocks
	RefcountRoot   uint32     // 88 agf_refcount_root
	RefcountLevel  uint32     // 92 agf_refcount_level
	Spare64        [14]uint64 // 96 agf_spare64
	LSN            uint64     // 208 agf_lsn
	CRC            uint32     // 216 agf_crc (little-endian on disk)
	Spare2         uint32     // 220 agf_spare2
}

// DecodeAGF decodes the first AGFSize bytes of b. It checks only the
// length; see VerifyAGF.
func DecodeAGF(b []byte) (*AGF, error) {
	if len(b) < AGFSize {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "AGF", Field: "length of buffer", Found: len(b), Want: AGFSize}
	}
	a := &AGF{}
	a.MagicNum = be.Uint32(b[0:])
	a.VersionNum = be.Uint32(b[4:])
	a.SeqNo = be.Uint32(b[8:])
	a.Length = be.Uint32(b[12:])
	for i := range 3 {
		a.Roots[i] = be.Uint32(b[16+4*i:])
		a.Levels[i] = be.Uint32(b[28+4*i:])
	}
	a.FLFirst = be.Uint32(b[40:])
	a.FLLast = be.Uint32(b[44:])
	a.FLCount = be.Uint32(b[48:])
	a.FreeBlks = be.Uint32(b[52:])
	a.Longest = be.Uint32(b[56:])
	a.BtreeBlks = be.Uint32(b[60:])
	copy(a.UUID[:], b[64:80])
	a.RmapBlocks = be.Uint32(b[80:])
	a.RefcountBlocks = be.Uint32(b[84:])
	a.RefcountRoot = be.Uint32(b[88:])
	a.RefcountLevel = be.Uint32(b[92:])
	for i := range a.Spare64 {
		a.Spare64[i] = be.Uint64(b[96+8*i:])
	}
	a.LSN = be.Uint64(b[208:])
	a.CRC = le.Uint32(b[216:])
	a.Spare2 = be.Uint32(b[220:])
	return a, nil
}

// Encode writes a into the first AGFSize bytes of b, leaving the rest of
// the sector alone. The CRC is written as stored in a; KindAGF.Stamp
// recomputes it.
func (a *AGF) Encode(b []byte) {
	_ = b[AGFSize-1]
	be.PutUint32(b[0:], a.MagicNum)
	be.PutUint32(b[4:], a.VersionNum)
	be.PutUint32(b[8:], a.SeqNo)
	be.PutUint32(b[12:], a.Length)
	for i := range 3 {
		be.PutUint32(b[16+4*i:], a.Roots[i])
		be.PutUint32(b[28+4*i:], a.Levels[i])
	}
	be.PutUint32(b[40:], a.FLFirst)
	be.PutUint32(b[44:], a.FLLast)
	be.PutUint32(b[48:], a.FLCount)
	be.PutUint32(b[52:], a.FreeBlks)
	be.PutUint32(b[56:], a.Longest)
	be.PutUint32(b[60:], a.BtreeBlks)
	copy(b[64:80], a.UUID[:])
	be.PutUint32(b[80:], a.RmapBlocks)
	be.PutUint32(b[84:], a.RefcountBlocks)
	be.PutUint32(b[88:], a.RefcountRoot)
	be.PutUint32(b[92:], a.RefcountLevel)
	for i := range a.Spare64 {
		be.PutUint64(b[96+8*i:], a.Spare64[i])
	}
	be.PutUint64(b[208:], a.LSN)
	le.PutUint32(b[216:], a.CRC)
	be.PutUint32(b[220:], a.Spare2)
}

// VerifyAGF is the AGF read verifier (xfs_agf_read_verify, xfs_agf_verify):
// the CRC over the sector b, magic, version, uuid, seqno and length against
// the AG the sector was read for, the AGFL indexes, the free space counters
// and the btree levels. b is the whole sector.
func VerifyAGF(b []byte, c VerifyCtx) error {
	const st = "AGF"
	w := c.Where()
	a, err := DecodeAGF(b)
	if err != nil {
		return SetLocation(err, c.AG, c.Daddr)
	}
	if !VerifyCksum(b, AGFCrcOff) {
		return w.Corrupt(st, "agf_crc", a.CRC, Cksum(b, AGFCrcOff), "")
	}
	if a.MagicNum != AGFMagic {
		return w.Corrupt(st, "agf_magicnum", a.MagicNum, uint32(AGFMagic), "")
	}
	if a.VersionNum != AGFVersion {
		return w.Corrupt(st, "agf_versionnum", a.VersionNum, uint32(AGFVersion), "")
	}
	if a.UUID != c.G.BlockUUID {
		return w.Corrupt(st, "agf_uuid", hdrUUID(a.UUID), hdrUUID(c.G.BlockUUID), "")
	}
	if err := checkAGSeqLen(c, st, "agf_seqno", "agf_length", a.SeqNo, a.Length); err != nil {
		return err
	}
	n := c.G.AGFLSize
	switch {
	case a.FLFirst >= n:
		return w.Corrupt(st, "agf_flfirst", a.FLFirst, nil, "is not below the AGFL size "+strconv.Itoa(int(n)))
	case a.FLLast >= n:
		return w.Corrupt(st, "agf_fllast", a.FLLast, nil, "is not below the AGFL size "+strconv.Itoa(int(n)))
	case a.FLCount > n:
		return w.Corrupt(st, "agf_flcount", a.FLCount, nil, "exceeds the AGFL size "+strconv.Itoa(int(n)))
	case a.FreeBlks > a.Length:
		return w.Corrupt(st, "agf_freeblks", a.FreeBlks, nil, "exceeds agf_length "+strconv.Itoa(int(a.Length)))
	case a.Longest > a.FreeBlks:
		return w.Corrupt(st, "agf_longest", a.Longest, nil, "exceeds agf_freeblks "+strconv.Itoa(int(a.FreeBlks)))
	case c.G.SB.HasLazySBCount() && a.BtreeBlks > a.Length:
		return w.Corrupt(st, "agf_btreeblks", a.BtreeBlks, nil, "exceeds agf_length")
	}
	maxAlloc := uint32(BtBnobt.MaxLevels(c.G))
	for i, f := range []string{"agf_bno_level", "agf_cnt_level"} {
		if a.Levels[i] < 1 || a.Levels[i] > maxAlloc {
			return w.Corrupt(st, f, a.Levels[i], nil, "is outside 1.."+strconv.Itoa(int(maxAlloc)))
		}
	}
	if c.G.HasRmapbt {
		if a.RmapBlocks > a.Length {
			return w.Corrupt(st, "agf_rmap_blocks", a.RmapBlocks, nil, "exceeds agf_length")
		}
		if m := uint32(BtRmapbt.MaxLevels(c.G)); a.Levels[AGFRmap] < 1 || a.Levels[AGFRmap] > m {
			return w.Corrupt(st, "agf_rmap_level", a.Levels[AGFRmap], nil, "is outside 1.."+strconv.Itoa(int(m)))
		}
	}
	if c.G.HasReflink {
		if a.RefcountBlocks > a.Length {
			return w.Corrupt(st, "agf_refcount_blocks", a.RefcountBlocks, nil, "exceeds agf_length")
		}
		if m := uint32(BtRefcbt.MaxLevels(c.G)); a.RefcountLevel < 1 || a.RefcountLevel > m {
			return w.Corrupt(st, "agf_refcount_level", a.RefcountLevel, nil, "is outside 1.."+strconv.Itoa(int(m)))
		}
	}
	return nil
}

// MinAGBlocks is XFS_MIN_AG_BLOCKS.
const MinAGBlocks = 64

// checkAGSeqLen is xfs_validate_ag_length plus the seqno check: the header
// belongs to the AG it was read for, and only the last AG may be short.
func checkAGSeqLen(c VerifyCtx, st, seqField, lenField string, seqno, length uint32) error {
	w := c.Where()
	if c.AG != NoAG && seqno != c.AG {
		return w.Corrupt(st, seqField, seqno, c.AG, "")
	}
	if length != c.G.AGBlocks {
		if seqno != c.G.AGCount-1 {
			return w.Corrupt(st, lenField, length, c.G.AGBlocks, "differs from sb_agblocks in an AG that is not the last")
		}
		if length < MinAGBlocks || length > c.G.AGBlocks {
			return w.Corrupt(st, lenField, length, nil, "is outside "+strconv.Itoa(MinAGBlocks)+".."+strconv.Itoa(int(c.G.AGBlocks)))
		}
	}
	return nil
}
