package ondisk

// Extended attribute storage (xfs_da_format.h): the shortform attr fork in
// the inode (struct xfs_attr_shortform), and the blocks of an attr fork
// in extents or btree format: dabtree node blocks (struct xfs_da3_intnode),
// leaf blocks (struct xfs_attr3_leafblock) and remote value blocks (struct
// xfs_attr3_rmt_hdr and the value's bytes). v5 (CRC) layouts only.

import "fmt"

// Magic numbers and sizes.
const (
	DA3NodeMagic     = 0x3ebe     // XFS_DA3_NODE_MAGIC, at offset 8 (da_blkinfo.magic)
	Attr3LeafMagic   = 0x3bee     // XFS_ATTR3_LEAF_MAGIC, at offset 8
	Attr3RmtMagic    = 0x5841524d // "XARM", XFS_ATTR3_RMT_MAGIC
	DA3BlkinfoLen    = 56         // sizeof(struct xfs_da3_blkinfo)
	DA3NodeHdrLen    = 64         // sizeof(struct xfs_da3_node_hdr)
	DANodeEntryLen   = 8          // sizeof(struct xfs_da_node_entry)
	DA3CrcOff        = 12         // XFS_DA3_NODE_CRC_OFF, XFS_ATTR3_LEAF_CRC_OFF
	DA3LSNOff        = 24         // offsetof(struct xfs_da3_blkinfo, lsn)
	DANodeMaxDepth   = 5          // XFS_DA_NODE_MAXDEPTH
	Attr3LeafHdrLen  = 80         // sizeof(struct xfs_attr3_leaf_hdr)
	AttrLeafEntryLen = 8          // sizeof(struct xfs_attr_leaf_entry)
	AttrLeafMapSize  = 3          // XFS_ATTR_LEAF_MAPSIZE
	Attr3RmtHdrLen   = 56         // sizeof(struct xfs_attr3_rmt_hdr)
	Attr3RmtCrcOff   = 12         // XFS_ATTR3_RMT_CRC_OFF
	Attr3RmtLSNOff   = 48         // offsetof(struct xfs_attr3_rmt_hdr, rm_lsn)
	XattrSizeMax     = 65536      // XFS_XATTR_SIZE_MAX: the largest value
	AttrSFHdrLen     = 4          // sizeof(struct xfs_attr_sf_hdr)
	AttrSFEntryLen   = 3          // the fixed part of struct xfs_attr_sf_entry
)

// Attribute entry flags (XFS_ATTR_*), of shortform and leaf entries.
const (
	AttrLocal      = 1 << 0 // XFS_ATTR_LOCAL: the value is in the leaf block
	AttrRoot       = 1 << 1 // XFS_ATTR_ROOT: the trusted namespace
	AttrSecure     = 1 << 2 // XFS_ATTR_SECURE: the security namespace
	AttrParent     = 1 << 3 // XFS_ATTR_PARENT: a parent pointer
	AttrIncomplete = 1 << 7 // XFS_ATTR_INCOMPLETE: being created or removed
	AttrNspMask    = AttrRoot | AttrSecure | AttrParent
)

// DA3Blkinfo mirrors struct xfs_da3_blkinfo, the header of every dabtree
// block (node and leaf).
type DA3Blkinfo struct {
	Forw  uint32   // 0 forw: next block at this level (dablk), 0 at the end
	Back  uint32   // 4 back: previous block at this level
	Magic uint16   // 8 magic
	Pad   uint16   // 10 pad
	CRC   uint32   // 12 crc (little-endian on disk)
	Blkno uint64   // 16 blkno: daddr of the block
	LSN   uint64   // 24 lsn
	UUID  [16]byte // 32 uuid
	Owner uint64   // 48 owner: the inode
}

// DecodeDA3Blkinfo decodes the header at the start of b (at least
// DA3BlkinfoLen bytes).
func DecodeDA3Blkinfo(b []byte) DA3Blkinfo {
	h := DA3Blkinfo{Forw: be.Uint32(b[0:]), Back: be.Uint32(b[4:]), Magic: be.Uint16(b[8:]), Pad: be.Uint16(b[10:]),
		CRC: le.Uint32(b[12:]), Blkno: be.Uint64(b[16:]), LSN: be.Uint64(b[24:]), Owner: be.Uint64(b[48:])}
	copy(h.UUID[:], b[32:48])
	return h
}

