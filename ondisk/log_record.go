package ondisk

import "fmt"

// The log record (fs/xfs/libxfs/xfs_log_format.h): the record header with
// its cycle stamping data, the extended headers of big records, the LSN
// that names a record, and the geometry constants of records. The other
// log structures are in log_*.go: op headers (log_op.go), the transaction
// header and log item types (log_trans.go), buffer items and their dirty
// bitmap (log_buf.go), inode items and the logged inode core
// (log_inode.go), inode-create items (log_icreate.go), intent items
// (intents.go), the unmount record (log_unmount.go), and the cycle packing
// and CRC of a record (log_pack.go).
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

// logRecHdrDecodedBytes is the number of bytes of the header
// DecodeLogRecHeader reads (offsetofend h_size).
const logRecHdrDecodedBytes = 324

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

// PutLSN stores l big-endian in b[0:8], as an LSN field of a v5 block.
func PutLSN(b []byte, l LSN) { be.PutUint64(b, uint64(l)) }

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

// IsLogRecHeader reports whether the log block b starts with the record
// header magic (h_magicno).
func IsLogRecHeader(b []byte) bool { return len(b) >= 4 && be.Uint32(b) == LogHeaderMagic }

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
