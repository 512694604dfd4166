package xfs

import (
	"slices"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// TestInfoAgainstXfsDB checks Info on every read-only fixture against
// xfs_db (superblock, every AGI and AGF) and xfs_logprint (log state).
func TestInfoAgainstXfsDB(t *testing.T) {
	for _, name := range testimg.ReadOnlyFixtures() {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db", "xfs_logprint")
			img := testimg.Path(t, name)
			before := testimg.Hash(t, img)
			fs := openRO(t, img)
			r, err := fs.Info()
			if err != nil {
				t.Fatalf("Info: %v", err)
			}
			sb := testimg.Superblock(t, img)
			geo := r.Geometry
			eq := func(what string, got, want uint64) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %d, xfs_db says %d", what, got, want)
				}
			}
			eq("block_size", uint64(geo.BlockSize), num(t, sb, "blocksize"))
			eq("sector_size", uint64(geo.SectorSize), num(t, sb, "sectsize"))
			eq("inode_size", uint64(geo.InodeSize), num(t, sb, "inodesize"))
			eq("data_blocks", geo.DataBlocks, num(t, sb, "dblocks"))
			eq("ag_count", uint64(geo.AGCount), num(t, sb, "agcount"))
			eq("ag_blocks", uint64(geo.AGBlocks), num(t, sb, "agblocks"))
			eq("root_ino", geo.RootIno, num(t, sb, "rootino"))
			eq("inode_alignment", uint64(geo.InodeAlignment), num(t, sb, "inoalignmt"))
			eq("sparse_alignment", uint64(geo.SparseAlignment), num(t, sb, "spino_align"))
			eq("log_start", geo.LogStart, num(t, sb, "logstart"))
			eq("log_blocks", uint64(geo.LogBlocks), num(t, sb, "logblocks"))
			eq("log_stripe_unit", uint64(geo.LogStripeUnit), num(t, sb, "logsunit"))
			if ls := num(t, sb, "logsectsize"); ls != 0 {
				eq("log_sector_size", uint64(geo.LogSectorSize), ls)
			} else {
				eq("log_sector_size", uint64(geo.LogSectorSize), 512)
			}
			if geo.UUID != sb["uuid"] {
				t.Errorf("uuid = %s, xfs_db says %s", geo.UUID, sb["uuid"])
			}
			eq("icount", r.Counters.ICount, num(t, sb, "icount"))
			eq("ifree", r.Counters.IFree, num(t, sb, "ifree"))
			eq("fdblocks", r.Counters.FDBlocks, num(t, sb, "fdblocks"))
			inopb := num(t, sb, "inopblock")
			eq("inodes_per_chunk", uint64(geo.InodesPerChunk), 64)
			eq("chunk_blocks", uint64(geo.ChunkBlocks), max(1, 64/inopb))
			eq("inodes_per_cluster", uint64(geo.InodesPerCluster), uint64(geo.ClusterBlocks)*inopb)

			// Features, against xfs_db's info (xfs_info) flags.
			infoOut := testimg.DB(t, img, "info")
			for flag, feat := range map[string]string{"finobt": "finobt", "sparse": "sparse", "rmapbt": "rmapbt",
				"reflink": "reflink", "bigtime": "bigtime", "inobtcount": "inobtcount", "nrext64": "nrext64"} {
				on := strings.Contains(infoOut, flag+"=1")
				if on != slices.Contains(r.Features, feat) {
					t.Errorf("feature %s: xfs_db info says %s=%v, Info lists %v", feat, flag, on, r.Features)
				}
			}
			if !slices.Contains(r.Features, "crc") {
				t.Errorf("features %v lack crc", r.Features)
			}

			// Every AG, against its AGI and AGF.
			if len(r.AGs) != int(geo.AGCount) {
				t.Fatalf("%d AGs reported, agcount %d", len(r.AGs), geo.AGCount)
			}
			finobt := strings.Contains(infoOut, "finobt=1")
			var sums Counters
			for _, a := range r.AGs {
				out := testimg.DB(t, img, agCmd("agi", a.AG), "p")
				agi := testimg.ParseFields(out)
				agf := testimg.ParseFields(testimg.DB(t, img, agCmd("agf", a.AG), "p"))
				eq2 := func(what string, got uint32, f map[string]string, key string) {
					t.Helper()
					if want := num(t, f, key); uint64(got) != want {
						t.Errorf("AG %d %s = %d, xfs_db %s = %d", a.AG, what, got, key, want)
					}
				}
				eq2("length", a.Length, agi, "length")
				eq2("icount", a.ICount, agi, "count")
				eq2("ifree", a.IFree, agi, "freecount")
				eq2("inobt_level", a.InobtLevel, agi, "level")
				if finobt {
					eq2("finobt_level", a.FinobtLevel, agi, "free_level")
				} else if a.FinobtLevel != 0 {
					t.Errorf("AG %d finobt_level %d without a finobt", a.AG, a.FinobtLevel)
				}
				eq2("freeblks", a.FreeBlocks, agf, "freeblks")
				eq2("flcount", a.FLCount, agf, "flcount")
				eq2("btreeblks", a.BtreeBlocks, agf, "btreeblks")
				eq2("longest", a.Longest, agf, "longest")
				heads, err := testimg.ParseUnlinked(out)
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, h := range heads {
					if h != testimg.NullAgino {
						n++
					}
				}
				if a.Unlinked != n {
					t.Errorf("AG %d unlinked buckets in use = %d, xfs_db shows %d", a.AG, a.Unlinked, n)
				}
				sums.ICount += uint64(a.ICount)
				sums.IFree += uint64(a.IFree)
				sums.FDBlocks += uint64(a.FreeBlocks) + uint64(a.FLCount) + uint64(a.BtreeBlocks)
			}
			if r.AGSums != sums {
				t.Errorf("ag_sums %+v, sum of the AGs %+v", r.AGSums, sums)
			}
			// On a clean filesystem the lazy superblock counters were
			// written at unmount and equal the AG sums.
			if !isOrphanFixture(name) && (r.AGSums.ICount != r.Counters.ICount || r.AGSums.IFree != r.Counters.IFree) {
				t.Errorf("clean fixture: ag sums %+v differ from superblock counters %+v", r.AGSums, r.Counters)
			}

			// The log, against xfs_logprint.
			lp := xfsLogprint(t, img)
			if r.Log.External {
				t.Fatalf("log reported external")
			}
			if r.Log.Clean != lp.Clean || int64(r.Log.Head.Block) != lp.Head || int64(r.Log.Tail.Block) != lp.Tail {
				t.Errorf("log clean %v head %v tail %v; xfs_logprint: clean %v head %d tail %d",
					r.Log.Clean, r.Log.Head, r.Log.Tail, lp.Clean, lp.Head, lp.Tail)
			}
			if want := !isOrphanFixture(name); r.Log.Clean != want {
				t.Errorf("log clean = %v, want %v for fixture %s", r.Log.Clean, want, name)
			}
			if r.Log.Clean != (r.Log.Note == "") {
				t.Errorf("log clean %v but note %q", r.Log.Clean, r.Log.Note)
			}
			fs.Close()
			if after := testimg.Hash(t, img); after != before {
				t.Errorf("Info changed the image")
			}
		})
	}
}
