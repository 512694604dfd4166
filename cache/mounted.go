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

// byteRange is a range of bytes of a backing file; end 0 means "to the
// end of the file".
type byteRange struct{ start, end uint64 }

func (r byteRange) overlaps(o byteRange) bool {
	return (o.end == 0 || r.start < o.end) && (r.end == 0 || o.start < r.end)
}

// loopDev is an attached loop device: which file it shows, and which bytes
// of it.
type loopDev struct {
	name    string // "loop3"
	num     devNum
	backing string // the backing file's path (sysfs), "" if unknown
	backDev devNum // the backing file's device and inode
	backIno uint64
	rng     byteRange // lo_offset, lo_offset+lo_sizelimit
}

// describe is "/dev/loop3 (over /img/m.img, bytes 1048576-...)".
func (l loopDev) describe() string {
	s := "/dev/" + l.name
	if l.backing != "" {
		s += " (over " + l.backing
		if l.rng.start != 0 || l.rng.end != 0 {
			s += fmt.Sprintf(", from byte %d", l.rng.start)
			if l.rng.end != 0 {
				s += fmt.Sprintf(" to %d", l.rng.end)
			}
		}
		s += ")"
	}
	return s
}

// attachedLoops lists every attached loop device. A loop device whose
// backing file cannot be identified is listed with backIno 0: callers
// treat it as unknown.
func attachedLoops() []loopDev {
	dirs, _ := filepath.Glob("/sys/block/loop*")
	var out []loopDev
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "loop")); err != nil {
			continue // not attached
		}
		name := filepath.Base(dir)
		num, err := sysDevNum(filepath.Join(dir, "dev"))
		if err != nil {
			continue
		}
		if l, ok := readLoop(name, num); ok {
			out = append(out, l)
		}
	}
	return out
}

// readLoop reads what loop device name shows: LOOP_GET_STATUS64 (device,
// inode, offset, size limit), else sysfs and a stat of the backing file's
// path.
func readLoop(name string, num devNum) (loopDev, bool) {
	l := loopDev{name: name, num: num}
	sys := filepath.Join("/sys/dev/block", num.String(), "loop")
	if b, err := os.ReadFile(filepath.Join(sys, "backing_file")); err == nil {
		l.backing = strings.TrimSuffix(strings.TrimRight(string(b), "\n"), " (deleted)")
	}
	if f, err := os.Open("/dev/" + name); err == nil {
		info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
		f.Close()
		if err == nil {
			l.backDev, l.backIno = devOf(info.Device), info.Inode
			l.rng = byteRange{info.Offset, 0}
			if info.Sizelimit != 0 {
				l.rng.end = info.Offset + info.Sizelimit
			}
			return l, true
		}
	}
	if l.backing == "" {
		return l, false
	}
	var st unix.Stat_t
	if err := unix.Stat(l.backing, &st); err != nil {
		return l, false
	}
	l.backDev, l.backIno = devOf(st.Dev), st.Ino
	off, _ := readSysUint(filepath.Join(sys, "offset"))
	lim, _ := readSysUint(filepath.Join(sys, "sizelimit"))
	l.rng = byteRange{off, 0}
	if lim != 0 {
		l.rng.end = off + lim
	}
	return l, true
}

func readSysUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// loopBehind says which file and bytes the block device num shows when it is a
// loop device or a partition of one (sysfs "start" gives the partition's
// first sector).
func loopBehind(num devNum) (loopDev, bool) {
	dir := filepath.Join("/sys/dev/block", num.String())
	var partStart uint64
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		s, err := readSysUint(filepath.Join(dir, "start"))
		if err != nil {
			return loopDev{}, false
		}
		partStart = s * 512
		pnum, err := sysDevNum(filepath.Join(dir, "..", "dev"))
		if err != nil {
			return loopDev{}, false
		}
		dir = filepath.Join("/sys/dev/block", pnum.String())
		num = pnum
	}
	if _, err := os.Stat(filepath.Join(dir, "loop")); err != nil {
		return loopDev{}, false
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return loopDev{}, false
	}
	l, ok := readLoop(filepath.Base(real), num)
	if !ok {
		return l, false
	}
	l.rng.start += partStart
	return l, true
}

// parentDisk returns the whole disk of a partition (sysfs), if num is one.
func parentDisk(num devNum) (blockDev, bool) {
	dir := filepath.Join("/sys/dev/block", num.String())
	if _, err := os.Stat(filepath.Join(dir, "partition")); err != nil {
		return blockDev{}, false
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, ".."))
	if err != nil {
		return blockDev{}, false
	}
	pnum, err := sysDevNum(filepath.Join(real, "dev"))
	if err != nil {
		return blockDev{}, false
	}
	return blockDev{filepath.Base(real), pnum}, true
}

// checkBlockInUse refuses a block device that is mounted or held, or one
// whose bytes are also reachable through a device that is: the whole disk
// of a partition, and for a loop device every other loop device over the
// same backing file whose range overlaps its own.
func checkBlockInUse(path string, rdev uint64) error {
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	num := devOf(rdev)
	if err := inUse(mounts, num, path, func(w string) string { return w }); err != nil {
		return err
	}
	if p, ok := parentDisk(num); ok {
		if mps := mounts[p.num]; len(mps) > 0 {
			return fmt.Errorf("%s is a partition of /dev/%s, which is %w on %s: unmount it first", path, p.name, ErrMounted, strings.Join(mps, ", "))
		}
	}
	l, ok := loopBehind(num)
	if !ok || l.backIno == 0 {
		return nil
	}
	_, err = checkLoopsOver(mounts, l.backDev, l.backIno, l.rng, num,
		func(w string) string { return path + " shows the bytes of " + l.backing + ", as does " + w + ", which" })
	return err
}

// checkLoopsOver refuses when a loop device (other than except) shows
// bytes of the file (dev, ino) that overlap rng and is mounted or held;
// it returns the other loop devices over those bytes.
func checkLoopsOver(mounts map[devNum][]string, dev devNum, ino uint64, rng byteRange, except devNum,
	lead func(what string) string) ([]loopDev, error) {
	var others []loopDev
	for _, l := range attachedLoops() {
		if l.num == except || l.backDev != dev || l.backIno != ino || !l.rng.overlaps(rng) {
			continue
		}
		if mounts == nil {
			var err error
			if mounts, err = mountPoints(); err != nil {
				return nil, err
			}
		}
		if err := inUse(mounts, l.num, l.describe(), lead); err != nil {
			return nil, err
		}
		others = append(others, l)
	}
	return others, nil
}

// checkFileInUse refuses an image file one of whose loop devices (over
// bytes overlapping rng) is mounted or held, and returns those loop devices
// otherwise.
func checkFileInUse(path string, st *unix.Stat_t, rng byteRange) ([]loopDev, error) {
	return checkLoopsOver(nil, devOf(st.Dev), st.Ino, rng, devNum{},
		func(w string) string { return path + " is attached to " + w + ", which" })
}
