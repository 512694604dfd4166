package cache

import (
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
	ip := NewInode(tino(2, 100), 2, 100)
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
	other := NewInode(tino(2, 100), 2, 100)
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
				got, ins := c.Insert(NewInode(tino(0, a0+a), 0, a0+a))
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
		ips[i], _ = c.Insert(NewInode(tino(0, a0+uint32(i)), 0, a0+uint32(i)))
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
		ip, _ := c.Insert(NewInode(tino(i%2, a0+i), i%2, a0+i))
		ip.Rele()
	}
	if c.Len() > 100 || c.Stats().Reclaims < 900 {
		t.Fatalf("bound not kept: %+v", c.Stats())
	}
}
