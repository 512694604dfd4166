package icluster_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/icluster"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

// freeTx is a test-only transaction: joined buffers stay locked; at commit
// logged inodes get a new CRC, dirty buffers are written back in place and
// cancelled ones marked STALE. No log is written.
type freeTx struct {
	c         *cache.Cache
	isize     int
	bufs      map[int64]*cache.Buf
	dirty     map[int64]bool
	inodes    map[int64][]int
	cancelled map[int64]bool
	ranges    map[int64][][2]int
	joined_   []*cache.Inode
	undo      []func() // what a cancel would run (the tests commit)
}

func (tx *freeTx) OnCancel(fn func()) { tx.undo = append(tx.undo, fn) }

func (tx *freeTx) IJoin(ip *cache.Inode) { tx.joined_ = append(tx.joined_, ip) }

func (tx *freeTx) Holds(ip *cache.Inode) bool { return slices.Contains(tx.joined_, ip) }

func (tx *freeTx) LogInodeCore(b *cache.Buf, off int, ip *cache.Inode, fields uint32) {
	if !tx.Holds(ip) {
		panic("LogInodeCore of an inode not joined")
	}
	tx.LogInode(b, off)
}

func newFreeTx(c *cache.Cache, isize int) *freeTx {
	return &freeTx{c: c, isize: isize, bufs: map[int64]*cache.Buf{}, dirty: map[int64]bool{},
		inodes: map[int64][]int{}, cancelled: map[int64]bool{}, ranges: map[int64][][2]int{}}
}

func (tx *freeTx) joined(daddr int64) (*cache.Buf, error) {
	if b := tx.bufs[daddr]; b != nil {
		if tx.cancelled[daddr] {
			return nil, fmt.Errorf("freeTx: buffer %d was cancelled", daddr)
		}
		return b, nil
	}
	return nil, nil
}

func (tx *freeTx) ReadBuf(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*cache.Buf, error) {
	if b, err := tx.joined(daddr); b != nil || err != nil {
		return b, err
	}
	b, err := tx.c.Get(daddr, nBB, kind, ctx)
	if err != nil {
		return nil, err
	}
	tx.bufs[daddr] = b
	return b, nil
}

func (tx *freeTx) GetBuf(daddr int64, nBB int, kind *ondisk.BlockKind) (*cache.Buf, error) {
	if b, err := tx.joined(daddr); b != nil || err != nil {
		return b, err
	}
	b, err := tx.c.GetNoRead(daddr, nBB, kind)
	if err != nil {
		return nil, err
	}
	tx.bufs[daddr] = b
	return b, nil
}

func (tx *freeTx) Len() int { return len(tx.bufs) }

func (tx *freeTx) LogRange(b *cache.Buf, first, last int) {
	tx.dirty[b.Daddr] = true
	tx.ranges[b.Daddr] = append(tx.ranges[b.Daddr], [2]int{first, last})
}

func (tx *freeTx) LogInode(b *cache.Buf, off int) {
	tx.dirty[b.Daddr] = true
	tx.inodes[b.Daddr] = append(tx.inodes[b.Daddr], off)
}

func (tx *freeTx) Binval(b *cache.Buf) {
	tx.cancelled[b.Daddr] = true
	delete(tx.dirty, b.Daddr)
	delete(tx.inodes, b.Daddr)
}

func (tx *freeTx) commit(t *testing.T) {
	t.Helper()
	for d, b := range tx.bufs {
		switch {
		case tx.cancelled[d]:
			b.MarkStale()
		case tx.dirty[d]:
			for _, off := range tx.inodes[d] {
				ondisk.DinodeCalcCRC(b.Data[off : off+tx.isize])
			}
			b.MarkDirty()
			if err := tx.c.WriteBack(b, 0); err != nil {
				t.Fatalf("write back daddr %d: %v", d, err)
			}
		}
		b.Release()
	}
	tx.bufs = nil
	for _, ip := range tx.joined_ {
		ip.IUnlock(cache.ILockExcl)
		ip.Rele()
	}
	tx.joined_ = nil
}

// fakeBtrees keeps an AG's inobt and finobt records in memory (the btree
// engine is tested on its own): it checks Ifree's record logic.
type fakeBtrees struct {
	recs [2]map[uint32]ondisk.InobtRec
	ops  []string
}

func newFakeBtrees(in, fin []ondisk.InobtRec) *fakeBtrees {
	f := &fakeBtrees{recs: [2]map[uint32]ondisk.InobtRec{{}, {}}}
	for _, r := range in {
		f.recs[0][r.StartIno] = r
	}
	for _, r := range fin {
		f.recs[1][r.StartIno] = r
	}
	return f
}

