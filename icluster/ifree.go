package icluster

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/bmap"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Freeing one unlinked inode, as the kernel's inactivation does for an
// orphan (xfs_inactive → truncation → xfs_inactive_ifree → xfs_ifree), in
// one transaction: its forks truncated and their blocks freed; its inobt
// record given its free bit (xfs_difree_inobt) and the finobt record
// inserted or updated (xfs_difree_finobt); when the chunk is then entirely
// free the chunk is released instead (records deleted, AGI counts lowered,
// the stale-marking cluster free, the chunk's blocks freed); it is taken off
// its AGI unlinked bucket chain (xfs_iunlink_remove); and, unless its chunk
// was freed, its core is reset and logged (xfs_inode_uninit).
//
// Lock order, as the kernel's: the ILOCKs of the inodes a free changes
// (in inode number order), then the AGI, then the AGFs by ascending AG,
// then inode cluster buffers and btree blocks (each behind its header's
// lock). An ILOCK is waited for only by a transaction that holds no buffer
// yet; one that does only tries it (ErrILockBusy), as the cluster free
// and the writeback only try ILOCKs under a buffer lock.

// FreeTx is what freeing needs of a transaction, the only one package
// icluster states (journal.Transaction provides it; the inode btrees and
// free space it is handed to need a part of it: btree.Tx). Buffers joined
// to it stay locked until it commits or is cancelled; joining a buffer it
// already holds returns that buffer.
type FreeTx interface {
	// ReadBuf joins the buffer to the transaction, read and verified.
	ReadBuf(daddr int64, nBB int, kind *ondisk.BlockKind, ctx ondisk.VerifyCtx) (*cache.Buf, error)
	// GetBuf joins the buffer to the transaction without reading it,
	// locked until the transaction ends.
	GetBuf(daddr int64, nBB int, kind *ondisk.BlockKind) (*cache.Buf, error)
	// LogRange logs bytes first..last (inclusive) of a joined buffer.
	LogRange(b *cache.Buf, first, last int)
	// Binval marks a joined buffer STALE and logs a buffer-cancel item
	// for it: it is never written in place and recovery never replays an
	// older copy of it.
	Binval(b *cache.Buf)
	// OnCancel registers what undoes, if the transaction is cancelled,
	// in-memory state it changed outside its buffers (the cluster free's
	// STALE marks). The kernel never cancels a dirty transaction (it
	// shuts the filesystem down instead); xfsfree cancels the one a
	// corrupt block stops and goes on with the others.
	OnCancel(undo func())
	// LogInode logs the inode at byte offset of a joined cluster buffer;
	// its di_lsn and CRC are stamped at commit.
	LogInode(b *cache.Buf, offset int)
	// Len is the number of buffers joined (and locked) so far.
	Len() int
	// IJoin hands the transaction an inode whose ILOCK (exclusive) and
	// reference the caller holds; the transaction releases both when it
	// ends.
	IJoin(ip *cache.Inode)
	// Holds reports whether ip is joined to the transaction.
	Holds(ip *cache.Inode) bool
	// LogInodeCore is LogInode for a joined inode: at commit its in-core
	// copy takes the logged image, fields are marked dirty and it is
	// attached to its cluster buffer b for writeback.
	LogInodeCore(b *cache.Buf, offset int, ip *cache.Inode, fields uint32)
}

// IlogCore is XFS_ILOG_CORE: the inode core changed.
const IlogCore = 0x1

// ErrILockBusy is returned when an inode's ILOCK is held by someone else
// while the transaction already holds buffers: waiting for it would take
// an ILOCK after a buffer lock, against the lock order (ILOCK → AGI → AGF
// → other buffers; under a buffer lock an ILOCK is only tried). Nothing
// was changed: commit (or cancel) the transaction and free the inode in a
// new one, which waits for the ILOCK before it locks anything else.
var ErrILockBusy = errors.New("icluster: the inode's ILOCK is busy and the transaction holds buffers")

