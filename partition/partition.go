// Package partition reads the partition table of a whole-disk image or
// device — GPT (with its protective MBR, 512 or 4096-byte logical sectors,
// the backup header when the primary is corrupt) or MBR (primary, extended
// and logical partitions) — verifies it (header and entry-array CRC32s,
// every partition inside the disk, none overlapping), lists the partitions
// and tells which hold XFS (the superblock magic at the partition's start;
// the GPT type GUID is shown but never trusted). It knows nothing else of
// XFS and does no I/O beyond the io.ReaderAt it is given (Open opens a path
// read-only for it).
//
// Sizes and offsets are in bytes; LBAs are in logical sectors.
package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/xfsfree/xfsfree/ondisk"
)

// Table schemes.
const (
	GPT = "gpt"
	MBR = "mbr"
)

var (
	// ErrNoTable is returned by Read when the disk has neither an MBR
	// boot signature nor a GPT header.
	ErrNoTable = errors.New("no partition table")
	// ErrCorrupt is wrapped by Read's error when the table is there but
	// is nonsense (bad CRCs, partitions outside the disk or overlapping,
	// a looping EBR chain).
	ErrCorrupt = errors.New("corrupt partition table")
)

// Partition is one partition of a table.
type Partition struct {
	Number   int    `json:"number"` // as Linux numbers it: GPT entry index + 1; MBR 1-4 primary, 5- logical
	Start    int64  `json:"start"`  // bytes from the start of the disk
	Size     int64  `json:"size"`   // bytes
	Type     string `json:"type"`   // GPT type GUID, or the MBR type byte as "0x83"
	TypeName string `json:"type_name,omitempty"`
	Label    string `json:"label,omitempty"` // GPT partition name
	UUID     string `json:"uuid,omitempty"`  // GPT unique partition GUID
	Bootable bool   `json:"bootable,omitempty"`
	XFS      bool   `json:"xfs"` // the XFS superblock magic is at its start
}

// Table is a disk's partition table.
type Table struct {
	Scheme     string      `json:"scheme"` // GPT or MBR
	SectorSize int         `json:"sector_size"`
	DiskGUID   string      `json:"disk_guid,omitempty"`
	Partitions []Partition `json:"partitions"` // by number
	// Notes say what was unusual but usable: a corrupt primary GPT header
	// (the backup was read), a backup header not at the end of the disk.
	Notes []string `json:"notes,omitempty"`
}

// XFS returns the partitions that hold XFS.
func (t *Table) XFS() []Partition {
	var ps []Partition
	for _, p := range t.Partitions {
		if p.XFS {
			ps = append(ps, p)
		}
	}
	return ps
}

// Lookup returns partition number n.
func (t *Table) Lookup(n int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// disk is the sector view of the ReaderAt being read.
type disk struct {
	r        io.ReaderAt
	size     int64
	ss       int
	nSectors uint64
}

func newDisk(r io.ReaderAt, size int64, ss int) *disk {
	return &disk{r: r, size: size, ss: ss, nSectors: uint64(size / int64(ss))}
}

// sectors reads n sectors at lba.
func (d *disk) sectors(lba, n uint64) ([]byte, error) {
	if lba >= d.nSectors || n > d.nSectors-lba {
		return nil, fmt.Errorf("%w: sectors %d..%d are beyond the end of the disk (%d sectors of %d bytes)",
			ErrCorrupt, lba, lba+n-1, d.nSectors, d.ss)
	}
	b := make([]byte, n*uint64(d.ss))
	if _, err := d.r.ReadAt(b, int64(lba)*int64(d.ss)); err != nil && !(errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("read at LBA %d: %w", lba, err)
	}
	return b, nil
}

// HasXFS reports whether the XFS superblock magic is at byte off of r.
func HasXFS(r io.ReaderAt, off int64) (bool, error) {
	var b [4]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, err
	}
	return binary.BigEndian.Uint32(b[:]) == ondisk.SBMagic, nil
}

// Read reads and verifies the partition table of a disk of size bytes
// read through r, and marks the partitions that hold XFS. sectorSize is
// the disk's logical sector size (a block device's BLKSSZGET); 0 means
// unknown (an image file): GPT is then looked for with 512 and 4096-byte
// sectors, and an MBR is read with 512-byte sectors. It returns an error
// wrapping ErrNoTable when there is no table, and one wrapping ErrCorrupt
// when the table is nonsense.
func Read(r io.ReaderAt, size int64, sectorSize int) (*Table, error) {
	sizes := []int{sectorSize}
	if sectorSize == 0 {
		sizes = []int{512, 4096}
	}
	for _, ss := range sizes {
		if ss < 512 || ss&(ss-1) != 0 || ss > 65536 {
			return nil, fmt.Errorf("logical sector size %d: not a power of 2 from 512 to 65536", ss)
		}
	}
	if size < int64(2*sizes[0]) {
		return nil, fmt.Errorf("%w: %d bytes: too small for a partition table", ErrNoTable, size)
	}
	d0 := newDisk(r, size, sizes[0])
	first, err := d0.sectors(0, 1)
	if err != nil {
		return nil, err
	}
	entries, signed := DecodeMBR(first)
	var t *Table
	if signed && !isProtective(entries) {
		t, err = readMBR(d0, entries)
	} else {
		t, err = readAnyGPT(r, size, sizes)
		if errors.Is(err, errNoGPT) {
			if signed {
				return nil, fmt.Errorf("%w: the MBR is a protective one (type 0xee: GPT), but there is no GPT header (primary or backup) with %v-byte sectors", ErrCorrupt, sizes)
			}
			return nil, ErrNoTable
		}
	}
	if err != nil {
		return nil, err
	}
	if err := t.check(size); err != nil {
		return nil, err
	}
	for i := range t.Partitions {
		p := &t.Partitions[i]
		if p.XFS, err = HasXFS(r, p.Start); err != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Number, err)
		}
	}
	return t, nil
}

// readAnyGPT tries each sector size in turn; errNoGPT if none has a GPT
// signature, else the first success or the error of the first size that
// had one.
func readAnyGPT(r io.ReaderAt, size int64, sizes []int) (*Table, error) {
	var first error
	for _, ss := range sizes {
		if size < int64(3*ss) {
			continue
		}
		t, err := readGPT(newDisk(r, size, ss))
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, errNoGPT) && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return nil, errNoGPT
}

// check refuses partitions that overlap or leave the disk, and sorts them
// by number.
func (t *Table) check(size int64) error {
	ps := append([]Partition(nil), t.Partitions...)
	sort.Slice(ps, func(i, j int) bool { return ps[i].Start < ps[j].Start })
	for i, p := range ps {
		if p.Size <= 0 || p.Start < 0 || p.Start > size-p.Size {
			return fmt.Errorf("%w: partition %d (bytes %d..%d) is not inside the disk (%d bytes)", ErrCorrupt, p.Number, p.Start, p.Start+p.Size-1, size)
		}
		if i > 0 && ps[i-1].Start+ps[i-1].Size > p.Start {
			q := ps[i-1]
			return fmt.Errorf("%w: partitions %d (bytes %d..%d) and %d (bytes %d..%d) overlap", ErrCorrupt,
				q.Number, q.Start, q.Start+q.Size-1, p.Number, p.Start, p.Start+p.Size-1)
		}
	}
	sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].Number < t.Partitions[j].Number })
	return nil
}
