package journal

// The writing session: one per open filesystem. It owns the record writer,
// the buffers with changes not yet written in place (the kernel's buffer
// log items: bufItem), the open checkpoint that commits go into (the CIL:
// cil.go) and the in-place writeback that moves the tail (writeback.go).
//
// Delayed logging, as the kernel's: a commit does no I/O. It copies what
// the transaction changed into the open checkpoint; a push writes the
// checkpoint as one log transaction (every buffer logged once, with the
// union of its changes since it was last written in place; a cancelled
// buffer only as its cancel) and syncs it; only then may its buffers be
// written in place, stamped with its start LSN. Recovery therefore always
// finds the state after a prefix of the commits: a checkpoint is replayed
// whole or not at all, and checkpoints are written in commit order.
//
// Locks: buffer locks (held by open transactions) come before Session.mu,
// which guards the item map, the open checkpoint and the space accounting
// and is never held across I/O or while waiting for a buffer. pushMu
// serializes pushes (held across the log writes; commits go on meanwhile);
// wbMu serializes writebacks.

import (
	"errors"
	"fmt"
	"sync"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Errors of transactions.
var (
	// ErrTransTooBig refuses a commit that does not fit in the log's free
	// space even once the open checkpoint is pushed (the tail waits for
	// buffers to be written in place). Nothing was committed; the
	// transaction is still open: cancel it, Checkpoint, and retry (with a
	// smaller batch).
	ErrTransTooBig = errors.New("journal: transaction does not fit in the free log space")
	// ErrShutdown is returned after a log or in-place write failed: what
	// is on disk is only what the log holds, and recovery must replay it.
	ErrShutdown = errors.New("journal: a log write failed earlier; the log must be recovered")
	// ErrTransDone is returned when a committed or cancelled transaction
	// is used again.
	ErrTransDone = errors.New("journal: transaction already committed or cancelled")
)

// Session is a writing session on a clean log. Safe for concurrent use;
// each transaction is used by one goroutine.
type Session struct {
	c  *cache.Cache
	fg *ondisk.Geometry

	mu sync.Mutex
	w  *Writer // written by push (pushMu held) outside mu
	// head is where the next record goes as of the last push: what
	// commits and the space accounting see.
	head struct {
		block int64
		cycle uint32
	}
	items    map[int64]*bufItem // buffers logged and not yet written in place, by daddr
	ctx      *cilCtx            // the open checkpoint
	pushing  int64              // BBs the checkpoint being pushed will take
	commits  uint64
	shutdown error
	hook     func(usedBBs int64, commits uint64)
	durable  func(seq uint64) // called when a checkpoint is durable
	// oldest is the oldest LSN of an item (0: none), valid while
	// oldestValid: what holds the tail.
	oldest      ondisk.LSN
	oldestValid bool
	// tailFloor, when set, is a tail the session must not move past
	// (the oldest recovered intent not yet finished).
	tailFloor ondisk.LSN

	pushMu sync.Mutex // one push at a time
	wbMu   sync.Mutex // one writeback at a time

	// PushBytes is the open checkpoint's size at which a commit pushes
	// it (0: a quarter of the log, at most 32 MiB). The checkpoint is
	// always pushed before it would outgrow the free log space or half
	// of the log.
	PushBytes int64
	// SyncCommits makes every commit push its checkpoint and wait for it
	// (the kernel's XFS_TRANS_SYNC for every transaction): one log
	// transaction per commit, durable when Commit returns.
	SyncCommits bool

	stats SessionStats
}

// SessionStats count what the session did. This struct does not represent
// an on-disk struct.
type SessionStats struct {
	Commits     uint64 `json:"commits"`
	Checkpoints uint64 `json:"checkpoints"` // pushes written to the log
	LogBytes    int64  `json:"log_bytes"`   // bytes of records written
	Writebacks  uint64 `json:"writebacks"`  // in-place writeback passes
}

// NewSession starts writing transactions through w, joining buffers of c.
// fg gives the inode size (LogInode).
func NewSession(w *Writer, c *cache.Cache, fg *ondisk.Geometry) *Session {
	s := &Session{c: c, fg: fg, w: w, items: map[int64]*bufItem{}}
	s.head.block, s.head.cycle = w.Head()
	s.ctx = newCilCtx(1)
	return s
}

// SetCommitHook makes every commit call fn (outside every lock, after the
// transaction released its buffers and inodes) with the log space in use
// and the number of commits so far: a background writeback wakes on it.
func (s *Session) SetCommitHook(fn func(usedBBs int64, commits uint64)) {
	s.mu.Lock()
	s.hook = fn
	s.mu.Unlock()
}

// SetDurableHook makes every push call fn with the checkpoint's sequence
// number once it is durable, before its OnCommit functions (for tests and
// progress; fn must not block on the session).
func (s *Session) SetDurableHook(fn func(seq uint64)) {
	s.mu.Lock()
	s.durable = fn
	s.mu.Unlock()
}

// Writer returns the session's record writer. Do not write through it
// while the session is in use.
func (s *Session) Writer() *Writer { return s.w }

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// HoldTail keeps the tail at or before lsn until ReleaseTail: records
// written meanwhile carry it (for work that must stay replayable, such as
// recovered intents not yet finished).
func (s *Session) HoldTail(lsn ondisk.LSN) {
	s.mu.Lock()
	s.tailFloor = lsn
	s.mu.Unlock()
}

// ReleaseTail undoes HoldTail.
func (s *Session) ReleaseTail() { s.HoldTail(0) }

// tailLocked is the tail the next record carries: the oldest start LSN of
// a durable checkpoint holding a change not yet written in place, or the
// next record itself.
func (s *Session) tailLocked() ondisk.LSN {
	if !s.oldestValid {
		// Recomputed only when an item's LSN changed (a push completed,
		// a writeback removed items): commits do not change it.
		s.oldest = 0
		for _, it := range s.items {
			if it.lsn != 0 && (s.oldest == 0 || lsnBefore(it.lsn, s.oldest)) {
				s.oldest = it.lsn
			}
		}
		s.oldestValid = true
	}
	tail := s.headLSNLocked()
	if s.oldest != 0 && lsnBefore(s.oldest, tail) {
		tail = s.oldest
	}
	if s.tailFloor != 0 && lsnBefore(s.tailFloor, tail) {
		tail = s.tailFloor
	}
	return tail
}

// lsnBefore reports whether a comes before b.
func lsnBefore(a, b ondisk.LSN) bool {
	if a.Cycle() != b.Cycle() {
		return a.Cycle() < b.Cycle()
	}
	return a.Block() < b.Block()
}

// freeLocked is the log space in BBs a new checkpoint may take now: from
// the head to the tail, less what a push in progress will write and one
// record's worth of slack.
func (s *Session) freeLocked() int64 {
	f := s.freeRawLocked() - s.pushing - s.w.RecordBBs(s.w.maxData)
	return max(f, 0)
}

// Head returns where the next record goes, as of the last push.
func (s *Session) Head() (block int64, cycle uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head.block, s.head.cycle
}

// SetPushBytes sets PushBytes.
func (s *Session) SetPushBytes(n int64) {
	s.mu.Lock()
	s.PushBytes = n
	s.mu.Unlock()
}

// Dirty is the number of buffers logged and not yet written in place.
func (s *Session) Dirty() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Used is the log space between the tail and the head, in BBs.
func (s *Session) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.g.BBs - s.freeRawLocked()
}