// Encode writes the header into the first DA3BlkinfoLen bytes of b.
func (h DA3Blkinfo) Encode(b []byte) {
	be.PutUint32(b[0:], h.Forw)
	be.PutUint32(b[4:], h.Back)
	be.PutUint16(b[8:], h.Magic)
	be.PutUint16(b[10:], h.Pad)
	le.PutUint32(b[12:], h.CRC)
	be.PutUint64(b[16:], h.Blkno)
	be.PutUint64(b[24:], h.LSN)
	copy(b[32:48], h.UUID[:])
	be.PutUint64(b[48:], h.Owner)
}

// DANodeEntry mirrors struct xfs_da_node_entry.
type DANodeEntry struct {
	Hashval uint32 // 0 hashval: the highest hash below this child
	Before  uint32 // 4 before: the child's dablk
}

// DA3Node is a dabtree node block (struct xfs_da3_intnode): its header and
// its Count entries.
type DA3Node struct {
	Info    DA3Blkinfo // 0 hdr.info
	Count   uint16     // 56 hdr.__count
	Level   uint16     // 58 hdr.__level (leaves are level 0)
	Pad32   uint32     // 60 hdr.__pad32
	Entries []DANodeEntry
}

// DANodeEnts is geo->node_ents: entries a node block of blocksize holds.
func DANodeEnts(blocksize int) int { return (blocksize - DA3NodeHdrLen) / DANodeEntryLen }

// DecodeDA3Node decodes a node block; it fails, rather than panics, when
// the count does not fit the block.
func DecodeDA3Node(b []byte) (*DA3Node, error) {
	if len(b) < DA3NodeHdrLen {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "da node block", Field: "length of buffer", Found: len(b), Want: DA3NodeHdrLen}
	}
	n := &DA3Node{Info: DecodeDA3Blkinfo(b), Count: be.Uint16(b[56:]), Level: be.Uint16(b[58:]), Pad32: be.Uint32(b[60:])}
	if max := DANodeEnts(len(b)); int(n.Count) > max {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "da node block", Field: "count", Found: n.Count, Want: max,
			Msg: "more entries than the block holds"}
	}
	n.Entries = make([]DANodeEntry, n.Count)
	for i := range n.Entries {
		o := DA3NodeHdrLen + i*DANodeEntryLen
		n.Entries[i] = DANodeEntry{Hashval: be.Uint32(b[o:]), Before: be.Uint32(b[o+4:])}
	}
	return n, nil
}

// Encode writes the header and entries into b; the rest is left alone.
func (n *DA3Node) Encode(b []byte) {
	n.Info.Encode(b)
	be.PutUint16(b[56:], n.Count)
	be.PutUint16(b[58:], n.Level)
	be.PutUint32(b[60:], n.Pad32)
	for i, e := range n.Entries {
		o := DA3NodeHdrLen + i*DANodeEntryLen
		be.PutUint32(b[o:], e.Hashval)
		be.PutUint32(b[o+4:], e.Before)
	}
}

// AttrLeafMap mirrors struct xfs_attr_leaf_map (a free region).
type AttrLeafMap struct {
	Base uint16
	Size uint16
}

// AttrLeafEntry mirrors struct xfs_attr_leaf_entry.
type AttrLeafEntry struct {
	Hashval uint32 // 0 hashval
	Nameidx uint16 // 4 nameidx: offset of the name structure in the block
	Flags   uint8  // 6 flags (AttrLocal, namespace, AttrIncomplete)
	Pad2    uint8  // 7 pad2
}

// Attr3Leaf is an attr leaf block (struct xfs_attr3_leafblock): its header
// and entries. The names and values are read with Name.
type Attr3Leaf struct {
	Info      DA3Blkinfo                   // 0 hdr.info
	Count     uint16                       // 56 hdr.count
	Usedbytes uint16                       // 58 hdr.usedbytes
	Firstused uint16                       // 60 hdr.firstused, as stored (see FirstUsed)
	Holes     uint8                        // 62 hdr.holes
	Pad1      uint8                        // 63 hdr.pad1
	Freemap   [AttrLeafMapSize]AttrLeafMap // 64 hdr.freemap
	Pad2      uint32                       // 76 hdr.pad2
	Entries   []AttrLeafEntry              // 80
}

