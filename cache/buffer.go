package cache

// The buffer cache: metadata buffers by (daddr, length in BBs), as the
// kernel's xfs_buf cache. A buffer is handed out locked (one holder at a
// time, as xfs_buf_lock); Release unlocks it. Reads run the block kind's
// verifier; writes stamp the LSN and CRC (BlockKind.Stamp). Memory is
// bounded: buffers that are unreferenced, clean and carry no log items sit
// on an LRU list and are evicted past the byte limit; dirty, locked,
// referenced and item-carrying buffers are never evicted, so the limit is
// soft when everything is pinned.
//
// Callers use one length per daddr: two buffers of different lengths over
// the same blocks are not kept coherent (the kernel refuses such lookups).
//
// Locks: Cache.mu is a leaf lock (never held while waiting for a buffer
// lock or doing I/O). The buffer lock comes before the inode locks.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Errors returned by the buffer cache.
var (
	// ErrLocked is returned by the Try variants when the buffer is held.
	ErrLocked = errors.New("buffer is locked")
	// ErrStaleWrite is returned when asked to write a STALE buffer.
	ErrStaleWrite = errors.New("refusing to write a stale (cancelled) buffer")
)

// Buffer flags.
const (
	BufDirty uint32 = 1 << iota // modified in memory, not yet written in place
	BufStale                    // cancelled: never written; dropped when released without items
	bufDone                     // contents valid (read, or dirtied after GetNoRead): XBF_DONE
)

// Extent is a range of BBs (for ReadAhead). This struct does not represent
// an on-disk struct.
type Extent struct {
	Daddr int64
	Len   int // BBs
}

type bufKey struct {
	daddr int64
	len   int
}

// Buf is a cached metadata buffer. Data, Kind and LSN belong to the lock
// holder. This struct does not represent an on-disk struct.
type Buf struct {
	Daddr int64 // first BB
	Len   int   // length in BBs
	Data  []byte
	// Kind is the block kind of the buffer, set by Get/GetNoRead (when not
	// nil); WriteBack stamps with it.
	Kind *ondisk.BlockKind
	// LSN is the LSN of the last transaction that changed the buffer, for
	// the write path (the journal sets it at commit; WriteBack sets it).
	LSN uint64

	c        *Cache
	lock     sync.Mutex
	flags    atomic.Uint32
	nitems   atomic.Int32
	imu      sync.Mutex
	items    []any
	verified *ondisk.BlockKind // kind whose verifier passed on the current contents
	ctx      ondisk.VerifyCtx

	// Under c.mu.
	ref        int32 // holders, waiters and Hold references
	prev, next *Buf  // LRU links (nil when not on the LRU)
	indexed    bool  // in c.m
}

// CacheOptions configures a buffer cache.
type CacheOptions struct {
	// MaxBytes bounds the memory of unpinned buffers (default 128 MiB).
	MaxBytes int64
	// ReadAheadWorkers is the number of concurrent read-ahead reads
	// (default 8).
	ReadAheadWorkers int
	// ReadAheadMaxIO caps one coalesced read-ahead read in bytes
	// (default 1 MiB).
	ReadAheadMaxIO int
	// Geometry fills VerifyCtx.G for buffers got with GetNoRead: every
	// write runs the kind's verifier after stamping and before writing
	// (the kernel's write verifier; a failure refuses the write), and the
	// kinds' verifiers need the geometry.
	Geometry *ondisk.Geometry
}

// CacheStats are the buffer cache's counters.
type CacheStats struct {
	Hits       int64 // Get found valid contents in the cache
	Misses     int64 // Get had to read
	Reads      int64 // device reads issued by the cache (read-ahead included)
	ReadAheads int64 // buffers read by ReadAhead
	Evictions  int64
	Writes     int64 // buffers written by WriteBack / WriteBackList
	Buffers    int   // buffers in the cache now
	Bytes      int64 // their memory
	PeakBytes  int64 // the most memory the cache's buffers took at once
	Dirty      int   // dirty buffers now
}

// Cache is the buffer cache of one device. Safe for concurrent use.
type Cache struct {
	dev  *Device
	opts CacheOptions

	mu    sync.Mutex
	m     map[bufKey]*Buf
	dirty map[*Buf]struct{}
	lru   Buf // sentinel: lru.next is the most recently used
	bytes int64

	raSem chan struct{}
	raWG  sync.WaitGroup
	slabs slabs
	peak  int64 // the most bytes of buffers indexed at once (under mu)

	hits, misses, reads, readaheads, evictions, writes atomic.Int64
}

