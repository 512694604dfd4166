package icluster_test

import (
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

// cancelTx is testTx with the journal's OnCancel: cancel runs the undo
// functions in reverse, then releases the buffers, as
// journal.Transaction.Cancel does.
type cancelTx struct {
	testTx
	undo []func()
}

func (tx *cancelTx) OnCancel(fn func()) { tx.undo = append(tx.undo, fn) }

// Binval marks nothing: the journal marks a cancelled buffer STALE only
// when the transaction commits.
func (tx *cancelTx) Binval(*cache.Buf) {}

func (tx *cancelTx) cancel() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		tx.undo[i]()
	}
	for _, b := range tx.bufs {
		b.Release()
	}
}

// A cluster free whose transaction is cancelled (a corrupt block later in
// it) leaves the cached inodes as they were: not STALE, a dirty inode
// still dirty and off the buffer, an inode that writeback is flushing
// still flushing, a clean one clean.
func TestClusterFreeCancelled(t *testing.T) {
	testimg.Need(t, "zstd")
	img := testimg.Path(t, "default")
	fs, err := xfs.Open(img, xfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	g := fs.G
	a, err := agi.Read(fs.Cache, g, 0)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := inobt.Records(inobt.Tree(fs.Cache, g, a, false))
	if err != nil || len(recs) == 0 {
		t.Fatal(err, len(recs))
	}
	r := recs[0]
	ic := cache.NewInodeCache(g.AGCount, 0)
	mk := func(i uint32) *cache.Inode {
		ip, _ := ic.Insert(cache.NewInode(g.Ino(0, r.StartIno+i), 0, r.StartIno+i))
		ip.Rele()
		return ip
	}
	clean, dirty, flushing := mk(0), mk(1), mk(2)
	dirty.LogFields(5)
	flushing.LogFields(3)
	if !flushing.TryFlushLock() {
		t.Fatal("flush lock")
	}
	flushing.MoveDirtyToLastFlushed()

	tx := &cancelTx{testTx: testTx{c: fs.Cache}}
	if err := icluster.FreeClusters(tx, ic, g, 0, r.StartIno, r.AllocMask(), nil); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []*cache.Inode{clean, dirty, flushing} {
		if !ip.IsStale() {
			t.Fatalf("inode %d not STALE after the cluster free", ip.Ino())
		}
	}
	if dirty.DirtyFields() != 0 || dirty.LastFlushedFields() != 5 {
		t.Fatalf("dirty inode: dirty %#x, last flushed %#x", dirty.DirtyFields(), dirty.LastFlushedFields())
	}
	tx.cancel()
	for _, ip := range []*cache.Inode{clean, dirty, flushing} {
		if ip.IsStale() {
			t.Fatalf("inode %d still STALE after the cancel", ip.Ino())
		}
	}
	if !clean.IsClean() || clean.IsFlushing() {
		t.Fatal("clean inode changed")
	}
	if dirty.DirtyFields() != 5 || dirty.LastFlushedFields() != 0 || dirty.IsFlushing() {
		t.Fatalf("dirty inode after cancel: dirty %#x, last flushed %#x, flushing %v",
			dirty.DirtyFields(), dirty.LastFlushedFields(), dirty.IsFlushing())
	}
	if !flushing.IsFlushing() || flushing.LastFlushedFields() != 3 {
		t.Fatal("the flush in progress was disturbed")
	}
	for _, c := range g.ChunkClusters(0, r.StartIno, r.AllocMask()) {
		if !c.Allocated {
			continue
		}
		b, err := fs.Cache.GetNoRead(c.Daddr, c.Len, ondisk.KindInodeCluster)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range b.Items() {
			if it == any(dirty) {
				t.Fatal("dirty inode left attached to its cluster buffer")
			}
		}
		b.Release()
	}
}
