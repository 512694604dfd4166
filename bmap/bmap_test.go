package bmap_test

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/bmap"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
)

var bmapLine = regexp.MustCompile(`^(data|attr) offset (\d+) startblock (\d+) \(\d+/\d+\) count (\d+) flag (\d)`)

// xfsDBExtents is what `xfs_db -c "inode N" -c "bmap -d|-a"` prints.
func xfsDBExtents(t *testing.T, img string, ino uint64, fork int) []ondisk.BmbtIrec {
	flag := "-d"
	if fork == ondisk.AttrFork {
		flag = "-a"
	}
	out := testimg.DB(t, img, fmt.Sprintf("inode %d", ino), "bmap "+flag)
	var exts []ondisk.BmbtIrec
	for _, line := range regexp.MustCompile(`\n`).Split(out, -1) {
		m := bmapLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		off, _ := strconv.ParseUint(m[2], 10, 64)
		sb, _ := strconv.ParseUint(m[3], 10, 64)
		n, _ := strconv.ParseUint(m[4], 10, 32)
		exts = append(exts, ondisk.BmbtIrec{StartOff: off, StartBlock: sb, BlockCount: uint32(n), Unwritten: m[5] == "1"})
	}
	return exts
}

// Every inode that holds blocks in the populated fixtures (one-extent and
// 400-extent btree-format files, directories in block and leaf form,
// remote symlinks, xattrs in extents format) maps exactly the extents
// xfs_db lists, and its forks' blocks add up to di_nblocks.
func TestMapAgainstXfsDB(t *testing.T) {
	testimg.Need(t, "xfs_db", "zstd")
	for _, name := range []string{"default", "bs1024", "nrext64", "isize2048", "orphans"} {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			fs, err := xfs.Open(img, xfs.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer fs.Close()
			btrees, compared := 0, 0
			for agno := uint32(0); agno < fs.G.AGCount; agno++ {
				a, err := agi.Read(fs.Cache, fs.G, agno)
				if err != nil {
					t.Fatal(err)
				}
				recs, err := inobt.Records(inobt.Tree(fs.Cache, fs.G, a, false))
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					for i := uint32(0); i < ondisk.InodesPerChunk; i++ {
						agino := r.StartIno + i
						if !inobt.IsAllocated(r, agino) {
							continue
						}
						d, err := agi.ReadInode(fs.Cache, fs.G, fs.G.ImapInChunk(agno, agino, r.StartIno))
						if err != nil {
							t.Fatal(err)
						}
						if d.Nblocks == 0 {
							continue
						}
						var maps [2]*bmap.ForkMap
						for fork := range 2 {
							m, err := bmap.Map(fs.Cache, fs.G, d, fork)
							if err != nil {
								t.Fatalf("inode %d fork %d: %v", d.Ino, fork, err)
							}
							maps[fork] = m
							if m.Format == ondisk.DinodeFmtBtree {
								btrees++
							}
							want := xfsDBExtents(t, img, d.Ino, fork)
							if len(want) != len(m.Extents) {
								t.Fatalf("inode %d fork %d: %d extents, xfs_db lists %d", d.Ino, fork, len(m.Extents), len(want))
							}
							for j := range want {
								got := m.Extents[j]
								// xfs_db prints startblock as an fsbno.
								if got != want[j] {
									t.Fatalf("inode %d fork %d extent %d: %v, xfs_db %v", d.Ino, fork, j, got, want[j])
								}
							}
						}
						compared++
						if err := bmap.CheckBlocks(d, maps[0], maps[1]); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			t.Logf("%d inodes with blocks compared, %d btree forks", compared, btrees)
			if btrees == 0 || compared < 5 {
				t.Fatal("no btree-format fork found: the fixture should hold one")
			}
		})
	}
}