// NewCache makes a buffer cache over dev.
func NewCache(dev *Device, opts CacheOptions) *Cache {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 128 << 20
	}
	if opts.ReadAheadWorkers <= 0 {
		opts.ReadAheadWorkers = 8
	}
	if opts.ReadAheadMaxIO <= 0 {
		opts.ReadAheadMaxIO = 1 << 20
	}
	c := &Cache{dev: dev, opts: opts, m: map[bufKey]*Buf{}, dirty: map[*Buf]struct{}{},
		raSem: make(chan struct{}, opts.ReadAheadWorkers)}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c
}

// Device is the cache's device.
func (c *Cache) Device() *Device { return c.dev }

// MaxBytes is the cache's bound on the memory of unpinned buffers.
func (c *Cache) MaxBytes() int64 { return c.opts.MaxBytes }

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	n, bytes, peak, dirty := len(c.m), c.bytes, c.peak, len(c.dirty)
	c.mu.Unlock()
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Reads: c.reads.Load(),
		ReadAheads: c.readaheads.Load(), Evictions: c.evictions.Load(), Writes: c.writes.Load(),
		Buffers: n, Bytes: bytes, PeakBytes: peak, Dirty: dirty,
	}
}

// --- LRU (under c.mu) ---

func (c *Cache) lruRemove(b *Buf) {
	if b.next == nil {
		return
	}
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
}

func (c *Cache) lruPush(b *Buf) {
	if b.next != nil {
		c.lruRemove(b)
	}
	b.next, b.prev = c.lru.next, &c.lru
	c.lru.next.prev = b
	c.lru.next = b
}

func (c *Cache) unindex(b *Buf) {
	c.lruRemove(b)
	if b.indexed && c.m[bufKey{b.Daddr, b.Len}] == b {
		delete(c.m, bufKey{b.Daddr, b.Len})
		c.bytes -= int64(len(b.Data))
	}
	b.indexed = false
	delete(c.dirty, b)
}

// evictLocked evicts clean, unreferenced, item-free buffers from the cold
// end of the LRU until the cache is within its limit.
func (c *Cache) evictLocked() { c.evictFor(0) }

// evictFor evicts until extra more bytes fit within the limit, or nothing
// more can be evicted.
func (c *Cache) evictFor(extra int64) {
	for c.bytes+extra > c.opts.MaxBytes && c.lru.prev != &c.lru {
		b := c.lru.prev
		c.lruRemove(b)
		if b.ref != 0 || b.flags.Load()&BufDirty != 0 || b.nitems.Load() != 0 {
			continue // not evictable now; put back on the LRU at its next release
		}
		c.unindex(b)
		c.evictions.Add(1)
		c.recycle(b)
	}
}

// recycle keeps the memory of a buffer that left the cache unreferenced
// and without items — evicted, stale, or never read — for the next buffer
// of its size: nobody uses it any more. (Dropped instead, a 32 KiB
// cancelled cluster pinned its whole 1 MiB slab while any other buffer
// carved from it lived: freeing a million orphans held 250 MiB of slabs
// for a 128 MiB cache.)
func (c *Cache) recycle(b *Buf) {
	if !c.dev.buffered && b.Data != nil {
		c.slabs.put(b.Data)
		b.Data = nil
	}
}

// alloc returns memory for a buffer of n bytes: from the slabs (aligned
// for O_DIRECT), or plain when the device is buffered.
func (c *Cache) alloc(n int) []byte {
	if c.dev.buffered {
		return make([]byte, n)
	}
	return c.slabs.get(n)
}

// addBytes counts n more bytes of indexed buffers (under c.mu), and the
// peak.
func (c *Cache) addBytes(n int64) {
	c.bytes += n
	c.peak = max(c.peak, c.bytes)
}

// put drops one reference (under c.mu): at zero a stale item-free or
// invalid buffer leaves the cache, a clean one goes on the LRU.
func (c *Cache) put(b *Buf) {
	c.mu.Lock()
	b.ref--
	if b.ref < 0 {
		c.mu.Unlock()
		panic("cache: buffer released more often than got")
	}
	if b.ref == 0 {
		f := b.flags.Load()
		switch {
		case f&BufStale != 0 && b.nitems.Load() == 0:
			c.unindex(b)
			c.recycle(b)
		case f&(bufDone|BufDirty) == 0 && b.nitems.Load() == 0:
			c.unindex(b) // never read successfully: read again next time
			c.recycle(b)
		case f&BufDirty == 0 && b.indexed:
			c.lruPush(b)
			c.evictLocked()
		}
	}
	c.mu.Unlock()
}

