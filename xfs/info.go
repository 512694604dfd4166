package xfs

import (
	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/alloc"
)

// Info reads the superblock, every AG's AGI and AGF, and the log state.
func (fs *FS) Info() (*InfoReport, error) {
	sb, g := fs.SB, fs.G
	r := &InfoReport{
		Device:   fs.Path,
		Buffered: fs.Dev.Buffered(),
		Features: sb.FeatureNames(),
		Counters: Counters{ICount: sb.ICount, IFree: sb.IFree, FDBlocks: sb.FDBlocks},
		Geometry: GeomReport{
			UUID: uuidString(sb.UUID), Label: label(sb.FName),
			BlockSize: g.BlockSize, SectorSize: g.SectSize, InodeSize: g.InodeSize,
			DataBlocks: sb.DBlocks, AGCount: g.AGCount, AGBlocks: g.AGBlocks, RootIno: sb.RootIno,
			InodesPerChunk: g.IallocInos, ChunkBlocks: g.IallocBlks, ClusterBlocks: g.BlocksPerCluster,
			InodesPerCluster: g.InodesPerCluster, InodeAlignment: sb.InoAlignMt, SparseAlignment: sb.SpinoAlign,
			LogStart: sb.LogStart, LogBlocks: sb.LogBlocks, LogSectorSize: 1 << sb.LogSectLog, LogStripeUnit: sb.LogSUnit,
		},
		AGs: make([]AGInfo, g.AGCount),
	}
	if !sb.HasSectorBit() {
		r.Geometry.LogSectorSize = 512
	}
	errs := fs.forEachAG(func(agno uint32) error {
		a, err := agi.Read(fs.Cache, g, agno)
		if err != nil {
			return err
		}
		f, err := alloc.ReadAGF(fs.Cache, g, agno)
		if err != nil {
			return err
		}
		in := AGInfo{AG: agno, Length: a.Length, ICount: a.Count, IFree: a.FreeCount,
			FreeBlocks: f.FreeBlks, FLCount: f.FLCount, BtreeBlocks: f.BtreeBlks, Longest: f.Longest,
			InobtLevel: a.Level, FinobtLevel: a.FreeLevel}
		for _, u := range a.Unlinked {
			if u != 0xffffffff {
				in.Unlinked++
			}
		}
		r.AGs[agno] = in
		return nil
	}, nil)
	if err := firstErr(errs); err != nil {
		return nil, err
	}
	for _, a := range r.AGs {
		r.AGSums.ICount += uint64(a.ICount)
		r.AGSums.IFree += uint64(a.IFree)
		r.AGSums.FDBlocks += uint64(a.FreeBlocks) + uint64(a.FLCount) + uint64(a.BtreeBlocks)
	}
	st, err := fs.LogState()
	if err != nil {
		return nil, err
	}
	if st == nil {
		r.Log = LogReport{External: true, Note: "external log: not read"}
	} else {
		r.Log = LogReport{Clean: st.Clean, Head: MakeLSN(st.HeadCycle, st.Head), Tail: LSNOf(st.TailLSN)}
		if !st.Clean {
			r.Log.Note = DirtyLogNote
		}
	}
	return r, nil
}
