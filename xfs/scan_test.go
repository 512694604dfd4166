package xfs

import (
	"fmt"
	"slices"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// TestScanAgainstXfsDB scans every read-only fixture and checks, AG by AG,
// the orphan chains (bucket by bucket, in chain order) against the chains
// xfs_db follows, each orphan's mode, nlink, size and nblocks against
// xfs_db's inode, the fully free chunks against the xfs_db inobt records
// whose free mask is all ones, and the totals against the AGs.
func TestScanAgainstXfsDB(t *testing.T) {
	for _, name := range testimg.ReadOnlyFixtures() {
		t.Run(name, func(t *testing.T) {
			testimg.Need(t, "xfs_db")
			img := testimg.Path(t, name)
			before := testimg.Hash(t, img)
			fs := openRO(t, img)
			var calls []int
			r, err := fs.Scan(func(done, total int) {
				if total != int(fs.G.AGCount) {
					t.Errorf("progress total %d, agcount %d", total, fs.G.AGCount)
				}
				calls = append(calls, done)
			})
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if len(r.Errors) != 0 {
				t.Fatalf("Scan errors: %+v", r.Errors)
			}
			if want := fs.G.AGCount; len(calls) != int(want) || calls[len(calls)-1] != int(want) {
				t.Errorf("progress calls %v, want 1..%d", calls, want)
			}
			orphanFix := isOrphanFixture(name)
			if r.LogClean == orphanFix || (r.Note != "") != orphanFix {
				t.Errorf("log clean %v, note %q; fixture %s has orphans: %v", r.LogClean, r.Note, name, orphanFix)
			}
			geo := testimg.Geo(t, img)
			var orphans int
			var orphanBlks, chunkInodes, chunkBlks uint64
			var chunks int
			for agno := range fs.G.AGCount {
				a := r.AGs[agno]
				if a.AG != agno || a.Error != nil {
					t.Fatalf("AG entry %d: %+v", agno, a)
				}
				// Chains, against xfs_db.
				want := testimg.OrphanChains(t, img, agno)
				var got [64][]uint32
				var cmds []string
				var all []Orphan
				for _, c := range a.Chains {
					if c.Bucket < 0 || c.Bucket > 63 || got[c.Bucket] != nil {
						t.Fatalf("AG %d: bad or repeated bucket %d", agno, c.Bucket)
					}
					if len(c.Inodes) == 0 {
						t.Errorf("AG %d bucket %d: empty chain reported", agno, c.Bucket)
					}
					for i, o := range c.Inodes {
						got[c.Bucket] = append(got[c.Bucket], o.Agino)
						if o.Ino != geo.Ino(agno, o.Agino) {
							t.Errorf("AG %d agino %d: ino %d, want %d", agno, o.Agino, o.Ino, geo.Ino(agno, o.Agino))
						}
						next := uint32(ondisk.NullAgino)
						if i+1 < len(c.Inodes) {
							next = c.Inodes[i+1].Agino
						}
						if o.Next != next {
							t.Errorf("AG %d agino %d: next_unlinked %d, the chain goes on to %d", agno, o.Agino, o.Next, next)
						}
						cmds = append(cmds, fmt.Sprintf("inode %d", o.Ino), "p core.mode core.nlinkv2 core.size core.nblocks")
						all = append(all, o)
						orphans++
						orphanBlks += o.NBlocks
					}
				}
				for b := range 64 {
					if !slices.Equal(got[b], want[b]) {
						t.Errorf("AG %d bucket %d: chain %v, xfs_db %v", agno, b, got[b], want[b])
					}
				}
				if len(cmds) > 0 {
					fields := testimg.ParseFieldList(testimg.DB(t, img, cmds...))
					if len(fields) != 4*len(all) {
						t.Fatalf("AG %d: %d fields from xfs_db for %d orphans", agno, len(fields), len(all))
					}
					for i, o := range all {
						f := map[string]string{}
						for _, x := range fields[4*i : 4*i+4] {
							f[x.Name] = x.Value
						}
						if num(t, f, "core.mode") != uint64(o.Mode) || num(t, f, "core.nlinkv2") != uint64(o.Nlink) ||
							num(t, f, "core.size") != o.Size || num(t, f, "core.nblocks") != o.NBlocks {
							t.Errorf("AG %d orphan %d: %+v; xfs_db %v", agno, o.Ino, o, f)
						}
						if o.Nlink != 0 || o.Mode == 0 {
							t.Errorf("orphan %d has nlink %d mode %#o", o.Ino, o.Nlink, o.Mode)
						}
					}
				}
				// Fully free chunks, against the xfs_db inobt records.
				wantChunks := xfsDBFreeChunks(t, fs, img, agno)
				if !slices.Equal(a.FreeChunks, wantChunks) {
					t.Errorf("AG %d free chunks %+v, from xfs_db records %+v", agno, a.FreeChunks, wantChunks)
				}
				for _, c := range a.FreeChunks {
					chunks++
					chunkInodes += uint64(c.Inodes)
					chunkBlks += uint64(c.Blocks)
					if c.Blocks == 0 || c.Blocks > fs.G.IallocBlks {
						t.Errorf("AG %d chunk %d: %d blocks, a chunk has %d", agno, c.StartAgino, c.Blocks, fs.G.IallocBlks)
					}
				}
			}
			if r.Orphans != orphans || r.OrphanBlks != orphanBlks || r.FreeChunks != chunks ||
				r.ChunkInodes != chunkInodes || r.ChunkBlks != chunkBlks {
				t.Errorf("totals %d orphans %d blocks, %d chunks %d inodes %d blocks; the AGs add up to %d %d %d %d %d",
					r.Orphans, r.OrphanBlks, r.FreeChunks, r.ChunkInodes, r.ChunkBlks, orphans, orphanBlks, chunks, chunkInodes, chunkBlks)
			}
			if orphanFix && r.Orphans == 0 {
				t.Errorf("orphan fixture %s: no orphans found", name)
			}
			if !orphanFix && r.Orphans != 0 {
				t.Errorf("fixture %s: %d orphans, want none", name, r.Orphans)
			}
			fs.Close()
			if testimg.Hash(t, img) != before {
				t.Errorf("Scan changed the image")
			}
		})
	}
}

// xfsDBFreeChunks returns the fully free chunks of AG agno: the xfs_db inobt
// records whose free mask is all ones (none if inodes do not fit a chunk).
func xfsDBFreeChunks(t *testing.T, fs *FS, img string, agno uint32) []FreeChunk {
	t.Helper()
	geo := testimg.Geo(t, img)
	var out []FreeChunk
	for _, rec := range testimg.InobtRecords(t, img, agno, false) {
		if rec["free"] != ondisk.InobtAllFree || fs.G.InoPBlock > 64 {
			continue
		}
		hm := uint16(rec["holemask"])
		cnt := uint32(64)
		if fs.G.HasSparse {
			cnt = uint32(rec["count"])
		}
		var blocks uint32
		for _, e := range fs.G.ChunkExtents(uint32(rec["startino"]), hm) {
			blocks += e.Len
		}
		out = append(out, FreeChunk{StartIno: geo.Ino(agno, uint32(rec["startino"])),
			StartAgino: uint32(rec["startino"]), Holemask: hm, Inodes: cnt, Blocks: blocks})
	}
	return out
}

// TestScanCraftedFreeChunk marks one inobt record all free with xfs_db (as
// an image once mounted with ikeep holds it) and checks that Scan lists
// that chunk, as computed from xfs_db's records, and no other.
func TestScanCraftedFreeChunk(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "default")
	geo := testimg.Geo(t, img)
	const agno = 2
	root := num(t, testimg.AGI(t, img, agno), "root")
	testimg.DBWrite(t, img, fmt.Sprintf("fsblock %d", geo.FSBlock(agno, uint32(root))), "type inobt",
		"write -- recs[1].free -1", "write recs[1].freecount 64")
	fs := openRO(t, img)
	r, err := fs.Scan(nil)
	if err != nil || len(r.Errors) != 0 {
		t.Fatalf("Scan: %v %+v", err, r.Errors)
	}
	want := xfsDBFreeChunks(t, fs, img, agno)
	if len(want) != 1 || want[0].Inodes != 64 || want[0].Blocks != fs.G.IallocBlks {
		t.Fatalf("crafting failed: xfs_db records give free chunks %+v", want)
	}
	if !slices.Equal(r.AGs[agno].FreeChunks, want) {
		t.Errorf("free chunks %+v, want %+v", r.AGs[agno].FreeChunks, want)
	}
	if r.FreeChunks != 1 || r.ChunkInodes != 64 || r.ChunkBlks != uint64(fs.G.IallocBlks) {
		t.Errorf("totals: %d chunks, %d inodes, %d blocks", r.FreeChunks, r.ChunkInodes, r.ChunkBlks)
	}
}