// Space is the log space free for records now, in bytes.
func (s *Session) Space() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.freeLocked() * ondisk.BBSize
}

// MaxTransBytes is how many bytes a transaction can log now (compare with
// Transaction.Size): what a checkpoint of it alone may take.
func (s *Session) MaxTransBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bbsToBytes(s.maxCheckpointBBsLocked())
}

// maxCheckpointBBsLocked is the most one checkpoint may take: the free
// space, and never more than half the log (recovery's limit).
func (s *Session) maxCheckpointBBsLocked() int64 {
	return min(s.freeLocked(), s.w.g.BBs/2)
}

// bbsToBytes is how many op-stream bytes records of n BBs carry.
func (s *Session) bbsToBytes(n int64) int64 {
	per := s.w.RecordBBs(s.w.maxData)
	return n / per * int64(s.w.maxData-ondisk.LogOpHeaderSize)
}

// bytesToBBs is the BBs records carrying n bytes of op stream take (an
// upper bound: every op may straddle a record).
func (s *Session) bytesToBBs(n int64) int64 {
	per := int64(s.w.maxData - 2*ondisk.LogOpHeaderSize)
	recs := (n + per - 1) / per
	return recs * s.w.RecordBBs(s.w.maxData)
}

// Begin starts a transaction.
func (s *Session) Begin() *Transaction {
	return &Transaction{s: s, bufs: map[int64]*tbuf{}}
}

// Err returns the error that stopped the session (a failed log or
// in-place write, or Close), or nil while it can commit.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// fail records an error that stops the session: the log still holds
// every durable checkpoint, so nothing durable is lost, but nothing more
// is written.
func (s *Session) fail(what string, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown == nil {
		s.shutdown = fmt.Errorf("%w: %s: %v", ErrShutdown, what, err)
	}
	return err
}

// Close forces the open checkpoint, writes every buffer in place, and
// writes the unmount record: the log is clean. The caller must have no
// transaction open. The session cannot be used after.
func (s *Session) Close() error {
	if err := s.Force(); err != nil {
		return err
	}
	if err := s.writeback(true); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown != nil {
		return s.shutdown
	}
	if n := len(s.items); n > 0 {
		s.shutdown = fmt.Errorf("journal: session closed with %d buffer(s) not written in place", n)
		return s.shutdown
	}
	err := s.w.WriteUnmount()
	s.head.block, s.head.cycle = s.w.Head()
	if err != nil {
		s.shutdown = fmt.Errorf("%w: unmount record: %v", ErrShutdown, err)
		return err
	}
	s.shutdown = fmt.Errorf("journal: session closed")
	return nil
}
