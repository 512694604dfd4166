package xfs

// The crash matrix of the free engine (issue 4, over the journal issue's
// definition): a `free` of several transactions on a frozen-snapshot
// fixture, crashed after every device write and torn at every device
// write, then
//
//   (a) `xfsfree recover` on the crashed image: the allocation state (per AG
//       agi count/freecount, free space as freeblks+flcount+btreeblks,
//       inobt and finobt records, the 64 unlinked bucket heads; the
//       superblock summary counters) must equal the state after exactly the
//       transactions whose commit records were durable at the crash — a
//       prefix of the run's transactions, never part of one; xfs_repair -n
//       finds nothing but the orphans still on the unlinked lists; then
//       `free --orphans` finishes the job and ends in the state of the
//       uncrashed run, which xfs_repair -n accepts.
//   (b) a kernel mount and unmount of another copy: the kernel replays the
//       log and then frees the remaining orphans itself, so it must end in
//       the uncrashed run's final state with every bucket empty, and
//       xfs_repair -n passes (if the crash left the log clean the kernel does
//       no orphan processing: it must then leave the state (a) found).
//
// Freed clusters: for every chunk freed by a transaction that recovery kept,
// the chunk's blocks must hold, after (a), after (b), and after (a)'s
// finishing run, exactly the bytes they held when that transaction
// committed (no checkpoint runs mid-free here, so those are the snapshot's
// original bytes: checked): no replayed or flushed copy of the old inodes
// is ever written over freed space. The uncrashed trace also shows that
// no device write touches a chunk after its free commits.
//
// The reference states S_0..S_T are recorded by crashing the same run right
// after each commit (the device write count when Free reports the commit's
// inodes) and recovering that image with `xfsfree recover`; S_0 must equal
// the image before the run and S_T the uncrashed run's result, which
// free_test.go compares with the kernel's own processing of the snapshot.
//
// Workers is 1 so that the run's device writes come in the same order every
// time (checked: the traces of two runs are equal); a write point N is then
// the same point of the same run in every crash.
//
// Which points run:
//   - TestFreeCrashMatrixSmall (always, also under -short): `--ino` of the 18
//     orphans of AG 1's chunk 576 (all its allocated inodes: the chunk is
//     freed) and the one orphan of AG 2, BatchInodes 5: 5 free transactions
//     (four in AG 1, the last freeing the chunk, one in AG 2) plus Finish's
//     superblock transaction, checkpoint and unmount record. Every write
//     point, crashed and torn.
//   - TestFreeCrashMatrixOrphans (skipped under -short): `--orphans` (313
//     orphans, 4 AGs, 5 chunks freed) with BatchInodes 8: ~45 transactions.
//     Each point needs two image copies, a recovery, a kernel mount and three
//     xfs_repair runs, so it samples: every point from one before to one
//     after each commit, every point of the final checkpoint and unmount
//     record, and every 5th point besides, crashed and torn.

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// fsState is the allocation state compared across crashes.
type fsState struct {
	ICount, IFree, FDBlocks uint64
	AGs                     []agState
}

type agState struct {
	Count, FreeCount uint64
	Space            uint64 // freeblks + flcount + btreeblks
	Inobt, Finobt    []testimg.Record
	Unlinked         [64]uint32
}

func (s fsState) key() string { return fmt.Sprintf("%+v", s) }

func (s fsState) orphanBuckets() int {
	n := 0
	for _, a := range s.AGs {
		for _, h := range a.Unlinked {
			if h != testimg.NullAgino {
				n++
			}
		}
	}
	return n
}

