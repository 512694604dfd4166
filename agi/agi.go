// Package agi owns the AG inode header: reading it through the buffer
// cache, and walking its 64 unlinked bucket chains through the inodes'
// di_next_unlinked pointers, detecting chains that loop, leave their AG or
// hold inodes that are not orphans.
package agi

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Read returns the decoded, verified AGI of AG agno, read through the
// buffer cache outside any transaction (for reports and checks).
func Read(c *cache.Cache, g *ondisk.Geometry, agno uint32) (*ondisk.AGI, error) {
	d := g.AGIDaddr(agno)
	b, err := c.Get(d, g.SectBBs(), ondisk.KindAGI, ondisk.VerifyCtx{G: g, AG: agno, Daddr: d})
	if err != nil {
		return nil, err
	}
	defer b.Release()
	a, err := ondisk.DecodeAGI(b.Data)
	return a, ondisk.SetLocation(err, agno, d)
}

// ChainError is a bucket chain that cannot be followed: it loops, leaves
// its AG, or reaches an inode that is not an orphan of this bucket. It
// wraps ondisk.ErrCorrupt.
type ChainError struct {
	AG     uint32
	Bucket int
	Chain  []uint32 // aginos followed, head first, ending with the bad one
	Reason string
}

func (e *ChainError) Error() string {
	s := make([]string, len(e.Chain))
	for i, a := range e.Chain {
		if a == ondisk.NullAgino {
			s[i] = "null"
		} else {
			s[i] = fmt.Sprint(a)
		}
	}
	return fmt.Sprintf("AG %d, AGI unlinked bucket %d: %s; chain (aginos): %s", e.AG, e.Bucket, e.Reason, strings.Join(s, " -> "))
}

func (e *ChainError) Unwrap() error { return ondisk.ErrCorrupt }

// Locator finds an inode's cluster buffer.
type Locator func(agino uint32) (ondisk.InodeLoc, error)

// ReadInode reads and verifies one inode through its cluster buffer.
func ReadInode(c *cache.Cache, g *ondisk.Geometry, loc ondisk.InodeLoc) (*ondisk.Dinode, error) {
	d := new(ondisk.Dinode)
	if err := readInode(c, g, loc, d, true); err != nil {
		return nil, err
	}
	return d, nil
}

// readInode is ReadInode into d. Without keepForks d.Literal is nil: the
// inode is verified whole but only its core is kept (a chain walk needs no
// fork, and copying the literal area of a million inodes cost more than
// verifying them).
func readInode(c *cache.Cache, g *ondisk.Geometry, loc ondisk.InodeLoc, d *ondisk.Dinode, keepForks bool) error {
	b, err := c.Get(loc.Daddr, loc.Len, ondisk.KindInodeCluster, ondisk.VerifyCtx{G: g, AG: loc.Agno, Daddr: loc.Daddr})
	if err != nil {
		return err
	}
	raw := b.Data[loc.Offset : loc.Offset+int(g.InodeSize)]
	err = ondisk.DecodeVerifiedDinodeInto(d, raw, g.Ino(loc.Agno, loc.Agino), ondisk.VerifyCtx{G: g, AG: loc.Agno, Daddr: loc.Daddr})
	if keepForks {
		d.Literal = bytes.Clone(d.Literal)
	} else {
		d.Literal = nil
	}
	b.Release()
	return ondisk.SetLocation(err, loc.Agno, loc.Daddr)
}

// WalkBucket follows bucket's chain from head, calling fn with each inode
// in chain order. Every inode must be on the right bucket (agino % 64), in
// the AG, an orphan (nlink 0, mode set), and seen once; otherwise a
// *ChainError is returned and fn has seen only the inodes before. fn's
// inode is verified whole but holds only its core (Literal nil), and is
// reused for the next inode: fn must not keep it.
func WalkBucket(c *cache.Cache, g *ondisk.Geometry, agno uint32, bucket int, head uint32, locate Locator,
	fn func(agino uint32, d *ondisk.Dinode) error) error {
	seen := map[uint32]bool{}
	var chain []uint32
	d := new(ondisk.Dinode)
	fail := func(reason string) error {
		return &ChainError{AG: agno, Bucket: bucket, Chain: chain, Reason: reason}
	}
	for agino := head; agino != ondisk.NullAgino; {
		chain = append(chain, agino)
		if seen[agino] {
			return fail(fmt.Sprintf("loops back to agino %d", agino))
		}
		seen[agino] = true
		if !g.ValidAgino(agno, agino) {
			return fail(fmt.Sprintf("agino %d is not an inode of the AG", agino))
		}
		if int(agino%ondisk.AGIUnlinkedBuckets) != bucket {
			return fail(fmt.Sprintf("agino %d belongs to bucket %d", agino, agino%ondisk.AGIUnlinkedBuckets))
		}
		loc, err := locate(agino)
		if err != nil {
			var ce *ChainError
			if errors.As(err, &ce) {
				return err
			}
			return fmt.Errorf("%s: %w", fail("cannot locate an inode").Error(), err)
		}
		if err := readInode(c, g, loc, d, false); err != nil {
			return fmt.Errorf("AG %d, AGI unlinked bucket %d, agino %d: %w", agno, bucket, agino, err)
		}
		if d.Mode == 0 || d.Nlink != 0 {
			return fail(fmt.Sprintf("inode %d is not an orphan (mode %#o, nlink %d)", g.Ino(agno, agino), d.Mode, d.Nlink))
		}
		if err := fn(agino, d); err != nil {
			return err
		}
		agino = d.NextUnlinked
	}
	return nil
}