// DecodeAttr3Leaf decodes a leaf block's header and entries; it fails,
// rather than panics, when the entries do not fit the block.
func DecodeAttr3Leaf(b []byte) (*Attr3Leaf, error) {
	if len(b) < Attr3LeafHdrLen {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "attr leaf block", Field: "length of buffer", Found: len(b), Want: Attr3LeafHdrLen}
	}
	l := &Attr3Leaf{Info: DecodeDA3Blkinfo(b), Count: be.Uint16(b[56:]), Usedbytes: be.Uint16(b[58:]), Firstused: be.Uint16(b[60:]),
		Holes: b[62], Pad1: b[63], Pad2: be.Uint32(b[76:])}
	for i := range l.Freemap {
		l.Freemap[i] = AttrLeafMap{Base: be.Uint16(b[64+4*i:]), Size: be.Uint16(b[66+4*i:])}
	}
	if end := Attr3LeafHdrLen + int(l.Count)*AttrLeafEntryLen; end > len(b) {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "attr leaf block", Field: "count", Found: l.Count,
			Want: (len(b) - Attr3LeafHdrLen) / AttrLeafEntryLen, Msg: "more entries than the block holds"}
	}
	l.Entries = make([]AttrLeafEntry, l.Count)
	for i := range l.Entries {
		o := Attr3LeafHdrLen + i*AttrLeafEntryLen
		l.Entries[i] = AttrLeafEntry{Hashval: be.Uint32(b[o:]), Nameidx: be.Uint16(b[o+4:]), Flags: b[o+6], Pad2: b[o+7]}
	}
	return l, nil
}

// Encode writes the header and entries into b; the name area is left
// alone (AttrLeafName.Encode writes a name).
func (l *Attr3Leaf) Encode(b []byte) {
	l.Info.Encode(b)
	be.PutUint16(b[56:], l.Count)
	be.PutUint16(b[58:], l.Usedbytes)
	be.PutUint16(b[60:], l.Firstused)
	b[62], b[63] = l.Holes, l.Pad1
	for i, m := range l.Freemap {
		be.PutUint16(b[64+4*i:], m.Base)
		be.PutUint16(b[66+4*i:], m.Size)
	}
	be.PutUint32(b[76:], l.Pad2)
	for i, e := range l.Entries {
		o := Attr3LeafHdrLen + i*AttrLeafEntryLen
		be.PutUint32(b[o:], e.Hashval)
		be.PutUint16(b[o+4:], e.Nameidx)
		b[o+6], b[o+7] = e.Flags, e.Pad2
	}
}

// FirstUsed is xfs_attr3_leaf_firstused_from_disk: the stored firstused,
// where 0 (XFS_ATTR3_LEAF_NULLOFF) stands for a 64 KiB block size.
func (l *Attr3Leaf) FirstUsed(blocksize int) int {
	if l.Firstused == 0 {
		return blocksize
	}
	return int(l.Firstused)
}

// AttrLeafName is one entry's name structure: struct
// xfs_attr_leaf_name_local (the value follows the name) or struct
// xfs_attr_leaf_name_remote (the value is in remote blocks at ValueBlk).
// This struct does not represent an on-disk struct in this shape.
type AttrLeafName struct {
	Local    bool
	Name     []byte
	Value    []byte // local values
	ValueBlk uint32 // remote: the value's first dablk in the attr fork
	ValueLen uint32
}

// attrLeafEntsize is xfs_attr_leaf_entsize_local/_remote: the bytes the
// name structure takes, padded to 4.
func attrLeafEntsize(local bool, nlen, vlen int) int {
	if local {
		return (3 + nlen + vlen + 3) &^ 3
	}
	return (11 + nlen + 3) &^ 3
}

