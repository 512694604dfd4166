package journal

// Transactions: buffers joined from the buffer cache, byte ranges logged,
// buffers cancelled, and a commit that writes the transaction to the log in
// the kernel's checkpoint format (xlog_cil_push_work, xlog_write,
// xfs_buf_item_format) and makes it durable before any of its buffers can
// be written in place.
//
// Locks: a transaction holds the lock of every buffer it joined until it
// commits or cancels. Session.mu (one commit at a time, the writer, the
// list of uncheckpointed commits) is taken after buffer locks and never
// held while waiting for one.

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Errors of transactions.
var (
	// ErrTransTooBig refuses a commit that would take more than half of
	// the free log space. Nothing was written; the transaction is still
	// open: cancel it, or checkpoint and retry with a smaller batch.
	ErrTransTooBig = errors.New("journal: transaction exceeds half the free log space")
	// ErrShutdown is returned after a log write failed: what is on disk
	// is only what the log holds, and recovery must replay it.
	ErrShutdown = errors.New("journal: a log write failed earlier; the log must be recovered")
	// ErrTransDone is returned when a committed or cancelled transaction
	// is used again.
	ErrTransDone = errors.New("journal: transaction already committed or cancelled")
)

// Session is a writing session on a clean log: the record writer, the
// buffer cache whose buffers transactions join, and the commits not yet
// checkpointed (which hold the tail). Safe for concurrent use; each
// transaction is used by one goroutine.
type Session struct {
	c  *cache.Cache
	fg *ondisk.Geometry

	mu       sync.Mutex
	w        *Writer
	pending  []ondisk.LSN // start LSN of every commit not yet checkpointed, in order
	commits  uint64       // commits so far
	shutdown error

	ckmu sync.Mutex // one checkpoint at a time

	// CheckpointAt is the log space in BBs, from tail to head, past which
	// Commit checkpoints by itself after it has released its buffers
	// (0: never). NewSession sets a quarter of the log. A commit hook
	// (SetCommitHook) replaces this.
	CheckpointAt int64

	hook func(usedBBs int64, commits uint64) // under mu
}

// SetCommitHook makes every commit call fn (outside every lock, after the
// transaction released its buffers and inodes) with the log space in use
// and the number of commits so far, instead of checkpointing by itself at
// CheckpointAt: a background writeback wakes on it. nil restores the
// inline checkpoint.
func (s *Session) SetCommitHook(fn func(usedBBs int64, commits uint64)) {
	s.mu.Lock()
	s.hook = fn
	s.mu.Unlock()
}

// NewSession starts writing transactions through w, joining buffers of c.
// fg gives the inode size (LogInode).
func NewSession(w *Writer, c *cache.Cache, fg *ondisk.Geometry) *Session {
	return &Session{c: c, fg: fg, w: w, CheckpointAt: w.g.BBs / 4}
}

// Writer returns the session's record writer (for the unmount record).
// Do not write through it while transactions commit.
func (s *Session) Writer() *Writer { return s.w }

// tailLocked is the tail the next record carries: the first commit not
// yet checkpointed, or the next record itself.
func (s *Session) tailLocked() ondisk.LSN {
	if len(s.pending) > 0 {
		return s.pending[0]
	}
	return s.w.HeadLSN()
}

// Space is the log space free for records now, in bytes: from the head to
// the tail.
func (s *Session) Space() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Free(s.tailLocked()) * ondisk.BBSize
}

// Used is the log space between the tail and the head, in BBs.
func (s *Session) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.g.BBs - s.w.Free(s.tailLocked())
}

// MaxTransBytes is how many bytes a transaction can log now (Trans.Size):
// half the free log space, less record headers and padding.
func (s *Session) MaxTransBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxTransBytesLocked()
}

func (s *Session) maxTransBytesLocked() int64 {
	limit := s.w.Free(s.tailLocked()) / 2
	per := s.w.RecordBBs(s.w.maxData)
	return limit / per * int64(s.w.maxData-ondisk.LogOpHeaderSize)
}

// Begin starts a transaction.
func (s *Session) Begin() *Transaction {
	return &Transaction{s: s, bufs: map[int64]*tbuf{}}
}

