package xfs

// The crash matrix of the free engine (issue 4, over the journal issue's
// definition, with delayed logging since issue 10): a `free` of several
// transactions on a frozen-snapshot fixture (recovered with `xfsfree
// recover` first: clean log, orphans on the unlinked lists), gathered into
// several checkpoints (the test forces the log every 2 commits), crashed
// after every device write N and torn at every write N (only its first half
// of sectors reaches the device), then
//
//   (a) `xfsfree recover` on the crashed image: the allocation state (per AG
//       agi count/freecount, free space as freeblks+flcount+btreeblks,
//       inobt and finobt records, the 64 unlinked bucket heads; the
//       superblock summary counters) must equal S_j, the state after the
//       first j checkpoints, where j is the number of checkpoints the
//       journal reported durable before the crash (and the uncrashed trace
//       agrees: j commit records lie within the writes that reached the
//       device whole): a prefix of the commits, never part of a
//       checkpoint. xfs_repair -n finds nothing but the orphans still on the
//       unlinked lists; then `free --orphans` finishes the job and ends in
//       the uncrashed run's final state, and xfs_repair -n passes.
//   (b) a kernel mount and unmount of another copy: the kernel replays the
//       log and then frees the remaining orphans itself, so it must end in
//       the same final state with every bucket empty, and xfs_repair -n
//       passes. (If the crash left the log clean — no write, or the whole
//       run — the kernel does no orphan processing: it must leave the state
//       (a) found.)
//
// Freed clusters: for every chunk freed in one of the j checkpoints,
//   - no write of the crashed run reached the chunk after the commit record
//     of its checkpoint (the run's own trace);
//   - its bytes after (a), after (a)'s finishing run and after (b) equal
//     those at the crash: recovery replays no copy of its old inodes over
//     it, and nobody flushes one;
//   - unless a checkpoint wrote it in place before its free (inodes freed
//     by earlier transactions of the chunk), its bytes at the crash are
//     the snapshot's.
//
// The reference states S_0..S_T are recorded by crashing the same run
// right after each checkpoint's commit record and recovering that image
// with `xfsfree recover`. S_0 must equal the image before the run, S_T the
// uncrashed run's result (which free_test.go compares with the kernel's own
// processing of the snapshot), and each S_k differ from S_k-1.
//
// Workers is 1 so that the run's device writes come in the same order every
// time (checked: the traces of two uncrashed runs are equal), and a write
// point N is the same point of the same run in every crash. Forces and
// in-place checkpoints are made by the test, after fixed commits.
//
// The runs (the points run in parallel):
//   - TestFreeCrashMatrixSmall (always, also under -short): `--ino` of the
//     18 orphans of AG 1's chunk 576 (all its allocated inodes: the chunk
//     is freed) and the one orphan of AG 2, 5 a transaction, the log forced
//     every 2 commits; every write crashed and torn.
//   - TestFreeCrashMatrixOrphans (skipped under -short): `--orphans` (313
//     orphans in 4 AGs, 5 chunks freed), 16 a transaction, the log forced
//     every 2 commits and written in place every 4th, so that chunks are
//     written in place (their first inodes freed) before a later
//     checkpoint frees them; every write crashed and torn.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/journal"
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

// traceWrite is one device write that reached the device.
type traceWrite struct {
	Daddr int64
	Len   int
	Log   bool // to the log (a record, or the stale blocks cleared before the first)
}

// freeTrace is what a run of Free did to the device.
type freeTrace struct {
	writes []traceWrite
	// commits[k-1] is the number of writes up to and including the last
	// log write of checkpoint k: its commit record's (the writes a push
	// made before it reported the checkpoint durable).
	commits []int
	rep     *FreeReport
	err     error
}

