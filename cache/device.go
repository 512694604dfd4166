// Package cache owns the device and the two caches of xfsfree: the block
// device or image file (O_DIRECT aligned reads and writes, exclusive open,
// size and sector size, the refusal of mounted devices and images), the
// buffer cache (metadata buffers by daddr and length, bounded memory, one
// lock holder at a time, DIRTY and STALE, attached log items, verifiers run
// on every read, stamps on every write) and the inode cache (per AG by
// agino: ILOCK, flush lock, STALE and RECLAIMING flags, dirty fields).
//
// Lock order, as the kernel's: an inode's ILOCK is waited for only while
// no buffer lock is held (ILOCK → AGI → AGFs by ascending AG → other
// buffers); under a buffer lock an ILOCK is only tried (the cluster free,
// the writeback's flush), and the flush lock comes after the ILOCK. The
// inode flags lock is a leaf lock: nothing blocking is done while it is
// held.
//
// Addresses are daddrs: 512-byte units (BBs) from the start of the device,
// as the kernel's xfs_daddr_t.
package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ncw/directio"
	"golang.org/x/sys/unix"
)

// BBSize is the size of a basic block (BB), the unit of a daddr.
const BBSize = 512

// Errors returned by the device.
var (
	// ErrMounted is wrapped by Open's error when the device, or the loop
	// device an image file is attached to, is mounted.
	ErrMounted = errors.New("mounted")
	// ErrBusy is wrapped by Open's error when the device is held
	// exclusively by someone else (a mount, device-mapper, md, or another
	// xfsfree).
	ErrBusy = errors.New("in use")
	// ErrReadOnly is returned by writes to a device opened ReadOnly.
	ErrReadOnly = errors.New("device opened read-only")
	// ErrNoDirectIO is wrapped by Open's error when the file system holding
	// an image does not support O_DIRECT (tmpfs, some FUSE file systems).
	ErrNoDirectIO = errors.New("O_DIRECT not supported")
)

// OpenOptions says how Open opens a device.
type OpenOptions struct {
	// ReadOnly opens the device read-only; every write fails with ErrReadOnly.
	ReadOnly bool
	// Buffered opens the device without O_DIRECT: reads and writes go
	// through the page cache (needed on tmpfs). Durability still comes
	// from Sync (fdatasync).
	Buffered bool
	// Offset and Size restrict the device to a byte range — a partition
	// of a whole-disk image or device: every daddr is relative to Offset,
	// nothing outside [Offset, Offset+Size) is ever read into a buffer or
	// written, and Size() reports Size. Size 0 means "to the end of the
	// device". Both must be multiples of 512; with O_DIRECT, Offset must
	// be a multiple of the I/O alignment (range.go). The mounted check
	// covers only mounts of overlapping bytes.
	Offset, Size int64
}

// WriteHook is called before every device write with the write's daddr
// and a private copy of its bytes. It returns whether the write is to be
// done; a non-nil error fails the write with that error. The hook may change
// b (for instance to tear the write: keep its first sectors and put back the
// old contents of the rest, read with ReadAt); the bytes of b are what is
// written. The hook may be called from several goroutines at once.
type WriteHook func(daddr int64, b []byte) (write bool, err error)

// DeviceStats are the device's I/O counters.
type DeviceStats struct {
	Reads         int64 // read system calls
	Writes        int64 // write system calls
	BytesRead     int64
	BytesWritten  int64
	Syncs         int64
	DroppedWrites int64 // writes a WriteHook said not to do
	RMWWrites     int64 // writes smaller than the I/O alignment (read-modify-write)
}

// Device is an open block device or image file. It is safe for concurrent
// use. Reads and writes are in BBs at daddrs; with O_DIRECT the device
// rounds them to its I/O alignment and uses aligned memory.
type Device struct {
	f        *os.File
	fd       int
	path     string
	size     int64 // bytes of the range the device is restricted to (all of it by default)
	base     int64 // byte offset of that range (OpenOptions.Offset)
	devSize  int64 // bytes of the whole file or block device
	sector   int   // logical sector size
	align    int   // I/O offset and length alignment
	isBlock  bool
	readOnly bool
	buffered bool
	attached []string   // loop devices the image is attached to (not mounted)
	holds    []*os.File // the one-writer locks and loop guards (exclusive.go)

	// wmu: aligned writes take it shared; read-modify-write takes it
	// exclusively, so no write can land between its read and its write.
	wmu  sync.RWMutex
	hook atomic.Pointer[WriteHook]

	reads, writes, bread, bwritten, syncs, dropped, rmw atomic.Int64
}