func idx(fin bool) int {
	if fin {
		return 1
	}
	return 0
}

func (f *fakeBtrees) LookupLE(_ icluster.FreeTx, fin bool, agino uint32) (ondisk.InobtRec, bool, error) {
	var best ondisk.InobtRec
	ok := false
	for s, r := range f.recs[idx(fin)] {
		if s <= agino && (!ok || s > best.StartIno) {
			best, ok = r, true
		}
	}
	return best, ok, nil
}

func (f *fakeBtrees) Update(_ icluster.FreeTx, fin bool, r ondisk.InobtRec) error {
	if _, ok := f.recs[idx(fin)][r.StartIno]; !ok {
		return fmt.Errorf("update of missing record %d", r.StartIno)
	}
	f.recs[idx(fin)][r.StartIno] = r
	f.ops = append(f.ops, fmt.Sprintf("update %d %d", idx(fin), r.StartIno))
	return nil
}

func (f *fakeBtrees) Insert(_ icluster.FreeTx, fin bool, r ondisk.InobtRec) error {
	if _, ok := f.recs[idx(fin)][r.StartIno]; ok {
		return fmt.Errorf("insert of existing record %d", r.StartIno)
	}
	f.recs[idx(fin)][r.StartIno] = r
	f.ops = append(f.ops, fmt.Sprintf("insert %d %d", idx(fin), r.StartIno))
	return nil
}

func (f *fakeBtrees) Delete(_ icluster.FreeTx, fin bool, s uint32) error {
	if _, ok := f.recs[idx(fin)][s]; !ok {
		return fmt.Errorf("delete of missing record %d", s)
	}
	delete(f.recs[idx(fin)], s)
	f.ops = append(f.ops, fmt.Sprintf("delete %d %d", idx(fin), s))
	return nil
}

func (f *fakeBtrees) sorted(fin bool) []ondisk.InobtRec {
	var out []ondisk.InobtRec
	for _, k := range slices.Sorted(maps.Keys(f.recs[idx(fin)])) {
		out = append(out, f.recs[idx(fin)][k])
	}
	return out
}

// fakeSpace records the extents freed.
type fakeSpace struct {
	freed []icluster.Extent
}

func (s *fakeSpace) FreeExtent(_ icluster.FreeTx, agno, agbno, n uint32, o icluster.Owner) error {
	s.freed = append(s.freed, icluster.Extent{AG: agno, Agbno: agbno, Len: n, Owner: o})
	return nil
}

func (s *fakeSpace) blocksPerAG() map[uint32]uint64 {
	m := map[uint32]uint64{}
	for _, e := range s.freed {
		m[e.AG] += uint64(e.Len)
	}
	return m
}

// kernelRef returns a copy of img after a kernel mount and unmount (which
// replays the log and frees the orphans).
func kernelRef(t *testing.T, img string) string {
	t.Helper()
	ref := img + ".kernel"
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ref, data, 0o600); err != nil {
		t.Fatal(err)
	}
	testimg.Unmount(t, testimg.Mount(t, ref))
	return ref
}

func recsFromDB(rs []testimg.Record, sparse bool) []ondisk.InobtRec {
	var out []ondisk.InobtRec
	for _, r := range rs {
		x := ondisk.InobtRec{StartIno: uint32(r["startino"]), FreeCount: uint32(r["freecount"]), Free: r["free"], Count: 64}
		if sparse {
			x.HoleMask, x.Count = uint16(r["holemask"]), uint8(r["count"])
		}
		out = append(out, x)
	}
	return out
}

