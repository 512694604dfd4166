package cache

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

const testAGInoLog = 16 // ino = agno<<16 | agino in these tests

// tino is the inode number of a test inode. Test aginos start at 1024:
// number 0 is never an inode (a reclaimed one has number 0).
func tino(agno, agino uint32) uint64 { return uint64(agno)<<testAGInoLog | uint64(agino) }

const a0 = 1024

func TestInodeInsertLookupGrab(t *testing.T) {
	c := NewInodeCache(4, 0)
	ip := NewInode(tino(2, 100), 2, 100, make([]byte, 512))
	got, ins := c.Insert(ip)
	if !ins || got != ip || c.Len() != 1 {
		t.Fatal("Insert")
	}
	if _, ok := c.Lookup(2, 101); ok {
		t.Fatal("Lookup of an absent inode")
	}
	if l, ok := c.Lookup(2, 100); !ok || l != ip || l.Ino() != tino(2, 100) {
		t.Fatal("Lookup")
	}
	// A racing insert gets the cached inode.
	other := NewInode(tino(2, 100), 2, 100, nil)
	if got, ins := c.Insert(other); ins || got != ip {
		t.Fatal("second Insert replaced the first")
	}
	ip.Rele()
	ip.Rele()
	if g, ok := c.Grab(2, 100); !ok || g != ip {
		t.Fatal("Grab")
	}
	ip.Rele()

	// Concurrent inserts of the same aginos: one Inode each wins.
	c = NewInodeCache(1, 0)
	var wg sync.WaitGroup
	winners := make([]atomic.Int32, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := uint32(0); a < 64; a++ {
				got, ins := c.Insert(NewInode(tino(0, a0+a), 0, a0+a, nil))
				if ins {
					winners[a].Add(1)
				}
				got.Rele()
			}
		}()
	}
	wg.Wait()
	for a := range winners {
		if winners[a].Load() != 1 {
			t.Fatalf("agino %d inserted %d times", a, winners[a].Load())
		}
	}
	if c.Len() != 64 || len(c.ClusterInodes(0, a0+32, 8)) != 8 || len(c.AGInodes(0)) != 64 {
		t.Fatalf("len %d", c.Len())
	}
}

func TestInodeReclaim(t *testing.T) {
	c := NewInodeCache(1, 0)
	ips := make([]*Inode, 6)
	for i := range ips {
		ips[i], _ = c.Insert(NewInode(tino(0, a0+uint32(i)), 0, a0+uint32(i), nil))
	}
	// 0: referenced; 1: dirty; 2: ILOCKed; 3: flushing; 4, 5: reclaimable.
	for _, ip := range ips[1:] {
		ip.Rele()
	}
	ips[1].LogFields(1)
	ips[2].ILock(ILockShared)
	if !ips[3].TryFlushLock() || ips[3].TryFlushLock() {
		t.Fatal("flush lock")
	}
	if n := c.Reclaim(0); n != 2 {
		t.Fatalf("reclaimed %d, want 2", n)
	}
	for i, ip := range ips {
		_, cached := c.Lookup(0, a0+uint32(i))
		if cached != (i < 4) {
			t.Fatalf("inode %d cached=%v", i, cached)
		}
		if i >= 4 && (ip.Ino() != 0 || !ip.HasFlags(IReclaim)) {
			t.Fatalf("reclaimed inode %d: ino %d flags %#x", i, ip.Ino(), ip.FlagsLocked())
		}
	}
	if _, ok := c.Grab(0, a0+4); ok {
		t.Fatal("Grab of a reclaimed inode")
	}
	// Once clean, unlocked, unflushed and unreferenced, they go too.
	ips[0].Rele()
	ips[1].MoveDirtyToLastFlushed()
	if !ips[1].TryFlushLock() {
		t.Fatal("flush lock of 1")
	}
	ips[1].FlushDone()
	ips[2].IUnlock(ILockShared)
	ips[3].FlushUnlock()
	if n := c.Reclaim(0); n != 4 || c.Len() != 0 {
		t.Fatalf("reclaimed %d, left %d", n, c.Len())
	}
	// The count bound reclaims on Insert.
	c = NewInodeCache(2, 100)
	for i := uint32(0); i < 1000; i++ {
		ip, _ := c.Insert(NewInode(tino(i%2, a0+i), i%2, a0+i, nil))
		ip.Rele()
	}
	if c.Len() > 100 || c.Stats().Reclaims < 900 {
		t.Fatalf("bound not kept: %+v", c.Stats())
	}
}

// markClusterStale is the inode half of the stale-marking cluster free
// (DESIGN.md) for one cluster buffer bp, held by the caller, written with
// the cache's primitives only: icluster/ owns the real one. freeIP is the
// inode being freed, whose ILOCK the caller holds.
func markClusterStale(c *InodeCache, bp *Buf, agno, first, n uint32, freeIP *Inode) {
	for agino := first; agino < first+n; agino++ {
		for {
			ip, ok := c.Lookup(agno, agino)
			if !ok {
				break
			}
			ip.LockFlags()
			if ip.InoLocked() != tino(agno, agino) || ip.FlagsLocked()&IStale != 0 {
				ip.UnlockFlags() // reclaimed, or already stale
				break
			}
			if ip != freeIP && !ip.ITryLock(ILockExcl) {
				ip.UnlockFlags()
				runtime.Gosched()
				continue // retry: lock order forbids waiting here
			}
			ip.SetFlagsLocked(IStale)
			switch {
			case !ip.TryFlushLockLocked():
				// Already flushed to bp by writeback: STALE was all it needed.
				ip.UnlockFlags()
			case ip.DirtyFieldsLocked() == 0:
				ip.ClearFlagsLocked(IFlushing)
				ip.UnlockFlags()
			default:
				ip.MoveDirtyToLastFlushedLocked()
				ip.UnlockFlags()
				bp.Attach(ip) // the commit aborts its flush
			}
			if ip != freeIP {
				ip.IUnlock(ILockExcl)
			}
			break
		}
	}
	bp.MarkStale()
}

