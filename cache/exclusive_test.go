package cache

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// A second loop device over a mounted image reaches the mounted bytes:
// refused, naming the mounted loop device and its mount point.
func TestSecondLoopOfMountedImage(t *testing.T) {
	img := testimg.Path(t, "default")
	mnt := testimg.Mount(t, img)
	mdev := loopOf(t, mnt)
	lb := losetup(t, img)
	for _, ro := range []bool{false, true} {
		_, err := Open(lb, OpenOptions{ReadOnly: ro})
		if !errors.Is(err, ErrMounted) {
			t.Fatalf("Open(%s, ro=%v), a second loop device of a mounted image: %v", lb, ro, err)
		}
		if msg := err.Error(); !strings.Contains(msg, mdev) || !strings.Contains(msg, mnt) || !strings.Contains(msg, img) {
			t.Errorf("message %q does not name %s, %s and %s", msg, mdev, mnt, img)
		}
		t.Log(err)
	}
}

// Loop devices with offsets over one file: a mounted range refuses the
// file and every loop device whose range overlaps it, not the others.
func TestLoopRanges(t *testing.T) {
	testimg.Need(t, "mkfs.xfs")
	img := filepath.Join(t.TempDir(), "disk.img")
	const mib = 1 << 20
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 700*mib); err != nil {
		t.Fatal(err)
	}
	p1 := losetup(t, img, "-o", "1048576", "--sizelimit", strconv.Itoa(320*mib))
	p2 := losetup(t, img, "-o", strconv.Itoa(330*mib), "--sizelimit", strconv.Itoa(320*mib))
	for _, p := range []string{p1, p2} {
		if out, err := exec.Command("mkfs.xfs", "-q", p).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.xfs %s: %v\n%s", p, err, out)
		}
	}
	mnt := testimg.MountDev(t, p1)
	if _, err := Open(img, OpenOptions{ReadOnly: true}); !errors.Is(err, ErrMounted) {
		t.Fatalf("Open of the whole file while a range of it is mounted: %v", err)
	}
	overlap := losetup(t, img, "-o", strconv.Itoa(300*mib), "--sizelimit", strconv.Itoa(100*mib))
	_, err := Open(overlap, OpenOptions{})
	if !errors.Is(err, ErrMounted) || !strings.Contains(err.Error(), mnt) {
		t.Fatalf("Open of a loop device overlapping the mounted range: %v", err)
	}
	t.Log(err)
	d, err := Open(p2, OpenOptions{})
	if err != nil {
		t.Fatalf("Open of a loop device over bytes no mount uses: %v", err)
	}
	d.Close()
}

// One writer per filesystem: the image file and every loop device over it
// take the same lock; a refused open names the holder.
func TestOneWriterAcrossPaths(t *testing.T) {
	img := testimg.Path(t, "default")
	la, lb := losetup(t, img), losetup(t, img)
	d := open(t, la, OpenOptions{})
	for _, p := range []string{img, lb} {
		for _, ro := range []bool{false, true} {
			_, err := Open(p, OpenOptions{ReadOnly: ro})
			if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
				t.Fatalf("Open(%s, ro=%v) while %s is open for writing: %v", p, ro, la, err)
			}
		}
	}
	d.Close()

	// A writer on the file holds the idle loop devices over it: neither
	// another xfsfree nor a mount can use them.
	d = open(t, img, OpenOptions{})
	_, err := Open(la, OpenOptions{ReadOnly: true})
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("Open(%s) while the image is open for writing: %v", la, err)
	}
	t.Log(err)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "xfs", "-o", "nouuid", lb, mnt).CombinedOutput(); err == nil {
		exec.Command("umount", mnt).Run()
		t.Fatal("mount of a loop device over an image xfsfree is writing succeeded")
	} else {
		t.Logf("mount refused as expected: %s", strings.TrimSpace(string(out)))
	}
	d.Close()
	// Readers share.
	r1 := open(t, la, OpenOptions{ReadOnly: true})
	r2 := open(t, img, OpenOptions{ReadOnly: true})
	r1.Close()
	r2.Close()
}

// The holder of a refused lock is named by command and pid, across
// processes.
func TestBusyNamesHolder(t *testing.T) {
	testimg.Need(t, "flock")
	img := testimg.Path(t, "default")
	cmd := exec.Command("flock", "-x", img, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	want := "(pid " + strconv.Itoa(cmd.Process.Pid) + ")"
	var err error
	for try := 0; try < 50; try++ {
		var d *Device
		if d, err = Open(img, OpenOptions{}); err == nil {
			d.Close() // flock(1) has not taken its lock yet
		} else if strings.Contains(err.Error(), want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of an image another process holds: %v; want ErrBusy naming %s", err, want)
	}
	t.Log(err)
}
