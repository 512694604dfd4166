package partition

// The MBR (DOS) partition table: four primary entries in sector 0, and an
// extended partition holding a chain of EBRs, each describing one logical
// partition and the next EBR. Logical partitions are numbered from 5 in
// chain order, as Linux numbers them. All fields are little-endian.

import (
	"encoding/binary"
	"fmt"
)

// MBR layout.
const (
	mbrEntriesOff = 446
	mbrEntrySize  = 16
	mbrSigOff     = 510
	mbrMaxLogical = 128 // a longer EBR chain is refused as nonsense
)

// MBR partition types that matter here.
const (
	MBRTypeEmpty       = 0x00
	MBRTypeExtended    = 0x05
	MBRTypeExtendedLBA = 0x0f
	MBRTypeLinuxExt    = 0x85
	MBRTypeLinux       = 0x83
	MBRTypeProtective  = 0xee // the protective MBR of a GPT disk
)

// MBREntry is one 16-byte partition entry of an MBR or EBR.
type MBREntry struct {
	Boot     byte
	Type     byte
	StartLBA uint32 // relative: to the disk (MBR), the EBR or the extended partition (EBR)
	Sectors  uint32
}

func (e MBREntry) extended() bool {
	return e.Type == MBRTypeExtended || e.Type == MBRTypeExtendedLBA || e.Type == MBRTypeLinuxExt
}

func (e MBREntry) empty() bool { return e.Type == MBRTypeEmpty || e.Sectors == 0 }

// DecodeMBR decodes the four entries of an MBR or EBR sector and reports
// whether it carries the 0x55AA boot signature.
func DecodeMBR(b []byte) (entries [4]MBREntry, signed bool) {
	if len(b) < 512 {
		return entries, false
	}
	for i := range entries {
		p := b[mbrEntriesOff+i*mbrEntrySize:]
		entries[i] = MBREntry{Boot: p[0], Type: p[4], StartLBA: binary.LittleEndian.Uint32(p[8:]), Sectors: binary.LittleEndian.Uint32(p[12:])}
	}
	return entries, b[mbrSigOff] == 0x55 && b[mbrSigOff+1] == 0xaa
}

// EncodeMBR returns a 512-byte MBR or EBR sector holding entries and the
// boot signature (CHS fields set to the LBA-only marker 0xFFFFFE).
func EncodeMBR(entries [4]MBREntry) []byte {
	b := make([]byte, 512)
	for i, e := range entries {
		if e.Type == MBRTypeEmpty && e.Sectors == 0 {
			continue
		}
		p := b[mbrEntriesOff+i*mbrEntrySize:]
		p[0], p[4] = e.Boot, e.Type
		copy(p[1:4], []byte{0xfe, 0xff, 0xff})
		copy(p[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(p[8:], e.StartLBA)
		binary.LittleEndian.PutUint32(p[12:], e.Sectors)
	}
	b[mbrSigOff], b[mbrSigOff+1] = 0x55, 0xaa
	return b
}

// isProtective reports whether an MBR's entries say "GPT" (a protective or
// hybrid MBR).
func isProtective(entries [4]MBREntry) bool {
	for _, e := range entries {
		if e.Type == MBRTypeProtective {
			return true
		}
	}
	return false
}

// readMBR reads the primary partitions of the MBR entries and the logical
// partitions of each extended partition.
func readMBR(d *disk, entries [4]MBREntry) (*Table, error) {
	t := &Table{Scheme: MBR, SectorSize: d.ss}
	next := 5
	for i, e := range entries {
		if e.empty() {
			continue
		}
		n := i + 1
		start, size := uint64(e.StartLBA), uint64(e.Sectors)
		if start == 0 || start+size > d.nSectors {
			return nil, fmt.Errorf("%w: MBR partition %d: sectors %d..%d are not inside the disk (%d sectors)",
				ErrCorrupt, n, start, start+size-1, d.nSectors)
		}
		if !e.extended() {
			t.Partitions = append(t.Partitions, mbrPartition(d, n, e, start, size))
			continue
		}
		logical, err := readEBRChain(d, n, start, size, &next)
		if err != nil {
			return nil, err
		}
		t.Partitions = append(t.Partitions, logical...)
	}
	return t, nil
}

func mbrPartition(d *disk, n int, e MBREntry, start, size uint64) Partition {
	ty := fmt.Sprintf("0x%02x", e.Type)
	return Partition{Number: n, Start: int64(start) * int64(d.ss), Size: int64(size) * int64(d.ss),
		Type: ty, TypeName: mbrTypeNames[e.Type], Bootable: e.Boot == 0x80}
}

// readEBRChain follows the EBRs of the extended partition n (sectors
// [extStart, extStart+extSize)), numbering the logical partitions from
// *next on.
func readEBRChain(d *disk, n int, extStart, extSize uint64, next *int) ([]Partition, error) {
	var parts []Partition
	extEnd := extStart + extSize
	seen := map[uint64]bool{}
	for ebr := extStart; ; {
		if seen[ebr] {
			return nil, fmt.Errorf("%w: MBR extended partition %d: the EBR chain loops back to sector %d", ErrCorrupt, n, ebr)
		}
		if len(seen) == mbrMaxLogical {
			return nil, fmt.Errorf("%w: MBR extended partition %d: more than %d logical partitions", ErrCorrupt, n, mbrMaxLogical)
		}
		seen[ebr] = true
		sect, err := d.sectors(ebr, 1)
		if err != nil {
			return nil, err
		}
		es, signed := DecodeMBR(sect)
		if !signed {
			if ebr == extStart {
				return parts, nil // an extended partition with no logical partitions yet
			}
			return nil, fmt.Errorf("%w: MBR extended partition %d: the EBR at sector %d has no 0x55AA signature", ErrCorrupt, n, ebr)
		}
		if l := es[0]; !l.empty() {
			start, size := ebr+uint64(l.StartLBA), uint64(l.Sectors)
			if l.StartLBA == 0 || start+size > extEnd {
				return nil, fmt.Errorf("%w: MBR logical partition %d: sectors %d..%d are not inside its extended partition %d (sectors %d..%d)",
					ErrCorrupt, *next, start, start+size-1, n, extStart, extEnd-1)
			}
			parts = append(parts, mbrPartition(d, *next, l, start, size))
			*next++
		}
		var link MBREntry // the first extended entry links to the next EBR
		for _, e := range es[1:] {
			if !e.empty() && e.extended() {
				link = e
				break
			}
		}
		if link.empty() {
			return parts, nil
		}
		ebr = extStart + uint64(link.StartLBA)
		if ebr >= extEnd {
			return nil, fmt.Errorf("%w: MBR extended partition %d: the next EBR at sector %d is outside it (sectors %d..%d)",
				ErrCorrupt, n, ebr, extStart, extEnd-1)
		}
	}
}

// mbrTypeNames names the MBR partition types a Linux disk commonly has.
var mbrTypeNames = map[byte]string{
	0x07: "HPFS/NTFS/exFAT",
	0x0b: "W95 FAT32",
	0x0c: "W95 FAT32 (LBA)",
	0x82: "Linux swap",
	0x83: "Linux",
	0x8e: "Linux LVM",
	0xef: "EFI (FAT-12/16/32)",
	0xfd: "Linux raid autodetect",
}
