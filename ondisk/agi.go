package ondisk

import "strconv"

// AGI: the inode header of an allocation group (struct xfs_agi), stored in
// the AG's third sector. Its CRC covers the whole sector.

// AGI magic, version, size and field offsets (xfs_format.h).
const (
	AGIMagic           = 0x58414749 // "XAGI", XFS_AGI_MAGIC
	AGIVersion         = 1          // XFS_AGI_VERSION
	AGISize            = 344        // sizeof(struct xfs_agi)
	AGICrcOff          = 312        // offsetof(struct xfs_agi, agi_crc)
	AGILSNOff          = 320        // offsetof(struct xfs_agi, agi_lsn)
	AGIUnlinkedOff     = 40         // offsetof(struct xfs_agi, agi_unlinked)
	AGIUnlinkedBuckets = 64         // XFS_AGI_UNLINKED_BUCKETS
)

// AGI mirrors struct xfs_agi field by field. Offsets in comments.
type AGI struct {
	MagicNum   uint32                     // 0 agi_magicnum
	VersionNum uint32                     // 4 agi_versionnum
	SeqNo      uint32                     // 8 agi_seqno
	Length     uint32                     // 12 agi_length
	Count      uint32                     // 16 agi_count
	Root       uint32                     // 20 agi_root
	Level      uint32                     // 24 agi_level
	FreeCount  uint32                     // 28 agi_freecount
	NewIno     uint32                     // 32 agi_newino
	DirIno     uint32                     // 36 agi_dirino
	Unlinked   [AGIUnlinkedBuckets]uint32 // 40 agi_unlinked
	UUID       [16]byte                   // 296 agi_uuid
	CRC        uint32                     // 312 agi_crc (little-endian on disk)
	Pad32      uint32                     // 316 agi_pad32
	LSN        uint64                     // 320 agi_lsn
	FreeRoot   uint32                     // 328 agi_free_root
	FreeLevel  uint32                     // 332 agi_free_level
	IBlocks    uint32                     // 336 agi_iblocks
	FBlocks    uint32                     // 340 agi_fblocks
}

// AGIFields names fields of the AGI by bit, for reading, writing and
// logging them in place (the kernel's XFS_AGI_* bits, one per field here).
type AGIFields uint32

// The AGI fields, in on-disk order.
const (
	AGIMagicNum AGIFields = 1 << iota
	AGIVersionNum
	AGISeqNo
	AGILength
	AGICount
	AGIRoot
	AGILevel
	AGIFreeCount
	AGINewIno
	AGIDirIno
	AGIUnlinked // the whole array; AGIBucket(i) is one bucket
	AGIUUID
	AGICrc
	AGIPad32
	AGILsn
	AGIFreeRoot
	AGIFreeLevel
	AGIIBlocks
	AGIFBlocks
)

// agiLayout is the field table of struct xfs_agi (xfs_ialloc_log_agi's
// offsets[]).
var agiLayout = &Layout{Struct: "AGI", Size: AGISize, Fields: []Field{
	{Name: "agi_magicnum", Off: 0, Size: 4},
	{Name: "agi_versionnum", Off: 4, Size: 4},
	{Name: "agi_seqno", Off: 8, Size: 4},
	{Name: "agi_length", Off: 12, Size: 4},
	{Name: "agi_count", Off: 16, Size: 4},
	{Name: "agi_root", Off: 20, Size: 4},
	{Name: "agi_level", Off: 24, Size: 4},
	{Name: "agi_freecount", Off: 28, Size: 4},
	{Name: "agi_newino", Off: 32, Size: 4},
	{Name: "agi_dirino", Off: 36, Size: 4},
	{Name: "agi_unlinked", Off: AGIUnlinkedOff, Size: 4 * AGIUnlinkedBuckets, Elem: 4},
	{Name: "agi_uuid", Off: 296, Size: 16, Elem: 1},
	{Name: "agi_crc", Off: AGICrcOff, Size: 4, LE: true},
	{Name: "agi_pad32", Off: 316, Size: 4},
	{Name: "agi_lsn", Off: AGILSNOff, Size: 8},
	{Name: "agi_free_root", Off: 328, Size: 4},
	{Name: "agi_free_level", Off: 332, Size: 4},
	{Name: "agi_iblocks", Off: 336, Size: 4},
	{Name: "agi_fblocks", Off: 340, Size: 4},
}}

