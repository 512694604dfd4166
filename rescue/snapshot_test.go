package rescue_test

// Test support: a frozen snapshot whose orphans hold known bytes, recorded
// through the kernel (md5 of what a read returns, xattrs as listxattr and
// getxattr give them) when they were made.

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"golang.org/x/sys/unix"
)

// orphan is a file made an orphan, as the kernel saw it before the
// unlink.
type orphan struct {
	name   string
	typ    string // regular, symlink, directory, fifo
	ino    uint64
	size   int64
	md5    string // of the bytes a read returns (a symlink: its target)
	mode   uint32
	uid    uint32
	mtime  unix.Timespec
	xattrs map[string][]byte
	projid uint32
	flags  []string
}

const bs = 4096

// makeSnapshot makes the snapshot (mkfs defaults: 4 KiB blocks, reflink
// on) of a filesystem whose orphans are: small (5000 bytes, a shortform
// attr fork, project id 42, nodump), large (40 MiB, 60 attributes in leaf
// blocks and a 20000-byte remote value), fragmented (every other block of
// 600: a btree-format data fork), sparse (data, holes, a partial last
// block), prealloc (16 MiB fallocated, 1 MiB of it written: unwritten
// extents, and more preallocated past EOF), empty, a local and a remote
// symlink, an empty directory, a fifo; with reflink, also rsrc (8 MiB)
// and rcopy (cp --reflink=always of it, 64 KiB of it rewritten).
func makeSnapshot(t *testing.T, reflink bool) (string, []*orphan) {
	t.Helper()
	testimg.Need(t, "xfs_io", "cp")
	var files []*orphan
	img := testimg.Snapshot(t, 512<<20, []string{"-d", "agcount=4"}, nil, func(t testing.TB, mnt string) []*os.File {
		rng := rand.New(rand.NewPCG(12, uint64(len(mnt))))
		random := func(n int) []byte {
			b := make([]byte, n)
			for i := 0; i+8 <= n; i += 8 {
				v := rng.Uint64()
				for j := 0; j < 8; j++ {
					b[i+j] = byte(v >> (8 * j))
				}
			}
			for i := n &^ 7; i < n; i++ {
				b[i] = byte(rng.Uint32())
			}
			return b
		}
		p := func(name string) string { return filepath.Join(mnt, name) }
		create := func(name string) *os.File {
			f, err := os.OpenFile(p(name), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
		done := func(f *os.File) {
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		pwrite := func(f *os.File, b []byte, off int64) {
			if _, err := f.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
		}
		setx := func(name, attr string, v []byte) {
			if err := unix.Lsetxattr(p(name), attr, v, 0); err != nil {
				t.Fatal(err)
			}
		}

		f := create("small")
		pwrite(f, random(5000), 0)
		done(f)
		setx("small", "user.small", []byte(strings.Repeat("v", 16)))
		setx("small", "trusted.t", []byte("t"))
		if out, err := exec.Command("xfs_io", "-c", "chproj 42", "-c", "chattr +d", p("small")).CombinedOutput(); err != nil {
			t.Fatalf("xfs_io chproj/chattr: %v\n%s", err, out)
		}

		f = create("large")
		pwrite(f, random(40<<20), 0)
		done(f)
		for i := 0; i < 60; i++ {
			setx("large", fmt.Sprintf("user.attr-%02d", i), random(100))
		}
		setx("large", "user.big", random(20000))

		f = create("fragmented")
		if err := f.Truncate(600 * bs); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 600; i += 2 {
			pwrite(f, random(bs), int64(i)*bs)
		}
		done(f)

		f = create("sparse")
		pwrite(f, random(1<<20), 0)
		pwrite(f, random(512<<10), 10<<20)
		pwrite(f, random(bs), 30<<20+100)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(48<<20 + 123); err != nil {
			t.Fatal(err)
		}
		done(f)

		f = create("prealloc")
		if err := unix.Fallocate(int(f.Fd()), 0, 0, 16<<20); err != nil {
			t.Fatal(err)
		}
		pwrite(f, random(1<<20), 4<<20)
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 16<<20, 4<<20); err != nil {
			t.Fatal(err)
		}
		done(f)

		done(create("empty"))

		if reflink {
			f = create("rsrc")
			pwrite(f, random(8<<20), 0)
			done(f)
			if out, err := exec.Command("cp", "--reflink=always", p("rsrc"), p("rcopy")).CombinedOutput(); err != nil {
				t.Fatalf("cp --reflink=always: %v\n%s", err, out)
			}
			f, err := os.OpenFile(p("rcopy"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			pwrite(f, random(64<<10), 1<<20)
			done(f)
		}

		if err := os.Symlink("small", p("link-short")); err != nil {
			t.Fatal(err)
		}
		long := "/" + strings.Repeat("a-long-symlink-component/", 40)[:999]
		if err := os.Symlink(long, p("link-long")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(p("dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(p("fifo"), 0o600); err != nil {
			t.Fatal(err)
		}
		exec.Command("sync", "-f", mnt).Run()

		names := []string{"small", "large", "fragmented", "sparse", "prealloc", "empty", "link-short", "link-long", "dir", "fifo"}
		if reflink {
			names = append(names, "rsrc", "rcopy")
		}
		var held []*os.File
		for _, name := range names {
			files = append(files, record(t, p(name), name))
		}
		for _, name := range names {
			held = append(held, testimg.HoldUnlinked(t, p(name)))
		}
		return held
	})
	for _, o := range files {
		if o.name == "small" && (o.projid != 42 || !slices.Contains(o.flags, "nodump")) {
			t.Fatalf("small: project id %d, flags %v: chproj and chattr did not take", o.projid, o.flags)
		}
		if o.name == "rsrc" || o.name == "rcopy" {
			o.flags = append(o.flags, "reflink") // not in xflags: cp --reflink=always made it so
		}
	}
	return img, files
}

// record is what the kernel says of a file: stat, its bytes' md5 (a
// symlink's target's), its extended attributes.
func record(t testing.TB, path, name string) *orphan {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	o := &orphan{name: name, ino: st.Ino, size: st.Size, mode: st.Mode, uid: st.Uid, mtime: st.Mtim, xattrs: map[string][]byte{}}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		o.typ = "regular"
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		o.md5 = md5hex(b)
	case unix.S_IFLNK:
		o.typ = "symlink"
		s, err := os.Readlink(path)
		if err != nil {
			t.Fatal(err)
		}
		o.md5 = md5hex([]byte(s))
	case unix.S_IFDIR:
		o.typ = "directory"
	case unix.S_IFIFO:
		o.typ = "fifo"
	}
	if o.typ == "regular" || o.typ == "directory" {
		o.projid, o.flags = fsGetXattr(t, path)
	}
	buf := make([]byte, 1<<16)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range strings.Split(string(buf[:n]), "\x00") {
		if x == "" {
			continue
		}
		v := make([]byte, 1<<16)
		vn, err := unix.Lgetxattr(path, x, v)
		if err != nil {
			t.Fatal(err)
		}
		o.xattrs[x] = v[:vn]
	}
	return o
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func md5file(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return md5hex(b)
}

// span is a byte range [off, end).
type span struct{ off, end int64 }

func merge(s []span) []span {
	sort.Slice(s, func(i, j int) bool { return s[i].off < s[j].off })
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 && x.off <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, x.end)
			continue
		}
		out = append(out, x)
	}
	return out
}

var bmapLine = regexp.MustCompile(`(?m)^data offset (\d+) startblock \d+ \(\d+/\d+\) count (\d+) flag (\d)`)

// writtenSpans are the byte ranges of ino's written extents below size, as
// xfs_db's `bmap -d` lists them in img: where the output must have data.
func writtenSpans(t *testing.T, img string, ino uint64, size int64) []span {
	t.Helper()
	out := testimg.DB(t, img, fmt.Sprintf("inode %d", ino), "bmap -d")
	var s []span
	for _, m := range bmapLine.FindAllStringSubmatch(out, -1) {
		off, _ := strconv.ParseInt(m[1], 10, 64)
		n, _ := strconv.ParseInt(m[2], 10, 64)
		if m[3] == "1" || off*bs >= size {
			continue
		}
		s = append(s, span{off * bs, min((off+n)*bs, size)})
	}
	return merge(s)
}

// dataSpans are the data ranges of a file as SEEK_DATA and SEEK_HOLE
// find them.
func dataSpans(t *testing.T, path string) []span {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var s []span
	for off := int64(0); off < fi.Size(); {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := unix.Seek(int(f.Fd()), d, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		s = append(s, span{d, h})
		off = h
	}
	return merge(s)
}

// fsGetXattr asks the kernel (FS_IOC_FSGETXATTR, _IOR('X', 31, struct
// fsxattr)) for a file's project id and flags, named as Describe names
// them.
func fsGetXattr(t testing.TB, path string) (projid uint32, flags []string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [28]byte
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), 0x801c581f, uintptr(unsafe.Pointer(&b[0]))); e != 0 {
		t.Fatalf("FS_IOC_FSGETXATTR %s: %v", path, e)
	}
	xflags := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	projid = uint32(b[12]) | uint32(b[13])<<8 | uint32(b[14])<<16 | uint32(b[15])<<24
	for _, x := range []struct {
		bit  uint32
		name string
	}{{0x1, "realtime"}, {0x2, "prealloc"}, {0x8, "immutable"}, {0x10, "append-only"}, {0x20, "sync"}, {0x40, "noatime"}, {0x80, "nodump"}} {
		if xflags&x.bit != 0 {
			flags = append(flags, x.name)
		}
	}
	return projid, flags
}
