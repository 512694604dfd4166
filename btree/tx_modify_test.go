package btree_test

// Test support for btree changes: a transaction that works directly on
// the buffer cache (no log), block pools, and a reader of a btree's blocks.

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// modFS is an image opened for writing through a buffer cache that runs
// the write verifiers.
type modFS struct {
	dev *cache.Device
	c   *cache.Cache
	g   *ondisk.Geometry
	sb  *ondisk.Superblock
}

func openMod(t testing.TB, img string) *modFS {
	t.Helper()
	dev, err := cache.Open(img, cache.OpenOptions{})
	if err != nil {
		t.Fatalf("open %s: %v", img, err)
	}
	t.Cleanup(func() { dev.Close() })
	b, err := dev.ReadAt(0, 1)
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
	c := cache.NewCache(dev, cache.CacheOptions{Geometry: g})
	return &modFS{dev: dev, c: c, g: g, sb: sb}
}

// testTx implements btree.Tx on the cache: joined buffers stay locked
// until commit, which writes the logged ones in place (keeping their LSN
// fields; the write path recomputes the CRC and runs the verifier) and
// drops the cancelled ones. It checks that every byte that changed lies in
// a logged range, and that nothing is logged in a cancelled buffer.
type testTx struct {
	t     testing.TB
	fs    *modFS
	bufs  map[int64]*txBuf
	order []*txBuf
	// committed runs after the buffers are written (block pools release
	// the blocks freed in the transaction then: they were busy).
	onCommit []func()
	logged   int // bytes logged, for the record
}

type txBuf struct {
	b         *cache.Buf
	orig      []byte
	ranges    [][2]int
	cancelled bool
}

func (fs *modFS) begin(t testing.TB) *testTx {
	return &testTx{t: t, fs: fs, bufs: map[int64]*txBuf{}}
}

func (tx *testTx) join(b *cache.Buf) *txBuf {
	tb := &txBuf{b: b, orig: append([]byte(nil), b.Data...)}
	tx.bufs[b.Daddr] = tb
	tx.order = append(tx.order, tb)
	return tb
}

func (tx *testTx) ReadBuf(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*cache.Buf, error) {
	if tb := tx.bufs[daddr]; tb != nil {
		if tb.cancelled {
			return nil, fmt.Errorf("testTx: read of cancelled buffer %d", daddr)
		}
		return tb.b, nil
	}
	b, err := tx.fs.c.Get(daddr, nBB, kind, ctx)
	if err != nil {
		return nil, err
	}
	tx.join(b)
	return b, nil
}

func (tx *testTx) GetBuf(daddr int64, nBB int, kind *ondisk.BlockKind) (*cache.Buf, error) {
	if tb := tx.bufs[daddr]; tb != nil {
		tb.cancelled = false
		tb.b.Kind = kind
		return tb.b, nil
	}
	b, err := tx.fs.c.GetNoRead(daddr, nBB, kind)
	if err != nil {
		return nil, err
	}
	tx.join(b)
	return b, nil
}

func (tx *testTx) LogRange(b *cache.Buf, first, last int) {
	tb := tx.bufs[b.Daddr]
	switch {
	case tb == nil || tb.b != b:
		tx.t.Errorf("testTx: LogRange of a buffer not joined (daddr %d)", b.Daddr)
	case tb.cancelled:
		tx.t.Errorf("testTx: LogRange of a cancelled buffer (daddr %d)", b.Daddr)
	case first < 0 || last < first || last >= len(b.Data):
		tx.t.Errorf("testTx: LogRange(%d, %d) of a %d-byte buffer", first, last, len(b.Data))
	default:
		tb.ranges = append(tb.ranges, [2]int{first, last})
		tx.logged += last - first + 1
	}
}

func (tx *testTx) Binval(b *cache.Buf) {
	tb := tx.bufs[b.Daddr]
	if tb == nil || tb.b != b {
		tx.t.Errorf("testTx: Binval of a buffer not joined (daddr %d)", b.Daddr)
		return
	}
	tb.cancelled, tb.ranges = true, nil
}

// commit writes the transaction's logged buffers and unlocks them all.
func (tx *testTx) commit() {
	tx.t.Helper()
	var errs []string
	for _, tb := range tx.order {
		b := tb.b
		if tb.cancelled {
			b.MarkStale()
			b.Release()
			continue
		}
		covered := make([]bool, len(b.Data))
		for _, r := range tb.ranges {
			for i := r[0]; i <= r[1]; i++ {
				covered[i] = true
			}
		}
		for i := range b.Data {
			if b.Data[i] != tb.orig[i] && !covered[i] {
				errs = append(errs, fmt.Sprintf("daddr %d: byte %d changed (%#x -> %#x) but not logged", b.Daddr, i, tb.orig[i], b.Data[i]))
				break
			}
		}
		if len(tb.ranges) > 0 {
			b.MarkDirty()
			if err := tx.fs.c.WriteBack(b, 0); err != nil {
				errs = append(errs, err.Error())
			}
		}
		b.Release()
	}
	tx.bufs, tx.order = nil, nil
	for _, f := range tx.onCommit {
		f()
	}
	for _, e := range errs {
		tx.t.Error(e)
	}
	if len(errs) > 0 {
		tx.t.FailNow()
	}
}

