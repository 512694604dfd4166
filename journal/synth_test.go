package journal

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// memDev is a log device in memory.
type memDev []byte

func (m memDev) ReadAt(daddr int64, nBB int) ([]byte, error) {
	off, n := daddr*ondisk.BBSize, int64(nBB)*ondisk.BBSize
	if off < 0 || off+n > int64(len(m)) {
		return nil, errors.New("memDev: out of range")
	}
	return append([]byte(nil), m[off:off+n]...), nil
}

var synthUUID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func synthGeometry(bbs int64) Geometry {
	return Geometry{BBs: bbs, SectBBs: 1, RoundOff: 512, V2: true, HSize: 32768, HBlks: 1, UUID: synthUUID}
}

// op formats one op header and its payload.
func op(tid uint32, flags uint8, client uint8, payload []byte) []byte {
	b := make([]byte, ondisk.LogOpHeaderSize+len(payload))
	ondisk.LogOpHeader{Tid: tid, Len: uint32(len(payload)), ClientID: client, Flags: flags}.Encode(b)
	copy(b[ondisk.LogOpHeaderSize:], payload)
	return b
}

// synthBufItem returns the regions of a one-block buffer item logging 128 bytes.
func synthBufItem(blkno int64) [][]byte {
	f := &ondisk.BufLogFormat{Type: ondisk.LIBuf, Size: 2, Len: 1, Blkno: blkno, MapSize: 1}
	f.MarkDirty(0, 127)
	b := make([]byte, f.EncodedSize())
	f.Encode(b)
	data := make([]byte, 128)
	for i := range data {
		data[i] = byte(blkno) + byte(i)
	}
	return [][]byte{b, data}
}

func transOps(tid uint32, items ...[][]byte) [][]byte {
	th := make([]byte, ondisk.TransHeaderSize)
	n := 0
	for _, it := range items {
		n += len(it)
	}
	ondisk.TransHeader{Magic: ondisk.TransHeaderMagic, Type: ondisk.TransCheckpoint, Tid: tid, NumItems: uint32(n)}.Encode(th)
	ops := [][]byte{op(tid, ondisk.OpStartTrans, 0x69, nil), op(tid, 0, 0x69, th)}
	for _, it := range items {
		for _, r := range it {
			ops = append(ops, op(tid, 0, 0x69, r))
		}
	}
	return append(ops, op(tid, ondisk.OpCommitTrans, 0x69, nil))
}

// putRecord writes a packed record holding ops at log block blk of log
// (wrapping at its end, bumping the cycle of wrapped blocks as xlog_sync
// does) and returns the block after it.
func putRecord(log []byte, blk int64, cycle uint32, tail ondisk.LSN, ops [][]byte) int64 {
	var data []byte
	for _, o := range ops {
		data = append(data, o...)
	}
	data = append(data, make([]byte, (512-len(data)%512)%512)...)
	hdr := make([]byte, 512)
	h := &ondisk.LogRecHeader{Magic: ondisk.LogHeaderMagic, Cycle: cycle, Version: 2, Len: uint32(len(data)),
		LSN: ondisk.MakeLSN(cycle, uint32(blk)), TailLSN: tail, NumLogOps: uint32(len(ops)), Fmt: 1, FSUUID: synthUUID, Size: 32768}
	h.Encode(hdr)
	if err := ondisk.LogPackData(hdr, data, cycle); err != nil {
		panic(err)
	}
	rec := append(hdr, data...)
	bbs := int64(len(log) / 512)
	for i := int64(0); i < int64(len(rec)/512); i++ {
		if blk+i >= bbs {
			w := binary.BigEndian.Uint32(rec[i*512:]) + 1
			binary.BigEndian.PutUint32(rec[i*512:], w)
		}
	}
	if err := ondisk.SetLogRecCRC(rec[:512], rec[512:]); err != nil {
		panic(err)
	}
	for i := int64(0); i < int64(len(rec)/512); i++ {
		copy(log[((blk+i)%bbs)*512:], rec[i*512:(i+1)*512])
	}
	return (blk + int64(len(rec)/512)) % bbs
}

