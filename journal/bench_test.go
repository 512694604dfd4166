package journal

import (
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// benchSession opens a writing session on a copy of the default fixture.
func benchSession(b *testing.B) (*Session, *cache.Cache, *ondisk.Geometry) {
	b.Helper()
	img := testimg.Path(b, "default")
	dev, err := cache.Open(img, cache.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dev.Close() })
	sbb, err := dev.ReadAt(0, 8)
	if err != nil {
		b.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(sbb)
	if err != nil {
		b.Fatal(err)
	}
	g, err := ondisk.NewGeometry(sb)
	if err != nil {
		b.Fatal(err)
	}
	lg, err := NewGeometry(g)
	if err != nil {
		b.Fatal(err)
	}
	st, err := New(dev, lg).FindTail()
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWriter(dev, lg, st)
	if err != nil {
		b.Fatal(err)
	}
	c := cache.NewCache(dev, cache.CacheOptions{Geometry: g})
	return NewSession(w, c, g), c, g
}

// logAGIs changes and logs one unlinked bucket of every AG's AGI in tx.
func logAGIs(b *testing.B, tx *Transaction, g *ondisk.Geometry, v uint32) {
	for agno := range g.AGCount {
		d := g.AGIDaddr(agno)
		buf, err := tx.ReadBuf(d, g.SectBBs(), ondisk.KindAGI, ondisk.VerifyCtx{G: g, AG: agno, Daddr: d})
		if err != nil {
			b.Fatal(err)
		}
		// A bucket of the AGI, set and back: a change that leaves it valid.
		f := ondisk.AGIBucket(int(v % ondisk.AGIUnlinkedBuckets))
		f.PutUint(buf.Data, f.Uint(buf.Data))
		ondisk.LogField(tx, buf, f)
	}
}

// BenchmarkCommit: a transaction logging every AGI, committed into the
// open checkpoint (delayed logging: no I/O but the pushes when the
// checkpoint is full).
func BenchmarkCommit(b *testing.B) {
	s, _, g := benchSession(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx := s.Begin()
		logAGIs(b, tx, g, uint32(i))
		if _, err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCheckpoint: 64 commits, then a checkpoint (push, sync, write in
// place, sync) — one round per op.
func BenchmarkCheckpoint(b *testing.B) {
	s, _, g := benchSession(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 64; j++ {
			tx := s.Begin()
			logAGIs(b, tx, g, uint32(j))
			if _, err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Checkpoint(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}