// freeCrash runs Free(o) on img with one AG worker, crashing the device
// after `after` writes (-1: never) or tearing write `tear` (0: never), and
// records the writes that reached the device and the checkpoint boundaries
// (the journal's durable hook: the last log write then). Every forceEvery-th
// commit it forces the log (a checkpoint of the commits since the last
// one); with ckptEvery > 0 it also checkpoints in place (as the background
// writeback would) after every ckptEvery-th commit: between two
// transactions, so that inodes freed by one are written into their cluster
// before a later one frees the chunk.
func freeCrash(t testing.TB, img string, o FreeOptions, forceEvery, ckptEvery, after, tear int) freeTrace {
	t.Helper()
	var fs *FS
	err := unbusy(func() (err error) { fs, err = OpenWrite(img, Options{Workers: 1}); return err })
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	logStart, logEnd := fs.G.LogStartDaddr, fs.G.LogStartDaddr+fs.G.LogBBs
	var mu sync.Mutex
	var tr freeTrace
	lastLog := 0
	crash := CrashHook(fs.Dev, after, tear, nil)
	fs.Dev.SetWriteHook(func(daddr int64, b []byte) (bool, error) {
		ok, err := crash(daddr, b)
		if ok {
			mu.Lock()
			log := daddr >= logStart && daddr < logEnd
			tr.writes = append(tr.writes, traceWrite{daddr, len(b), log})
			if log {
				lastLog = len(tr.writes)
			}
			mu.Unlock()
		}
		return ok, err
	})
	// A boundary is a checkpoint holding free transactions (not Finish's
	// superblock transaction alone, whose counters recovery rebuilds
	// anyway).
	pending := 0
	fs.Log().SetDurableHook(func(uint64) {
		mu.Lock()
		if pending > 0 {
			tr.commits = append(tr.commits, lastLog)
			pending = 0
		}
		mu.Unlock()
	})
	n := 0
	o.committed = func() {
		mu.Lock()
		pending++
		mu.Unlock()
		n++
		if forceEvery > 0 && n%forceEvery == 0 {
			fs.Log().Force() // after a crash it fails: the session is shut down
		}
		if ckptEvery > 0 && n%ckptEvery == 0 {
			fs.Checkpoint()
		}
	}
	tr.rep, tr.err = fs.Free(o)
	return tr
}

