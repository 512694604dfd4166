package xfs

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// liveInode is an allocated, linked inode the test changes during a free.
type liveInode struct {
	agno, agino uint32
	loc         ondisk.InodeLoc
	last        uint64 // the last di_changecount committed
}

// raceFixture is what the race test knows of an orphan image before the
// free: every allocated cluster by chunk, and the linked inodes.
type raceFixture struct {
	clusters map[[2]uint32][]ondisk.Cluster // (agno, startino) -> allocated clusters
	live     []*liveInode
}

func readRaceFixture(t *testing.T, img string) raceFixture {
	t.Helper()
	fs := openRO(t, img)
	defer fs.Close()
	g := fs.G
	rf := raceFixture{clusters: map[[2]uint32][]ondisk.Cluster{}}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		st, err := fs.ScanAG(agno)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st.Inobt {
			for _, c := range g.ChunkClusters(agno, r.StartIno, r.AllocMask()) {
				if c.Allocated {
					rf.clusters[[2]uint32{agno, r.StartIno}] = append(rf.clusters[[2]uint32{agno, r.StartIno}], c)
				}
			}
			for i := uint32(0); i < ondisk.InodesPerChunk; i++ {
				agino := r.StartIno + i
				if r.AllocMask()&(1<<i) == 0 || r.Free&(1<<i) != 0 {
					continue
				}
				loc, err := fs.Locate(agno, st.Inobt, agino)
				if err != nil {
					t.Fatal(err)
				}
				d, err := agi.ReadInode(fs.Cache, g, loc)
				if err != nil {
					t.Fatal(err)
				}
				if d.Mode != 0 && d.Nlink > 0 {
					rf.live = append(rf.live, &liveInode{agno: agno, agino: agino, loc: loc, last: d.ChangeCount})
				}
			}
		}
	}
	return rf
}

// touchInode changes a live inode as a user of the filesystem would, in a
// transaction of its own through the inode cache: grabbed, ILOCKed, joined,
// its di_changecount raised and logged on its cluster buffer.
func touchInode(fs *FS, li *liveInode) error {
	g := fs.G
	ip, ok := fs.Inodes.Grab(li.agno, li.agino)
	if !ok {
		ip, _ = fs.Inodes.Insert(cache.NewInode(g.Ino(li.agno, li.agino), li.agno, li.agino))
	}
	ip.ILock(cache.ILockExcl)
	tx := fs.Begin()
	tx.IJoin(ip)
	b, err := tx.ReadBuf(li.loc.Daddr, li.loc.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: li.agno, Daddr: li.loc.Daddr})
	if err != nil {
		tx.Cancel()
		return err
	}
	raw := b.Data[li.loc.Offset : li.loc.Offset+int(g.InodeSize)]
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		tx.Cancel()
		return err
	}
	d.ChangeCount++
	d.EncodeCRC(raw)
	tx.LogInodeCore(b, li.loc.Offset, ip, 1)
	if _, err := tx.Commit(); err != nil {
		tx.Cancel()
		return err
	}
	li.last = d.ChangeCount
	return nil
}

