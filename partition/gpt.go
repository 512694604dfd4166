package partition

// The GUID Partition Table (UEFI 2.10 §5.3): the header at LBA 1 and its
// backup at the last LBA, each with a CRC32 of itself and of the partition
// entry array it points at. All fields are little-endian.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf16"
)

// GPT layout.
const (
	gptSignature    = "EFI PART"
	gptRevision     = 0x00010000
	gptHeaderSize   = 92 // the header's defined fields; the rest of its sector is zero
	gptEntrySize    = 128
	gptNameChars    = 36 // UTF-16 code units of an entry's name
	gptMaxEntries   = 4096
	gptMaxArraySize = 1 << 20 // bytes: a larger entry array is refused as nonsense
)

// GUID is a GPT GUID as stored: the first three fields little-endian.
type GUID [16]byte

// String formats the GUID the way sfdisk and the UEFI spec do
// (0FC63DAF-8483-4772-8E79-3D69D8477DE4).
func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]), binary.LittleEndian.Uint16(g[6:8]), g[8:10], g[10:16])
}

// IsZero reports an unused entry's type GUID.
func (g GUID) IsZero() bool { return g == GUID{} }

// ParseGUID reads the String form (either case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	var a uint32
	var b, c uint16
	var d, e []byte
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("GUID %q: not of the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", s)
	}
	if _, err := fmt.Sscanf(parts[0]+" "+parts[1]+" "+parts[2]+" "+parts[3]+" "+parts[4], "%x %x %x %x %x", &a, &b, &c, &d, &e); err != nil {
		return g, fmt.Errorf("GUID %q: %v", s, err)
	}
	binary.LittleEndian.PutUint32(g[0:4], a)
	binary.LittleEndian.PutUint16(g[4:6], b)
	binary.LittleEndian.PutUint16(g[6:8], c)
	copy(g[8:10], d)
	copy(g[10:16], e)
	return g, nil
}

// GPTHeader is a GPT header (primary or backup).
type GPTHeader struct {
	Revision     uint32
	HeaderSize   uint32
	HeaderCRC    uint32
	MyLBA        uint64 // where this header is: 1 for the primary, the last LBA for the backup
	AlternateLBA uint64 // where the other one is
	FirstUsable  uint64
	LastUsable   uint64
	DiskGUID     GUID
	EntriesLBA   uint64 // first LBA of the partition entry array
	NumEntries   uint32
	EntrySize    uint32
	EntriesCRC   uint32
}

// GPTEntry is one entry of the partition entry array.
type GPTEntry struct {
	Type       GUID
	Unique     GUID
	FirstLBA   uint64
	LastLBA    uint64 // inclusive
	Attributes uint64
	Name       string
}

// DecodeGPTHeader decodes the header at the start of b (one sector) without
// verifying it.
func DecodeGPTHeader(b []byte) (*GPTHeader, error) {
	if len(b) < gptHeaderSize {
		return nil, fmt.Errorf("GPT header: %d bytes, want at least %d", len(b), gptHeaderSize)
	}
	if string(b[0:8]) != gptSignature {
		return nil, fmt.Errorf("GPT header: signature %q, want %q", b[0:8], gptSignature)
	}
	le := binary.LittleEndian
	h := &GPTHeader{
		Revision: le.Uint32(b[8:]), HeaderSize: le.Uint32(b[12:]), HeaderCRC: le.Uint32(b[16:]),
		MyLBA: le.Uint64(b[24:]), AlternateLBA: le.Uint64(b[32:]),
		FirstUsable: le.Uint64(b[40:]), LastUsable: le.Uint64(b[48:]),
		EntriesLBA: le.Uint64(b[72:]), NumEntries: le.Uint32(b[80:]), EntrySize: le.Uint32(b[84:]), EntriesCRC: le.Uint32(b[88:]),
	}
	copy(h.DiskGUID[:], b[56:72])
	return h, nil
}

// Encode returns the header as one sector of sectorSize bytes, its CRC
// computed (HeaderSize is taken as 92 when 0).
func (h *GPTHeader) Encode(sectorSize int) []byte {
	b := make([]byte, sectorSize)
	le := binary.LittleEndian
	copy(b, gptSignature)
	hs := h.HeaderSize
	if hs == 0 {
		hs = gptHeaderSize
	}
	le.PutUint32(b[8:], h.Revision)
	le.PutUint32(b[12:], hs)
	le.PutUint64(b[24:], h.MyLBA)
	le.PutUint64(b[32:], h.AlternateLBA)
	le.PutUint64(b[40:], h.FirstUsable)
	le.PutUint64(b[48:], h.LastUsable)
	copy(b[56:72], h.DiskGUID[:])
	le.PutUint64(b[72:], h.EntriesLBA)
	le.PutUint32(b[80:], h.NumEntries)
	le.PutUint32(b[84:], h.EntrySize)
	le.PutUint32(b[88:], h.EntriesCRC)
	le.PutUint32(b[16:], crc32.ChecksumIEEE(b[:hs]))
	return b
}

