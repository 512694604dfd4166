package xfs

import (
	"fmt"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/ondisk"
)

// AGState is what a scan of one AG finds: its AGI, its inobt records and
// its orphan chains. It is the input of the free engine's plan.
type AGState struct {
	AGI    *ondisk.AGI
	Inobt  []ondisk.InobtRec
	Chains []Chain
}

// Locate returns where agino's inode lives, using the AG's inobt records
// when its chunk cannot be derived from its number alone; the inode must be
// allocated in its chunk.
func (fs *FS) Locate(agno uint32, recs []ondisk.InobtRec, agino uint32) (ondisk.InodeLoc, error) {
	r, ok := inobt.Find(recs, agino)
	if !ok {
		return ondisk.InodeLoc{}, fmt.Errorf("AG %d: inode %d (agino %d) is in no inode chunk of the inobt", agno, fs.G.Ino(agno, agino), agino)
	}
	if !inobt.IsAllocated(r, agino) {
		return ondisk.InodeLoc{}, fmt.Errorf("AG %d: inode %d (agino %d) is free or a hole in its inobt record (startino %d, free %#x, holemask %#x)",
			agno, fs.G.Ino(agno, agino), agino, r.StartIno, r.Free, r.HoleMask)
	}
	return fs.G.ImapInChunk(agno, agino, r.StartIno), nil
}

// ScanAG reads AG agno's AGI, walks its inobt and follows every unlinked
// bucket chain.
func (fs *FS) ScanAG(agno uint32) (*AGState, error) {
	a, err := agi.Read(fs.Cache, fs.G, agno)
	if err != nil {
		return nil, err
	}
	recs, err := inobt.Records(inobt.Tree(fs.Cache, fs.G, a, false))
	if err != nil {
		return nil, err
	}
	st := &AGState{AGI: a, Inobt: recs}
	locate := func(agino uint32) (ondisk.InodeLoc, error) { return fs.Locate(agno, recs, agino) }
	for b, head := range a.Unlinked {
		if head == ondisk.NullAgino {
			continue
		}
		c := Chain{Bucket: b}
		err := agi.WalkBucket(fs.Cache, fs.G, agno, b, head, locate, func(agino uint32, d *ondisk.Dinode) error {
			c.Inodes = append(c.Inodes, Orphan{Ino: fs.G.Ino(agno, agino), Agino: agino, Mode: Mode(d.Mode), Nlink: d.Nlink,
				Size: d.Size, NBlocks: d.Nblocks, Next: d.NextUnlinked})
			return nil
		})
		if err != nil {
			return nil, err
		}
		st.Chains = append(st.Chains, c)
	}
	return st, nil
}

// FreeChunks lists the AG's chunks whose inodes are all free (holes count
// as free, as in xfs_difree_inobt). The kernel frees a chunk only when
// inodes fit in it (sb_inopblock <= 64); otherwise none is listed.
func (fs *FS) FreeChunks(agno uint32, recs []ondisk.InobtRec) []FreeChunk {
	if fs.G.InoPBlock > ondisk.InodesPerChunk {
		return nil
	}
	var out []FreeChunk
	for _, r := range recs {
		if r.Free != ondisk.InobtAllFree {
			continue
		}
		var blocks uint32
		for _, e := range fs.G.ChunkExtents(r.StartIno, r.HoleMask) {
			blocks += e.Len
		}
		out = append(out, FreeChunk{StartIno: fs.G.Ino(agno, r.StartIno), StartAgino: r.StartIno, Holemask: r.HoleMask,
			Inodes: uint32(r.Count), Blocks: blocks})
	}
	return out
}

// Scan scans every AG (in parallel) for orphans and fully free chunks. An
// AG that cannot be scanned is reported in the result's Errors and its
// entry's Err; the others are still scanned.
func (fs *FS) Scan(progress func(done, total int)) (*ScanReport, error) {
	r := &ScanReport{Device: fs.Path, LogClean: true, AGs: make([]AGScan, fs.G.AGCount)}
	st, err := fs.LogState()
	if err != nil {
		return nil, err
	}
	if st != nil && !st.Clean {
		r.LogClean, r.Note = false, DirtyLogNote
	}
	errs := fs.forEachAG(func(agno uint32) error {
		s, err := fs.ScanAG(agno)
		r.AGs[agno] = AGScan{AG: agno, Chains: []Chain{}, FreeChunks: []FreeChunk{}}
		if err != nil {
			return err
		}
		r.AGs[agno].Chains = append(r.AGs[agno].Chains, s.Chains...)
		r.AGs[agno].FreeChunks = append(r.AGs[agno].FreeChunks, fs.FreeChunks(agno, s.Inobt)...)
		return nil
	}, progress)
	r.Errors = []ScanError{}
	for agno, err := range errs {
		if err != nil {
			p := ProblemOf(uint32(agno), -1, 0, err)
			r.AGs[agno].Error = &p
			r.Errors = append(r.Errors, p)
		}
	}
	for _, a := range r.AGs {
		for _, c := range a.Chains {
			for _, o := range c.Inodes {
				r.Orphans++
				r.OrphanBlks += o.NBlocks
			}
		}
		for _, c := range a.FreeChunks {
			r.FreeChunks++
			r.ChunkInodes += uint64(c.Inodes)
			r.ChunkBlks += uint64(c.Blocks)
		}
	}
	return r, nil
}