// Open opens a block device or an image file for xfsfree. It refuses a
// device whose bytes a mounted filesystem uses, by any path (mounted.go: the
// device, a partition of it or its whole disk, another loop device over the
// same bytes, a loop device over the image file), and takes the
// one-writer-per-filesystem locks (exclusive.go): a writer excludes every
// other xfsfree on the same bytes, through the image file or any loop
// device over it. Block devices are opened with O_EXCL, which the kernel
// makes an exclusive claim: a later mount fails while xfsfree holds it; a
// writer on an image file holds the idle loop devices over it the same way.
func Open(path string, opts OpenOptions) (*Device, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	sys, _ := st.Sys().(*unix.Stat_t)
	if sys == nil {
		// os.Stat on Linux always gives a syscall.Stat_t; be defensive.
		var s unix.Stat_t
		if err := unix.Stat(path, &s); err != nil {
			return nil, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		sys = &s
	}
	d := &Device{path: path, readOnly: opts.ReadOnly, buffered: opts.Buffered}
	mode := st.Mode()
	var loops []loopDev
	switch {
	case mode&os.ModeDevice != 0 && mode&os.ModeCharDevice == 0:
		d.isBlock = true
		if err := checkBlockInUse(path, sys.Rdev); err != nil {
			return nil, err
		}
	case mode.IsRegular():
		if loops, err = checkFileInUse(path, sys, opts.byteRange()); err != nil {
			return nil, err
		}
		for _, l := range loops {
			d.attached = append(d.attached, "/dev/"+l.name)
		}
	default:
		return nil, fmt.Errorf("%s: not a block device or regular file", path)
	}

	flags := os.O_RDWR
	if opts.ReadOnly {
		flags = os.O_RDONLY
	}
	if d.isBlock {
		flags |= unix.O_EXCL
	}
	var f *os.File
	if opts.Buffered {
		f, err = os.OpenFile(path, flags, 0)
	} else {
		f, err = directio.OpenFile(path, flags, 0)
	}
	if err != nil {
		switch {
		case errors.Is(err, unix.EBUSY):
			// Re-check: the device may have been mounted since.
			if cerr := checkBlockInUse(path, sys.Rdev); cerr != nil {
				return nil, cerr
			}
			holder := flockHolder(devOf(sys.Dev), sys.Ino)
			if holder == "" {
				holder = "someone else (a mount, device-mapper, md, or another xfsfree)"
			}
			return nil, fmt.Errorf("%s is %w: it is held exclusively by %s: release it first", path, ErrBusy, holder)
		case errors.Is(err, unix.EINVAL) && !opts.Buffered:
			return nil, fmt.Errorf("%s: %w by the file system holding it (tmpfs?): use --buffered", path, ErrNoDirectIO)
		}
		return nil, err
	}
	d.f = f
	d.fd = int(f.Fd())
	if err := d.claim(path, loops); err != nil {
		f.Close()
		return nil, err
	}
	if err := d.setup(sys); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.restrict(opts.Offset, opts.Size); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *Device) setup(st *unix.Stat_t) error {
	if d.isBlock {
		var size uint64
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
			return fmt.Errorf("%s: BLKGETSIZE64: %w", d.path, e)
		}
		ss, err := unix.IoctlGetInt(d.fd, unix.BLKSSZGET)
		if err != nil {
			return fmt.Errorf("%s: BLKSSZGET: %w", d.path, err)
		}
		if ss < BBSize || ss&(ss-1) != 0 {
			return fmt.Errorf("%s: logical sector size %d", d.path, ss)
		}
		d.size, d.sector, d.align = int64(size), ss, ss
	} else {
		d.size, d.sector = st.Size, BBSize
		d.align = directio.BlockSize // 4096: always safe for O_DIRECT
		var sx unix.Statx_t
		if err := unix.Statx(d.fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &sx); err == nil &&
			sx.Mask&unix.STATX_DIOALIGN != 0 && sx.Dio_offset_align != 0 {
			a := int(sx.Dio_offset_align)
			if a < BBSize {
				a = BBSize
			}
			if a&(a-1) == 0 && a <= directio.AlignSize*16 {
				d.align = a
			}
		}
	}
	if d.buffered {
		d.align = BBSize
	}
	return nil
}

