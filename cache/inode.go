package cache

// The inode cache: in-core inodes per AG by agino, as the kernel's per-AG
// inode radix trees (pag_ici_root).
//
// Each Inode has three locks, taken in this order (the ILOCK waited for
// only by a holder of no buffer lock, only tried under one: see the lock
// order in device.go):
//   - ILOCK (ILock/ITryLock/IUnlock, shared or exclusive): guards the
//     inode's contents (kept in its cluster buffer: the in-core inode
//     holds only its state);
//   - the flush lock (TryFlushLock/FlushUnlock): the IFlushing flag, set by
//     whoever writes the inode to its cluster buffer, or by the cluster
//     free when it attaches a dirty inode to a cancelled buffer; it is a
//     flag, never waited for, as XFS_IFLUSHING in the kernel;
//   - the flags lock (LockFlags/UnlockFlags): a leaf lock guarding the
//     number, the flags, the dirty and last-flushed fields and the
//     reference count. Nothing blocking is done while holding it; ITryLock
//     may be called under it (the cluster free does, as
//     xfs_ifree_get_one_inode).
//
// Reclaim mirrors xfs_reclaim_inode: it takes an unreferenced, clean
// inode's ILOCK and flush lock without waiting, then under the flags lock
// sets IReclaim and the number to 0 before it removes the inode from the
// cache. So a cluster free that found the inode (Lookup) and then takes
// the flags lock sees either the inode before reclaim (and its ITryLock
// fails while reclaim holds the ILOCK: it retries) or a number that is no
// longer the one it looked for (and skips it).

import (
	"sync"
	"sync/atomic"
)

// Inode flags (xfs_inode.h i_flags).
const (
	IStale    uint32 = 1 << iota // XFS_ISTALE: its cluster was freed; never written
	IReclaim                     // XFS_IRECLAIM: being reclaimed; its number is 0
	IFlushing                    // XFS_IFLUSHING: the flush lock is held
)

// LockMode is the mode of an ILOCK.
type LockMode int

// ILOCK modes.
const (
	ILockShared LockMode = iota // XFS_ILOCK_SHARED
	ILockExcl                   // XFS_ILOCK_EXCL
)

// Inode is an in-core inode: its locks and state; its contents live in
// its cluster buffer. This struct does not represent an on-disk struct.
type Inode struct {
	Agno  uint32 // fixed for the life of the Inode
	Agino uint32 // fixed for the life of the Inode

	ilock sync.RWMutex

	fmu         sync.Mutex // the flags lock; guards the fields below
	ino         uint64     // 0 once reclaimed (i_ino = 0)
	flags       uint32
	dirty       uint32 // fields logged and not yet flushed (ili_fields)
	lastFlushed uint32 // fields being flushed (ili_last_fields)
	ref         int32
}

// NewInode makes an in-core inode. ino must not be 0 (no inode has number
// 0; a reclaimed Inode has).
func NewInode(ino uint64, agno, agino uint32) *Inode {
	return &Inode{Agno: agno, Agino: agino, ino: ino}
}

// --- flags lock ---

// LockFlags takes the flags lock (i_flags_lock).
func (ip *Inode) LockFlags() { ip.fmu.Lock() }

// UnlockFlags releases the flags lock.
func (ip *Inode) UnlockFlags() { ip.fmu.Unlock() }

// InoLocked is the inode number, 0 if reclaimed. Flags lock held.
func (ip *Inode) InoLocked() uint64 { return ip.ino }

// FlagsLocked returns the flags. Flags lock held.
func (ip *Inode) FlagsLocked() uint32 { return ip.flags }

// SetFlagsLocked sets flags f. Flags lock held.
func (ip *Inode) SetFlagsLocked(f uint32) { ip.flags |= f }

// ClearFlagsLocked clears flags f. Flags lock held.
func (ip *Inode) ClearFlagsLocked(f uint32) { ip.flags &^= f }

// TestAndSetFlagsLocked sets f and reports whether any of f was already
// set. Flags lock held.
func (ip *Inode) TestAndSetFlagsLocked(f uint32) bool {
	old := ip.flags&f != 0
	ip.flags |= f
	return old
}

// Ino is the inode number, or 0 if the inode was reclaimed.
func (ip *Inode) Ino() uint64 {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	return ip.ino
}

// HasFlags reports whether any of f is set.
func (ip *Inode) HasFlags(f uint32) bool {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	return ip.flags&f != 0
}