// unbusy runs open until it does not fail with cache.ErrBusy, for up to
// two seconds. The device's flock is held by its open file description,
// which a child that another test's goroutine forks (xfs_db, cp, mount)
// shares from the fork until its exec closes it: just after a Close, an
// Open in a process that runs programs concurrently can fail for a moment.
func unbusy(open func() error) error {
	var err error
	for range 100 {
		if err = open(); !errors.Is(err, cache.ErrBusy) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func recoverImg(img string) error {
	return unbusy(func() error { _, err := Recover(img, RecoverOptions{}); return err })
}

// freeAll runs free --orphans on img (as runFree does).
func freeAll(t *testing.T, img string) *FreeReport {
	t.Helper()
	var fs *FS
	err := unbusy(func() (err error) { fs, err = OpenWrite(img, Options{}); return err })
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	rep, err := fs.Free(FreeOptions{Orphans: true})
	if err != nil {
		t.Fatalf("Free: %v", err)
	}
	return rep
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
	base       string      // recovered snapshot: clean log, orphans on the lists
	o          FreeOptions // the run crashed
	forceEvery int         // its log forces (freeCrash)
	ckptEvery  int         // its checkpoints (freeCrash)
	g          *ondisk.Geometry
	orphans    map[uint64]bool // the inodes on the unlinked lists of base
	tr         freeTrace       // the uncrashed run
	states     []fsState       // S_k: after the first k free transactions
	final      fsState         // the uncrashed run, then free --orphans
	// The chunks the run frees: the transaction that frees each, and its
	// byte ranges.
	freedAt map[chunkKey]int
	ranges  map[chunkKey][]byteRange
	// Chunks a checkpoint wrote (inodes freed) before their free.
	writtenBefore []chunkKey
	baseBytes     map[chunkKey][]byte // every freed chunk's bytes in base
}

// newCrashMatrix recovers the fixture, traces the uncrashed run twice
// (they must write the same), and records the states after each commit.
func newCrashMatrix(t *testing.T, fixture string, o FreeOptions, forceEvery, ckptEvery int) *crashMatrix {
	t.Helper()
	testimg.Need(t, "xfs_db", "xfs_repair", "loop")
	m := &crashMatrix{o: o, forceEvery: forceEvery, ckptEvery: ckptEvery, orphans: map[uint64]bool{}, freedAt: map[chunkKey]int{},
		ranges: map[chunkKey][]byteRange{}}
	m.base = testimg.Path(t, fixture)
	if err := recoverImg(m.base); err != nil {
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
	m.tr = freeCrash(t, done, o, forceEvery, ckptEvery, -1, 0)
	if m.tr.err != nil || m.tr.rep.Failed() {
		t.Fatalf("uncrashed run: %v; refused %v, errors %v", m.tr.err, m.tr.rep.Refused, m.tr.rep.Errors)
	}
	again := freeCrash(t, copyImg(t, m.base), o, forceEvery, ckptEvery, -1, 0)
	if !slices.Equal(again.writes, m.tr.writes) || !slices.Equal(again.commits, m.tr.commits) {
		t.Fatalf("two uncrashed runs wrote differently (a background checkpoint ran mid-run?): %d writes, commits %v; then %d writes, commits %v",
			len(m.tr.writes), m.tr.commits, len(again.writes), again.commits)
	}
	T := len(m.tr.commits)
	if T < 3 || T >= m.tr.rep.Transactions || len(m.tr.rep.Chunks) == 0 {
		t.Fatalf("%d checkpoints for %d transactions, %d chunks freed (want at least 3 checkpoints, fewer than the transactions, and a chunk)",
			T, m.tr.rep.Transactions, len(m.tr.rep.Chunks))
	}
	m.repairOrphansOnly(t, done, true, "uncrashed run")
	sDone := readState(t, done, m.g)
	freeAll(t, done)
	testimg.Repair(t, done)
	m.final = readState(t, done, m.g)
	if n := m.final.orphanBuckets(); n != 0 {
		t.Fatalf("%d buckets in use after the uncrashed run and free --orphans", n)
	}

	// The chunks the run frees and where they are.
	for _, c := range m.tr.rep.Chunks {
		k := chunkKey{c.AG, c.StartAgino}
		i := slices.IndexFunc(s0.AGs[c.AG].Inobt, func(r testimg.Record) bool { return uint32(r["startino"]) == c.StartAgino })
		if i < 0 {
			t.Fatalf("freed chunk %+v has no inobt record before the run", k)
		}
		for _, e := range m.g.ChunkExtents(c.StartAgino, uint16(s0.AGs[c.AG].Inobt[i]["holemask"])) {
			m.ranges[k] = append(m.ranges[k], byteRange{m.g.AgbToDaddr(c.AG, e.Agbno) * ondisk.BBSize, int64(e.Len) * int64(m.g.BlockSize)})
		}
	}

	m.baseBytes = m.chunkBytes(t, m.base, -1)

	// S_0 is the image before the run; S_k the recovery of a crash right
	// after commit k's record.
	for k := 0; k <= T; k++ {
		img := copyImg(t, m.base)
		if k > 0 {
			freeCrash(t, img, o, forceEvery, ckptEvery, m.tr.commits[k-1], 0)
		}
		if err := recoverImg(img); err != nil {
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
		m.checkNoWriteAfterFree(t, m.tr, m.tr.rep.Transactions, "uncrashed run")
		// Before its free, only a checkpoint may have written the chunk
		// (inodes freed earlier).
		var early []int
		for n, w := range m.tr.writes {
			for _, r := range rs {
				if n < m.tr.commits[k-1] && r.overlaps(w) {
					early = append(early, n+1)
				}
			}
		}
		if len(early) > 0 {
			m.writtenBefore = append(m.writtenBefore, c)
			t.Logf("chunk %+v, freed by transaction %d, was written in place before by the checkpoint writes %v", c, k, early)
		}
	}
	t.Logf("%s %s, checkpoint every %d commits: %d writes, %d free transactions, commit records at writes %v; chunks freed by transaction: %v",
		fixture, optsString(o), ckptEvery, len(m.tr.writes), T, m.tr.commits, m.freedAt)
	return m
}

func optsString(o FreeOptions) string {
	if o.Orphans {
		return fmt.Sprintf("--orphans, %d inodes a transaction", o.BatchInodes)
	}
	return fmt.Sprintf("--ino of %d inodes, %d a transaction", len(o.Inos), o.BatchInodes)
}

func hasRec(s fsState, c chunkKey) bool {
	return slices.ContainsFunc(s.AGs[c.AG].Inobt, func(r testimg.Record) bool { return uint32(r["startino"]) == c.StartAgino })
}

// committedAt is how many free transactions the uncrashed trace has
// committed once its first n writes reached the device whole.
func (m *crashMatrix) committedAt(n int) int {
	k := 0
	for _, c := range m.tr.commits {
		if c <= n {
			k++
		}
	}
	return k
}

// checkNoWriteAfterFree checks that no write of tr reached a chunk freed
// by one of its first k transactions after that free's commit record.
func (m *crashMatrix) checkNoWriteAfterFree(t *testing.T, tr freeTrace, k int, what string) {
	t.Helper()
	for c, rs := range m.ranges {
		f := m.freedAt[c]
		if f > k {
			continue
		}
		for n := tr.commits[f-1]; n < len(tr.writes); n++ {
			for _, r := range rs {
				if w := tr.writes[n]; r.overlaps(w) {
					t.Errorf("%s: write %d (daddr %d, %d bytes) reaches chunk %+v, freed by transaction %d (commit record: write %d)",
						what, n+1, w.Daddr, w.Len, c, f, tr.commits[f-1])
				}
			}
		}
	}
}

// chunkBytes reads the chunks freed by the first k transactions (k < 0:
// every chunk the run frees).
func (m *crashMatrix) chunkBytes(t *testing.T, img string, k int) map[chunkKey][]byte {
	t.Helper()
	out := map[chunkKey][]byte{}
	for c, rs := range m.ranges {
		if k >= 0 && m.freedAt[c] > k {
			continue
		}
		for _, r := range rs {
			out[c] = append(out[c], readRange(t, img, r)...)
		}
	}
	return out
}

// checkChunksKept checks that the chunks freed by the first k transactions
// hold the bytes they held at the crash.
func (m *crashMatrix) checkChunksKept(t *testing.T, img string, k int, atCrash map[chunkKey][]byte, what string) {
	t.Helper()
	for c, b := range m.chunkBytes(t, img, k) {
		if !bytes.Equal(b, atCrash[c]) {
			t.Errorf("%s: chunk %+v, freed by transaction %d, was written over (replayed or flushed old inodes)", what, c, m.freedAt[c])
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
	prefix   int  // recovery's state is S_prefix
	kernelRc bool // the kernel replayed the log (and processed the orphans)
}

// runPoint crashes the run at one write point and checks both recoveries.
func (m *crashMatrix) runPoint(t *testing.T, n int, tear bool) pointResult {
	img := copyImg(t, m.base)
	after, tearAt, want := n, 0, m.committedAt(n)
	if tear {
		after, tearAt, want = -1, n, m.committedAt(n-1)
	}
	tr := freeCrash(t, img, m.o, m.forceEvery, m.ckptEvery, after, tearAt)
	if tr.rep == nil {
		t.Fatalf("the crashed run returned no report: %v", tr.err)
	}
	if tr.err == nil && n < len(m.tr.writes) {
		t.Fatalf("the run crashed at write %d returned no error", n)
	}
	// The checkpoints reported durable before the crash: the same as the
	// uncrashed trace says of this write point.
	durable := len(tr.commits)
	if durable != want {
		t.Fatalf("%d checkpoints durable before the crash; the uncrashed trace says %d", durable, want)
	}
	m.checkNoWriteAfterFree(t, tr, durable, "crashed run")
	atCrash := m.chunkBytes(t, img, durable)
	for c, b := range atCrash {
		// A chunk no checkpoint wrote before its free holds the snapshot's
		// bytes.
		if !slices.Contains(m.writtenBefore, c) && !bytes.Equal(b, m.baseBytes[c]) {
			t.Errorf("chunk %+v, freed by transaction %d, was written over: it differs from the snapshot", c, m.freedAt[c])
		}
	}
	kimg := copyImg(t, img)

	// (a) xfsfree recover: exactly the durable transactions.
	if err := recoverImg(img); err != nil {
		t.Fatalf("xfsfree recover: %v", err)
	}
	s := readState(t, img, m.g)
	if j := slices.IndexFunc(m.states, func(x fsState) bool { return x.key() == s.key() }); j != durable {
		if j < 0 {
			t.Fatalf("recovered state is no prefix of the transactions (%d durable): %s", durable, s.diff(m.states[durable]))
		}
		t.Fatalf("recovered state is S_%d, but %d transactions were durable at the crash", j, durable)
	}
	m.repairOrphansOnly(t, img, s.orphanBuckets() > 0, "after xfsfree recover")
	m.checkChunksKept(t, img, durable, atCrash, "after xfsfree recover")
	rep := freeAll(t, img)
	if rep.Failed() {
		t.Fatalf("free --orphans after recovery: refused %v, errors %v", rep.Refused, rep.Errors)
	}
	if f := readState(t, img, m.g); f.key() != m.final.key() {
		t.Fatalf("free --orphans after recovery ends elsewhere than the uncrashed run: %s", f.diff(m.final))
	}
	testimg.Repair(t, img)
	m.checkChunksKept(t, img, durable, atCrash, "after xfsfree recover and free --orphans")

	// (b) the kernel, on a copy of the crashed image.
	var st *journal.State
	err := unbusy(func() error {
		fs, err := Open(kimg, Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer fs.Close()
		st, err = fs.LogState()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	testimg.Unmount(t, testimg.Mount(t, kimg))
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
	m.checkChunksKept(t, kimg, durable, atCrash, "after the kernel's mount")
	return pointResult{prefix: durable, kernelRc: !st.Clean}
}

// run runs every write point, crashed and torn, as parallel subtests and
// logs a summary.
func (m *crashMatrix) run(t *testing.T) {
	var mu sync.Mutex
	prefixes := map[int]int{}
	kernel := 0
	total := len(m.tr.writes)
	t.Run("points", func(t *testing.T) {
		for _, torn := range []bool{false, true} {
			for n := 0; n <= total; n++ {
				name := fmt.Sprintf("crash=%d", n)
				if torn {
					if n == 0 {
						continue
					}
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
	var b strings.Builder
	for k := range m.states {
		fmt.Fprintf(&b, " %d", prefixes[k])
	}
	t.Logf("%d crash points and %d torn writes (%d writes); points recovered to S_0..S_%d:%s; kernel log recoveries: %d",
		total+1, total, total, len(m.states)-1, b.String(), kernel)
}

// TestFreeCrashMatrixSmall crashes `free --ino` of AG 1's chunk 576 (its
// 18 allocated inodes are all orphans: the chunk is freed) and AG 2's one
// orphan, 5 inodes a transaction, at every write point, and tears every
// write.
func TestFreeCrashMatrixSmall(t *testing.T) {
	testimg.Need(t, "zstd", "xfs_db", "xfs_repair", "loop")
	g := testimg.Geo(t, testimg.Path(t, "orphans"))
	var inos []uint64
	for i := uint32(576); i < 576+18; i++ {
		inos = append(inos, g.Ino(1, i))
	}
	inos = append(inos, g.Ino(2, 131204)) // AG 2's orphan
	m := newCrashMatrix(t, "orphans", FreeOptions{Inos: inos, BatchInodes: 5}, 2, 0)
	if len(m.tr.rep.Chunks) != 1 || m.tr.rep.InodesFreed != len(inos) {
		t.Fatalf("the run frees %d inodes and %d chunks; want %d and 1", m.tr.rep.InodesFreed, len(m.tr.rep.Chunks), len(inos))
	}
	if len(m.writtenBefore) > 0 {
		t.Fatalf("chunks %v written before their free with no checkpoint mid-run", m.writtenBefore)
	}
	m.run(t)
}

// TestFreeCrashMatrixOrphans crashes `free --orphans` (313 orphans in 4
// AGs, 16 a transaction, a checkpoint after every 4th commit) at every
// write point, and tears every write.
func TestFreeCrashMatrixOrphans(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash matrix over free --orphans (~130 crashes) is not run under -short")
	}
	testimg.Need(t, "zstd", "xfs_db", "xfs_repair", "loop")
	m := newCrashMatrix(t, "orphans", FreeOptions{Orphans: true, BatchInodes: 16}, 2, 4)
	if len(m.writtenBefore) == 0 {
		t.Error("no chunk was written in place by a checkpoint before its free: that case is not exercised")
	}
	m.run(t)
}
