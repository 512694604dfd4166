package alloc

// Busy extents (xfs_extent_busy.c): extents freed by changes whose log is
// not yet durable. Until it is, they are not handed out again by the
// allocations here that take blocks from free space (a btree's new block,
// the AGFL refill); a btree block taken from the AGFL may reuse one, as in
// the kernel, since both changes are in the log, in order. (For metadata
// written only through the log, reuse in a later checkpoint would also be
// safe; the rule keeps xfsfree's allocations the kernel's.)

import (
	"slices"
	"sync"
)

// BusyExtent is one extent in a Busy set. This struct does not represent
// an on-disk struct.
type BusyExtent struct {
	Agno, Bno, Len uint32
}

// Busy is the set of busy extents of a filesystem, shared by every
// transaction. Safe for concurrent use.
type Busy struct {
	mu  sync.Mutex
	ags map[uint32][]*BusyExtent
	// Reused counts allocations that found nothing but busy space and
	// took it anyway.
	Reused int
}

// NewBusy returns an empty set.
func NewBusy() *Busy { return &Busy{ags: map[uint32][]*BusyExtent{}} }

// Add marks [bno, bno+n) of AG agno busy until Remove.
func (b *Busy) Add(agno, bno, n uint32) *BusyExtent {
	e := &BusyExtent{agno, bno, n}
	b.mu.Lock()
	b.ags[agno] = append(b.ags[agno], e)
	b.mu.Unlock()
	return e
}

// Remove ends e's busy time (its free is durable, or was cancelled).
func (b *Busy) Remove(e *BusyExtent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.ags[e.Agno]
	if i := slices.Index(l, e); i >= 0 {
		b.ags[e.Agno] = slices.Delete(l, i, i+1)
	}
}

// Len is the number of busy extents.
func (b *Busy) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.ags {
		n += len(l)
	}
	return n
}

// Place finds n blocks not busy inside the free extent [fbno, fbno+flen)
// of AG agno, as close to near as it can (the start of the free
// extent when near is outside it): the start, or false if every place
// overlaps a busy extent (xfs_extent_busy_trim, simplified).
func (b *Busy) Place(agno, fbno, flen, n, near uint32) (uint32, bool) {
	if b == nil {
		return clampNear(fbno, flen, n, near), flen >= n
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	busy := b.ags[agno]
	free := func(s uint32) bool {
		for _, e := range busy {
			if uint64(s) < uint64(e.Bno)+uint64(e.Len) && uint64(e.Bno) < uint64(s)+uint64(n) {
				return false
			}
		}
		return true
	}
	if flen < n {
		return 0, false
	}
	want := clampNear(fbno, flen, n, near)
	if free(want) {
		return want, true
	}
	// The candidates next to each busy extent inside the free extent,
	// the nearest to want first.
	end := fbno + flen - n
	var cands []uint32
	for _, e := range busy {
		for _, s := range []uint64{uint64(e.Bno) + uint64(e.Len), uint64(e.Bno) - min(uint64(e.Bno), uint64(n))} {
			if s >= uint64(fbno) && s <= uint64(end) {
				cands = append(cands, uint32(s))
			}
		}
	}
	cands = append(cands, fbno, end)
	slices.SortFunc(cands, func(x, y uint32) int { return int(dist(x, want)) - int(dist(y, want)) })
	for _, s := range cands {
		if free(s) {
			return s, true
		}
	}
	return 0, false
}

// clampNear is where n blocks of [fbno, fbno+flen) go for near: at near
// if they fit there, else at the end nearest to it.
func clampNear(fbno, flen, n, near uint32) uint32 {
	end := fbno + flen - min(flen, n)
	switch {
	case near <= fbno:
		return fbno
	case near >= end:
		return end
	}
	return near
}

func dist(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// BusyTracker is what an AG records its frees in and asks before it hands
// out free space. The caller ties Add to its transaction: the extent stays
// busy until the transaction is durable (or cancelled).
type BusyTracker interface {
	Add(agno, bno, n uint32)
	Place(agno, fbno, flen, n, near uint32) (uint32, bool)
	// Reuse counts an allocation that had to take busy space.
	Reuse()
}

// Reuse counts an allocation that took busy space.
func (b *Busy) Reuse() {
	b.mu.Lock()
	b.Reused++
	b.mu.Unlock()
}
