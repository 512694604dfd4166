package ondisk

import (
	"fmt"
	"math/bits"
)

// This file holds the on-disk format of the XFS log (fs/xfs/libxfs/
// xfs_log_format.h): record headers with cycle stamping and CRC, op headers,
// the transaction header and the log item formats recovery reads.
//
// Byte order. The record header, the extended header and op headers are
// big-endian, except h_crc (little-endian). Log item payloads (transaction
// header, buffer/inode log formats, the logged dinode, the unmount record)
// are in the byte order of the host that wrote them, which h_fmt records;
// xfsfree reads and writes them little-endian (XLOG_FMT_LINUX_LE) and the
// caller must refuse records whose h_fmt is not LogFmtLinuxLE. The one
// exception is the inode-create item, whose fields after type/size are
// big-endian.

// Record and log geometry constants (xfs_log_format.h).
const (
	LogHeaderMagic      = 0xFEEDBABE // XLOG_HEADER_MAGIC_NUM, also never a valid cycle
	LogVersion1         = 1          // XLOG_VERSION_1
	LogVersion2         = 2          // XLOG_VERSION_2
	LogVersionOKBits    = LogVersion1 | LogVersion2
	LogMinRecordBSize   = 16 * 1024                   // XLOG_MIN_RECORD_BSIZE
	LogBigRecordBSize   = 32 * 1024                   // XLOG_BIG_RECORD_BSIZE
	LogMaxRecordBSize   = 256 * 1024                  // XLOG_MAX_RECORD_BSIZE
	LogHeaderCycleSize  = 32 * 1024                   // XLOG_HEADER_CYCLE_SIZE: data covered by one header block
	LogCycleDataSize    = LogHeaderCycleSize / BBSize // XLOG_CYCLE_DATA_SIZE (64)
	LogHeaderSize       = 512                         // XLOG_HEADER_SIZE
	LogRecSize          = 328                         // XLOG_REC_SIZE: CRC'd bytes of the header (offsetofend h_pad0)
	LogRecSizeOther     = 324                         // XLOG_REC_SIZE_OTHER: the i386 size (offsetofend h_size)
	LogRecExtSize       = 260                         // XLOG_REC_EXT_SIZE: CRC'd bytes of an extended header
	LogMaxIclogs        = 8                           // XLOG_MAX_ICLOGS
	LogRecCrcOff        = 32                          // offsetof(struct xlog_rec_header, h_crc)
	LogMaxRegionsInItem = 65536/BlfChunk/2 + 1        // XLOG_MAX_REGIONS_IN_ITEM (257)
)

// h_fmt values (XLOG_FMT_*).
const (
	LogFmtUnknown = 0
	LogFmtLinuxLE = 1
	LogFmtLinuxBE = 2
	LogFmtIrixBE  = 3
)

// Log clients (oh_clientid).
const (
	LogClientTransaction = 0x69 // XFS_TRANSACTION
	LogClientLog         = 0xAA // XFS_LOG (unmount records)
)

// Op header flags (oh_flags, XLOG_*_TRANS).
const (
	OpStartTrans    = 0x01 // XLOG_START_TRANS
	OpCommitTrans   = 0x02 // XLOG_COMMIT_TRANS
	OpContinueTrans = 0x04 // XLOG_CONTINUE_TRANS
	OpWasContTrans  = 0x08 // XLOG_WAS_CONT_TRANS
	OpEndTrans      = 0x10 // XLOG_END_TRANS
	OpUnmountTrans  = 0x20 // XLOG_UNMOUNT_TRANS
)