// Path is the path the device was opened with.
func (d *Device) Path() string { return d.path }

// Size is the device's size in bytes.
func (d *Device) Size() int64 { return d.size }

// sizeBBs is the device's size in BBs.
func (d *Device) sizeBBs() int64 { return d.size / BBSize }

// SectorSize is the logical sector size: BLKSSZGET for a block device,
// 512 for an image file.
func (d *Device) SectorSize() int { return d.sector }

// IOAlign is the alignment of every I/O's offset and length: the logical
// sector size of a block device, the O_DIRECT alignment of an image's file
// system (statx STATX_DIOALIGN, else 4096), 512 when buffered.
func (d *Device) IOAlign() int { return d.align }

// isBlockDevice reports whether the device is a block device (not a file).
func (d *Device) isBlockDevice() bool { return d.isBlock }

// ReadOnly reports whether the device was opened read-only.
func (d *Device) ReadOnly() bool { return d.readOnly }

// Buffered reports whether the device was opened without O_DIRECT.
func (d *Device) Buffered() bool { return d.buffered }

// AttachedLoops lists the loop devices (/dev/loopN) an image file is
// attached to without being mounted or held. Open allows this; the CLI
// should warn that the loop device must not be mounted while xfsfree runs.
func (d *Device) AttachedLoops() []string { return append([]string(nil), d.attached...) }

// SetWriteHook installs h (nil removes it). For crash-injection tests.
func (d *Device) SetWriteHook(h WriteHook) {
	if h == nil {
		d.hook.Store(nil)
		return
	}
	d.hook.Store(&h)
}

// Stats returns the I/O counters.
func (d *Device) Stats() DeviceStats {
	return DeviceStats{
		Reads: d.reads.Load(), Writes: d.writes.Load(),
		BytesRead: d.bread.Load(), BytesWritten: d.bwritten.Load(),
		Syncs: d.syncs.Load(), DroppedWrites: d.dropped.Load(), RMWWrites: d.rmw.Load(),
	}
}

func (d *Device) checkRange(op string, daddr int64, n int) error {
	if daddr < 0 || n <= 0 || n%BBSize != 0 {
		return fmt.Errorf("%s %s: bad range daddr %d, %d bytes", d.path, op, daddr, n)
	}
	if daddr > d.size/BBSize || d.size-daddr*BBSize < int64(n) {
		return fmt.Errorf("%s %s: daddr %d + %d BBs is beyond the end of the device (%d BBs): %w",
			d.path, op, daddr, n/BBSize, d.size/BBSize, io.ErrUnexpectedEOF)
	}
	return nil
}

// alignedMem reports whether b can be used for O_DIRECT as is.
func (d *Device) alignedMem(b []byte) bool {
	return d.buffered || uintptr(unsafe.Pointer(&b[0]))&(directio.AlignSize-1) == 0
}

// allocIO returns a buffer of n bytes suitable for I/O on d.
func (d *Device) allocIO(n int) []byte {
	if d.buffered {
		return make([]byte, n)
	}
	return directio.AlignedBlock(n)
}

