package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Transaction is the transaction of every package that states what it
// needs of one (alloc's and refcount's Tx are btree.Tx).
var (
	_ icluster.FreeTx = (*Transaction)(nil)
	_ btree.Tx        = (*Transaction)(nil)
)

// session opens img read-write with a buffer cache and a journal session.
type session struct {
	dev *cache.Device
	c   *cache.Cache
	fg  *ondisk.Geometry
	s   *Session
}

func openSession(t *testing.T, img string) *session {
	t.Helper()
	dev, lg, st := openWriteDev(t, img)
	fg := fsGeometry(t, dev)
	w, err := NewWriter(dev, lg, st)
	if err != nil {
		t.Fatal(err)
	}
	c := cache.NewCache(dev, cache.CacheOptions{Geometry: fg})
	s := NewSession(w, c, fg)
	// These tests count log transactions per commit: one checkpoint per
	// commit, durable when Commit returns (delayed_test.go tests the
	// batching).
	s.SyncCommits = true
	return &session{dev: dev, c: c, fg: fg, s: s}
}

// setLabel changes sb_fname in tx.
func (ss *session) setLabel(t *testing.T, tx *Transaction, label string) {
	t.Helper()
	b, err := tx.ReadBuf(0, ss.fg.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: ss.fg, AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	clear(b.Data[108:120])
	copy(b.Data[108:120], label)
	tx.LogRange(b, 108, 119)
}

// relogAll joins every AG's AGI, AGF, AGFL and the root blocks of its
// free-space and inode btrees, logging each in full, unchanged: big
// transactions whose replay changes nothing but LSNs and CRCs.
func (ss *session) relogAll(t *testing.T, tx *Transaction) (bufs int) {
	t.Helper()
	g := ss.fg
	for agno := uint32(0); agno < g.AGCount; agno++ {
		ctx := ondisk.VerifyCtx{G: g, AG: agno}
		var agf *ondisk.AGF
		var agi *ondisk.AGI
		for _, h := range []struct {
			d    int64
			kind *ondisk.BlockKind
		}{{g.AGFDaddr(agno), ondisk.KindAGF}, {g.AGIDaddr(agno), ondisk.KindAGI}, {g.AGFLDaddr(agno), ondisk.KindAGFL}} {
			b, err := tx.ReadBuf(h.d, g.SectBBs(), h.kind, ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.LogRange(b, 0, len(b.Data)-1)
			bufs++
			switch h.kind {
			case ondisk.KindAGF:
				agf, _ = ondisk.DecodeAGF(b.Data)
			case ondisk.KindAGI:
				agi, _ = ondisk.DecodeAGI(b.Data)
			}
		}
		roots := []struct {
			agbno uint32
			kind  *ondisk.BlockKind
		}{{agf.Roots[0], ondisk.KindBnobt}, {agf.Roots[1], ondisk.KindCntbt}, {agi.Root, ondisk.KindInobt}}
		if g.SB.HasFinobt() {
			roots = append(roots, struct {
				agbno uint32
				kind  *ondisk.BlockKind
			}{agi.FreeRoot, ondisk.KindFinobt})
		}
		for _, r := range roots {
			b, err := tx.ReadBuf(g.AgbToDaddr(agno, r.agbno), g.BlockBBs(), r.kind, ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.LogRange(b, 0, len(b.Data)-1)
			bufs++
		}
	}
	return bufs
}

// smallLogEnv lets mkfs.xfs make logs below 64 MiB (its test-suite
// switch), for many AGs on a small image and for logs that wrap quickly.
var smallLogEnv = []string{"TEST_DEV=1", "TEST_DIR=1", "QA_CHECK_FS=1"}

// sbLabel reads the label with xfs_db.
func sbLabel(t *testing.T, img string) string {
	t.Helper()
	v := strings.Trim(testimg.ParseFields(testimg.DB(t, img, "sb 0", "p fname"))["fname"], `"`)
	return strings.ReplaceAll(v, `\000`, "")
}

// logprintCounts runs xfs_logprint -t and counts the transactions and the
// buffer items it lists.
func logprintCounts(t *testing.T, img string) (trans, bufs int, out string) {
	t.Helper()
	o, err := exec.Command("xfs_logprint", "-t", img).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_logprint -t: %v\n%s", err, o)
	}
	out = string(o)
	tids, items := logprintItems(out)
	for _, it := range items {
		for _, i := range it {
			if strings.HasPrefix(i, "BUF ") {
				bufs++
			}
		}
	}
	return len(tids), bufs, out
}

// crashCopy closes the session's device without checkpoint or unmount
// record: the image is what a power cut after the last commit leaves.
func (ss *session) crash() { ss.dev.Close() }

// kernelRecover mounts img, reports whether the kernel ran recovery, and
// unmounts it.
func kernelRecover(t *testing.T, img string) bool { return kernelMount(t, img) }

func TestBigTransactionReplayedByKernel(t *testing.T) {
	testimg.Need(t)
	for _, tc := range []struct {
		name   string
		opts   []string
		single bool // one record is enough: the point is 8 header blocks
	}{
		{"agcount16", []string{"-d", "agcount=16"}, false},
		{"sunit64k", []string{"-d", "agcount=8", "-l", "su=64k,size=16m"}, false},
		{"sunit256k", []string{"-d", "agcount=8", "-l", "su=256k,size=24m"}, true},
		{"bs65536", []string{"-b", "size=65536", "-i", "sparse=0"}, false}, // 64 KiB btree blocks: regions split over records
		{"bs1024", []string{"-d", "agcount=16", "-b", "size=1024"}, false},
		{"sect4096", []string{"-d", "agcount=16", "-s", "size=4096"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := mkImage(t, smallLogEnv, tc.opts...)
			ss := openSession(t, img)
			tx := ss.s.Begin()
			n := ss.relogAll(t, tx)
			ss.setLabel(t, tx, "bigtrans")
			size := tx.Size()
			if max := ss.s.MaxTransBytes(); size > max {
				t.Fatalf("transaction of %d bytes exceeds MaxTransBytes %d", size, max)
			}
			h0, _ := ss.s.Writer().Head()
			lsn, err := tx.Commit()
			if err != nil {
				t.Fatal(err)
			}
			h1, _ := ss.s.Writer().Head()
			recs := (h1 - h0) / ss.s.Writer().RecordBBs(ss.s.Writer().MaxRecordData())
			t.Logf("%d buffers, %d bytes, records from block %d to %d (lsn %v, ~%d full records)", n+1, size, h0, h1, lsn, recs)
			if !tc.single && size <= int64(ss.s.Writer().MaxRecordData()) {
				t.Fatalf("transaction of %d bytes fits in one record", size)
			}
			ss.crash()
			trans, bufs, out := logprintCounts(t, img)
			if trans != 1 || bufs != n+1 {
				t.Fatalf("xfs_logprint -t lists %d transactions and %d BUF items, want 1 and %d\n%s", trans, bufs, n+1, out)
			}
			if !kernelRecover(t, img) {
				t.Fatal("kernel did not run recovery")
			}
			if l := sbLabel(t, img); l != "bigtrans" {
				t.Fatalf("label after kernel recovery %q", l)
			}
			testimg.Repair(t, img)
		})
	}
}

// A transaction whose records cross the physical end of the log (split
// writes, cycle bumped past the end) is replayed by the kernel.
func TestWrappingTransactionReplayedByKernel(t *testing.T) {
	testimg.Need(t)
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{"default", []string{"-d", "agcount=16", "-l", "size=1368b"}},
		{"sunit32k", []string{"-d", "agcount=16", "-l", "size=1416b,su=32k"}},
		{"sect4096", []string{"-d", "agcount=16", "-s", "size=4096", "-l", "size=1368b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := mkImage(t, smallLogEnv, tc.opts...)
			ss := openSession(t, img)
			w := ss.s.Writer()
			var label string
			for i := 0; ; i++ {
				if i > 1000 {
					t.Fatal("the head never wrapped")
				}
				tx := ss.s.Begin()
				ss.relogAll(t, tx)
				label = fmt.Sprintf("wrap%d", i)
				ss.setLabel(t, tx, label)
				h0, c0 := w.Head()
				if _, err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
				h1, c1 := w.Head()
				if c1 != c0 && h1 > 0 {
					t.Logf("transaction %d: head %d cycle %d -> head %d cycle %d (log %d BBs)", i, h0, c0, h1, c1, w.g.BBs)
					break
				}
				if err := ss.s.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			}
			ss.crash()
			if !kernelRecover(t, img) {
				t.Fatal("kernel did not run recovery")
			}
			if l := sbLabel(t, img); l != label {
				t.Fatalf("label after kernel recovery %q, want %q", l, label)
			}
			testimg.Repair(t, img)
		})
	}
}

// Three transactions are listed by xfs_logprint with their buffer items;
// after Close (checkpoint, unmount record) the log is clean for our
// FindTail, xfs_logprint, xfs_repair and the kernel.
func TestLogprintAndClose(t *testing.T) {
	testimg.Need(t)
	img := mkImage(t, nil)
	ss := openSession(t, img)
	wantBufs := 0
	for i, l := range []string{"a", "b", "c"} {
		tx := ss.s.Begin()
		if i == 1 {
			wantBufs += ss.relogAll(t, tx)
		}
		ss.setLabel(t, tx, l)
		wantBufs++
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// The superblock logged by "a" was logged again by "b" with all its
	// changes: the tail follows it, and the log from the tail holds "b"
	// and "c" only (relogging, as the kernel's AIL moves an item to its
	// newest LSN).
	snap := copyImage(t, img)
	trans, bufs, out := logprintCounts(t, snap)
	if trans != 2 || bufs != wantBufs-1 {
		t.Fatalf("xfs_logprint -t: %d transactions, %d BUF items; want 2 and %d\n%s", trans, bufs, wantBufs-1, out)
	}
	if err := ss.s.Close(); err != nil {
		t.Fatal(err)
	}
	ss.dev.Close()
	_, lg, st := openWriteDev(t, img)
	if !st.Clean || !st.Unmounted {
		t.Fatalf("log after Close: %v", st)
	}
	_ = lg
	if _, _, clean, out := logprintHeadTail(t, img); !clean {
		t.Fatalf("xfs_logprint: log not clean after Close\n%s", out)
	}
	testimg.Repair(t, img)
	if kernelMount(t, img) {
		t.Fatal("kernel ran recovery after Close")
	}
	if l := sbLabel(t, img); l != "c" {
		t.Fatalf("label %q, want c", l)
	}
}

// copyImage copies an image sparsely into the test's temporary directory.
func copyImage(t *testing.T, img string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.img")
	if out, err := exec.Command("cp", "--sparse=always", img, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// A buffer cancel item suppresses the replay of an earlier image of the
// same buffer: the label logged in the first transaction is not replayed
// once a second one cancels the superblock buffer.
func TestCancelItemReplayedByKernel(t *testing.T) {
	testimg.Need(t)
	for _, cancel := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancel=%v", cancel), func(t *testing.T) {
			img := mkImage(t, nil)
			orig := sbLabel(t, img)
			ss := openSession(t, img)
			tx := ss.s.Begin()
			ss.setLabel(t, tx, "logged")
			if _, err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			tx = ss.s.Begin()
			b, err := tx.GetBuf(0, ss.fg.SectBBs(), ondisk.KindSB)
			if err != nil {
				t.Fatal(err)
			}
			if cancel {
				tx.Binval(b)
			}
			if _, err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if cancel != b.IsStale() {
				t.Fatalf("stale %v after commit, want %v", b.IsStale(), cancel)
			}
			// The checkpoint must not write the cancelled buffer.
			if err := ss.s.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			if l := sbLabel(t, img); cancel && l != orig || !cancel && l != "logged" {
				t.Fatalf("label on disk after checkpoint %q (orig %q)", l, orig)
			}
			ss.crash()
			kernelRecover(t, img)
			want := "logged"
			if cancel {
				want = orig
			}
			if l := sbLabel(t, img); l != want {
				t.Fatalf("label after kernel recovery %q, want %q", l, want)
			}
			testimg.Repair(t, img)
		})
	}
}

// An inode logged with LogInode gets the transaction's LSN and a new CRC
// and is replayed by the kernel from a plain DINO buffer item.
func TestLogInodeReplayedByKernel(t *testing.T) {
	testimg.Need(t)
	img := mkImage(t, nil)
	ss := openSession(t, img)
	root := ss.fg.SB.RootIno
	agno, agino := ss.fg.InoToAgno(root), ss.fg.InoToAgino(root)
	loc, ok := ss.fg.ImapAligned(agno, agino)
	if !ok {
		t.Fatal("root inode not in an aligned cluster")
	}
	tx := ss.s.Begin()
	b, err := tx.ReadBuf(loc.Daddr, loc.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: ss.fg, AG: agno})
	if err != nil {
		t.Fatal(err)
	}
	const gen = 0x5eed1234
	binary.BigEndian.PutUint32(b.Data[loc.Offset+92:], gen) // di_gen
	tx.LogInode(b, loc.Offset)
	lsn, err := tx.Commit()
	if err != nil {
		t.Fatal(err)
	}
	ss.crash()
	if !kernelRecover(t, img) {
		t.Fatal("kernel did not run recovery")
	}
	f := testimg.Inode(t, img, root)
	if f["core.gen"] != fmt.Sprint(gen) {
		t.Fatalf("root di_gen after recovery %q, want %d", f["core.gen"], gen)
	}
	t.Logf("lsn %v, inode lsn %s crc %s", lsn, f["v3.lsn"], f["v3.crc"])
	testimg.Repair(t, img)
}