// readInode reads an inode straight from an image file.
func readInode(t *testing.T, img string, g *ondisk.Geometry, loc ondisk.InodeLoc) *ondisk.Dinode {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, g.InodeSize)
	if _, err := f.ReadAt(b, loc.Daddr*ondisk.BBSize+int64(loc.Offset)); err != nil {
		t.Fatal(err)
	}
	d, err := ondisk.DecodeDinode(b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type freedInode struct {
	ino uint64
	loc ondisk.InodeLoc
}

// freeAll frees every orphan of the image in chain order (each inode the
// head of its bucket when freed, as the kernel's mount does), one test
// transaction each, through fake btrees and free space.
func freeAll(t *testing.T, fs *xfs.FS, keep bool) ([]*fakeBtrees, *fakeSpace, []freedInode, []icluster.Freed) {
	t.Helper()
	space := &fakeSpace{}
	var bts []*fakeBtrees
	var inodes []freedInode
	var results []icluster.Freed
	for agno := uint32(0); agno < fs.G.AGCount; agno++ {
		st, err := fs.ScanAG(agno)
		if err != nil {
			t.Fatal(err)
		}
		var fin []ondisk.InobtRec
		if fs.G.HasFinobt {
			fin, err = inobt.Records(inobt.Tree(fs.Cache, fs.G, st.AGI, true))
			if err != nil {
				t.Fatal(err)
			}
		}
		bt := newFakeBtrees(st.Inobt, fin)
		bts = append(bts, bt)
		ag := &icluster.AG{Agno: agno, G: fs.G, Cache: fs.Cache, Inodes: fs.Inodes, Btrees: bt, Space: space, KeepChunks: keep}
		for _, c := range st.Chains {
			for _, o := range c.Inodes {
				loc, err := fs.Locate(agno, st.Inobt, o.Agino)
				if err != nil {
					t.Fatal(err)
				}
				v, err := icluster.Inspect(fs.Cache, fs.G, agno, o.Agino, loc)
				if err != nil {
					t.Fatalf("Inspect %d: %v", o.Ino, err)
				}
				if v.Blocks() != o.NBlocks {
					t.Errorf("inode %d: Inspect lists %d blocks, di_nblocks %d", o.Ino, v.Blocks(), o.NBlocks)
				}
				tx := newFreeTx(fs.Cache, int(fs.G.InodeSize))
				r, err := ag.Ifree(tx, v, icluster.Unlink{Prev: ondisk.NullAgino})
				if err != nil {
					t.Fatalf("Ifree %d: %v", o.Ino, err)
				}
				tx.commit(t)
				inodes = append(inodes, freedInode{o.Ino, loc})
				results = append(results, *r)
			}
		}
	}
	return bts, space, inodes, results
}

// TestIfreeLikeKernel frees every orphan of the frozen-snapshot fixtures
// and compares with what the kernel's mount leaves: the inobt and finobt
// records (kept by the fake btrees), the AGI counters and unlinked buckets,
// the blocks freed per AG against the kernel's free space gain, and every
// freed inode's core (the kernel's flush of the reset inode; a freed
// chunk's inodes not written at all).
func TestIfreeLikeKernel(t *testing.T) {
	testimg.Need(t, "xfs_db")
	for _, name := range testimg.OrphanFixtures() {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			orig := testimg.DB(t, img, "sb 0", "p icount")
			_ = orig
			before := agSpace(t, img)
			ref := kernelRef(t, img)

			fs, err := xfs.Open(img, xfs.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			bts, space, inodes, results := freeAll(t, fs, false)
			chunks := 0
			for _, r := range results {
				if r.ChunkFreed {
					chunks++
				}
			}
			if chunks == 0 {
				t.Errorf("no chunk was freed: the fixture should empty some")
			}
			g := fs.G
			for agno := uint32(0); agno < g.AGCount; agno++ {
				for _, fin := range []bool{false, true} {
					if fin && !g.HasFinobt {
						continue
					}
					want := recsFromDB(testimg.InobtRecords(t, ref, agno, fin), g.HasSparse)
					got := bts[agno].sorted(fin)
					if !slices.Equal(got, want) {
						t.Errorf("AG %d fin=%v records:\n got %v\nwant %v", agno, fin, got, want)
					}
				}
				a, k := testimg.AGI(t, img, agno), testimg.AGI(t, ref, agno)
				for _, f := range []string{"count", "freecount"} {
					if a[f] != k[f] {
						t.Errorf("AG %d agi %s = %s, kernel %s", agno, f, a[f], k[f])
					}
				}
				for b, h := range testimg.Unlinked(t, img, agno) {
					if h != ondisk.NullAgino {
						t.Errorf("AG %d bucket %d = %d after freeing", agno, b, h)
					}
				}
			}
			after := agSpace(t, ref)
			freed := space.blocksPerAG()
			for agno := range after {
				if gain := after[agno] - before[agno]; gain != freed[uint32(agno)] {
					t.Errorf("AG %d: the kernel's free space grew by %d blocks, Ifree freed %d", agno, gain, freed[uint32(agno)])
				}
			}
			// The reset inodes, where their chunk stays: as the kernel
			// flushed them. (A freed chunk's inodes are never written
			// after its free; what earlier frees wrote there before
			// differs with when the kernel happened to flush.)
			fs.Cache.DropClean()
			compared := 0
			for _, in := range inodes {
				if _, ok := inobt.Find(bts[in.loc.Agno].sorted(false), in.loc.Agino); !ok {
					continue
				}
				compared++
				got, want := readInode(t, img, g, in.loc), readInode(t, ref, g, in.loc)
				for _, d := range []*ondisk.Dinode{got, want} {
					d.LSN, d.CRC, d.ChangeCount = 0, 0, 0
				}
				if !slices.Equal(got.Bytes(), want.Bytes()) {
					got.Literal, want.Literal = nil, nil
					t.Errorf("inode %d differs from the kernel's:\n got %+v\nwant %+v", in.ino, *got, *want)
				}
			}
			if compared == 0 {
				t.Error("no freed inode outside a freed chunk")
			}
			t.Logf("%d orphans freed, %d chunks freed, %d inodes compared with the kernel's", len(inodes), chunks, compared)
		})
	}
}