// ClearFlags clears f.
func (ip *Inode) ClearFlags(f uint32) {
	ip.fmu.Lock()
	ip.flags &^= f
	ip.fmu.Unlock()
}

// testAndSetFlags sets f and reports whether any of f was already set.
func (ip *Inode) testAndSetFlags(f uint32) bool {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	return ip.TestAndSetFlagsLocked(f)
}

// IsStale reports whether IStale is set.
func (ip *Inode) IsStale() bool { return ip.HasFlags(IStale) }

// --- ILOCK ---

// ILock takes the ILOCK in mode m.
func (ip *Inode) ILock(m LockMode) {
	if m == ILockExcl {
		ip.ilock.Lock()
	} else {
		ip.ilock.RLock()
	}
}

// ITryLock takes the ILOCK without waiting (xfs_ilock_nowait) and reports
// whether it did. It may be called with the flags lock held.
func (ip *Inode) ITryLock(m LockMode) bool {
	if m == ILockExcl {
		return ip.ilock.TryLock()
	}
	return ip.ilock.TryRLock()
}

// IUnlock releases the ILOCK taken in mode m.
func (ip *Inode) IUnlock(m LockMode) {
	if m == ILockExcl {
		ip.ilock.Unlock()
	} else {
		ip.ilock.RUnlock()
	}
}

// --- flush lock ---

// TryFlushLock takes the flush lock (sets IFlushing) if it is free, and
// reports whether it did. Hold the ILOCK.
func (ip *Inode) TryFlushLock() bool { return !ip.testAndSetFlags(IFlushing) }

// TryFlushLockLocked is TryFlushLock with the flags lock held.
func (ip *Inode) TryFlushLockLocked() bool { return !ip.TestAndSetFlagsLocked(IFlushing) }

// FlushUnlock releases the flush lock.
func (ip *Inode) FlushUnlock() { ip.ClearFlags(IFlushing) }

// IsFlushing reports whether the flush lock is held.
func (ip *Inode) IsFlushing() bool { return ip.HasFlags(IFlushing) }

// --- dirty fields ---

// LogFields marks fields (a mask of the caller's choosing, XFS_ILOG_* in
// practice) as changed and not yet flushed. Hold the ILOCK exclusively.
func (ip *Inode) LogFields(mask uint32) {
	ip.fmu.Lock()
	ip.dirty |= mask
	ip.fmu.Unlock()
}

// DirtyFields returns the fields logged and not yet flushed (ili_fields).
func (ip *Inode) DirtyFields() uint32 {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	return ip.dirty
}

// DirtyFieldsLocked is DirtyFields with the flags lock held.
func (ip *Inode) DirtyFieldsLocked() uint32 { return ip.dirty }

// MoveDirtyToLastFlushedLocked is MoveDirtyToLastFlushed with the flags
// lock held.
func (ip *Inode) MoveDirtyToLastFlushedLocked() uint32 {
	ip.lastFlushed = ip.dirty
	ip.dirty = 0
	return ip.lastFlushed
}

// LastFlushedFields returns the fields of the flush in progress
// (ili_last_fields).
func (ip *Inode) LastFlushedFields() uint32 {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	return ip.lastFlushed
}

// IsClean reports whether nothing is logged or being flushed.
func (ip *Inode) IsClean() bool {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	return ip.dirty == 0 && ip.lastFlushed == 0
}

// MoveDirtyToLastFlushed sets the last-flushed fields to the dirty ones
// and clears the dirty ones, returning them: done when a flush starts, and
// by the cluster free when it attaches a dirty inode to a cancelled buffer
// so the commit aborts the flush. Hold the flush lock.
func (ip *Inode) MoveDirtyToLastFlushed() uint32 {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	return ip.MoveDirtyToLastFlushedLocked()
}

// UndoMoveDirtyLocked undoes MoveDirtyToLastFlushedLocked of a flush that
// never started (a cluster free whose transaction was cancelled): the
// fields being flushed become dirty again and the flush lock is released.
// Hold the flags lock.
func (ip *Inode) UndoMoveDirtyLocked() {
	ip.dirty |= ip.lastFlushed
	ip.lastFlushed = 0
	ip.flags &^= IFlushing
}

// FlushDone ends a flush that was written: clears the last-flushed
// fields and releases the flush lock (xfs_iflush_done).
func (ip *Inode) FlushDone() {
	ip.fmu.Lock()
	ip.lastFlushed = 0
	ip.flags &^= IFlushing
	ip.fmu.Unlock()
}

