package icluster_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

// testTx is a transaction reduced to what the cluster free uses: buffers
// got without reading and held locked until commit, and cancels. Commit
// releases them, as the journal's commit does after the log write. The
// rest of icluster.FreeTx is never called by FreeClusters (the embedded
// nil interface would panic).
type testTx struct {
	icluster.FreeTx
	c     *cache.Cache
	bufs  []*cache.Buf
	stale []*cache.Buf
}

// OnCancel forgets the undo: a testTx always commits.
func (tx *testTx) OnCancel(func()) {}

func (tx *testTx) GetBuf(daddr int64, nBB int, kind *ondisk.BlockKind) (*cache.Buf, error) {
	b, err := tx.c.GetNoRead(daddr, nBB, kind)
	if err == nil {
		tx.bufs = append(tx.bufs, b)
	}
	return b, err
}

func (tx *testTx) Binval(b *cache.Buf) { b.MarkStale(); tx.stale = append(tx.stale, b) }

func (tx *testTx) commit() {
	for _, b := range tx.stale {
		cache.AbortStaleFlushes(b)
	}
	for _, b := range tx.bufs {
		b.Release()
	}
}

// The stale-marking cluster free runs against a background writeback that
// flushes dirty inodes into their cluster buffers and writes them, against
// reclaim, and against users dirtying live inodes, on a device that records
// every write. No cluster is written after its free committed, and no
// update to an inode of a cluster that was not freed is lost.
func TestClusterFreeRace(t *testing.T) {
	testimg.Need(t, "zstd")
	img := testimg.Path(t, "default")
	fs, err := xfs.Open(img, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	g := fs.G
	// The clusters under test: every allocated cluster of every chunk.
	// Even-numbered ones are freed, odd ones stay live.
	type clu struct {
		ondisk.Cluster
		agno  uint32
		rec   ondisk.InobtRec
		freed atomic.Bool
	}
	var cls []*clu
	for agno := uint32(0); agno < g.AGCount; agno++ {
		a, err := agi.Read(fs.Cache, g, agno)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := inobt.Records(inobt.Tree(fs.Cache, g, a, false))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			for _, c := range g.ChunkClusters(agno, r.StartIno, r.AllocMask()) {
				if c.Allocated {
					cls = append(cls, &clu{Cluster: c, agno: agno, rec: r})
				}
			}
		}
	}
	if len(cls) < 4 {
		t.Fatalf("only %d clusters", len(cls))
	}
	byDaddr := map[int64]*clu{}
	for _, c := range cls {
		byDaddr[c.Daddr] = c
	}
	var badWrites atomic.Int64
	fs.Dev.SetWriteHook(func(daddr int64, b []byte) (bool, error) {
		if c := byDaddr[daddr]; c != nil && c.freed.Load() {
			badWrites.Add(1)
		}
		return true, nil
	})

	for round := 0; round < 10; round++ {
		ic := cache.NewInodeCache(g.AGCount, 0)
		var lost atomic.Int64 // logged updates to live inodes never flushed
		for _, c := range cls {
			c.freed.Store(false)
			for i := uint32(0); i < g.InodesPerCluster; i++ {
				agino := c.FirstAgino + i
				ip, _ := ic.Insert(cache.NewInode(g.Ino(c.agno, agino), c.agno, agino))
				if agino%3 == 0 {
					ip.LogFields(1)
				}
				ip.Rele()
			}
		}
		var wg sync.WaitGroup
		// Writeback: flush dirty inodes into their cluster buffer, then
		// submit the buffer: write it if it carries flushed inodes, or
		// abort their flushes if it went stale meanwhile.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pass := 0; pass < 3; pass++ {
				for _, c := range cls {
					bp, err := fs.Cache.Get(c.Daddr, c.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: c.agno})
					if err != nil {
						t.Error(err)
						return
					}
					for _, ip := range ic.ClusterInodes(c.agno, c.FirstAgino, g.InodesPerCluster) {
						if !ip.ITryLock(cache.ILockShared) {
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
						ip.IUnlock(cache.ILockShared)
					}
					bp.Release()
					runtime.Gosched()
					bp.Lock()
					stale := bp.IsStale()
					items := bp.DetachItems()
					for _, it := range items {
						ip := it.(*cache.Inode)
						if stale {
							ip.FlushAbort()
						} else {
							ip.FlushDone()
						}
					}
					if !stale && len(items) > 0 {
						bp.MarkDirty()
						if err := fs.Cache.WriteBack(bp, 0); err != nil {
							t.Error(err)
						}
					}
					bp.Release()
				}
			}
		}()
		// Reclaim.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 30; i++ {
				ic.Reclaim(0)
				runtime.Gosched()
			}
		}()
		// Users dirty inodes of every cluster.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range cls {
				for i := uint32(0); i < g.InodesPerCluster; i += 7 {
					ip, ok := ic.Grab(c.agno, c.FirstAgino+i)
					if !ok {
						continue
					}
					ip.ILock(cache.ILockExcl)
					if !ip.IsStale() {
						ip.LogFields(2)
					}
					ip.IUnlock(cache.ILockExcl)
					ip.Rele()
				}
			}
		}()
		// The cluster free of every even cluster, freeing its first inode.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < len(cls); k += 2 {
				c := cls[k]
				free, ok := ic.Grab(c.agno, c.FirstAgino)
				if ok {
					free.ILock(cache.ILockExcl)
				}
				tx := &testTx{c: fs.Cache}
				// Free just this cluster: a mask with only its inodes.
				mask := uint64(1)<<g.InodesPerCluster - 1
				if g.InodesPerCluster >= 64 {
					mask = ^uint64(0)
				}
				alloc := mask << (c.FirstAgino - c.rec.StartIno)
				if err := icluster.FreeClusters(tx, ic, g, c.agno, c.rec.StartIno, alloc, func(ip *cache.Inode) bool { return ok && ip == free }); err != nil {
					t.Error(err)
				}
				c.freed.Store(true) // committed: from here on no write may reach it
				tx.commit()
				if ok {
					free.IUnlock(cache.ILockExcl)
					free.Rele()
				}
			}
		}()
		wg.Wait()
		for k, c := range cls {
			for i := uint32(0); i < g.InodesPerCluster; i++ {
				ip, ok := ic.Lookup(c.agno, c.FirstAgino+i)
				if !ok {
					continue
				}
				if k%2 == 0 && !ip.IsStale() && !ip.HasFlags(cache.IReclaim) {
					t.Fatalf("round %d: inode %d of a freed cluster is not STALE", round, c.FirstAgino+i)
				}
				if ip.IsFlushing() {
					t.Fatalf("round %d: inode %d left flushing", round, c.FirstAgino+i)
				}
				if k%2 == 1 && ip.LastFlushedFields() != 0 {
					lost.Add(1)
				}
			}
		}
		if n := badWrites.Load(); n != 0 {
			t.Fatalf("round %d: %d writes reached freed clusters", round, n)
		}
		if n := lost.Load(); n != 0 {
			t.Fatalf("round %d: %d live inodes lost a flush", round, n)
		}
	}
}