// Layout is the AGI's field table.
func (AGIFields) Layout() *Layout { return agiLayout }

// Field returns the field of a single bit.
func (f AGIFields) Field() Field { return agiLayout.field(uint64(f)) }

// Get returns the value of the single scalar field f in the AGI sector b.
func (f AGIFields) Get(b []byte) uint64 { return f.Field().Uint(b) }

// Set stores v in the single scalar field f of the AGI sector b.
func (f AGIFields) Set(b []byte, v uint64) { f.Field().PutUint(b, v) }

// AGIBucket is agi_unlinked[i], the head of unlinked bucket i.
func AGIBucket(i int) Field { return agiBuckets[i] }

var agiBuckets = elements(AGIUnlinked.Field(), AGIUnlinkedBuckets)

// DecodeAGI decodes the first AGISize bytes of b. It checks only the
// length; see VerifyAGI.
func DecodeAGI(b []byte) (*AGI, error) {
	if len(b) < AGISize {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "AGI", Field: "length of buffer", Found: len(b), Want: AGISize}
	}
	a := &AGI{}
	a.MagicNum = be.Uint32(b[0:])
	a.VersionNum = be.Uint32(b[4:])
	a.SeqNo = be.Uint32(b[8:])
	a.Length = be.Uint32(b[12:])
	a.Count = be.Uint32(b[16:])
	a.Root = be.Uint32(b[20:])
	a.Level = be.Uint32(b[24:])
	a.FreeCount = be.Uint32(b[28:])
	a.NewIno = be.Uint32(b[32:])
	a.DirIno = be.Uint32(b[36:])
	for i := range a.Unlinked {
		a.Unlinked[i] = be.Uint32(b[AGIUnlinkedOff+4*i:])
	}
	copy(a.UUID[:], b[296:312])
	a.CRC = le.Uint32(b[312:])
	a.Pad32 = be.Uint32(b[316:])
	a.LSN = be.Uint64(b[320:])
	a.FreeRoot = be.Uint32(b[328:])
	a.FreeLevel = be.Uint32(b[332:])
	a.IBlocks = be.Uint32(b[336:])
	a.FBlocks = be.Uint32(b[340:])
	return a, nil
}

// Encode writes a into the first AGISize bytes of b, leaving the rest of
// the sector alone. The CRC is written as stored in a; KindAGI.Stamp
// recomputes it.
func (a *AGI) Encode(b []byte) {
	_ = b[AGISize-1]
	be.PutUint32(b[0:], a.MagicNum)
	be.PutUint32(b[4:], a.VersionNum)
	be.PutUint32(b[8:], a.SeqNo)
	be.PutUint32(b[12:], a.Length)
	be.PutUint32(b[16:], a.Count)
	be.PutUint32(b[20:], a.Root)
	be.PutUint32(b[24:], a.Level)
	be.PutUint32(b[28:], a.FreeCount)
	be.PutUint32(b[32:], a.NewIno)
	be.PutUint32(b[36:], a.DirIno)
	for i := range a.Unlinked {
		be.PutUint32(b[AGIUnlinkedOff+4*i:], a.Unlinked[i])
	}
	copy(b[296:312], a.UUID[:])
	le.PutUint32(b[312:], a.CRC)
	be.PutUint32(b[316:], a.Pad32)
	be.PutUint64(b[320:], a.LSN)
	be.PutUint32(b[328:], a.FreeRoot)
	be.PutUint32(b[332:], a.FreeLevel)
	be.PutUint32(b[336:], a.IBlocks)
	be.PutUint32(b[340:], a.FBlocks)
}

