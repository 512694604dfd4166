package xfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// Refusals at Open: nothing is read past the superblock and nothing is
// written.

func expectRefused(t *testing.T, img string, want ...string) error {
	t.Helper()
	before := testimg.Hash(t, img)
	fs, err := Open(img, Options{ReadOnly: true})
	if err == nil {
		fs.Close()
		t.Fatalf("Open %s succeeded, want a refusal containing %q", img, want)
	}
	t.Logf("refused: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if testimg.Hash(t, img) != before {
		t.Errorf("the refused Open wrote to the image")
	}
	return err
}

func TestRefuseV4(t *testing.T) {
	for _, name := range testimg.V4Fixtures() {
		err := expectRefused(t, testimg.Path(t, name), "v5")
		if !errors.Is(err, ondisk.ErrUnsupported) {
			t.Errorf("%v does not wrap ErrUnsupported", err)
		}
	}
}

func TestRefuseNotXFS(t *testing.T) {
	img := filepath.Join(t.TempDir(), "zeros.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, img, "not an XFS filesystem")
	// Shorter than a sector.
	small := filepath.Join(t.TempDir(), "small.img")
	if err := os.WriteFile(small, []byte("XFSB"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, small, "not an XFS filesystem", "too small")
	// Missing.
	if _, err := Open(filepath.Join(t.TempDir(), "none"), Options{ReadOnly: true}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %v", err)
	}
}

func TestRefuseTruncated(t *testing.T) {
	img := testimg.Path(t, "default")
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	err = expectRefused(t, img, "truncated", "sb_dblocks")
	if !errors.Is(err, ondisk.ErrCorrupt) {
		t.Errorf("%v does not wrap ErrCorrupt", err)
	}
}

func TestRefuseSuperblockCRC(t *testing.T) {
	img := testimg.Path(t, "default")
	flipByte(t, img, 128) // sb_icount
	expectRefused(t, img, "superblock", "sb_crc")
}

// setSBField writes a superblock field with xfs_db (CRC recomputed).
func setSBField(t *testing.T, img, field string, v uint64) {
	t.Helper()
	testimg.DBWrite(t, img, "sb 0", fmt.Sprintf("write -d %s %#x", field, v))
	if got := num(t, testimg.Superblock(t, img), field); got != v {
		t.Fatalf("xfs_db wrote %s = %#x, want %#x", field, got, v)
	}
}

func TestRefuseNeedsRepair(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "default")
	inc := num(t, testimg.Superblock(t, img), "features_incompat")
	setSBField(t, img, "features_incompat", inc|1<<4) // XFS_SB_FEAT_INCOMPAT_NEEDSREPAIR
	err := expectRefused(t, img, "NEEDSREPAIR", "xfs_repair")
	if !errors.Is(err, ondisk.ErrUnsupported) {
		t.Errorf("%v does not wrap ErrUnsupported", err)
	}
}

func TestRefuseUnknownIncompat(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "default")
	inc := num(t, testimg.Superblock(t, img), "features_incompat")
	setSBField(t, img, "features_incompat", inc|1<<29)
	expectRefused(t, img, "bit 29", "incompat")
}

func TestRefuseUnknownROCompat(t *testing.T) {
	testimg.Need(t, "xfs_db")
	img := testimg.Path(t, "default")
	ro := num(t, testimg.Superblock(t, img), "features_ro_compat")
	setSBField(t, img, "features_ro_compat", ro|1<<27)
	expectRefused(t, img, "bit 27")
}

// loopOf returns the device a mount point is mounted from.
func loopOf(t *testing.T, mnt string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 10 || fields[4] != mnt {
			continue
		}
		for i, x := range fields {
			if x == "-" && i+2 < len(fields) {
				return fields[i+2]
			}
		}
	}
	t.Fatalf("%s is not in /proc/self/mountinfo", mnt)
	return ""
}

// TestRefuseMounted mounts a fixture and opens the image file and its loop
// device: both are refused, naming the mount point.
func TestRefuseMounted(t *testing.T) {
	testimg.Need(t, "loop", "mount", "umount")
	img := testimg.Path(t, "default")
	mnt := testimg.Mount(t, img)
	mnt, _ = filepath.EvalSymlinks(mnt)
	for _, p := range []string{img, loopOf(t, mnt)} {
		fs, err := Open(p, Options{ReadOnly: true})
		if err == nil {
			fs.Close()
			t.Fatalf("Open %s of a mounted filesystem succeeded", p)
		}
		if !strings.Contains(err.Error(), mnt) || !errors.Is(err, cache.ErrMounted) {
			t.Errorf("Open %s: %v; want ErrMounted naming %s", p, err, mnt)
		}
	}
}

// TestLoopDevice reads a fixture through a loop device that is attached but
// not mounted, and checks Info and Scan equal those of the image file.
func TestLoopDevice(t *testing.T) {
	testimg.Need(t, "loop", "losetup")
	img := testimg.Path(t, "orphans")
	out, err := exec.Command("losetup", "-f", "--show", "-r", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	a, b := openRO(t, img), openRO(t, dev)
	ia, err := a.Info()
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.Info()
	if err != nil {
		t.Fatal(err)
	}
	ia.Device, ib.Device = "", ""
	if fmt.Sprint(ia) != fmt.Sprint(ib) {
		t.Errorf("Info of the image %+v\nand of %s %+v", ia, dev, ib)
	}
	sa, err := a.Scan(nil)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Scan(nil)
	if err != nil {
		t.Fatal(err)
	}
	sa.Device, sb.Device = "", ""
	if fmt.Sprint(sa) != fmt.Sprint(sb) {
		t.Errorf("Scan of the image and of %s differ", dev)
	}
}