// Transaction is one transaction (the recovered kind is Trans, in ops.go). It is used by one goroutine.
type Transaction struct {
	s        *Session
	bufs     map[int64]*tbuf // by daddr
	inodes   []*tinode       // joined with IJoin, in join order
	onCommit []func()
	onCancel []func()
	done     bool
	size     int64 // Σ tbuf.size: the items' op headers and regions
}

// tinode is an inode joined to a transaction (the kernel's
// xfs_inode_log_item): the transaction holds its ILOCK (exclusive) and a
// reference until it ends.
type tinode struct {
	ip     *cache.Inode
	b      *cache.Buf // its cluster buffer, once logged with LogInodeCore
	off    int
	fields uint32
}

// tbuf is a buffer joined to a transaction (xfs_buf_log_item).
type tbuf struct {
	b        *cache.Buf
	orig     []byte // contents at join, restored by Cancel
	valid    bool   // contents were valid at join
	blf      ondisk.BufLogFormat
	inodes   []int // offsets of inodes logged with LogInode
	cancel   bool  // Binval: log a cancel item, mark STALE at commit
	anyDirty bool
	size     int64 // bytes its item adds to the op stream, op headers included
}

// resize recomputes what tb's item adds to the op stream (as ops builds
// it: a format region and one region per run of dirty chunks, or a lone
// cancel format) and keeps the transaction's running total.
func (t *Transaction) resize(tb *tbuf) {
	t.size -= tb.size
	tb.size = 0
	switch {
	case tb.cancel:
		tb.size = int64(ondisk.LogOpHeaderSize + tb.blf.EncodedSize())
	case tb.anyDirty:
		tb.size = int64(ondisk.LogOpHeaderSize + tb.blf.EncodedSize())
		for _, r := range tb.blf.Runs() {
			lo := r.First * ondisk.BlfChunk
			hi := min((r.First+r.N)*ondisk.BlfChunk, len(tb.b.Data))
			tb.size += int64(ondisk.LogOpHeaderSize + hi - lo)
		}
	}
	t.size += tb.size
}

func (t *Transaction) join(b *cache.Buf) *tbuf {
	tb := &tbuf{b: b, orig: append([]byte(nil), b.Data...), valid: b.Valid()}
	n := len(b.Data)
	tb.blf = ondisk.BufLogFormat{Type: ondisk.LIBuf, Len: uint16(b.Len), Blkno: b.Daddr,
		MapSize: uint32(ondisk.BlfMapSize(n))}
	tb.blf.DataMap = make([]uint32, tb.blf.MapSize)
	t.bufs[b.Daddr] = tb
	return tb
}

// joined returns the buffer at daddr if it is joined already. A buffer
// cancelled in this transaction holds a freed block: reading it is an
// error, but getting it (revive) to reuse the block undoes the cancel, as
// the kernel's xfs_trans_dirty_buf clears XFS_BLI_STALE and XFS_BLF_CANCEL
// of a buffer logged again after xfs_trans_binval.
func (t *Transaction) joined(daddr int64, nBB int, revive bool) (*cache.Buf, bool, error) {
	if t.done {
		return nil, false, ErrTransDone
	}
	if tb := t.bufs[daddr]; tb != nil {
		if tb.b.Len != nBB {
			return nil, false, fmt.Errorf("journal: buffer at daddr %d joined with %d BBs, asked for %d", daddr, tb.b.Len, nBB)
		}
		if tb.cancel {
			if !revive {
				return nil, false, fmt.Errorf("journal: buffer at daddr %d (%d BBs) was freed and cancelled in this transaction", daddr, nBB)
			}
			tb.cancel = false
			t.resize(tb)
		}
		return tb.b, true, nil
	}
	return nil, false, nil
}

// ReadBuf reads (or finds in the cache) the buffer of nBB BBs at daddr,
// verified as kind, and joins it to the transaction: it stays locked until
// the transaction commits or cancels. Asking again for a joined buffer
// returns the same one.
func (t *Transaction) ReadBuf(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*cache.Buf, error) {
	if b, ok, err := t.joined(daddr, nBB, false); ok || err != nil {
		return b, err
	}
	b, err := t.s.c.Get(daddr, nBB, kind, ctx)
	if err != nil {
		return nil, err
	}
	t.join(b)
	return b, nil
}