// agSpace is each AG's free space as the kernel sums it: freeblks +
// flcount + btreeblks.
func agSpace(t *testing.T, img string) []uint64 {
	g := testimg.Geo(t, img)
	var out []uint64
	for agno := uint32(0); agno < g.AGCount; agno++ {
		f := testimg.ParseFields(testimg.DB(t, img, fmt.Sprintf("agf %d", agno), "p freeblks flcount btreeblks"))
		var n uint64
		for _, k := range []string{"freeblks", "flcount", "btreeblks"} {
			v, err := testimg.ParseUint(f[k])
			if err != nil {
				t.Fatalf("agf %d %s = %q", agno, k, f[k])
			}
			n += v
		}
		out = append(out, n)
	}
	return out
}

// TestIfreePredecessor frees the second inode of a chain first: the head's
// di_next_unlinked then skips it; freeing the head afterwards empties the
// bucket.
func TestIfreePredecessor(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "orphans")
	fs, err := xfs.Open(img, xfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	var agno uint32
	var st *xfs.AGState
	var chain xfs.Chain
	for agno = 0; agno < fs.G.AGCount; agno++ {
		if st, err = fs.ScanAG(agno); err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(st.Chains, func(c xfs.Chain) bool { return len(c.Inodes) >= 3 }); i >= 0 {
			chain = st.Chains[i]
			break
		}
	}
	if chain.Inodes == nil {
		t.Fatal("no chain of 3 inodes in the fixture")
	}
	fin, _ := inobt.Records(inobt.Tree(fs.Cache, fs.G, st.AGI, true))
	ag := &icluster.AG{Agno: agno, G: fs.G, Cache: fs.Cache, Inodes: fs.Inodes, Btrees: newFakeBtrees(st.Inobt, fin), Space: &fakeSpace{}}
	loc := func(agino uint32) ondisk.InodeLoc {
		l, err := fs.Locate(agno, st.Inobt, agino)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	free := func(o xfs.Orphan, u icluster.Unlink) error {
		v, err := icluster.Inspect(fs.Cache, fs.G, agno, o.Agino, loc(o.Agino))
		if err != nil {
			return err
		}
		tx := newFreeTx(fs.Cache, int(fs.G.InodeSize))
		if _, err := ag.Ifree(tx, v, u); err != nil {
			tx.commit(t) // nothing was logged on a refusal
			return err
		}
		tx.commit(t)
		return nil
	}
	head, second, third := chain.Inodes[0], chain.Inodes[1], chain.Inodes[2]
	// A wrong predecessor is corruption, found before anything changes.
	if err := free(third, icluster.Unlink{Prev: head.Agino, PrevLoc: loc(head.Agino)}); !errors.Is(err, ondisk.ErrCorrupt) {
		t.Fatalf("freeing %d with the head as predecessor: %v, want corruption", third.Ino, err)
	}
	if err := free(second, icluster.Unlink{Prev: head.Agino, PrevLoc: loc(head.Agino)}); err != nil {
		t.Fatal(err)
	}
	f := testimg.Inode(t, img, head.Ino)
	if f["next_unlinked"] != fmt.Sprint(third.Agino) {
		t.Errorf("head %d next_unlinked = %s, want %d", head.Ino, f["next_unlinked"], third.Agino)
	}
	if f := testimg.Inode(t, img, second.Ino); f["core.mode"] != "0" || f["next_unlinked"] != "null" {
		t.Errorf("freed inode %d: mode %s next_unlinked %s", second.Ino, f["core.mode"], f["next_unlinked"])
	}
	// Freeing it again is refused: it is free now.
	var re *icluster.RefusedError
	if err := free(second, icluster.Unlink{Prev: head.Agino, PrevLoc: loc(head.Agino)}); !errors.As(err, &re) {
		t.Errorf("freeing %d twice: %v, want a refusal", second.Ino, err)
	}
	if err := free(head, icluster.Unlink{Prev: ondisk.NullAgino}); err != nil {
		t.Fatal(err)
	}
	if h := testimg.Unlinked(t, img, agno)[chain.Bucket]; h != third.Agino {
		t.Errorf("bucket %d head = %d, want %d", chain.Bucket, h, third.Agino)
	}
}
