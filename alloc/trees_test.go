package alloc

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/xfsfree/xfsfree/ondisk"
)

// rmapLeafHighKey finds the greatest record high key, as comparing every
// record's rmapRecHighKey with rmapCmp does.
func TestRmapLeafHighKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	owners := []uint64{ondisk.RmapOwnAG, ondisk.RmapOwnInobt, 128, 129, 1 << 40}
	for trial := range 2000 {
		n := 1 + rng.IntN(40)
		buf := make([]byte, 4096)
		leaf := &ondisk.BtreeBlock{Type: ondisk.BtRmapbt, B: buf, NumRecs: n}
		for j := range n {
			off := uint64(rng.IntN(1000))
			switch rng.IntN(4) {
			case 0:
				off |= ondisk.RmapOffUnwritten
			case 1:
				off |= ondisk.RmapOffAttrFork
			case 2:
				off = ondisk.RmapOffBmbtBlock
			}
			r := ondisk.RmapRec{StartBlock: uint32(rng.IntN(64)), BlockCount: 1 + uint32(rng.IntN(8)),
				Owner: owners[rng.IntN(len(owners))], Offset: off}
			r.Encode(leaf.Rec(j))
		}
		var want, h []byte
		for j := range n {
			h = rmapRecHighKey(nil, leaf.Rec(j))
			if want == nil || rmapCmp(h, want) > 0 {
				want = h
			}
		}
		if got := rmapLeafHighKey(nil, leaf); !bytes.Equal(got, want) {
			t.Fatalf("trial %d: rmapLeafHighKey %x, the records' greatest high key %x", trial, got, want)
		}
	}
}
