// Package extract owns reading a file's contents from the device, for
// rescue and forensics: the bytes of a regular file (the written extents of
// its data fork, shared ones included; holes and unwritten extents become
// holes, which read as zeros) and the target of a symlink (in the inode, or
// in remote blocks read through their verifier). File data is read with
// large O_DIRECT reads of physically contiguous extents, a few bounded
// buffers ahead of the writer. Nothing is ever written to the device.
package extract

import (
	"errors"
	"fmt"

	"github.com/xfsfree/xfsfree/bmap"
	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Source is what reading needs: the device (file data), the buffer cache
// (metadata, verified) and the geometry. This struct does not represent an
// on-disk struct.
type Source struct {
	Dev   *cache.Device
	Cache *cache.Cache
	G     *ondisk.Geometry
}

// ErrNoData is wrapped by NewPlan's error for an inode whose type holds
// no bytes to read (directories, devices, fifos, sockets) or whose data is
// not on the data device (realtime files).
var ErrNoData = errors.New("no data to extract")

// Segment is a run of a file's data that is contiguous both in the file
// and on the device. This struct does not represent an on-disk struct.
type Segment struct {
	Off   int64 // byte offset in the file
	Daddr int64 // where it starts on the device
	Len   int64 // bytes to read: whole blocks
	Keep  int64 // bytes to keep: Len, or less where the file ends inside the last block
}

// Plan is what reading a regular file's data takes: its size and the
// segments of written data below it. This struct does not represent an
// on-disk struct.
type Plan struct {
	Ino       uint64
	Size      int64
	Segments  []Segment
	Data      int64 // bytes the segments keep
	Extents   int   // data fork extents
	Unwritten int   // of them, unwritten (preallocated): read as zeros
	Shared    bool  // the inode may share blocks (reflink): read as any other
}

// NewPlan maps the data fork of regular file d (read and verified by the
// caller) and lists the segments to read: written extents clipped to
// di_size, physically adjacent ones merged. Blocks past di_size
// (preallocation) are not read. Errors name the inode and, for a btree
// fork, the block and field at fault.
func NewPlan(s Source, d *ondisk.Dinode) (*Plan, error) {
	switch {
	case d.IsFree():
		return nil, fmt.Errorf("inode %d is free (mode 0): %w", d.Ino, ErrNoData)
	case !d.IsReg():
		return nil, fmt.Errorf("inode %d is a %s, not a regular file: %w", d.Ino, TypeName(d.Mode), ErrNoData)
	case d.Flags&ondisk.DiflagRealtime != 0:
		return nil, fmt.Errorf("inode %d is a realtime file: its data is on the realtime device, which xfsfree does not read: %w", d.Ino, ErrNoData)
	case d.Size > 1<<62:
		return nil, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d", d.Ino), Field: "di_size", Found: d.Size, Msg: "is too large"}
	}
	m, err := bmap.Map(s.Cache, s.G, d, ondisk.DataFork)
	if err != nil {
		return nil, err // names the inode and fork (and a bmbt block)
	}
	p := &Plan{Ino: d.Ino, Size: int64(d.Size), Extents: len(m.Extents), Shared: d.Flags2&ondisk.Diflag2Reflink != 0}
	bs := int64(s.G.BlockSize)
	for _, e := range m.Extents {
		if e.Unwritten {
			p.Unwritten++
			continue
		}
		off := int64(e.StartOff) * bs
		if off >= p.Size {
			continue
		}
		n := int64(e.BlockCount) * bs
		keep := min(n, p.Size-off)
		n = (keep + bs - 1) / bs * bs
		daddr := s.G.FsbToDaddr(e.StartBlock)
		if k := len(p.Segments); k > 0 {
			last := &p.Segments[k-1]
			if last.Off+last.Len == off && last.Daddr+last.Len/ondisk.BBSize == daddr {
				last.Len += n
				last.Keep += keep
				p.Data += keep
				continue
			}
		}
		p.Segments = append(p.Segments, Segment{Off: off, Daddr: daddr, Len: n, Keep: keep})
		p.Data += keep
	}
	return p, nil
}

// Symlink returns the target of symlink inode d (read and verified by the
// caller): the inode's local data, or its remote blocks, one buffer per
// extent as the kernel writes them, each verified (CRC, magic, uuid,
// blkno) and checked to belong to the inode and hold the next piece.
func Symlink(s Source, d *ondisk.Dinode) ([]byte, error) {
	if !d.IsSymlink() {
		return nil, fmt.Errorf("inode %d is a %s, not a symlink: %w", d.Ino, TypeName(d.Mode), ErrNoData)
	}
	if d.Format == ondisk.DinodeFmtLocal {
		b, err := d.LocalData(ondisk.DataFork)
		if err != nil {
			return nil, err
		}
		if err := ondisk.VerifySymlinkTarget(b, d.Ino); err != nil {
			return nil, err
		}
		return append([]byte(nil), b...), nil
	}
	n := int(d.Size)
	if d.Size == 0 || d.Size > ondisk.SymlinkMaxLen {
		return nil, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d symlink", d.Ino), Field: "di_size",
			Found: d.Size, Msg: fmt.Sprintf("is not 1 to %d", ondisk.SymlinkMaxLen)}
	}
	m, err := bmap.Map(s.Cache, s.G, d, ondisk.DataFork)
	if err != nil {
		return nil, err
	}
	g := s.G
	blocks := uint64(ondisk.SymlinkBlocks(int(g.BlockSize), n))
	target := make([]byte, 0, n)
	next := uint64(0) // the next file block the target continues in
	for _, e := range m.Extents {
		if len(target) == n {
			break
		}
		if e.StartOff != next || e.Unwritten {
			return nil, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d symlink data fork", d.Ino),
				Field: "extent", Found: e.String(), Msg: fmt.Sprintf("does not continue the target at block %d", next)}
		}
		cnt := min(uint64(e.BlockCount), blocks-next)
		ctx := ondisk.VerifyCtx{G: g, AG: g.FsbToAgno(e.StartBlock), Daddr: g.FsbToDaddr(e.StartBlock)}
		b, err := s.Cache.Get(ctx.Daddr, int(cnt)*g.BlockBBs(), ondisk.KindSymlink, ctx)
		if err != nil {
			return nil, fmt.Errorf("inode %d symlink block %d: %w", d.Ino, next, err)
		}
		piece := min(ondisk.SymlinkBufSpace(len(b.Data)), n-len(target))
		err = ondisk.CheckSymlinkBlock(b.Data, ctx, d.Ino, uint32(len(target)), uint32(piece))
		if err == nil {
			target = append(target, b.Data[ondisk.SymlinkHdrLen:ondisk.SymlinkHdrLen+piece]...)
		}
		b.Release()
		if err != nil {
			return nil, fmt.Errorf("inode %d symlink block %d: %w", d.Ino, next, err)
		}
		next += cnt
	}
	if len(target) != n {
		return nil, &ondisk.CorruptError{AG: ondisk.NoAG, Daddr: -1, Struct: fmt.Sprintf("dinode %d symlink", d.Ino), Field: "di_size",
			Found: n, Msg: fmt.Sprintf("but its blocks hold %d bytes of target", len(target))}
	}
	return target, nil
}

// TypeName names the file type of a di_mode: regular, directory, symlink,
// chardev, blockdev, fifo, socket (or "unknown type").
func TypeName(mode uint16) string {
	switch mode & ondisk.SIFMT {
	case ondisk.SIFREG:
		return "regular"
	case ondisk.SIFDIR:
		return "directory"
	case ondisk.SIFLNK:
		return "symlink"
	case ondisk.SIFCHR:
		return "chardev"
	case ondisk.SIFBLK:
		return "blockdev"
	case ondisk.SIFIFO:
		return "fifo"
	case ondisk.SIFSOCK:
		return "socket"
	}
	if mode == 0 {
		return "free inode"
	}
	return "unknown type"
}
