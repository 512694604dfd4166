package journal

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// mkImage makes a 300 MiB image with mkfs.xfs and extra options.
func mkImage(t *testing.T, env []string, opts ...string) string {
	t.Helper()
	testimg.Need(t, "mkfs.xfs", "xfs_logprint")
	img := filepath.Join(t.TempDir(), "x.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 300<<20); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mkfs.xfs", append(append([]string{"-q", "-f"}, opts...), img)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %v: %v\n%s", opts, err, out)
	}
	return img
}

// openLog opens the internal log of an image.
func openLog(t *testing.T, img string) *Log {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, 0); err != nil {
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
	lg, err := NewGeometry(g)
	if err != nil {
		t.Fatal(err)
	}
	return New(ReaderAtDev{f}, lg)
}

var logprintState = regexp.MustCompile(`log tail: (\d+) head: (\d+) state: <(\w+)>`)

// logprintHeadTail runs `xfs_logprint -t` and returns the tail, head and
// state it prints ("    log tail: 2 head: 2 state: <CLEAN>").
func logprintHeadTail(t *testing.T, img string) (tail, head int64, clean bool, out string) {
	t.Helper()
	o, err := exec.Command("xfs_logprint", "-t", img).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_logprint -t: %v\n%s", err, o)
	}
	m := logprintState.FindStringSubmatch(string(o))
	if m == nil {
		t.Fatalf("xfs_logprint -t: no head/tail line in\n%s", o)
	}
	tail, _ = strconv.ParseInt(m[1], 10, 64)
	head, _ = strconv.ParseInt(m[2], 10, 64)
	return tail, head, m[3] == "CLEAN", string(o)
}

var (
	logprintTrans = regexp.MustCompile(`^TRANS: tid:0x([0-9a-f]+)\s+#items:(\d+)`)
	logprintItem  = regexp.MustCompile(`^([A-Z_]+): cnt:(\d+) total:(\d+)`)
)

// logprintItems parses the transactional view of `xfs_logprint -t`: for each
// committed transaction, in order, its tid and items as "NAME cnt/total".
func logprintItems(out string) (tids []uint32, items map[uint32][]string) {
	items = map[uint32][]string{}
	var cur uint32
	in := false
	for _, line := range strings.Split(out, "\n") {
		if m := logprintTrans.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[1], 16, 32)
			cur, in = uint32(v), true
			tids = append(tids, cur)
			continue
		}
		if strings.HasPrefix(line, "LOG REC") {
			in = false
			continue
		}
		if m := logprintItem.FindStringSubmatch(line); m != nil && in {
			items[cur] = append(items[cur], fmt.Sprintf("%s %s/%s", m[1], m[2], m[3]))
		}
	}
	return tids, items
}

// logprintName is the name xfs_logprint prints for an item type.
func logprintName(typ uint16) string {
	switch typ {
	case ondisk.LIBuf:
		return "BUF"
	case ondisk.LIInode:
		return "INO"
	case ondisk.LIIcreate:
		return "ICR"
	case ondisk.LIEFI:
		return "EFI"
	case ondisk.LIEFD:
		return "EFD"
	}
	return ondisk.LogItemName(typ)
}

// checkAgainstLogprint compares our State with xfs_logprint's head and tail.
func checkAgainstLogprint(t *testing.T, img string, wantClean bool) (*Log, *State, string) {
	t.Helper()
	l := openLog(t, img)
	st, err := l.FindTail()
	if err != nil {
		t.Fatalf("FindTail: %v", err)
	}
	tail, head, clean, out := logprintHeadTail(t, img)
	t.Logf("ours: %v; xfs_logprint: tail %d head %d clean %v", st, tail, head, clean)
	if st.Head != head || st.Tail != tail || st.Clean != clean {
		t.Errorf("head/tail/clean = %d/%d/%v, xfs_logprint says %d/%d/%v", st.Head, st.Tail, st.Clean, head, tail, clean)
	}
	if st.Clean != wantClean {
		t.Errorf("clean = %v, want %v", st.Clean, wantClean)
	}
	if st.Torn || st.TailMoved {
		t.Errorf("unexpected torn write / tail move on a real log: %v", st)
	}
	return l, st, out
}