// Name decodes entry i's name structure from the leaf block b. It checks
// what xfs_attr3_leaf_verify_entry checks of it: the name inside the
// block and not empty, and a remote entry's value block set and its length
// within XattrSizeMax.
func (l *Attr3Leaf) Name(b []byte, i int) (AttrLeafName, error) {
	const st = "attr leaf block"
	bad := func(field string, found, want any, msg string) error {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: fmt.Sprintf("entries[%d].%s", i, field), Found: found, Want: want, Msg: msg}
	}
	e := l.Entries[i]
	off := int(e.Nameidx)
	local := e.Flags&AttrLocal != 0
	fixed := 3
	if !local {
		fixed = 9
	}
	if off < Attr3LeafHdrLen || off+fixed > len(b) {
		return AttrLeafName{}, bad("nameidx", e.Nameidx, nil, "is outside the block")
	}
	var n AttrLeafName
	var nlen, vlen int
	if local {
		vlen, nlen = int(be.Uint16(b[off:])), int(b[off+2])
		n = AttrLeafName{Local: true, ValueLen: uint32(vlen)}
	} else {
		n = AttrLeafName{ValueBlk: be.Uint32(b[off:]), ValueLen: be.Uint32(b[off+4:])}
		nlen = int(b[off+8])
	}
	if end := off + attrLeafEntsize(local, nlen, vlen); end > len(b) {
		return AttrLeafName{}, bad("namelen", nlen, nil, fmt.Sprintf("name structure ends at %d, past the block", end))
	}
	if nlen == 0 {
		return AttrLeafName{}, bad("namelen", 0, nil, "empty name")
	}
	n.Name = b[off+fixed : off+fixed+nlen : off+fixed+nlen]
	if local {
		n.Value = b[off+fixed+nlen : off+fixed+nlen+vlen : off+fixed+nlen+vlen]
		return n, nil
	}
	if n.ValueBlk == 0 && e.Flags&AttrIncomplete == 0 {
		return AttrLeafName{}, bad("valueblk", 0, nil, "remote value without a block")
	}
	if n.ValueLen > XattrSizeMax {
		return AttrLeafName{}, bad("valuelen", n.ValueLen, uint32(XattrSizeMax), "larger than the largest value")
	}
	return n, nil
}

// Encode writes the name structure at off in the leaf block b.
func (n AttrLeafName) Encode(b []byte, off int) {
	if n.Local {
		be.PutUint16(b[off:], uint16(len(n.Value)))
		b[off+2] = uint8(len(n.Name))
		copy(b[off+3:], n.Name)
		copy(b[off+3+len(n.Name):], n.Value)
		return
	}
	be.PutUint32(b[off:], n.ValueBlk)
	be.PutUint32(b[off+4:], n.ValueLen)
	b[off+8] = uint8(len(n.Name))
	copy(b[off+9:], n.Name)
}

// verifyDA3Blkinfo is xfs_da3_blkinfo_verify plus the CRC and magic checks
// of the read verifiers.
func verifyDA3Blkinfo(b []byte, c VerifyCtx, st string, magic uint16) error {
	w := c.Where()
	if len(b) != int(c.G.BlockSize) {
		return w.Corrupt(st, "length of buffer", len(b), int(c.G.BlockSize), "")
	}
	if !VerifyCksum(b, DA3CrcOff) {
		return w.Corrupt(st, "hdr.info.crc", StoredCksum(b, DA3CrcOff), Cksum(b, DA3CrcOff), "")
	}
	h := DecodeDA3Blkinfo(b)
	switch {
	case h.Magic != magic:
		return w.Corrupt(st, "hdr.info.magic", h.Magic, magic, "")
	case h.UUID != c.G.BlockUUID:
		return w.Corrupt(st, "hdr.info.uuid", fmtUUID(h.UUID), fmtUUID(c.G.BlockUUID), "")
	case c.Daddr >= 0 && h.Blkno != uint64(c.Daddr):
		return w.Corrupt(st, "hdr.info.blkno", h.Blkno, uint64(c.Daddr), "")
	}
	return nil
}

// VerifyDA3Node is the dabtree node read verifier (xfs_da3_node_verify):
// CRC, magic, uuid, blkno, a level from 1 to DANodeMaxDepth, and 1 to
// DANodeEnts entries.
func VerifyDA3Node(b []byte, c VerifyCtx) error {
	const st = "da node block"
	if err := verifyDA3Blkinfo(b, c, st, DA3NodeMagic); err != nil {
		return err
	}
	w := c.Where()
	n, err := DecodeDA3Node(b)
	if err != nil {
		return SetLocation(err, c.AG, c.Daddr)
	}
	switch {
	case n.Level == 0 || n.Level > DANodeMaxDepth:
		return w.Corrupt(st, "hdr.level", n.Level, nil, fmt.Sprintf("is not 1 to %d", DANodeMaxDepth))
	case n.Count == 0:
		return w.Corrupt(st, "hdr.count", n.Count, nil, "empty node")
	}
	return nil
}

