package journal

// The record writer: log records at the head, in the kernel's format
// (xlog_sync, xlog_pack_data, xlog_split_iclog, xlog_cksum), and the
// unmount record (xlog_write_unmount_record). Transactions (trans.go) build
// the op stream a record carries; this file only frames it.

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// WriteDev is the log device for writing (cache.Device satisfies it).
type WriteDev interface {
	LogDev
	WriteAt(daddr int64, b []byte) error
	Sync() error
}

// Errors of the writer.
var (
	// ErrDirtyLog is returned by NewWriter for a log that needs recovery.
	ErrDirtyLog = errors.New("the log is dirty: run 'xfsfree recover' or mount the filesystem to replay it first")
	// ErrLogFull is returned when a record would overwrite the tail.
	ErrLogFull = errors.New("journal: no log space left before the tail")
)

// Writer appends records at the head of a log whose state is known. It is
// not safe for concurrent use.
type Writer struct {
	dev      WriteDev
	g        Geometry
	block    int64  // next record's block (l_curr_block)
	cycle    uint32 // its cycle (l_curr_cycle)
	prev     int64  // previous record's block (h_prev_block)
	unsynced int    // records written since the last Sync
	maxData  int

	needClear bool       // ClearStale(clearTail) before the first record
	clearTail ondisk.LSN //
}

// maxUnsynced is XLOG_MAX_ICLOGS: at most this many records are in flight
// before a flush, the window recovery's torn-write check covers.
const maxUnsynced = ondisk.LogMaxIclogs

// NewWriter returns a writer at the head of a clean log (st from FindTail);
// it refuses a dirty log (ErrDirtyLog). Like the kernel at mount
// (xlog_clear_stale_blocks), before its first record it overwrites the
// blocks just ahead of the head with empty headers of the previous cycle,
// so that nothing a crashed earlier run left there can be taken for part
// of the log. A writer that writes no record writes nothing.
func NewWriter(dev WriteDev, g Geometry, st *State) (*Writer, error) {
	if st == nil || !st.Clean {
		return nil, ErrDirtyLog
	}
	head, cycle, prev := st.Head, st.HeadCycle, st.LastRecord
	tail := st.TailLSN
	if st.Empty {
		head, cycle, prev = 0, 1, 0
		tail = ondisk.MakeLSN(1, 0)
	}
	if prev < 0 {
		prev = 0
	}
	w, err := NewWriterAt(dev, g, head, cycle, prev)
	if err != nil {
		return nil, err
	}
	w.clearTail, w.needClear = tail, true
	return w, nil
}

// ContinueWriter returns a writer that continues a dirty log after its
// replay (st from FindTail, the replay written in place): its first record
// goes at the head, after the blocks ahead of it are cleared as NewWriter
// does. The caller keeps the tail where the log still needs it
// (Session.HoldTail).
func ContinueWriter(dev WriteDev, g Geometry, st *State) (*Writer, error) {
	prev := st.LastRecord
	if prev < 0 {
		prev = 0
	}
	w, err := NewWriterAt(dev, g, st.Head, st.HeadCycle, prev)
	if err != nil {
		return nil, err
	}
	w.clearTail, w.needClear = st.TailLSN, true
	return w, nil
}

// NewWriterAt returns a writer whose next record goes at log block head
// with the given cycle, the previous record being at prevBlock (for
// recovery, which writes its unmount record at the head it replayed to).
func NewWriterAt(dev WriteDev, g Geometry, head int64, cycle uint32, prevBlock int64) (*Writer, error) {
	if head < 0 || head >= g.BBs {
		return nil, fmt.Errorf("journal: head %d outside the log (%d BBs)", head, g.BBs)
	}
	if cycle == 0 || cycle == ondisk.LogHeaderMagic {
		return nil, fmt.Errorf("journal: bad head cycle %#x", cycle)
	}
	if !g.V2 {
		return nil, fmt.Errorf("journal: writing a version 1 log is %w", ondisk.ErrUnsupported)
	}
	if g.RoundOff <= 0 || g.HSize <= 0 || g.HBlks <= 0 {
		return nil, fmt.Errorf("journal: bad log geometry (round-off %d, h_size %d)", g.RoundOff, g.HSize)
	}
	if head%int64(g.RoundOff/ondisk.BBSize) != 0 {
		// Records start on round-off boundaries; a head elsewhere means
		// the log was written with another stripe unit.
		return nil, fmt.Errorf("journal: head %d is not on a %d-byte log stripe unit boundary", head, g.RoundOff)
	}
	w := &Writer{dev: dev, g: g, block: head, cycle: cycle, prev: prevBlock}
	hdr := g.HBlks * ondisk.BBSize
	w.maxData = (hdr+g.HSize)/g.RoundOff*g.RoundOff - hdr
	if w.maxData <= ondisk.LogOpHeaderSize {
		return nil, fmt.Errorf("journal: bad log geometry (round-off %d, h_size %d)", g.RoundOff, g.HSize)
	}
	return w, nil
}

