package journal

// Inode create item replay (fs/xfs/xfs_icreate_item.c,
// xlog_recover_icreate_commit_pass2): the logical record of a new inode
// chunk. Its cluster buffers are initialised as xfs_ialloc_inode_init
// does — zeroed, every inode given the magic, version 3, the generation,
// a NULL next_unlinked, its number and the filesystem's uuid, and its CRC —
// unless one of them is cancelled later in the log.

import (
	"fmt"

	"github.com/xfsfree/xfsfree/ondisk"
)

// replayIcreate is xlog_recover_icreate_commit_pass2.
func (r *recovery) replayIcreate(t *RecoveredTrans, it *Item) error {
	c, err := ondisk.DecodeIcreateLog(it.Regions[0])
	if err != nil {
		return fmt.Errorf("%w (transaction %#x, lsn %v)", err, t.Tid, t.LSN)
	}
	g := r.g
	bad := func(field string, found, want any) error {
		return transCorrupt(t, it, field, found, want, "bad inode create item")
	}
	switch {
	case c.Type != ondisk.LIIcreate:
		return bad("icl_type", c.Type, uint16(ondisk.LIIcreate))
	case c.Size != 1:
		return bad("icl_size", c.Size, 1)
	case c.AG >= r.sb.AGCount:
		return bad("icl_ag", c.AG, nil)
	case c.AGBno == 0 || c.AGBno == ondisk.NullAgbno || c.AGBno >= r.sb.AGBlocks:
		return bad("icl_agbno", c.AGBno, nil)
	case c.ISize != uint32(r.sb.InodeSize):
		return bad("icl_isize", c.ISize, r.sb.InodeSize)
	case c.Count == 0:
		return bad("icl_count", c.Count, nil)
	case c.Length == 0 || c.Length >= r.sb.AGBlocks:
		return bad("icl_length", c.Length, nil)
	case c.Length != g.IallocBlks && c.Length != g.IallocMinBlks:
		return bad("icl_length", c.Length, fmt.Sprintf("%d or %d (unsupported chunk length)", g.IallocBlks, g.IallocMinBlks))
	case c.Count>>g.InoPBLog != c.Length:
		return bad("icl_count", c.Count, fmt.Sprintf("%d inodes for %d blocks", c.Length<<g.InoPBLog, c.Length))
	}
	bpc := g.BlocksPerCluster
	bbPerCluster := int(bpc) << g.BlkBBLog
	nbufs := c.Length / bpc
	cancelled := 0
	for i := uint32(0); i < nbufs; i++ {
		if r.isCancelled(g.AgbToDaddr(c.AG, c.AGBno+i*bpc), bbPerCluster) {
			cancelled++
		}
	}
	if cancelled > 0 {
		if cancelled != int(nbufs) {
			r.warn("partial inode chunk cancellation, skipped icreate (AG %d block %d, transaction lsn %v)", c.AG, c.AGBno, t.LSN)
		}
		r.rep.IcreateCancelled++
		return nil
	}
	isz := int(r.sb.InodeSize)
	uuid := r.sb.BlockUUID()
	ino := g.Ino(c.AG, g.Agino(c.AGBno, 0))
	for j := uint32(0); j < nbufs; j++ {
		d := g.AgbToDaddr(c.AG, c.AGBno+j*bpc)
		b := make([]byte, bbPerCluster*ondisk.BBSize)
		for i := 0; i < int(g.InodesPerCluster); i++ {
			dip := b[i*isz : (i+1)*isz]
			ondisk.DiMagic.Set(dip, ondisk.DinodeMagic)
			ondisk.DiVersion.Set(dip, ondisk.DinodeVersion3)
			ondisk.DiGen.Set(dip, uint64(c.Gen))
			ondisk.DiNextUnlinked.Set(dip, ondisk.NullAgino)
			ondisk.DiIno.Set(dip, ino)
			ino++
			copy(ondisk.DiUUID.Field().Bytes(dip), uuid[:])
			ondisk.DinodeCalcCRC(dip)
		}
		r.ov.write(d, b)
	}
	r.rep.IcreateReplayed++
	return nil
}