// VerifyAttr3Leaf is the attr leaf read verifier (xfs_attr3_leaf_verify):
// CRC, magic, uuid, blkno; firstused inside the block and past the
// entries; every entry in hash order with its name structure inside the
// block (Name); the free map 4-byte aligned and inside the block.
func VerifyAttr3Leaf(b []byte, c VerifyCtx) error {
	const st = "attr leaf block"
	if err := verifyDA3Blkinfo(b, c, st, Attr3LeafMagic); err != nil {
		return err
	}
	w := c.Where()
	l, err := DecodeAttr3Leaf(b)
	if err != nil {
		return SetLocation(err, c.AG, c.Daddr)
	}
	bs := len(b)
	fu := l.FirstUsed(bs)
	switch {
	case fu > bs:
		return w.Corrupt(st, "hdr.firstused", fu, nil, "is past the block")
	case fu < Attr3LeafHdrLen:
		return w.Corrupt(st, "hdr.firstused", fu, nil, "is inside the header")
	case Attr3LeafHdrLen+len(l.Entries)*AttrLeafEntryLen > fu:
		return w.Corrupt(st, "hdr.count", l.Count, nil, fmt.Sprintf("entries run into the names at %d", fu))
	}
	var last uint32
	for i, e := range l.Entries {
		if e.Hashval < last {
			return w.Corrupt(st, fmt.Sprintf("entries[%d].hashval", i), e.Hashval, nil, fmt.Sprintf("below the previous entry's %#x", last))
		}
		last = e.Hashval
		if int(e.Nameidx) < fu || int(e.Nameidx) >= bs {
			return w.Corrupt(st, fmt.Sprintf("entries[%d].nameidx", i), e.Nameidx, nil, fmt.Sprintf("is outside the name area [%d, %d)", fu, bs))
		}
		if _, err := l.Name(b, i); err != nil {
			return SetLocation(err, c.AG, c.Daddr)
		}
	}
	for i, m := range l.Freemap {
		if int(m.Base) > bs || m.Base&3 != 0 || int(m.Size) > bs || m.Size&3 != 0 || int(m.Base)+int(m.Size) > bs {
			return w.Corrupt(st, fmt.Sprintf("hdr.freemap[%d]", i), fmt.Sprintf("[%d,%d]", m.Base, m.Size), nil, "is not an aligned region of the block")
		}
	}
	return nil
}

// VerifyAttrDA verifies a block of an attr fork's dabtree that may be a
// node or a leaf (the first block, dablk 0, is either), by its magic, as
// the kernel's xfs_da3_node_read_verify switches to the leaf verifier.
func VerifyAttrDA(b []byte, c VerifyCtx) error {
	if len(b) >= DA3BlkinfoLen && be.Uint16(b[8:]) == Attr3LeafMagic {
		return VerifyAttr3Leaf(b, c)
	}
	if len(b) >= DA3BlkinfoLen && be.Uint16(b[8:]) != DA3NodeMagic {
		return c.Where().Corrupt("attr dabtree block", "hdr.info.magic", be.Uint16(b[8:]), nil,
			fmt.Sprintf("is neither a node (%#x) nor a leaf (%#x)", DA3NodeMagic, Attr3LeafMagic))
	}
	return VerifyDA3Node(b, c)
}

// CheckDAOwner is the owner check of xfs_da3_node_header_check and
// xfs_attr3_leaf_header_check, for a block the buffer cache verified.
func CheckDAOwner(b []byte, c VerifyCtx, owner uint64) error {
	if len(b) < DA3BlkinfoLen {
		return c.Where().Corrupt("attr dabtree block", "length of buffer", len(b), DA3BlkinfoLen, "")
	}
	if got := be.Uint64(b[48:]); got != owner {
		return c.Where().Corrupt("attr dabtree block", "hdr.info.owner", got, owner, "")
	}
	return nil
}

// Attr3RmtHdr mirrors struct xfs_attr3_rmt_hdr, the header of every block
// of a remote attribute value.
type Attr3RmtHdr struct {
	Magic  uint32   // 0 rm_magic
	Offset uint32   // 4 rm_offset: byte offset of this block's piece in the value
	Bytes  uint32   // 8 rm_bytes
	CRC    uint32   // 12 rm_crc (little-endian on disk)
	UUID   [16]byte // 16 rm_uuid
	Owner  uint64   // 32 rm_owner
	Blkno  uint64   // 40 rm_blkno
	LSN    uint64   // 48 rm_lsn
}

