package xfs

import (
	"encoding/binary"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"golang.org/x/sys/unix"
)

// fsGetXattr is FS_IOC_FSGETXATTR (_IOR('X', 31, struct fsxattr)): xflags,
// extsize, nextents, projid, cowextsize.
func fsGetXattr(path string) (xflags, nextents, projid uint32, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, 0, false
	}
	defer f.Close()
	var b [28]byte
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), 0x801c581f, uintptr(unsafe.Pointer(&b[0]))); e != 0 {
		return 0, 0, 0, false
	}
	le := binary.LittleEndian
	return le.Uint32(b[0:]), le.Uint32(b[8:]), le.Uint32(b[12:]), true
}

type kernelView struct {
	st       unix.Stat_t
	target   string
	xattrs   []string
	xflags   uint32
	nextents uint32
	projid   uint32
	fsx      bool
}

// TestDescribeAgainstKernel: for every inode of populated fixtures,
// Describe says what the kernel's stat, readlink, listxattr and
// FS_IOC_FSGETXATTR (less FS_XFLAG_HASATTR, derived) say on a read-only mount of the same image: type and
// mode, owners, links, size, blocks, times, device numbers, symlink
// targets (local and remote), attribute names, data extent count, project
// id and flags.
func TestDescribeAgainstKernel(t *testing.T) {
	testimg.Need(t, "loop", "zstd")
	for _, name := range []string{"default", "bs1024", "isize2048"} {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			mnt := testimg.Mount(t, img, "ro")
			want := map[uint64]kernelView{}
			err := filepath.WalkDir(mnt, func(p string, _ fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				var k kernelView
				if err := unix.Lstat(p, &k.st); err != nil {
					return err
				}
				if k.st.Mode&unix.S_IFMT == unix.S_IFLNK {
					if k.target, err = os.Readlink(p); err != nil {
						return err
					}
				}
				if k.st.Mode&unix.S_IFMT == unix.S_IFREG || k.st.Mode&unix.S_IFMT == unix.S_IFDIR {
					k.xflags, k.nextents, k.projid, k.fsx = fsGetXattr(p)
				}
				buf := make([]byte, 1<<16)
				n, err := unix.Llistxattr(p, buf)
				if err != nil {
					return err
				}
				for _, x := range strings.Split(string(buf[:n]), "\x00") {
					if x != "" {
						k.xattrs = append(k.xattrs, x)
					}
				}
				sort.Strings(k.xattrs)
				want[k.st.Ino] = k
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			testimg.Unmount(t, mnt)
			fsys := openRO(t, img)
			bbPerBlock := uint64(fsys.G.BlockSize / 512)
			kinds := map[string]int{}
			for ino, k := range want {
				d, err := fsys.Describe(ino, false)
				if err != nil {
					t.Fatalf("inode %d: %v", ino, err)
				}
				kinds[d.Type]++
				st := k.st
				if uint32(d.Mode) != st.Mode || d.UID != st.Uid || d.GID != st.Gid || uint64(d.Nlink) != st.Nlink ||
					int64(d.Size) != st.Size || d.Blocks*bbPerBlock != uint64(st.Blocks) {
					t.Errorf("inode %d: mode %#o uid %d gid %d nlink %d size %d blocks %d; kernel %#o %d %d %d %d %d BBs",
						ino, d.Mode, d.UID, d.GID, d.Nlink, d.Size, d.Blocks, st.Mode, st.Uid, st.Gid, st.Nlink, st.Size, st.Blocks)
				}
				for _, c := range []struct {
					what string
					got  time.Time
					want unix.Timespec
				}{{"mtime", d.Mtime, st.Mtim}, {"ctime", d.Ctime, st.Ctim}, {"atime", d.Atime, st.Atim}} {
					if !c.got.Equal(time.Unix(c.want.Unix())) {
						t.Errorf("inode %d: %s %v, kernel %v", ino, c.what, c.got, time.Unix(c.want.Unix()))
					}
				}
				if d.Target != k.target {
					t.Errorf("inode %d: target %q, kernel %q", ino, d.Target, k.target)
				}
				if st.Mode&unix.S_IFMT == unix.S_IFCHR {
					if want := strings.Join([]string{itoa(unix.Major(st.Rdev)), itoa(unix.Minor(st.Rdev))}, ":"); d.Rdev != want {
						t.Errorf("inode %d: rdev %s, kernel %s", ino, d.Rdev, want)
					}
				}
				var names []string
				for _, x := range d.Xattrs {
					names = append(names, x.Name)
				}
				sort.Strings(names)
				if strings.Join(names, ",") != strings.Join(k.xattrs, ",") || d.XattrCount != len(k.xattrs) {
					t.Errorf("inode %d: xattrs %d %v, kernel %v", ino, d.XattrCount, names, k.xattrs)
				}
				// For a local fork the kernel reports its bytes / 16 as extents
				// (xfs_iext_count of an in-inode fork).
				if k.fsx && d.Format == "local" {
					k.nextents = 0
				}
				if k.fsx && (uint64(k.nextents) != d.Extents || k.projid != d.ProjID || len(d.Flags) != popcount(k.xflags&^0x80000000)) {
					t.Errorf("inode %d: extents %d projid %d flags %v; kernel %d %d xflags %#x", ino, d.Extents, d.ProjID, d.Flags,
						k.nextents, k.projid, k.xflags)
				}
				if len(d.Errors) > 0 {
					t.Errorf("inode %d: %v", ino, d.Errors)
				}
			}
			if kinds["symlink"] < 2 || kinds["regular"] < 5 || kinds["directory"] < 3 || kinds["chardev"] != 1 || kinds["fifo"] != 1 {
				t.Errorf("inode kinds %v", kinds)
			}
		})
	}
}

func itoa(u uint32) string { return strconvU(uint64(u)) }

func strconvU(u uint64) string {
	if u == 0 {
		return "0"
	}
	var b []byte
	for ; u > 0; u /= 10 {
		b = append([]byte{byte('0' + u%10)}, b...)
	}
	return string(b)
}

func popcount(x uint32) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
