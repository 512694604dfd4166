package xfs

// The work each recovered intent stands for, as the kernel's
// ->recover_work hooks and the finish_item they call do it, with the
// deferred work it spawns finished in the same transaction:
//   - EFI (xfs_extent_free_recover_work): each extent freed, its reverse
//     mapping removed with the wildcard owner XFS_RMAP_OWN_UNKNOWN;
//   - RUI (xfs_rmap_recover_work → xfs_rmap_finish_one): each record's
//     rmap change, the owner from xfs_rmap_ino_owner;
//   - CUI (xfs_refcount_recover_work → xfs_refcount_finish_one):
//     reference counts raised or lowered (blocks no longer mapped freed,
//     owner NULL), CoW staging records added or removed;
//   - BUI (xfs_bmap_recover_work → xfs_bmap_finish_one): a mapping put
//     into a hole of a file's fork (xfs_bmapi_remap) or taken out of it
//     without freeing (__xfs_bunmapi with XFS_BMAPI_REMAP, continued until
//     the range is done), and the reverse-mapping changes that spawns; no
//     reference count changes.

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/alloc"
	"github.com/xfsfree/xfsfree/bmbt"
	"github.com/xfsfree/xfsfree/btree"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/journal"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/refcount"
)

// intentWork does intent's work in tx. budget, if positive, is the log
// reservation a refcount intent's work is weighed against
// (xfs_refcount_still_have_space): the work that does not fit is
// returned as a new intent (its id to be set), nil when all is done.
func (fs *FS) intentWork(tx *journal.Transaction, intent *ondisk.IntentLog, budget int) (*ondisk.IntentLog, error) {
	switch intent.Type {
	case ondisk.LIEFI:
		return nil, fs.efiWork(tx, intent)
	case ondisk.LIRUI:
		return nil, fs.ruiWork(tx, intent)
	case ondisk.LICUI:
		return fs.cuiWork(tx, intent, budget)
	case ondisk.LIBUI:
		return nil, fs.buiWork(tx, intent.Maps[0])
	}
	return nil, fmt.Errorf("%s is not an intent xfsfree finishes", intent.Name())
}

// agOf splits a filesystem block number.
func (fs *FS) agOf(fsb uint64) (uint32, uint32) { return fs.G.FsbToAgno(fsb), fs.G.FsbToAgbno(fsb) }

// efiWork is xfs_extent_free_recover_work.
func (fs *FS) efiWork(tx *journal.Transaction, f *ondisk.IntentLog) error {
	for i, e := range f.Free {
		agno, agbno := fs.agOf(e.Start)
		ag, err := alloc.ReadAG(tx, fs.G, agno)
		if err != nil {
			return err
		}
		if err := alloc.FreeExtent(tx, ag, agbno, e.Len, alloc.OwnerUnknown); err != nil {
			return fmt.Errorf("extent %d (%#x+%d): %w", i, e.Start, e.Len, err)
		}
	}
	return nil
}

// ruiOwner is xfs_rmap_ino_owner for a record of an RUI: its owner,
// file offset, fork and state (the bmbt-block flag is not passed on).
func ruiOwner(m ondisk.MapExtent) alloc.Owner {
	return alloc.Owner{Owner: m.Owner, Offset: m.StartOff, Attr: m.Flags&ondisk.RmapExtentAttrFork != 0,
		Unwritten: m.Flags&ondisk.RmapExtentUnwritten != 0}
}

