package journal

// The open checkpoint (the kernel's CIL, xfs_log_cil.c): commits add their
// changes to it, and a push writes it as one log transaction — START, a
// checkpoint transaction header, one buffer item per buffer (its format
// and the union of the regions dirtied since it was last written in
// place, taken from a shadow copy of its committed contents), one cancel
// item per cancelled buffer, the opaque items, COMMIT — then syncs it.
// Only then are its buffers eligible for writeback, stamped with its start
// LSN (xlog_cil_committed → the AIL), and its OnCommit functions run.

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// bufItem is the journal's state of a buffer logged and not yet written in
// place (the kernel's xfs_buf_log_item).
type bufItem struct {
	daddr  int64
	b      *cache.Buf          // the buffer (a new one if a cancelled block is reused)
	kind   *ondisk.BlockKind   // its kind when last logged
	blf    ondisk.BufLogFormat // dirty chunks since it was last written in place
	inodes []int               // inodes logged with LogInode since then (offsets)
	shadow []byte              // its contents as of the last commit that logged it
	cancel bool                // its last change is a cancel (Binval)
	ctxSeq uint64              // the checkpoint it is in (open or being pushed), 0: none
	pins   int                 // checkpoints holding it that are not yet durable
	lsn    ondisk.LSN          // start LSN of the last durable checkpoint that logged it, 0: none
	gen    uint64              // bumped by every commit that logs it
	size   int64               // its op-stream bytes as the checkpoint formats it now
}

// opSize is the bytes a buffer item with format f and these dirty runs
// (or a cancel) adds to the op stream.
func itemSize(f *ondisk.BufLogFormat, cancel bool, bufLen int) int64 {
	n := int64(ondisk.LogOpHeaderSize + f.EncodedSize())
	if cancel {
		return n
	}
	for _, r := range f.Runs() {
		lo := r.First * ondisk.BlfChunk
		hi := min((r.First+r.N)*ondisk.BlfChunk, bufLen)
		n += int64(ondisk.LogOpHeaderSize + hi - lo)
	}
	return n
}

// cilCtx is one checkpoint: what the commits since the last push logged.
type cilCtx struct {
	seq       uint64
	items     []*bufItem
	others    [][]byte // opaque items, in commit order
	onDurable []func()
	size      int64 // the items' and opaque items' op-stream bytes
	commits   int
}

func newCilCtx(seq uint64) *cilCtx { return &cilCtx{seq: seq} }

// ctxOverhead is what a checkpoint adds to its items: START, the
// transaction header's op and region, COMMIT.
const ctxOverhead = 3*ondisk.LogOpHeaderSize + ondisk.TransHeaderSize

// pushLimitLocked is the checkpoint size at which a commit pushes it.
func (s *Session) pushLimitLocked() int64 {
	if s.PushBytes > 0 {
		return s.PushBytes
	}
	return min(s.w.g.BBs*ondisk.BBSize/4, 32<<20)
}

// ctxDeltaLocked is how many bytes the open checkpoint grows by when t
// joins it.
func (s *Session) ctxDeltaLocked(t *Transaction) int64 {
	var d int64
	for daddr, tb := range t.bufs {
		if !tb.cancel && !tb.anyDirty {
			continue
		}
		it := s.items[daddr]
		var old int64
		if it != nil && it.ctxSeq == s.ctx.seq {
			old = it.size
		}
		var n int64
		if tb.cancel {
			n = itemSize(&tb.blf, true, len(tb.b.Data))
		} else {
			f := tb.blf
			if it != nil && !it.cancel {
				f.DataMap = slices.Clone(tb.blf.DataMap)
				for i, w := range it.blf.DataMap {
					f.DataMap[i] |= w
				}
			}
			n = itemSize(&f, false, len(tb.b.Data))
		}
		d += n - old
	}
	for _, o := range t.others {
		d += int64(ondisk.LogOpHeaderSize + len(o))
	}
	return d
}

