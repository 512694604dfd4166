package cache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// patternFile makes a file of size random bytes and returns its path.
func patternFile(t *testing.T, size int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	b := make([]byte, size)
	rand.New(rand.NewSource(int64(size))).Read(b)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func rangeHash(t *testing.T, path string, off, n int64) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestRangeReadsAndWritesStayInside: a device opened on a byte range reads
// the file's bytes from the range's start (plain file reads are the
// judge), reports the range's size, refuses anything past its end, writes
// at the right place (aligned and read-modify-write), and leaves every
// byte outside the range as it was; with O_DIRECT and with buffered I/O.
func TestRangeReadsAndWritesStayInside(t *testing.T) {
	const size, off, n = 8 << 20, 1 << 20, 3 << 20
	for _, buffered := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "buffered"}[buffered], func(t *testing.T) {
			img := patternFile(t, size)
			before, after := rangeHash(t, img, 0, off), rangeHash(t, img, off+n, size-off-n)
			d, err := Open(img, OpenOptions{Offset: off, Size: n, Buffered: buffered})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Size() != n || d.sizeBBs() != n/BBSize || d.Offset() != off {
				t.Errorf("Size %d, SizeBBs %d, Offset %d", d.Size(), d.sizeBBs(), d.Offset())
			}
			for _, c := range []struct {
				daddr int64
				nBB   int
			}{{0, 1}, {1, 3}, {7, 16}, {n/BBSize - 1, 1}, {n/BBSize - 8, 8}} {
				got, err := d.ReadAt(c.daddr, c.nBB)
				if err != nil {
					t.Fatalf("ReadAt(%d, %d): %v", c.daddr, c.nBB, err)
				}
				if want := fileBytes(t, img, off/BBSize+c.daddr, c.nBB); !bytes.Equal(got, want) {
					t.Errorf("ReadAt(%d, %d) differs from the file's bytes at %d", c.daddr, c.nBB, off+c.daddr*BBSize)
				}
			}
			for _, c := range []struct {
				daddr int64
				nBB   int
			}{{n / BBSize, 1}, {n/BBSize - 1, 2}, {-1, 1}} {
				if _, err := d.ReadAt(c.daddr, c.nBB); err == nil {
					t.Errorf("ReadAt(%d, %d) past the range: no error", c.daddr, c.nBB)
				}
				if err := d.WriteAt(c.daddr, make([]byte, c.nBB*BBSize)); err == nil {
					t.Errorf("WriteAt(%d, %d) past the range: no error", c.daddr, c.nBB)
				}
			}
			if _, err := d.ReadAt(n/BBSize, 1); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read past the end: %v, want io.ErrUnexpectedEOF", err)
			}
			// Aligned writes, a read-modify-write (one BB), and the last BB.
			for _, c := range []struct {
				daddr int64
				nBB   int
			}{{0, 8}, {9, 1}, {n/BBSize - 1, 1}} {
				w := bytes.Repeat([]byte{byte(c.daddr) | 1}, c.nBB*BBSize)
				if err := d.WriteAt(c.daddr, w); err != nil {
					t.Fatalf("WriteAt(%d): %v", c.daddr, err)
				}
				if got := fileBytes(t, img, off/BBSize+c.daddr, c.nBB); !bytes.Equal(got, w) {
					t.Errorf("WriteAt(%d) did not land at byte %d of the file", c.daddr, off+c.daddr*BBSize)
				}
			}
			if err := d.Sync(); err != nil {
				t.Fatal(err)
			}
			if rangeHash(t, img, 0, off) != before || rangeHash(t, img, off+n, size-off-n) != after {
				t.Error("bytes outside the range changed")
			}
		})
	}
}