// Sizes of fixed log structures.
const (
	LogOpHeaderSize       = 12         // sizeof(struct xlog_op_header)
	TransHeaderSize       = 16         // sizeof(struct xfs_trans_header)
	BufLogFormatHdrSize   = 20         // offsetof(struct xfs_buf_log_format, blf_data_map)
	InodeLogFormatSize    = 56         // sizeof(struct xfs_inode_log_format)
	InodeLogFormat32Size  = 52         // sizeof(struct xfs_inode_log_format_32)
	LogDinodeSize         = 176        // sizeof(struct xfs_log_dinode) (v3 inodes)
	LogDinodeV2Size       = 96         // offsetof(struct xfs_log_dinode, di_next_unlinked)
	IcreateLogSize        = 28         // sizeof(struct xfs_icreate_log)
	UnmountLogFormatSize  = 8          // sizeof(struct xfs_unmount_log_format)
	UnmountType           = 0x556E     // XLOG_UNMOUNT_TYPE ("Un")
	TransHeaderMagic      = 0x5452414E // XFS_TRANS_HEADER_MAGIC ("TRAN")
	TransCheckpoint       = 40         // XFS_TRANS_CHECKPOINT
	XfsprogsUnmountTid    = 0xB0C0D0D0 // the tid xfsprogs puts in its unmount records
	logRecHdrDecodedBytes = 324        // bytes of the header DecodeLogRecHeader reads
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

// LSN is a log sequence number: cycle<<32 | block, block being the
// log-relative BB of a record header (xlog_assign_lsn).
type LSN uint64

// MakeLSN is xlog_assign_lsn.
func MakeLSN(cycle, block uint32) LSN { return LSN(uint64(cycle)<<32 | uint64(block)) }

// Cycle is CYCLE_LSN.
func (l LSN) Cycle() uint32 { return uint32(l >> 32) }

// Block is BLOCK_LSN.
func (l LSN) Block() uint32 { return uint32(l) }

// String prints cycle:block, as xfs_logprint does.
func (l LSN) String() string { return fmt.Sprintf("%d:%d", l.Cycle(), l.Block()) }

// CompareLSN is XFS_LSN_CMP: compares by cycle, then block.
func CompareLSN(a, b LSN) int {
	switch {
	case a.Cycle() != b.Cycle():
		if a.Cycle() < b.Cycle() {
			return -1
		}
		return 1
	case a.Block() < b.Block():
		return -1
	case a.Block() > b.Block():
		return 1
	}
	return 0
}

// LogCycle returns the cycle stamped in a log BB (xlog_get_cycle): word 0, or
// word 1 if word 0 is the record header magic. b must hold 8 bytes; a
// shorter b yields 0.
func LogCycle(b []byte) uint32 {
	if len(b) < 8 {
		return 0
	}
	if be.Uint32(b) == LogHeaderMagic {
		return be.Uint32(b[4:])
	}
	return be.Uint32(b)
}

// BTOBB rounds a byte count up to BBs.
func BTOBB(n int) int { return (n + BBSize - 1) >> BBShift }

// LogRecHeader mirrors struct xlog_rec_header (512 bytes on disk; offsets in
// comments).
type LogRecHeader struct {
	Magic     uint32                   // 0 h_magicno
	Cycle     uint32                   // 4 h_cycle
	Version   uint32                   // 8 h_version
	Len       uint32                   // 12 h_len: data bytes after the header blocks, padding included
	LSN       LSN                      // 16 h_lsn
	TailLSN   LSN                      // 24 h_tail_lsn
	CRC       uint32                   // 32 h_crc (little-endian)
	PrevBlock uint32                   // 36 h_prev_block
	NumLogOps uint32                   // 40 h_num_logops
	CycleData [LogCycleDataSize]uint32 // 44 h_cycle_data
	Fmt       uint32                   // 300 h_fmt
	FSUUID    [16]byte                 // 304 h_fs_uuid
	Size      uint32                   // 320 h_size: iclog size
}

// DecodeLogRecHeader decodes a record header from the first BB of b. It
// checks only the length of b; see Verify.
func DecodeLogRecHeader(b []byte) (*LogRecHeader, error) {
	if len(b) < logRecHdrDecodedBytes {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record header", Field: "length", Found: len(b), Want: LogHeaderSize}
	}
	h := &LogRecHeader{
		Magic:     be.Uint32(b[0:]),
		Cycle:     be.Uint32(b[4:]),
		Version:   be.Uint32(b[8:]),
		Len:       be.Uint32(b[12:]),
		LSN:       LSN(be.Uint64(b[16:])),
		TailLSN:   LSN(be.Uint64(b[24:])),
		CRC:       le.Uint32(b[32:]),
		PrevBlock: be.Uint32(b[36:]),
		NumLogOps: be.Uint32(b[40:]),
		Fmt:       be.Uint32(b[300:]),
		Size:      be.Uint32(b[320:]),
	}
	for i := range h.CycleData {
		h.CycleData[i] = be.Uint32(b[44+4*i:])
	}
	copy(h.FSUUID[:], b[304:320])
	return h, nil
}

// Encode writes h into the first BB of b (which must hold LogHeaderSize
// bytes), zeroing h_pad0 and h_reserved.
func (h *LogRecHeader) Encode(b []byte) {
	be.PutUint32(b[0:], h.Magic)
	be.PutUint32(b[4:], h.Cycle)
	be.PutUint32(b[8:], h.Version)
	be.PutUint32(b[12:], h.Len)
	be.PutUint64(b[16:], uint64(h.LSN))
	be.PutUint64(b[24:], uint64(h.TailLSN))
	le.PutUint32(b[32:], h.CRC)
	be.PutUint32(b[36:], h.PrevBlock)
	be.PutUint32(b[40:], h.NumLogOps)
	for i, v := range h.CycleData {
		be.PutUint32(b[44+4*i:], v)
	}
	be.PutUint32(b[300:], h.Fmt)
	copy(b[304:320], h.FSUUID[:])
	be.PutUint32(b[320:], h.Size)
	clear(b[324:LogHeaderSize])
}

// HBlks is the number of header BBs of the record (xlog_logrec_hblks): one
// per 32 KiB of h_size on a v2 log whose header says version 2, else 1.
func (h *LogRecHeader) HBlks(logV2 bool) int {
	return LogHBlks(h.Size, h.Version, logV2)
}

// LogHBlks is xlog_logrec_hblks for a given h_size and h_version.
func LogHBlks(size, version uint32, logV2 bool) int {
	if logV2 && version&LogVersion2 != 0 && size > LogHeaderCycleSize {
		return int((uint64(size) + LogHeaderCycleSize - 1) / LogHeaderCycleSize)
	}
	return 1
}

// DataBBs is the number of data BBs after the header blocks (BTOBB(h_len)).
func (h *LogRecHeader) DataBBs() int { return int((uint64(h.Len) + BBSize - 1) >> BBShift) }

// Verify is xlog_valid_rec_header: magic, version (only known bits, and the
// version of the log: 2 on a v2 log, 1 otherwise), 0 < h_len <= bufSize.
// The error carries no location; callers add it with SetLocation.
func (h *LogRecHeader) Verify(logV2 bool, bufSize int) error {
	w := Where{AG: NoAG, Daddr: -1}
	if h.Magic != LogHeaderMagic {
		return w.Corrupt("log record header", "h_magicno", h.Magic, uint32(LogHeaderMagic), "")
	}
	want := uint32(LogVersion1)
	if logV2 {
		want = LogVersion2
	}
	if h.Version == 0 || h.Version&^LogVersionOKBits != 0 || h.Version != want {
		return w.Corrupt("log record header", "h_version", h.Version, want, "")
	}
	if h.Len == 0 || int64(h.Len) > int64(bufSize) {
		return w.Corrupt("log record header", "h_len", h.Len, nil, fmt.Sprintf("is not in 1..%d (h_size)", bufSize))
	}
	return nil
}

// LogRecExtHeader mirrors struct xlog_rec_ext_header: extended header block
// j (j >= 1) holds the saved first words of data BBs 64j..64j+63.
type LogRecExtHeader struct {
	Cycle     uint32                   // 0 xh_cycle
	CycleData [LogCycleDataSize]uint32 // 4 xh_cycle_data
}

// DecodeLogRecExtHeader decodes an extended header from b.
func DecodeLogRecExtHeader(b []byte) (*LogRecExtHeader, error) {
	if len(b) < LogRecExtSize {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log extended header", Field: "length", Found: len(b), Want: LogHeaderSize}
	}
	x := &LogRecExtHeader{Cycle: be.Uint32(b)}
	for i := range x.CycleData {
		x.CycleData[i] = be.Uint32(b[4+4*i:])
	}
	return x, nil
}

// Encode writes x into a 512-byte block, zeroing xh_reserved.
func (x *LogRecExtHeader) Encode(b []byte) {
	be.PutUint32(b, x.Cycle)
	for i, v := range x.CycleData {
		be.PutUint32(b[4+4*i:], v)
	}
	clear(b[LogRecExtSize:LogHeaderSize])
}

// cycleSlot returns the offset in hdrs of the saved word for data BB i.
func cycleSlot(i int) int {
	j, k := i/LogCycleDataSize, i%LogCycleDataSize
	if j == 0 {
		return 44 + 4*k
	}
	return j*LogHeaderSize + 4 + 4*k
}

func checkPackArgs(hdrs, data []byte) error {
	n := BTOBB(len(data))
	if need := (n + LogCycleDataSize - 1) / LogCycleDataSize; n > 0 && need*LogHeaderSize > len(hdrs) {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record", Field: "h_len", Found: len(data),
			Msg: fmt.Sprintf("needs %d header blocks, the record has %d", need, len(hdrs)/LogHeaderSize)}
	}
	if len(hdrs) < LogHeaderSize {
		return &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record header", Field: "length", Found: len(hdrs), Want: LogHeaderSize}
	}
	return nil
}

