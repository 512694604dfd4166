package cache

// One writer per filesystem, whatever the path to it.
//
// Every path to the same bytes locks the same object, with flock: an image
// file locks itself; a loop device locks its backing file (the image's
// inode) and its own device node; any other block device its device node
// (besides the O_EXCL open, which keeps the kernel from mounting it).
// Writers lock exclusively, readers shared, so a writer excludes every
// other xfsfree on the same bytes, through the file or any loop device
// over it. A writer on an image file also opens the idle loop devices over
// it with O_EXCL, so that none of them can be mounted while it writes. A
// lock that is refused names its holder, from /proc/locks.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockObject flocks the file at path (held open in the returned file,
// whose Close releases the lock). what names the object in errors.
func lockObject(path string, exclusive bool, what string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: opening %s to lock it: %w", what, path, err)
	}
	lock := unix.LOCK_SH
	if exclusive {
		lock = unix.LOCK_EX
	}
	if err := flockBriefly(int(f.Fd()), lock); err != nil {
		var st unix.Stat_t
		holder := ""
		if unix.Fstat(int(f.Fd()), &st) == nil {
			holder = flockHolder(devOf(st.Dev), st.Ino)
		}
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			if holder == "" {
				holder = "another process"
			}
			return nil, fmt.Errorf("%s is %w: %s has it open (one writer per filesystem, whatever the path: the image file and every loop device over it): wait for it to finish", what, ErrBusy, holder)
		}
		return nil, fmt.Errorf("%s: flock %s: %w", what, path, err)
	}
	return f, nil
}

// flockHolder names the process holding a flock on the inode (dev, ino),
// from /proc/locks ("1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF"),
// as "xfsfree (pid 1234)"; "" if none is found.
func flockHolder(dev devNum, ino uint64) string {
	f, err := os.Open("/proc/locks")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[1] != "FLOCK" {
			continue // "->" lines are waiters
		}
		id := strings.Split(fs[5], ":")
		if len(id) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(id[0], 16, 32)
		min, err2 := strconv.ParseUint(id[1], 16, 32)
		in, err3 := strconv.ParseUint(id[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || (devNum{uint32(maj), uint32(min)}) != dev || in != ino {
			continue
		}
		pid := fs[4]
		if pid == strconv.Itoa(os.Getpid()) {
			return "this process (pid " + pid + ")"
		}
		comm, err := os.ReadFile("/proc/" + pid + "/comm")
		if err != nil {
			return "pid " + pid
		}
		return fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), pid)
	}
	return ""
}

// claim takes the locks of the one-writer rule for the device d opened
// from path (see the file comment) and, for a writer on an image file,
// the O_EXCL guards of the idle loop devices over it. It fills d.holds.
func (d *Device) claim(path string, loops []loopDev) error {
	excl := !d.readOnly
	var objs []string
	if d.isBlock {
		objs = append(objs, path)
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err == nil {
			if l, ok := loopBehind(devOf(st.Rdev)); ok && l.backing != "" {
				var bst unix.Stat_t
				if unix.Stat(l.backing, &bst) == nil && devOf(bst.Dev) == l.backDev && bst.Ino == l.backIno {
					objs = append(objs, l.backing)
				}
			}
		}
	} else {
		objs = append(objs, path)
	}
	for _, o := range objs {
		f, err := lockObject(o, excl, d.path)
		if err != nil {
			d.release()
			return err
		}
		d.holds = append(d.holds, f)
	}
	if d.isBlock || d.readOnly {
		return nil
	}
	for _, l := range loops {
		f, err := os.OpenFile("/dev/"+l.name, os.O_RDONLY|unix.O_EXCL, 0)
		if err != nil {
			d.release()
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("%s is attached to %s, which is %w: held exclusively by a mount or another program: release it first", d.path, l.describe(), ErrBusy)
			}
			return fmt.Errorf("%s is attached to %s, which xfsfree must hold while it writes (so that nobody mounts it): %w", d.path, l.describe(), err)
		}
		// Also flocked, so that a refused open of it names this process.
		unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		d.holds = append(d.holds, f)
	}
	return nil
}

// release closes the lock and guard files.
func (d *Device) release() {
	for _, f := range d.holds {
		f.Close()
	}
	d.holds = nil
}