// diff describes how s differs from w, for failure messages.
func (s fsState) diff(w fsState) string {
	var b strings.Builder
	if s.ICount != w.ICount || s.IFree != w.IFree || s.FDBlocks != w.FDBlocks {
		fmt.Fprintf(&b, "sb icount/ifree/fdblocks %d/%d/%d, want %d/%d/%d; ", s.ICount, s.IFree, s.FDBlocks, w.ICount, w.IFree, w.FDBlocks)
	}
	for i := range min(len(s.AGs), len(w.AGs)) {
		g, x := s.AGs[i], w.AGs[i]
		if g.Count != x.Count || g.FreeCount != x.FreeCount || g.Space != x.Space {
			fmt.Fprintf(&b, "AG %d count/freecount/space %d/%d/%d, want %d/%d/%d; ", i, g.Count, g.FreeCount, g.Space, x.Count, x.FreeCount, x.Space)
		}
		if fmt.Sprint(g.Inobt) != fmt.Sprint(x.Inobt) {
			fmt.Fprintf(&b, "AG %d inobt %v, want %v; ", i, g.Inobt, x.Inobt)
		}
		if fmt.Sprint(g.Finobt) != fmt.Sprint(x.Finobt) {
			fmt.Fprintf(&b, "AG %d finobt %v, want %v; ", i, g.Finobt, x.Finobt)
		}
		if g.Unlinked != x.Unlinked {
			fmt.Fprintf(&b, "AG %d unlinked differ; ", i)
		}
	}
	return b.String()
}

// readState reads the allocation state with xfs_db, in few runs: one for
// the superblock, AGIs and AGFs, and one per btree level for the inobt and
// finobt of every AG at once.
func readState(t testing.TB, img string, g *ondisk.Geometry) fsState {
	t.Helper()
	agcount := g.AGCount
	cmds := []string{"sb 0", "p icount ifree fdblocks"}
	for agno := range agcount {
		cmds = append(cmds, fmt.Sprintf("agi %d", agno), "p count freecount root level free_root free_level unlinked",
			fmt.Sprintf("agf %d", agno), "p freeblks flcount btreeblks")
	}
	fields := testimg.ParseFieldList(testimg.DB(t, img, cmds...))
	want := []string{"icount", "ifree", "fdblocks"}
	for range agcount {
		want = append(want, "count", "freecount", "root", "level", "free_root", "free_level", "unlinked[0-63]", "freeblks", "flcount", "btreeblks")
	}
	if len(fields) != len(want) {
		t.Fatalf("xfs_db printed %d fields, want %d: %v", len(fields), len(want), fields)
	}
	u := func(i int) uint64 {
		if fields[i].Name != want[i] {
			t.Fatalf("xfs_db field %d is %s, want %s", i, fields[i].Name, want[i])
		}
		if want[i] == "unlinked[0-63]" {
			return 0
		}
		v, err := testimg.ParseUint(fields[i].Value)
		if err != nil {
			t.Fatalf("xfs_db %s = %q: %v", want[i], fields[i].Value, err)
		}
		return v
	}
	s := fsState{ICount: u(0), IFree: u(1), FDBlocks: u(2), AGs: make([]agState, agcount)}
	type tree struct {
		agno   uint32
		fin    bool
		level  uint64
		blocks []uint64
	}
	var trees []*tree
	for agno := range agcount {
		i := 3 + int(agno)*10
		a := &s.AGs[agno]
		a.Count, a.FreeCount = u(i), u(i+1)
		trees = append(trees, &tree{agno: agno, level: u(i + 3), blocks: []uint64{u(i + 2)}})
		trees = append(trees, &tree{agno: agno, fin: true, level: u(i + 5), blocks: []uint64{u(i + 4)}})
		u(i + 6)
		b, err := testimg.ParseUnlinked("unlinked[0-63] = " + fields[i+6].Value)
		if err != nil {
			t.Fatal(err)
		}
		a.Unlinked = b
		a.Space = u(i+7) + u(i+8) + u(i+9)
	}
	// Walk all trees level by level; each printed block starts with its
	// magic number.
	for {
		var cmds []string
		var owners []*tree
		for _, tr := range trees {
			typ := "inobt"
			if tr.fin {
				typ = "finobt"
			}
			for _, b := range tr.blocks {
				cmds = append(cmds, fmt.Sprintf("fsblock %d", uint64(tr.agno)<<g.AGBlkLog|b), "type "+typ, "p")
				owners = append(owners, tr)
			}
		}
		if len(cmds) == 0 {
			break
		}
		out := testimg.DB(t, img, cmds...)
		parts := regexp.MustCompile(`(?m)^magic = `).Split(out, -1)[1:]
		if len(parts) != len(owners) {
			t.Fatalf("xfs_db printed %d btree blocks, want %d", len(parts), len(owners))
		}
		for _, tr := range trees {
			tr.blocks = nil
		}
		for i, p := range parts {
			tr := owners[i]
			if tr.level > 1 {
				ptrs, _ := testimg.ParseArray(p, "ptrs")
				for _, e := range ptrs {
					v, err := testimg.ParseUint(e.Value)
					if err != nil {
						t.Fatalf("ptr %q: %v", e.Value, err)
					}
					tr.blocks = append(tr.blocks, v)
				}
				continue
			}
			recs, err := testimg.ParseRecords(p, "recs")
			if err != nil {
				t.Fatal(err)
			}
			a := &s.AGs[tr.agno]
			if tr.fin {
				a.Finobt = append(a.Finobt, recs...)
			} else {
				a.Inobt = append(a.Inobt, recs...)
			}
		}
		for _, tr := range trees {
			tr.level--
		}
	}
	return s
}