// LogUnpackData reverses the cycle stamping of a record's data in place
// (xlog_unpack_data): the first word of data BB i is restored from
// h_cycle_data[i], or from extended header i/64 for i >= 64. hdrs holds the
// record's header blocks, data its h_len data bytes as read from disk.
func LogUnpackData(hdrs, data []byte) error {
	if err := checkPackArgs(hdrs, data); err != nil {
		return err
	}
	for i := 0; i*BBSize+4 <= len(data); i++ {
		s := cycleSlot(i)
		copy(data[i*BBSize:i*BBSize+4], hdrs[s:s+4])
	}
	return nil
}

// LogPackData stamps cycle into the first word of every data BB, saving the
// word it replaces (xlog_pack_data), and sets xh_cycle of every extended
// header block in hdrs.
func LogPackData(hdrs, data []byte, cycle uint32) error {
	if err := checkPackArgs(hdrs, data); err != nil {
		return err
	}
	for i := 0; i*BBSize+4 <= len(data); i++ {
		s := cycleSlot(i)
		copy(hdrs[s:s+4], data[i*BBSize:i*BBSize+4])
		be.PutUint32(data[i*BBSize:], cycle)
	}
	for j := 1; (j+1)*LogHeaderSize <= len(hdrs); j++ {
		be.PutUint32(hdrs[j*LogHeaderSize:], cycle)
	}
	return nil
}