// iget finds inode agino of the AG in the inode cache, or adds it, and
// joins it to tx with its ILOCK held exclusively (xfs_iget +
// xfs_ilock + xfs_trans_ijoin), unless tx holds it already. With no inode
// cache it returns nil. A STALE cached inode (its cluster freed) is an
// error: the inode is gone. The ILOCK is waited for only while tx holds
// no buffer; otherwise it is tried, and ErrILockBusy returned if busy.
func (a *AG) iget(tx FreeTx, agino uint32) (*cache.Inode, error) {
	if a.Inodes == nil {
		return nil, nil
	}
	ino := a.G.Ino(a.Agno, agino)
	ip, ok := a.Inodes.Grab(a.Agno, agino)
	if !ok {
		ip, _ = a.Inodes.Insert(cache.NewInode(ino, a.Agno, agino))
	}
	if tx.Holds(ip) {
		ip.Rele()
		return ip, nil
	}
	if tx.Len() == 0 {
		ip.ILock(cache.ILockExcl)
	} else if !ip.ITryLock(cache.ILockExcl) {
		ip.Rele()
		return nil, ErrILockBusy
	}
	if ip.IsStale() {
		ip.IUnlock(cache.ILockExcl)
		ip.Rele()
		return nil, fmt.Errorf("inode %d: its cluster was freed (STALE in the inode cache)", ino)
	}
	tx.IJoin(ip)
	return ip, nil
}

// igetPair is iget for the freed inode and its unlinked predecessor
// (prev NullAgino: none), ILOCKs taken in inode number order
// (xfs_lock_inodes).
func (a *AG) igetPair(tx FreeTx, agino, prev uint32) (ip, pip *cache.Inode, err error) {
	if prev == ondisk.NullAgino {
		ip, err = a.iget(tx, agino)
		return ip, nil, err
	}
	if prev < agino {
		if pip, err = a.iget(tx, prev); err == nil {
			ip, err = a.iget(tx, agino)
		}
	} else if ip, err = a.iget(tx, agino); err == nil {
		pip, err = a.iget(tx, prev)
	}
	return ip, pip, err
}

// InodeBtrees changes one AG's inobt (fin false) and finobt (fin true) in
// a transaction, keeping the AGI's roots, levels and block counts and the
// free space the btrees' blocks come from and return to exact.
type InodeBtrees interface {
	// LookupLE returns the record with the greatest startino <= agino.
	LookupLE(tx FreeTx, fin bool, agino uint32) (ondisk.InobtRec, bool, error)
	// Update replaces the record whose startino is r.StartIno.
	Update(tx FreeTx, fin bool, r ondisk.InobtRec) error
	// Insert adds r, which must not be there.
	Insert(tx FreeTx, fin bool, r ondisk.InobtRec) error
	// Delete removes the record whose startino is startino.
	Delete(tx FreeTx, fin bool, startino uint32) error
}

// Space frees extents to an AG's free space (bnobt and cntbt, merging
// with free neighbours), removing their reverse mapping where the rmapbt
// is enabled, and fixing up the AGFL.
type Space interface {
	FreeExtent(tx FreeTx, agno, agbno, length uint32, owner Owner) error
}

// AG is what frees in one AG work with. One goroutine works on an AG at a
// time; the inodes freed in it must live in it. This struct does not
// represent an on-disk struct.
type AG struct {
	Agno   uint32
	G      *ondisk.Geometry
	Cache  *cache.Cache
	Inodes *cache.InodeCache
	Btrees InodeBtrees
	Space  Space
	// KeepChunks keeps chunks that become entirely free (as the old
	// ikeep mount option): their records are updated instead.
	KeepChunks bool
}

// RefusedError is an inode that is not freed, with the reason. Nothing was
// changed for it: a transaction holding other frees may go on.
type RefusedError struct {
	Ino    uint64
	Reason string
	Err    error // the underlying error (a corrupt block), if any
}

func (e *RefusedError) Error() string { return fmt.Sprintf("inode %d: %s", e.Ino, e.Reason) }
func (e *RefusedError) Unwrap() error { return e.Err }

