package ondisk

// Remote symlink blocks (struct xfs_dsymlink_hdr, xfs_format.h): a symlink
// whose target does not fit in the inode's literal area keeps it in data
// fork blocks. Each extent of the fork is one buffer (xfs_symlink_remote_read
// reads, and xfs_symlink_write_target writes, a buffer per mapping): this
// header, then up to its length - 56 bytes of the target. Local (inline)
// symlinks are Dinode.LocalData.

import "fmt"

// Remote symlink constants.
const (
	SymlinkMagic   = 0x58534c4d // "XSLM", XFS_SYMLINK_MAGIC
	SymlinkHdrLen  = 56         // sizeof(struct xfs_dsymlink_hdr)
	SymlinkCrcOff  = 12         // XFS_SYMLINK_CRC_OFF
	SymlinkLSNOff  = 48         // offsetof(struct xfs_dsymlink_hdr, sl_lsn)
	SymlinkUUIDOff = 16         // offsetof(struct xfs_dsymlink_hdr, sl_uuid)
	SymlinkMaxLen  = 1024       // XFS_SYMLINK_MAXLEN: the longest target
)

// SymlinkHdr mirrors struct xfs_dsymlink_hdr field by field.
type SymlinkHdr struct {
	Magic  uint32   // 0 sl_magic
	Offset uint32   // 4 sl_offset: byte offset of this block's piece in the target
	Bytes  uint32   // 8 sl_bytes: bytes of the target in this block
	CRC    uint32   // 12 sl_crc (little-endian on disk)
	UUID   [16]byte // 16 sl_uuid
	Owner  uint64   // 32 sl_owner: the symlink's inode
	Blkno  uint64   // 40 sl_blkno: daddr of this block
	LSN    uint64   // 48 sl_lsn
}

// DecodeSymlinkHdr decodes the header at the start of b.
func DecodeSymlinkHdr(b []byte) (SymlinkHdr, error) {
	if len(b) < SymlinkHdrLen {
		return SymlinkHdr{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: "symlink block", Field: "length of buffer",
			Found: len(b), Want: SymlinkHdrLen}
	}
	h := SymlinkHdr{
		Magic: be.Uint32(b[0:]), Offset: be.Uint32(b[4:]), Bytes: be.Uint32(b[8:]), CRC: le.Uint32(b[12:]),
		Owner: be.Uint64(b[32:]), Blkno: be.Uint64(b[40:]), LSN: be.Uint64(b[48:]),
	}
	copy(h.UUID[:], b[16:32])
	return h, nil
}

// Encode writes the header into the first SymlinkHdrLen bytes of b (the
// CRC as stored; KindSymlink.Stamp recomputes it).
func (h SymlinkHdr) Encode(b []byte) {
	be.PutUint32(b[0:], h.Magic)
	be.PutUint32(b[4:], h.Offset)
	be.PutUint32(b[8:], h.Bytes)
	le.PutUint32(b[12:], h.CRC)
	copy(b[16:32], h.UUID[:])
	be.PutUint64(b[32:], h.Owner)
	be.PutUint64(b[40:], h.Blkno)
	be.PutUint64(b[48:], h.LSN)
}

// SymlinkBufSpace is XFS_SYMLINK_BUF_SPACE: target bytes a buffer of n
// bytes holds.
func SymlinkBufSpace(n int) int { return n - SymlinkHdrLen }

// SymlinkBlocks is xfs_symlink_blocks: the blocks allocated for a target of
// n bytes (counted as if each block had its own header).
func SymlinkBlocks(blocksize, n int) int {
	s := SymlinkBufSpace(blocksize)
	return (n + s - 1) / s
}