// LogRecCksum computes a record's CRC (xlog_cksum) over the packed on-disk
// bytes: the first recSize bytes of the header with h_crc taken as zero
// (recSize is LogRecSize, or LogRecSizeOther for logs written on i386), the
// first LogRecExtSize bytes of extended headers 1..ceil(len(data)/32K)-1,
// then the data. The result is what h_crc stores.
func LogRecCksum(hdrs, data []byte, recSize int) (uint32, error) {
	if recSize != LogRecSize && recSize != LogRecSizeOther {
		return 0, fmt.Errorf("ondisk: bad log record CRC size %d", recSize)
	}
	xheads := (len(data) + LogHeaderCycleSize - 1) / LogHeaderCycleSize
	if len(hdrs) < LogHeaderSize || (xheads > 1 && len(hdrs) < (xheads-1)*LogHeaderSize+LogRecExtSize) {
		return 0, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record", Field: "h_len", Found: len(data),
			Msg: fmt.Sprintf("needs %d header blocks, the record has %d", max(xheads, 1), len(hdrs)/LogHeaderSize)}
	}
	var zero [4]byte
	c := CrcUpdate(0, hdrs[:LogRecCrcOff])
	c = CrcUpdate(c, zero[:])
	c = CrcUpdate(c, hdrs[LogRecCrcOff+4:recSize])
	for i := 1; i < xheads; i++ {
		c = CrcUpdate(c, hdrs[i*LogHeaderSize:i*LogHeaderSize+LogRecExtSize])
	}
	return CrcUpdate(c, data), nil
}

// CheckLogRecCRC verifies the stored h_crc of a packed record against both
// header sizes the kernel accepts. It returns the stored and the computed
// (LogRecSize) value and whether they match. A stored 0 never matches: the
// kernel accepts it only while looking for torn writes.
func CheckLogRecCRC(hdrs, data []byte) (stored, computed uint32, ok bool, err error) {
	if len(hdrs) < LogHeaderSize {
		return 0, 0, false, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log record header", Field: "length", Found: len(hdrs), Want: LogHeaderSize}
	}
	stored = le.Uint32(hdrs[LogRecCrcOff:])
	computed, err = LogRecCksum(hdrs, data, LogRecSize)
	if err != nil {
		return stored, 0, false, err
	}
	if stored == computed {
		return stored, computed, true, nil
	}
	other, _ := LogRecCksum(hdrs, data, LogRecSizeOther)
	return stored, computed, stored == other, nil
}

// SetLogRecCRC computes and stores h_crc (LogRecSize variant). Call it last,
// after packing and any wrap increment.
func SetLogRecCRC(hdrs, data []byte) error {
	c, err := LogRecCksum(hdrs, data, LogRecSize)
	if err != nil {
		return err
	}
	le.PutUint32(hdrs[LogRecCrcOff:], c)
	return nil
}

// LogOpHeader mirrors struct xlog_op_header (12 bytes, big-endian).
type LogOpHeader struct {
	Tid      uint32 // 0 oh_tid
	Len      uint32 // 4 oh_len: bytes of data following the header
	ClientID uint8  // 8 oh_clientid
	Flags    uint8  // 9 oh_flags
	Res2     uint16 // 10 oh_res2
}