// traceWrite is one device write: where and how many bytes.
type traceWrite struct {
	Daddr int64
	Len   int
}

// freeTrace is what a run of Free did to the device.
type freeTrace struct {
	writes  []traceWrite // the writes that reached the device
	commits []int        // writes done when each free transaction had committed
	rep     *FreeReport
	err     error
}

// freeCrash runs Free(o) on img with one AG worker, crashing the device
// after `after` writes (-1: never) or tearing write `tear` (0: never), and
// records the writes that reached the device and the commit boundaries
// (the write count whenever Free reports freed inodes: it reports them
// right after their transaction's commit).
func freeCrash(t testing.TB, img string, o FreeOptions, after, tear int) freeTrace {
	t.Helper()
	fs, err := OpenWrite(img, Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	var mu sync.Mutex
	var tr freeTrace
	crash := CrashHook(fs.Dev, after, tear, nil)
	fs.Dev.SetWriteHook(func(daddr int64, b []byte) (bool, error) {
		ok, err := crash(daddr, b)
		if ok {
			mu.Lock()
			tr.writes = append(tr.writes, traceWrite{daddr, len(b)})
			mu.Unlock()
		}
		return ok, err
	})
	o.Progress = func(done, total int) {
		mu.Lock()
		if n := len(tr.writes); len(tr.commits) == 0 || tr.commits[len(tr.commits)-1] != n {
			tr.commits = append(tr.commits, n)
		}
		mu.Unlock()
	}
	tr.rep, tr.err = fs.Free(o)
	return tr
}

// chunkKey names an inode chunk.
type chunkKey struct{ AG, StartAgino uint32 }

// byteRange is a range of the image, in bytes.
type byteRange struct{ Off, Len int64 }

func (r byteRange) overlaps(w traceWrite) bool {
	o := w.Daddr * ondisk.BBSize
	return o < r.Off+r.Len && r.Off < o+int64(w.Len)
}

func readRange(t testing.TB, img string, r byteRange) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, r.Len)
	if _, err := f.ReadAt(b, r.Off); err != nil {
		t.Fatal(err)
	}
	return b
}

// crashMatrix is a run under test and its reference.
type crashMatrix struct {
	base    string      // recovered snapshot: clean log, orphans on the lists
	o       FreeOptions // the run crashed
	g       *ondisk.Geometry
	orphans map[uint64]bool // the inodes on the unlinked lists of base
	tr      freeTrace       // the uncrashed run
	states  []fsState       // S_k: after the first k free transactions
	final   fsState         // the uncrashed run, then free --orphans
	// chunks freed by the run: the transaction that freed each, its byte
	// ranges and the bytes they held when that transaction committed.
	freedAt map[chunkKey]int
	ranges  map[chunkKey][]byteRange
	bytesAt map[chunkKey][][]byte
}

