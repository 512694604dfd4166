package icluster

import (
	"fmt"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Taking an inode off its AGI unlinked bucket chain (xfs_iunlink_remove →
// xfs_iunlink_remove_inode). The freed inode's own pointer becomes
// NULLAGINO with the core reset (ondisk.Dinode.ResetForFree); what changes
// here is the link that pointed at it: the bucket head in the AGI, or the
// predecessor inode's di_next_unlinked.

// Unlink is where an inode sits on its bucket chain. This struct does not
// represent an on-disk struct.
type Unlink struct {
	// Prev is the agino of the inode before it on the chain, NullAgino
	// when it is the bucket head.
	Prev uint32
	// PrevLoc locates Prev's inode (unused when Prev is NullAgino).
	PrevLoc ondisk.InodeLoc
}

// unlinkCheck checks, before anything changes, that agino sits where u
// says on bucket agino%64 of the AG whose AGI is agiBuf (joined to tx): the
// bucket head when u.Prev is NullAgino, otherwise after u.Prev, whose
// cluster buffer it joins and returns. A chain that does not lead to agino
// is corruption.
func unlinkCheck(tx FreeTx, g *ondisk.Geometry, agiBuf *cache.Buf, agno, agino, next uint32, u Unlink) (*cache.Buf, error) {
	bucket := int(agino % ondisk.AGIUnlinkedBuckets)
	head := uint32(ondisk.AGIBucket(bucket).Uint(agiBuf.Data))
	where := ondisk.Where{AG: agno, Daddr: agiBuf.Daddr}
	field := func() string { return fmt.Sprintf("agi_unlinked[%d]", bucket) } // errors only
	ino := g.Ino(agno, agino)
	if next == agino {
		return nil, where.Corrupt(fmt.Sprintf("dinode %d", ino), "di_next_unlinked", next, nil, "points at itself")
	}
	if u.Prev == ondisk.NullAgino {
		if head != agino {
			return nil, where.Corrupt("AGI", field(), head, agino, fmt.Sprintf("inode %d is not the head of its bucket", ino))
		}
		return nil, nil
	}
	if head == agino {
		return nil, where.Corrupt("AGI", field(), head, nil,
			fmt.Sprintf("inode %d is the bucket head but was expected after agino %d", ino, u.Prev))
	}
	loc := u.PrevLoc
	b, err := readCluster(tx, g, loc)
	if err != nil {
		return nil, err
	}
	raw := b.Data[loc.Offset : loc.Offset+int(g.InodeSize)]
	if cur := ondisk.DinodeNextUnlinked(raw); cur != agino {
		return nil, (ondisk.Where{AG: agno, Daddr: loc.Daddr}).Corrupt(fmt.Sprintf("dinode %d", g.Ino(agno, u.Prev)),
			"di_next_unlinked", cur, agino, fmt.Sprintf("the unlinked chain does not lead to inode %d", ino))
	}
	return b, nil
}

// unlinkApply takes agino off its bucket chain, checked by unlinkCheck:
// the bucket head becomes next (4 bytes of the AGI logged), or the
// predecessor's di_next_unlinked does (its inode logged on its cluster
// buffer prevBuf). The kernel skips the predecessor when its cluster
// buffer is stale (its chunk freed in the same transaction); that cannot
// happen here, as the predecessor is an allocated inode of its chunk.
func unlinkApply(tx FreeTx, g *ondisk.Geometry, agiBuf *cache.Buf, agino, next uint32, u Unlink, prevBuf *cache.Buf, pip *cache.Inode) {
	if u.Prev == ondisk.NullAgino {
		f := ondisk.AGIBucket(int(agino % ondisk.AGIUnlinkedBuckets))
		f.PutUint(agiBuf.Data, uint64(next))
		ondisk.LogField(tx, agiBuf, f)
		return
	}
	off := u.PrevLoc.Offset
	praw := prevBuf.Data[off : off+int(g.InodeSize)]
	ondisk.SetDinodeNextUnlinked(praw, next)
	logInode(tx, prevBuf, off, pip)
}

// readCluster joins an inode cluster buffer to tx, read and verified.
func readCluster(tx FreeTx, g *ondisk.Geometry, loc ondisk.InodeLoc) (*cache.Buf, error) {
	b, err := tx.ReadBuf(loc.Daddr, loc.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: loc.Agno, Daddr: loc.Daddr})
	if err != nil {
		return nil, ondisk.SetLocation(err, loc.Agno, loc.Daddr)
	}
	return b, nil
}