// DecodeLogOpHeader decodes an op header from b.
func DecodeLogOpHeader(b []byte) (LogOpHeader, error) {
	if len(b) < LogOpHeaderSize {
		return LogOpHeader{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log op header", Field: "length", Found: len(b), Want: LogOpHeaderSize, Msg: "overruns the record"}
	}
	return LogOpHeader{Tid: be.Uint32(b), Len: be.Uint32(b[4:]), ClientID: b[8], Flags: b[9], Res2: be.Uint16(b[10:])}, nil
}

// Encode writes o into the first 12 bytes of b.
func (o LogOpHeader) Encode(b []byte) {
	be.PutUint32(b, o.Tid)
	be.PutUint32(b[4:], o.Len)
	b[8] = o.ClientID
	b[9] = o.Flags
	be.PutUint16(b[10:], o.Res2)
}

// OpFlagsString names the set op flags, e.g. "START|COMMIT".
func OpFlagsString(f uint8) string {
	names := []string{"START", "COMMIT", "CONTINUE", "WAS_CONT", "END", "UNMOUNT", "0x40", "0x80"}
	s := ""
	for i := 0; i < 8; i++ {
		if f&(1<<i) != 0 {
			if s != "" {
				s += "|"
			}
			s += names[i]
		}
	}
	if s == "" {
		return "0"
	}
	return s
}

// TransHeader mirrors struct xfs_trans_header (16 bytes, host byte order:
// little-endian here).
type TransHeader struct {
	Magic    uint32 // th_magic: TransHeaderMagic
	Type     uint32 // th_type: TransCheckpoint on CIL logs
	Tid      uint32 // th_tid
	NumItems uint32 // th_num_items
}

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

// Buffer log format flags and geometry (XFS_BLF_*).
const (
	BlfChunk       = 128 // XFS_BLF_CHUNK: bytes per dirty bit
	BlfShift       = 7   // XFS_BLF_SHIFT
	BlfInodeBuf    = 0x1 // XFS_BLF_INODE_BUF
	BlfCancel      = 0x2 // XFS_BLF_CANCEL
	BlfUDquotBuf   = 0x4
	BlfPDquotBuf   = 0x8
	BlfGDquotBuf   = 0x10
	BlftShift      = 11                          // XFS_BLFT_SHIFT
	BlftMask       = ((1 << 5) - 1) << BlftShift // XFS_BLFT_MASK
	BlfDatamapSize = 65536/BlfChunk/32 + 1       // XFS_BLF_DATAMAP_SIZE (17)
)

// BufLogFormat mirrors struct xfs_buf_log_format (host byte order:
// little-endian here). Only the MapSize words of the bitmap are on disk in
// a logged item (xfs_buf_log_format_size).
type BufLogFormat struct {
	Type    uint16   // 0 blf_type: LIBuf
	Size    uint16   // 2 blf_size: regions in the item (1 + data regions)
	Flags   uint16   // 4 blf_flags, with the buffer type in the top 5 bits
	Len     uint16   // 6 blf_len: buffer length in BBs
	Blkno   int64    // 8 blf_blkno: daddr on the data device
	MapSize uint32   // 16 blf_map_size: words of the bitmap
	DataMap []uint32 // 20 blf_data_map[MapSize]
}

// BlfMapSize is the number of bitmap words for a buffer of n bytes.
func BlfMapSize(n int) int {
	chunks := (n + BlfChunk - 1) / BlfChunk
	return (chunks + 31) / 32
}

// DecodeBufLogFormat decodes the format region of a buffer log item.
func DecodeBufLogFormat(b []byte) (*BufLogFormat, error) {
	w := Where{AG: NoAG, Daddr: -1}
	if len(b) < BufLogFormatHdrSize {
		return nil, w.Corrupt("buffer log format", "length", len(b), BufLogFormatHdrSize, "")
	}
	f := &BufLogFormat{
		Type: le.Uint16(b), Size: le.Uint16(b[2:]), Flags: le.Uint16(b[4:]), Len: le.Uint16(b[6:]),
		Blkno: int64(le.Uint64(b[8:])), MapSize: le.Uint32(b[16:]),
	}
	if f.MapSize > BlfDatamapSize {
		return nil, w.Corrupt("buffer log format", "blf_map_size", f.MapSize, nil, fmt.Sprintf("exceeds %d", BlfDatamapSize))
	}
	if need := BufLogFormatHdrSize + 4*int(f.MapSize); len(b) < need {
		return nil, w.Corrupt("buffer log format", "length", len(b), need, "is short for blf_map_size")
	}
	f.DataMap = make([]uint32, f.MapSize)
	for i := range f.DataMap {
		f.DataMap[i] = le.Uint32(b[BufLogFormatHdrSize+4*i:])
	}
	return f, nil
}

// EncodedSize is the logged size of f: 20 + 4*MapSize.
func (f *BufLogFormat) EncodedSize() int { return BufLogFormatHdrSize + 4*int(f.MapSize) }

// Encode writes f into b (EncodedSize bytes).
func (f *BufLogFormat) Encode(b []byte) {
	le.PutUint16(b, f.Type)
	le.PutUint16(b[2:], f.Size)
	le.PutUint16(b[4:], f.Flags)
	le.PutUint16(b[6:], f.Len)
	le.PutUint64(b[8:], uint64(f.Blkno))
	le.PutUint32(b[16:], f.MapSize)
	for i := 0; i < int(f.MapSize); i++ {
		var v uint32
		if i < len(f.DataMap) {
			v = f.DataMap[i]
		}
		le.PutUint32(b[BufLogFormatHdrSize+4*i:], v)
	}
}

// Blft is the buffer type in blf_flags (xfs_blft_from_flags).
func (f *BufLogFormat) Blft() uint16 { return (f.Flags & BlftMask) >> BlftShift }

// SetBlft stores the buffer type (xfs_blft_to_flags).
func (f *BufLogFormat) SetBlft(t uint16) {
	f.Flags = f.Flags&^BlftMask | (t<<BlftShift)&BlftMask
}

// IsDirty reports whether chunk bit is set in the bitmap.
func (f *BufLogFormat) IsDirty(bit int) bool {
	w := bit / 32
	return bit >= 0 && w < len(f.DataMap) && w < int(f.MapSize) && f.DataMap[w]&(1<<(bit%32)) != 0
}

// MarkDirty sets the bits covering bytes first..last (inclusive) of the
// buffer, as xfs_buf_item_log_segment does. It grows DataMap to MapSize
// words if needed and ignores bits past MapSize*32.
func (f *BufLogFormat) MarkDirty(first, last int) {
	if first < 0 || last < first {
		return
	}
	if len(f.DataMap) < int(f.MapSize) {
		f.DataMap = append(f.DataMap, make([]uint32, int(f.MapSize)-len(f.DataMap))...)
	}
	for bit := first >> BlfShift; bit <= last>>BlfShift && bit/32 < len(f.DataMap); bit++ {
		f.DataMap[bit/32] |= 1 << (bit % 32)
	}
}

// DirtyRun is a maximal run of set bits: the data region covering bytes
// [First*128, (First+N)*128) of the buffer.
type DirtyRun struct{ First, N int }

// Runs lists the maximal runs of set bits in ascending order: one logged
// data region each (xfs_buf_item_format_segment, xlog_recover_do_reg_buffer).
func (f *BufLogFormat) Runs() []DirtyRun {
	var runs []DirtyRun
	words := min(len(f.DataMap), int(f.MapSize))
	bit, end := 0, words*32
	for bit < end {
		w := f.DataMap[bit/32] >> (bit % 32)
		if w == 0 {
			bit = (bit/32 + 1) * 32
			continue
		}
		bit += bits.TrailingZeros32(w)
		start := bit
		for bit < end && f.DataMap[bit/32]&(1<<(bit%32)) != 0 {
			bit++
		}
		runs = append(runs, DirtyRun{First: start, N: bit - start})
	}
	return runs
}

// Inode log format field flags (XFS_ILOG_*).
const (
	ILogCore   = 0x001
	ILogDData  = 0x002
	ILogDExt   = 0x004
	ILogDBroot = 0x008
	ILogDev    = 0x010
	ILogUUID   = 0x020
	ILogAData  = 0x040
	ILogAExt   = 0x080
	ILogABroot = 0x100
	ILogDOwner = 0x200
	ILogAOwner = 0x400
	ILogDFork  = ILogDData | ILogDExt | ILogDBroot
	ILogAFork  = ILogAData | ILogAExt | ILogABroot
)

// InodeLogFormat mirrors struct xfs_inode_log_format (host byte order). The
// 32-bit variant without ilf_pad (xfs_inode_log_format_32) is decoded into
// the same struct.
type InodeLogFormat struct {
	Type    uint16   // ilf_type: LIInode
	Size    uint16   // ilf_size: regions in the item
	Fields  uint32   // ilf_fields: ILog* bits
	ASize   uint16   // ilf_asize: attr fork bytes logged
	DSize   uint16   // ilf_dsize: data fork bytes logged
	Ino     uint64   // ilf_ino
	U       [16]byte // ilf_u: ilfu_rdev in the first 4 bytes (host order)
	Blkno   int64    // ilf_blkno: daddr of the inode cluster buffer
	Len     int32    // ilf_len: cluster buffer length in BBs
	Boffset int32    // ilf_boffset: byte offset of the inode in the buffer
}

// Rdev is ilf_u.ilfu_rdev.
func (f *InodeLogFormat) Rdev() uint32 { return le.Uint32(f.U[:]) }

// DecodeInodeLogFormat decodes the format region of an inode log item; its
// length selects the 64-bit (56 bytes) or 32-bit (52 bytes) layout, as
// xfs_inode_item_format_convert does.
func DecodeInodeLogFormat(b []byte) (*InodeLogFormat, error) {
	f := &InodeLogFormat{}
	switch len(b) {
	case InodeLogFormatSize:
		f.Ino = le.Uint64(b[16:])
		copy(f.U[:], b[24:40])
		f.Blkno = int64(le.Uint64(b[40:]))
		f.Len = int32(le.Uint32(b[48:]))
		f.Boffset = int32(le.Uint32(b[52:]))
	case InodeLogFormat32Size:
		f.Ino = le.Uint64(b[12:])
		copy(f.U[:], b[20:36])
		f.Blkno = int64(le.Uint64(b[36:]))
		f.Len = int32(le.Uint32(b[44:]))
		f.Boffset = int32(le.Uint32(b[48:]))
	default:
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "inode log format", Field: "length", Found: len(b),
			Msg: fmt.Sprintf("is neither %d nor %d", InodeLogFormatSize, InodeLogFormat32Size)}
	}
	f.Type = le.Uint16(b)
	f.Size = le.Uint16(b[2:])
	f.Fields = le.Uint32(b[4:])
	f.ASize = le.Uint16(b[8:])
	f.DSize = le.Uint16(b[10:])
	return f, nil
}

