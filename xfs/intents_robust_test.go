package xfs

// Pending intents with values the journal's checks let through but that
// do not match the filesystem — extents already free, owners that are
// not the blocks', offsets past a file's end, a BUI on a file of another
// format, ranges across records — as a crafted or damaged image could
// hold them. Finishing them must never panic: each either finishes or
// stops with an error, the log then left dirty (the kernel's recovery
// fails on such a log too, and nothing more than it was is lost).

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
)

// TestOddIntentsNoPanic: see the file comment. 20 seeded cases of each
// intent type on the zoo image (with rmapbt).
func TestOddIntentsNoPanic(t *testing.T) {
	if testing.Short() {
		t.Skip("80 recoveries; not in -short mode")
	}
	z := zooImage(t, "-m", "rmapbt=1")
	fs := openRO(t, z.img)
	g := fs.G
	fs.Close()
	var inos []uint64
	for _, ino := range z.inos {
		inos = append(inos, ino)
	}
	inos = append(inos, 128, 131) // the root directory, an inode of its chunk
	rng := rand.New(rand.NewPCG(9, 9))
	block := func() uint64 {
		// Near the zoo's files (AG 0..3, low blocks) or anywhere.
		if rng.IntN(2) == 0 {
			return g.Fsbno(uint32(rng.IntN(int(g.AGCount))), uint32(1+rng.IntN(400)))
		}
		return g.Fsbno(uint32(rng.IntN(int(g.AGCount))), uint32(1+rng.IntN(int(g.AGBlocks)-64)))
	}
	length := func() uint32 { return uint32(1 + rng.IntN(40)) }
	owner := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return ondisk.RmapOwnCow
		default:
			return inos[rng.IntN(len(inos))]
		}
	}
	kinds := []func() *ondisk.IntentLog{
		func() *ondisk.IntentLog {
			return &ondisk.IntentLog{Type: ondisk.LIEFI, Size: 1, Free: []ondisk.FreeExtent{{Start: block(), Len: length()}}}
		},
		func() *ondisk.IntentLog {
			ty := []uint32{ondisk.RmapExtentMap, ondisk.RmapExtentMapShared, ondisk.RmapExtentUnmap, ondisk.RmapExtentUnmapShared,
				ondisk.RmapExtentConvert, ondisk.RmapExtentConvertShared, ondisk.RmapExtentAlloc, ondisk.RmapExtentFree}[rng.IntN(8)]
			o := owner()
			if o == ondisk.RmapOwnCow {
				o = inos[0]
			}
			if rng.IntN(3) == 0 {
				ty |= ondisk.RmapExtentUnwritten
			}
			return &ondisk.IntentLog{Type: ondisk.LIRUI, Size: 1,
				Maps: []ondisk.MapExtent{{Owner: o, StartBlock: block(), StartOff: uint64(rng.IntN(700)), Len: length(), Flags: ty}}}
		},
		func() *ondisk.IntentLog {
			ty := []uint32{ondisk.RefcountIncrease, ondisk.RefcountDecrease, ondisk.RefcountAllocCow, ondisk.RefcountFreeCow}[rng.IntN(4)]
			return &ondisk.IntentLog{Type: ondisk.LICUI, Size: 1, Phys: []ondisk.PhysExtent{{StartBlock: block(), Len: length(), Flags: ty}}}
		},
		func() *ondisk.IntentLog {
			ty := []uint32{ondisk.BmapMap, ondisk.BmapUnmap}[rng.IntN(2)]
			if rng.IntN(3) == 0 {
				ty |= ondisk.BmapExtentUnwritten
			}
			if rng.IntN(4) == 0 {
				ty |= ondisk.BmapExtentAttrFork
			}
			return &ondisk.IntentLog{Type: ondisk.LIBUI, Size: 1,
				Maps: []ondisk.MapExtent{{Owner: inos[rng.IntN(len(inos))], StartBlock: block(), StartOff: uint64(rng.IntN(700)), Len: length(), Flags: ty}}}
		},
	}
	finished, stopped, refused := 0, 0, 0
	for k, kind := range kinds {
		for i := 0; i < 20; i++ {
			item := kind()
			item.ID = 0xffff888000a00000 + uint64(k<<12+i)
			item.NExtents = 1
			t.Run(fmt.Sprintf("%s-%02d", ItemName(item.Name()), i), func(t *testing.T) {
				img := copyImg(t, z.img)
				synthLog(t, img, func(fs *FS, tx *journal.Transaction) { tx.LogItem(item.Bytes()) })
				rep, err := Recover(img, RecoverOptions{})
				switch {
				case err == nil:
					finished++
				case rep != nil && rep.Intents != nil:
					stopped++
					t.Logf("%s: stopped: %v", item, err)
				default:
					refused++
					t.Logf("%s: refused: %v", item, err)
				}
			})
		}
	}
	t.Logf("%d finished, %d stopped mid-way (log left dirty), %d refused", finished, stopped, refused)
}
