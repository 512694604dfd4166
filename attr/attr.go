// Package attr owns reading the extended attributes of an inode: every
// name, and on request every value, of its attr fork in any format —
// shortform in the inode, a single leaf block, or a dabtree of node and
// leaf blocks with values in remote blocks. Every block is read through
// the buffer cache's verifiers (CRC, magic, uuid, blkno) and checked to
// belong to the inode (owner) and to sit where the walk expects it. It
// writes nothing.
package attr

import (
	"fmt"
	"sort"

	"github.com/xfsfree/xfsfree/bmap"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Attr is one extended attribute. This struct does not represent an
// on-disk struct.
type Attr struct {
	// Flags are the on-disk namespace bits (ondisk.AttrRoot, AttrSecure,
	// AttrParent; none for the user namespace).
	Flags    uint8
	Name     []byte
	ValueLen int
	// Value is set when List was asked for values.
	Value []byte
	// Remote reports a value kept in remote blocks.
	Remote bool
}

// Namespace is the attribute's namespace as the VFS names it: "user",
// "trusted", "security" or "parent" (parent pointers).
func (a Attr) Namespace() string {
	switch {
	case a.Flags&ondisk.AttrParent != 0:
		return "parent"
	case a.Flags&ondisk.AttrRoot != 0:
		return "trusted"
	case a.Flags&ondisk.AttrSecure != 0:
		return "security"
	}
	return "user"
}

// FullName is namespace.name ("user.comment"). XFS keeps POSIX ACLs as
// trusted.SGI_ACL_FILE and trusted.SGI_ACL_DEFAULT, which is what they are
// called here (the VFS shows them as system.posix_acl_*).
func (a Attr) FullName() string { return a.Namespace() + "." + string(a.Name) }

// List returns the attributes of inode d (already read and verified), in
// the order the fork stores them (by hash for leaf forks), skipping those
// marked incomplete (being set or removed when the filesystem stopped), as
// listxattr does. With values it reads every value, remote blocks
// included. Errors name the inode, and the block (AG, daddr) and field
// where a block is at fault.
func List(c *cache.Cache, g *ondisk.Geometry, d *ondisk.Dinode, values bool) ([]Attr, error) {
	if !d.HasAttrFork() {
		return nil, nil
	}
	switch d.Aformat {
	case ondisk.DinodeFmtLocal:
		b, err := d.LocalData(ondisk.AttrFork)
		if err != nil {
			return nil, err
		}
		sf, err := ondisk.DecodeAttrSF(b, d.Ino)
		if err != nil {
			return nil, err
		}
		out := make([]Attr, 0, len(sf.Entries))
		for _, e := range sf.Entries {
			a := Attr{Flags: e.Flags & ondisk.AttrNspMask, Name: clone(e.Name), ValueLen: len(e.Value)}
			if values {
				a.Value = clone(e.Value)
			}
			out = append(out, a)
		}
		return out, nil
	case ondisk.DinodeFmtExtents, ondisk.DinodeFmtBtree:
		m, err := bmap.Map(c, g, d, ondisk.AttrFork)
		if err != nil {
			return nil, err
		}
		if len(m.Extents) == 0 {
			return nil, nil // an attr fork emptied of its blocks
		}
		r := &reader{c: c, g: g, ino: d.Ino, exts: m.Extents}
		return r.list(values)
	}
	return nil, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d", d.Ino), Field: "di_aformat",
		Found: d.Aformat, Msg: "is not a format an attr fork can have"}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// reader reads the blocks of one inode's attr fork.
type reader struct {
	c    *cache.Cache
	g    *ondisk.Geometry
	ino  uint64
	exts []ondisk.BmbtIrec // the attr fork's map, ascending
}

// fsbno maps an attr fork block (dablk) to a filesystem block.
func (r *reader) fsbno(dablk uint64) (uint64, error) {
	i := sort.Search(len(r.exts), func(i int) bool { return r.exts[i].End() > dablk })
	if i == len(r.exts) || r.exts[i].StartOff > dablk {
		return 0, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d attr fork", r.ino),
			Field: "dablk", Found: dablk, Msg: "is a hole in the attr fork (no extent maps it)"}
	}
	e := r.exts[i]
	if e.Unwritten {
		return 0, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d attr fork", r.ino),
			Field: "dablk", Found: dablk, Msg: "is in an unwritten extent " + e.String()}
	}
	return e.StartBlock + dablk - e.StartOff, nil
}

// block reads attr fork block dablk with kind, checks its owner with
// check, and returns a copy of its bytes.
func (r *reader) block(dablk uint64, kind *ondisk.BlockKind, check func(b []byte, ctx ondisk.VerifyCtx) error) ([]byte, error) {
	fsb, err := r.fsbno(dablk)
	if err != nil {
		return nil, err
	}
	g := r.g
	ctx := ondisk.VerifyCtx{G: g, AG: g.FsbToAgno(fsb), Daddr: g.FsbToDaddr(fsb)}
	b, err := r.c.Get(ctx.Daddr, g.BlockBBs(), kind, ctx)
	if err != nil {
		return nil, r.wrap(dablk, err)
	}
	defer b.Release()
	if err := check(b.Data, ctx); err != nil {
		return nil, r.wrap(dablk, err)
	}
	return clone(b.Data), nil
}