// VerifyAGI is the AGI read verifier (xfs_agi_read_verify, xfs_agi_verify):
// the CRC over the sector b, magic, version, uuid, seqno and length, the
// inode counters, the inobt and finobt levels, and every unlinked bucket
// head (NULLAGINO or an agino inside the AG). b is the whole sector.
func VerifyAGI(b []byte, c VerifyCtx) error {
	const st = "AGI"
	w := c.Where()
	a, err := DecodeAGI(b)
	if err != nil {
		return SetLocation(err, c.AG, c.Daddr)
	}
	if !VerifyCksum(b, AGICrcOff) {
		return w.Corrupt(st, "agi_crc", a.CRC, Cksum(b, AGICrcOff), "")
	}
	if a.MagicNum != AGIMagic {
		return w.Corrupt(st, "agi_magicnum", a.MagicNum, uint32(AGIMagic), "")
	}
	if a.VersionNum != AGIVersion {
		return w.Corrupt(st, "agi_versionnum", a.VersionNum, uint32(AGIVersion), "")
	}
	if a.UUID != c.G.BlockUUID {
		return w.Corrupt(st, "agi_uuid", hdrUUID(a.UUID), hdrUUID(c.G.BlockUUID), "")
	}
	if err := checkAGSeqLen(c, st, "agi_seqno", "agi_length", a.SeqNo, a.Length); err != nil {
		return err
	}
	if a.FreeCount > a.Count {
		return w.Corrupt(st, "agi_freecount", a.FreeCount, nil, "exceeds agi_count "+strconv.Itoa(int(a.Count)))
	}
	// An AG cannot hold more inodes than its blocks hold inode slots.
	if maxIno := uint64(a.Length) << c.G.InoPBLog; uint64(a.Count) > maxIno {
		return w.Corrupt(st, "agi_count", a.Count, nil, "exceeds the inode slots of the AG")
	}
	m := uint32(BtInobt.MaxLevels(c.G))
	if a.Level < 1 || a.Level > m {
		return w.Corrupt(st, "agi_level", a.Level, nil, "is outside 1.."+strconv.Itoa(int(m)))
	}
	if !validAgbnoIn(c.G, a.Length, a.Root) {
		return w.Corrupt(st, "agi_root", a.Root, nil, "is not a block inside the AG")
	}
	if c.G.HasFinobt {
		if a.FreeLevel < 1 || a.FreeLevel > m {
			return w.Corrupt(st, "agi_free_level", a.FreeLevel, nil, "is outside 1.."+strconv.Itoa(int(m)))
		}
		if !validAgbnoIn(c.G, a.Length, a.FreeRoot) {
			return w.Corrupt(st, "agi_free_root", a.FreeRoot, nil, "is not a block inside the AG")
		}
	}
	if c.G.HasInobtCount {
		if a.IBlocks > a.Length {
			return w.Corrupt(st, "agi_iblocks", a.IBlocks, nil, "exceeds agi_length")
		}
		if a.FBlocks > a.Length {
			return w.Corrupt(st, "agi_fblocks", a.FBlocks, nil, "exceeds agi_length")
		}
	}
	for i, v := range a.Unlinked {
		if v == NullAgino {
			continue
		}
		if !validAginoIn(c.G, a.Length, v) {
			return w.Corrupt(st, "agi_unlinked["+strconv.Itoa(i)+"]", v, nil, "is neither NULLAGINO nor an inode of this AG")
		}
	}
	return nil
}

// validAginoIn reports whether agino addresses an inode slot of an AG of
// length blocks where an inode chunk can start: past the AG headers and
// inside the last cluster-aligned block (xfs_verify_agino, xfs_agino_range).
func validAginoIn(g *Geometry, length, agino uint32) bool {
	if agino == NullAgino || (g.AGInoLog < 32 && uint64(agino)>>g.AGInoLog != 0) {
		return false
	}
	align := max(g.ClusterAlign, 1)
	first := (agflBlock(g) + 1 + align - 1) / align * align
	end := length / align * align // first block past the last possible chunk
	agbno := g.AginoToAgbno(agino)
	return agbno >= first && agbno < end
}

// validAgbnoIn reports whether agbno is a block of an AG of length blocks
// past the AG header blocks (xfs_verify_agbno).
func validAgbnoIn(g *Geometry, length, agbno uint32) bool {
	return agbno > agflBlock(g) && agbno < length
}

// agflBlock is XFS_AGFL_BLOCK: the AG block holding the AGFL sector.
func agflBlock(g *Geometry) uint32 {
	return uint32((uint64(3) << g.SectBBLog) >> g.BlkBBLog)
}