// ReadAt reads nBB BBs at daddr into a new buffer (aligned for O_DIRECT
// when the range is aligned).
func (d *Device) ReadAt(daddr int64, nBB int) ([]byte, error) {
	if err := d.checkRange("read", daddr, nBB*BBSize); err != nil {
		return nil, err
	}
	b := d.allocIO(nBB * BBSize)
	if err := d.readInto(daddr, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ReadInto reads len(b) bytes (a multiple of 512) at daddr into b.
func (d *Device) ReadInto(daddr int64, b []byte) error {
	if err := d.checkRange("read", daddr, len(b)); err != nil {
		return err
	}
	return d.readInto(daddr, b)
}

func (d *Device) readInto(daddr int64, b []byte) error {
	off := d.base + daddr*BBSize
	a := int64(d.align)
	start := off &^ (a - 1)
	end := (off + int64(len(b)) + a - 1) &^ (a - 1)
	if start == off && end == off+int64(len(b)) && d.alignedMem(b) {
		return d.pread(b, off, len(b))
	}
	tmp := d.allocIO(int(end - start))
	if err := d.pread(tmp, start, int(off-start)+len(b)); err != nil {
		return err
	}
	copy(b, tmp[off-start:])
	return nil
}

// pread reads len(b) bytes at off; at least need of them must be there
// (the rest is alignment slack past the end of an image file).
func (d *Device) pread(b []byte, off int64, need int) error {
	n, err := d.f.ReadAt(b, off)
	d.reads.Add(1)
	d.bread.Add(int64(n))
	if err == io.EOF && n >= need {
		clear(b[n:])
		err = nil
	}
	if err != nil {
		return fmt.Errorf("%s: read at daddr %d (%d bytes): %w", d.path, (off-d.base)/BBSize, len(b), err)
	}
	return nil
}

// WriteAt writes b (a multiple of 512 bytes) at daddr. A write smaller
// than the I/O alignment is a read-modify-write of the enclosing range,
// serialized against every other write.
func (d *Device) WriteAt(daddr int64, b []byte) error {
	if d.readOnly {
		return fmt.Errorf("%s: write at daddr %d: %w", d.path, daddr, ErrReadOnly)
	}
	if err := d.checkRange("write", daddr, len(b)); err != nil {
		return err
	}
	if h := d.hook.Load(); h != nil {
		cp := d.allocIO(len(b))
		copy(cp, b)
		write, err := (*h)(daddr, cp)
		if err != nil {
			return err
		}
		if !write {
			d.dropped.Add(1)
			return nil
		}
		if len(cp) != len(b) {
			return fmt.Errorf("%s: write hook changed the length of the write at daddr %d", d.path, daddr)
		}
		b = cp
	}
	off := d.base + daddr*BBSize
	a := int64(d.align)
	start := off &^ (a - 1)
	end := (off + int64(len(b)) + a - 1) &^ (a - 1)
	if start == off && end == off+int64(len(b)) {
		d.wmu.RLock()
		defer d.wmu.RUnlock()
		if !d.alignedMem(b) {
			cp := d.allocIO(len(b))
			copy(cp, b)
			b = cp
		}
		return d.pwrite(b, off)
	}
	// Read-modify-write of the enclosing aligned range, which must not
	// leave the range the device is restricted to.
	if err := d.checkRMW(daddr, start, end); err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.rmw.Add(1)
	tmp := d.allocIO(int(end - start))
	if err := d.pread(tmp, start, int(off-start)+len(b)); err != nil {
		return err
	}
	copy(tmp[off-start:], b)
	// Do not extend an image file with the alignment slack.
	if end > d.devSize && !d.isBlock {
		if d.buffered {
			tmp = tmp[:d.devSize-start]
		} else {
			return fmt.Errorf("%s: write at daddr %d: image size %d is not a multiple of the O_DIRECT alignment %d: use --buffered", d.path, daddr, d.devSize, a)
		}
	}
	return d.pwrite(tmp, start)
}

func (d *Device) pwrite(b []byte, off int64) error {
	n, err := d.f.WriteAt(b, off)
	d.writes.Add(1)
	d.bwritten.Add(int64(n))
	if err != nil {
		return fmt.Errorf("%s: write at daddr %d (%d bytes): %w", d.path, (off-d.base)/BBSize, len(b), err)
	}
	return nil
}

// Sync makes every completed write durable (fdatasync).
func (d *Device) Sync() error {
	d.syncs.Add(1)
	rc, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = unix.Fdatasync(int(fd))
			if serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return fmt.Errorf("%s: fdatasync: %w", d.path, err)
	}
	if serr != nil {
		return fmt.Errorf("%s: fdatasync: %w", d.path, serr)
	}
	return nil
}

// Close closes the device and releases its exclusive claim and locks.
func (d *Device) Close() error {
	err := d.f.Close()
	d.release()
	return err
}

// flockBriefly takes the flock without blocking, retrying for a moment:
// a lock the process itself just released can still be held by a child it
// is starting (between fork and exec the child shares the open file
// description, and so the lock, until close-on-exec drops it).
func flockBriefly(fd, lock int) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := unix.Flock(fd, lock|unix.LOCK_NB)
		if err == nil || !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