// GetBuf joins the buffer of nBB BBs at daddr without reading it
// (xfs_trans_get_buf): its contents are what is cached, or zeros. A
// buffer cancelled earlier in this transaction is revived: its block is
// being reused.
func (t *Transaction) GetBuf(daddr int64, nBB int, kind *ondisk.BlockKind) (*cache.Buf, error) {
	if b, ok, err := t.joined(daddr, nBB, true); ok || err != nil {
		if ok && kind != nil {
			// A block freed and reused in this transaction (a bnobt
			// block back from the AGFL as a cntbt block): it is of its
			// new kind now, for the verifier and the log item's type.
			b.Kind = kind
		}
		return b, err
	}
	b, err := t.s.c.GetNoRead(daddr, nBB, kind)
	if err != nil {
		return nil, err
	}
	t.join(b)
	return b, nil
}

func (t *Transaction) tb(b *cache.Buf) *tbuf {
	tb := t.bufs[b.Daddr]
	if tb == nil || tb.b != b {
		panic(fmt.Sprintf("journal: buffer at daddr %d is not joined to the transaction", b.Daddr))
	}
	if t.done {
		panic("journal: transaction already committed or cancelled")
	}
	return tb
}

// LogRange records that bytes first..last (inclusive) of a joined buffer
// changed (xfs_trans_log_buf): the 128-byte chunks covering them are
// logged at commit.
func (t *Transaction) LogRange(b *cache.Buf, first, last int) {
	tb := t.tb(b)
	if first < 0 || last < first || last >= len(b.Data) {
		panic(fmt.Sprintf("journal: LogRange %d..%d of a %d-byte buffer", first, last, len(b.Data)))
	}
	tb.blf.MarkDirty(first, last)
	tb.anyDirty = true
	t.resize(tb)
}

// LogInode records that the inode at byte offset off of a joined inode
// cluster buffer changed. At commit its di_lsn is set to the
// transaction's LSN and its CRC recomputed, and the whole inode is logged
// in a buffer item of type DINO (without XFS_BLF_INODE_BUF, whose replay
// would copy only di_next_unlinked).
func (t *Transaction) LogInode(b *cache.Buf, off int) {
	tb := t.tb(b)
	isz := int(t.s.fg.InodeSize)
	if off < 0 || off%isz != 0 || off+isz > len(b.Data) {
		panic(fmt.Sprintf("journal: LogInode at offset %d of a %d-byte buffer (inode size %d)", off, len(b.Data), isz))
	}
	if !slices.Contains(tb.inodes, off) {
		tb.inodes = append(tb.inodes, off)
	}
	tb.blf.MarkDirty(off, off+isz-1)
	tb.anyDirty = true
	t.resize(tb)
}

// IJoin hands the transaction an inode whose ILOCK the caller holds
// exclusively, with a reference (cache.InodeCache Grab or Insert), as
// xfs_trans_ijoin with lock flags: the transaction releases both when it
// commits (after its buffers) or is cancelled. An inode is joined once
// (Holds).
func (t *Transaction) IJoin(ip *cache.Inode) {
	if t.done {
		panic("journal: transaction already committed or cancelled")
	}
	if t.Holds(ip) {
		panic("journal: inode joined twice")
	}
	t.inodes = append(t.inodes, &tinode{ip: ip})
}

// Holds reports whether ip is joined to the transaction (its ILOCK held
// until the transaction ends).
func (t *Transaction) Holds(ip *cache.Inode) bool {
	for _, ti := range t.inodes {
		if ti.ip == ip {
			return true
		}
	}
	return false
}

// LogInodeCore is LogInode for the joined inode ip, whose on-disk image
// is at byte offset off of the joined cluster buffer b: at commit, unless b
// was cancelled, ip's in-core copy (Raw) takes the stamped image, fields
// (XFS_ILOG_* bits) are marked dirty (cache.Inode.LogFields) and ip is
// attached to b, so the checkpoint that writes b ends its flush
// (FlushDone), and a later cancel of b aborts it (cache.AbortStaleFlushes).
func (t *Transaction) LogInodeCore(b *cache.Buf, off int, ip *cache.Inode, fields uint32) {
	var ti *tinode
	for _, x := range t.inodes {
		if x.ip == ip {
			ti = x
		}
	}
	if ti == nil {
		panic("journal: LogInodeCore of an inode not joined to the transaction")
	}
	if ti.b != nil && (ti.b != b || ti.off != off) {
		panic("journal: LogInodeCore of one inode at two places")
	}
	t.LogInode(b, off)
	ti.b, ti.off, ti.fields = b, off, ti.fields|fields
}

