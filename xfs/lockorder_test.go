package xfs

import (
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/internal/testimg"
)

// TestFreeLockOrder: a library user holds an orphan's ILOCK and then
// waits for its AG's AGI, as another free of that inode would (ILOCK →
// AGI, the kernel's order). The free engine, whose batch holds the AGI
// when it reaches that orphan, must not wait for the ILOCK while holding
// buffers (that deadlocked): it commits its batch and waits in a new
// transaction. Everything is freed, and xfs_repair -n passes.
func TestFreeLockOrder(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := cleanOrphans(t, "orphans")
	fs, err := OpenWrite(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	st, err := fs.ScanAG(0)
	if err != nil {
		t.Fatal(err)
	}
	var order []uint32 // AG 0's orphans in the free order
	for _, c := range st.Chains {
		for _, o := range c.Inodes {
			order = append(order, o.Agino)
		}
	}
	if len(order) < 4 {
		t.Fatalf("AG 0 has %d orphans", len(order))
	}
	x := order[len(order)-1]
	var user chan struct{}
	o := FreeOptions{Orphans: true, BatchInodes: 1000, afterPreflight: func(fs *FS) {
		ip, _ := fs.Inodes.Insert(cache.NewInode(fs.G.Ino(0, x), 0, x))
		ip.ILock(cache.ILockExcl)
		user = make(chan struct{})
		go func() {
			defer close(user)
			time.Sleep(300 * time.Millisecond)
			tx := fs.Begin()
			if _, err := icluster.LockAGI(tx, fs.G, 0); err != nil {
				t.Error(err)
			}
			tx.Cancel()
			ip.IUnlock(cache.ILockExcl)
			ip.Rele()
		}()
	}}
	done := make(chan struct{})
	var rep *FreeReport
	go func() {
		defer close(done)
		rep, err = fs.Free(o)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("deadlock: the free waited for an ILOCK while holding the AGI its holder waits for")
	}
	<-user
	if err != nil || rep.Failed() || rep.InodesFreed != 313 {
		t.Fatalf("Free: %v; freed %d, refused %v, errors %v", err, rep.InodesFreed, rep.Refused, rep.Errors)
	}
	testimg.Repair(t, img)
}
