package xfs

import (
	"sync"
	"sync/atomic"
	"testing"
)

// The budget never lets more than its total in, and admits alone what
// weighs more.
func TestBudget(t *testing.T) {
	b := newBudget(100)
	if got := b.acquire(250); got != 100 {
		t.Fatalf("acquire(250) of 100 took %d", got)
	}
	b.release(100)
	var in, peak atomic.Int64
	var wg sync.WaitGroup
	for _, w := range []int64{60, 30, 30, 90, 10, 0, 500} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := b.acquire(w)
			cur := in.Add(n)
			for p := peak.Load(); cur > p && !peak.CompareAndSwap(p, cur); p = peak.Load() {
			}
			in.Add(-n)
			b.release(n)
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 100 {
		t.Errorf("%d bytes admitted at once by a budget of 100", p)
	}
}