// Head returns where the next record goes: its log block and cycle.
func (w *Writer) Head() (block int64, cycle uint32) { return w.block, w.cycle }

// HeadLSN is the LSN the next record will have.
func (w *Writer) HeadLSN() ondisk.LSN { return ondisk.MakeLSN(w.cycle, uint32(w.block)) }

// Geometry returns the log geometry the writer was made with.
func (w *Writer) Geometry() Geometry { return w.g }

// MaxRecordData is the largest op stream one record holds: h_len after
// round-off padding must not exceed h_size.
func (w *Writer) MaxRecordData() int { return w.maxData }

// RecordBBs is the length in BBs (header blocks included) of a record
// carrying n bytes of ops.
func (w *Writer) RecordBBs(n int) int64 {
	hdr := w.g.HBlks * ondisk.BBSize
	total := (hdr + n + w.g.RoundOff - 1) / w.g.RoundOff * w.g.RoundOff
	return int64(total / ondisk.BBSize)
}

// Free returns the BBs that can be written at the head without reaching
// the block of tail (xlog_space_left, without reservations). A tail equal
// to the head LSN leaves the whole log.
func (w *Writer) Free(tail ondisk.LSN) int64 { return w.g.freeAt(w.block, w.cycle, tail) }

// freeAt is Free for a head at block, cycle.
func (g *Geometry) freeAt(block int64, cycle uint32, tail ondisk.LSN) int64 {
	tc, tb := tail.Cycle(), int64(tail.Block())
	switch {
	case tc == cycle:
		return g.BBs - (block - tb)
	case nextCycle(tc) == cycle:
		return tb - block
	}
	return 0 // the tail is ahead of the head: corrupt; write nothing
}

func nextCycle(c uint32) uint32 { return ondisk.LogNextCycle(c) }

// WriteRecord writes one record at the head holding ops (nops op headers
// and their payloads, as built by the caller), with h_tail_lsn = tail: the
// header fields, h_size = the geometry's HSize, the data padded to the
// round-off, every data BB cycle-stamped, the BBs past the physical end
// bumped to the next cycle (split in two writes), the CRC. It is not
// synced, except that a Sync is issued before writing when
// XLOG_MAX_ICLOGS records are already unsynced. The record must leave at
// least one block free before the tail (ErrLogFull).
func (w *Writer) WriteRecord(ops []byte, nops int, tail ondisk.LSN) (ondisk.LSN, error) {
	if len(ops) == 0 || len(ops) > w.maxData {
		return 0, fmt.Errorf("journal: record data of %d bytes (allowed 1..%d)", len(ops), w.maxData)
	}
	if len(ops)%4 != 0 {
		return 0, fmt.Errorf("journal: record data of %d bytes is not a multiple of 4", len(ops))
	}
	return w.write(ops, nops, tail, 0)
}

// WriteUnmount writes an unmount record (xlog_write_unmount_record: one
// XFS_LOG op flagged UNMOUNT with the "Un" payload, h_len =
// max(1024, round-off) minus the header blocks, h_tail_lsn its own LSN)
// and syncs. The log is clean afterwards.
func (w *Writer) WriteUnmount() error {
	ops := make([]byte, ondisk.LogOpHeaderSize+ondisk.UnmountLogFormatSize)
	ondisk.LogOpHeader{Tid: ondisk.XfsprogsUnmountTid, Len: ondisk.UnmountLogFormatSize,
		ClientID: ondisk.LogClientLog, Flags: ondisk.OpUnmountTrans}.Encode(ops)
	ondisk.UnmountLogFormat{Magic: ondisk.UnmountType}.Encode(ops[ondisk.LogOpHeaderSize:])
	minTotal := max(1024, w.g.RoundOff)
	if _, err := w.write(ops, 1, w.HeadLSN(), minTotal); err != nil {
		return err
	}
	return w.Sync()
}

// Sync flushes the device: every record written so far is durable.
func (w *Writer) Sync() error {
	if err := w.dev.Sync(); err != nil {
		return err
	}
	w.unsynced = 0
	return nil
}