func unmountOps() [][]byte {
	u := make([]byte, 8)
	ondisk.UnmountLogFormat{Magic: ondisk.UnmountType}.Encode(u)
	return [][]byte{op(ondisk.XfsprogsUnmountTid, ondisk.OpUnmountTrans, ondisk.LogClientLog, u)}
}

// synthLog builds a 1024-BB log: an unmount record at 0, then three
// transactions, the last spanning two records with a region split by
// CONTINUE/WAS_CONT.
func synthLog() (memDev, int64) {
	log := make([]byte, 1024*512)
	blk := putRecord(log, 0, 1, ondisk.MakeLSN(1, 0), unmountOps())
	tail := ondisk.MakeLSN(1, uint32(blk))
	blk = putRecord(log, blk, 1, tail, transOps(0x100, synthBufItem(10), synthBufItem(20)))
	blk = putRecord(log, blk, 1, tail, transOps(0x200, synthBufItem(30)))
	ops := transOps(0x300, synthBufItem(40), synthBufItem(50))
	// Split the last data region: its first 64 bytes with CONTINUE here,
	// the rest with WAS_CONT|END in the next record.
	last := ops[len(ops)-2][ondisk.LogOpHeaderSize:]
	first := op(0x300, ondisk.OpContinueTrans, 0x69, last[:64])
	rest := op(0x300, ondisk.OpWasContTrans|ondisk.OpEndTrans, 0x69, last[64:])
	blk = putRecord(log, blk, 1, tail, append(ops[:len(ops)-2:len(ops)-2], first))
	blk = putRecord(log, blk, 1, tail, [][]byte{rest, ops[len(ops)-1]})
	return log, blk
}

func TestSynthLog(t *testing.T) {
	log, head := synthLog()
	l := New(memDev(log), synthGeometry(1024))
	st, err := l.FindTail()
	if err != nil {
		t.Fatal(err)
	}
	if st.Head != head || st.Tail != 2 || st.Clean || st.HeadCycle != 1 {
		t.Fatalf("state %v, want head %d tail 2", st, head)
	}
	var got []*RecoveredTrans
	open, err := l.Transactions(st.Head, st.Tail, func(tr *RecoveredTrans) error { got = append(got, tr); return nil })
	if err != nil || len(open) != 0 {
		t.Fatal(err, open)
	}
	if len(got) != 3 || got[0].Tid != 0x100 || len(got[0].Items) != 2 || got[2].Tid != 0x300 || len(got[2].Items) != 2 {
		t.Fatalf("transactions %+v", got)
	}
	want := synthBufItem(50)[1]
	if r := got[2].Items[1].Regions[1]; string(r) != string(want) {
		t.Errorf("continued region not reassembled: % x", r[:8])
	}
	if got[2].LSN == got[2].CommitLSN {
		t.Errorf("a spanning transaction has its START and COMMIT in one record: %v", got[2].LSN)
	}

	// A torn write: the last record's CRC no longer matches. The head goes
	// back to it and the transaction it completed is left open.
	torn := append(memDev(nil), log...)
	lastRec := st.LastRecord
	torn[(lastRec+1)*512+100] ^= 0xff
	l = New(torn, synthGeometry(1024))
	st2, err := l.FindTail()
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Torn || st2.Head != lastRec || st2.FoundHead != head {
		t.Errorf("torn write: %v, want head %d", st2, lastRec)
	}
	got = nil
	open, err = l.Transactions(st2.Head, st2.Tail, func(tr *RecoveredTrans) error { got = append(got, tr); return nil })
	if err != nil || len(got) != 2 || len(open) != 1 || open[0].Tid != 0x300 {
		t.Errorf("after the torn write: %d committed, open %v, err %v", len(got), open, err)
	}

	// An unmount record at the head makes the log clean.
	clean := append(memDev(nil), log...)
	h2 := putRecord(clean, head, 1, ondisk.MakeLSN(1, uint32(head)), unmountOps())
	st3, err := New(clean, synthGeometry(1024)).FindTail()
	if err != nil || !st3.Clean || !st3.Unmounted || st3.Head != h2 || st3.Tail != h2 {
		t.Errorf("unmounted: %v %v", st3, err)
	}

	// All zeros: empty.
	st4, err := New(make(memDev, 1024*512), synthGeometry(1024)).FindTail()
	if err != nil || !st4.Empty || !st4.Clean || st4.Head != 0 {
		t.Errorf("zeroed: %v %v", st4, err)
	}
}