func (r *reader) wrap(dablk uint64, err error) error {
	return fmt.Errorf("inode %d attr fork block %d: %w", r.ino, dablk, err)
}

// list walks the dabtree from dablk 0 down its leftmost path to the first
// leaf, then the leaves by their forward links (xfs_attr_node_list), each
// back link checked.
func (r *reader) list(values bool) ([]Attr, error) {
	owner := func(b []byte, ctx ondisk.VerifyCtx) error { return ondisk.CheckDAOwner(b, ctx, r.ino) }
	var nblocks uint64
	for _, e := range r.exts {
		nblocks += uint64(e.BlockCount)
	}
	dablk := uint64(0)
	b, err := r.block(dablk, ondisk.KindAttrDA, owner)
	if err != nil {
		return nil, err
	}
	// Down the leftmost path: each child is one level below its parent.
	for level := -1; ondisk.DecodeDA3Blkinfo(b).Magic == ondisk.DA3NodeMagic; {
		n, err := ondisk.DecodeDA3Node(b)
		if err != nil {
			return nil, r.wrap(dablk, err)
		}
		if level >= 0 && int(n.Level) != level {
			return nil, r.wrap(dablk, fmt.Errorf("da node block: hdr.level %d, want %d (one below its parent)", n.Level, level))
		}
		level = int(n.Level) - 1
		dablk = uint64(n.Entries[0].Before)
		if b, err = r.block(dablk, ondisk.KindAttrDA, owner); err != nil {
			return nil, err
		}
		m := ondisk.DecodeDA3Blkinfo(b).Magic
		if level == 0 && m != ondisk.Attr3LeafMagic {
			return nil, r.wrap(dablk, fmt.Errorf("a level 1 node's child is not a leaf block (magic %#x)", m))
		}
		if level > 0 && m != ondisk.DA3NodeMagic {
			return nil, r.wrap(dablk, fmt.Errorf("a level %d node's child is not a node block (magic %#x)", level+1, m))
		}
	}
	var out []Attr
	seen := map[uint64]bool{}
	prev := uint64(0)
	for {
		if seen[dablk] || uint64(len(seen)) > nblocks {
			return nil, r.wrap(dablk, fmt.Errorf("the leaf chain loops back to block %d", dablk))
		}
		seen[dablk] = true
		l, err := ondisk.DecodeAttr3Leaf(b)
		if err != nil {
			return nil, r.wrap(dablk, err)
		}
		if len(seen) > 1 && uint64(l.Info.Back) != prev {
			return nil, r.wrap(dablk, fmt.Errorf("attr leaf block: hdr.info.back %d, want %d (the previous leaf)", l.Info.Back, prev))
		}
		for i, e := range l.Entries {
			if e.Flags&ondisk.AttrIncomplete != 0 {
				continue
			}
			n, err := l.Name(b, i)
			if err != nil {
				return nil, r.wrap(dablk, err)
			}
			a := Attr{Flags: e.Flags & ondisk.AttrNspMask, Name: clone(n.Name), ValueLen: int(n.ValueLen), Remote: !n.Local}
			if values {
				if n.Local {
					a.Value = clone(n.Value)
				} else if a.Value, err = r.remote(n); err != nil {
					return nil, fmt.Errorf("attribute %s: %w", a.FullName(), err)
				}
			}
			out = append(out, a)
		}
		if l.Info.Forw == 0 {
			return out, nil
		}
		prev, dablk = dablk, uint64(l.Info.Forw)
		if b, err = r.block(dablk, ondisk.KindAttrDA, owner); err != nil {
			return nil, err
		}
		if m := ondisk.DecodeDA3Blkinfo(b).Magic; m != ondisk.Attr3LeafMagic {
			return nil, r.wrap(dablk, fmt.Errorf("a leaf's forward link is not a leaf block (magic %#x)", m))
		}
	}
}

// remote reads a remote value: Attr3RmtBlocks blocks from its value
// block, each holding its piece at the offset the header says.
func (r *reader) remote(n ondisk.AttrLeafName) ([]byte, error) {
	bs := int(r.g.BlockSize)
	space := ondisk.Attr3RmtBufSpace(bs)
	val := make([]byte, 0, n.ValueLen)
	for i := 0; i < ondisk.Attr3RmtBlocks(bs, int(n.ValueLen)); i++ {
		off := uint32(i * space)
		piece := min(uint32(space), n.ValueLen-off)
		b, err := r.block(uint64(n.ValueBlk)+uint64(i), ondisk.KindAttrRmt, func(b []byte, ctx ondisk.VerifyCtx) error {
			return ondisk.CheckAttr3Rmt(b, ctx, r.ino, off, piece)
		})
		if err != nil {
			return nil, err
		}
		val = append(val, b[ondisk.Attr3RmtHdrLen:ondisk.Attr3RmtHdrLen+int(piece)]...)
	}
	return val, nil
}