// TestLocate finds every orphan of the orphans fixtures through Locate and
// checks that a free inode and an inode in no chunk are refused.
func TestLocate(t *testing.T) {
	for _, name := range testimg.OrphanFixtures() {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			fs := openRO(t, img)
			for agno := range fs.G.AGCount {
				st, err := fs.ScanAG(agno)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range st.Chains {
					for _, o := range c.Inodes {
						loc, err := fs.Locate(agno, st.Inobt, o.Agino)
						if err != nil {
							t.Fatalf("Locate(%d, %d): %v", agno, o.Agino, err)
						}
						if loc.Agno != agno || loc.Agino != o.Agino || loc.Len <= 0 || loc.Offset < 0 {
							t.Errorf("Locate(%d, %d) = %+v", agno, o.Agino, loc)
						}
					}
				}
				for _, r := range st.Inobt {
					if r.FreeCount == 0 {
						continue
					}
					for i := range uint32(64) {
						if r.Free&(1<<i) != 0 && r.AllocMask()&(1<<i) != 0 {
							if _, err := fs.Locate(agno, st.Inobt, r.StartIno+i); err == nil {
								t.Errorf("Locate of free agino %d succeeded", r.StartIno+i)
							}
							break
						}
					}
				}
				if _, err := fs.Locate(agno, st.Inobt, 1); err == nil {
					t.Errorf("Locate of agino 1 (in no chunk) succeeded")
				}
			}
		})
	}
}

// BenchmarkScan scans the orphans fixture (four AGs, 313 orphans) with a
// fresh handle, so a cold buffer cache, each time.
func BenchmarkScan(b *testing.B) {
	img := testimg.Path(b, "orphans")
	for b.Loop() {
		fs, err := Open(img, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		r, err := fs.Scan(nil)
		fs.Close()
		if err != nil || len(r.Errors) != 0 || r.Orphans == 0 {
			b.Fatalf("scan: %v %+v", err, r)
		}
	}
}