// ruiWork is xfs_rmap_recover_work: each record through
// __xfs_rmap_finish_intent's switch.
func (fs *FS) ruiWork(tx *journal.Transaction, f *ondisk.IntentLog) error {
	for i, m := range f.Maps {
		agno, agbno := fs.agOf(m.StartBlock)
		ag, err := alloc.ReadAG(tx, fs.G, agno)
		if err != nil {
			return err
		}
		o := ruiOwner(m)
		switch m.Flags & ondisk.RmapExtentTypeMask {
		case ondisk.RmapExtentMap, ondisk.RmapExtentAlloc:
			err = alloc.Map(tx, ag, agbno, m.Len, o)
		case ondisk.RmapExtentMapShared:
			err = alloc.MapShared(tx, ag, agbno, m.Len, o)
		case ondisk.RmapExtentUnmap, ondisk.RmapExtentFree:
			err = alloc.Unmap(tx, ag, agbno, m.Len, o)
		case ondisk.RmapExtentUnmapShared:
			err = alloc.UnmapShared(tx, ag, agbno, m.Len, o)
		case ondisk.RmapExtentConvert:
			err = alloc.Convert(tx, ag, agbno, m.Len, o)
		case ondisk.RmapExtentConvertShared:
			err = alloc.ConvertShared(tx, ag, agbno, m.Len, o)
		default:
			err = fmt.Errorf("unknown type %d", m.Flags&ondisk.RmapExtentTypeMask)
		}
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
	return nil
}

// cuiWork is xfs_refcount_recover_work. With budget > 0 an increase or
// decrease may stop early; the rest of its record and the records after
// it are returned as a new CUI.
func (fs *FS) cuiWork(tx *journal.Transaction, f *ondisk.IntentLog, budget int) (*ondisk.IntentLog, error) {
	var rcs map[uint32]*refcount.AG // one per AG, its counters kept across the records
	rcs = map[uint32]*refcount.AG{}
	for i, p := range f.Phys {
		agno, agbno := fs.agOf(p.StartBlock)
		rc := rcs[agno]
		if rc == nil {
			ag, err := alloc.ReadAG(tx, fs.G, agno)
			if err != nil {
				return nil, err
			}
			rc = refcount.New(ag)
			if budget > 0 {
				rc.LogRes = budget
			}
			rcs[agno] = rc
		}
		var rest refcount.Extent
		var err error
		switch p.Flags & ondisk.RefcountExtentTypeMask {
		case ondisk.RefcountIncrease:
			rest, err = rc.Increase(tx, agbno, p.Len)
		case ondisk.RefcountDecrease:
			rest, err = rc.Decrease(tx, agbno, p.Len)
		case ondisk.RefcountAllocCow:
			err = rc.CowAlloc(tx, agbno, p.Len)
		case ondisk.RefcountFreeCow:
			err = rc.CowFree(tx, agbno, p.Len)
		default:
			err = fmt.Errorf("unknown type %d", p.Flags&ondisk.RefcountExtentTypeMask)
		}
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if rest.Len > 0 {
			// xfs_refcount_continue_op: the rest of this record, then the
			// records not started, in a new intent.
			nf := &ondisk.IntentLog{Type: ondisk.LICUI, Size: 1}
			nf.Phys = append(nf.Phys, ondisk.PhysExtent{StartBlock: fs.G.Fsbno(agno, rest.Start), Len: rest.Len, Flags: p.Flags})
			nf.Phys = append(nf.Phys, f.Phys[i+1:]...)
			nf.NExtents = uint32(len(nf.Phys))
			return nf, nil
		}
	}
	return nil, nil
}

// buiWork is xfs_bmap_recover_work and xfs_bmap_finish_one for the one
// record of a BUI.
func (fs *FS) buiWork(tx *journal.Transaction, m ondisk.MapExtent) error {
	g := fs.G
	ino := m.Owner
	which := ondisk.DataFork
	if m.Flags&ondisk.BmapExtentAttrFork != 0 {
		which = ondisk.AttrFork
	}
	typ := m.Flags & ondisk.BmapExtentTypeMask
	loc, err := fs.inodeLoc(ino)
	if err != nil {
		return err
	}
	// The inode first (xlog_recover_iget, ILOCK before any buffer), then
	// its cluster buffer.
	ip, err := fs.lockInode(tx, ino)
	if err != nil {
		return err
	}
	ib, err := tx.ReadBuf(loc.Daddr, loc.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: loc.Agno, Daddr: loc.Daddr})
	if err != nil {
		return ondisk.SetLocation(err, loc.Agno, loc.Daddr)
	}
	raw := ib.Data[loc.Offset : loc.Offset+int(g.InodeSize)]
	if err := ondisk.VerifyDinode(raw, ino, ondisk.VerifyCtx{G: g, AG: loc.Agno, Daddr: loc.Daddr}); err != nil {
		return ondisk.SetLocation(err, loc.Agno, loc.Daddr)
	}
	d, err := ondisk.DecodeDinode(raw)
	if err != nil {
		return err
	}
	if d.IsFree() {
		return fmt.Errorf("inode %d is free (mode 0): the kernel's recovery cannot get it either", ino)
	}
	if realtime := d.Flags&ondisk.DiflagRealtime != 0 && which == ondisk.DataFork; realtime != (m.Flags&ondisk.BmapExtentRealtime != 0) {
		return (ondisk.Where{AG: loc.Agno, Daddr: loc.Daddr}).Corrupt(fmt.Sprintf("dinode %d", ino), "di_flags", d.Flags, nil,
			"the inode's realtime flag does not match the bmap intent's")
	}
	// xfs_iext_count_extend: one more extent must fit the counter.
	if n, maxn := d.Nextents(which), ondisk.MaxExtents(d.HasLargeExtentCounts(), which); n+1 > maxn {
		return fmt.Errorf("inode %d: %d extents, one more would pass the fork's limit %d (EFBIG)", ino, n, maxn)
	}
	blocks := &bmbtBlocks{g: g, owner: alloc.BmbtOwner(ino, which == ondisk.AttrFork)}
	f, err := bmbt.Open(tx, g, ino, d, which, blocks)
	if err != nil {
		return err
	}
	reflink := d.Flags2&ondisk.Diflag2Reflink != 0 && which == ondisk.DataFork
	rmapOwner := func(r ondisk.BmbtIrec) alloc.Owner {
		return alloc.Owner{Owner: ino, Offset: r.StartOff, Attr: which == ondisk.AttrFork, Unwritten: r.Unwritten}
	}
	var rmaps []func() error
	switch typ {
	case ondisk.BmapMap:
		r := ondisk.BmbtIrec{StartOff: m.StartOff, StartBlock: m.StartBlock, BlockCount: m.Len, Unwritten: m.Flags&ondisk.BmapExtentUnwritten != 0}
		if err := f.Remap(r); err != nil {
			return err
		}
		// xfs_rmap_map_extent: MAP_SHARED for a reflinked file's data.
		rmaps = append(rmaps, func() error { return fs.rmapChange(tx, r, rmapOwner(r), true, reflink) })
	case ondisk.BmapUnmap:
		start, rest := m.StartOff, uint64(m.Len)
		for rest > 0 {
			dels, left, err := f.Unmap(start, rest, 1)
			if err != nil {
				return err
			}
			for _, del := range dels {
				rmaps = append(rmaps, func() error { return fs.rmapChange(tx, del, rmapOwner(del), false, reflink) })
			}
			if left >= rest {
				return fmt.Errorf("inode %d: unmapping [%d, %d) made no progress", ino, start, start+rest)
			}
			rest = left
		}
	default:
		return fmt.Errorf("unknown bmap intent type %d", typ)
	}
	f.Flush()
	d.ChangeCount++
	d.EncodeCRC(raw)
	tx.LogInodeCore(ib, loc.Offset, ip, 1) // XFS_ILOG_CORE
	// The deferred work the bmap change queued, in the order the kernel
	// finishes it: the rmap changes, then the freed bmbt blocks.
	for _, fn := range rmaps {
		if err := fn(); err != nil {
			return err
		}
	}
	for _, fsb := range f.Freed {
		agno, agbno := fs.agOf(fsb)
		ag, err := alloc.ReadAG(tx, g, agno)
		if err != nil {
			return err
		}
		if err := alloc.FreeExtent(tx, ag, agbno, 1, blocks.owner); err != nil {
			return fmt.Errorf("freeing bmbt block %d: %w", fsb, err)
		}
	}
	return nil
}