// TestFreeRaceWritebackReclaim runs the real free engine (per-AG workers
// batching frees, chunks emptying and their clusters freed with the
// stale-marking cluster free) against the background writeback
// (checkpoint after every commit, inode cache bound of a few inodes), an
// extra checkpointer, a reclaimer, and a user changing linked inodes of
// the same chunks in transactions of its own, on a device that records
// every write. No write reaches a freed cluster after its free committed
// (a write of inode images over the chunk's blocks: the blocks may be
// reused as btree blocks), the last change of every linked inode is on
// disk after Finish, no inode is left flushing or dirty, and xfs_repair -n
// passes. Run with -race; several rounds with different worker counts and
// batch sizes.
func TestFreeRaceWritebackReclaim(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	rounds := []struct{ workers, batch, every, maxInodes int }{
		{2, 1, 1, 1}, {4, 3, 1, 4}, {8, 8, 2, 16}, {8, 2, 1, 0},
	}
	if testing.Short() {
		rounds = rounds[:1]
	}
	for i, r := range rounds {
		t.Run(fmt.Sprintf("round%d-w%d-b%d", i, r.workers, r.batch), func(t *testing.T) {
			img := cleanOrphans(t, "orphans")
			rf := readRaceFixture(t, img)
			if len(rf.live) == 0 {
				t.Fatal("no linked inodes in the fixture")
			}
			fs, err := OpenWrite(img, Options{Workers: r.workers})
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			isz := int64(fs.G.InodeSize)

			var mu sync.Mutex
			freed := map[int64]ondisk.Cluster{} // by daddr
			var badWrites []string
			var writes int64
			inRange := func(c ondisk.Cluster, daddr int64, n int) bool {
				return c.Daddr < daddr+int64(n/ondisk.BBSize) && daddr < c.Daddr+int64(c.Len)
			}
			fs.Dev.SetWriteHook(func(daddr int64, b []byte) (bool, error) {
				mu.Lock()
				defer mu.Unlock()
				writes++
				for _, c := range freed {
					if !inRange(c, daddr, len(b)) {
						continue
					}
					// Inode images written over a freed cluster: any slot of
					// the cluster inside the write with the dinode magic.
					for off := c.Daddr * ondisk.BBSize; off < (c.Daddr+int64(c.Len))*ondisk.BBSize; off += isz {
						rel := off - daddr*ondisk.BBSize
						if rel >= 0 && rel+2 <= int64(len(b)) && binary.BigEndian.Uint16(b[rel:]) == ondisk.DinodeMagic {
							badWrites = append(badWrites, fmt.Sprintf("write of %d bytes at daddr %d over the cluster at daddr %d freed earlier", len(b), daddr, c.Daddr))
							break
						}
					}
				}
				return true, nil
			})
			chunkFreed := func(agno, startino uint32) {
				mu.Lock()
				defer mu.Unlock()
				for _, c := range rf.clusters[[2]uint32{agno, startino}] {
					freed[c.Daddr] = c
				}
			}

			stop := make(chan struct{})
			var bg sync.WaitGroup
			var touches, checkpoints, reclaimed atomic.Int64
			var bgErr atomic.Value
			bg.Add(3)
			go func() { // a user changing linked inodes
				defer bg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := touchInode(fs, rf.live[n%len(rf.live)]); err != nil {
						bgErr.Store(err)
						return
					}
					touches.Add(1)
				}
			}()
			go func() { // an extra checkpointer
				defer bg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := fs.Checkpoint(); err != nil {
						bgErr.Store(err)
						return
					}
					checkpoints.Add(1)
					runtime.Gosched()
				}
			}()
			go func() { // a reclaimer
				defer bg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					reclaimed.Add(int64(fs.Inodes.Reclaim(0)))
					runtime.Gosched()
				}
			}()
			stopped := false
			stopBG := func() {
				if !stopped {
					stopped = true
					close(stop)
					bg.Wait()
				}
			}
			defer stopBG()
			rep, err := fs.Free(FreeOptions{Orphans: true, BatchInodes: r.batch, DirtyBuffers: r.every,
				MaxCachedInodes: r.maxInodes, chunkFreed: chunkFreed, workersDone: stopBG})
			if err != nil {
				t.Fatalf("Free: %v", err)
			}
			if e := bgErr.Load(); e != nil {
				t.Fatalf("background: %v", e)
			}
			if rep.Failed() {
				t.Fatalf("refused %v, errors %v", rep.Refused, rep.Errors)
			}
			mu.Lock()
			nfreed := len(freed)
			mu.Unlock()
			t.Logf("%d inodes, %d chunks (%d clusters) freed in %d transactions; %d device writes; writeback: %d passes, %d inodes reclaimed; "+
				"extra checkpoints %d, reclaims %d; %d changes to %d linked inodes",
				rep.InodesFreed, rep.ChunksFreed, nfreed, rep.Transactions, writes, rep.Writeback.Writebacks, rep.Writeback.InodesReclaimed,
				checkpoints.Load(), reclaimed.Load(), touches.Load(), len(rf.live))
			if rep.ChunksFreed == 0 || nfreed == 0 {
				t.Fatal("no chunk freed: the test exercised no cluster free")
			}
			for _, s := range badWrites {
				t.Error(s)
			}
			// In-core state: nothing left flushing or dirty.
			for agno := uint32(0); agno < fs.G.AGCount; agno++ {
				for _, ip := range fs.Inodes.AGInodes(agno) {
					if ip.IsFlushing() || !ip.IsClean() {
						t.Errorf("inode agno %d agino %d left flushing %v, dirty %#x, last flushed %#x",
							agno, ip.Agino, ip.IsFlushing(), ip.DirtyFields(), ip.LastFlushedFields())
					}
				}
			}
			fs.Close()
			// No lost update: every linked inode's last change is on disk.
			ro := openRO(t, img)
			for _, li := range rf.live {
				d, err := agi.ReadInode(ro.Cache, ro.G, li.loc)
				if err != nil {
					t.Fatal(err)
				}
				if d.ChangeCount != li.last {
					t.Errorf("inode %d: di_changecount %d on disk, last committed %d: an update was lost", ro.G.Ino(li.agno, li.agino), d.ChangeCount, li.last)
				}
			}
			ro.Close()
			testimg.Repair(t, img)
		})
	}
}
