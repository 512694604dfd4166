package ondisk

import "fmt"

// Inode forks (XFS_DATA_FORK, XFS_ATTR_FORK).
const (
	DataFork = 0
	AttrFork = 1
)

// BmdrRoot is the root of a fork's block map btree as stored in the inode
// (struct xfs_bmdr_block with its keys and pointers, XFS_DINODE_FMT_BTREE).
// This struct does not represent an on-disk struct in this shape: on disk
// the keys start at offset 4 and the pointers at 4 + maxrecs*8, where
// maxrecs = BmdrMaxRecs(fork size).
type BmdrRoot struct {
	Level   uint16   // bb_level (> 0: the root is always a node)
	Numrecs uint16   // bb_numrecs
	Keys    []uint64 // br_startoff of each child
	Ptrs    []uint64 // fsbno of each child block
}

// BmdrMaxRecs is xfs_bmdr_maxrecs(forksize, 0): how many key/pointer pairs
// an in-inode root of forksize bytes holds.
func BmdrMaxRecs(forksize int) int {
	if forksize < BmdrHdrLen {
		return 0
	}
	return (forksize - BmdrHdrLen) / (BmbtKeyLen + LongPtrLen)
}

// DecodeBmdr decodes an in-inode btree root from the fork bytes b. It
// fails, rather than panics, when numrecs does not fit the fork.
func DecodeBmdr(b []byte) (*BmdrRoot, error) {
	if len(b) < BmdrHdrLen {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "bmdr root", Field: "length", Found: len(b), Want: BmdrHdrLen}
	}
	r := &BmdrRoot{Level: be.Uint16(b[0:]), Numrecs: be.Uint16(b[2:])}
	max := BmdrMaxRecs(len(b))
	if int(r.Numrecs) > max {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "bmdr root", Field: "bb_numrecs", Found: r.Numrecs, Want: max, Msg: "more records than the fork holds"}
	}
	n := int(r.Numrecs)
	r.Keys = make([]uint64, n)
	r.Ptrs = make([]uint64, n)
	poff := BmdrHdrLen + max*BmbtKeyLen
	for i := 0; i < n; i++ {
		r.Keys[i] = be.Uint64(b[BmdrHdrLen+i*BmbtKeyLen:])
		r.Ptrs[i] = be.Uint64(b[poff+i*LongPtrLen:])
	}
	return r, nil
}

// Encode writes the root into the fork bytes b at the positions
// BmdrMaxRecs(len(b)) gives; bytes beyond the records are left alone.
func (r *BmdrRoot) Encode(b []byte) {
	max := BmdrMaxRecs(len(b))
	if len(r.Keys) > max || len(r.Keys) != len(r.Ptrs) {
		panic(fmt.Sprintf("ondisk: BmdrRoot.Encode: %d keys, %d ptrs into a root of %d", len(r.Keys), len(r.Ptrs), max))
	}
	be.PutUint16(b[0:], r.Level)
	be.PutUint16(b[2:], r.Numrecs)
	poff := BmdrHdrLen + max*BmbtKeyLen
	for i := range r.Keys {
		be.PutUint64(b[BmdrHdrLen+i*BmbtKeyLen:], r.Keys[i])
		be.PutUint64(b[poff+i*LongPtrLen:], r.Ptrs[i])
	}
}

// ForkFormat is di_format or di_aformat (XFS_DFORK_FORMAT).
func (d *Dinode) ForkFormat(fork int) uint8 {
	if fork == AttrFork {
		return d.Aformat
	}
	return d.Format
}

// HasAttrFork reports whether the inode has an attr fork (XFS_DFORK_Q).
func (d *Dinode) HasAttrFork() bool { return d.Forkoff != 0 }

// forkBounds returns the byte range of a fork in the literal area, clamped
// to it so that a corrupt forkoff cannot index out of range.
func (d *Dinode) forkBounds(fork int) (lo, hi int) {
	lit := len(d.Literal)
	boff := min(int(d.Forkoff)<<3, lit)
	if fork == AttrFork {
		if d.Forkoff == 0 {
			return lit, lit
		}
		return boff, lit
	}
	if d.Forkoff == 0 {
		return 0, lit
	}
	return 0, boff
}