// DecodeAttr3RmtHdr decodes the header at the start of b.
func DecodeAttr3RmtHdr(b []byte) (Attr3RmtHdr, error) {
	if len(b) < Attr3RmtHdrLen {
		return Attr3RmtHdr{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: "attr remote block", Field: "length of buffer", Found: len(b), Want: Attr3RmtHdrLen}
	}
	h := Attr3RmtHdr{Magic: be.Uint32(b[0:]), Offset: be.Uint32(b[4:]), Bytes: be.Uint32(b[8:]), CRC: le.Uint32(b[12:]),
		Owner: be.Uint64(b[32:]), Blkno: be.Uint64(b[40:]), LSN: be.Uint64(b[48:])}
	copy(h.UUID[:], b[16:32])
	return h, nil
}

// Encode writes the header into the first Attr3RmtHdrLen bytes of b.
func (h Attr3RmtHdr) Encode(b []byte) {
	be.PutUint32(b[0:], h.Magic)
	be.PutUint32(b[4:], h.Offset)
	be.PutUint32(b[8:], h.Bytes)
	le.PutUint32(b[12:], h.CRC)
	copy(b[16:32], h.UUID[:])
	be.PutUint64(b[32:], h.Owner)
	be.PutUint64(b[40:], h.Blkno)
	be.PutUint64(b[48:], h.LSN)
}

// Attr3RmtBufSpace is XFS_ATTR3_RMT_BUF_SPACE: value bytes one block holds.
func Attr3RmtBufSpace(blocksize int) int { return blocksize - Attr3RmtHdrLen }

// Attr3RmtBlocks is xfs_attr3_rmt_blocks: blocks a value of n bytes takes.
func Attr3RmtBlocks(blocksize, n int) int {
	s := Attr3RmtBufSpace(blocksize)
	return (n + s - 1) / s
}

// VerifyAttr3Rmt is the remote value read verifier for one filesystem
// block (xfs_attr3_rmt_read_verify, xfs_attr3_rmt_verify): CRC, magic,
// uuid, blkno, and a piece inside the block and the largest value.
func VerifyAttr3Rmt(b []byte, c VerifyCtx) error {
	const st = "attr remote block"
	w := c.Where()
	if len(b) != int(c.G.BlockSize) {
		return w.Corrupt(st, "length of buffer", len(b), int(c.G.BlockSize), "")
	}
	if !VerifyCksum(b, Attr3RmtCrcOff) {
		return w.Corrupt(st, "rm_crc", StoredCksum(b, Attr3RmtCrcOff), Cksum(b, Attr3RmtCrcOff), "")
	}
	h, _ := DecodeAttr3RmtHdr(b)
	switch {
	case h.Magic != Attr3RmtMagic:
		return w.Corrupt(st, "rm_magic", h.Magic, uint32(Attr3RmtMagic), "")
	case h.UUID != c.G.BlockUUID:
		return w.Corrupt(st, "rm_uuid", fmtUUID(h.UUID), fmtUUID(c.G.BlockUUID), "")
	case c.Daddr >= 0 && h.Blkno != uint64(c.Daddr):
		return w.Corrupt(st, "rm_blkno", h.Blkno, uint64(c.Daddr), "")
	case int(h.Bytes) > Attr3RmtBufSpace(len(b)):
		return w.Corrupt(st, "rm_bytes", h.Bytes, nil, "is more than the block holds")
	case uint64(h.Offset)+uint64(h.Bytes) > XattrSizeMax:
		return w.Corrupt(st, "rm_offset", h.Offset, nil, fmt.Sprintf("with %d bytes runs past the largest value", h.Bytes))
	}
	return nil
}

// CheckAttr3Rmt is xfs_attr3_rmt_hdr_ok, for a block the buffer cache
// verified as KindAttrRmt: it belongs to inode owner and holds the piece of
// the value at offset of length n.
func CheckAttr3Rmt(b []byte, c VerifyCtx, owner uint64, offset, n uint32) error {
	const st = "attr remote block"
	h, err := DecodeAttr3RmtHdr(b)
	if err != nil {
		return SetLocation(err, c.AG, c.Daddr)
	}
	w := c.Where()
	switch {
	case h.Owner != owner:
		return w.Corrupt(st, "rm_owner", h.Owner, owner, "")
	case h.Offset != offset:
		return w.Corrupt(st, "rm_offset", h.Offset, offset, "")
	case h.Bytes != n:
		return w.Corrupt(st, "rm_bytes", h.Bytes, n, "")
	}
	return nil
}

