package btree_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// agSpace changes an AG's free space with the engine itself: the bnobt
// and cntbt records of an extent taken out or given back. Their blocks are
// not expected to split or join (Blocks is nil: a split would fail the
// test), which holds for the few records an AG of a fixture has.
type agSpace struct {
	fs       *modFS
	agno     uint32
	bno, cnt *btree.Tree
}

func cntCmp(a, b []byte) int {
	if c := bytes.Compare(a[4:8], b[4:8]); c != 0 {
		return c
	}
	return bytes.Compare(a[:4], b[:4])
}

func newAGSpace(t testing.TB, fs *modFS, agno uint32) *agSpace {
	agf, err := alloc.ReadAGF(fs.c, fs.g, agno)
	if err != nil {
		t.Fatal(err)
	}
	noRoot := func(tx btree.Tx, root uint32, levels int) error {
		return fmt.Errorf("free space btree root change: not expected in this test")
	}
	mk := func(typ *ondisk.BtreeType, kind *ondisk.BlockKind, i int, cmp func(a, b []byte) int) *btree.Tree {
		return &btree.Tree{Type: typ, Kind: kind, Cache: fs.c, G: fs.g, AG: agno, Root: agf.Roots[i], Levels: int(agf.Levels[i]),
			RecKey: func(r []byte) []byte { return r[:8] }, Cmp: cmp, SetRoot: noRoot}
	}
	return &agSpace{fs: fs, agno: agno,
		bno: mk(ondisk.BtBnobt, ondisk.KindBnobt, 0, func(a, b []byte) int { return bytes.Compare(a[:4], b[:4]) }),
		cnt: mk(ondisk.BtCntbt, ondisk.KindCntbt, 1, cntCmp)}
}

func allocRec(start, n uint32) []byte {
	r := make([]byte, 8)
	ondisk.AllocRec{StartBlock: start, BlockCount: n}.Encode(r)
	return r
}

// cntReplace replaces the cntbt record of an extent (or adds or removes
// one, when old or new is nil).
func (s *agSpace) cntReplace(tx btree.Tx, old, new []byte) error {
	if old != nil {
		cur, found, err := s.cnt.Lookup(tx, old, btree.EQ)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("cntbt has no record %x", old)
		}
		if err := cur.Delete(); err != nil {
			return err
		}
	}
	if new != nil {
		return s.cnt.Insert(tx, new)
	}
	return nil
}

// take removes n blocks at the start of the free extent that starts at
// start.
func (s *agSpace) take(tx btree.Tx, start, n uint32) error {
	cur, found, err := s.bno.Lookup(tx, allocRec(start, 0), btree.EQ)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("no free extent starts at %d", start)
	}
	e := ondisk.DecodeAllocRec(cur.Rec())
	if e.BlockCount < n {
		return fmt.Errorf("free extent %d+%d is shorter than %d", e.StartBlock, e.BlockCount, n)
	}
	var left []byte
	if e.BlockCount == n {
		err = cur.Delete()
	} else {
		left = allocRec(start+n, e.BlockCount-n)
		err = cur.Update(left)
	}
	if err != nil {
		return err
	}
	return s.cntReplace(tx, allocRec(start, e.BlockCount), left)
}

