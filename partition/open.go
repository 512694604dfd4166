package partition

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Disk is a whole-disk image or block device opened read-only to look at
// its partition table.
type Disk struct {
	f          *os.File
	Size       int64 // bytes
	SectorSize int   // the block device's logical sector size; 0 for an image file
}

// OpenDisk opens path read-only (buffered I/O: only the table's sectors and
// each partition's first bytes are read).
func OpenDisk(path string) (*Disk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &Disk{f: f}
	if !st.Mode().IsRegular() && (st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0) {
		f.Close()
		return nil, fmt.Errorf("%s: not a block device or regular file", path)
	}
	if st.Mode()&os.ModeDevice != 0 {
		ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: BLKSSZGET: %w", path, err)
		}
		d.SectorSize = ss
	}
	if d.Size, err = f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

// ReadAt reads from the disk.
func (d *Disk) ReadAt(b []byte, off int64) (int, error) { return d.f.ReadAt(b, off) }

// Table reads the disk's partition table (see Read).
func (d *Disk) Table() (*Table, error) { return Read(d.f, d.Size, d.SectorSize) }

// WholeXFS reports whether the disk starts with an XFS superblock (a
// filesystem on the whole device, with no partition table).
func (d *Disk) WholeXFS() (bool, error) { return HasXFS(d.f, 0) }

// Close closes the disk.
func (d *Disk) Close() error { return d.f.Close() }
