package xfs

// Reading any inode by number (extract, forensics): its chunk found in the
// inode btree, its core read through the cluster buffer and verified.

import (
	"fmt"

	"github.com/xfsfree/xfsfree/agi"
	"github.com/xfsfree/xfsfree/extract"
	"github.com/xfsfree/xfsfree/inobt"
	"github.com/xfsfree/xfsfree/ondisk"
)

// ReadInode reads and verifies inode ino. The number must address an inode
// slot of the data device and lie in a chunk of its AG's inode btree, not
// in a sparse hole; a free inode (mode 0) is refused. An inode the inobt
// marks free but whose core has a mode (the on-disk inobt may lag a dirty
// log) is read as its core says. The location is the inode's cluster
// buffer, for error reports.
func (fs *FS) ReadInode(ino uint64) (*ondisk.Dinode, ondisk.InodeLoc, error) {
	g := fs.G
	agno, agino := g.InoToAgno(ino), g.InoToAgino(ino)
	if !g.ValidIno(ino) || g.Ino(agno, agino) != ino {
		return nil, ondisk.InodeLoc{}, fmt.Errorf("%d is not an inode number of this filesystem", ino)
	}
	a, err := agi.Read(fs.Cache, g, agno)
	if err != nil {
		return nil, ondisk.InodeLoc{}, err
	}
	r, ok, err := inobt.Lookup(inobt.Tree(fs.Cache, g, a, false), agino)
	if err != nil {
		return nil, ondisk.InodeLoc{}, err
	}
	if !ok {
		return nil, ondisk.InodeLoc{}, fmt.Errorf("inode %d is in no inode chunk of AG %d's inode btree: it was never allocated", ino, agno)
	}
	if ondisk.HolemaskToAllocMask(r.HoleMask)&(uint64(1)<<(agino-r.StartIno)) == 0 {
		return nil, ondisk.InodeLoc{}, fmt.Errorf("inode %d is in a sparse hole of its chunk (startino %d, holemask %#x): it was never allocated",
			ino, r.StartIno, r.HoleMask)
	}
	loc := g.ImapInChunk(agno, agino, r.StartIno)
	d, err := agi.ReadInode(fs.Cache, g, loc)
	if err != nil {
		return nil, loc, fmt.Errorf("inode %d: %w", ino, err)
	}
	if d.IsFree() {
		return nil, loc, fmt.Errorf("inode %d is free (mode 0): %w", ino, extract.ErrNoData)
	}
	return d, loc, nil
}

// Source is what the extract package reads through.
func (fs *FS) Source() extract.Source {
	return extract.Source{Dev: fs.Dev, Cache: fs.Cache, G: fs.G}
}
