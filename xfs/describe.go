package xfs

// Describing an inode for people deciding what to rescue (`scan -v`, the
// manifests of `extract --all-orphans` and `free --save-orphans`): its
// type, mode, owners, size, times, flags, a symlink's target and its
// extended attributes, read-only.

import (
	"fmt"
	"time"

	"github.com/xfsfree/xfsfree/attr"
	"github.com/xfsfree/xfsfree/extract"
	"github.com/xfsfree/xfsfree/ondisk"
)

// InodeInfo describes an inode. Times are UTC.
type InodeInfo struct {
	Ino         uint64    `json:"ino"`
	Type        string    `json:"type"` // regular, directory, symlink, chardev, blockdev, fifo, socket
	Mode        Mode      `json:"mode"` // di_mode: type and permission bits
	Perm        string    `json:"-"`    // as ls shows it: "-rw-r--r--" (reports give the mode in octal only)
	Nlink       uint32    `json:"nlink"`
	UID         uint32    `json:"uid"`
	GID         uint32    `json:"gid"`
	ProjID      uint32    `json:"projid"`
	Size        uint64    `json:"size"`
	Blocks      uint64    `json:"blocks"` // di_nblocks: data, attr and bmbt blocks
	Format      string    `json:"data_format"`
	Extents     uint64    `json:"extents"`
	AttrExtents uint64    `json:"attr_extents"`
	Atime       time.Time `json:"atime"`
	Mtime       time.Time `json:"mtime"`
	Ctime       time.Time `json:"ctime"`
	Crtime      time.Time `json:"crtime"`
	Gen         uint32    `json:"generation"`
	Flags       []string  `json:"flags"`
	Rdev        string    `json:"rdev,omitempty"` // "major:minor" of a device inode
	Target      string    `json:"symlink_target,omitempty"`
	XattrCount  int       `json:"xattr_count"`
	Xattrs      []Xattr   `json:"xattrs"`
	// Errors are what could not be read (the attr fork, a symlink's
	// blocks); the rest of the description stands.
	Errors []string `json:"errors"`
}

// Xattr is one extended attribute of an InodeInfo. Value is set only when
// values were asked for (JSON: base64).
type Xattr struct {
	Name     string `json:"name"` // namespace.name
	ValueLen int    `json:"value_len"`
	Remote   bool   `json:"remote,omitempty"`
	Value    []byte `json:"value,omitempty"`
}

// Describe reads inode ino and describes it; values asks for the
// attributes' values too (remote value blocks are then read and verified).
func (fs *FS) Describe(ino uint64, values bool) (*InodeInfo, error) {
	d, loc, err := fs.ReadInode(ino)
	if err != nil {
		return nil, err
	}
	return fs.DescribeDinode(d, loc, values), nil
}

// DescribeDinode describes inode d, read and verified from loc; what of
// its attr fork or symlink blocks cannot be read is in Errors.
func (fs *FS) DescribeDinode(d *ondisk.Dinode, loc ondisk.InodeLoc, values bool) *InodeInfo {
	in := &InodeInfo{
		Ino: d.Ino, Type: Mode(d.Mode).Type(), Mode: Mode(d.Mode), Perm: PermString(d.Mode), Nlink: d.Nlink,
		UID: d.UID, GID: d.GID, ProjID: d.Projid(), Size: d.Size, Blocks: d.Nblocks, Format: formatName(d.Format),
		Extents: d.Nextents(ondisk.DataFork), AttrExtents: d.Nextents(ondisk.AttrFork),
		Atime: d.Atime.Time(), Mtime: d.Mtime.Time(), Ctime: d.Ctime.Time(), Crtime: d.Crtime.Time(), Gen: d.Gen,
		Flags: FlagNames(d.Flags, d.Flags2), Xattrs: []Xattr{}, Errors: []string{},
	}
	if in.Flags == nil {
		in.Flags = []string{}
	}
	if d.IsDev() {
		r := d.Rdev()
		in.Rdev = fmt.Sprintf("%d:%d", r>>18, r&(1<<18-1))
	}
	locate := func(err error) string { return ondisk.SetLocation(err, loc.Agno, loc.Daddr).Error() }
	if d.IsSymlink() {
		t, err := extract.Symlink(fs.Source(), d)
		if err != nil {
			in.Errors = append(in.Errors, "symlink target: "+locate(err))
		} else {
			in.Target = string(t)
		}
	}
	as, err := attr.List(fs.Cache, fs.G, d, values)
	if err != nil {
		in.Errors = append(in.Errors, "extended attributes: "+locate(err))
	}
	in.XattrCount = len(as)
	for _, a := range as {
		in.Xattrs = append(in.Xattrs, Xattr{Name: a.FullName(), ValueLen: a.ValueLen, Remote: a.Remote, Value: a.Value})
	}
	return in
}