// poolBlocks hands out blocks from a list the test reserved (scratch
// images: nothing else accounts for them). A freed block is busy until the
// transaction commits, as the kernel's busy extents keep it.
type poolBlocks struct {
	free  []uint32
	inUse map[uint32]bool
}

func newPool(blocks []uint32) *poolBlocks {
	return &poolBlocks{free: append([]uint32(nil), blocks...), inUse: map[uint32]bool{}}
}

func (p *poolBlocks) Alloc(tx btree.Tx, near uint32) (uint32, error) {
	if len(p.free) == 0 {
		return 0, fmt.Errorf("pool: out of blocks")
	}
	// The free block nearest near, as the allocator would prefer.
	best := 0
	for i, b := range p.free {
		if absDiff(b, near) < absDiff(p.free[best], near) {
			best = i
		}
	}
	a := p.free[best]
	p.free = slices.Delete(p.free, best, best+1)
	p.inUse[a] = true
	return a, nil
}

func (p *poolBlocks) Free(tx btree.Tx, agbno uint32) error {
	if !p.inUse[agbno] {
		return fmt.Errorf("pool: free of block %d not in use", agbno)
	}
	delete(p.inUse, agbno)
	ttx := tx.(*testTx)
	ttx.onCommit = append(ttx.onCommit, func() { p.free = append(p.free, agbno) })
	return nil
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// treeBlocks returns every block of the btree, with its level, reading
// level by level through the cache (after commit: no locks held).
func treeBlocks(t testing.TB, tr *btree.Tree) map[uint32]int {
	t.Helper()
	out := map[uint32]int{}
	level := []uint32{tr.Root}
	for lvl := tr.Levels - 1; lvl >= 0; lvl-- {
		var next []uint32
		for _, a := range level {
			if _, dup := out[a]; dup {
				t.Fatalf("block %d reached twice", a)
			}
			out[a] = lvl
			d := tr.G.AgbToDaddr(tr.AG, a)
			b, err := tr.Cache.Get(d, tr.G.BlockBBs(), tr.Kind, ondisk.VerifyCtx{G: tr.G, AG: tr.AG, Daddr: d})
			if err != nil {
				t.Fatalf("block %d: %v", a, err)
			}
			v, err := tr.Type.View(b.Data)
			if err == nil && v.Level != lvl {
				err = fmt.Errorf("level %d, want %d", v.Level, lvl)
			}
			if err != nil {
				b.Release()
				t.Fatalf("block %d: %v", a, err)
			}
			for _, p := range v.Ptrs() {
				next = append(next, uint32(p))
			}
			b.Release()
		}
		level = next
	}
	return out
}

// walkRecs returns copies of every record, through Walk.
func walkRecs(t testing.TB, tr *btree.Tree) [][]byte {
	t.Helper()
	var out [][]byte
	if err := tr.Walk(func(r []byte) error { out = append(out, append([]byte(nil), r...)); return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return out
}

// freeExtents returns the bnobt records [start, len] of AG agno.
func freeExtents(t testing.TB, fs *modFS, agno uint32) [][2]uint32 {
	t.Helper()
	d := fs.g.AGFDaddr(agno)
	b, err := fs.c.Get(d, fs.g.SectBBs(), ondisk.KindAGF, ondisk.VerifyCtx{G: fs.g, AG: agno, Daddr: d})
	if err != nil {
		t.Fatal(err)
	}
	agf, err := ondisk.DecodeAGF(b.Data)
	b.Release()
	if err != nil {
		t.Fatal(err)
	}
	tr := &btree.Tree{Type: ondisk.BtBnobt, Kind: ondisk.KindBnobt, Cache: fs.c, G: fs.g, AG: agno,
		Root: agf.Roots[0], Levels: int(agf.Levels[0]), RecKey: func(r []byte) []byte { return r[:4] }, Cmp: bytes.Compare}
	var out [][2]uint32
	for _, r := range walkRecs(t, tr) {
		a := ondisk.DecodeAllocRec(r)
		out = append(out, [2]uint32{a.StartBlock, a.BlockCount})
	}
	return out
}

// largestFree returns the largest free extent of the AG.
func largestFree(t testing.TB, fs *modFS, agno uint32) (start, n uint32) {
	for _, e := range freeExtents(t, fs, agno) {
		if e[1] > n {
			start, n = e[0], e[1]
		}
	}
	return start, n
}
