package journal

import (
	"bytes"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// btreeBufItem logs bytes [first, last] of the 8-BB buffer at blkno, whose
// whole contents are blk, as a btree buffer (so that replay compares its
// LSN and stamps it).
func btreeBufItem(blkno int64, blk []byte, first, last int) [][]byte {
	f := &ondisk.BufLogFormat{Type: ondisk.LIBuf, Size: 2, Len: 8, Blkno: blkno, MapSize: 1}
	f.SetBlft(ondisk.BlftBtree)
	f.MarkDirty(first, last)
	h := make([]byte, f.EncodedSize())
	f.Encode(h)
	var data []byte
	for _, r := range f.Runs() {
		data = append(data, blk[r.First*ondisk.BlfChunk:(r.First+r.N)*ondisk.BlfChunk]...)
	}
	return [][]byte{h, data}
}

// TestRecoverTwoTransactionsOneRecord: two transactions in one log record
// (so with one LSN) change the same btree block; both are replayed. Found
// on a crash snapshot (issue 9): recovery stamped a replayed buffer with
// its LSN at once, so the second transaction, seeing the block's LSN equal
// to its own, was skipped as already on disk — a bmbt leaf lost four
// records and xfs_repair found the inode's extent count wrong. The kernel
// stamps recovered buffers only when they are submitted, at a change of
// LSN; the result must equal its recovery of a copy.
func TestRecoverTwoTransactionsOneRecord(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "xfs_repair")
	img := mkImage(t, nil)
	dev, lg, st := openWriteDev(t, img)
	g := fsGeometry(t, dev)
	agbno := g.AGBlocks - 16 // free space at the end of AG 1
	x := g.AgbToDaddr(1, agbno)

	// An empty bnobt leaf, as xfs_btree_init_block makes one, then the
	// same block with a pattern past its header (numrecs 0: the verifier
	// does not read it).
	blk := make([]byte, 4096)
	h := ondisk.ShortBlockHdr{Magic: ondisk.BnobtMagic, LeftSib: ondisk.NullAgbno, RightSib: ondisk.NullAgbno,
		Blkno: uint64(x), UUID: g.SB.BlockUUID(), Owner: 1}
	h.Encode(blk)
	second := bytes.Clone(blk)
	for i := 1024; i < 1152; i++ {
		second[i] = 0x5a
	}
	t1 := transOps(0x5eed0001, btreeBufItem(x, blk, 0, 4095))
	t2 := transOps(0x5eed0002, btreeBufItem(x, second, 1024, 1151))
	w, err := NewWriter(dev, lg, st)
	if err != nil {
		t.Fatal(err)
	}
	ops := append(t1, t2...)
	if _, err := w.WriteRecord(bytes.Join(ops, nil), len(ops), w.HeadLSN()); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	kern := copyImage(t, img)

	dev, lg, st = openWriteDev(t, img)
	rep, err := Recover(dev, g, lg, st, RecoverOptions{})
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	dev.Close()
	if rep.Transactions != 2 || rep.BufReplayed != 2 || rep.BufSkippedLSN != 0 {
		t.Errorf("%d transactions, %d buffers replayed, %d skipped by LSN; want 2, 2, 0", rep.Transactions, rep.BufReplayed, rep.BufSkippedLSN)
	}
	if !kernelMount(t, kern) {
		t.Fatalf("the kernel did not recover the copy")
	}
	for i := int64(0); i < 8; i++ {
		ours, theirs := readBB(t, img, x+i), readBB(t, kern, x+i)
		if !bytes.Equal(ours, theirs) {
			t.Errorf("BB %d of the block differs from the kernel's recovery: ours % x..., the kernel's % x...", i, ours[:32], theirs[:32])
		}
	}
	if got := readBB(t, img, x+2); got[0] != 0x5a || got[127] != 0x5a {
		t.Errorf("the second transaction's bytes were not replayed: % x...", got[:16])
	}
	testimg.Repair(t, img)
}
