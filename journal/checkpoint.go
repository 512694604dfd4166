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
	}
	err := s.c.WriteBackList(held)
	for _, b := range held {
		b.Release()
	}
	if err != nil {
		return s.fail(err)
	}
	// Pass 2: buffers an open transaction held, one at a time.
	for _, b := range busy {
		b.Lock()
		if b.IsDirty() && !b.IsStale() {
			err = s.c.WriteBack(b, 0)
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