// OnCommit adds fn to the functions a successful commit calls once the
// transaction is durable in the log, before it releases the transaction's
// buffers and inodes (nothing else can have changed or written them since
// the commit): fn must not take buffer or inode locks.
func (t *Transaction) OnCommit(fn func()) { t.onCommit = append(t.onCommit, fn) }

// OnCancel adds fn to the functions Cancel calls, in reverse order, before
// it restores and releases the transaction's buffers and inodes: undo of
// in-memory state the transaction changed outside its buffers (the cluster
// free's STALE marks). fn must not take buffer or inode locks.
func (t *Transaction) OnCancel(fn func()) { t.onCancel = append(t.onCancel, fn) }

// Binval cancels a joined buffer (xfs_trans_binval): at commit a buffer
// cancel item is logged (XFS_BLF_CANCEL, no type, an empty bitmap) and the
// buffer is marked STALE: it is never written in place, and recovery
// replays no earlier image of it. Ranges logged before are forgotten.
func (t *Transaction) Binval(b *cache.Buf) {
	tb := t.tb(b)
	tb.cancel = true
	clear(tb.blf.DataMap)
	tb.inodes = nil
	tb.anyDirty = false
	t.resize(tb)
}

// Size is the number of bytes the transaction logs so far: its op headers
// and regions (compare with Session.MaxTransBytes).
func (t *Transaction) Size() int64 {
	if t.size == 0 {
		return 0
	}
	// START, the transaction header's op and region, COMMIT.
	return t.size + 3*ondisk.LogOpHeaderSize + ondisk.TransHeaderSize
}

// Len is the number of buffers joined.
func (t *Transaction) Len() int { return len(t.bufs) }

// Cancel ends an uncommitted transaction: nothing is logged, every joined
// buffer gets back the contents it had when it was joined (a buffer that
// was not valid then is dropped from the cache), and the locks are
// released. Cancelling a committed or cancelled transaction does nothing.
func (t *Transaction) Cancel() {
	if t.done {
		return
	}
	t.done = true
	for i := len(t.onCancel) - 1; i >= 0; i-- {
		t.onCancel[i]()
	}
	t.onCancel = nil
	for _, tb := range t.bufs {
		if tb.valid {
			copy(tb.b.Data, tb.orig)
		} else if !tb.b.IsDirty() {
			tb.b.MarkStale()
		}
		tb.b.Release()
	}
	t.bufs = nil
	t.releaseInodes()
}

// releaseInodes drops the ILOCKs and references of the joined inodes.
func (t *Transaction) releaseInodes() {
	for _, ti := range t.inodes {
		ti.ip.IUnlock(cache.ILockExcl)
		ti.ip.Rele()
	}
	t.inodes = nil
}

// txOp is one op of the transaction's stream before it is cut into records.
type txOp struct {
	flags uint8
	data  []byte
}

// sorted returns the joined buffers in daddr order.
func (t *Transaction) sorted() []*tbuf {
	out := make([]*tbuf, 0, len(t.bufs))
	for _, tb := range t.bufs {
		out = append(out, tb)
	}
	slices.SortFunc(out, func(a, b *tbuf) int { return cmp.Compare(a.b.Daddr, b.b.Daddr) })
	return out
}

