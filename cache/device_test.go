package cache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// fileBytes reads n BBs at daddr from a file with plain I/O (the truth).
func fileBytes(t testing.TB, path string, daddr int64, nBB int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, nBB*BBSize)
	if _, err := f.ReadAt(b, daddr*BBSize); err != nil {
		t.Fatal(err)
	}
	return b
}

// sectBBs reads the superblock's sector size from a raw image (sb_sectsize
// at offset 102).
func sectBBs(t testing.TB, img string) int64 {
	sb := fileBytes(t, img, 0, 1)
	if string(sb[:4]) != "XFSB" {
		t.Fatalf("%s: no XFS superblock", img)
	}
	return int64(binary.BigEndian.Uint16(sb[102:])) / BBSize
}

// losetup attaches img to a free loop device and detaches it at cleanup.
func losetup(t testing.TB, img string, args ...string) string {
	t.Helper()
	return testimg.Losetup(t, img, args...)
}

// loopOf finds the source device of the mount at mnt.
func loopOf(t testing.TB, mnt string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		for i, x := range fs {
			if x == "-" && len(fs) > i+2 && unescapeMountinfo(fs[4]) == mnt {
				return fs[i+2]
			}
		}
	}
	t.Fatalf("%s not in mountinfo", mnt)
	return ""
}