// rmapChange maps (or unmaps) r's reverse mapping for owner o where the
// rmapbt is enabled: the shared variant for a reflinked file's data
// (xfs_rmap_map_extent, xfs_rmap_unmap_extent).
func (fs *FS) rmapChange(tx *journal.Transaction, r ondisk.BmbtIrec, o alloc.Owner, mapping, shared bool) error {
	if !fs.G.HasRmapbt {
		return nil
	}
	agno, agbno := fs.agOf(r.StartBlock)
	ag, err := alloc.ReadAG(tx, fs.G, agno)
	if err != nil {
		return err
	}
	switch {
	case mapping && shared:
		return alloc.MapShared(tx, ag, agbno, r.BlockCount, o)
	case mapping:
		return alloc.Map(tx, ag, agbno, r.BlockCount, o)
	case shared:
		return alloc.UnmapShared(tx, ag, agbno, r.BlockCount, o)
	}
	return alloc.Unmap(tx, ag, agbno, r.BlockCount, o)
}

// bmbtBlocks gives a fork's btree its blocks (xfs_bmbt_alloc_block and
// xfs_bmap_extents_to_btree's allocation: xfs_alloc_vextent_start_ag):
// near the hint in its AG, else in the next AGs in turn; the rmapbt
// records the fork's bmbt owner.
type bmbtBlocks struct {
	g     *ondisk.Geometry
	owner alloc.Owner
}

