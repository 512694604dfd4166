package partition

// Writing tables: what tests and fuzz seeds build disks with. xfsfree
// itself never writes a partition table.

import (
	"fmt"
	"hash/crc32"
	"io"
)

// WriteGPT writes a protective MBR, the primary GPT (header at LBA 1,
// 128 entries from LBA 2) and the backup GPT (entries before the last LBA,
// header at the last LBA) for a disk of size bytes with sectorSize-byte
// sectors. Entries are placed at their index in the array.
func WriteGPT(w io.WriterAt, size int64, sectorSize int, diskGUID GUID, entries []GPTEntry) error {
	const num = 128
	ss := uint64(sectorSize)
	n := uint64(size) / ss
	arrSectors := (num*gptEntrySize + ss - 1) / ss
	if len(entries) > num || n < 2*arrSectors+4 {
		return fmt.Errorf("WriteGPT: %d entries on %d sectors", len(entries), n)
	}
	arr := make([]byte, arrSectors*ss)
	for i, e := range entries {
		copy(arr[i*gptEntrySize:], e.Encode())
	}
	h := GPTHeader{Revision: gptRevision, HeaderSize: gptHeaderSize, MyLBA: 1, AlternateLBA: n - 1,
		FirstUsable: 2 + arrSectors, LastUsable: n - 2 - arrSectors, DiskGUID: diskGUID,
		EntriesLBA: 2, NumEntries: num, EntrySize: gptEntrySize, EntriesCRC: crc32.ChecksumIEEE(arr[:num*gptEntrySize])}
	backup := h
	backup.MyLBA, backup.AlternateLBA, backup.EntriesLBA = n-1, 1, n-1-arrSectors
	pmbrSectors := uint32(min(n-1, 0xffffffff))
	pmbr := EncodeMBR([4]MBREntry{{Type: MBRTypeProtective, StartLBA: 1, Sectors: pmbrSectors}})
	for _, wr := range []struct {
		b   []byte
		lba uint64
	}{
		{pad(pmbr, sectorSize), 0}, {h.Encode(sectorSize), 1}, {arr, 2},
		{arr, backup.EntriesLBA}, {backup.Encode(sectorSize), n - 1},
	} {
		if _, err := w.WriteAt(wr.b, int64(wr.lba*ss)); err != nil {
			return err
		}
	}
	return nil
}

// LogicalPartition is a logical partition for WriteMBR: its sectors, from
// the start of the disk.
type LogicalPartition struct {
	Type     byte
	StartLBA uint32
	Sectors  uint32
}

// WriteMBR writes an MBR with the primary entries and, when logical is not
// empty, the EBR chain of the (first) extended entry: one EBR in the sector
// before each logical partition, as fdisk lays them out.
func WriteMBR(w io.WriterAt, primary [4]MBREntry, logical []LogicalPartition) error {
	if _, err := w.WriteAt(EncodeMBR(primary), 0); err != nil {
		return err
	}
	var ext *MBREntry
	for i := range primary {
		if primary[i].extended() {
			ext = &primary[i]
			break
		}
	}
	if len(logical) > 0 && ext == nil {
		return fmt.Errorf("WriteMBR: logical partitions without an extended one")
	}
	for i, l := range logical {
		ebr := l.StartLBA - 1
		if i == 0 {
			ebr = ext.StartLBA
		}
		var es [4]MBREntry
		es[0] = MBREntry{Type: l.Type, StartLBA: l.StartLBA - ebr, Sectors: l.Sectors}
		if i+1 < len(logical) {
			nx := logical[i+1]
			es[1] = MBREntry{Type: MBRTypeExtended, StartLBA: nx.StartLBA - 1 - ext.StartLBA, Sectors: nx.Sectors + 1}
		}
		if _, err := w.WriteAt(EncodeMBR(es), int64(ebr)*512); err != nil {
			return err
		}
	}
	return nil
}

func pad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(b, make([]byte, n-len(b))...)
}
