package cache

// The refusal of mounted devices and images.
//
// Rules (checked by Open before it opens anything):
//   - A block device is refused if it, or one of its partitions, is mounted
//     (by major:minor in /proc/self/mountinfo), or if something holds it
//     (/sys/dev/block/M:m/holders is not empty: device-mapper, md). The
//     O_EXCL open then closes the window: the kernel refuses to mount a
//     device xfsfree holds exclusively, and refuses xfsfree a device held
//     by a mount.
//   - A regular file is matched against every attached loop device by
//     device and inode number (LOOP_GET_STATUS64, else a stat of
//     /sys/block/loopN/loop/backing_file), never by path string. If such a
//     loop device (or a partition of it) is mounted or held, the image is
//     refused, naming the loop device and the mount point. A loop device
//     that is attached but neither mounted nor held is allowed: attaching
//     is what an operator does to inspect an image, and nothing writes
//     through an idle loop device. Device.AttachedLoops lists such loops so
//     the CLI can warn. A mount made after Open's check cannot be prevented
//     for an image file (only block devices have exclusive opens).

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

type devNum struct{ major, minor uint32 }

func (n devNum) String() string { return fmt.Sprintf("%d:%d", n.major, n.minor) }

func devOf(dev uint64) devNum { return devNum{unix.Major(dev), unix.Minor(dev)} }

// mountPoints maps major:minor to the mount points of the file systems on
// that device, from /proc/self/mountinfo.
func mountPoints() (map[devNum][]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("cannot check whether the device is mounted: %w", err)
	}
	defer f.Close()
	return parseMountinfo(bufio.NewScanner(f))
}

func parseMountinfo(sc *bufio.Scanner) (map[devNum][]string, error) {
	m := map[devNum][]string{}
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		maj, min, ok := strings.Cut(fs[2], ":")
		if !ok {
			continue
		}
		a, err1 := strconv.ParseUint(maj, 10, 32)
		b, err2 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		k := devNum{uint32(a), uint32(b)}
		m[k] = append(m[k], unescapeMountinfo(fs[4]))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot check whether the device is mounted: /proc/self/mountinfo: %w", err)
	}
	return m, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// blockDev is a block device or partition known to sysfs.
type blockDev struct {
	name string // "loop3", "loop3p1"
	num  devNum
}

// sysDevNum reads a sysfs "dev" file ("7:3").
func sysDevNum(path string) (devNum, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return devNum{}, err
	}
	maj, min, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok {
		return devNum{}, fmt.Errorf("%s: bad dev %q", path, b)
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	c, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return devNum{}, fmt.Errorf("%s: bad dev %q", path, b)
	}
	return devNum{uint32(a), uint32(c)}, nil
}

// withPartitions lists the device and its partitions (from sysfs; only the
// device itself if sysfs does not know it).
func withPartitions(num devNum, name string) (dir string, devs []blockDev) {
	devs = []blockDev{{name, num}}
	dir = fmt.Sprintf("/sys/dev/block/%s", num)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", devs
	}
	for _, e := range ents {
		sub := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(sub, "partition")); err != nil {
			continue
		}
		if pn, err := sysDevNum(filepath.Join(sub, "dev")); err == nil {
			devs = append(devs, blockDev{e.Name(), pn})
		}
	}
	return dir, devs
}

// inUse reports why the block device num (shown as name) must not be
// written: mounted (itself or a partition), or held. It returns nil if it
// is free. lead is how the sentence starts ("/dev/loop3" or "x.img is
// attached to /dev/loop3, which").
func inUse(mounts map[devNum][]string, num devNum, name string, lead func(what string) string) error {
	dir, devs := withPartitions(num, name)
	for i, bd := range devs {
		mps := mounts[bd.num]
		if len(mps) == 0 {
			continue
		}
		what := name
		if i > 0 {
			what = "/dev/" + bd.name + " (a partition of " + name + ")"
		}
		return fmt.Errorf("%s is %w on %s: unmount it first", lead(what), ErrMounted, strings.Join(mps, ", "))
	}
	if dir == "" {
		return nil
	}
	for i, bd := range devs {
		sub := dir
		what := name
		if i > 0 {
			sub = filepath.Join(dir, bd.name)
			what = "/dev/" + bd.name + " (a partition of " + name + ")"
		}
		hs, _ := os.ReadDir(filepath.Join(sub, "holders"))
		if len(hs) > 0 {
			var names []string
			for _, h := range hs {
				names = append(names, h.Name())
			}
			return fmt.Errorf("%s is %w: held by %s: release it first", lead(what), ErrBusy, strings.Join(names, ", "))
		}
	}
	return nil
}

// checkBlockInUse refuses a mounted or held block device.
func checkBlockInUse(path string, rdev uint64) error {
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	return inUse(mounts, devOf(rdev), path, func(w string) string { return w })
}

// checkFileInUse refuses an image file whose loop device is mounted or
// held, and returns the loop devices it is attached to otherwise.
func checkFileInUse(path string, st *unix.Stat_t) ([]string, error) {
	loops, err := filepath.Glob("/sys/block/loop*")
	if err != nil || len(loops) == 0 {
		return nil, nil
	}
	var mounts map[devNum][]string
	var attached []string
	for _, l := range loops {
		if _, err := os.Stat(filepath.Join(l, "loop")); err != nil {
			continue // not attached
		}
		name := filepath.Base(l)
		if !loopBacks(name, filepath.Join(l, "loop", "backing_file"), st) {
			continue
		}
		num, err := sysDevNum(filepath.Join(l, "dev"))
		if err != nil {
			return nil, fmt.Errorf("%s is attached to /dev/%s, whose device number cannot be read: %w", path, name, err)
		}
		if mounts == nil {
			if mounts, err = mountPoints(); err != nil {
				return nil, err
			}
		}
		lead := func(w string) string { return path + " is attached to " + w + ", which" }
		if err := inUse(mounts, num, "/dev/"+name, lead); err != nil {
			return nil, err
		}
		attached = append(attached, "/dev/"+name)
	}
	return attached, nil
}

// loopBacks reports whether loop device name is backed by the file st,
// comparing device and inode numbers.
func loopBacks(name, backingFile string, st *unix.Stat_t) bool {
	if f, err := os.Open("/dev/" + name); err == nil {
		info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
		f.Close()
		if err == nil {
			return devOf(info.Device) == devOf(st.Dev) && info.Inode == st.Ino
		}
	}
	b, err := os.ReadFile(backingFile)
	if err != nil {
		return false
	}
	p := strings.TrimSuffix(strings.TrimRight(string(b), "\n"), " (deleted)")
	var bst unix.Stat_t
	if err := unix.Stat(p, &bst); err != nil {
		return false
	}
	return bst.Dev == st.Dev && bst.Ino == st.Ino
}