// checkTransactions walks a dirty log's records (every CRC must verify) and
// compares the committed transactions with xfs_logprint -t's.
func checkTransactions(t *testing.T, l *Log, st *State, out string) (nTrans, nItems int) {
	t.Helper()
	nrec, nwrapped := 0, 0
	err := l.Records(st.Head, st.Tail, func(r *Record) error {
		nrec++
		if r.Wrapped {
			nwrapped++
		}
		if !r.CRCOK {
			t.Errorf("record at block %d (lsn %v): CRC stored %#x computed %#x", r.Block, r.Header.LSN, r.CRCStored, r.CRCComputed)
		}
		if _, err := SplitOps(r); err != nil {
			t.Errorf("SplitOps: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	var got []*RecoveredTrans
	open, err := l.Transactions(st.Head, st.Tail, func(tr *RecoveredTrans) error {
		got = append(got, tr)
		return nil
	})
	if err != nil {
		t.Fatalf("Transactions: %v", err)
	}
	tids, want := logprintItems(out)
	if len(got) != len(tids) {
		t.Errorf("%d transactions, xfs_logprint prints %d", len(got), len(tids))
	}
	for i, tr := range got {
		if i >= len(tids) {
			break
		}
		if tr.Tid != tids[i] {
			t.Errorf("transaction %d: tid %#x, xfs_logprint %#x", i, tr.Tid, tids[i])
			continue
		}
		if tr.Header.Magic != ondisk.TransHeaderMagic || tr.Header.Type != ondisk.TransCheckpoint {
			t.Errorf("tid %#x: trans header %+v", tr.Tid, tr.Header)
		}
		var items []string
		for _, it := range tr.Items {
			items = append(items, fmt.Sprintf("%s %d/%d", logprintName(it.Type), len(it.Regions), it.Total))
			checkItem(t, it)
		}
		if strings.Join(items, ",") != strings.Join(want[tr.Tid], ",") {
			t.Errorf("tid %#x items:\n ours     %v\n logprint %v", tr.Tid, items, want[tr.Tid])
		}
		nItems += len(items)
	}
	t.Logf("%d records (%d crossing the log end), %d transactions, %d items, %d open at the head", nrec, nwrapped, len(got), nItems, len(open))
	return len(got), nItems
}

// checkItem decodes the format region of the item kinds we know.
func checkItem(t *testing.T, it *Item) {
	t.Helper()
	switch it.Type {
	case ondisk.LIBuf:
		f, err := ondisk.DecodeBufLogFormat(it.Regions[0])
		if err != nil {
			t.Errorf("buf log format: %v", err)
			return
		}
		if f.Flags&ondisk.BlfCancel == 0 && len(f.Runs())+1 != int(f.Size) {
			t.Errorf("buf item at daddr %d: %d dirty runs, blf_size %d", f.Blkno, len(f.Runs()), f.Size)
		}
		if int(f.Size) != len(it.Regions) {
			t.Errorf("buf item at daddr %d: blf_size %d, %d regions", f.Blkno, f.Size, len(it.Regions))
		}
		for i, run := range f.Runs() {
			if i+1 < len(it.Regions) && len(it.Regions[i+1]) != run.N*ondisk.BlfChunk {
				t.Errorf("buf item at daddr %d: region %d is %d bytes, run of %d chunks", f.Blkno, i+1, len(it.Regions[i+1]), run.N)
			}
		}
	case ondisk.LIInode:
		f, err := ondisk.DecodeInodeLogFormat(it.Regions[0])
		if err != nil {
			t.Errorf("inode log format: %v", err)
			return
		}
		if f.Fields&ondisk.ILogCore != 0 {
			d, err := ondisk.DecodeLogDinode(it.Regions[1])
			if err != nil {
				t.Errorf("log dinode: %v", err)
				return
			}
			if d.Magic != 0x494e || d.Ino != f.Ino {
				t.Errorf("inode item %d: log dinode magic %#x ino %d", f.Ino, d.Magic, d.Ino)
			}
		}
	case ondisk.LIIcreate:
		c, err := ondisk.DecodeIcreateLog(it.Regions[0])
		if err != nil {
			t.Errorf("icreate: %v", err)
			return
		}
		if c.Count == 0 || c.ISize < 256 || c.Length == 0 {
			t.Errorf("icreate: %+v", c)
		}
	}
}

var mkfsVariants = []struct {
	name string
	opts []string
}{
	{"default", nil},
	{"sect4096", []string{"-s", "size=4096"}},
	{"lsunit32k", []string{"-l", "sunit=64"}},
	{"lsu64k", []string{"-l", "su=64k"}},
	{"lsu256k", []string{"-l", "su=256k"}},
	{"bs1024", []string{"-b", "size=1024"}},
}

func TestFreshMkfs(t *testing.T) {
	for _, v := range mkfsVariants {
		t.Run(v.name, func(t *testing.T) {
			img := mkImage(t, nil, v.opts...)
			_, st, _ := checkAgainstLogprint(t, img, true)
			if !st.Unmounted || st.HeadCycle != 1 || st.LastRecord != 0 {
				t.Errorf("fresh log: %v", st)
			}
		})
	}
}

// exercise creates and removes files under mnt.
func exercise(t *testing.T, mnt string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), []byte("hi\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 3 {
		if err := os.Remove(filepath.Join(mnt, fmt.Sprintf("f%d", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	testimg.Need(t, name)
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func TestKernelClean(t *testing.T) {
	for _, v := range mkfsVariants {
		t.Run(v.name, func(t *testing.T) {
			img := mkImage(t, nil, v.opts...)
			mnt := testimg.Mount(t, img)
			exercise(t, mnt, 100)
			testimg.Unmount(t, mnt)
			_, st, _ := checkAgainstLogprint(t, img, true)
			if !st.Unmounted || st.Head <= 2 {
				t.Errorf("after a kernel mount: %v", st)
			}
		})
	}
}

// TestDirtyFreeze copies a frozen mount: the snapshot case of the design.
func TestDirtyFreeze(t *testing.T) {
	img := mkImage(t, nil)
	mnt := testimg.Mount(t, img)
	exercise(t, mnt, 100)
	run(t, "sync")
	exercise2 := filepath.Join(mnt, "late")
	if err := os.WriteFile(exercise2, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "xfs_freeze", "-f", mnt)
	snap := filepath.Join(t.TempDir(), "snap.img")
	cpErr := exec.Command("cp", "--sparse=always", img, snap).Run()
	run(t, "xfs_freeze", "-u", mnt)
	if cpErr != nil {
		t.Fatal(cpErr)
	}
	testimg.Unmount(t, mnt)
	l, st, out := checkAgainstLogprint(t, snap, false)
	if st.Unmounted {
		t.Errorf("frozen copy has an unmount record: %v", st)
	}
	if n, _ := checkTransactions(t, l, st, out); n == 0 {
		t.Errorf("no transactions in a dirty log")
	}
}

// TestDirtyShutdown leaves the kernel's log unflushed in place with a
// forced shutdown (xfs_io -x -c 'shutdown -f'): many items per checkpoint.
func TestDirtyShutdown(t *testing.T) {
	for _, v := range mkfsVariants {
		t.Run(v.name, func(t *testing.T) {
			testimg.Need(t, "xfs_io")
			img := mkImage(t, nil, v.opts...)
			mnt := testimg.Mount(t, img)
			exercise(t, mnt, 300)
			run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
			testimg.Unmount(t, mnt)
			l, st, out := checkAgainstLogprint(t, img, false)
			_, items := checkTransactions(t, l, st, out)
			if items < 300 {
				t.Errorf("only %d items for 300 creates", items)
			}
		})
	}
}

// TestWrapped fills a small log (mkfs allows one below 64 MiB under the
// fstests environment variables) until its cycle passes 1 and, where the
// timing gives it, its active part crosses the physical end.
func TestWrapped(t *testing.T) {
	testimg.Need(t, "xfs_io", "sync")
	env := []string{"TEST_DEV=x", "TEST_DIR=/tmp", "QA_CHECK_FS=1"}
	var sawWrap bool
	for _, rounds := range []int{34, 33, 35, 32, 36, 40} {
		img := mkImage(t, env, "-l", "size=1368b")
		mnt := testimg.Mount(t, img)
		for r := 0; r < rounds; r++ {
			dir := filepath.Join(mnt, fmt.Sprintf("r%d", r))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 300; i++ {
				if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			run(t, "sync", "-f", mnt)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			run(t, "sync", "-f", mnt)
		}
		exercise(t, mnt, 30)
		run(t, "xfs_io", "-x", "-c", "shutdown -f", mnt)
		testimg.Unmount(t, mnt)
		l, st, out := checkAgainstLogprint(t, img, false)
		if st.HeadCycle < 2 {
			t.Errorf("%d rounds: head cycle %d, the log did not wrap", rounds, st.HeadCycle)
		}
		checkTransactions(t, l, st, out)
		if st.Tail > st.Head {
			sawWrap = true
			break
		}
	}
	if !sawWrap {
		t.Log("no run left the active log across the physical end (timing); wrapped cycles were still checked")
	}
}
