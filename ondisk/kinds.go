package ondisk

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

// Log buffer types (enum xfs_blft, xfs_log_format.h).
const (
	BlftUnknown   = 0
	BlftUDquot    = 1
	BlftPDquot    = 2
	BlftGDquot    = 3
	BlftBtree     = 4
	BlftAGF       = 5
	BlftAGFL      = 6
	BlftAGI       = 7
	BlftDino      = 8
	BlftSymlink   = 9
	BlftDirBlock  = 10
	BlftDirData   = 11
	BlftDirFree   = 12
	BlftDirLeaf1  = 13
	BlftDirLeafN  = 14
	BlftDANode    = 15
	BlftAttrLeaf  = 16
	BlftAttrRmt   = 17
	BlftSB        = 18
	BlftRTBitmap  = 19
	BlftRTSummary = 20
)

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