// Victim is an inode about to be freed, as read before its transaction:
// what its truncation frees, and the AGs whose AGFs its transaction locks.
// This struct does not represent an on-disk struct.
type Victim struct {
	Ino     uint64
	Agno    uint32
	Agino   uint32
	Loc     ondisk.InodeLoc
	Mode    uint16
	Size    uint64
	Nblocks uint64
	Extents []Extent
	AGs     []uint32
	// Reflink: DIFLAG2_REFLINK, its data extents are Shared.
	Reflink bool
}

// Blocks is the number of fork blocks (data, attr and bmbt) the free
// releases.
func (v *Victim) Blocks() uint64 {
	var n uint64
	for _, e := range v.Extents {
		n += uint64(e.Len)
	}
	return n
}

// Inspect reads inode agino of AG agno at loc without changing anything,
// refuses what Ifree must not free (a *RefusedError naming the inode and
// the reason: not unlinked, realtime, a metadata inode, a corrupt inode or
// block map), and lists what truncating it frees (a reflinked file's data
// extents marked Shared).
func Inspect(c *cache.Cache, g *ondisk.Geometry, agno, agino uint32, loc ondisk.InodeLoc) (*Victim, error) {
	ino := g.Ino(agno, agino)
	refuse := func(reason string, err error) error { return &RefusedError{Ino: ino, Reason: reason, Err: err} }
	b, err := c.Get(loc.Daddr, loc.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: agno, Daddr: loc.Daddr})
	if err != nil {
		return nil, refuse(fmt.Sprintf("cannot read its inode cluster: %v", err), err)
	}
	d, err := decodeVerified(g, b.Data[loc.Offset:loc.Offset+int(g.InodeSize)], ino, agno, loc.Daddr)
	b.Release()
	if err != nil {
		return nil, refuse(err.Error(), err)
	}
	if err := CheckFreeable(g, d); err != nil {
		return nil, refuse(err.Error(), nil)
	}
	data, err := bmap.Map(c, g, d, ondisk.DataFork)
	if err != nil {
		return nil, refuse(fmt.Sprintf("its data fork cannot be mapped: %v", err), err)
	}
	attr, err := bmap.Map(c, g, d, ondisk.AttrFork)
	if err != nil {
		return nil, refuse(fmt.Sprintf("its attr fork cannot be mapped: %v", err), err)
	}
	if err := bmap.CheckBlocks(d, data, attr); err != nil {
		return nil, refuse(err.Error(), err)
	}
	v := &Victim{Ino: ino, Agno: agno, Agino: agino, Loc: loc, Mode: d.Mode, Size: d.Size, Nblocks: d.Nblocks,
		Extents: ForkExtents(g, ino, data, attr), Reflink: isReflink(d)}
	markShared(v.Extents, v.Reflink)
	v.AGs = extentAGs(v.Extents, agno)
	return v, nil
}

func decodeVerified(g *ondisk.Geometry, raw []byte, ino uint64, agno uint32, daddr int64) (*ondisk.Dinode, error) {
	d, err := ondisk.DecodeVerifiedDinode(raw, ino, ondisk.VerifyCtx{G: g, AG: agno, Daddr: daddr})
	if err != nil {
		return nil, ondisk.SetLocation(err, agno, daddr)
	}
	return d, nil
}

// CheckFreeable says why inode d may not be freed by xfsfree, or nil: it
// must be unlinked (mode set, nlink 0), not be realtime, and not be a
// metadata inode. A reflinked file (DIFLAG2_REFLINK) is freed the kernel's
// way: its shared data extents through SharedSpace.
func CheckFreeable(g *ondisk.Geometry, d *ondisk.Dinode) error {
	switch {
	case d.Mode == 0:
		return fmt.Errorf("is already free (mode 0)")
	case d.Nlink != 0:
		return fmt.Errorf("has %d link(s): only unlinked inodes (nlink 0) are freed", d.Nlink)
	case d.Flags&ondisk.DiflagRealtime != 0:
		return fmt.Errorf("is a realtime file (DIFLAG_REALTIME): freeing realtime files is not supported")
	case d.IsMetadir() || isMetaIno(g.SB, d.Ino):
		return fmt.Errorf("is a metadata inode")
	}
	return nil
}