// newCrashMatrix recovers the fixture, traces the uncrashed run twice
// (they must write the same), and records the states after each commit
// and the bytes of every chunk the run frees.
func newCrashMatrix(t *testing.T, fixture string, o FreeOptions) *crashMatrix {
	t.Helper()
	testimg.Need(t, "xfs_db", "xfs_repair", "loop")
	m := &crashMatrix{o: o, orphans: map[uint64]bool{}, freedAt: map[chunkKey]int{},
		ranges: map[chunkKey][]byteRange{}, bytesAt: map[chunkKey][][]byte{}}
	m.base = testimg.Path(t, fixture)
	if _, err := Recover(m.base, RecoverOptions{}); err != nil {
		t.Fatal(err)
	}
	fs := openRO(t, m.base)
	m.g = fs.G
	for agno := range fs.G.AGCount {
		st, err := fs.ScanAG(agno)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Chains {
			for _, in := range c.Inodes {
				m.orphans[in.Ino] = true
			}
		}
	}
	fs.Close()
	s0 := readState(t, m.base, m.g)

	done := copyImg(t, m.base)
	m.tr = freeCrash(t, done, o, -1, 0)
	if m.tr.err != nil || m.tr.rep.Failed() {
		t.Fatalf("uncrashed run: %v; refused %v, errors %v", m.tr.err, m.tr.rep.Refused, m.tr.rep.Errors)
	}
	again := freeCrash(t, copyImg(t, m.base), o, -1, 0)
	if !slices.Equal(again.writes, m.tr.writes) || !slices.Equal(again.commits, m.tr.commits) {
		t.Fatalf("two uncrashed runs wrote differently: %d writes, commits %v; then %d writes, commits %v",
			len(m.tr.writes), m.tr.commits, len(again.writes), again.commits)
	}
	T := len(m.tr.commits)
	// Finish adds the superblock counters' transaction to the report.
	if T != m.tr.rep.Transactions || T < 3 || len(m.tr.rep.Chunks) == 0 {
		t.Fatalf("%d commit boundaries seen, the report says %d transactions, %d chunks freed (want at least 3 and 1)",
			T, m.tr.rep.Transactions, len(m.tr.rep.Chunks))
	}
	m.repairOrphansOnly(t, done, true, "uncrashed run")
	sDone := readState(t, done, m.g)
	runFree(t, done, FreeOptions{Orphans: true})
	testimg.Repair(t, done)
	m.final = readState(t, done, m.g)
	if n := m.final.orphanBuckets(); n != 0 {
		t.Fatalf("%d buckets in use after the uncrashed run and free --orphans", n)
	}

	// The chunks the run frees, where they are, and what they hold now.
	for _, c := range m.tr.rep.Chunks {
		k := chunkKey{c.AG, c.StartAgino}
		var hole uint64
		found := false
		for _, r := range s0.AGs[c.AG].Inobt {
			if uint32(r["startino"]) == c.StartAgino {
				hole, found = r["holemask"], true
			}
		}
		if !found {
			t.Fatalf("freed chunk %+v has no inobt record before the run", k)
		}
		for _, e := range m.g.ChunkExtents(c.StartAgino, uint16(hole)) {
			m.ranges[k] = append(m.ranges[k], byteRange{m.g.AgbToDaddr(c.AG, e.Agbno) * ondisk.BBSize, int64(e.Len) * int64(m.g.BlockSize)})
		}
	}

	// S_0 is the image before the run; S_k the recovery of a crash right
	// after commit k.
	for k := 0; k <= T; k++ {
		img := copyImg(t, m.base)
		if k > 0 {
			freeCrash(t, img, o, m.tr.commits[k-1], 0)
		}
		before := map[chunkKey][][]byte{}
		for c, rs := range m.ranges {
			for _, r := range rs {
				before[c] = append(before[c], readRange(t, img, r))
			}
		}
		if _, err := Recover(img, RecoverOptions{}); err != nil {
			t.Fatalf("recover after commit %d: %v", k, err)
		}
		s := readState(t, img, m.g)
		switch {
		case k == 0 && s.key() != s0.key():
			t.Fatalf("crash before any write: recovered state differs from the image before the run: %s", s.diff(s0))
		case k > 0 && s.key() == m.states[k-1].key():
			t.Fatalf("S_%d equals S_%d: the transaction changed nothing", k, k-1)
		case k == T && s.key() != sDone.key():
			t.Fatalf("recovery of a crash after the last commit differs from the uncrashed run: %s", s.diff(sDone))
		}
		if k > 0 {
			for c := range m.ranges {
				if hasRec(m.states[k-1], c) && !hasRec(s, c) {
					m.freedAt[c] = k
					m.bytesAt[c] = before[c]
				}
			}
		}
		m.states = append(m.states, s)
	}
	for c, rs := range m.ranges {
		k, ok := m.freedAt[c]
		if !ok {
			t.Fatalf("chunk %+v, freed by the run, is in every S_k", c)
		}
		// No write after the chunk's free reached it; and it still holds
		// the snapshot's bytes (no checkpoint ran before its free).
		for i, r := range rs {
			for n, w := range m.tr.writes {
				if n >= m.tr.commits[k-1] && r.overlaps(w) {
					t.Errorf("write %d (daddr %d, %d bytes) of the uncrashed run reaches chunk %+v, freed by transaction %d (commit at write %d)",
						n+1, w.Daddr, w.Len, c, k, m.tr.commits[k-1])
				}
			}
			if !bytes.Equal(m.bytesAt[c][i], readRange(t, m.base, r)) {
				t.Errorf("chunk %+v: its blocks changed before its free committed", c)
			}
		}
	}
	t.Logf("%s %+v: %d writes, %d free transactions, commits at writes %v; chunks freed by transaction: %v",
		fixture, optsString(o), len(m.tr.writes), T, m.tr.commits, m.freedAt)
	return m
}

