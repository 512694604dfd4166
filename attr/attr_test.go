package attr_test

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/attr"
	"github.com/xfsfree/xfsfree/internal/testfs"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"golang.org/x/sys/unix"
)

// kernelXattrs mounts img read-only and returns, by inode number, every
// file's extended attributes as the kernel lists and reads them.
func kernelXattrs(t *testing.T, img string) map[uint64]map[string][]byte {
	t.Helper()
	mnt := testimg.Mount(t, img, "ro")
	out := map[uint64]map[string][]byte{}
	err := filepath.WalkDir(mnt, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		buf := make([]byte, 1<<16)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return err
		}
		m := map[string][]byte{}
		for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			if name == "" {
				continue
			}
			v := make([]byte, 1<<16)
			vn, err := unix.Lgetxattr(p, name, v)
			if err != nil {
				return err
			}
			m[name] = v[:vn]
		}
		out[st.Ino] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	testimg.Unmount(t, mnt)
	return out
}

// TestListAgainstKernel: for every inode of the populated fixtures
// (shortform, leaf, node and btree-format attr forks, remote values),
// List gives the names and values the kernel's listxattr and getxattr
// give on a read-only mount of the same image.
func TestListAgainstKernel(t *testing.T) {
	testimg.Need(t, "loop", "zstd")
	for _, name := range []string{"default", "bs1024", "isize2048", "nrext64"} {
		t.Run(name, func(t *testing.T) {
			img := testimg.Path(t, name)
			want := kernelXattrs(t, img)
			fsys := testfs.OpenRO(t, img)
			withAttrs, total, remote := 0, 0, 0
			for ino, kv := range want {
				d, _, err := fsys.ReadInode(ino)
				if err != nil {
					t.Fatalf("inode %d: %v", ino, err)
				}
				as, err := attr.List(fsys.Cache, fsys.G, d, true)
				if err != nil {
					t.Fatalf("inode %d: %v", ino, err)
				}
				names, _ := attr.List(fsys.Cache, fsys.G, d, false)
				if len(names) != len(as) {
					t.Errorf("inode %d: %d names without values, %d with", ino, len(names), len(as))
				}
				got := map[string][]byte{}
				for i, a := range as {
					got[a.FullName()] = a.Value
					if a.ValueLen != len(a.Value) || names[i].FullName() != a.FullName() || names[i].Value != nil {
						t.Errorf("inode %d %s: value_len %d, value %d bytes; without values %q %d bytes", ino, a.FullName(),
							a.ValueLen, len(a.Value), names[i].FullName(), len(names[i].Value))
					}
					if a.Remote {
						remote++
					}
				}
				if len(got) != len(kv) {
					t.Errorf("inode %d: %d attributes %v, kernel %d %v", ino, len(got), keys(got), len(kv), keys(kv))
				}
				for k, v := range kv {
					if g, ok := got[k]; !ok || !bytes.Equal(g, v) {
						t.Errorf("inode %d: %s = %d bytes (present %v), kernel %d bytes", ino, k, len(g), ok, len(v))
					}
				}
				if len(kv) > 0 {
					withAttrs++
					total += len(kv)
				}
			}
			if withAttrs < 3 || total < 300 || remote == 0 {
				t.Errorf("%d inodes with %d attributes (%d remote): the fixture should have more", withAttrs, total, remote)
			}
			t.Logf("%d inodes, %d with %d attributes, %d remote values", len(want), withAttrs, total, remote)
		})
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