// ops builds the op stream of a checkpoint transaction
// (xlog_cil_build_trans_hdr, xfs_buf_item_format): START, the transaction
// header, one buffer item per logged buffer (its format region, then one
// region per run of dirty chunks), one cancel item per cancelled buffer,
// COMMIT. Regions reference the buffers' data: build them after stamping.
func (t *Transaction) ops(tid uint32) []txOp {
	var items []txOp
	nregions := 0
	for _, tb := range t.sorted() {
		if tb.cancel || !tb.anyDirty {
			continue
		}
		runs := tb.blf.Runs()
		f := tb.blf
		f.Size = uint16(1 + len(runs))
		f.Flags = 0
		if tb.b.Kind != nil {
			f.SetBlft(tb.b.Kind.Blft)
		}
		fb := make([]byte, f.EncodedSize())
		f.Encode(fb)
		items = append(items, txOp{data: fb})
		for _, r := range runs {
			lo := r.First * ondisk.BlfChunk
			hi := min((r.First+r.N)*ondisk.BlfChunk, len(tb.b.Data))
			items = append(items, txOp{data: tb.b.Data[lo:hi]})
		}
		nregions += 1 + len(runs)
	}
	for _, tb := range t.sorted() {
		if !tb.cancel {
			continue
		}
		// xfs_trans_binval + the stale path of
		// xfs_buf_item_format_segment: CANCEL only, no type, map zeros.
		f := ondisk.BufLogFormat{Type: ondisk.LIBuf, Size: 1, Flags: ondisk.BlfCancel, Len: uint16(tb.b.Len),
			Blkno: tb.b.Daddr, MapSize: tb.blf.MapSize}
		fb := make([]byte, f.EncodedSize())
		f.Encode(fb)
		items = append(items, txOp{data: fb})
		nregions++
	}
	if len(items) == 0 {
		return nil
	}
	th := make([]byte, ondisk.TransHeaderSize)
	ondisk.TransHeader{Magic: ondisk.TransHeaderMagic, Type: ondisk.TransCheckpoint, Tid: tid, NumItems: uint32(nregions)}.Encode(th)
	out := make([]txOp, 0, len(items)+3)
	out = append(out, txOp{flags: ondisk.OpStartTrans}, txOp{data: th})
	out = append(out, items...)
	return append(out, txOp{flags: ondisk.OpCommitTrans})
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

// Commit writes the transaction to the log and makes it durable, then
// marks its logged buffers DIRTY with the transaction's LSN (written in
// place by the next checkpoint), its cancelled buffers STALE, and releases
// every buffer. The LSN is that of the record holding the START op; every
// logged v5 block is stamped with it (LSN field and CRC, which are logged
// too) and every inode logged with LogInode gets it as di_lsn with a new
// CRC, before the images are logged. A transaction that logs nothing
// writes nothing and returns the current head LSN.
//
// ErrTransTooBig leaves the transaction open, nothing written. Any other
// error cancels the transaction; if records may have reached the log, the
// session is shut down (ErrShutdown from then on).
func (t *Transaction) Commit() (ondisk.LSN, error) {
	if t.done {
		return 0, ErrTransDone
	}
	s := t.s
	// The LSN and CRC fields of v5 blocks change with the stamp: log them.
	for _, tb := range t.bufs {
		if tb.cancel || !tb.anyDirty || tb.b.Kind == nil {
			continue
		}
		k := tb.b.Kind
		if k.LSNOff >= 0 {
			tb.blf.MarkDirty(k.LSNOff, k.LSNOff+7)
		}
		if k.CrcOff >= 0 {
			tb.blf.MarkDirty(k.CrcOff, k.CrcOff+3)
		}
	}
	tid := rand.Uint32() | 1
	ops := t.ops(tid)

	s.mu.Lock()
	if s.shutdown != nil {
		s.mu.Unlock()
		t.Cancel()
		return 0, s.shutdown
	}
	lsn := s.w.HeadLSN()
	if len(ops) == 0 {
		s.mu.Unlock()
		t.finish()
		return lsn, nil
	}
	tail := s.tailLocked()
	sizes := pack(ops, tid, s.w.maxData, true)
	var bbs int64
	for _, r := range sizes {
		bbs += s.w.RecordBBs(r.size)
	}
	if free := s.w.Free(tail); bbs > free/2 {
		s.mu.Unlock()
		return 0, fmt.Errorf("%w: %d BBs of records, %d BBs free", ErrTransTooBig, bbs, free)
	}
	// Stamp: inodes first (they live in DINO buffers without a block LSN).
	isz := int(s.fg.InodeSize)
	for _, tb := range t.bufs {
		if tb.cancel || !tb.anyDirty {
			continue
		}
		for _, off := range tb.inodes {
			ino := tb.b.Data[off : off+isz]
			putBE64(ino[dinodeLSNOff:], uint64(lsn))
			ondisk.DinodeCalcCRC(ino)
		}
		if tb.b.Kind != nil {
			tb.b.Kind.Stamp(tb.b.Data, uint64(lsn))
		}
	}
	// The write verifiers, now, before anything reaches the log: a block
	// or inode that fails them is never logged (recovery would replay it,
	// and the kernel's recovery verifies what it replays).
	if err := t.verify(); err != nil {
		s.mu.Unlock()
		t.Cancel()
		return 0, err
	}
	recs := pack(ops, tid, s.w.maxData, false)
	for i, r := range recs {
		if _, err := s.w.WriteRecord(r.data, r.nops, tail); err != nil {
			if i > 0 || !errors.Is(err, ErrLogFull) {
				s.shutdown = fmt.Errorf("%w: %v", ErrShutdown, err)
			}
			s.mu.Unlock()
			t.Cancel()
			return 0, err
		}
	}
	if err := s.w.Sync(); err != nil {
		s.shutdown = fmt.Errorf("%w: %v", ErrShutdown, err)
		s.mu.Unlock()
		t.Cancel()
		return 0, err
	}
	// Mark the logged buffers DIRTY before the commit joins pending and
	// before mu is released: a Checkpoint that counts this commit as
	// pending must find its buffers in DirtyBuffers (or wait for their
	// locks), or it would move the tail past a commit not yet written in
	// place.
	for _, tb := range t.bufs {
		if !tb.cancel && tb.anyDirty {
			tb.b.LSN = uint64(lsn)
			tb.b.MarkDirty()
		}
	}
	s.pending = append(s.pending, lsn)
	s.commits++
	used := s.w.g.BBs - s.w.Free(s.tailLocked())
	hook, commits := s.hook, s.commits
	s.mu.Unlock()
	t.finish()
	if hook != nil {
		hook(used, commits)
		return lsn, nil
	}
	if s.CheckpointAt > 0 && used > s.CheckpointAt {
		if err := s.Checkpoint(); err != nil {
			return lsn, err
		}
	}
	return lsn, nil
}

// verify runs the write verifier of every buffer the transaction logs and
// the inode verifier of every inode logged with LogInode, stamped as they
// will be logged.
func (t *Transaction) verify() error {
	isz := int(t.s.fg.InodeSize)
	for _, tb := range t.bufs {
		if tb.cancel || !tb.anyDirty {
			continue
		}
		if err := tb.b.VerifyWrite(); err != nil {
			return err
		}
		for _, off := range tb.inodes {
			ino := t.s.fg.InoAt(tb.b.Daddr, off)
			ctx := ondisk.VerifyCtx{G: t.s.fg, AG: t.s.fg.DaddrToAgno(tb.b.Daddr), Daddr: tb.b.Daddr}
			if err := ondisk.VerifyDinode(tb.b.Data[off:off+isz], ino, ctx); err != nil {
				return fmt.Errorf("inode verifier refused a logged inode: %w", err)
			}
		}
	}
	return nil
}

// finish ends a committed transaction (its logged buffers are DIRTY
// already, marked by Commit) and releases its buffers, then its inodes.
// Buffers still held: the inodes logged take their new images and are
// attached to their cluster buffers (for writeback); a cancelled buffer is
// marked STALE and the flushes of the STALE inodes attached to it are
// aborted (never written).
func (t *Transaction) finish() {
	t.done = true
	isz := int(t.s.fg.InodeSize)
	for _, ti := range t.inodes {
		if ti.b == nil {
			continue
		}
		if tb := t.bufs[ti.b.Daddr]; tb == nil || tb.b != ti.b || tb.cancel {
			continue
		}
		ti.ip.Raw = append(ti.ip.Raw[:0], ti.b.Data[ti.off:ti.off+isz]...)
		ti.ip.LogFields(ti.fields)
		if !slices.Contains(ti.b.Items(), any(ti.ip)) {
			ti.b.Attach(ti.ip)
		}
	}
	for _, tb := range t.bufs {
		if tb.cancel {
			tb.b.MarkStale()
			cache.AbortStaleFlushes(tb.b)
		}
	}
	for _, fn := range t.onCommit {
		fn()
	}
	t.onCommit = nil
	for _, tb := range t.bufs {
		tb.b.Release()
	}
	t.bufs = nil
	t.releaseInodes()
}

// dinodeLSNOff is offsetof(struct xfs_dinode, di_lsn).
const dinodeLSNOff = 112

func putBE64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3] = byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32)
	b[4], b[5], b[6], b[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