func optsString(o FreeOptions) string {
	return fmt.Sprintf("orphans=%v inos=%d batch=%d", o.Orphans, len(o.Inos), o.BatchInodes)
}

func hasRec(s fsState, c chunkKey) bool {
	return slices.ContainsFunc(s.AGs[c.AG].Inobt, func(r testimg.Record) bool { return uint32(r["startino"]) == c.StartAgino })
}

// committedAt is how many free transactions are durable once the first n
// writes reached the device whole.
func (m *crashMatrix) committedAt(n int) int {
	k := 0
	for _, c := range m.tr.commits {
		if c <= n {
			k++
		}
	}
	return k
}

// checkChunks checks that every chunk freed by one of the first k
// transactions holds the bytes it held when its free committed.
func (m *crashMatrix) checkChunks(t *testing.T, img string, k int, what string) {
	t.Helper()
	for c, rs := range m.ranges {
		if m.freedAt[c] > k {
			continue
		}
		for i, r := range rs {
			if got := readRange(t, img, r); !bytes.Equal(got, m.bytesAt[c][i]) {
				t.Errorf("%s: chunk %+v (freed by transaction %d) was written over: bytes %d+%d differ from those it held at its free",
					what, c, m.freedAt[c], r.Off, r.Len)
			}
		}
	}
}

var (
	repairOrphanLine = regexp.MustCompile(`^(?:agi unlinked bucket \d+ is \d+ in ag \d+ \(inode=(\d+)\)|` +
		`disconnected (?:dir )?inode (\d+), would move to lost\+found|` +
		`would have reset inode (\d+) nlinks from 0 to \d+|` +
		`Would clear next_unlinked in inode (\d+))$`)
	repairProgressLine = regexp.MustCompile(`^(?:Phase \d|\s+- |Cannot get host filesystem geometry|Repair may fail if|` +
		`the image and the host filesystem|No modify flag set|\s*$)`)
)