// ForkSize is XFS_DFORK_SIZE: the data fork is forkoff*8 bytes when there
// is an attr fork and the whole literal area otherwise; the attr fork is
// the rest of the literal area from forkoff*8.
func (d *Dinode) ForkSize(fork int) int {
	lo, hi := d.forkBounds(fork)
	return hi - lo
}

// ForkBytes returns the fork's bytes. The slice aliases d.Literal: writes
// through it change the inode.
func (d *Dinode) ForkBytes(fork int) []byte {
	lo, hi := d.forkBounds(fork)
	return d.Literal[lo:hi:hi]
}

// Nextents is the fork's extent count (xfs_dfork_data_extents,
// xfs_dfork_attr_extents): the large counters with XFS_DIFLAG2_NREXT64,
// the small ones otherwise.
func (d *Dinode) Nextents(fork int) uint64 {
	large := d.HasLargeExtentCounts()
	switch {
	case fork == DataFork && large:
		return d.BigNextents
	case fork == DataFork:
		return uint64(d.SmallNextents)
	case large:
		return uint64(d.SmallNextents) // di_big_anextents
	default:
		return uint64(d.SmallAnextents)
	}
}

// SetNextents sets the fork's extent count in the field the inode's
// NREXT64 flag selects (xfs_inode_to_disk_iext_counters; the value is
// truncated to the field's width).
func (d *Dinode) SetNextents(fork int, n uint64) {
	large := d.HasLargeExtentCounts()
	switch {
	case fork == DataFork && large:
		d.BigNextents = n
	case fork == DataFork:
		d.SmallNextents = uint32(n)
	case large:
		d.SmallNextents = uint32(n)
		d.SmallAnextents = 0 // di_nrext64_pad
	default:
		d.SmallAnextents = uint16(n)
	}
}

// Extents decodes the extent list of an EXTENTS-format fork: Nextents(fork)
// records from the start of the fork.
func (d *Dinode) Extents(fork int) ([]BmbtIrec, error) {
	st := dinodeStruct(d.Ino)
	if f := d.ForkFormat(fork); f != DinodeFmtExtents {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: forkFormatField(fork), Found: f, Want: uint8(DinodeFmtExtents), Msg: "not an extents fork"}
	}
	fb := d.ForkBytes(fork)
	n := d.Nextents(fork)
	if max := uint64(len(fb) / BmbtRecLen); n > max {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: forkNextentsField(fork), Found: n, Want: max, Msg: "more extents than the fork holds"}
	}
	out := make([]BmbtIrec, n)
	for i := range out {
		out[i] = DecodeBmbtRec(fb[i*BmbtRecLen:])
	}
	return out, nil
}

// BmdrRoot decodes the in-inode btree root of a BTREE-format fork, with
// the checks of xfs_iformat_btree: level > 0, numrecs > 0 and fitting the
// fork, and more extents than an extents-format fork could hold.
func (d *Dinode) BmdrRoot(fork int) (*BmdrRoot, error) {
	st := dinodeStruct(d.Ino)
	corrupt := func(field string, found, want any, msg string) error {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: field, Found: found, Want: want, Msg: msg}
	}
	if f := d.ForkFormat(fork); f != DinodeFmtBtree {
		return nil, corrupt(forkFormatField(fork), f, uint8(DinodeFmtBtree), "not a btree fork")
	}
	fb := d.ForkBytes(fork)
	r, err := DecodeBmdr(fb)
	if err != nil {
		ce := err.(*CorruptError)
		ce.Struct = st + " bmdr root"
		return nil, ce
	}
	n := d.Nextents(fork)
	if n <= uint64(len(fb)/BmbtRecLen) {
		return nil, corrupt(forkNextentsField(fork), n, nil, "btree fork with few enough extents for extents format")
	}
	if r.Numrecs == 0 {
		return nil, corrupt("bb_numrecs", r.Numrecs, nil, "empty btree root")
	}
	if r.Level == 0 {
		return nil, corrupt("bb_level", r.Level, nil, "btree root is a leaf")
	}
	return r, nil
}

// Rdev is the device number of a DEV-format inode (xfs_dinode_get_rdev):
// the first 4 bytes of the literal area, in the kernel's xfs_dev_t
// encoding (major<<18 | minor).
func (d *Dinode) Rdev() uint32 {
	if len(d.Literal) < 4 {
		return 0
	}
	return be.Uint32(d.Literal)
}

