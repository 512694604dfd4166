package alloc_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

// testTx is a test-only transaction: buffers are read through the cache
// and stay locked until the end; at commit every logged buffer is marked
// dirty and written in place (WriteBack with lsn 0 keeps the LSN field and
// recomputes the CRC), every cancelled one is marked stale. No log.
type testTx struct {
	t      testing.TB
	c      *cache.Cache
	bufs   map[int64]*cache.Buf
	order  []*cache.Buf
	logged map[*cache.Buf]bool
	inval  map[*cache.Buf]bool
	ended  bool
}

func begin(t testing.TB, fs *xfs.FS) *testTx {
	return &testTx{t: t, c: fs.Cache, bufs: map[int64]*cache.Buf{}, logged: map[*cache.Buf]bool{}, inval: map[*cache.Buf]bool{}}
}

func (tx *testTx) join(b *cache.Buf) *cache.Buf {
	tx.bufs[b.Daddr] = b
	tx.order = append(tx.order, b)
	return b
}

func (tx *testTx) ReadBuf(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*cache.Buf, error) {
	if b := tx.bufs[daddr]; b != nil {
		if b.Len != nBB {
			return nil, fmt.Errorf("testTx: daddr %d joined with %d BBs, asked for %d", daddr, b.Len, nBB)
		}
		return b, nil
	}
	b, err := tx.c.Get(daddr, nBB, kind, ctx)
	if err != nil {
		return nil, err
	}
	return tx.join(b), nil
}

func (tx *testTx) GetBuf(daddr int64, nBB int, kind *ondisk.BlockKind) (*cache.Buf, error) {
	if b := tx.bufs[daddr]; b != nil {
		delete(tx.inval, b) // reused after a free in this transaction
		if kind != nil {
			b.Kind = kind
		}
		return b, nil
	}
	b, err := tx.c.GetNoRead(daddr, nBB, kind)
	if err != nil {
		return nil, err
	}
	return tx.join(b), nil
}

func (tx *testTx) LogRange(b *cache.Buf, first, last int) {
	if tx.bufs[b.Daddr] != b {
		tx.t.Fatalf("testTx: LogRange of a buffer not joined (daddr %d)", b.Daddr)
	}
	if first < 0 || last < first || last >= len(b.Data) {
		tx.t.Fatalf("testTx: LogRange(daddr %d, %d, %d) out of the buffer's %d bytes", b.Daddr, first, last, len(b.Data))
	}
	tx.logged[b] = true
}

func (tx *testTx) Binval(b *cache.Buf) {
	tx.inval[b] = true
	delete(tx.logged, b)
}

// commit writes the logged buffers and releases everything.
func (tx *testTx) commit() {
	tx.t.Helper()
	if tx.ended {
		return
	}
	tx.ended = true
	for _, b := range tx.order {
		switch {
		case tx.inval[b]:
			b.MarkStale()
		case tx.logged[b]:
			b.MarkDirty()
			if err := tx.c.WriteBack(b, 0); err != nil {
				tx.t.Fatalf("testTx: write back daddr %d: %v", b.Daddr, err)
			}
		}
		b.Release()
	}
}

// cancel drops every change: changed buffers leave the cache.
func (tx *testTx) cancel() {
	if tx.ended {
		return
	}
	tx.ended = true
	for _, b := range tx.order {
		if tx.logged[b] || tx.inval[b] {
			b.MarkStale()
		}
		b.Release()
	}
}

func openRW(t testing.TB, img string) *xfs.FS {
	t.Helper()
	fs, err := xfs.Open(img, xfs.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", img, err)
	}
	return fs
}

// --- Ground truth from xfs_db ---

type ext struct{ bno, n uint32 }

type rmapRec struct {
	start, count uint32
	owner        int64
	offset       uint64
	unwritten    bool
	attr, bmbt   bool
}

func (r rmapRec) String() string {
	return fmt.Sprintf("[%d+%d owner %d off %d u%v a%v b%v]", r.start, r.count, r.owner, r.offset, r.unwritten, r.attr, r.bmbt)
}

// agState is what xfs_db says about an AG's free space.
type agState struct {
	agf       map[string]uint64
	free      []ext    // bnobt records
	agfl      []uint32 // live AGFL blocks, in ring order
	btBlocks  []uint32 // blocks of the bnobt, cntbt and rmapbt
	rmap      []rmapRec
	levels    [3]int
	need      int
	agflSize  int
	blockSize int
}

func agfNum(t testing.TB, f map[string]string, k string) uint64 {
	t.Helper()
	if f[k] == "" {
		return 0
	}
	v, err := testimg.ParseUint(f[k])
	if err != nil {
		t.Fatalf("agf %s = %q: %v", k, f[k], err)
	}
	return v
}