// commit puts t into the open checkpoint, pushing it first when t would
// make it outgrow the log space a checkpoint may take. It leaves t open
// with ErrTransTooBig when t does not fit even in an empty checkpoint. full
// says that the checkpoint has reached the size at which it is pushed
// (which the caller does once it holds no lock: pushIfFull).
func (s *Session) commit(t *Transaction) (seq uint64, full bool, err error) {
	empty := t.size == 0 && len(t.others) == 0
	s.mu.Lock()
	for !empty {
		if s.shutdown != nil {
			err := s.shutdown
			s.mu.Unlock()
			t.Cancel()
			return 0, false, err
		}
		need := s.ctx.size + s.ctxDeltaLocked(t) + ctxOverhead
		room := s.bbsToBytes(s.maxCheckpointBBsLocked())
		if need <= room {
			break
		}
		switch {
		case s.ctx.size > 0:
			// Push what is there, then try again with an empty one.
		case s.pushing > 0:
			// A push in progress holds log space: wait for it.
		default:
			s.mu.Unlock()
			return 0, false, fmt.Errorf("%w: %d bytes, %d free", ErrTransTooBig, need, room)
		}
		s.mu.Unlock()
		if err := s.push(); err != nil {
			t.Cancel()
			return 0, false, err
		}
		s.mu.Lock()
	}
	ctx := s.ctx
	if !empty {
		s.mergeLocked(t, ctx)
	}
	s.commits++
	s.stats.Commits++
	hook, commits := s.hook, s.commits
	used := s.w.g.BBs - s.freeRawLocked()
	if !empty {
		ctx.onDurable = append(ctx.onDurable, t.onCommit...)
		t.onCommit = nil
	}
	full = ctx.size+ctxOverhead >= s.pushLimitLocked()
	s.mu.Unlock()
	if empty {
		for _, fn := range t.onCommit {
			fn()
		}
		t.onCommit = nil
	}
	if hook != nil {
		defer hook(used, commits)
	}
	return ctx.seq, full, nil
}

// pushIfOpen pushes checkpoint seq if it is still the open one (several
// committers may find it full).
func (s *Session) pushIfOpen(seq uint64) error {
	s.mu.Lock()
	open := s.ctx.seq == seq
	s.mu.Unlock()
	if !open {
		return nil
	}
	return s.pushSeq(seq)
}

// mergeLocked adds t's buffers and items to ctx: each buffer's dirty
// chunks and inodes join its item (created at its first change since it
// was last written in place) and are copied into its shadow; a cancel
// replaces everything logged of it.
func (s *Session) mergeLocked(t *Transaction, ctx *cilCtx) {
	for daddr, tb := range t.bufs {
		if !tb.cancel && !tb.anyDirty {
			continue
		}
		b := tb.b
		it := s.items[daddr]
		if it == nil {
			it = &bufItem{daddr: daddr}
			it.blf = ondisk.BufLogFormat{Type: ondisk.LIBuf, Len: uint16(b.Len), Blkno: b.Daddr, MapSize: tb.blf.MapSize}
			it.blf.DataMap = make([]uint32, it.blf.MapSize)
			s.items[daddr] = it
		}
		it.b = b
		it.gen++
		if tb.cancel {
			it.cancel = true
			clear(it.blf.DataMap)
			it.inodes, it.shadow = nil, nil
		} else {
			if it.cancel || it.shadow == nil {
				// First change since written, or a cancelled block
				// reused: what was logged of its old life is dropped.
				clear(it.blf.DataMap)
				it.inodes = nil
				it.shadow = append(it.shadow[:0], b.Data...)
			} else {
				for _, r := range tb.blf.Runs() {
					lo := r.First * ondisk.BlfChunk
					hi := min((r.First+r.N)*ondisk.BlfChunk, len(b.Data))
					copy(it.shadow[lo:hi], b.Data[lo:hi])
				}
			}
			it.cancel = false
			for i, w := range tb.blf.DataMap {
				it.blf.DataMap[i] |= w
			}
			for _, off := range tb.inodes {
				if !slices.Contains(it.inodes, off) {
					it.inodes = append(it.inodes, off)
				}
			}
			it.kind = b.Kind
			b.MarkDirty()
		}
		old := int64(0)
		if it.ctxSeq == ctx.seq {
			old = it.size
		} else {
			it.ctxSeq = ctx.seq
			it.pins++
			ctx.items = append(ctx.items, it)
		}
		it.size = itemSize(&it.blf, it.cancel, len(b.Data))
		ctx.size += it.size - old
	}
	for _, o := range t.others {
		ctx.others = append(ctx.others, o)
		ctx.size += int64(ondisk.LogOpHeaderSize + len(o))
	}
	ctx.commits++
}

// txOp is one op of a checkpoint's stream before it is cut into records.
type txOp struct {
	flags uint8
	data  []byte
}