// FlushAbort ends a flush that will never be written (a STALE inode whose
// buffer was cancelled; xfs_iflush_abort): clears the dirty and
// last-flushed fields and releases the flush lock.
func (ip *Inode) FlushAbort() {
	ip.fmu.Lock()
	ip.dirty, ip.lastFlushed = 0, 0
	ip.flags &^= IFlushing
	ip.fmu.Unlock()
}

// --- references ---

// Rele drops a reference taken by Grab or Insert.
func (ip *Inode) Rele() {
	ip.fmu.Lock()
	ip.ref--
	if ip.ref < 0 {
		ip.fmu.Unlock()
		panic("cache: inode released more often than grabbed")
	}
	ip.fmu.Unlock()
}

// grab takes a reference unless the inode is being reclaimed.
func (ip *Inode) grab() bool {
	ip.fmu.Lock()
	defer ip.fmu.Unlock()
	if ip.flags&IReclaim != 0 || ip.ino == 0 {
		return false
	}
	ip.ref++
	return true
}

// InodeCacheStats are the inode cache's counters.
type InodeCacheStats struct {
	Inodes   int
	Lookups  int64
	Hits     int64
	Inserts  int64
	Reclaims int64
}

type inoAG struct {
	mu sync.RWMutex
	m  map[uint32]*Inode
}

// InodeCache holds in-core inodes per AG by agino. Safe for concurrent
// use.
type InodeCache struct {
	ags       []inoAG
	max       int
	count     atomic.Int64
	reclaimMu sync.Mutex // one automatic reclaimer at a time

	lookups, hits, inserts, reclaims atomic.Int64
}

// NewInodeCache makes an inode cache for agcount AGs holding about
// maxInodes inodes (Insert reclaims clean unreferenced ones past it; 0
// means 1<<20).
func NewInodeCache(agcount uint32, maxInodes int) *InodeCache {
	if maxInodes <= 0 {
		maxInodes = 1 << 20
	}
	c := &InodeCache{ags: make([]inoAG, agcount), max: maxInodes}
	for i := range c.ags {
		c.ags[i].m = map[uint32]*Inode{}
	}
	return c
}

func (c *InodeCache) ag(agno uint32) *inoAG {
	if int(agno) >= len(c.ags) {
		panic("cache: inode cache: AG out of range")
	}
	return &c.ags[agno]
}

// Len is the number of cached inodes.
func (c *InodeCache) Len() int { return int(c.count.Load()) }

// Stats returns the counters.
func (c *InodeCache) Stats() InodeCacheStats {
	return InodeCacheStats{Inodes: c.Len(), Lookups: c.lookups.Load(), Hits: c.hits.Load(),
		Inserts: c.inserts.Load(), Reclaims: c.reclaims.Load()}
}

// Lookup finds a cached inode without taking a reference (the kernel's
// RCU lookup in the cluster free): the caller must take the flags lock
// and check InoLocked and the flags before using it.
func (c *InodeCache) Lookup(agno, agino uint32) (*Inode, bool) {
	a := c.ag(agno)
	c.lookups.Add(1)
	a.mu.RLock()
	ip := a.m[agino]
	a.mu.RUnlock()
	if ip != nil {
		c.hits.Add(1)
	}
	return ip, ip != nil
}

// Grab finds a cached inode and takes a reference (igrab), so reclaim
// leaves it alone until Rele. It fails for an inode being reclaimed.
func (c *InodeCache) Grab(agno, agino uint32) (*Inode, bool) {
	ip, ok := c.Lookup(agno, agino)
	if !ok || !ip.grab() {
		return nil, false
	}
	return ip, true
}

// Insert adds ip (whose number must be set) with a reference for the
// caller. If another inode for the same agino is cached (a racing
// insert), that one is returned instead, referenced, with inserted false.
// Past the count bound Insert reclaims clean, unreferenced inodes.
func (c *InodeCache) Insert(ip *Inode) (got *Inode, inserted bool) {
	a := c.ag(ip.Agno)
	a.mu.Lock()
	if old := a.m[ip.Agino]; old != nil {
		if old.grab() {
			a.mu.Unlock()
			return old, false
		}
		// Being reclaimed: replace it (reclaim removes only its own entry).
		c.count.Add(-1)
	}
	ip.fmu.Lock()
	ip.ref++
	ip.fmu.Unlock()
	a.m[ip.Agino] = ip
	a.mu.Unlock()
	c.count.Add(1)
	c.inserts.Add(1)
	if c.Len() > c.max && c.reclaimMu.TryLock() {
		c.reclaim(c.max - c.max/8)
		c.reclaimMu.Unlock()
	}
	return ip, true
}