// AttrSFEntry is one shortform attribute (struct xfs_attr_sf_entry).
type AttrSFEntry struct {
	Flags uint8 // namespace bits
	Name  []byte
	Value []byte
}

// AttrSF is a shortform attr fork (struct xfs_attr_shortform).
type AttrSF struct {
	TotSize uint16 // hdr.totsize: bytes of the whole list, header included
	Count   uint8  // hdr.count
	Padding uint8  // hdr.padding
	Entries []AttrSFEntry
}

// DecodeAttrSF decodes and checks a shortform attr fork, b being its
// totsize bytes (Dinode.LocalData(AttrFork)), as
// xfs_attr_shortform_verify_struct: the header fits, every entry has a
// name, at most one namespace bit, and lies inside the list, and the
// entries end exactly at totsize. ino names the inode in errors.
func DecodeAttrSF(b []byte, ino uint64) (*AttrSF, error) {
	st := fmt.Sprintf("dinode %d attr fork (shortform)", ino)
	bad := func(field string, found, want any, msg string) error {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: field, Found: found, Want: want, Msg: msg}
	}
	if len(b) < AttrSFHdrLen {
		return nil, bad("hdr.totsize", len(b), AttrSFHdrLen, "too small for the header")
	}
	s := &AttrSF{TotSize: be.Uint16(b[0:]), Count: b[2], Padding: b[3]}
	if int(s.TotSize) != len(b) {
		return nil, bad("hdr.totsize", s.TotSize, len(b), "")
	}
	off := AttrSFHdrLen
	for i := 0; i < int(s.Count); i++ {
		if off+AttrSFEntryLen > len(b) {
			return nil, bad(fmt.Sprintf("list[%d]", i), off, nil, "starts past the end of the list")
		}
		nlen, vlen, flags := int(b[off]), int(b[off+1]), b[off+2]
		next := off + AttrSFEntryLen + nlen + vlen
		switch {
		case next > len(b):
			return nil, bad(fmt.Sprintf("list[%d].namelen", i), nlen, nil, fmt.Sprintf("with valuelen %d runs past the end of the list", vlen))
		case nlen == 0:
			return nil, bad(fmt.Sprintf("list[%d].namelen", i), 0, nil, "empty name")
		case popcount8(flags&AttrNspMask) > 1:
			return nil, bad(fmt.Sprintf("list[%d].flags", i), flags, nil, "more than one namespace")
		}
		name := b[off+AttrSFEntryLen : off+AttrSFEntryLen+nlen : off+AttrSFEntryLen+nlen]
		s.Entries = append(s.Entries, AttrSFEntry{Flags: flags, Name: name, Value: b[off+AttrSFEntryLen+nlen : next : next]})
		off = next
	}
	if off != len(b) {
		return nil, bad("hdr.totsize", s.TotSize, off, "the entries end elsewhere")
	}
	return s, nil
}

// Encode writes the list into b (at least TotSize bytes) and returns the
// bytes written.
func (s *AttrSF) Encode(b []byte) int {
	be.PutUint16(b[0:], s.TotSize)
	b[2], b[3] = s.Count, s.Padding
	off := AttrSFHdrLen
	for _, e := range s.Entries {
		b[off], b[off+1], b[off+2] = uint8(len(e.Name)), uint8(len(e.Value)), e.Flags
		off += AttrSFEntryLen
		off += copy(b[off:], e.Name)
		off += copy(b[off:], e.Value)
	}
	return off
}

func popcount8(x uint8) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// The attr fork's block kinds. KindAttrDA is read-only in xfsfree (its Blft
// is the node's; a leaf would be logged as BlftAttrLeaf).
var (
	// KindAttrDA is a block of an attr fork's dabtree, node or leaf
	// (VerifyAttrDA). Its magic is 16 bits at offset 8, so it has no
	// 32-bit Magics for KindByMagic.
	KindAttrDA = &BlockKind{Name: "attr dabtree block", CrcOff: DA3CrcOff, LSNOff: DA3LSNOff, Blft: BlftDANode, Verify: VerifyAttrDA}
	// KindAttrRmt is one block of a remote attribute value.
	KindAttrRmt = &BlockKind{Name: "attr remote block", Magics: []uint32{Attr3RmtMagic}, CrcOff: Attr3RmtCrcOff,
		LSNOff: Attr3RmtLSNOff, Blft: BlftAttrRmt, Verify: VerifyAttr3Rmt}
)