// LocalData returns the bytes of a LOCAL-format fork that hold data: for
// the data fork di_size bytes (a symlink's target, a shortform directory),
// for the attr fork the shortform attr header's totsize bytes. The slice
// aliases d.Literal.
func (d *Dinode) LocalData(fork int) ([]byte, error) {
	st := dinodeStruct(d.Ino)
	if f := d.ForkFormat(fork); f != DinodeFmtLocal {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: forkFormatField(fork), Found: f, Want: uint8(DinodeFmtLocal), Msg: "not a local fork"}
	}
	fb := d.ForkBytes(fork)
	var n uint64
	field := "di_size"
	if fork == DataFork {
		n = d.Size
	} else {
		field = "sf_totsize"
		if len(fb) < 2 {
			return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: field, Found: len(fb), Msg: "attr fork too small for its header"}
		}
		n = uint64(be.Uint16(fb))
	}
	if n > uint64(len(fb)) {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: field, Found: n, Want: len(fb), Msg: "local data larger than the fork"}
	}
	return fb[:n:n], nil
}

// DirSFHeader is the header of a shortform directory (struct
// xfs_dir2_sf_hdr): entry count, count of entries with 8-byte inode
// numbers, and the parent inode (4 bytes, or 8 when I8Count > 0). This
// struct does not represent an on-disk struct.
type DirSFHeader struct {
	Count   uint8
	I8Count uint8
	Parent  uint64
}

// dirSF decodes the shortform directory header of a LOCAL directory.
func (d *Dinode) dirSF() (DirSFHeader, error) {
	b, err := d.LocalData(DataFork)
	if err != nil {
		return DirSFHeader{}, err
	}
	if !d.IsDir() || len(b) < 6 {
		return DirSFHeader{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: dinodeStruct(d.Ino), Field: "di_size", Found: len(b), Msg: "not a shortform directory"}
	}
	h := DirSFHeader{Count: b[0], I8Count: b[1]}
	if h.I8Count > 0 {
		if len(b) < 10 {
			return DirSFHeader{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: dinodeStruct(d.Ino), Field: "di_size", Found: len(b), Msg: "shortform header with 8-byte parent truncated"}
		}
		h.Parent = be.Uint64(b[2:])
	} else {
		h.Parent = uint64(be.Uint32(b[2:]))
	}
	return h, nil
}

func forkFormatField(fork int) string {
	if fork == AttrFork {
		return "di_aformat"
	}
	return "di_format"
}

func forkNextentsField(fork int) string {
	if fork == AttrFork {
		return "di_anextents"
	}
	return "di_nextents"
}

// BmbtToBmdr is xfs_bmbt_to_bmdr, for a fork root an inode item logged:
// the logged root src is an in-core long btree block (72-byte v5 header,
// keys after it, pointers after room for maxrecs keys of a block of the
// logged length); the on-disk root dst is a bmdr block (4-byte header,
// keys, pointers after room for the fork's maxrecs keys).
func BmbtToBmdr(src, dst []byte) error {
	hdr := LongBlockHdrLen
	if len(src) < hdr || len(dst) < BmdrHdrLen {
		return fmt.Errorf("logged root of %d bytes or fork of %d bytes too small", len(src), len(dst))
	}
	if be.Uint32(src) != BmbtMagic {
		return fmt.Errorf("logged root magic %#x is not %#x", be.Uint32(src), uint32(BmbtMagic))
	}
	level, numrecs := uint16(LongBlockLevel.Get(src)), uint16(LongBlockNumRecs.Get(src))
	if level == 0 {
		return fmt.Errorf("logged root has level 0")
	}
	rmax := (len(src) - hdr) / (BmbtKeyLen + LongPtrLen)
	dmax := BmdrMaxRecs(len(dst))
	n := int(numrecs)
	if n > rmax || n > dmax {
		return fmt.Errorf("root holds %d records: the logged block fits %d, the fork %d", n, rmax, dmax)
	}
	be.PutUint16(dst[0:], level)
	be.PutUint16(dst[2:], numrecs)
	fk, fp := hdr, hdr+rmax*BmbtKeyLen
	tk, tp := BmdrHdrLen, BmdrHdrLen+dmax*BmbtKeyLen
	copy(dst[tk:tk+n*BmbtKeyLen], src[fk:fk+n*BmbtKeyLen])
	copy(dst[tp:tp+n*LongPtrLen], src[fp:fp+n*LongPtrLen])
	return nil
}
