package xfs

// How many AGs a free run works on at once. An AG's plan reads every
// orphan's inode cluster when it walks the unlinked chains, and its frees
// read them again a window at a time: the clusters stay cached between the
// two only if the AGs in flight fit in the cache together. With more AGs
// at once than that (8 workers over AGs of 62,500 orphans each: 256 MiB of
// clusters for a 128 MiB cache), a third of the clusters were read twice
// and the cache's memory churned. So each AG is admitted with a weight, the
// bytes of its allocated inodes (from its AGI: an estimate of its orphans'
// clusters), against a budget of half the cache; an AG heavier than the
// budget runs alone.

import (
	"sync"

	"github.com/xfsfree/xfsfree/agi"
)

// budget is a counting semaphore of bytes.
type budget struct {
	mu    sync.Mutex
	cond  sync.Cond
	total int64
	free  int64
}

func newBudget(total int64) *budget {
	b := &budget{total: total, free: total}
	b.cond.L = &b.mu
	return b
}

// acquire waits until n bytes (at most the whole budget) are free, takes
// them, and returns what it took.
func (b *budget) acquire(n int64) int64 {
	n = max(0, min(n, b.total))
	b.mu.Lock()
	for b.free < n {
		b.cond.Wait()
	}
	b.free -= n
	b.mu.Unlock()
	return n
}

// release returns n bytes taken by acquire.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.free += n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// agWeight is the bytes of AG agno's allocated inodes, or 0 when its AGI
// cannot be read (the worker reports that).
func (fs *FS) agWeight(agno uint32) int64 {
	a, err := agi.Read(fs.Cache, fs.G, agno)
	if err != nil || a.FreeCount > a.Count {
		return 0
	}
	return int64(a.Count-a.FreeCount) * int64(fs.G.InodeSize)
}
