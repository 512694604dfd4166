package cache

// A device restricted to a byte range: a partition of a whole-disk image or
// device (OpenOptions.Offset, Size). Every daddr is relative to the range's
// start and checked against its size (checkRange), so a read or write can
// never leave it; a read-modify-write whose aligned enclosure would leave
// it is refused (checkRMW).

import "fmt"

// byteRange is the range of the backing file's bytes the mounted check
// looks at (end 0: to the end): checkFileInUse refuses an image file only
// when a mounted or held loop device shows bytes that overlap it.
//
// TODO(mounted.go): checkBlockInUse takes no range. For a block device
// opened with Offset/Size (a whole-disk loop device with --partition N) the
// loop devices over the same backing file are checked against the block
// device's whole range, which refuses more than it must (a mount of another
// partition of the same disk image); narrowing that needs a byteRange
// parameter there, shifted by the loop device's own lo_offset.
func (o OpenOptions) byteRange() byteRange {
	r := byteRange{start: uint64(max(o.Offset, 0))}
	if o.Size > 0 {
		r.end = r.start + uint64(o.Size)
	}
	return r
}

// restrict sets the range, once setup has measured the device.
func (d *Device) restrict(off, size int64) error {
	d.devSize = d.size
	if off == 0 && size == 0 {
		return nil
	}
	switch {
	case off < 0 || size < 0:
		return fmt.Errorf("%s: offset %d, size %d: negative", d.path, off, size)
	case off%BBSize != 0 || size%BBSize != 0:
		return fmt.Errorf("%s: offset %d, size %d: not multiples of %d bytes", d.path, off, size, BBSize)
	case off%int64(d.sector) != 0:
		return fmt.Errorf("%s: offset %d is not a multiple of the device's %d-byte logical sectors", d.path, off, d.sector)
	case off >= d.devSize:
		return fmt.Errorf("%s: offset %d is beyond the end of the device (%d bytes)", d.path, off, d.devSize)
	case size > d.devSize-off:
		return fmt.Errorf("%s: bytes %d..%d (offset %d, size %d) go beyond the end of the device (%d bytes)",
			d.path, off, off+size-1, off, size, d.devSize)
	case !d.buffered && off%int64(d.align) != 0:
		return fmt.Errorf("%s: offset %d is not a multiple of the O_DIRECT alignment (%d bytes): use --buffered", d.path, off, d.align)
	}
	if size == 0 {
		size = d.devSize - off
	}
	d.base, d.size = off, size
	return nil
}

// Offset is the byte offset on the file or block device of the range the
// device is restricted to (0 for the whole device).
func (d *Device) Offset() int64 { return d.base }

// checkRMW refuses a read-modify-write whose aligned enclosure
// [start, end) (absolute byte offsets) would rewrite bytes outside the
// range, which happens only with O_DIRECT when the range's end is not
// aligned to the I/O alignment.
func (d *Device) checkRMW(daddr, start, end int64) error {
	if d.base == 0 && d.size == d.devSize {
		return nil
	}
	if start < d.base || end > d.base+d.size {
		return fmt.Errorf("%s: write at daddr %d: its %d-byte O_DIRECT alignment would rewrite bytes outside the partition (bytes %d..%d): use --buffered",
			d.path, daddr, d.align, d.base, d.base+d.size-1)
	}
	return nil
}