func isMetaIno(sb *ondisk.Superblock, ino uint64) bool {
	for _, m := range []uint64{sb.RootIno, sb.RbmIno, sb.RsumIno, sb.UQuotIno, sb.GQuotIno, sb.PQuotIno, sb.MetadirIno} {
		if m != 0 && m != ^uint64(0) && m == ino {
			return true
		}
	}
	return false
}

// Freed is what one Ifree or FreeEmptyChunk changed. This struct does not
// represent an on-disk struct.
type Freed struct {
	Ino         uint64 // 0 for an empty chunk
	ForkBlocks  uint64 // data, attr and bmbt blocks freed
	ChunkFreed  bool
	ChunkStart  uint32 // agino of the freed chunk's first inode
	ChunkInodes uint32 // inodes the chunk held (ir_count)
	ChunkBlocks uint32 // blocks of the freed chunk
}

// LockAGI joins AG agno's AGI to tx (the first lock a free takes).
func LockAGI(tx FreeTx, g *ondisk.Geometry, agno uint32) (*cache.Buf, error) {
	d := g.AGIDaddr(agno)
	b, err := tx.ReadBuf(d, g.SectBBs(), ondisk.KindAGI, ondisk.VerifyCtx{G: g, AG: agno, Daddr: d})
	return b, ondisk.SetLocation(err, agno, d)
}

// LockAGF joins AG agno's AGF to tx. A transaction locks AGFs in ascending
// AG order only, so that per-AG workers cannot deadlock.
func LockAGF(tx FreeTx, g *ondisk.Geometry, agno uint32) (*cache.Buf, error) {
	d := g.AGFDaddr(agno)
	b, err := tx.ReadBuf(d, g.SectBBs(), ondisk.KindAGF, ondisk.VerifyCtx{G: g, AG: agno, Daddr: d})
	return b, ondisk.SetLocation(err, agno, d)
}

// Ifree frees the inode v (from Inspect) in tx. u says where it sits on its
// bucket chain. The transaction must already hold, or be free to take, the
// AGFs of v.AGs in ascending order: the caller keeps a transaction's AGF
// locks ascending across the frees it batches. A *RefusedError means
// nothing was changed; any other error leaves tx half changed, to be
// cancelled.
func (a *AG) Ifree(tx FreeTx, v *Victim, u Unlink) (*Freed, error) {
	g, agno, agino := a.G, a.Agno, v.Agino
	if v.Agno != agno {
		return nil, fmt.Errorf("icluster: inode %d is not in AG %d", v.Ino, agno)
	}
	// The inodes first (the kernel locks them before the AGI), then the
	// AGI, the AGFs, the buffers.
	ip, pip, err := a.igetPair(tx, agino, u.Prev)
	if errors.Is(err, ErrILockBusy) {
		return nil, err
	}
	if err != nil {
		return nil, &RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
	}
	agiBuf, err := LockAGI(tx, g, agno)
	if err != nil {
		return nil, &RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
	}
	for _, ag := range v.AGs {
		if _, err := LockAGF(tx, g, ag); err != nil {
			return nil, &RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
		}
	}
	ib, err := readCluster(tx, g, v.Loc)
	if err != nil {
		return nil, &RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
	}
	raw := ib.Data[v.Loc.Offset : v.Loc.Offset+int(g.InodeSize)]
	d, err := decodeVerified(g, raw, v.Ino, agno, v.Loc.Daddr)
	if err != nil {
		return nil, &RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
	}
	if err := CheckFreeable(g, d); err != nil {
		return nil, &RefusedError{Ino: v.Ino, Reason: err.Error()}
	}
	if d.Nblocks != v.Nblocks || isReflink(d) != v.Reflink {
		return nil, &RefusedError{Ino: v.Ino, Reason: fmt.Sprintf("changed since it was inspected (di_nblocks %d, was %d; di_flags2 %#x)", d.Nblocks, v.Nblocks, d.Flags2)}
	}
	if err := a.checkShared(v.Ino, v.Extents); err != nil {
		return nil, err
	}
	next := d.NextUnlinked
	prevBuf, err := unlinkCheck(tx, g, agiBuf, agno, agino, next, u)
	if err != nil {
		return nil, &RefusedError{Ino: v.Ino, Reason: err.Error(), Err: err}
	}

	// From here on the transaction changes: any error cancels it. The
	// freed bmbt blocks are cancelled first (xfs_bmap_btree_free →
	// xfs_trans_binval): no older image of them is ever written or
	// replayed; a block the free-space btrees reuse in this transaction is
	// revived by its new owner.
	out := &Freed{Ino: v.Ino}
	for _, e := range v.Extents {
		if !e.Bmbt {
			continue
		}
		b, err := tx.GetBuf(g.FsbToDaddr(e.Fsbno), g.BlockBBs(), ondisk.KindBmbt)
		if err != nil {
			return nil, fmt.Errorf("inode %d: cancelling %s: %w", v.Ino, describe(e), err)
		}
		tx.Binval(b)
	}
	for _, e := range v.Extents {
		if err := a.release(tx, e); err != nil {
			return nil, fmt.Errorf("inode %d: freeing %s: %w", v.Ino, describe(e), err)
		}
		out.ForkBlocks += uint64(e.Len)
	}

	r, chunkFree, err := a.difree(tx, agiBuf, agino)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", v.Ino, err)
	}
	if chunkFree {
		if err := a.releaseChunk(tx, r, out); err != nil {
			return nil, fmt.Errorf("inode %d: %w", v.Ino, err)
		}
	}
	unlinkApply(tx, g, agiBuf, agino, next, u, prevBuf, pip)
	if !chunkFree {
		// xfs_inode_uninit, written as xfs_inode_to_disk would at flush.
		// A freed chunk's clusters were cancelled: the inode is never
		// written (its old image stays on the free blocks); it is STALE
		// in the inode cache.
		d.ResetForFree(keepSize(d), g.NewDiflags2())
		d.ChangeCount++
		d.EncodeCRC(raw)
		logInode(tx, ib, v.Loc.Offset, ip)
	}
	return out, nil
}