// formatLocked builds ctx's op stream (xlog_cil_build_trans_hdr,
// xfs_buf_item_format): copies of the logged regions, taken now, with the
// LSN fields of v5 blocks and the di_lsn (and CRC) of logged inodes set to
// start, the checkpoint's LSN.
func (s *Session) formatLocked(ctx *cilCtx, tid uint32, start ondisk.LSN) []txOp {
	items := slices.Clone(ctx.items)
	slices.SortFunc(items, func(a, b *bufItem) int { return cmp.Compare(a.daddr, b.daddr) })
	isz := int(s.fg.InodeSize)
	var ops []txOp
	nregions := 0
	for _, it := range items {
		if it.cancel {
			continue
		}
		runs := it.blf.Runs()
		f := it.blf
		f.Size = uint16(1 + len(runs))
		f.Flags = 0
		if it.kind != nil {
			f.SetBlft(it.kind.Blft)
		}
		fb := make([]byte, f.EncodedSize())
		f.Encode(fb)
		ops = append(ops, txOp{data: fb})
		img := slices.Clone(it.shadow)
		if it.kind != nil && it.kind.LSNOff >= 0 {
			ondisk.PutLSN(img[it.kind.LSNOff:], start)
		}
		for _, off := range it.inodes {
			ondisk.SetDinodeLSN(img[off:off+isz], uint64(start))
		}
		for _, r := range runs {
			lo := r.First * ondisk.BlfChunk
			hi := min((r.First+r.N)*ondisk.BlfChunk, len(img))
			ops = append(ops, txOp{data: img[lo:hi]})
		}
		nregions += 1 + len(runs)
	}
	for _, it := range items {
		if !it.cancel {
			continue
		}
		// xfs_trans_binval + the stale path of
		// xfs_buf_item_format_segment: CANCEL only, no type, map zeros.
		f := ondisk.BufLogFormat{Type: ondisk.LIBuf, Size: 1, Flags: ondisk.BlfCancel, Len: it.blf.Len,
			Blkno: it.daddr, MapSize: it.blf.MapSize}
		fb := make([]byte, f.EncodedSize())
		f.Encode(fb)
		ops = append(ops, txOp{data: fb})
		nregions++
	}
	for _, o := range ctx.others {
		ops = append(ops, txOp{data: o})
		nregions++
	}
	th := make([]byte, ondisk.TransHeaderSize)
	ondisk.TransHeader{Magic: ondisk.TransHeaderMagic, Type: ondisk.TransCheckpoint, Tid: tid, NumItems: uint32(nregions)}.Encode(th)
	out := make([]txOp, 0, len(ops)+3)
	out = append(out, txOp{flags: ondisk.OpStartTrans}, txOp{data: th})
	out = append(out, ops...)
	return append(out, txOp{flags: ondisk.OpCommitTrans})
}

// Force pushes the open checkpoint and waits until it, and every one
// before it, is durable.
func (s *Session) Force() error { return s.push() }

// ForceSeq makes the checkpoint seq (from Commit) durable.
func (s *Session) ForceSeq(seq uint64) error {
	s.mu.Lock()
	open := s.ctx.seq
	s.mu.Unlock()
	if seq >= open {
		return s.push()
	}
	// Pushed already, or being pushed: pushes hold pushMu until durable.
	s.pushMu.Lock()
	s.pushMu.Unlock()
	return s.Err()
}

// push writes the open checkpoint (if it holds anything), syncs it, marks
// its buffers durable at its start LSN and runs its OnCommit functions.
// Commits go on into a new checkpoint meanwhile.
func (s *Session) push() error { return s.pushSeq(0) }