// Encode writes the 64-bit layout (InodeLogFormatSize bytes) into b.
func (f *InodeLogFormat) Encode(b []byte) {
	le.PutUint16(b, f.Type)
	le.PutUint16(b[2:], f.Size)
	le.PutUint32(b[4:], f.Fields)
	le.PutUint16(b[8:], f.ASize)
	le.PutUint16(b[10:], f.DSize)
	le.PutUint32(b[12:], 0)
	le.PutUint64(b[16:], f.Ino)
	copy(b[24:40], f.U[:])
	le.PutUint64(b[40:], uint64(f.Blkno))
	le.PutUint32(b[48:], uint32(f.Len))
	le.PutUint32(b[52:], uint32(f.Boffset))
}

// LogDinode mirrors struct xfs_log_dinode: the inode core as the kernel logs
// it, in host byte order (little-endian here), laid out like struct
// xfs_dinode. Timestamps are the raw host-order 64-bit values
// (xfs_log_timestamp_t): with bigtime a nanosecond counter, otherwise
// t_sec in the low and t_nsec in the high 32 bits.
type LogDinode struct {
	Magic        uint16   // 0 di_magic
	Mode         uint16   // 2 di_mode
	Version      int8     // 4 di_version
	Format       int8     // 5 di_format
	Metatype     uint16   // 6 di_metatype
	UID          uint32   // 8 di_uid
	GID          uint32   // 12 di_gid
	Nlink        uint32   // 16 di_nlink
	ProjIDLo     uint16   // 20 di_projid_lo
	ProjIDHi     uint16   // 22 di_projid_hi
	BigNextents  uint64   // 24 di_big_nextents / di_v3_pad / (di_v2_pad, di_flushiter)
	Atime        uint64   // 32 di_atime
	Mtime        uint64   // 40 di_mtime
	Ctime        uint64   // 48 di_ctime
	ISize        int64    // 56 di_size
	NBlocks      uint64   // 64 di_nblocks
	ExtSize      uint32   // 72 di_extsize
	Nextents     uint32   // 76 di_nextents / di_big_anextents
	Anextents    uint16   // 80 di_anextents / di_nrext64_pad
	Forkoff      uint8    // 82 di_forkoff
	Aformat      int8     // 83 di_aformat
	DMEvMask     uint32   // 84 di_dmevmask
	DMState      uint16   // 88 di_dmstate
	Flags        uint16   // 90 di_flags
	Gen          uint32   // 92 di_gen
	NextUnlinked uint32   // 96 di_next_unlinked
	CRC          uint32   // 100 di_crc
	ChangeCount  uint64   // 104 di_changecount
	LSN          uint64   // 112 di_lsn (not replayed)
	Flags2       uint64   // 120 di_flags2
	CowExtSize   uint32   // 128 di_cowextsize / di_used_blocks
	Pad2         [12]byte // 132 di_pad2
	Crtime       uint64   // 144 di_crtime
	Ino          uint64   // 152 di_ino
	UUID         [16]byte // 160 di_uuid
}