// repairOrphansOnly runs xfs_repair -n. With orphans left on the unlinked
// lists (orphans true) it accepts exit 1 if every complaint is about one of
// the snapshot's orphans (xfs_repair -n says the same of the snapshot
// itself); otherwise it wants exit 0.
func (m *crashMatrix) repairOrphansOnly(t *testing.T, img string, orphans bool, what string) {
	t.Helper()
	out, code := testimg.TryRepair(t, img)
	if code == 0 {
		return
	}
	if !orphans || code != 1 {
		t.Fatalf("%s: xfs_repair -n exit %d\n%s", what, code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if repairProgressLine.MatchString(line) {
			continue
		}
		sm := repairOrphanLine.FindStringSubmatch(line)
		if sm == nil {
			t.Fatalf("%s: xfs_repair -n: %q is not about an orphan\n%s", what, line, out)
		}
		for _, v := range sm[1:] {
			if v == "" {
				continue
			}
			if ino, _ := strconv.ParseUint(v, 10, 64); !m.orphans[ino] {
				t.Fatalf("%s: xfs_repair -n: %q: inode %d was not an orphan\n%s", what, line, ino, out)
			}
		}
	}
}

// pointResult is one crash point's outcome.
type pointResult struct {
	prefix   int  // our recovery's state is S_prefix
	kernelRc bool // the kernel replayed the log
}

// runPoint crashes the run at one write point and checks both recoveries.
func (m *crashMatrix) runPoint(t *testing.T, n int, tear bool) pointResult {
	img := copyImg(t, m.base)
	after, tearAt, durable := n, 0, m.committedAt(n)
	if tear {
		after, tearAt, durable = -1, n, m.committedAt(n-1)
	}
	tr := freeCrash(t, img, m.o, after, tearAt)
	if tr.err == nil && n < len(m.tr.writes) {
		t.Fatalf("the run crashed at write %d returned no error", n)
	}
	kimg := copyImg(t, img)

	// (a) xfsfree recover.
	if _, err := Recover(img, RecoverOptions{}); err != nil {
		t.Fatalf("xfsfree recover: %v", err)
	}
	s := readState(t, img, m.g)
	j := slices.IndexFunc(m.states, func(x fsState) bool { return x.key() == s.key() })
	if j < 0 {
		t.Fatalf("recovered state is no prefix of the transactions (%d durable): %s", durable, s.diff(m.states[durable]))
	}
	if j != durable {
		t.Fatalf("recovered state is S_%d, but %d transactions were durable at the crash", j, durable)
	}
	m.repairOrphansOnly(t, img, s.orphanBuckets() > 0, "after xfsfree recover")
	m.checkChunks(t, img, j, "after xfsfree recover")
	rep := runFree(t, img, FreeOptions{Orphans: true})
	if rep.Failed() {
		t.Fatalf("free --orphans after recovery: refused %v, errors %v", rep.Refused, rep.Errors)
	}
	if f := readState(t, img, m.g); f.key() != m.final.key() {
		t.Fatalf("free --orphans after recovery ends elsewhere than the uncrashed run: %s", f.diff(m.final))
	}
	testimg.Repair(t, img)
	m.checkChunks(t, img, j, "after xfsfree recover and free --orphans")

	// (b) the kernel, on a copy of the crashed image.
	fs := openRO(t, kimg)
	st, err := fs.LogState()
	fs.Close()
	if err != nil {
		t.Fatal(err)
	}
	testimg.Unmount(t, testimg.Mount(t, kimg, "nouuid"))
	ks := readState(t, kimg, m.g)
	if st.Clean {
		// No recovery, so no orphan processing: the state our recovery found.
		if ks.key() != s.key() {
			t.Fatalf("kernel mount of a clean log changed the state: %s", ks.diff(s))
		}
		m.repairOrphansOnly(t, kimg, ks.orphanBuckets() > 0, "after the kernel's mount")
	} else {
		if n := ks.orphanBuckets(); n != 0 {
			t.Fatalf("kernel recovery left %d buckets in use", n)
		}
		if ks.key() != m.final.key() {
			t.Fatalf("kernel recovery and orphan processing end elsewhere than the uncrashed run: %s", ks.diff(m.final))
		}
		testimg.Repair(t, kimg)
	}
	m.checkChunks(t, kimg, j, "after the kernel's mount")
	return pointResult{prefix: j, kernelRc: !st.Clean}
}

// run runs the given write points (crashed, and torn) as parallel
// subtests and logs a summary.
func (m *crashMatrix) run(t *testing.T, crash, tear []int) {
	var mu sync.Mutex
	prefixes := map[int]int{}
	kernel := 0
	t.Run("points", func(t *testing.T) {
		for _, torn := range []bool{false, true} {
			pts := crash
			if torn {
				pts = tear
			}
			for _, n := range pts {
				name := fmt.Sprintf("crash=%d", n)
				if torn {
					name = fmt.Sprintf("tear=%d", n)
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					r := m.runPoint(t, n, torn)
					mu.Lock()
					prefixes[r.prefix]++
					if r.kernelRc {
						kernel++
					}
					mu.Unlock()
				})
			}
		}
	})
	var ks []int
	for k := range prefixes {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, " S_%d:%d", k, prefixes[k])
	}
	t.Logf("%d crash points and %d torn writes of %d writes; recovered states (state: points):%s; kernel log recoveries: %d",
		len(crash), len(tear), len(m.tr.writes), b.String(), kernel)
}