// TestRangeRMWAtAnUnalignedEnd: with O_DIRECT on a device with 4096-byte
// logical sectors (a loop device), a one-BB write at the end of a range
// whose end is not sector-aligned would rewrite bytes past the range: it is
// refused (naming --buffered), nothing written; buffered I/O writes it.
func TestRangeRMWAtAnUnalignedEnd(t *testing.T) {
	testimg.Need(t, "loop")
	const size, off, n = 4 << 20, 1 << 20, 1<<20 + BBSize
	img := patternFile(t, size)
	dev := losetup(t, img, "--sector-size", "4096")
	d, err := Open(dev, OpenOptions{Offset: off, Size: n})
	if err != nil {
		t.Fatal(err)
	}
	if d.IOAlign() != 4096 {
		t.Fatalf("I/O alignment %d on a 4096-byte sector loop device", d.IOAlign())
	}
	whole := rangeHash(t, img, 0, size)
	err = d.WriteAt(n/BBSize-1, make([]byte, BBSize))
	d.Close()
	if err == nil || !strings.Contains(err.Error(), "outside the partition") || !strings.Contains(err.Error(), "--buffered") {
		t.Errorf("O_DIRECT write at the unaligned end: %v", err)
	}
	if rangeHash(t, img, 0, size) != whole {
		t.Error("the refused write changed the file")
	}
	d, err = Open(dev, OpenOptions{Offset: off, Size: n, Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteAt(n/BBSize-1, make([]byte, BBSize)); err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if !bytes.Equal(fileBytes(t, img, (off+n)/BBSize-1, 1), make([]byte, BBSize)) {
		t.Error("buffered write at the end did not land")
	}
	if rangeHash(t, img, off+n, size-off-n) != rangeHash(t, patternFile(t, size), off+n, size-off-n) {
		t.Error("bytes after the range changed")
	}
}

// TestRangeRefused: ranges that are not inside the device, or not
// aligned, are refused at Open with a message naming the numbers.
func TestRangeRefused(t *testing.T) {
	img := patternFile(t, 4<<20)
	for _, c := range []struct {
		o    OpenOptions
		want string
	}{
		{OpenOptions{Offset: 100}, "not multiples of 512"},
		{OpenOptions{Offset: 4096, Size: 1000}, "not multiples of 512"},
		{OpenOptions{Offset: -512}, "negative"},
		{OpenOptions{Offset: 4 << 20}, "beyond the end of the device"},
		{OpenOptions{Offset: 1 << 20, Size: 4 << 20}, "go beyond the end of the device (4194304 bytes)"},
	} {
		d, err := Open(img, c.o)
		if err == nil {
			d.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open %+v: %v, want %q", c.o, err, c.want)
		}
	}
	// O_DIRECT needs an aligned offset; buffered I/O does not.
	d, err := Open(img, OpenOptions{Offset: 512, ReadOnly: true})
	if err == nil {
		align := d.IOAlign()
		d.Close()
		if align != BBSize {
			t.Errorf("O_DIRECT at offset 512 with alignment %d: no error", align)
		}
	} else if !strings.Contains(err.Error(), "use --buffered") {
		t.Errorf("O_DIRECT at offset 512: %v", err)
	}
	d, err = Open(img, OpenOptions{Offset: 512, ReadOnly: true, Buffered: true})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
}

// TestRangeOnABlockDevice: on a block device (a loop device with 4096-byte
// logical sectors) the range's offset must be a multiple of the sector
// size, and reads are those of the kernel's own offset loop device over
// the same bytes.
func TestRangeOnABlockDevice(t *testing.T) {
	testimg.Need(t, "loop")
	const size, off, n = 8 << 20, 2 << 20, 4 << 20
	img := patternFile(t, size)
	whole := losetup(t, img, "--sector-size", "4096")
	part := losetup(t, img, "-o", "2097152", "--sizelimit", "4194304", "-r")
	if _, err := Open(whole, OpenOptions{Offset: off + 512, ReadOnly: true, Buffered: true}); err == nil ||
		!strings.Contains(err.Error(), "4096-byte logical sectors") {
		t.Errorf("offset not a multiple of the sector: %v", err)
	}
	d, err := Open(whole, OpenOptions{Offset: off, Size: n, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k, err := Open(part, OpenOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if d.Size() != k.Size() {
		t.Fatalf("range size %d, the kernel's loop device %d", d.Size(), k.Size())
	}
	for _, daddr := range []int64{0, 8, 4096, n/BBSize - 8} {
		a, err1 := d.ReadAt(daddr, 8)
		b, err2 := k.ReadAt(daddr, 8)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("daddr %d: %v %v, equal %v", daddr, err1, err2, bytes.Equal(a, b))
		}
	}
}
