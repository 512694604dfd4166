package ondisk

import "strconv"

// AGFL: the allocation group free list (struct xfs_agfl), stored in the
// AG's fourth sector: a header and a ring of xfs_agfl_size block numbers
// whose live part the AGF describes (agf_flfirst, agf_fllast,
// agf_flcount). Its CRC covers the whole sector.

// AGFL magic and field offsets (xfs_format.h).
const (
	AGFLMagic  = 0x5841464c // "XAFL", XFS_AGFL_MAGIC
	AGFLCrcOff = 32         // offsetof(struct xfs_agfl, agfl_crc)
	AGFLLSNOff = 24         // offsetof(struct xfs_agfl, agfl_lsn)
	AGFLBnoOff = AGFLHdrLen // offsetof(struct xfs_agfl, agfl_bno)
)

// AGFL mirrors struct xfs_agfl: its header and every slot of agfl_bno
// (NullAgbno for an unused slot).
type AGFL struct {
	MagicNum uint32   // 0 agfl_magicnum
	SeqNo    uint32   // 4 agfl_seqno
	UUID     [16]byte // 8 agfl_uuid
	LSN      uint64   // 24 agfl_lsn
	CRC      uint32   // 32 agfl_crc (little-endian on disk)
	Bno      []uint32 // 36 agfl_bno[xfs_agfl_size]
}

// AGFLSlot is agfl_bno[i], one slot of the ring.
func AGFLSlot(i int) Field {
	return Field{Name: "agfl_bno[" + strconv.Itoa(i) + "]", Off: AGFLBnoOff + 4*i, Size: 4}
}

// AGFLFields names fields of the AGFL header by bit.
type AGFLFields uint32

// The AGFL header fields, in on-disk order.
const (
	AGFLMagicNum AGFLFields = 1 << iota
	AGFLSeqNo
	AGFLUUID
	AGFLLsn
	AGFLCrc
)

// agflLayout is the field table of the header of struct xfs_agfl.
var agflLayout = &Layout{Struct: "AGFL", Size: AGFLHdrLen, Fields: []Field{
	{Name: "agfl_magicnum", Off: 0, Size: 4},
	{Name: "agfl_seqno", Off: 4, Size: 4},
	{Name: "agfl_uuid", Off: 8, Size: 16, Elem: 1},
	{Name: "agfl_lsn", Off: AGFLLSNOff, Size: 8},
	{Name: "agfl_crc", Off: AGFLCrcOff, Size: 4, LE: true},
}}

// Layout is the AGFL header's field table.
func (AGFLFields) Layout() *Layout { return agflLayout }

// Field returns the field of a single bit.
func (f AGFLFields) Field() Field { return agflLayout.field(uint64(f)) }

// Get returns the value of the single scalar field f of the AGFL sector b.
func (f AGFLFields) Get(b []byte) uint64 { return f.Field().Uint(b) }

// Set stores v in the single scalar field f of the AGFL sector b.
func (f AGFLFields) Set(b []byte, v uint64) { f.Field().PutUint(b, v) }

// DecodeAGFL decodes the AGFL sector b: the header and (len(b)-36)/4 slots
// (g.AGFLSize when b is one sector).
func DecodeAGFL(b []byte) (*AGFL, error) {
	if len(b) < AGFLHdrLen {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "AGFL", Field: "length of buffer", Found: len(b), Want: AGFLHdrLen}
	}
	a := &AGFL{}
	a.MagicNum = be.Uint32(b[0:])
	a.SeqNo = be.Uint32(b[4:])
	copy(a.UUID[:], b[8:24])
	a.LSN = be.Uint64(b[24:])
	a.CRC = le.Uint32(b[32:])
	n := (len(b) - AGFLHdrLen) / 4
	a.Bno = make([]uint32, n)
	for i := range a.Bno {
		a.Bno[i] = be.Uint32(b[AGFLBnoOff+4*i:])
	}
	return a, nil
}

// Encode writes a into b: the header and as many slots as a.Bno holds and b
// has room for.
func (a *AGFL) Encode(b []byte) {
	_ = b[AGFLHdrLen-1]
	be.PutUint32(b[0:], a.MagicNum)
	be.PutUint32(b[4:], a.SeqNo)
	copy(b[8:24], a.UUID[:])
	be.PutUint64(b[24:], a.LSN)
	le.PutUint32(b[32:], a.CRC)
	for i, v := range a.Bno {
		if AGFLBnoOff+4*i+4 > len(b) {
			break
		}
		be.PutUint32(b[AGFLBnoOff+4*i:], v)
	}
}