// TestFreeCrashMatrixSmall crashes `free --ino` (AG 1's chunk 576, whose
// 18 allocated inodes are all orphans, and AG 2's one orphan; 5 per
// transaction) at every write point and tears every write.
func TestFreeCrashMatrixSmall(t *testing.T) {
	testimg.Need(t, "zstd", "xfs_db", "xfs_repair", "loop")
	g := testimg.Geo(t, testimg.Path(t, "orphans"))
	var inos []uint64
	for i := uint32(576); i < 576+18; i++ {
		inos = append(inos, g.Ino(1, i))
	}
	inos = append(inos, 655492) // AG 2's orphan
	m := newCrashMatrix(t, "orphans", FreeOptions{Inos: inos, BatchInodes: 5})
	if len(m.tr.rep.Chunks) != 1 || m.tr.rep.InodesFreed != len(inos) {
		t.Fatalf("the run frees %d inodes and %d chunks; want %d and 1", m.tr.rep.InodesFreed, len(m.tr.rep.Chunks), len(inos))
	}
	var crash, tear []int
	for n := 0; n <= len(m.tr.writes); n++ {
		crash = append(crash, n)
		if n > 0 {
			tear = append(tear, n)
		}
	}
	m.run(t, crash, tear)
}

// TestFreeCrashMatrixOrphans crashes `free --orphans` (313 orphans, 8 per
// transaction) at a sample of its write points: see the file's comment.
func TestFreeCrashMatrixOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("the sampled crash matrix over free --orphans is not run under -short")
	}
	testimg.Need(t, "zstd", "xfs_db", "xfs_repair", "loop")
	m := newCrashMatrix(t, "orphans", FreeOptions{Orphans: true, BatchInodes: 8})
	total := len(m.tr.writes)
	pick := map[int]bool{0: true, total: true}
	for _, c := range m.tr.commits {
		for n := c - 1; n <= c+1; n++ {
			pick[n] = true
		}
	}
	// Finish: its transaction, the checkpoint and the unmount record.
	for n := m.tr.commits[len(m.tr.commits)-1]; n <= total; n++ {
		pick[n] = true
	}
	for n := 0; n <= total; n += 5 {
		pick[n] = true
	}
	var crash, tear []int
	for n := range pick {
		if n < 0 || n > total {
			continue
		}
		crash = append(crash, n)
		if n > 0 {
			tear = append(tear, n)
		}
	}
	sort.Ints(crash)
	sort.Ints(tear)
	m.run(t, crash, tear)
}