func (b *bmbtBlocks) Alloc(tx btree.Tx, hint uint64) (uint64, error) {
	g := b.g
	start, near := g.FsbToAgno(hint), g.FsbToAgbno(hint)
	for i := uint32(0); i < g.AGCount; i++ {
		agno := (start + i) % g.AGCount
		ag, err := alloc.ReadAG(tx, g, agno)
		if err != nil {
			return 0, err
		}
		if i > 0 {
			near = 0
		}
		bno, err := alloc.AllocNear(tx, ag, near, 1, b.owner)
		if errors.Is(err, alloc.ErrNoSpace) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return g.Fsbno(agno, bno), nil
	}
	return 0, alloc.ErrNoSpace
}

// inodeLoc finds inode ino's cluster buffer through its AG's inode btree
// (xfs_imap), as it is on disk now.
func (fs *FS) inodeLoc(ino uint64) (ondisk.InodeLoc, error) {
	g := fs.G
	agno, agino := g.InoToAgno(ino), g.InoToAgino(ino)
	if !g.ValidIno(ino) || g.Ino(agno, agino) != ino {
		return ondisk.InodeLoc{}, fmt.Errorf("%d is not an inode number of this filesystem", ino)
	}
	if loc, ok := g.ImapAligned(agno, agino); ok {
		return loc, nil
	}
	a, err := agi.Read(fs.Cache, g, agno)
	if err != nil {
		return ondisk.InodeLoc{}, err
	}
	r, ok, err := inobt.Lookup(inobt.Tree(fs.Cache, g, a, false), agino)
	if err != nil {
		return ondisk.InodeLoc{}, err
	}
	if !ok || ondisk.HolemaskToAllocMask(r.HoleMask)&(uint64(1)<<(agino-r.StartIno)) == 0 {
		return ondisk.InodeLoc{}, fmt.Errorf("inode %d is in no allocated inode chunk of AG %d", ino, agno)
	}
	return g.ImapInChunk(agno, agino, r.StartIno), nil
}

// lockInode finds inode ino in the inode cache (or adds it), takes its
// ILOCK and joins it to tx, which must hold no buffer yet (the lock order:
// ILOCK before buffers).
func (fs *FS) lockInode(tx *journal.Transaction, ino uint64) (*cache.Inode, error) {
	g := fs.G
	agno, agino := g.InoToAgno(ino), g.InoToAgino(ino)
	ip, ok := fs.Inodes.Grab(agno, agino)
	if !ok {
		ip, _ = fs.Inodes.Insert(cache.NewInode(ino, agno, agino))
	}
	if tx.Holds(ip) {
		ip.Rele()
		return ip, nil
	}
	ip.ILock(cache.ILockExcl)
	if ip.IsStale() {
		ip.IUnlock(cache.ILockExcl)
		ip.Rele()
		return nil, fmt.Errorf("inode %d: its cluster was freed (STALE in the inode cache)", ino)
	}
	tx.IJoin(ip)
	return ip, nil
}