// AGFLEntry is one live slot of the free list. This struct does not
// represent an on-disk struct.
type AGFLEntry struct {
	Slot  uint32 // index into agfl_bno
	Agbno uint32
}

// Live lists the live free list entries in order, from agf.FLFirst through
// agf.FLLast around the ring (xfs_agfl_walk). It checks the indexes against
// the AGFL size, that the ring from flfirst to fllast holds exactly flcount
// slots, and that every live entry is a block inside an AG of
// agf.Length blocks past the AG headers.
func (a *AGFL) Live(g *Geometry, agf *AGF) ([]AGFLEntry, error) {
	w := Where{AG: agf.SeqNo, Daddr: -1}
	size := uint32(len(a.Bno))
	if size == 0 || size > g.AGFLSize {
		return nil, w.Corrupt("AGFL", "agfl_bno", len(a.Bno), g.AGFLSize, "slot count")
	}
	if err := CheckAGFLRing(w, agf.FLFirst, agf.FLLast, agf.FLCount, size); err != nil {
		return nil, err
	}
	if agf.FLCount == 0 {
		return nil, nil
	}
	out := make([]AGFLEntry, 0, agf.FLCount)
	for i, s := uint32(0), agf.FLFirst; i < agf.FLCount; i, s = i+1, (s+1)%size {
		v := a.Bno[s]
		if !validAgbnoIn(g, agf.Length, v) {
			return nil, w.Corrupt("AGFL", "agfl_bno["+strconv.Itoa(int(s))+"]", v, nil, "is not a block inside the AG")
		}
		out = append(out, AGFLEntry{Slot: s, Agbno: v})
	}
	return out, nil
}

// CheckAGFLRing is xfs_agfl_needs_reset's check of the AGF's free list
// indexes (agf_flfirst, agf_fllast, agf_flcount) against a ring of size
// slots: both indexes inside the ring, and flcount the number of slots from
// flfirst through fllast (0 for an empty list). Errors name the AGF at w.
func CheckAGFLRing(w Where, first, last, count, size uint32) error {
	switch {
	case first >= size:
		return w.Corrupt("AGF", "agf_flfirst", first, nil, "is not below the AGFL size "+strconv.Itoa(int(size)))
	case last >= size:
		return w.Corrupt("AGF", "agf_fllast", last, nil, "is not below the AGFL size "+strconv.Itoa(int(size)))
	case count > size:
		return w.Corrupt("AGF", "agf_flcount", count, nil, "exceeds the AGFL size "+strconv.Itoa(int(size)))
	}
	var span uint32
	if count != 0 {
		span = (last+size-first)%size + 1
	}
	if span != count {
		return w.Corrupt("AGF", "agf_flcount", count, span, "does not match the slots from agf_flfirst to agf_fllast")
	}
	return nil
}

// VerifyAGFL is the AGFL read verifier (xfs_agfl_read_verify,
// xfs_agfl_verify): the CRC over the sector b, magic, uuid, seqno, and every
// slot NULLAGBLOCK or below sb_agblocks.
func VerifyAGFL(b []byte, c VerifyCtx) error {
	const st = "AGFL"
	w := c.Where()
	a, err := DecodeAGFL(b)
	if err != nil {
		return SetLocation(err, c.AG, c.Daddr)
	}
	if !VerifyCksum(b, AGFLCrcOff) {
		return w.Corrupt(st, "agfl_crc", a.CRC, Cksum(b, AGFLCrcOff), "")
	}
	if a.MagicNum != AGFLMagic {
		return w.Corrupt(st, "agfl_magicnum", a.MagicNum, uint32(AGFLMagic), "")
	}
	if a.UUID != c.G.BlockUUID {
		return w.Corrupt(st, "agfl_uuid", hdrUUID(a.UUID), hdrUUID(c.G.BlockUUID), "")
	}
	if c.AG != NoAG && a.SeqNo != c.AG {
		return w.Corrupt(st, "agfl_seqno", a.SeqNo, c.AG, "")
	}
	for i, v := range a.Bno {
		if uint32(i) >= c.G.AGFLSize {
			break
		}
		if v != NullAgbno && v >= c.G.AGBlocks {
			return w.Corrupt(st, "agfl_bno["+strconv.Itoa(i)+"]", v, nil, "is neither NULLAGBLOCK nor below sb_agblocks")
		}
	}
	return nil
}