func open(t testing.TB, path string, opts OpenOptions) *Device {
	t.Helper()
	d, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestOpenImageReadsHeaders(t *testing.T) {
	img := testimg.Path(t, "default")
	d := open(t, img, OpenOptions{ReadOnly: true})
	t.Logf("image I/O alignment %d", d.IOAlign())
	if d.isBlockDevice() || d.SectorSize() != 512 || d.Buffered() {
		t.Fatalf("block %v sector %d buffered %v", d.isBlockDevice(), d.SectorSize(), d.Buffered())
	}
	st, _ := os.Stat(img)
	if d.Size() != st.Size() {
		t.Fatalf("size %d, want %d", d.Size(), st.Size())
	}
	agi := 2 * sectBBs(t, img)
	b, err := d.ReadAt(agi, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:4]) != "XAGI" {
		t.Fatalf("AGI magic %q", b[:4])
	}
	// Unaligned reads of every small shape match plain reads of the file.
	for _, r := range []struct {
		daddr int64
		n     int
	}{{0, 1}, {1, 1}, {3, 2}, {7, 1}, {7, 2}, {8, 8}, {5, 16}, {1000, 3}, {d.sizeBBs() - 1, 1}, {d.sizeBBs() - 9, 9}} {
		got, err := d.ReadAt(r.daddr, r.n)
		if err != nil {
			t.Fatalf("ReadAt(%d,%d): %v", r.daddr, r.n, err)
		}
		if !bytes.Equal(got, fileBytes(t, img, r.daddr, r.n)) {
			t.Fatalf("ReadAt(%d,%d) differs from the file", r.daddr, r.n)
		}
	}
	if _, err := d.ReadAt(d.sizeBBs(), 1); err == nil {
		t.Fatal("read past the end succeeded")
	}
	if _, err := d.ReadAt(-1, 1); err == nil {
		t.Fatal("read at -1 succeeded")
	}
	if err := d.WriteAt(0, make([]byte, 512)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write on read-only device: %v", err)
	}
	if s := d.Stats(); s.Reads == 0 || s.BytesRead == 0 || s.Writes != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestWriteAlignedAndRMW(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		img := testimg.Path(t, "default")
		d := open(t, img, OpenOptions{Buffered: buffered})
		pat := func(n int, seed byte) []byte {
			b := make([]byte, n*BBSize)
			for i := range b {
				b[i] = seed + byte(i*7)
			}
			return b
		}
		cases := []struct {
			daddr int64
			n     int
		}{{80000, 8}, {80009, 1}, {80017, 3}, {80030, 16}, {80100, 1}}
		for i, c := range cases {
			if err := d.WriteAt(c.daddr, pat(c.n, byte(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		for i, c := range cases {
			if got := fileBytes(t, img, c.daddr, c.n); !bytes.Equal(got, pat(c.n, byte(i))) {
				t.Fatalf("buffered=%v: write %d not on disk", buffered, i)
			}
			got, err := d.ReadAt(c.daddr, c.n)
			if err != nil || !bytes.Equal(got, pat(c.n, byte(i))) {
				t.Fatalf("buffered=%v: read back %d: %v", buffered, i, err)
			}
		}
		// The neighbours of the read-modify-writes are untouched.
		if got := fileBytes(t, img, 80008, 1); !bytes.Equal(got, make([]byte, 512)) {
			t.Fatalf("buffered=%v: RMW clobbered its neighbour", buffered)
		}
		s := d.Stats()
		if s.Writes < int64(len(cases)) || s.Syncs != 1 {
			t.Fatalf("stats %+v", s)
		}
		if !buffered && d.IOAlign() > BBSize && s.RMWWrites == 0 {
			t.Fatalf("align %d but no RMW: %+v", d.IOAlign(), s)
		}
		if buffered && (s.RMWWrites != 0 || !d.Buffered()) {
			t.Fatalf("buffered: %+v buffered %v", s, d.Buffered())
		}
	}
}

// The write hook drops writes after the Nth, tears one, and is race-safe.
func TestWriteHook(t *testing.T) {
	img := testimg.Path(t, "default")
	d := open(t, img, OpenOptions{})
	var n atomic.Int64
	d.SetWriteHook(func(daddr int64, b []byte) (bool, error) {
		k := n.Add(1)
		switch {
		case daddr == 90000: // tear: keep the first sector, the rest stays old
			old, err := d.ReadAt(daddr, len(b)/BBSize)
			if err != nil {
				return false, err
			}
			copy(b[BBSize:], old[BBSize:])
			return true, nil
		case daddr == 90100:
			return false, errors.New("injected")
		}
		return k <= 20, nil
	})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				b := bytes.Repeat([]byte{0xaa}, 4096)
				if err := d.WriteAt(int64(85000+8*(g*5+i)), b); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if s := d.Stats(); s.DroppedWrites != 20 || s.Writes != 20 {
		t.Fatalf("stats %+v", s)
	}
	if err := d.WriteAt(90000, bytes.Repeat([]byte{0xbb}, 4096)); err != nil {
		t.Fatal(err)
	}
	got := fileBytes(t, img, 90000, 8)
	if !bytes.Equal(got[:512], bytes.Repeat([]byte{0xbb}, 512)) || !bytes.Equal(got[512:], make([]byte, 4096-512)) {
		t.Fatal("torn write not as the hook made it")
	}
	if err := d.WriteAt(90100, make([]byte, 512)); err == nil || err.Error() != "injected" {
		t.Fatalf("hook error: %v", err)
	}
	d.SetWriteHook(nil)
	if err := d.WriteAt(90100, make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
}

func TestLoopDeviceExclusive(t *testing.T) {
	img := testimg.Path(t, "default")
	dev := losetup(t, img)
	d := open(t, dev, OpenOptions{})
	st, _ := os.Stat(img)
	if !d.isBlockDevice() || d.Size() != st.Size() || d.SectorSize() != 512 || d.IOAlign() != 512 {
		t.Fatalf("block %v size %d sector %d align %d", d.isBlockDevice(), d.Size(), d.SectorSize(), d.IOAlign())
	}
	agi := 2 * sectBBs(t, img)
	b, err := d.ReadAt(agi, 1)
	if err != nil || !bytes.Equal(b, fileBytes(t, img, agi, 1)) {
		t.Fatalf("AGI through the loop device: %v", err)
	}
	// O_EXCL: a second open and a mount both fail while we hold it.
	if _, err := Open(dev, OpenOptions{ReadOnly: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second open: %v", err)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "xfs", dev, mnt).CombinedOutput(); err == nil {
		exec.Command("umount", mnt).Run()
		t.Fatal("mount succeeded on a device xfsfree holds")
	} else {
		t.Logf("mount refused as expected: %s", strings.TrimSpace(string(out)))
	}
	// The image is attached (not mounted): allowed, and reported.
	d.Close()
	di := open(t, img, OpenOptions{ReadOnly: true})
	if a := di.AttachedLoops(); len(a) != 1 || a[0] != dev {
		t.Fatalf("AttachedLoops %v, want [%s]", a, dev)
	}
}

func TestMountedRefused(t *testing.T) {
	img := testimg.Path(t, "default")
	mnt := testimg.Mount(t, img)
	dev := loopOf(t, mnt)
	for _, p := range []string{img, dev} {
		_, err := Open(p, OpenOptions{ReadOnly: true})
		if !errors.Is(err, ErrMounted) {
			t.Fatalf("Open(%s) of a mounted fs: %v", p, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "mounted on "+mnt) || !strings.Contains(msg, dev) || !strings.Contains(msg, "unmount it first") {
			t.Fatalf("message %q does not name %s and %s", msg, dev, mnt)
		}
		t.Log(msg)
	}
	// A symlink to the image is the same file (compared by device and inode).
	link := filepath.Join(t.TempDir(), "link.img")
	if err := os.Symlink(img, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(link, OpenOptions{}); !errors.Is(err, ErrMounted) {
		t.Fatalf("Open via symlink: %v", err)
	}
	// A copy of the image is another file: allowed.
	testimg.Unmount(t, mnt)
	d := open(t, img, OpenOptions{})
	if len(d.AttachedLoops()) != 0 {
		t.Fatalf("attached after unmount: %v", d.AttachedLoops())
	}
}

// A 4k-sector filesystem on a loop device with 4k logical sectors: the
// device aligns every I/O to 4096 and 512-byte reads and writes work.
func TestFourKSectorLoop(t *testing.T) {
	img := testimg.Path(t, "sect4096")
	if s := sectBBs(t, img); s != 8 {
		t.Fatalf("sect4096 has %d-BB sectors", s)
	}
	dev := losetup(t, img, "--sector-size", "4096")
	d := open(t, dev, OpenOptions{})
	if d.SectorSize() != 4096 || d.IOAlign() != 4096 {
		t.Fatalf("sector %d align %d", d.SectorSize(), d.IOAlign())
	}
	b, err := d.ReadAt(16, 8) // AGI: third 4k sector
	if err != nil || string(b[:4]) != "XAGI" {
		t.Fatalf("AGI: %v %q", err, b[:4])
	}
	for _, r := range [][2]int{{1, 1}, {17, 1}, {19, 2}, {7, 3}} {
		got, err := d.ReadAt(int64(r[0]), r[1])
		if err != nil || !bytes.Equal(got, fileBytes(t, img, int64(r[0]), r[1])) {
			t.Fatalf("ReadAt(%d,%d): %v", r[0], r[1], err)
		}
	}
	w := bytes.Repeat([]byte{0x5a}, 512)
	if err := d.WriteAt(80003, w); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if d.Stats().RMWWrites != 1 {
		t.Fatalf("stats %+v", d.Stats())
	}
	d.Close()
	got := fileBytes(t, img, 80000, 8)
	if !bytes.Equal(got[3*512:4*512], w) || !bytes.Equal(got[:3*512], make([]byte, 3*512)) {
		t.Fatal("512-byte write on a 4k device did not land alone")
	}
}

// O_DIRECT on a file system without it is refused with a pointer to
// --buffered (tmpfs before Linux 6.6); Buffered always works.
func TestNoDirectIO(t *testing.T) {
	dir, err := os.MkdirTemp("/dev/shm", "xfsfree-test")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "x.img")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(p, OpenOptions{})
	if err == nil {
		d.Close()
		t.Log("this tmpfs supports O_DIRECT")
	} else if !errors.Is(err, ErrNoDirectIO) || !strings.Contains(err.Error(), "--buffered") {
		t.Fatalf("O_DIRECT on tmpfs: %v", err)
	}
	d, err = Open(p, OpenOptions{Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.WriteAt(3, make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesOthers(t *testing.T) {
	if _, err := Open(t.TempDir(), OpenOptions{}); err == nil {
		t.Fatal("opened a directory")
	}
	if _, err := Open("/dev/null", OpenOptions{}); err == nil {
		t.Fatal("opened a char device")
	}
	img := testimg.Path(t, "default")
	open(t, img, OpenOptions{})
	if _, err := Open(img, OpenOptions{ReadOnly: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second open of an image held for writing: %v", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := "22 27 0:21 / /proc rw - proc proc rw\n" +
		"90 27 7:3 / /mnt/with\\040space rw,relatime - xfs /dev/loop3 rw\n" +
		"91 27 7:3 / /mnt/again rw - xfs /dev/loop3 rw\n"
	m, err := parseMountinfo(bufio.NewScanner(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	if got := m[devNum{7, 3}]; len(got) != 2 || got[0] != "/mnt/with space" || got[1] != "/mnt/again" {
		t.Fatalf("7:3 -> %q", got)
	}
}

func BenchmarkDeviceRead4k(b *testing.B) {
	img := testimg.Path(b, "default")
	d := open(b, img, OpenOptions{ReadOnly: true})
	buf := d.allocIO(4096)
	b.SetBytes(4096)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.ReadInto(int64(i%4096)*8, buf); err != nil {
			b.Fatal(err)
		}
	}
}