// lookup finds or creates the buffer for key and takes a reference.
func (c *Cache) lookup(daddr int64, nBB int) (*Buf, bool) {
	k := bufKey{daddr, nBB}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.m[k]; b != nil {
		b.ref++
		c.lruRemove(b)
		return b, true
	}
	b := &Buf{Daddr: daddr, Len: nBB, Data: c.alloc(nBB * BBSize), c: c, ref: 1, indexed: true}
	c.m[k] = b
	c.addBytes(int64(len(b.Data)))
	c.evictLocked()
	return b, false
}

func (c *Cache) checkArgs(daddr int64, nBB int) error {
	if nBB <= 0 || daddr < 0 {
		return fmt.Errorf("cache: bad buffer daddr %d length %d BBs", daddr, nBB)
	}
	return nil
}

// Get returns the buffer of nBB BBs at daddr, LOCKED, reading it if its
// contents are not cached and running kind.Verify on them (kind may be nil:
// no verification). ctx.Daddr is set to daddr. A verification failure is
// returned as an *ondisk.CorruptError naming ctx.AG and daddr; the buffer is
// then neither returned nor kept as valid. Release the buffer when done.
// The lock is not recursive: a holder must not Get the same buffer again.
func (c *Cache) Get(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*Buf, error) {
	return c.get(daddr, nBB, kind, ctx, true, false)
}

// tryGet is Get without waiting: ErrLocked if another holder has it.
func (c *Cache) tryGet(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*Buf, error) {
	return c.get(daddr, nBB, kind, ctx, true, true)
}

// GetNoRead returns the buffer LOCKED without reading it
// (xfs_trans_get_buf): its contents are what is cached, or zeros. For
// buffers about to be initialised or cancelled.
func (c *Cache) GetNoRead(daddr int64, nBB int, kind *ondisk.BlockKind) (*Buf, error) {
	return c.get(daddr, nBB, kind, ondisk.VerifyCtx{G: c.opts.Geometry, AG: ondisk.NoAG, Daddr: daddr}, false, false)
}

// tryGetNoRead is GetNoRead without waiting: ErrLocked if held.
func (c *Cache) tryGetNoRead(daddr int64, nBB int, kind *ondisk.BlockKind) (*Buf, error) {
	return c.get(daddr, nBB, kind, ondisk.VerifyCtx{G: c.opts.Geometry, AG: ondisk.NoAG, Daddr: daddr}, false, true)
}

func (c *Cache) get(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx, read, try bool) (*Buf, error) {
	if err := c.checkArgs(daddr, nBB); err != nil {
		return nil, err
	}
	b, _ := c.lookup(daddr, nBB)
	if try {
		if !b.lock.TryLock() {
			c.put(b)
			return nil, fmt.Errorf("daddr %d (%d BBs): %w", daddr, nBB, ErrLocked)
		}
	} else {
		b.lock.Lock()
	}
	// A stale buffer found again is reset, as xfs_buf_find_lock does:
	// its flags and kind go; a read re-reads it from disk.
	if f := b.flags.Load(); f&BufStale != 0 {
		b.flags.And(^(BufStale | BufDirty | bufDone))
		b.verified, b.Kind = nil, nil
	}
	ctx.Daddr = daddr
	if read && b.flags.Load()&bufDone == 0 {
		c.misses.Add(1)
		c.reads.Add(1)
		if err := c.dev.ReadInto(daddr, b.Data); err != nil {
			b.Release()
			return nil, err
		}
		b.flags.Or(bufDone)
		b.verified = nil
	} else if read {
		c.hits.Add(1)
	}
	if kind != nil {
		// Verify contents that came from disk and were not verified as
		// this kind; a dirty buffer's contents are the holders' own (its
		// CRC is only recomputed at write), as in the kernel.
		// The verification holds for one kind at one AG.
		if read && (b.verified != kind || b.ctx.AG != ctx.AG) && kind.Verify != nil && b.flags.Load()&BufDirty == 0 {
			if err := kind.Verify(b.Data, ctx); err != nil {
				if b.flags.Load()&BufDirty == 0 {
					b.flags.And(^bufDone) // bad on disk: read it again next time
				}
				b.Release()
				return nil, verifyError(err, kind, ctx)
			}
			b.verified = kind
		}
		if read || b.Kind == nil {
			b.ctx = ctx // GetNoRead keeps the location a Get gave
		}
		b.Kind = kind
	}
	return b, nil
}