// logInode logs an inode changed in its cluster buffer b: through its
// in-core inode when there is an inode cache.
func logInode(tx FreeTx, b *cache.Buf, off int, ip *cache.Inode) {
	if ip == nil {
		tx.LogInode(b, off)
		return
	}
	tx.LogInodeCore(b, off, ip, IlogCore)
}

// keepSize: inline symlinks and short-form directories keep di_size;
// regular files, remote symlinks and directories with blocks are
// truncated to 0 (xfs_inactive_truncate, xfs_inactive_symlink_rmt); other
// types have no size to change.
func keepSize(d *ondisk.Dinode) bool {
	switch {
	case d.IsReg():
		return false
	case d.IsDir(), d.IsSymlink():
		return d.Format == ondisk.DinodeFmtLocal
	}
	return true
}

func describe(e Extent) string {
	what := "data extent"
	switch {
	case e.Bmbt && e.Attr:
		what = "attr fork bmbt block"
	case e.Bmbt:
		what = "bmbt block"
	case e.Attr:
		what = "attr extent"
	case e.Shared:
		what = "shared data extent"
	}
	return fmt.Sprintf("%s at AG %d agbno %d (%d blocks)", what, e.AG, e.Agbno, e.Len)
}

// difree is xfs_difree_inobt and xfs_difree_finobt for agino: its free bit
// set in the inobt record and the finobt record (inserted for the first
// free inode of a full chunk), the AGI free count raised — or, when the
// chunk becomes entirely free, both records deleted and the AGI counts
// lowered by the chunk's inodes. It returns the chunk's record after the
// bit is set and whether the chunk is to be released.
func (a *AG) difree(tx FreeTx, agiBuf *cache.Buf, agino uint32) (ondisk.InobtRec, bool, error) {
	g, agno := a.G, a.Agno
	r, ok, err := a.Btrees.LookupLE(tx, false, agino)
	if err != nil {
		return r, false, err
	}
	where := ondisk.Where{AG: agno, Daddr: -1}
	if !ok || agino >= r.StartIno+ondisk.InodesPerChunk {
		return r, false, where.Corrupt("inobt", "record", nil, nil, fmt.Sprintf("no chunk holds agino %d", agino))
	}
	st := func() string { return fmt.Sprintf("inobt record at startino %d", r.StartIno) } // errors only
	bit := uint64(1) << (agino - r.StartIno)
	if r.AllocMask()&bit == 0 {
		return r, false, where.Corrupt(st(), "ir_holemask", r.HoleMask, nil, fmt.Sprintf("agino %d is in a hole of its chunk", agino))
	}
	if r.Free&bit != 0 {
		return r, false, where.Corrupt(st(), "ir_free", fmt.Sprintf("%#x", r.Free), nil, fmt.Sprintf("agino %d is already free", agino))
	}
	r.Free |= bit
	r.FreeCount++
	chunkFree := r.Free == ondisk.InobtAllFree && !a.KeepChunks && g.InoPBlock <= ondisk.InodesPerChunk

	count := uint32(ondisk.AGICount.Get(agiBuf.Data))
	free := uint32(ondisk.AGIFreeCount.Get(agiBuf.Data))
	if chunkFree {
		// xfs_difree_inobt: ilen = ir_freecount (= ir_count); the freed
		// inode was counted allocated, the others free.
		ilen := r.FreeCount
		if count < ilen || free < ilen-1 {
			return r, false, (ondisk.Where{AG: agno, Daddr: agiBuf.Daddr}).Corrupt("AGI", "agi_count/agi_freecount",
				fmt.Sprintf("%d/%d", count, free), nil, fmt.Sprintf("too small to release a chunk of %d inodes", ilen))
		}
		if err := a.Btrees.Delete(tx, false, r.StartIno); err != nil {
			return r, false, err
		}
		ondisk.AGICount.Set(agiBuf.Data, uint64(count-ilen))
		ondisk.AGIFreeCount.Set(agiBuf.Data, uint64(free-(ilen-1)))
		ondisk.LogFields(tx, agiBuf, ondisk.AGICount|ondisk.AGIFreeCount)
	} else {
		if err := a.Btrees.Update(tx, false, r); err != nil {
			return r, false, err
		}
		ondisk.AGIFreeCount.Set(agiBuf.Data, uint64(free+1))
		ondisk.LogFields(tx, agiBuf, ondisk.AGIFreeCount)
	}
	if !g.HasFinobt {
		return r, chunkFree, nil
	}
	fr, ok, err := a.Btrees.LookupLE(tx, true, r.StartIno)
	if err != nil {
		return r, false, err
	}
	if !ok || fr.StartIno != r.StartIno {
		// The first free inode of a full chunk: the finobt gains the
		// chunk's record.
		if r.FreeCount != 1 {
			return r, false, where.Corrupt("finobt", "record", nil, r.StartIno,
				fmt.Sprintf("missing for a chunk with %d free inodes", r.FreeCount-1))
		}
		return r, chunkFree, a.Btrees.Insert(tx, true, r)
	}
	fst := func() string { return fmt.Sprintf("finobt record at startino %d", fr.StartIno) } // errors only
	if fr.Free&bit != 0 {
		return r, false, where.Corrupt(fst(), "ir_free", fmt.Sprintf("%#x", fr.Free), nil, fmt.Sprintf("agino %d is already free", agino))
	}
	fr.Free |= bit
	fr.FreeCount++
	if fr.Free != r.Free || fr.FreeCount != r.FreeCount || fr.HoleMask != r.HoleMask || fr.Count != r.Count {
		return r, false, where.Corrupt(fst(), "record", fmt.Sprintf("free %#x freecount %d", fr.Free, fr.FreeCount),
			fmt.Sprintf("free %#x freecount %d", r.Free, r.FreeCount), "differs from the inobt record")
	}
	if chunkFree {
		return r, true, a.Btrees.Delete(tx, true, r.StartIno)
	}
	return r, false, a.Btrees.Update(tx, true, fr)
}

