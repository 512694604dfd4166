package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"sync"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// testAGI is a block kind for the AGI defined here (ondisk's own is
// written elsewhere): magic, seqno against ctx.AG, CRC.
var testAGI = &ondisk.BlockKind{
	Name: "AGI", Magics: []uint32{0x58414749}, CrcOff: 312, LSNOff: 320, Blft: ondisk.BlftAGI,
	Verify: func(b []byte, c ondisk.VerifyCtx) error {
		w := c.Where()
		if m := binary.BigEndian.Uint32(b); m != 0x58414749 {
			return w.Corrupt("AGI", "agi_magicnum", m, uint32(0x58414749), "")
		}
		if s := binary.BigEndian.Uint32(b[8:]); s != c.AG {
			return w.Corrupt("AGI", "agi_seqno", s, c.AG, "")
		}
		if !ondisk.VerifyCksum(b, 312) {
			return w.Corrupt("AGI", "agi_crc", ondisk.StoredCksum(b, 312), ondisk.Cksum(b, 312), "")
		}
		return nil
	},
}

// plain is a kind with no verifier and no CRC.
var plain = &ondisk.BlockKind{Name: "data", CrcOff: -1, LSNOff: -1}

type fixture struct {
	img    string
	dev    *Device
	c      *Cache
	sectBB int
	agi    func(ag uint32) int64
}

func newFixture(t testing.TB, opts CacheOptions) *fixture {
	t.Helper()
	img := testimg.Path(t, "default")
	f := &fixture{img: img, dev: open(t, img, OpenOptions{})}
	f.sectBB = int(sectBBs(t, img))
	sb := fileBytes(t, img, 0, 1)
	agblocks := int64(binary.BigEndian.Uint32(sb[84:]))
	blockBBs := int64(binary.BigEndian.Uint32(sb[4:])) / BBSize
	f.agi = func(ag uint32) int64 { return int64(ag)*agblocks*blockBBs + 2*int64(f.sectBB) }
	f.c = NewCache(f.dev, opts)
	return f
}