// verifyError makes err an *ondisk.CorruptError located at ctx.
func verifyError(err error, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) error {
	var ce *ondisk.CorruptError
	if errors.As(err, &ce) {
		return ondisk.SetLocation(err, ctx.AG, ctx.Daddr)
	}
	return &ondisk.CorruptError{AG: ctx.AG, Daddr: ctx.Daddr, Struct: kind.Name, Field: "verifier", Msg: err.Error()}
}

// Lock takes the lock of a buffer the caller has a pointer to (from
// DirtyBuffers, or an attached item), with a reference; Release undoes it.
func (b *Buf) Lock() {
	b.c.mu.Lock()
	b.ref++
	b.c.lruRemove(b)
	b.c.mu.Unlock()
	b.lock.Lock()
}

// TryLock is Lock without waiting; it reports whether it got the lock.
func (b *Buf) TryLock() bool {
	b.c.mu.Lock()
	b.ref++
	b.c.lruRemove(b)
	b.c.mu.Unlock()
	if b.lock.TryLock() {
		return true
	}
	b.c.put(b)
	return false
}

// Release unlocks the buffer and drops the holder's reference. A STALE
// buffer without items leaves the cache at its last release.
func (b *Buf) Release() {
	b.lock.Unlock()
	b.c.put(b)
}

// hold takes a reference without the lock (xfs_buf_hold): the buffer is
// neither evicted nor dropped until Rele.
func (b *Buf) hold() {
	b.c.mu.Lock()
	b.ref++
	b.c.lruRemove(b)
	b.c.mu.Unlock()
}

// Rele drops a reference taken by Hold.
func (b *Buf) Rele() { b.c.put(b) }

// Flags returns the buffer's flags (BufDirty, BufStale).
func (b *Buf) Flags() uint32 { return b.flags.Load() &^ bufDone }

// IsDirty reports whether the buffer is DIRTY.
func (b *Buf) IsDirty() bool { return b.flags.Load()&BufDirty != 0 }

// IsStale reports whether the buffer is STALE.
func (b *Buf) IsStale() bool { return b.flags.Load()&BufStale != 0 }

// Valid reports whether the buffer's contents were read from disk or set
// by a holder (false for a fresh GetNoRead buffer).
func (b *Buf) Valid() bool { return b.flags.Load()&bufDone != 0 }

// MarkDirty marks the buffer as modified (the holder changed Data). Its
// contents count as valid from now on. A STALE buffer cannot be dirtied.
func (b *Buf) MarkDirty() {
	if b.flags.Load()&BufStale != 0 {
		panic(fmt.Sprintf("cache: MarkDirty on stale buffer daddr %d", b.Daddr))
	}
	b.flags.Or(BufDirty | bufDone)
	b.c.mu.Lock()
	if b.indexed {
		b.c.dirty[b] = struct{}{}
	}
	b.c.mu.Unlock()
}

// MarkStale marks the buffer STALE (cancelled, xfs_buf_stale): it is never
// written, its DIRTY flag is cleared, and it leaves the cache at its last
// release once no items are attached.
func (b *Buf) MarkStale() {
	b.flags.Or(BufStale)
	b.flags.And(^BufDirty)
	b.c.mu.Lock()
	delete(b.c.dirty, b)
	b.c.mu.Unlock()
}

// Attach adds a log item (or an inode, for the cluster free) to the
// buffer's list.
func (b *Buf) Attach(item any) {
	b.imu.Lock()
	b.items = append(b.items, item)
	b.nitems.Store(int32(len(b.items)))
	b.imu.Unlock()
}

// Items returns a copy of the buffer's attached items.
func (b *Buf) Items() []any {
	b.imu.Lock()
	defer b.imu.Unlock()
	return append([]any(nil), b.items...)
}

// AttachOnce attaches item unless it is attached already, and reports
// whether it attached it.
func (b *Buf) AttachOnce(item any) bool {
	b.imu.Lock()
	defer b.imu.Unlock()
	for _, it := range b.items {
		if it == item {
			return false
		}
	}
	b.items = append(b.items, item)
	b.nitems.Store(int32(len(b.items)))
	return true
}