// give returns n blocks at start to free space, merging with the free
// extents next to them (xfs_free_ag_extent).
func (s *agSpace) give(tx btree.Tx, start, n uint32) error {
	var l, r *ondisk.AllocRec
	cur, found, err := s.bno.Lookup(tx, allocRec(start, 0), btree.LE)
	if err != nil {
		return err
	}
	if found {
		e := ondisk.DecodeAllocRec(cur.Rec())
		if e.StartBlock+e.BlockCount > start {
			return fmt.Errorf("blocks %d+%d are free already (%d+%d)", start, n, e.StartBlock, e.BlockCount)
		}
		if e.StartBlock+e.BlockCount == start {
			l = &e
		}
	}
	cur, found, err = s.bno.Lookup(tx, allocRec(start, 0), btree.GE)
	if err != nil {
		return err
	}
	if found {
		e := ondisk.DecodeAllocRec(cur.Rec())
		if start+n > e.StartBlock {
			return fmt.Errorf("blocks %d+%d are free already (%d+%d)", start, n, e.StartBlock, e.BlockCount)
		}
		if start+n == e.StartBlock {
			r = &e
		}
	}
	ns, nn := start, n
	if r != nil {
		if err := cur.Delete(); err != nil {
			return err
		}
		if err := s.cntReplace(tx, allocRec(r.StartBlock, r.BlockCount), nil); err != nil {
			return err
		}
		nn += r.BlockCount
	}
	if l != nil {
		cur, _, err := s.bno.Lookup(tx, allocRec(l.StartBlock, 0), btree.EQ)
		if err != nil {
			return err
		}
		ns, nn = l.StartBlock, nn+l.BlockCount
		if err := cur.Update(allocRec(ns, nn)); err != nil {
			return err
		}
		return s.cntReplace(tx, allocRec(l.StartBlock, l.BlockCount), allocRec(ns, nn))
	}
	if err := s.bno.Insert(tx, allocRec(ns, nn)); err != nil {
		return err
	}
	return s.cntReplace(tx, nil, allocRec(ns, nn))
}

// fixCounters sets agf_freeblks and agf_longest from the bnobt and moves
// sb_fdblocks by as much as agf_freeblks moved (lazy counters: what
// xfs_repair recomputes).
func (s *agSpace) fixCounters(t testing.TB) {
	var free, longest uint32
	for _, e := range freeExtents(t, s.fs, s.agno) {
		free += e[1]
		longest = max(longest, e[1])
	}
	tx := s.fs.begin(t)
	d := s.fs.g.AGFDaddr(s.agno)
	b, err := tx.ReadBuf(d, s.fs.g.SectBBs(), ondisk.KindAGF, ondisk.VerifyCtx{G: s.fs.g, AG: s.agno, Daddr: d})
	if err != nil {
		t.Fatal(err)
	}
	old := binary.BigEndian.Uint32(b.Data[52:])
	binary.BigEndian.PutUint32(b.Data[52:], free)
	binary.BigEndian.PutUint32(b.Data[56:], longest)
	tx.LogRange(b, 52, 59)
	sb, err := tx.ReadBuf(0, s.fs.g.SectBBs(), ondisk.KindSB, ondisk.VerifyCtx{G: s.fs.g, AG: 0, Daddr: 0})
	if err != nil {
		t.Fatal(err)
	}
	fd := binary.BigEndian.Uint64(sb.Data[144:])
	binary.BigEndian.PutUint64(sb.Data[144:], fd+uint64(free)-uint64(old))
	tx.LogRange(sb, 144, 151)
	tx.commit()
}

// inobtBlocks allocates inobt blocks as xfs_inobt_alloc_block does for
// the test: blocks the btree freed earlier (after their transaction
// committed) first, nearest the hint, then blocks of an extent the test
// took out of free space; agi_iblocks follows (inobtcount).
type inobtBlocks struct {
	fs      *modFS
	agno    uint32
	pool    *poolBlocks
	reserve []uint32
}

func (ib *inobtBlocks) agiAdd(tx btree.Tx, delta int32) error {
	d := ib.fs.g.AGIDaddr(ib.agno)
	b, err := tx.ReadBuf(d, ib.fs.g.SectBBs(), ondisk.KindAGI, ondisk.VerifyCtx{G: ib.fs.g, AG: ib.agno, Daddr: d})
	if err != nil {
		return err
	}
	if ib.fs.g.HasInobtCount {
		binary.BigEndian.PutUint32(b.Data[336:], uint32(int32(binary.BigEndian.Uint32(b.Data[336:]))+delta))
		tx.LogRange(b, 336, 339)
	}
	return nil
}

