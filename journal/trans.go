package journal

// Transactions: buffers joined from the buffer cache and locked until the
// transaction ends, byte ranges and inodes logged, buffers cancelled,
// opaque log items (intent and done items) added, and a commit that puts
// all of it into the open checkpoint (cil.go) — no I/O — after running the
// write verifiers on what it logs.

import (
	"fmt"
	"slices"
	"sync"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Transaction is one transaction being written (a transaction read back
// from the log is a Trans, in ops.go). It is used by one goroutine.
type Transaction struct {
	s        *Session
	bufs     map[int64]*tbuf // by daddr
	inodes   []*tinode       // joined with IJoin, in join order
	others   [][]byte        // opaque log items (LogItem), in order
	onCommit []func()
	onCancel []func()
	done     bool
	size     int64 // Σ tbuf.size + opaque items: op headers and regions
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
	tb := &tbuf{b: b, orig: getCopy(b.Data), valid: b.Valid()}
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
// cluster buffer changed. Its CRC is recomputed at commit (with di_lsn set
// to the checkpoint's LSN in the logged copy, and to the LSN of the last
// checkpoint that logged it when it is written in place), and the whole
// inode is logged in a buffer item of type DINO (without
// XFS_BLF_INODE_BUF, whose replay would copy only di_next_unlinked).
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
// was cancelled, fields (XFS_ILOG_* bits) are marked dirty (cache.Inode.LogFields) and ip is
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

// OnCommit adds fn to the functions called once the transaction is
// durable in the log (its checkpoint pushed and synced), outside every
// lock: fn must not take buffer or inode locks. A transaction that logs
// nothing calls them at its commit.
func (t *Transaction) OnCommit(fn func()) { t.onCommit = append(t.onCommit, fn) }

// LogItem adds an opaque log item of one region (an intent or a done
// item, encoded by package ondisk: its type in its first two bytes) to
// the transaction; it is logged in the checkpoint, after the buffers.
func (t *Transaction) LogItem(region []byte) {
	if t.done {
		panic("journal: transaction already committed or cancelled")
	}
	r := append([]byte(nil), region...)
	t.others = append(t.others, r)
	t.size += int64(ondisk.LogOpHeaderSize + len(r))
}

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

// Size is the number of bytes the transaction logs so far, as a
// checkpoint of its own: its op headers and regions (compare with
// Session.MaxTransBytes).
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
		putCopy(tb.orig)
	}
	t.bufs = nil
	t.releaseInodes()
}

// copies keeps the memory of the buffer copies transactions take at join
// (for Cancel), by size: a transaction's worth of cluster buffers is
// copied per commit.
var copies sync.Map // int → *sync.Pool of []byte

// getCopy returns a copy of b, in memory from the pool.
func getCopy(b []byte) []byte {
	p, _ := copies.LoadOrStore(len(b), &sync.Pool{})
	c, _ := p.(*sync.Pool).Get().([]byte)
	if c == nil {
		c = make([]byte, len(b))
	}
	copy(c, b)
	return c
}

// putCopy gives a copy back to the pool; nothing may use it afterwards.
func putCopy(c []byte) {
	if p, ok := copies.Load(len(c)); ok {
		p.(*sync.Pool).Put(c)
	}
}

// releaseInodes drops the ILOCKs and references of the joined inodes.
func (t *Transaction) releaseInodes() {
	for _, ti := range t.inodes {
		ti.ip.IUnlock(cache.ILockExcl)
		ti.ip.Rele()
	}
	t.inodes = nil
}

// Commit puts the transaction into the open checkpoint and releases its
// buffers and inodes; it writes nothing itself (unless SyncCommits, or the
// checkpoint must be pushed first to make room). It returns the sequence
// number of the checkpoint the transaction is in: it is durable once
// Force, or a later push, has written that checkpoint. Every logged v5
// block is stamped (LSN field and CRC, which are logged too) and every
// inode logged with LogInode gets a new CRC, and the write verifiers run on
// them: a block or inode that fails them is never logged, and the
// transaction is cancelled. A transaction that logs nothing writes nothing.
//
// ErrTransTooBig leaves the transaction open, nothing committed. Any other
// error cancels it.
func (t *Transaction) Commit() (uint64, error) {
	if t.done {
		return 0, ErrTransDone
	}
	s := t.s
	if err := s.Err(); err != nil {
		t.Cancel()
		return 0, err
	}
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
		t.resize(tb)
	}
	// Stamp with the head LSN for now (the checkpoint's start LSN is at or
	// after it; the block and the logged copy are stamped with that one
	// when it is known) and verify, before anything reaches the log: the
	// kernel's recovery verifies what it replays.
	head := s.headLSN()
	isz := int(s.fg.InodeSize)
	for _, tb := range t.bufs {
		if tb.cancel || !tb.anyDirty {
			continue
		}
		for _, off := range tb.inodes {
			ondisk.SetDinodeLSN(tb.b.Data[off:off+isz], uint64(head))
		}
		if tb.b.Kind != nil {
			tb.b.Kind.Stamp(tb.b.Data, uint64(head))
		}
	}
	if err := t.verify(); err != nil {
		t.Cancel()
		return 0, err
	}
	seq, full, err := s.commit(t)
	if err != nil {
		return 0, err
	}
	t.finish()
	// Pushes happen with no buffer lock held.
	switch {
	case s.SyncCommits:
		err = s.ForceSeq(seq)
	case full:
		err = s.pushIfOpen(seq)
	}
	return seq, err
}

// verify runs the write verifier of every buffer the transaction logs and
// the inode verifier of every inode logged with LogInode.
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

// finish ends a committed transaction (its logged buffers are DIRTY and
// in the checkpoint already) and releases its buffers, then its inodes.
// The inodes logged are marked dirty and attached to their cluster buffers
// (for writeback); a cancelled buffer is marked STALE and the flushes of
// the STALE inodes attached to it are aborted (never written).
func (t *Transaction) finish() {
	t.done = true
	for _, ti := range t.inodes {
		if ti.b == nil {
			continue
		}
		if tb := t.bufs[ti.b.Daddr]; tb == nil || tb.b != ti.b || tb.cancel {
			continue
		}
		ti.ip.LogFields(ti.fields)
		ti.b.AttachOnce(ti.ip)
	}
	for _, tb := range t.bufs {
		if tb.cancel {
			tb.b.MarkStale()
			cache.AbortStaleFlushes(tb.b)
		}
	}
	for _, tb := range t.bufs {
		tb.b.Release()
		putCopy(tb.orig)
	}
	t.bufs = nil
	t.releaseInodes()
}