// TestSynthWrap writes records across the physical end: cycle 2 at the
// start, cycle 1 behind the head.
func TestSynthWrap(t *testing.T) {
	const bbs = 1024
	log := make([]byte, bbs*512)
	// Fill cycle 1 with small records up to near the end.
	blk := int64(0)
	tail := ondisk.MakeLSN(1, 0)
	for blk < bbs-4 {
		nb := putRecord(log, blk, 1, tail, transOps(uint32(blk)+1, synthBufItem(blk)))
		if nb < blk {
			break
		}
		blk = nb
	}
	tail = ondisk.MakeLSN(1, uint32(blk))
	start := blk
	// Two records wrapping: the first crosses the end.
	blk = putRecord(log, blk, 1, tail, transOps(0xa, synthBufItem(1), synthBufItem(2), synthBufItem(3), synthBufItem(4), synthBufItem(5), synthBufItem(6), synthBufItem(7), synthBufItem(8), synthBufItem(9), synthBufItem(11), synthBufItem(12), synthBufItem(13)))
	if blk >= start {
		t.Fatalf("record at %d did not wrap (next %d)", start, blk)
	}
	blk = putRecord(log, blk, 2, tail, transOps(0xb, synthBufItem(5)))
	l := New(memDev(log), synthGeometry(bbs))
	st, err := l.FindTail()
	if err != nil {
		t.Fatal(err)
	}
	if st.Head != blk || st.Tail != start || st.HeadCycle != 2 || st.Clean {
		t.Fatalf("state %v, want head %d tail %d cycle 2", st, blk, start)
	}
	var tids []uint32
	wrapped := 0
	_ = l.Records(st.Head, st.Tail, func(r *Record) error {
		if r.Wrapped {
			wrapped++
		}
		if !r.CRCOK {
			t.Errorf("record %d: bad CRC", r.Block)
		}
		return nil
	})
	if _, err := l.Transactions(st.Head, st.Tail, func(tr *RecoveredTrans) error { tids = append(tids, tr.Tid); return nil }); err != nil {
		t.Fatal(err)
	}
	if wrapped != 1 || len(tids) != 2 || tids[0] != 0xa || tids[1] != 0xb {
		t.Errorf("wrapped records %d, transactions %x", wrapped, tids)
	}
}

// TestTornRealLog damages the last record of a kernel-written dirty log:
// the head moves back to it, as the kernel's xlog_verify_head does.
func TestTornRealLog(t *testing.T) {
	testimg.Need(t, "xfs_io")
	img := mkImage(t, nil)
	mnt := testimg.Mount(t, img)
	exercise(t, mnt, 200)
	run(t, "sync", "-f", mnt)
	for i := 0; i < 20; i++ {
		if err := os.WriteFile(filepath.Join(mnt, "late"+string(rune('a'+i))), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
	testimg.Unmount(t, mnt)
	l := openLog(t, img)
	st, err := l.FindTail()
	if err != nil || st.Clean {
		t.Fatalf("%v %v", st, err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	daddr := l.G.StartDaddr + st.LastRecord + 1
	b := make([]byte, 1)
	f.ReadAt(b, daddr*512+200)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, daddr*512+200); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l = openLog(t, img)
	st2, err := l.FindTail()
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Torn || st2.Head != st.LastRecord || st2.FoundHead != st.Head {
		t.Errorf("torn: %v; before: %v", st2, st)
	}
	t.Logf("before: %v\nafter: %v", st, st2)
	if out, err := exec.Command("xfs_logprint", "-t", img).CombinedOutput(); err == nil {
		t.Logf("xfs_logprint (does not check CRCs): %s", logprintState.FindString(string(out)))
	}
}
