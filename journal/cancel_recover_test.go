package journal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// dataBufItem logs the first 128 bytes of the one-BB buffer at blkno,
// filled with fill, as an untyped buffer.
func dataBufItem(blkno int64, fill byte) [][]byte {
	f := &ondisk.BufLogFormat{Type: ondisk.LIBuf, Size: 2, Len: 1, Blkno: blkno, MapSize: 1}
	f.MarkDirty(0, 127)
	b := make([]byte, f.EncodedSize())
	f.Encode(b)
	return [][]byte{b, bytes.Repeat([]byte{fill}, 128)}
}

// cancelItem is the kernel's stale-buffer cancel (xfs_trans_binval): a
// single region, flags CANCEL, no type, an empty bitmap.
func cancelItem(blkno int64) [][]byte {
	f := &ondisk.BufLogFormat{Type: ondisk.LIBuf, Size: 1, Flags: ondisk.BlfCancel, Len: 1, Blkno: blkno, MapSize: 1}
	b := make([]byte, f.EncodedSize())
	f.Encode(b)
	return [][]byte{b}
}

// writeTransactions writes each transaction (a list of items) as one
// record after the head of a clean log, leaving the log dirty.
func writeTransactions(t *testing.T, dev *cache.Device, lg Geometry, st *State, trans ...[][][]byte) {
	t.Helper()
	w, err := NewWriter(dev, lg, st)
	if err != nil {
		t.Fatal(err)
	}
	tail := w.HeadLSN()
	for i, items := range trans {
		ops := transOps(uint32(0x5eed0000+i), items...)
		if _, err := w.WriteRecord(bytes.Join(ops, nil), len(ops), tail); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

func fsGeometry(t *testing.T, dev *cache.Device) *ondisk.Geometry {
	t.Helper()
	b, err := dev.ReadAt(0, 8)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ondisk.NewGeometry(sb)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func readBB(t *testing.T, img string, daddr int64) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, ondisk.BBSize)
	if _, err := f.ReadAt(b, daddr*ondisk.BBSize); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecoverCancelTable checks the cancel semantics of pass 1 and pass 2
// on a block of free space, against the kernel's recovery of a copy: a
// buffer logged and then cancelled is not replayed; logged again after
// the cancel, the last image is; with no cancel it is.
func TestRecoverCancelTable(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "xfs_repair")
	cases := []struct {
		name  string
		trans func(x int64) [][][][]byte
		want  byte // the first 128 bytes of the block after recovery
	}{
		{"logged", func(x int64) [][][][]byte { return [][][][]byte{{dataBufItem(x, 0xa1)}} }, 0xa1},
		{"logged-then-cancelled", func(x int64) [][][][]byte {
			return [][][][]byte{{dataBufItem(x, 0xa1)}, {cancelItem(x)}}
		}, 0},
		{"cancelled-then-logged-again", func(x int64) [][][][]byte {
			return [][][][]byte{{dataBufItem(x, 0xa1)}, {cancelItem(x)}, {dataBufItem(x, 0xc3)}}
		}, 0xc3},
		{"logged-and-cancelled-in-one-transaction", func(x int64) [][][][]byte {
			return [][][][]byte{{dataBufItem(x, 0xa1), cancelItem(x)}}
		}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mkImage(t, nil)
			dev, lg, st := openWriteDev(t, img)
			g := fsGeometry(t, dev)
			x := g.AgbToDaddr(1, g.AGBlocks-16) // free space at the end of AG 1
			writeTransactions(t, dev, lg, st, c.trans(x)...)
			dev.Close()
			kern := copyImage(t, img)

			dev, lg, st = openWriteDev(t, img)
			if st.Clean {
				t.Fatalf("log clean after writing transactions: %v", st)
			}
			rep, err := Recover(dev, g, lg, st, RecoverOptions{})
			if err != nil {
				t.Fatalf("Recover: %v", err)
			}
			dev.Close()
			t.Logf("report: bufs %d cancelled %d cancel items %d warnings %v", rep.BufReplayed, rep.BufCancelled, rep.CancelItems, rep.Warnings)
			if !kernelMount(t, kern) {
				t.Fatalf("the kernel did not recover the copy")
			}
			ours, theirs := readBB(t, img, x), readBB(t, kern, x)
			if !bytes.Equal(ours, theirs) {
				t.Errorf("block %d: ours starts % x, the kernel's % x", x, ours[:8], theirs[:8])
			}
			if ours[0] != c.want || ours[127] != c.want {
				t.Errorf("block %d starts % x, want %#x", x, ours[:8], c.want)
			}
			if kernelMount(t, img) {
				t.Errorf("the kernel ran recovery after ours")
			}
			testimg.Repair(t, img)
		})
	}
}

