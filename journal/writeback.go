package journal

// Writeback: buffers whose changes are durable in the log written in place
// (the kernel's AIL push), each stamped with the start LSN of the last
// checkpoint that logged it, adjacent ones coalesced; then a sync; only
// then do they stop holding the tail. A buffer in a checkpoint not yet
// durable (pinned) is never written, nor a cancelled (STALE) one.

import (
	"cmp"
	"slices"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Checkpoint makes every commit so far durable (Force) and writes every
// buffer in place; the tail then moves up to the head. Buffers held by
// open transactions are waited for, one at a time and holding no other
// buffer, so the caller must not hold an open transaction itself.
func (s *Session) Checkpoint() error {
	if err := s.Force(); err != nil {
		return err
	}
	return s.writeback(true)
}

// Writeback writes in place the buffers whose changes are durable and that
// no open transaction holds now (it waits for none), and moves the tail
// past them: the writeback under log pressure.
func (s *Session) Writeback() error { return s.writeback(false) }

// claimed is a buffer writeback holds, with what it must stamp.
type claimed struct {
	it    *bufItem
	gen   uint64
	flush *inodeFlush
}

// claim checks, with the buffer's lock held, that it still has durable
// changes to write and none pinned, and stamps it for writing.
func (s *Session) claim(it *bufItem, b *cache.Buf) (claimed, bool) {
	s.mu.Lock()
	ok := s.items[it.daddr] == it && it.b == b && it.pins == 0 && !it.cancel && it.lsn != 0 && b.IsDirty() && !b.IsStale()
	gen, lsn := it.gen, it.lsn
	inodes := slices.Clone(it.inodes)
	s.mu.Unlock()
	if !ok {
		return claimed{}, false
	}
	isz := int(s.fg.InodeSize)
	for _, off := range inodes {
		ondisk.SetDinodeLSN(b.Data[off:off+isz], uint64(lsn))
	}
	b.LSN = uint64(lsn)
	return claimed{it: it, gen: gen, flush: startFlush(b)}, true
}

func (s *Session) writeback(all bool) error {
	s.wbMu.Lock()
	defer s.wbMu.Unlock()
	s.mu.Lock()
	if s.shutdown != nil {
		err := s.shutdown
		s.mu.Unlock()
		return err
	}
	type cand struct {
		it *bufItem
		b  *cache.Buf
	}
	var cands []cand
	for _, it := range s.items {
		if it.lsn != 0 && it.pins == 0 && !it.cancel {
			cands = append(cands, cand{it, it.b})
		}
	}
	s.stats.Writebacks++
	s.mu.Unlock()
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(a.it.daddr, b.it.daddr) })

	// Pass 1: every buffer that can be locked now, in coalesced runs.
	var held []*cache.Buf
	var done []claimed
	var busy []cand
	for _, cd := range cands {
		it, b := cd.it, cd.b
		if !b.TryLock() {
			busy = append(busy, cd)
			continue
		}
		c, ok := s.claim(it, b)
		if !ok {
			b.Release()
			continue
		}
		held = append(held, b)
		done = append(done, c)
	}
	err := s.c.WriteBackList(held)
	for i, b := range held {
		done[i].flush.end(b, !b.IsDirty())
		b.Release()
	}
	if err != nil {
		return s.fail("in-place write", err)
	}
	// Pass 2: buffers an open transaction held, one at a time.
	for _, cd := range busy {
		if !all {
			break
		}
		it, b := cd.it, cd.b
		b.Lock()
		c, ok := s.claim(it, b)
		if ok {
			err = s.c.WriteBack(b, 0)
			c.flush.end(b, err == nil)
			done = append(done, c)
		}
		b.Release()
		if err != nil {
			return s.fail("in-place write", err)
		}
	}
	if len(done) == 0 {
		return nil
	}
	if err := s.c.Device().Sync(); err != nil {
		return s.fail("sync after in-place writes", err)
	}
	// Written and durable: they no longer hold the tail, unless a commit
	// logged them again meanwhile (then their item stays; its older LSN
	// only holds the tail back a little longer).
	s.mu.Lock()
	for _, c := range done {
		if s.items[c.it.daddr] == c.it && c.it.gen == c.gen && c.it.pins == 0 {
			delete(s.items, c.it.daddr)
		}
	}
	s.oldestValid = false
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