// pushSeq is push, of checkpoint seq only (0: whichever is open): if
// another push got there first, there is nothing to do.
func (s *Session) pushSeq(seq uint64) error {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	s.mu.Lock()
	if s.shutdown != nil {
		err := s.shutdown
		s.mu.Unlock()
		return err
	}
	ctx := s.ctx
	if (seq != 0 && ctx.seq != seq) || (len(ctx.items) == 0 && len(ctx.others) == 0) {
		s.mu.Unlock()
		return nil
	}
	s.ctx = newCilCtx(ctx.seq + 1)
	tail := s.tailLocked()
	start := s.headLSNLocked()
	tid := rand.Uint32() | 1
	ops := s.formatLocked(ctx, tid, start)
	recs := pack(ops, tid, s.w.maxData, false)
	var bbs int64
	for _, r := range recs {
		bbs += s.w.RecordBBs(r.size)
	}
	s.pushing = bbs
	s.mu.Unlock()

	// The records, each at the head; the writer syncs every
	// XLOG_MAX_ICLOGS records, and at the end.
	var err error
	for i, r := range recs {
		if _, err = s.w.WriteRecord(r.data, r.nops, tail); err != nil {
			err = fmt.Errorf("writing record %d of %d of checkpoint %d: %w", i+1, len(recs), ctx.seq, err)
			break
		}
	}
	if err == nil {
		err = s.w.Sync()
	}
	s.mu.Lock()
	s.pushing = 0
	s.head.block, s.head.cycle = s.w.Head()
	if err != nil {
		s.mu.Unlock()
		return s.fail("log write", err)
	}
	s.stats.Checkpoints++
	s.stats.LogBytes += bbs * ondisk.BBSize
	s.oldestValid = false
	for _, it := range ctx.items {
		it.pins--
		if it.ctxSeq == ctx.seq {
			it.ctxSeq = 0
		}
		switch {
		case !it.cancel:
			it.lsn = start
		case it.pins == 0 && it.ctxSeq == 0:
			// A durable cancel: nothing of the block is left to write.
			delete(s.items, it.daddr)
		}
	}
	durable := s.durable
	s.mu.Unlock()
	if durable != nil {
		durable(ctx.seq)
	}
	for _, fn := range ctx.onDurable {
		fn()
	}
	return nil
}

// recordPayload is the data of one record and its op count.
type recordPayload struct {
	data []byte
	nops int
	size int // len(data), also when only counting
}

// pack cuts the op stream into records of at most max bytes of data
// (xlog_write, xlog_write_partial): an op header never straddles records;
// a region that does not fit is split, its first piece flagged CONTINUE and
// the rest continued in the next record under an op header flagged
// WAS_CONT, with END on the last piece. With count set, only lengths are
// computed (data is nil).
func pack(ops []txOp, tid uint32, max int, count bool) []recordPayload {
	var recs []recordPayload
	var cur []byte
	curLen, nops := 0, 0
	flush := func() {
		recs = append(recs, recordPayload{data: cur, nops: nops, size: curLen})
		cur, curLen, nops = nil, 0, 0
	}
	put := func(flags uint8, data []byte) {
		if !count {
			var h [ondisk.LogOpHeaderSize]byte
			ondisk.LogOpHeader{Tid: tid, Len: uint32(len(data)), ClientID: ondisk.LogClientTransaction, Flags: flags}.Encode(h[:])
			cur = append(cur, h[:]...)
			cur = append(cur, data...)
		}
		curLen += ondisk.LogOpHeaderSize + len(data)
		nops++
	}
	const minPiece = 4 // bytes of region worth starting in a record
	for _, o := range ops {
		data := o.data
		cont := false
		for {
			left := max - curLen
			need := ondisk.LogOpHeaderSize + len(data)
			if need <= left {
				f := o.flags
				if cont {
					f |= ondisk.OpWasContTrans | ondisk.OpEndTrans
				}
				put(f, data)
				break
			}
			if left < ondisk.LogOpHeaderSize+minPiece || len(data) == 0 {
				flush()
				continue
			}
			n := (left - ondisk.LogOpHeaderSize) &^ 3
			f := o.flags | ondisk.OpContinueTrans
			if cont {
				f |= ondisk.OpWasContTrans
			}
			put(f, data[:n])
			data = data[n:]
			cont = true
			flush()
		}
	}
	if nops > 0 {
		flush()
	}
	return recs
}

// headLSN is the LSN of the next record (a provisional stamp for blocks
// being committed: their checkpoint starts there or later).
func (s *Session) headLSN() ondisk.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headLSNLocked()
}

// headLSNLocked is the LSN of the next record as of the last push (the
// writer itself moves during a push, outside the lock).
func (s *Session) headLSNLocked() ondisk.LSN {
	return ondisk.MakeLSN(s.head.cycle, uint32(s.head.block))
}

// freeRawLocked is the log space from the head to the tail, in BBs.
func (s *Session) freeRawLocked() int64 {
	return s.w.g.freeAt(s.head.block, s.head.cycle, s.tailLocked())
}