// Verify checks the header read from LBA lba of a disk of nSectors
// sectors of sectorSize bytes, sect being the whole sector it was read
// from: revision, header size, CRC, its own LBA, the usable range and the
// entry array's geometry (the array's CRC is checked by VerifyEntries).
func (h *GPTHeader) Verify(sect []byte, lba, nSectors uint64, sectorSize int) error {
	if h.Revision>>16 != 1 {
		return fmt.Errorf("revision %#x, want 1.x", h.Revision)
	}
	if h.HeaderSize < gptHeaderSize || int(h.HeaderSize) > sectorSize || int(h.HeaderSize) > len(sect) {
		return fmt.Errorf("header size %d, want %d..%d", h.HeaderSize, gptHeaderSize, sectorSize)
	}
	c := bytes.Clone(sect[:h.HeaderSize])
	clear(c[16:20])
	if got := crc32.ChecksumIEEE(c); got != h.HeaderCRC {
		return fmt.Errorf("header CRC32 %#08x, computed %#08x", h.HeaderCRC, got)
	}
	if h.MyLBA != lba {
		return fmt.Errorf("my_lba %d, but it was read at LBA %d", h.MyLBA, lba)
	}
	if h.FirstUsable > h.LastUsable || h.LastUsable >= nSectors || h.FirstUsable < 2 {
		return fmt.Errorf("usable LBAs %d..%d, not inside the disk's 2..%d", h.FirstUsable, h.LastUsable, nSectors-1)
	}
	if h.EntrySize < gptEntrySize || h.EntrySize&(h.EntrySize-1) != 0 || h.EntrySize > 4096 {
		return fmt.Errorf("partition entry size %d, want 128 times a power of 2", h.EntrySize)
	}
	if h.NumEntries == 0 || h.NumEntries > gptMaxEntries || uint64(h.NumEntries)*uint64(h.EntrySize) > gptMaxArraySize {
		return fmt.Errorf("%d partition entries of %d bytes: nonsense", h.NumEntries, h.EntrySize)
	}
	arr := h.arraySectors(sectorSize)
	if h.EntriesLBA < 2 || h.EntriesLBA >= nSectors || nSectors-h.EntriesLBA < arr {
		return fmt.Errorf("partition entry array at LBA %d (%d sectors) is not inside the disk (%d sectors)", h.EntriesLBA, arr, nSectors)
	}
	if h.EntriesLBA <= h.LastUsable && h.EntriesLBA+arr > h.FirstUsable {
		return fmt.Errorf("partition entry array at LBA %d..%d overlaps the usable LBAs %d..%d", h.EntriesLBA, h.EntriesLBA+arr-1, h.FirstUsable, h.LastUsable)
	}
	return nil
}

// arraySectors is the number of sectors the entry array spans.
func (h *GPTHeader) arraySectors(sectorSize int) uint64 {
	n := uint64(h.NumEntries) * uint64(h.EntrySize)
	return (n + uint64(sectorSize) - 1) / uint64(sectorSize)
}

// VerifyEntries checks the CRC32 of the entry array arr (at least
// NumEntries*EntrySize bytes).
func (h *GPTHeader) VerifyEntries(arr []byte) error {
	n := int(h.NumEntries) * int(h.EntrySize)
	if len(arr) < n {
		return fmt.Errorf("partition entry array: %d bytes, want %d", len(arr), n)
	}
	if got := crc32.ChecksumIEEE(arr[:n]); got != h.EntriesCRC {
		return fmt.Errorf("partition entry array CRC32 %#08x, computed %#08x", h.EntriesCRC, got)
	}
	return nil
}