func dbState(t testing.TB, img string, agno uint32) *agState {
	t.Helper()
	g := testimg.Geo(t, img)
	f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", agno), "p"))
	s := &agState{agf: map[string]uint64{}, blockSize: int(g.BlockSize)}
	for _, k := range []string{"bnoroot", "cntroot", "rmaproot", "bnolevel", "cntlevel", "rmaplevel", "flfirst", "fllast", "flcount",
		"freeblks", "longest", "btreeblks", "rmapblocks"} {
		s.agf[k] = agfNum(t, f, k)
	}
	sb := testimg.ParseFields(testimg.DB(t, img, "sb 0", "p sectsize"))
	sect, _ := testimg.ParseUint(sb["sectsize"])
	s.agflSize = (int(sect) - 36) / 4
	bnos, _ := testimg.ParseArray(testimg.DB(t, img, fmt.Sprintf("agfl %d", agno), "p bno"), "bno")
	slot := map[int]uint32{}
	for _, e := range bnos {
		v, _ := testimg.ParseUint(e.Value)
		slot[e.Index] = uint32(v)
	}
	for i, k := 0, int(s.agf["flfirst"]); i < int(s.agf["flcount"]); i, k = i+1, (k+1)%s.agflSize {
		s.agfl = append(s.agfl, slot[k])
	}
	s.levels = [3]int{int(s.agf["bnolevel"]), int(s.agf["cntlevel"]), int(s.agf["rmaplevel"])}
	// xfs_alloc_min_freelist: min(level+1, maxlevels)*2-2 per btree; the
	// test images' btrees are far below their maximum height.
	one := func(l int) int { return (l+1)*2 - 2 }
	s.need = one(s.levels[0]) + one(s.levels[1])
	trees := []struct {
		root, typ string
		levels    int
	}{{"bnoroot", "bnobt", s.levels[0]}, {"cntroot", "cntbt", s.levels[1]}}
	if s.levels[2] > 0 {
		s.need += one(s.levels[2])
		trees = append(trees, struct {
			root, typ string
			levels    int
		}{"rmaproot", "rmapbt", s.levels[2]})
	}
	for _, tr := range trees {
		blocks, leaves := dbTreeBlocks(t, img, g, agno, uint32(s.agf[tr.root]), tr.levels, tr.typ)
		s.btBlocks = append(s.btBlocks, blocks...)
		if tr.typ == "bnobt" {
			recs, err := testimg.ParseRecords(leaves, "recs")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				s.free = append(s.free, ext{uint32(r["startblock"]), uint32(r["blockcount"])})
			}
		}
		if tr.typ == "rmapbt" {
			s.rmap = parseRmapRecs(t, leaves)
		}
	}
	slices.Sort(s.btBlocks)
	return s
}

// dbTreeBlocks walks a btree with xfs_db from its root, level by level,
// and returns its blocks and the xfs_db output of its leaves.
func dbTreeBlocks(t testing.TB, img string, g testimg.Geometry, agno, root uint32, levels int, typ string) ([]uint32, string) {
	t.Helper()
	level := []uint32{root}
	var all []uint32
	for l := levels; ; l-- {
		all = append(all, level...)
		var cmds []string
		for _, b := range level {
			cmds = append(cmds, fmt.Sprintf("fsblock %d", g.FSBlock(agno, b)), "type "+typ, "p")
		}
		out := testimg.DB(t, img, cmds...)
		if l == 1 {
			return all, out
		}
		ptrs, _ := testimg.ParseArray(out, "ptrs")
		level = level[:0:0]
		for _, p := range ptrs {
			v, _ := testimg.ParseUint(p.Value)
			level = append(level, uint32(v))
		}
	}
}

var rmapLineRE = regexp.MustCompile(`(\d+):\[(-?\d+),(-?\d+),(-?\d+),(-?\d+),(\d+),(\d+),(\d+)\]`)

// parseRmapRecs parses `recs[...] = [startblock,blockcount,owner,offset,
// extentflag,attrfork,bmbtblock]` records (xfs_db prints owner signed).
func parseRmapRecs(t testing.TB, out string) []rmapRec {
	t.Helper()
	if !strings.Contains(out, "[startblock,blockcount,owner,offset,extentflag,attrfork,bmbtblock]") && strings.Contains(out, "recs[") {
		t.Fatalf("unexpected rmapbt record format:\n%s", out)
	}
	var recs []rmapRec
	for _, m := range rmapLineRE.FindAllStringSubmatch(out, -1) {
		n := func(i int) int64 { v, _ := strconv.ParseInt(m[i], 10, 64); return v }
		recs = append(recs, rmapRec{start: uint32(n(2)), count: uint32(n(3)), owner: n(4), offset: uint64(n(5)),
			unwritten: n(6) != 0, attr: n(7) != 0, bmbt: n(8) != 0})
	}
	return recs
}