func (ib *inobtBlocks) Alloc(tx btree.Tx, near uint32) (uint32, error) {
	if len(ib.pool.free) == 0 {
		if len(ib.reserve) == 0 {
			return 0, fmt.Errorf("out of reserved blocks")
		}
		ib.pool.free = append(ib.pool.free, ib.reserve[0])
		ib.reserve = ib.reserve[1:]
	}
	a, err := ib.pool.Alloc(tx, near)
	if err != nil {
		return 0, err
	}
	return a, ib.agiAdd(tx, 1)
}

func (ib *inobtBlocks) Free(tx btree.Tx, agbno uint32) error {
	if err := ib.pool.Free(tx, agbno); err != nil {
		return err
	}
	return ib.agiAdd(tx, -1)
}

// TestModifyInobt3 deletes every record of inobt3's three-level inode
// btree (7000+ chunks, 1 KiB blocks) in random order, in transactions of a
// few hundred changes, down to an empty leaf root; then inserts them all
// back in another random order, up to three levels again. After every
// transaction Walk and the model agree and the btree's blocks are exactly
// those allocated; at several points xfs_db reads the same records. The
// blocks the btree frees are reused, the others come from an extent the
// test takes out of the bnobt and cntbt with the engine and gives back at
// the end (merging), with agi_iblocks, agf_freeblks, agf_longest and
// sb_fdblocks kept: xfs_repair -n then finds nothing wrong. (What repair
// -n proves here: the inobt's shape and records against the inodes,
// agi_iblocks, and the bnobt, cntbt and counters agreeing with each other.
// Without an rmapbt it neither sees a leaked block nor minds an inobt
// block the bnobt lists as free, checked by hand; the test's own
// comparison of the btree's blocks with the allocated ones covers that.)
func TestModifyInobt3(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "inobt3")
	fs := openMod(t, img)
	const agno = 0
	a, err := agi.Read(fs.c, fs.g, agno)
	if err != nil {
		t.Fatal(err)
	}
	tr := inobt.Tree(fs.c, fs.g, a, false)
	orig := walkRecs(t, tr)
	origBlocks := treeBlocks(t, tr)
	if tr.Levels != 3 {
		t.Fatalf("inobt3: %d levels", tr.Levels)
	}
	t.Logf("%d records in %d blocks, %d levels", len(orig), len(origBlocks), tr.Levels)

	// Reserve blocks at the start of the largest free extent.
	space := newAGSpace(t, fs, agno)
	resStart, resLen := largestFree(t, fs, agno)
	const nres = 400
	if resLen < nres+1 {
		t.Fatalf("largest free extent %d blocks", resLen)
	}
	tx := fs.begin(t)
	if err := space.take(tx, resStart, nres); err != nil {
		t.Fatal(err)
	}
	tx.commit()
	ib := &inobtBlocks{fs: fs, agno: agno, pool: newPool(nil)}
	for b := range origBlocks {
		ib.pool.inUse[b] = true
	}
	for b := resStart; b < resStart+nres; b++ {
		ib.reserve = append(ib.reserve, b)
	}
	tr.Blocks = ib
	levelsSeen := []int{tr.Levels}
	tr.SetRoot = func(tx btree.Tx, root uint32, levels int) error {
		d := fs.g.AGIDaddr(agno)
		b, err := tx.ReadBuf(d, fs.g.SectBBs(), ondisk.KindAGI, ondisk.VerifyCtx{G: fs.g, AG: agno, Daddr: d})
		if err != nil {
			return err
		}
		binary.BigEndian.PutUint32(b.Data[20:], root)
		binary.BigEndian.PutUint32(b.Data[24:], uint32(levels))
		tx.LogRange(b, 20, 27)
		levelsSeen = append(levelsSeen, levels)
		return nil
	}

	model := map[uint32][]byte{}
	for _, r := range orig {
		model[binary.BigEndian.Uint32(r)] = r
	}
	check := func(withDB bool) {
		t.Helper()
		ks := make([]uint32, 0, len(model))
		for k := range model {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		got := walkRecs(t, tr)
		if len(got) != len(ks) {
			t.Fatalf("%d records, model %d", len(got), len(ks))
		}
		for i, k := range ks {
			if !bytes.Equal(got[i], model[k]) {
				t.Fatalf("record %d: %x, model %x", i, got[i], model[k])
			}
		}
		blocks := treeBlocks(t, tr)
		if len(blocks) != len(ib.pool.inUse) {
			t.Fatalf("inobt has %d blocks, %d allocated", len(blocks), len(ib.pool.inUse))
		}
		for b := range blocks {
			if !ib.pool.inUse[b] {
				t.Fatalf("inobt block %d is not allocated", b)
			}
		}
		if !withDB {
			return
		}
		db := testimg.InobtRecords(t, img, agno, false)
		if len(db) != len(ks) {
			t.Fatalf("xfs_db: %d records, model %d", len(db), len(ks))
		}
		for i, k := range ks {
			r := ondisk.DecodeInobtRec(model[k], fs.g.HasSparse)
			if db[i]["startino"] != uint64(r.StartIno) || db[i]["freecount"] != uint64(r.FreeCount) || db[i]["free"] != r.Free ||
				(fs.g.HasSparse && (db[i]["holemask"] != uint64(r.HoleMask) || db[i]["count"] != uint64(r.Count))) {
				t.Fatalf("xfs_db record %d: %v, model %+v", i, db[i], r)
			}
		}
	}

	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]uint32, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	const batch = 250
	// Delete everything.
	perm := rng.Perm(len(keys))
	for i := 0; i < len(perm); i += batch {
		tx := fs.begin(t)
		for _, j := range perm[i:min(i+batch, len(perm))] {
			cur, found, err := tr.Lookup(tx, inobt.Key(keys[j]), btree.EQ)
			if err != nil || !found {
				t.Fatalf("lookup %d: %v %v", keys[j], found, err)
			}
			if err := cur.Delete(); err != nil {
				t.Fatalf("delete %d: %v", keys[j], err)
			}
			delete(model, keys[j])
		}
		tx.commit()
		check(i/batch%8 == 0 || len(model) == 0)
	}
	if tr.Levels != 1 || len(ib.pool.inUse) != 1 {
		t.Fatalf("empty inobt: %d levels, %d blocks", tr.Levels, len(ib.pool.inUse))
	}
	fs.c.DropClean()
	// Insert everything back.
	perm = rng.Perm(len(keys))
	for i := 0; i < len(perm); i += batch {
		tx := fs.begin(t)
		for _, j := range perm[i:min(i+batch, len(perm))] {
			r := orig[j]
			if err := tr.Insert(tx, r); err != nil {
				t.Fatalf("insert %x: %v", r, err)
			}
			model[keys[j]] = r
		}
		tx.commit()
		check(i/batch%8 == 0 || len(model) == len(keys))
	}
	t.Logf("heights: %v; %d blocks now, %d reserved blocks used", levelsSeen, len(ib.pool.inUse), nres-len(ib.reserve))
	if tr.Levels != 3 {
		t.Errorf("%d levels after reinserting everything", tr.Levels)
	}

	// Give back what the inobt does not use: the reserve's tail and the
	// freed blocks not reused.
	tx = fs.begin(t)
	if n := uint32(len(ib.reserve)); n > 0 {
		if err := space.give(tx, ib.reserve[0], n); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(ib.pool.free)
	for _, b := range ib.pool.free {
		if err := space.give(tx, b, 1); err != nil {
			t.Fatal(err)
		}
	}
	tx.commit()
	space.fixCounters(t)
	fs.c.DropClean()
	check(true)
	f := testimg.AGI(t, img, agno)
	t.Logf("AGI root %s level %s ino_blocks %s", f["root"], f["level"], f["ino_blocks"])
	testimg.Repair(t, img)
}