// DetachItems removes and returns the attached items. An unreferenced
// STALE buffer leaves the cache then.
func (b *Buf) DetachItems() []any {
	b.imu.Lock()
	items := b.items
	b.items = nil
	b.nitems.Store(0)
	b.imu.Unlock()
	c := b.c
	c.mu.Lock()
	if b.ref == 0 && b.flags.Load()&BufStale != 0 {
		c.unindex(b)
		c.recycle(b)
	}
	c.mu.Unlock()
	return items
}

// DetachItem removes one attached item (compared with ==) and reports
// whether it was attached.
func (b *Buf) DetachItem(item any) bool {
	b.imu.Lock()
	found := false
	for i, it := range b.items {
		if it == item {
			b.items = slices.Delete(b.items, i, i+1)
			found = true
			break
		}
	}
	b.nitems.Store(int32(len(b.items)))
	b.imu.Unlock()
	return found
}

// DirtyBuffers lists the dirty buffers sorted by daddr. They are not
// locked: lock each (Lock or TryLock) and check IsDirty before writing.
func (c *Cache) DirtyBuffers() []*Buf {
	c.mu.Lock()
	out := make([]*Buf, 0, len(c.dirty))
	for b := range c.dirty {
		out = append(out, b)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b *Buf) int { return cmp.Compare(a.Daddr, b.Daddr) })
	return out
}

// ReadAhead starts reading the extents not in the cache, in the
// background (ReadAheadWorkers reads at a time, adjacent extents coalesced). Each
// buffer is locked while it is read, so a Get of it waits for the read and
// then verifies it. Read-ahead stops when the cache is full of pinned
// buffers. WaitReadAhead waits for the reads started.
func (c *Cache) ReadAhead(exts []Extent) {
	var bufs []*Buf
	c.mu.Lock()
	for _, e := range exts {
		if e.Len <= 0 || e.Daddr < 0 || c.dev.checkRange("read", e.Daddr, e.Len*BBSize) != nil {
			continue
		}
		k := bufKey{e.Daddr, e.Len}
		if c.m[k] != nil {
			continue
		}
		n := int64(e.Len * BBSize)
		if c.evictFor(n); c.bytes+n > c.opts.MaxBytes {
			break
		}
		b := &Buf{Daddr: e.Daddr, Len: e.Len, Data: c.alloc(int(n)), c: c, ref: 1, indexed: true}
		b.lock.Lock() // new: never blocks
		c.m[k] = b
		c.addBytes(n)
		bufs = append(bufs, b)
	}
	c.mu.Unlock()
	slices.SortFunc(bufs, func(a, b *Buf) int { return cmp.Compare(a.Daddr, b.Daddr) })
	for i := 0; i < len(bufs); {
		j, n := i+1, len(bufs[i].Data)
		for j < len(bufs) && bufs[j].Daddr == bufs[j-1].Daddr+int64(bufs[j-1].Len) && n+len(bufs[j].Data) <= c.opts.ReadAheadMaxIO {
			n += len(bufs[j].Data)
			j++
		}
		run := bufs[i:j]
		c.raWG.Add(1)
		go func() {
			defer c.raWG.Done()
			c.raSem <- struct{}{}
			defer func() { <-c.raSem }()
			c.readRun(run, n)
		}()
		i = j
	}
}

func (c *Cache) readRun(run []*Buf, n int) {
	c.reads.Add(1)
	var err error
	if len(run) == 1 {
		err = c.dev.ReadInto(run[0].Daddr, run[0].Data)
	} else {
		tmp := c.dev.allocIO(n)
		if err = c.dev.ReadInto(run[0].Daddr, tmp); err == nil {
			off := 0
			for _, b := range run {
				off += copy(b.Data, tmp[off:])
			}
		}
	}
	for _, b := range run {
		if err == nil {
			b.flags.Or(bufDone)
			c.readaheads.Add(1)
		}
		b.Release()
	}
}

// waitReadAhead waits for the read-ahead reads started so far.
func (c *Cache) waitReadAhead() { c.raWG.Wait() }

// DropClean drops every clean, unreferenced, item-free buffer (for tests,
// and to forget what a replay changed behind the cache's back).
func (c *Cache) DropClean() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, b := range c.m {
		if b.ref == 0 && b.flags.Load()&BufDirty == 0 && b.nitems.Load() == 0 {
			c.unindex(b)
			n++
		}
	}
	return n
}
