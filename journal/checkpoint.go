package journal

// Checkpoint: committed buffers written in place, then the tail moved past
// the commits they belonged to (the kernel's AIL push and xlog_assign_tail_lsn).

import (
	"fmt"

	"github.com/xfsfree/xfsfree/cache"
)

// Checkpoint writes every dirty, non-stale buffer of the cache in place
// (cache.WriteBackList: each stamped with its own LSN, adjacent ones
// coalesced), syncs the device, and then moves the tail past every commit
// made before it started: the next record's h_tail_lsn is the first commit
// still outstanding, or that record itself. STALE buffers are never
// written.
//
// Buffers held by open transactions are waited for, one at a time and
// holding no other buffer, so the caller must not hold an open
// transaction itself.
func (s *Session) Checkpoint() error {
	s.ckmu.Lock()
	defer s.ckmu.Unlock()
	s.mu.Lock()
	if s.shutdown != nil {
		s.mu.Unlock()
		return s.shutdown
	}
	n := len(s.pending)
	s.mu.Unlock()

	// Pass 1: every buffer we can lock now, written in coalesced runs.
	var held, busy []*cache.Buf
	var flushes []*inodeFlush
	for _, b := range s.c.DirtyBuffers() {
		if !b.TryLock() {
			busy = append(busy, b)
			continue
		}
		if !b.IsDirty() || b.IsStale() {
			b.Release()
			continue
		}
		held = append(held, b)
		flushes = append(flushes, startFlush(b))
	}
	err := s.c.WriteBackList(held)
	for i, b := range held {
		flushes[i].end(b, !b.IsDirty())
		b.Release()
	}
	if err != nil {
		return s.fail(err)
	}
	// Pass 2: buffers an open transaction held, one at a time.
	for _, b := range busy {
		b.Lock()
		if b.IsDirty() && !b.IsStale() {
			f := startFlush(b)
			err = s.c.WriteBack(b, 0)
			f.end(b, err == nil)
		}
		b.Release()
		if err != nil {
			return s.fail(err)
		}
	}
	if err := s.c.Device().Sync(); err != nil {
		return s.fail(err)
	}
	s.mu.Lock()
	s.pending = s.pending[n:]
	s.mu.Unlock()
	return nil
}

// inodeFlush is the flush of the inodes attached to one cluster buffer
// (xfs_iflush_cluster): their changes are in the buffer already (a
// transaction logs an inode's image in its cluster buffer), so flushing
// one is taking its flush lock and moving its dirty fields to the
// last-flushed ones; the write's completion ends the flush (FlushDone,
// xfs_iflush_done) and detaches it.
type inodeFlush struct {
	flushed []*cache.Inode
	missed  bool // an inode could not be flushed now
}

// startFlush starts the flushes of b's attached inodes; the caller holds
// b. Lock order: buffer → ILOCK → flush lock, the ILOCK only tried (shared)
// as the kernel does under the buffer lock: a transaction holding the
// ILOCK may be waiting for b. A STALE inode (its cluster freed, which
// cannot be while b is not STALE) is never flushed: its flush is aborted.
func startFlush(b *cache.Buf) *inodeFlush {
	f := &inodeFlush{}
	for _, it := range b.Items() {
		ip, ok := it.(*cache.Inode)
		if !ok {
			continue
		}
		if ip.IsStale() {
			b.DetachItem(ip)
			ip.FlushAbort()
			continue
		}
		if !ip.ITryLock(cache.ILockShared) {
			f.missed = true
			continue
		}
		if !ip.TryFlushLock() {
			ip.IUnlock(cache.ILockShared)
			f.missed = true
			continue
		}
		ip.MoveDirtyToLastFlushed()
		ip.IUnlock(cache.ILockShared)
		f.flushed = append(f.flushed, ip)
	}
	return f
}

// end completes the flushes once b was written (or not); the caller still
// holds b. A buffer carrying an inode that could not be flushed stays
// dirty, so a later checkpoint writes it again and flushes that inode (its
// changes are on disk already; only its state waits).
func (f *inodeFlush) end(b *cache.Buf, written bool) {
	for _, ip := range f.flushed {
		if written {
			b.DetachItem(ip)
			ip.FlushDone()
		} else {
			ip.FlushFailed()
		}
	}
	if written && f.missed {
		b.MarkDirty()
	}
}

// Err returns the error that stopped the session (a failed log or
// in-place write, or Close), or nil while it can commit.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// fail records a failed in-place write: the log still holds the
// transactions, so nothing is lost, but the session stops.
func (s *Session) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown == nil {
		s.shutdown = fmt.Errorf("%w: checkpoint: %v", ErrShutdown, err)
	}
	return err
}

// Close checkpoints and writes the unmount record: the log is clean. The
// caller must have no transaction open. The session cannot be used after.
func (s *Session) Close() error {
	if err := s.Checkpoint(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown != nil {
		return s.shutdown
	}
	if err := s.w.WriteUnmount(); err != nil {
		s.shutdown = fmt.Errorf("%w: unmount record: %v", ErrShutdown, err)
		return err
	}
	s.shutdown = fmt.Errorf("journal: session closed")
	return nil
}