// Reclaim reclaims clean, unreferenced, unlocked inodes until at most
// target are cached or none is left to reclaim, and returns how many it
// reclaimed.
func (c *InodeCache) Reclaim(target int) int {
	c.reclaimMu.Lock()
	defer c.reclaimMu.Unlock()
	return c.reclaim(target)
}

func (c *InodeCache) reclaim(target int) int {
	n := 0
	for agno := range c.ags {
		if c.Len() <= target {
			break
		}
		a := &c.ags[agno]
		a.mu.RLock()
		cand := make([]*Inode, 0, len(a.m))
		for _, ip := range a.m {
			cand = append(cand, ip)
		}
		a.mu.RUnlock()
		for _, ip := range cand {
			if c.Len() <= target {
				break
			}
			if c.reclaimOne(a, ip) {
				n++
			}
		}
	}
	return n
}

// reclaimOne is xfs_reclaim_igrab + xfs_reclaim_inode.
func (c *InodeCache) reclaimOne(a *inoAG, ip *Inode) bool {
	ip.fmu.Lock()
	if ip.ref > 0 || ip.flags&(IReclaim|IFlushing) != 0 || ip.dirty != 0 || ip.lastFlushed != 0 || ip.ino == 0 {
		ip.fmu.Unlock()
		return false
	}
	ip.flags |= IReclaim // claims it: no Grab from now on
	ip.fmu.Unlock()

	if !ip.ilock.TryLock() {
		ip.ClearFlags(IReclaim)
		return false
	}
	if !ip.TryFlushLock() {
		ip.ilock.Unlock()
		ip.ClearFlags(IReclaim)
		return false
	}
	ip.fmu.Lock()
	if ip.dirty != 0 || ip.lastFlushed != 0 {
		ip.flags &^= IReclaim | IFlushing
		ip.fmu.Unlock()
		ip.ilock.Unlock()
		return false
	}
	ip.flags = IReclaim
	ip.ino = 0
	ip.fmu.Unlock()
	ip.ilock.Unlock()

	a.mu.Lock()
	removed := a.m[ip.Agino] == ip
	if removed {
		delete(a.m, ip.Agino)
	}
	a.mu.Unlock()
	if removed {
		c.count.Add(-1)
	}
	c.reclaims.Add(1)
	return true
}

// ClusterInodes returns the cached inodes of aginos [first, first+n) in
// agino order, without references (as Lookup): the cluster free's view of
// one cluster buffer's inodes.
func (c *InodeCache) ClusterInodes(agno, first, n uint32) []*Inode {
	a := c.ag(agno)
	var out []*Inode
	a.mu.RLock()
	for i := uint32(0); i < n; i++ {
		if ip := a.m[first+i]; ip != nil {
			out = append(out, ip)
		}
	}
	a.mu.RUnlock()
	return out
}

// AGInodes returns the cached inodes of AG agno, unordered, without
// references.
func (c *InodeCache) AGInodes(agno uint32) []*Inode {
	a := c.ag(agno)
	a.mu.RLock()
	out := make([]*Inode, 0, len(a.m))
	for _, ip := range a.m {
		out = append(out, ip)
	}
	a.mu.RUnlock()
	return out
}

// FlushFailed ends a flush whose write failed: the fields being flushed
// are dirty again and the flush lock is released.
func (ip *Inode) FlushFailed() {
	ip.fmu.Lock()
	ip.dirty |= ip.lastFlushed
	ip.lastFlushed = 0
	ip.flags &^= IFlushing
	ip.fmu.Unlock()
}

// AbortStaleFlushes ends the flushes of the STALE inodes attached to a
// cancelled buffer (xfs_iflush_abort via the buffer's completion): their
// changes are discarded, they are detached and never written. The journal
// calls it, holding bp, when the transaction that cancelled bp commits.
func AbortStaleFlushes(bp *Buf) {
	for _, it := range bp.Items() {
		if ip, ok := it.(*Inode); ok && ip.IsStale() {
			bp.DetachItem(it)
			ip.FlushAbort()
		}
	}
}