// DescribeOrphans fills the Detail of every orphan of a scan report, AG
// by AG in parallel, calling progress after each AG. It returns the number
// of orphans whose description has errors or could not be made (their
// Detail then says why, or is nil with the reason in DetailErr).
func (fs *FS) DescribeOrphans(r *ScanReport, values bool, progress func(done, total int)) int {
	bad := make([]int, len(r.AGs))
	fs.forEachAG(func(agno uint32) error {
		for _, c := range r.AGs[agno].Chains {
			for i := range c.Inodes {
				o := &c.Inodes[i]
				in, err := fs.Describe(o.Ino, values)
				if err != nil {
					o.DetailErr = err.Error()
					bad[agno]++
					continue
				}
				o.Detail = in
				if len(in.Errors) > 0 {
					bad[agno]++
				}
			}
		}
		return nil
	}, progress)
	n := 0
	for _, b := range bad {
		n += b
	}
	return n
}

func formatName(f uint8) string {
	switch f {
	case ondisk.DinodeFmtDev:
		return "dev"
	case ondisk.DinodeFmtLocal:
		return "local"
	case ondisk.DinodeFmtExtents:
		return "extents"
	case ondisk.DinodeFmtBtree:
		return "btree"
	case ondisk.DinodeFmtUUID:
		return "uuid"
	case ondisk.DinodeFmtMetaBtree:
		return "meta_btree"
	}
	return fmt.Sprintf("format %d", f)
}

// PermString renders a di_mode as ls does: type letter, then rwx with
// setuid, setgid and sticky bits ("-rw-r--r--", "drwxrwxrwt").
func PermString(mode uint16) string {
	t := byte('?')
	switch mode & ondisk.SIFMT {
	case ondisk.SIFREG:
		t = '-'
	case ondisk.SIFDIR:
		t = 'd'
	case ondisk.SIFLNK:
		t = 'l'
	case ondisk.SIFCHR:
		t = 'c'
	case ondisk.SIFBLK:
		t = 'b'
	case ondisk.SIFIFO:
		t = 'p'
	case ondisk.SIFSOCK:
		t = 's'
	}
	b := []byte{t, 'r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x'}
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) == 0 {
			b[1+i] = '-'
		}
	}
	special := func(bit uint16, pos int, set, setNoX byte) {
		if mode&bit != 0 {
			if b[pos] == 'x' {
				b[pos] = set
			} else {
				b[pos] = setNoX
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

// FlagNames names the set bits of di_flags and the user-visible ones of
// di_flags2 (chattr's and xfs_io's words where they have one).
func FlagNames(flags uint16, flags2 uint64) []string {
	var out []string
	for _, f := range []struct {
		bit  uint16
		name string
	}{
		{ondisk.DiflagRealtime, "realtime"}, {ondisk.DiflagPrealloc, "prealloc"}, {ondisk.DiflagNewRTBM, "newrtbm"},
		{ondisk.DiflagImmutable, "immutable"}, {ondisk.DiflagAppend, "append-only"}, {ondisk.DiflagSync, "sync"},
		{ondisk.DiflagNoatime, "noatime"}, {ondisk.DiflagNodump, "nodump"}, {ondisk.DiflagRTInherit, "rtinherit"},
		{ondisk.DiflagProjInherit, "projinherit"}, {ondisk.DiflagNoSymlinks, "nosymlinks"}, {ondisk.DiflagExtsize, "extsize"},
		{ondisk.DiflagExtszInherit, "extszinherit"}, {ondisk.DiflagNodefrag, "nodefrag"}, {ondisk.DiflagFilestream, "filestream"},
	} {
		if flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	for _, f := range []struct {
		bit  uint64
		name string
	}{{ondisk.Diflag2DAX, "dax"}, {ondisk.Diflag2Reflink, "reflink"}, {ondisk.Diflag2Cowextsize, "cowextsize"}, {ondisk.Diflag2Metadata, "metadata"}} {
		if flags2&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}