// Cancel gives the joined buffers back their contents; a transaction
// larger than half the free log is refused before anything is written.
func TestCancelAndTooBig(t *testing.T) {
	testimg.Need(t, "mkfs.xfs", "xfs_logprint")
	img := mkImage(t, smallLogEnv, "-d", "agcount=16", "-l", "size=1368b")
	ss := openSession(t, img)
	tx := ss.s.Begin()
	b, err := tx.ReadBuf(0, ss.fg.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: ss.fg, AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	before := append([]byte(nil), b.Data...)
	copy(b.Data[108:], "cancelled")
	tx.LogRange(b, 108, 119)
	tx.Cancel()
	tx = ss.s.Begin()
	b, err = tx.ReadBuf(0, ss.fg.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: ss.fg, AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Data, before) {
		t.Fatal("Cancel did not restore the buffer")
	}
	tx.Cancel()

	// A transaction bigger than a checkpoint may be (half the log, or
	// the free space) is refused, and writes nothing; relogging the same
	// buffers over and over never fills the log (each checkpoint carries
	// all their changes, so the tail follows the head).
	for i := 0; i < 40; i++ {
		tx = ss.s.Begin()
		ss.relogAll(t, tx)
		if _, err := tx.Commit(); err != nil {
			t.Fatalf("relog %d: %v", i, err)
		}
	}
	tx = ss.s.Begin()
	g := ss.fg
	max := ss.s.MaxTransBytes()
	n := int(max/int64(g.BlockSize)) + 8
	for i := 0; i < n; i++ {
		// Free blocks of AG 1, logged as data, never committed.
		b, err := tx.GetBuf(g.AgbToDaddr(1, uint32(g.SB.AGBlocks/2+uint32(i))), g.BlockBBs(), ondisk.KindData)
		if err != nil {
			t.Fatal(err)
		}
		tx.LogRange(b, 0, len(b.Data)-1)
	}
	h0, c0 := ss.s.Writer().Head()
	writes := ss.dev.Stats().Writes
	if size := tx.Size(); size <= max {
		t.Fatalf("transaction of %d bytes, MaxTransBytes %d", size, max)
	}
	_, err = tx.Commit()
	if !errors.Is(err, ErrTransTooBig) {
		t.Fatalf("a %d-byte transaction with MaxTransBytes %d: %v", tx.Size(), max, err)
	}
	if h, c := ss.s.Writer().Head(); h != h0 || c != c0 || ss.dev.Stats().Writes != writes {
		t.Fatal("refused transaction wrote something")
	}
	tx.Cancel()
	t.Logf("refused: %v", err)
	tx = ss.s.Begin()
	ss.relogAll(t, tx)
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := ss.s.Close(); err != nil {
		t.Fatal(err)
	}
}

// crashAt returns a write hook that lets n writes through and drops the
// rest, or (tear) writes only the first half of the sectors of write n.
func crashAt(n int, tear bool, path string) cache.WriteHook {
	count := 0
	return func(daddr int64, b []byte) (bool, error) {
		count++
		switch {
		case tear && count == n:
			if keep := len(b) / 512 / 2 * 512; keep > 0 {
				f, err := os.OpenFile(path, os.O_WRONLY, 0)
				if err != nil {
					return false, err
				}
				defer f.Close()
				if _, err := f.WriteAt(b[:keep], daddr*512); err != nil {
					return false, err
				}
				if err := f.Sync(); err != nil {
					return false, err
				}
			}
			return false, errCrashed
		case tear && count > n, !tear && count > n:
			return false, errCrashed
		}
		return true, nil
	}
}

var errCrashed = errors.New("crashed")

// A crash matrix over one big transaction of many records (regions split
// across records), then its checkpoint and the unmount record: every crash
// point and every torn write leaves the change wholly present or wholly
// absent after the kernel's recovery and after ours, and xfs_repair -n
// passes.
func TestBigTransactionCrashMatrix(t *testing.T) {
	testimg.Need(t)
	base := mkImage(t, smallLogEnv, "-d", "agcount=4", "-b", "size=16384")
	orig := sbLabel(t, base)
	run := func(img string, hook cache.WriteHook) (committed bool, err error) {
		ss := openSession(t, img)
		defer ss.dev.Close()
		ss.dev.SetWriteHook(hook)
		tx := ss.s.Begin()
		ss.relogAll(t, tx)
		ss.setLabel(t, tx, "big")
		if _, err := tx.Commit(); err != nil {
			return false, err
		}
		if err := ss.s.Close(); err != nil {
			return true, err
		}
		return true, nil
	}
	total := 0
	{
		img := copyImage(t, base)
		counter := func(int64, []byte) (bool, error) { total++; return true, nil }
		if _, err := run(img, counter); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d writes", total)
	for _, tear := range []bool{false, true} {
		for n := 0; n <= total; n++ {
			if tear && n == 0 {
				continue
			}
			img := copyImage(t, base)
			committed, err := run(img, crashAt(n, tear, img))
			if err != nil && !errors.Is(err, errCrashed) {
				t.Fatalf("tear=%v n=%d: %v", tear, n, err)
			}
			ours := copyImage(t, img)
			rec := kernelRecover(t, img)
			l := sbLabel(t, img)
			if l != orig && l != "big" || committed && l != "big" {
				t.Fatalf("tear=%v n=%d: label %q after kernel recovery (committed %v)", tear, n, l, committed)
			}
			if out, code := testimg.TryRepair(t, img); code != 0 {
				t.Fatalf("tear=%v n=%d: xfs_repair -n exit %d\n%s", tear, n, code, out)
			}
			dev, lg, st := openWriteDev(t, ours)
			if _, err := Recover(dev, fsGeometry(t, dev), lg, st, RecoverOptions{}); err != nil {
				t.Fatalf("tear=%v n=%d: xfsfree recovery: %v", tear, n, err)
			}
			dev.Close()
			if lo := sbLabel(t, ours); lo != l {
				t.Fatalf("tear=%v n=%d: label %q after our recovery, %q after the kernel's", tear, n, lo, l)
			}
			if out, code := testimg.TryRepair(t, ours); code != 0 {
				t.Fatalf("tear=%v n=%d: xfs_repair -n after our recovery: exit %d\n%s", tear, n, code, out)
			}
			t.Logf("tear=%v n=%d: committed %v, label %q, kernel recovery %v", tear, n, committed, l, rec)
		}
	}
}

// A buffer cancelled and then got again in the same transaction (a block
// freed and reused, as a btree join then split does) is revived: reading
// it meanwhile is refused, the commit logs it as a regular buffer (no
// cancel item), and the kernel replays its new contents.
func TestCancelledBufferRevived(t *testing.T) {
	testimg.Need(t)
	img := mkImage(t, nil)
	ss := openSession(t, img)
	tx := ss.s.Begin()
	b, err := tx.ReadBuf(0, ss.fg.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: ss.fg, AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	tx.Binval(b)
	if _, err := tx.ReadBuf(0, ss.fg.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: ss.fg, AG: 0}); err == nil {
		t.Fatal("ReadBuf of a buffer cancelled in the transaction succeeded")
	}
	b2, err := tx.GetBuf(0, ss.fg.SectBBs(), ondisk.KindSB)
	if err != nil || b2 != b {
		t.Fatalf("GetBuf after Binval: %v (same buffer %v)", err, b2 == b)
	}
	ss.setLabel(t, tx, "revived")
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if b.IsStale() {
		t.Fatal("revived buffer is STALE after commit")
	}
	// xfs_logprint shows the item's blf_flags: the superblock type
	// (0x9000) without XFS_BLF_CANCEL (0x2).
	if _, _, out := logprintCounts(t, img); !strings.Contains(out, "flags:0x9000") {
		t.Fatalf("the superblock is not logged as a regular buffer item:\n%s", out)
	}
	ss.crash()
	kernelRecover(t, img)
	if l := sbLabel(t, img); l != "revived" {
		t.Fatalf("label after kernel recovery %q, want %q", l, "revived")
	}
	testimg.Repair(t, img)
}

// opsSize is what Size must equal: the op stream of a checkpoint holding
// only tx, as a fresh session would format it, measured.
func opsSize(tx *Transaction) int64 {
	s := &Session{fg: tx.s.fg, items: map[int64]*bufItem{}, ctx: newCilCtx(1)}
	s.mergeLocked(tx, s.ctx)
	if len(s.ctx.items) == 0 && len(s.ctx.others) == 0 {
		return 0
	}
	var n int64
	for _, op := range s.formatLocked(s.ctx, 1, 0) {
		n += int64(ondisk.LogOpHeaderSize + len(op.data))
	}
	return n
}

// Size, kept as a running count, equals the size of the op stream the
// commit writes after every kind of change: ranges logged (overlapping,
// adjacent, far apart), inodes logged, a buffer cancelled, then revived.
func TestSizeRunningCount(t *testing.T) {
	testimg.Need(t)
	img := mkImage(t, nil)
	ss := openSession(t, img)
	tx := ss.s.Begin()
	defer tx.Cancel()
	check := func(step string) {
		t.Helper()
		if got, want := tx.Size(), opsSize(tx); got != want {
			t.Fatalf("%s: Size %d, op stream %d", step, got, want)
		}
	}
	check("empty")
	g := ss.fg
	sb, err := tx.ReadBuf(0, g.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: g, AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	check("joined, nothing logged")
	tx.LogRange(sb, 108, 119)
	check("label")
	tx.LogRange(sb, 0, 3)
	check("magic")
	tx.LogRange(sb, 100, 130)
	check("overlapping")
	agi, err := tx.ReadBuf(g.AGIDaddr(1), g.SectBBs(), ondisk.KindAGI, ondisk.VerifyCtx{G: g, AG: 1})
	if err != nil {
		t.Fatal(err)
	}
	ondisk.LogField(tx, agi, ondisk.AGIBucket(5))
	check("agi bucket")
	root, ok := g.ImapAligned(0, g.InoToAgino(g.SB.RootIno))
	if !ok {
		t.Skip("root inode location needs the inobt")
	}
	cl, err := tx.ReadBuf(root.Daddr, root.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	tx.LogInode(cl, root.Offset)
	check("inode")
	tx.Binval(cl)
	check("cancelled")
	if _, err := tx.GetBuf(root.Daddr, root.Len, ondisk.KindInodeCluster); err != nil {
		t.Fatal(err)
	}
	check("revived, nothing logged")
	tx.LogRange(cl, 0, 511)
	check("revived and logged")
}
