package cache

// Writing buffers in place: each stamped with its LSN and CRC
// (BlockKind.Stamp) and verified by its kind's verifier first (the
// kernel's write verifier: a block that fails is never written), adjacent
// buffers coalesced into one write.

import (
	"cmp"
	"fmt"
	"slices"
)

// prepareWrite stamps a held buffer for writing.
func (c *Cache) prepareWrite(b *Buf, lsn uint64) (bool, error) {
	if b.lock.TryLock() {
		b.lock.Unlock()
		return false, fmt.Errorf("cache: write of daddr %d: buffer is not locked by the caller", b.Daddr)
	}
	f := b.flags.Load()
	if f&BufStale != 0 {
		return false, fmt.Errorf("daddr %d (%d BBs): %w", b.Daddr, b.Len, ErrStaleWrite)
	}
	if f&BufDirty == 0 {
		return false, nil
	}
	if lsn != 0 {
		b.LSN = lsn
	}
	if b.Kind != nil {
		b.Kind.Stamp(b.Data, b.LSN)
		if err := b.VerifyWrite(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// VerifyWrite runs the buffer's kind's verifier on its contents as they
// are (the kernel's write verifier; stamp first): the VerifyCtx of the
// buffer's last Get, with the cache's geometry when that has none. The
// caller holds b. The error is a located *ondisk.CorruptError.
func (b *Buf) VerifyWrite() error {
	if b.Kind == nil || b.Kind.Verify == nil {
		return nil
	}
	ctx := b.ctx
	if ctx.G == nil {
		ctx.G = b.c.opts.Geometry
	}
	if err := b.Kind.Verify(b.Data, ctx); err != nil {
		return fmt.Errorf("write verifier refused the block: %w", verifyError(err, b.Kind, ctx))
	}
	return nil
}

func (c *Cache) written(b *Buf) {
	b.flags.And(^BufDirty)
	b.verified = b.Kind
	c.writes.Add(1)
	c.mu.Lock()
	delete(c.dirty, b)
	c.mu.Unlock()
}

// WriteBack stamps (b.Kind.Stamp with lsn, or b.LSN when lsn is 0) and
// writes a dirty buffer in place, then clears DIRTY. The caller holds b.
// A clean buffer is not written; a STALE one is refused (ErrStaleWrite).
func (c *Cache) WriteBack(b *Buf, lsn uint64) error {
	ok, err := c.prepareWrite(b, lsn)
	if !ok || err != nil {
		return err
	}
	if err := c.dev.WriteAt(b.Daddr, b.Data); err != nil {
		return err
	}
	c.written(b)
	return nil
}

// WriteBackList writes the dirty buffers of bufs, all held by the caller,
// each stamped with its own LSN field, coalescing adjacent buffers into one
// device write (up to ReadAheadMaxIO bytes). It stops at the first error;
// buffers not written stay dirty. STALE buffers are refused.
func (c *Cache) WriteBackList(bufs []*Buf) error {
	var ws []*Buf
	for _, b := range bufs {
		ok, err := c.prepareWrite(b, 0)
		if err != nil {
			return err
		}
		if ok {
			ws = append(ws, b)
		}
	}
	slices.SortFunc(ws, func(a, b *Buf) int { return cmp.Compare(a.Daddr, b.Daddr) })
	for i := 0; i < len(ws); {
		j, n := i+1, len(ws[i].Data)
		for j < len(ws) && ws[j].Daddr == ws[j-1].Daddr+int64(ws[j-1].Len) && n+len(ws[j].Data) <= c.opts.ReadAheadMaxIO {
			n += len(ws[j].Data)
			j++
		}
		data := ws[i].Data
		if j-i > 1 {
			data = c.dev.allocIO(n)
			off := 0
			for _, b := range ws[i:j] {
				off += copy(data[off:], b.Data)
			}
		}
		if err := c.dev.WriteAt(ws[i].Daddr, data); err != nil {
			return err
		}
		for _, b := range ws[i:j] {
			c.written(b)
		}
		i = j
	}
	return nil
}