func TestGetHitMissAndVerify(t *testing.T) {
	f := newFixture(t, CacheOptions{})
	for ag := uint32(0); ag < 4; ag++ {
		b, err := f.c.Get(f.agi(ag), f.sectBB, testAGI, ondisk.VerifyCtx{AG: ag})
		if err != nil {
			t.Fatalf("AG %d: %v", ag, err)
		}
		if !bytes.Equal(b.Data, fileBytes(t, f.img, f.agi(ag), f.sectBB)) || b.Kind != testAGI {
			t.Fatal("buffer differs from disk")
		}
		b.Release()
	}
	b, err := f.c.Get(f.agi(1), f.sectBB, testAGI, ondisk.VerifyCtx{AG: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if s := f.c.Stats(); s.Misses != 4 || s.Hits != 1 || s.Reads != 4 || s.Buffers != 4 {
		t.Fatalf("stats %+v", s)
	}
	// The AGI of AG 1 read as AG 2's fails its seqno check, with the location.
	_, err = f.c.Get(f.agi(1), f.sectBB, testAGI, ondisk.VerifyCtx{AG: 2})
	var ce *ondisk.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ondisk.ErrCorrupt) || ce.AG != 2 || ce.Daddr != f.agi(1) || ce.Field != "agi_seqno" {
		t.Fatalf("wrong AG: %v", err)
	}
	t.Log(err)
}

// A corrupt block is reported with AG, daddr and field, and is not kept:
// once the disk is right again, the next Get reads it again and succeeds.
func TestVerifierErrorNotCached(t *testing.T) {
	f := newFixture(t, CacheOptions{})
	d := f.agi(0)
	good := fileBytes(t, f.img, d, f.sectBB)
	bad := bytes.Clone(good)
	bad[100] ^= 0xff // an unlinked bucket: only the CRC catches it
	writeFile(t, f.img, d, bad)
	_, err := f.c.Get(d, f.sectBB, testAGI, ondisk.VerifyCtx{AG: 0})
	var ce *ondisk.CorruptError
	if !errors.As(err, &ce) || ce.Field != "agi_crc" || ce.AG != 0 || ce.Daddr != d {
		t.Fatalf("bad CRC: %v", err)
	}
	if s := f.c.Stats(); s.Buffers != 0 {
		t.Fatalf("corrupt buffer kept: %+v", s)
	}
	writeFile(t, f.img, d, good)
	b, err := f.c.Get(d, f.sectBB, testAGI, ondisk.VerifyCtx{AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	// A read-ahead buffer is verified at its first Get.
	writeFile(t, f.img, f.agi(1), bad)
	f.c.ReadAhead([]Extent{{f.agi(1), f.sectBB}})
	f.c.waitReadAhead()
	if _, err := f.c.Get(f.agi(1), f.sectBB, testAGI, ondisk.VerifyCtx{AG: 1}); !errors.Is(err, ondisk.ErrCorrupt) {
		t.Fatalf("read-ahead corrupt buffer: %v", err)
	}
}

func writeFile(t testing.TB, path string, daddr int64, b []byte) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt(b, daddr*BBSize); err != nil {
		t.Fatal(err)
	}
}

func TestLocking(t *testing.T) {
	f := newFixture(t, CacheOptions{})
	d := f.agi(0)
	b, err := f.c.Get(d, f.sectBB, nil, ondisk.VerifyCtx{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.tryGet(d, f.sectBB, nil, ondisk.VerifyCtx{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryGet of a held buffer: %v", err)
	}
	if _, err := f.c.tryGetNoRead(d, f.sectBB, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryGetNoRead of a held buffer: %v", err)
	}
	if b.TryLock() {
		t.Fatal("TryLock of a held buffer")
	}
	b.Release()
	b2, err := f.c.tryGet(d, f.sectBB, nil, ondisk.VerifyCtx{})
	if err != nil || b2 != b {
		t.Fatalf("TryGet after release: %v", err)
	}
	b2.Release()

	// Mutual exclusion: many goroutines increment a counter in the buffer.
	const G, N = 16, 200
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < N; i++ {
				b, err := f.c.Get(d, f.sectBB, nil, ondisk.VerifyCtx{})
				if err != nil {
					t.Error(err)
					return
				}
				v := binary.LittleEndian.Uint32(b.Data[400:])
				binary.LittleEndian.PutUint32(b.Data[400:], v+1)
				b.MarkDirty()
				b.Release()
			}
		}()
	}
	wg.Wait()
	b, _ = f.c.Get(d, f.sectBB, nil, ondisk.VerifyCtx{})
	defer b.Release()
	if v := binary.LittleEndian.Uint32(b.Data[400:]) - binary.LittleEndian.Uint32(fileBytes(t, f.img, d, 1)[400:]); v != G*N {
		t.Fatalf("counter %d, want %d", v, G*N)
	}
}

func TestEvictionBounds(t *testing.T) {
	f := newFixture(t, CacheOptions{MaxBytes: 16 * 4096})
	ctx := ondisk.VerifyCtx{}
	held, _ := f.c.Get(100000, 8, plain, ctx)
	dirty, _ := f.c.Get(100008, 8, plain, ctx)
	dirty.Data[0] = 0x77
	dirty.MarkDirty()
	dirty.Release()
	item, _ := f.c.Get(100016, 8, plain, ctx)
	item.Attach("log item")
	item.Release()
	ref, _ := f.c.Get(100024, 8, plain, ctx)
	ref.hold()
	ref.Release()
	for i := 0; i < 100; i++ {
		b, err := f.c.Get(int64(200000+8*i), 8, plain, ctx)
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		if s := f.c.Stats(); s.Bytes > 16*4096 {
			t.Fatalf("over the limit: %+v", s)
		}
	}
	s := f.c.Stats()
	if s.Evictions < 80 || s.Dirty != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The held, dirty and item-carrying buffers survived.
	held.Release()
	ref.Rele()
	for _, want := range []*Buf{held, dirty, item, ref} {
		b, err := f.c.Get(want.Daddr, 8, plain, ctx)
		if err != nil || b != want {
			t.Fatalf("daddr %d was evicted", want.Daddr)
		}
		b.Release()
	}
	if dirty.Data[0] != 0x77 {
		t.Fatal("dirty contents lost")
	}
	if s2 := f.c.Stats(); s2.Misses != s.Misses {
		t.Fatalf("pinned buffers were re-read: %+v", s2)
	}
	if n := f.c.DropClean(); n == 0 || f.c.Stats().Buffers != 2 || held.Flags() != 0 || dirty.Flags() != BufDirty {
		t.Fatalf("DropClean %d, left %+v", n, f.c.Stats())
	}
}

func TestStaleNeverWrittenAndDropped(t *testing.T) {
	f := newFixture(t, CacheOptions{})
	d := int64(120000)
	before := fileBytes(t, f.img, d, 16)
	b, err := f.c.GetNoRead(d, 16, plain)
	if err != nil {
		t.Fatal(err)
	}
	if b.Valid() || !bytes.Equal(b.Data, make([]byte, 16*BBSize)) {
		t.Fatal("GetNoRead of an uncached buffer is not zeros")
	}
	b.Data[0] = 1
	b.MarkDirty()
	b.Attach("inode 1")
	b.MarkStale()
	if !b.IsStale() || b.IsDirty() || len(f.c.DirtyBuffers()) != 0 {
		t.Fatal("stale buffer still dirty")
	}
	if err := f.c.WriteBack(b, 5); !errors.Is(err, ErrStaleWrite) {
		t.Fatalf("WriteBack of a stale buffer: %v", err)
	}
	if err := f.c.WriteBackList([]*Buf{b}); !errors.Is(err, ErrStaleWrite) {
		t.Fatalf("WriteBackList of a stale buffer: %v", err)
	}
	b.Release()
	if f.c.Stats().Buffers != 1 {
		t.Fatal("stale buffer with items dropped")
	}
	if it := b.DetachItems(); len(it) != 1 || it[0] != "inode 1" {
		t.Fatalf("items %v", it)
	}
	if f.c.Stats().Buffers != 0 {
		t.Fatal("stale buffer without items kept")
	}
	if !bytes.Equal(fileBytes(t, f.img, d, 16), before) || f.dev.Stats().Writes != 0 {
		t.Fatal("a stale buffer reached the disk")
	}
	// A Get of a stale buffer still cached resets it and reads the disk.
	b, _ = f.c.Get(d, 16, plain, ondisk.VerifyCtx{})
	b.Data[0] = 9
	b.MarkStale()
	b.Attach("x")
	b.Release()
	b2, err := f.c.Get(d, 16, plain, ondisk.VerifyCtx{})
	if err != nil || b2 != b || b2.IsStale() || b2.Data[0] != before[0] {
		t.Fatalf("stale buffer not reset on Get: %v", err)
	}
	b2.Release()
}

func TestWriteBackStampsAndCoalesces(t *testing.T) {
	f := newFixture(t, CacheOptions{})
	d := f.agi(0)
	b, err := f.c.Get(d, f.sectBB, testAGI, ondisk.VerifyCtx{AG: 0})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.WriteBack(b, 1); err != nil || f.dev.Stats().Writes != 0 {
		t.Fatalf("clean buffer written: %v", err)
	}
	binary.BigEndian.PutUint32(b.Data[40:], 12345) // agi_unlinked[0]
	b.MarkDirty()
	if got := f.c.DirtyBuffers(); len(got) != 1 || got[0] != b {
		t.Fatal("DirtyBuffers")
	}
	lsn := uint64(7)<<32 | 4242
	if err := f.c.WriteBack(b, lsn); err != nil {
		t.Fatal(err)
	}
	if b.IsDirty() || b.LSN != lsn || len(f.c.DirtyBuffers()) != 0 {
		t.Fatal("still dirty after WriteBack")
	}
	b.Release()
	disk := fileBytes(t, f.img, d, f.sectBB)
	if binary.BigEndian.Uint32(disk[40:]) != 12345 || binary.BigEndian.Uint64(disk[320:]) != lsn || !ondisk.VerifyCksum(disk, 312) {
		t.Fatal("written AGI lacks the change, the LSN or a good CRC")
	}
	// GetNoRead keeps the AG a Get gave, for the write verifier.
	b, _ = f.c.GetNoRead(d, f.sectBB, testAGI)
	binary.BigEndian.PutUint32(b.Data[44:], 777)
	b.MarkDirty()
	if err := f.c.WriteBack(b, lsn); err != nil {
		t.Fatal(err)
	}
	b.Release()
	// The write verifier refuses a buffer that would be corrupt on disk.
	b, _ = f.c.Get(d, f.sectBB, testAGI, ondisk.VerifyCtx{AG: 0})
	binary.BigEndian.PutUint32(b.Data[8:], 99) // agi_seqno
	b.MarkDirty()
	if err := f.c.WriteBack(b, lsn); !errors.Is(err, ondisk.ErrCorrupt) {
		t.Fatalf("write verifier: %v", err)
	}
	b.Release()
	if err := f.c.WriteBack(b, lsn); err == nil {
		t.Fatal("WriteBack of an unlocked buffer")
	}

	// Adjacent dirty buffers go out in one write; unordered input is fine.
	var bufs []*Buf
	for _, i := range []int{3, 0, 2, 1, 7} {
		b, err := f.c.Get(int64(140000+8*i), 8, plain, ondisk.VerifyCtx{})
		if err != nil {
			t.Fatal(err)
		}
		b.Data[0] = byte(i + 1)
		b.MarkDirty()
		bufs = append(bufs, b)
	}
	w0 := f.dev.Stats().Writes
	if err := f.c.WriteBackList(bufs); err != nil {
		t.Fatal(err)
	}
	if w := f.dev.Stats().Writes - w0; w != 2 {
		t.Fatalf("%d writes for a run of 4 and a single", w)
	}
	for _, b := range bufs {
		if b.IsDirty() || fileBytes(t, f.img, b.Daddr, 1)[0] != b.Data[0] {
			t.Fatalf("daddr %d not written", b.Daddr)
		}
		b.Release()
	}
}

func TestReadAhead(t *testing.T) {
	f := newFixture(t, CacheOptions{ReadAheadMaxIO: 64 << 10})
	var exts []Extent
	for i := 0; i < 40; i++ {
		exts = append(exts, Extent{int64(50000 + 8*i), 8})
	}
	exts = append(exts, Extent{300000, 16}, Extent{-1, 8}, Extent{f.dev.sizeBBs(), 8})
	f.c.ReadAhead(exts)
	f.c.ReadAhead(exts) // already cached or in flight: nothing more
	f.c.waitReadAhead()
	s := f.c.Stats()
	if s.ReadAheads != 41 || s.Reads != 4 {
		t.Fatalf("stats %+v (want 41 buffers in 4 reads: 3 runs of 64k and one single)", s)
	}
	for _, e := range exts[:41] {
		b, err := f.c.Get(e.Daddr, e.Len, plain, ondisk.VerifyCtx{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Data, fileBytes(t, f.img, e.Daddr, e.Len)) {
			t.Fatalf("read-ahead data of %d differs", e.Daddr)
		}
		b.Release()
	}
	if s := f.c.Stats(); s.Hits != 41 || s.Misses != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Many goroutines get, change and release buffers under memory pressure,
// with read-ahead and a background writeback running.
func TestConcurrentStress(t *testing.T) {
	f := newFixture(t, CacheOptions{MaxBytes: 64 * 4096})
	const blocks = 256
	base := int64(160000)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var wbErr error
	wbDone := make(chan struct{})
	go func() { // background writeback
		defer close(wbDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, b := range f.c.DirtyBuffers() {
				if !b.TryLock() {
					continue
				}
				if b.IsDirty() {
					if err := f.c.WriteBack(b, 1); err != nil {
						wbErr = err
					}
				}
				b.Release()
			}
		}
	}()
	counts := make([]int, blocks)
	var cmu sync.Mutex
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			r := rand.New(rand.NewSource(seed))
			for i := 0; i < 400; i++ {
				k := r.Intn(blocks)
				d := base + int64(8*k)
				switch r.Intn(10) {
				case 0:
					f.c.ReadAhead([]Extent{{d, 8}, {d + 8, 8}})
					continue
				case 1:
					b, err := f.c.tryGet(d, 8, plain, ondisk.VerifyCtx{})
					if err == nil {
						b.Release()
					} else if !errors.Is(err, ErrLocked) {
						t.Error(err)
					}
					continue
				}
				b, err := f.c.Get(d, 8, plain, ondisk.VerifyCtx{})
				if err != nil {
					t.Error(err)
					return
				}
				v := binary.LittleEndian.Uint32(b.Data[8:])
				binary.LittleEndian.PutUint32(b.Data[8:], v+1)
				b.MarkDirty()
				b.Release()
				cmu.Lock()
				counts[k]++
				cmu.Unlock()
			}
		}(int64(g))
	}
	wg.Wait()
	f.c.waitReadAhead()
	close(stop)
	<-wbDone
	if wbErr != nil {
		t.Fatal(wbErr)
	}
	for _, b := range f.c.DirtyBuffers() {
		b.Lock()
		if err := f.c.WriteBack(b, 1); err != nil {
			t.Fatal(err)
		}
		b.Release()
	}
	for k := 0; k < blocks; k++ {
		got := binary.LittleEndian.Uint32(fileBytes(t, f.img, base+int64(8*k), 1)[8:])
		if int(got) != counts[k] {
			t.Fatalf("block %d: %d increments on disk, want %d", k, got, counts[k])
		}
	}
	t.Logf("%+v", f.c.Stats())
}

func BenchmarkGetHit(b *testing.B) {
	f := newFixture(b, CacheOptions{})
	ctx := ondisk.VerifyCtx{AG: 0}
	d := f.agi(0)
	buf, err := f.c.Get(d, f.sectBB, testAGI, ctx)
	if err != nil {
		b.Fatal(err)
	}
	buf.Release()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf, err := f.c.Get(d, f.sectBB, testAGI, ctx)
			if err != nil {
				b.Fatal(err)
			}
			buf.Release()
		}
	})
}

func BenchmarkGetHitSpread(b *testing.B) {
	f := newFixture(b, CacheOptions{})
	ctx := ondisk.VerifyCtx{}
	for i := 0; i < 1024; i++ {
		buf, _ := f.c.Get(int64(8*i), 8, plain, ctx)
		buf.Release()
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			buf, err := f.c.Get(int64(8*(i%1024)), 8, plain, ctx)
			if err != nil {
				b.Fatal(err)
			}
			buf.Release()
			i += 7
		}
	})
}