// VerifySymlinkBlock is the remote symlink read verifier
// (xfs_symlink_read_verify, xfs_symlink_verify) of a buffer of one or
// more blocks: CRC, magic, uuid, blkno == c.Daddr, and a piece that lies
// inside the longest target and the buffer. The owner and the piece's place
// are the reader's to check (CheckSymlinkBlock).
func VerifySymlinkBlock(b []byte, c VerifyCtx) error {
	const st = "symlink block"
	w := c.Where()
	if bs := int(c.G.BlockSize); len(b) == 0 || len(b)%bs != 0 {
		return w.Corrupt(st, "length of buffer", len(b), nil, fmt.Sprintf("is not a multiple of the block size %d", bs))
	}
	if !VerifyCksum(b, SymlinkCrcOff) {
		return w.Corrupt(st, "sl_crc", StoredCksum(b, SymlinkCrcOff), Cksum(b, SymlinkCrcOff), "")
	}
	h, _ := DecodeSymlinkHdr(b)
	switch {
	case h.Magic != SymlinkMagic:
		return w.Corrupt(st, "sl_magic", h.Magic, uint32(SymlinkMagic), "")
	case h.UUID != c.G.BlockUUID:
		return w.Corrupt(st, "sl_uuid", fmtUUID(h.UUID), fmtUUID(c.G.BlockUUID), "")
	case c.Daddr >= 0 && h.Blkno != uint64(c.Daddr):
		return w.Corrupt(st, "sl_blkno", h.Blkno, uint64(c.Daddr), "")
	case h.Offset >= SymlinkMaxLen:
		return w.Corrupt(st, "sl_offset", h.Offset, nil, fmt.Sprintf("is beyond the longest target (%d bytes)", SymlinkMaxLen))
	case int(h.Bytes) > SymlinkBufSpace(len(b)):
		return w.Corrupt(st, "sl_bytes", h.Bytes, nil, "is more than the buffer holds")
	case h.Offset+h.Bytes > SymlinkMaxLen:
		return w.Corrupt(st, "sl_bytes", h.Bytes, nil, fmt.Sprintf("runs past the longest target (%d bytes) from offset %d", SymlinkMaxLen, h.Offset))
	}
	return nil
}

// CheckSymlinkBlock is xfs_symlink_hdr_ok, for a block the buffer cache
// verified as KindSymlink: the block belongs to inode owner and holds the
// piece of the target at offset of length n.
func CheckSymlinkBlock(b []byte, c VerifyCtx, owner uint64, offset, n uint32) error {
	const st = "symlink block"
	h, err := DecodeSymlinkHdr(b)
	if err != nil {
		return SetLocation(err, c.AG, c.Daddr)
	}
	w := c.Where()
	switch {
	case h.Owner != owner:
		return w.Corrupt(st, "sl_owner", h.Owner, owner, "")
	case h.Offset != offset:
		return w.Corrupt(st, "sl_offset", h.Offset, offset, "")
	case h.Bytes != n:
		return w.Corrupt(st, "sl_bytes", h.Bytes, n, "")
	}
	return nil
}

// VerifySymlinkTarget is xfs_symlink_shortform_verify for a target read
// from disk, local or remote: 1 to SymlinkMaxLen bytes, no NUL byte in it
// (the last byte may be one: the kernel keeps its in-memory copy
// NUL-terminated). ino names the inode in the error.
func VerifySymlinkTarget(target []byte, ino uint64) error {
	st := fmt.Sprintf("dinode %d symlink", ino)
	switch n := len(target); {
	case n == 0:
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: "di_size", Found: 0, Msg: "empty target"}
	case n > SymlinkMaxLen:
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: "di_size", Found: n, Want: SymlinkMaxLen, Msg: "target longer than the longest"}
	}
	for i, c := range target[:len(target)-1] {
		if c == 0 {
			return &CorruptError{AG: NoAG, Daddr: -1, Struct: st, Field: "target", Found: i, Msg: "has a NUL byte at"}
		}
	}
	return nil
}

// KindSymlink is a remote symlink block (xfs_symlink_buf_ops).
var KindSymlink = &BlockKind{Name: "symlink block", Magics: []uint32{SymlinkMagic}, CrcOff: SymlinkCrcOff,
	LSNOff: SymlinkLSNOff, Blft: BlftSymlink, Verify: VerifySymlinkBlock}