// releaseChunk is what follows the deletion of an emptied chunk's records:
// the stale-marking cluster free (every allocated cluster buffer
// cancelled) and the chunk's blocks returned to free space with owner
// OWN_INODES (only the allocated parts of a sparse chunk).
func (a *AG) releaseChunk(tx FreeTx, r ondisk.InobtRec, out *Freed) error {
	g := a.G
	if err := FreeClusters(tx, a.Inodes, g, a.Agno, r.StartIno, r.AllocMask(), tx.Holds); err != nil {
		return err
	}
	out.ChunkFreed, out.ChunkStart, out.ChunkInodes = true, r.StartIno, uint32(r.Count)
	for _, e := range g.ChunkExtents(r.StartIno, r.HoleMask) {
		if err := a.Space.FreeExtent(tx, a.Agno, e.Agbno, e.Len, OwnerInodes); err != nil {
			return fmt.Errorf("freeing the blocks of the chunk at agino %d (agbno %d, %d blocks): %w", r.StartIno, e.Agbno, e.Len, err)
		}
		out.ChunkBlocks += e.Len
	}
	return nil
}

// FreeEmptyChunk releases the chunk starting at startino whose inodes are
// all free already (the kernel frees a chunk only when its last inode is
// freed, so chunks emptied with ikeep, or by `free --keep-chunks`, stay):
// its inobt and finobt records deleted, the AGI counts lowered, the
// stale-marking cluster free, its blocks freed. A *RefusedError means
// nothing was changed.
func (a *AG) FreeEmptyChunk(tx FreeTx, startino uint32) (*Freed, error) {
	g, agno := a.G, a.Agno
	refuse := func(reason string, err error) error {
		return &RefusedError{Ino: g.Ino(agno, startino), Reason: "chunk: " + reason, Err: err}
	}
	if g.InoPBlock > ondisk.InodesPerChunk {
		return nil, refuse(fmt.Sprintf("%d inodes a block: chunks are never freed", g.InoPBlock), nil)
	}
	agiBuf, err := LockAGI(tx, g, agno)
	if err != nil {
		return nil, refuse(err.Error(), err)
	}
	if _, err := LockAGF(tx, g, agno); err != nil {
		return nil, refuse(err.Error(), err)
	}
	r, ok, err := a.Btrees.LookupLE(tx, false, startino)
	if err != nil {
		return nil, refuse(err.Error(), err)
	}
	if !ok || r.StartIno != startino {
		return nil, refuse("no inobt record starts there", nil)
	}
	if r.Free != ondisk.InobtAllFree || uint32(r.Count) != r.FreeCount {
		return nil, refuse(fmt.Sprintf("not entirely free (ir_free %#x, ir_freecount %d of %d)", r.Free, r.FreeCount, r.Count), nil)
	}
	count := uint32(ondisk.AGICount.Get(agiBuf.Data))
	free := uint32(ondisk.AGIFreeCount.Get(agiBuf.Data))
	if count < r.FreeCount || free < r.FreeCount {
		err := (ondisk.Where{AG: agno, Daddr: agiBuf.Daddr}).Corrupt("AGI", "agi_count/agi_freecount",
			fmt.Sprintf("%d/%d", count, free), nil, fmt.Sprintf("too small to release a chunk of %d free inodes", r.FreeCount))
		return nil, refuse(err.Error(), err)
	}
	if g.HasFinobt {
		fr, ok, err := a.Btrees.LookupLE(tx, true, startino)
		if err != nil {
			return nil, refuse(err.Error(), err)
		}
		if !ok || fr != r {
			err := (ondisk.Where{AG: agno, Daddr: -1}).Corrupt("finobt", "record", fr, r, "differs from the inobt record of a free chunk")
			return nil, refuse(err.Error(), err)
		}
	}
	// From here on the transaction changes.
	if err := a.Btrees.Delete(tx, false, startino); err != nil {
		return nil, err
	}
	if g.HasFinobt {
		if err := a.Btrees.Delete(tx, true, startino); err != nil {
			return nil, err
		}
	}
	ondisk.AGICount.Set(agiBuf.Data, uint64(count-r.FreeCount))
	ondisk.AGIFreeCount.Set(agiBuf.Data, uint64(free-r.FreeCount))
	ondisk.LogFields(tx, agiBuf, ondisk.AGICount|ondisk.AGIFreeCount)
	out := &Freed{}
	if err := a.releaseChunk(tx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}