// blockSet expands extents into a set of blocks.
func blockSet(exts []ext, blocks ...[]uint32) map[uint32]bool {
	m := map[uint32]bool{}
	for _, e := range exts {
		for b := e.bno; b < e.bno+e.n; b++ {
			m[b] = true
		}
	}
	for _, bs := range blocks {
		for _, b := range bs {
			m[b] = true
		}
	}
	return m
}

// fsSpace is every block the free-space machinery holds: free extents,
// AGFL blocks and the blocks of its own btrees.
func (s *agState) fsSpace() map[uint32]bool { return blockSet(s.free, s.agfl, s.btBlocks) }

// nonAGRmaps are the rmap records of every owner but OWN_AG.
func (s *agState) nonAGRmaps() []rmapRec {
	var out []rmapRec
	for _, r := range s.rmap {
		if r.owner != -5 {
			out = append(out, r)
		}
	}
	return out
}

func (s *agState) agRmapBlocks() []uint32 {
	var out []uint32
	for _, r := range s.rmap {
		if r.owner == -5 {
			for b := r.start; b < r.start+r.count; b++ {
				out = append(out, b)
			}
		}
	}
	return out
}

// checkConsistent checks what the AG's free space must satisfy on its
// own: agf_freeblks and agf_longest against the free extents, the AGFL
// within [need, size], and with an rmapbt, the OWN_AG records covering
// exactly the AGFL and the free-space btrees' blocks (roots included).
func (s *agState) checkConsistent(t testing.TB, what string) {
	t.Helper()
	var sum, longest uint64
	for _, e := range s.free {
		sum += uint64(e.n)
		longest = max(longest, uint64(e.n))
	}
	if sum != s.agf["freeblks"] || longest != s.agf["longest"] {
		t.Errorf("%s: free extents hold %d blocks, longest %d; agf_freeblks %d agf_longest %d", what, sum, longest, s.agf["freeblks"], s.agf["longest"])
	}
	// (flcount >= need holds only after a fix-up: a split in the last
	// operation may have raised the need.)
	if n := int(s.agf["flcount"]); n > s.agflSize {
		t.Errorf("%s: agf_flcount %d above the AGFL size %d", what, n, s.agflSize)
	}
	// btreeblks counts the free-space btrees' blocks but their roots.
	roots := 2
	if s.levels[2] > 0 {
		roots = 3
	}
	if got := uint64(len(s.btBlocks) - roots); got != s.agf["btreeblks"] {
		t.Errorf("%s: the bnobt/cntbt/rmapbt have %d non-root blocks, agf_btreeblks %d", what, got, s.agf["btreeblks"])
	}
	if s.levels[2] > 0 {
		want := blockSet(nil, s.agfl, s.btBlocks)
		got := blockSet(nil, s.agRmapBlocks())
		// OWN_AG also covers nothing else on these images.
		if !mapsEqual(want, got) {
			t.Errorf("%s: OWN_AG rmap blocks %v, AGFL and free-space btree blocks %v", what, keys(got), keys(want))
		}
	}
}

func mapsEqual(a, b map[uint32]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[uint32]bool) []uint32 {
	var out []uint32
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkSameSpace checks that now holds the same space as orig: the same
// total (freeblks + flcount + btreeblks), the same blocks among free
// extents, AGFL and free-space btrees, and the same rmap records of every
// owner but OWN_AG. With exact, the free extents, the AGFL and the AGF
// counters must be equal too.
func checkSameSpace(t testing.TB, orig, now *agState, exact bool) {
	t.Helper()
	tot := func(s *agState) uint64 { return s.agf["freeblks"] + s.agf["flcount"] + s.agf["btreeblks"] }
	if tot(orig) != tot(now) {
		t.Errorf("freeblks+flcount+btreeblks: %d, was %d", tot(now), tot(orig))
	}
	if !mapsEqual(orig.fsSpace(), now.fsSpace()) {
		t.Errorf("the free-space machinery's blocks differ: %d now, %d before", len(now.fsSpace()), len(orig.fsSpace()))
	}
	if a, b := fmt.Sprint(orig.nonAGRmaps()), fmt.Sprint(now.nonAGRmaps()); a != b {
		t.Errorf("rmap records (but OWN_AG) differ:\nnow  %s\nwas  %s", b, a)
	}
	if !exact {
		return
	}
	if !slices.Equal(orig.free, now.free) {
		t.Errorf("free extents differ: %d now, %d before", len(now.free), len(orig.free))
	}
	if !slices.Equal(orig.agfl, now.agfl) {
		t.Errorf("AGFL %v, was %v", now.agfl, orig.agfl)
	}
	for _, k := range []string{"freeblks", "longest", "flcount", "btreeblks", "rmapblocks", "bnolevel", "cntlevel", "rmaplevel"} {
		if orig.agf[k] != now.agf[k] {
			t.Errorf("agf %s = %d, was %d", k, now.agf[k], orig.agf[k])
		}
	}
}