// DecodeGPTEntry decodes one entry (at least 128 bytes).
func DecodeGPTEntry(b []byte) GPTEntry {
	le := binary.LittleEndian
	var e GPTEntry
	copy(e.Type[:], b[0:16])
	copy(e.Unique[:], b[16:32])
	e.FirstLBA, e.LastLBA, e.Attributes = le.Uint64(b[32:]), le.Uint64(b[40:]), le.Uint64(b[48:])
	u := make([]uint16, 0, gptNameChars)
	for i := 0; i < gptNameChars; i++ {
		c := le.Uint16(b[56+2*i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	e.Name = string(utf16.Decode(u))
	return e
}

// Encode returns the entry's 128 bytes (a name longer than 36 UTF-16 code
// units is cut).
func (e GPTEntry) Encode() []byte {
	b := make([]byte, gptEntrySize)
	le := binary.LittleEndian
	copy(b[0:16], e.Type[:])
	copy(b[16:32], e.Unique[:])
	le.PutUint64(b[32:], e.FirstLBA)
	le.PutUint64(b[40:], e.LastLBA)
	le.PutUint64(b[48:], e.Attributes)
	for i, c := range utf16.Encode([]rune(e.Name)) {
		if i == gptNameChars {
			break
		}
		le.PutUint16(b[56+2*i:], c)
	}
	return b
}

// errNoGPT says there is no GPT signature where a header was looked for.
var errNoGPT = errors.New("no GPT header")

// gptAt reads and verifies the header at lba and its entry array.
func gptAt(d *disk, lba uint64) (*GPTHeader, []byte, error) {
	sect, err := d.sectors(lba, 1)
	if err != nil {
		return nil, nil, err
	}
	if string(sect[:8]) != gptSignature {
		return nil, nil, errNoGPT
	}
	h, err := DecodeGPTHeader(sect)
	if err != nil {
		return nil, nil, err
	}
	if err := h.Verify(sect, lba, d.nSectors, d.ss); err != nil {
		return h, nil, err
	}
	arr, err := d.sectors(h.EntriesLBA, h.arraySectors(d.ss))
	if err != nil {
		return h, nil, err
	}
	if err := h.VerifyEntries(arr); err != nil {
		return h, nil, err
	}
	return h, arr, nil
}

// readGPT reads the GPT of d: the primary header at LBA 1, else the backup
// (at the primary's alternate LBA when its header was sound, else at the
// last LBA). It returns errNoGPT when neither has a signature.
func readGPT(d *disk) (*Table, error) {
	last := d.nSectors - 1
	t := &Table{Scheme: GPT, SectorSize: d.ss}
	h, arr, perr := gptAt(d, 1)
	if perr == nil {
		if h.AlternateLBA != last {
			t.Notes = append(t.Notes, fmt.Sprintf("the primary GPT header says the backup is at LBA %d, not at the last LBA %d (was the disk grown or cut?)", h.AlternateLBA, last))
		} else if _, _, berr := gptAt(d, last); berr != nil {
			t.Notes = append(t.Notes, fmt.Sprintf("the backup GPT header at LBA %d is unusable (%v); the primary is sound", last, berr))
		}
	} else {
		cands := []uint64{last}
		if h != nil && h.AlternateLBA != last && h.AlternateLBA > 1 && h.AlternateLBA < d.nSectors {
			cands = append([]uint64{h.AlternateLBA}, cands...)
		}
		var berr error
		for _, lba := range cands {
			if h, arr, berr = gptAt(d, lba); berr == nil {
				break
			}
		}
		switch {
		case berr == nil && errors.Is(perr, errNoGPT):
			t.Notes = append(t.Notes, fmt.Sprintf("no primary GPT header at LBA 1: using the backup at LBA %d", h.MyLBA))
		case berr == nil:
			t.Notes = append(t.Notes, fmt.Sprintf("the primary GPT header at LBA 1 is corrupt (%v): using the backup at LBA %d", perr, h.MyLBA))
		case errors.Is(perr, errNoGPT) && errors.Is(berr, errNoGPT):
			return nil, errNoGPT
		default:
			return nil, fmt.Errorf("%w: GPT (%d-byte sectors): primary header at LBA 1: %v; backup header at LBA %d: %v",
				ErrCorrupt, d.ss, perr, last, berr)
		}
	}
	t.DiskGUID = h.DiskGUID.String()
	for i := 0; i < int(h.NumEntries); i++ {
		e := DecodeGPTEntry(arr[i*int(h.EntrySize):])
		if e.Type.IsZero() {
			continue
		}
		n := i + 1
		if e.FirstLBA > e.LastLBA || e.FirstLBA < h.FirstUsable || e.LastLBA > h.LastUsable {
			return nil, fmt.Errorf("%w: GPT partition %d: LBAs %d..%d are not inside the usable LBAs %d..%d",
				ErrCorrupt, n, e.FirstLBA, e.LastLBA, h.FirstUsable, h.LastUsable)
		}
		t.Partitions = append(t.Partitions, Partition{
			Number: n, Start: int64(e.FirstLBA) * int64(d.ss), Size: int64(e.LastLBA-e.FirstLBA+1) * int64(d.ss),
			Type: e.Type.String(), TypeName: gptTypeNames[e.Type.String()], Label: e.Name, UUID: e.Unique.String(),
		})
	}
	return t, nil
}

// gptTypeNames names the partition type GUIDs a Linux disk commonly has
// (as sfdisk names them).
var gptTypeNames = map[string]string{
	"C12A7328-F81F-11D2-BA4B-00A0C93EC93B": "EFI System",
	"21686148-6449-6E6F-744E-656564454649": "BIOS boot",
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
	"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
	"E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
	"A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
	"B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM-64)",
	"933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
	"BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
	"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7": "Microsoft basic data",
	"E3C9E316-0B5C-4DB8-817D-F92DF00215AE": "Microsoft reserved",
}

// TypeLinuxFilesystem is the GPT type GUID of a Linux data partition.
const TypeLinuxFilesystem = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