// FlushIter is di_flushiter of a v2 inode (the last u16 of the union at 24).
func (d *LogDinode) FlushIter() uint16 { return uint16(d.BigNextents >> 48) }

// DecodeLogDinode decodes a logged inode core: LogDinodeSize bytes for v3
// inodes, at least LogDinodeV2Size for v2 (the v3 fields are then zero).
func DecodeLogDinode(b []byte) (*LogDinode, error) {
	if len(b) < LogDinodeV2Size {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "log dinode", Field: "length", Found: len(b), Want: LogDinodeSize}
	}
	d := &LogDinode{
		Magic: le.Uint16(b), Mode: le.Uint16(b[2:]), Version: int8(b[4]), Format: int8(b[5]),
		Metatype: le.Uint16(b[6:]), UID: le.Uint32(b[8:]), GID: le.Uint32(b[12:]), Nlink: le.Uint32(b[16:]),
		ProjIDLo: le.Uint16(b[20:]), ProjIDHi: le.Uint16(b[22:]), BigNextents: le.Uint64(b[24:]),
		Atime: le.Uint64(b[32:]), Mtime: le.Uint64(b[40:]), Ctime: le.Uint64(b[48:]),
		ISize: int64(le.Uint64(b[56:])), NBlocks: le.Uint64(b[64:]), ExtSize: le.Uint32(b[72:]),
		Nextents: le.Uint32(b[76:]), Anextents: le.Uint16(b[80:]), Forkoff: b[82], Aformat: int8(b[83]),
		DMEvMask: le.Uint32(b[84:]), DMState: le.Uint16(b[88:]), Flags: le.Uint16(b[90:]), Gen: le.Uint32(b[92:]),
	}
	if len(b) < LogDinodeSize {
		return d, nil
	}
	d.NextUnlinked = le.Uint32(b[96:])
	d.CRC = le.Uint32(b[100:])
	d.ChangeCount = le.Uint64(b[104:])
	d.LSN = le.Uint64(b[112:])
	d.Flags2 = le.Uint64(b[120:])
	d.CowExtSize = le.Uint32(b[128:])
	copy(d.Pad2[:], b[132:144])
	d.Crtime = le.Uint64(b[144:])
	d.Ino = le.Uint64(b[152:])
	copy(d.UUID[:], b[160:176])
	return d, nil
}

