package ondisk

import "fmt"

// The transaction header (struct xfs_trans_header) that opens every
// transaction in the log, and the log item types (XFS_LI_*) whose formats
// follow it.

// Transaction header constants.
const (
	TransHeaderSize  = 16         // sizeof(struct xfs_trans_header)
	TransHeaderMagic = 0x5452414E // XFS_TRANS_HEADER_MAGIC ("TRAN")
	TransCheckpoint  = 40         // XFS_TRANS_CHECKPOINT
)

// Log item types (XFS_LI_*), the first u16 of an item's first region.
const (
	LIEFI      = 0x1236
	LIEFD      = 0x1237
	LIIUnlink  = 0x1238
	LIInode    = 0x123b
	LIBuf      = 0x123c
	LIDquot    = 0x123d
	LIQuotaoff = 0x123e
	LIIcreate  = 0x123f
	LIRUI      = 0x1240
	LIRUD      = 0x1241
	LICUI      = 0x1242
	LICUD      = 0x1243
	LIBUI      = 0x1244
	LIBUD      = 0x1245
	LIATTRI    = 0x1246
	LIATTRD    = 0x1247
	LIXMI      = 0x1248
	LIXMD      = 0x1249
	LIEFIRT    = 0x124a
	LIEFDRT    = 0x124b
	LIRUIRT    = 0x124c
	LIRUDRT    = 0x124d
	LICUIRT    = 0x124e
	LICUDRT    = 0x124f
)

var logItemNames = map[uint16]string{
	LIEFI: "XFS_LI_EFI", LIEFD: "XFS_LI_EFD", LIIUnlink: "XFS_LI_IUNLINK", LIInode: "XFS_LI_INODE",
	LIBuf: "XFS_LI_BUF", LIDquot: "XFS_LI_DQUOT", LIQuotaoff: "XFS_LI_QUOTAOFF", LIIcreate: "XFS_LI_ICREATE",
	LIRUI: "XFS_LI_RUI", LIRUD: "XFS_LI_RUD", LICUI: "XFS_LI_CUI", LICUD: "XFS_LI_CUD",
	LIBUI: "XFS_LI_BUI", LIBUD: "XFS_LI_BUD", LIATTRI: "XFS_LI_ATTRI", LIATTRD: "XFS_LI_ATTRD",
	LIXMI: "XFS_LI_XMI", LIXMD: "XFS_LI_XMD", LIEFIRT: "XFS_LI_EFI_RT", LIEFDRT: "XFS_LI_EFD_RT",
	LIRUIRT: "XFS_LI_RUI_RT", LIRUDRT: "XFS_LI_RUD_RT", LICUIRT: "XFS_LI_CUI_RT", LICUDRT: "XFS_LI_CUD_RT",
}

// LogItemName names a log item type as the kernel's XFS_LI_TYPE_DESC does,
// or "unknown log item 0x..." for a type the kernel does not define.
func LogItemName(t uint16) string {
	if n, ok := logItemNames[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown log item %#x", t)
}

// TransHeader mirrors struct xfs_trans_header (16 bytes, host byte order:
// little-endian here).
type TransHeader struct {
	Magic    uint32 // th_magic: TransHeaderMagic
	Type     uint32 // th_type: TransCheckpoint on CIL logs
	Tid      uint32 // th_tid
	NumItems uint32 // th_num_items
}

// HasTransHeaderMagic reports whether b starts with th_magic (b may hold
// only the first piece of a header split across records).
func HasTransHeaderMagic(b []byte) bool { return len(b) >= 4 && le.Uint32(b) == TransHeaderMagic }

// DecodeTransHeader decodes a transaction header.
func DecodeTransHeader(b []byte) (TransHeader, error) {
	if len(b) < TransHeaderSize {
		return TransHeader{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log transaction header", Field: "length", Found: len(b), Want: TransHeaderSize}
	}
	return TransHeader{Magic: le.Uint32(b), Type: le.Uint32(b[4:]), Tid: le.Uint32(b[8:]), NumItems: le.Uint32(b[12:])}, nil
}

// Encode writes t into the first 16 bytes of b.
func (t TransHeader) Encode(b []byte) {
	le.PutUint32(b, t.Magic)
	le.PutUint32(b[4:], t.Type)
	le.PutUint32(b[8:], t.Tid)
	le.PutUint32(b[12:], t.NumItems)
}

// LogItemType returns the type of a log item from its first region (the
// host-endian u16 every log format structure starts with) and the region
// count the next u16 holds.
func LogItemType(region0 []byte) (typ, size uint16, ok bool) {
	if len(region0) < 4 {
		return 0, 0, false
	}
	return le.Uint16(region0), le.Uint16(region0[2:]), true
}