// The cluster free runs against writeback (which flushes inodes to their
// cluster buffer and writes it later), reclaim and inode users; afterwards
// no inode of a freed cluster is left dirty or flushing, none was written
// after it went STALE, and every one that was cached is STALE or reclaimed.
func TestClusterFreePrimitivesRace(t *testing.T) {
	f := newFixture(t, CacheOptions{})
	const clusters, per = 16, 32
	for round := 0; round < 20; round++ {
		ic := NewInodeCache(1, 0)
		base := int64(170000)
		cdaddr := func(k int) int64 { return base + int64(16*k) }
		var written atomic.Int64 // inodes written while STALE: must stay 0
		for a := uint32(a0); a < a0+clusters*per; a++ {
			ip, _ := ic.Insert(NewInode(tino(0, a), 0, a, nil))
			if a%3 == 0 {
				ip.LogFields(1)
			}
			ip.Rele()
		}
		var wg sync.WaitGroup
		// Writeback: flush a cluster's dirty inodes to its buffer, release
		// it, then submit: write it, or abort the flushes if it went stale.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < clusters; k++ {
				bp, err := f.c.GetNoRead(cdaddr(k), 16, plain)
				if err != nil {
					t.Error(err)
					return
				}
				for _, ip := range ic.ClusterInodes(0, a0+uint32(k*per), per) {
					if ip.HasFlags(IReclaim | IFlushing) {
						continue
					}
					if !ip.ITryLock(ILockShared) {
						continue
					}
					if ip.TryFlushLock() {
						if ip.IsStale() || ip.DirtyFields() == 0 {
							ip.FlushUnlock()
						} else {
							ip.MoveDirtyToLastFlushed()
							bp.Attach(ip)
						}
					}
					ip.IUnlock(ILockShared)
				}
				bp.Release()
				runtime.Gosched()
				bp.Lock() // submission
				stale := bp.IsStale()
				for _, it := range bp.DetachItems() {
					ip := it.(*Inode)
					if stale {
						ip.FlushAbort()
						continue
					}
					if ip.IsStale() {
						written.Add(1)
					}
					ip.FlushDone()
				}
				if !stale {
					bp.MarkDirty()
					if err := f.c.WriteBack(bp, 1); err != nil {
						t.Error(err)
					}
				}
				bp.Release()
			}
		}()
		// Reclaim.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				ic.Reclaim(0)
				runtime.Gosched()
			}
		}()
		// Users: hold an inode's ILOCK for a moment, dirty it.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := uint32(a0); a < a0+clusters*per; a += 5 {
				ip, ok := ic.Grab(0, a)
				if !ok {
					continue
				}
				ip.ILock(ILockExcl)
				if !ip.IsStale() {
					ip.LogFields(2)
				}
				runtime.Gosched()
				ip.IUnlock(ILockExcl)
				ip.Rele()
			}
		}()
		// The cluster free of every cluster, freeing its first inode.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < clusters; k++ {
				free, ok := ic.Grab(0, a0+uint32(k*per))
				if ok {
					free.ILock(ILockExcl)
				}
				bp, err := f.c.GetNoRead(cdaddr(k), 16, plain)
				if err != nil {
					t.Error(err)
					return
				}
				markClusterStale(ic, bp, 0, a0+uint32(k*per), per, free)
				// Commit: abort the flushes of the inodes attached here.
				for _, it := range bp.Items() {
					if ip := it.(*Inode); ip.LastFlushedFields() != 0 && ip.IsStale() {
						bp.DetachItem(it)
						ip.FlushAbort()
					}
				}
				if bp.IsDirty() {
					t.Error("stale buffer dirty")
				}
				bp.Release()
				if ok {
					free.IUnlock(ILockExcl)
					free.Rele()
				}
			}
		}()
		wg.Wait()
		if written.Load() != 0 {
			t.Fatalf("round %d: %d STALE inodes written", round, written.Load())
		}
		for a := uint32(a0); a < a0+clusters*per; a++ {
			ip, ok := ic.Lookup(0, a)
			if !ok {
				continue
			}
			ip.LockFlags()
			st, fl, dirty, ino := ip.FlagsLocked()&IStale != 0, ip.FlagsLocked()&IFlushing != 0, ip.DirtyFieldsLocked()|ip.lastFlushed, ip.InoLocked()
			ip.UnlockFlags()
			if ino != 0 && !st {
				t.Fatalf("round %d: inode %d of a freed cluster is not STALE", round, a)
			}
			if fl || (st && dirty != 0) {
				t.Fatalf("round %d: inode %d flushing %v dirty %#x", round, a, fl, dirty)
			}
		}
		if n := f.c.Stats().Dirty; n != 0 {
			t.Fatalf("%d dirty buffers left", n)
		}
	}
}