// TestRecoverCleanWritesNothing: a clean log is reported, nothing written.
func TestRecoverCleanWritesNothing(t *testing.T) {
	img := mkImage(t, nil)
	sum := testimg.Hash(t, img)
	dev, lg, st := openWriteDev(t, img)
	rep, err := Recover(dev, fsGeometry(t, dev), lg, st, RecoverOptions{})
	dev.Close()
	if err != nil || !rep.Clean {
		t.Fatalf("Recover on a clean log: %+v, %v", rep, err)
	}
	if testimg.Hash(t, img) != sum {
		t.Errorf("Recover of a clean log wrote to the image")
	}
}

// TestReorder: buffers and icreates first (log order), then other items,
// then INODE_BUF buffers, then cancels (each of the last two reversed, as
// the kernel's list_move does).
func TestReorder(t *testing.T) {
	buf := func(flags uint16, blkno int64) *Item {
		f := &ondisk.BufLogFormat{Type: ondisk.LIBuf, Size: 1, Flags: flags, Len: 1, Blkno: blkno, MapSize: 1}
		b := make([]byte, f.EncodedSize())
		f.Encode(b)
		return &Item{Type: ondisk.LIBuf, Total: 1, Regions: [][]byte{b}}
	}
	ino := &Item{Type: ondisk.LIInode, Total: 1, Regions: [][]byte{{0x3b, 0x12, 1, 0}}}
	icr := &Item{Type: ondisk.LIIcreate, Total: 1, Regions: [][]byte{{0x3f, 0x12, 1, 0}}}
	c1, c2 := buf(ondisk.BlfCancel, 1), buf(ondisk.BlfCancel, 2)
	r1, r2 := buf(0, 3), buf(0, 4)
	i1, i2 := buf(ondisk.BlfInodeBuf, 5), buf(ondisk.BlfInodeBuf, 6)
	tr := &RecoveredTrans{Items: []*Item{ino, c1, r1, i1, icr, c2, r2, i2, {}}}
	got := reorder(tr)
	want := []*Item{r1, icr, r2, ino, i2, i1, c2, c1}
	if len(got) != len(want) {
		t.Fatalf("%d items, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d: got %s, want %s", i, describe(got[i]), describe(want[i]))
		}
	}
}

func describe(it *Item) string {
	if it.Type == ondisk.LIBuf {
		f, _ := ondisk.DecodeBufLogFormat(it.Regions[0])
		return fmt.Sprintf("buf %d flags %#x", f.Blkno, f.Flags)
	}
	return it.Name()
}

// TestBmbtToBmdr: the in-core root's keys and pointers move to the bmdr
// positions of the fork's size (xfs_bmbt_to_bmdr).
func TestBmbtToBmdr(t *testing.T) {
	const n = 3
	src := make([]byte, ondisk.LongBlockHdrLen+4*16) // room for 4 records
	binary.BigEndian.PutUint32(src, ondisk.BmbtMagic)
	binary.BigEndian.PutUint16(src[4:], 1)
	binary.BigEndian.PutUint16(src[6:], n)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(src[ondisk.LongBlockHdrLen+8*i:], uint64(1000+i))
		binary.BigEndian.PutUint64(src[ondisk.LongBlockHdrLen+4*8+8*i:], uint64(5000+i))
	}
	dst := make([]byte, 76) // a data fork of 76 bytes: bmdr maxrecs 4
	if err := ondisk.BmbtToBmdr(src, dst); err != nil {
		t.Fatal(err)
	}
	r, err := ondisk.DecodeBmdr(dst)
	if err != nil {
		t.Fatal(err)
	}
	if r.Level != 1 || r.Numrecs != n {
		t.Fatalf("root %+v", r)
	}
	for i := 0; i < n; i++ {
		if r.Keys[i] != uint64(1000+i) || r.Ptrs[i] != uint64(5000+i) {
			t.Errorf("record %d: key %d ptr %d", i, r.Keys[i], r.Ptrs[i])
		}
	}
	binary.BigEndian.PutUint16(src[6:], 9)
	if err := ondisk.BmbtToBmdr(src, dst); err == nil {
		t.Errorf("a root with more records than fit was converted")
	}
}