// write frames ops into a record of at least minTotal bytes and writes it.
func (w *Writer) write(ops []byte, nops int, tail ondisk.LSN, minTotal int) (ondisk.LSN, error) {
	g := &w.g
	hdrBytes := g.HBlks * ondisk.BBSize
	total := (hdrBytes + len(ops) + g.RoundOff - 1) / g.RoundOff * g.RoundOff
	total = max(total, minTotal)
	nBBs := int64(total / ondisk.BBSize)
	if w.needClear {
		if err := w.ClearStale(w.clearTail); err != nil {
			return 0, err
		}
	}
	if free := w.Free(tail); nBBs >= free {
		return 0, fmt.Errorf("%w: a record of %d BBs at block %d (cycle %d), tail %v leaves %d", ErrLogFull, nBBs, w.block, w.cycle, tail, free)
	}
	if w.unsynced >= maxUnsynced {
		if err := w.Sync(); err != nil {
			return 0, err
		}
	}
	buf := make([]byte, total)
	hdrs, data := buf[:hdrBytes], buf[hdrBytes:]
	copy(data, ops)
	lsn := ondisk.MakeLSN(w.cycle, uint32(w.block))
	h := &ondisk.LogRecHeader{
		Magic: ondisk.LogHeaderMagic, Cycle: w.cycle, Version: ondisk.LogVersion2,
		Len: uint32(len(data)), LSN: lsn, TailLSN: tail, PrevBlock: uint32(w.prev),
		NumLogOps: uint32(nops), Fmt: ondisk.LogFmtLinuxLE, FSUUID: g.UUID, Size: uint32(g.HSize),
	}
	h.Encode(hdrs)
	if err := ondisk.LogPackData(hdrs, data, w.cycle); err != nil {
		return 0, err
	}
	// xlog_split_iclog: every BB at or past the physical end belongs to
	// the next cycle.
	split := total
	if w.block+nBBs > g.BBs {
		split = int(g.BBs-w.block) * ondisk.BBSize
		ondisk.LogSplitRecord(buf[:total], split)
	}
	if err := ondisk.SetLogRecCRC(hdrs, data); err != nil {
		return 0, err
	}
	w.unsynced++
	if err := w.dev.WriteAt(g.StartDaddr+w.block, buf[:split]); err != nil {
		return 0, fmt.Errorf("journal: writing log record at block %d: %w", w.block, err)
	}
	if split < total {
		if err := w.dev.WriteAt(g.StartDaddr, buf[split:]); err != nil {
			return 0, fmt.Errorf("journal: writing the wrapped part of the log record at block %d: %w", w.block, err)
		}
	}
	w.prev = w.block
	w.block += nBBs
	if w.block >= g.BBs {
		w.block -= g.BBs
		w.cycle = nextCycle(w.cycle)
	}
	return lsn, nil
}

// ClearStale is xlog_clear_stale_blocks: overwrite up to
// XLOG_TOTAL_REC_SHIFT blocks ahead of the head (never reaching the tail)
// with empty record headers of the previous cycle, so that blocks of
// records a crash left half written past the head cannot later be taken
// for the head. tail is the log's tail LSN (the head's own LSN on a clean
// log). It syncs.
func (w *Writer) ClearStale(tail ondisk.LSN) error {
	w.needClear = false
	g := &w.g
	tc, tb := tail.Cycle(), int64(tail.Block())
	var dist int64
	switch {
	case tc == w.cycle && tb <= w.block:
		dist = tb + (g.BBs - w.block)
	case nextCycle(tc) == w.cycle && tb > w.block:
		dist = tb - w.block
	default:
		return fmt.Errorf("journal: tail %v is inconsistent with head %d (cycle %d)", tail, w.block, w.cycle)
	}
	dist = min(dist, g.totalRecShift())
	// Never reach back to the last record (on logs shorter than the
	// clearing distance the kernel would overwrite it too).
	if last := (w.block - w.prev + g.BBs) % g.BBs; last > 0 {
		dist = min(dist, g.BBs-last)
	}
	if dist <= 0 {
		return nil
	}
	// The cycle before the head's (xlog_clear_stale_blocks uses
	// head_cycle - 1 without skipping the magic).
	prevCycle := w.cycle - 1
	if end := w.block + dist; end <= g.BBs {
		if err := w.writeEmpty(prevCycle, w.block, dist, tail); err != nil {
			return err
		}
	} else {
		n := g.BBs - w.block
		if err := w.writeEmpty(prevCycle, w.block, n, tail); err != nil {
			return err
		}
		if err := w.writeEmpty(w.cycle, 0, dist-n, tail); err != nil {
			return err
		}
	}
	return w.Sync()
}

// writeEmpty is xlog_write_log_records: n blocks from blk, each an empty
// record header (xlog_add_record) of the given cycle.
func (w *Writer) writeEmpty(cycle uint32, blk, n int64, tail ondisk.LSN) error {
	const chunk = 4096 // BBs per write: XLOG_TOTAL_REC_SHIFT, so one write
	for n > 0 {
		c := min(n, chunk)
		buf := make([]byte, c*ondisk.BBSize)
		for i := int64(0); i < c; i++ {
			h := &ondisk.LogRecHeader{Magic: ondisk.LogHeaderMagic, Cycle: cycle, Version: ondisk.LogVersion2,
				LSN: ondisk.MakeLSN(cycle, uint32(blk+i)), TailLSN: tail, Fmt: ondisk.LogFmtLinuxLE, FSUUID: w.g.UUID}
			h.Encode(buf[i*ondisk.BBSize:])
		}
		if err := w.dev.WriteAt(w.g.StartDaddr+blk, buf); err != nil {
			return fmt.Errorf("journal: clearing log blocks %d..%d: %w", blk, blk+c-1, err)
		}
		blk += c
		n -= c
	}
	return nil
}