// IcreateLog mirrors struct xfs_icreate_log: type and size in host order,
// the rest big-endian.
type IcreateLog struct {
	Type   uint16 // icl_type: LIIcreate
	Size   uint16 // icl_size: 1
	AG     uint32 // icl_ag
	AGBno  uint32 // icl_agbno: first block of the inode range
	Count  uint32 // icl_count: inodes to initialise
	ISize  uint32 // icl_isize
	Length uint32 // icl_length: blocks
	Gen    uint32 // icl_gen
}

// DecodeIcreateLog decodes an inode-create item region.
func DecodeIcreateLog(b []byte) (*IcreateLog, error) {
	if len(b) < IcreateLogSize {
		return nil, &CorruptError{AG: NoAG, Daddr: -1, Struct: "icreate log item", Field: "length", Found: len(b), Want: IcreateLogSize}
	}
	return &IcreateLog{Type: le.Uint16(b), Size: le.Uint16(b[2:]), AG: be.Uint32(b[4:]), AGBno: be.Uint32(b[8:]),
		Count: be.Uint32(b[12:]), ISize: be.Uint32(b[16:]), Length: be.Uint32(b[20:]), Gen: be.Uint32(b[24:])}, nil
}

// UnmountLogFormat mirrors struct xfs_unmount_log_format (host order).
type UnmountLogFormat struct {
	Magic uint16 // UnmountType
	Pad1  uint16
	Pad2  uint32
}

// DecodeUnmountLogFormat decodes the payload of an unmount op.
func DecodeUnmountLogFormat(b []byte) (UnmountLogFormat, error) {
	if len(b) < UnmountLogFormatSize {
		return UnmountLogFormat{}, &CorruptError{AG: NoAG, Daddr: -1, Struct: "unmount record", Field: "length", Found: len(b), Want: UnmountLogFormatSize}
	}
	return UnmountLogFormat{Magic: le.Uint16(b), Pad1: le.Uint16(b[2:]), Pad2: le.Uint32(b[4:])}, nil
}

// Encode writes u into the first 8 bytes of b.
func (u UnmountLogFormat) Encode(b []byte) {
	le.PutUint16(b, u.Magic)
	le.PutUint16(b[2:], u.Pad1)
	le.PutUint32(b[4:], u.Pad2)
}
