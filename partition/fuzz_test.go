package partition

import (
	"bytes"
	"errors"
	"hash/crc32"
	"sort"
	"testing"
)

// memDisk is a disk image in memory for the fuzz seeds.
type memDisk []byte

func (m memDisk) WriteAt(b []byte, off int64) (int, error) { return copy(m[off:], b), nil }

// seedDisks are small disks of every kind the decoder reads.
func seedDisks(t testing.TB) [][]byte {
	linux, _ := ParseGUID(TypeLinuxFilesystem)
	var seeds [][]byte
	for _, ss := range []int{512, 4096} {
		d := make(memDisk, 256*ss)
		if err := WriteGPT(d, int64(len(d)), ss, GUID{9}, []GPTEntry{
			{Type: linux, Unique: GUID{1}, FirstLBA: 40, LastLBA: 99, Name: "a"},
			{Type: linux, Unique: GUID{2}, FirstLBA: 100, LastLBA: 200, Name: "b"},
		}); err != nil {
			t.Fatal(err)
		}
		copy(d[100*ss:], "XFSB")
		seeds = append(seeds, d)
	}
	m := make(memDisk, 512*512)
	if err := WriteMBR(m, [4]MBREntry{
		{Type: MBRTypeLinux, StartLBA: 8, Sectors: 32},
		{Type: MBRTypeExtended, StartLBA: 64, Sectors: 256},
	}, []LogicalPartition{{Type: MBRTypeLinux, StartLBA: 80, Sectors: 16}, {Type: MBRTypeLinux, StartLBA: 128, Sectors: 64}}); err != nil {
		t.Fatal(err)
	}
	copy(m[128*512:], "XFSB")
	return append(seeds, m)
}

// FuzzRead: whatever the bytes, Read does not panic, and a table it
// returns has partitions inside the disk, numbered once each, not
// overlapping; an error is ErrNoTable or ErrCorrupt.
func FuzzRead(f *testing.F) {
	for _, s := range seedDisks(f) {
		f.Add(s, uint16(0))
		f.Add(s, uint16(512))
	}
	f.Fuzz(func(t *testing.T, b []byte, ss uint16) {
		sector := 0
		switch ss % 3 {
		case 1:
			sector = 512
		case 2:
			sector = 4096
		}
		tab, err := Read(bytes.NewReader(b), int64(len(b)), sector)
		if err != nil {
			if !errors.Is(err, ErrNoTable) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is neither ErrNoTable nor ErrCorrupt", err)
			}
			return
		}
		ps := append([]Partition(nil), tab.Partitions...)
		sort.Slice(ps, func(i, j int) bool { return ps[i].Start < ps[j].Start })
		nums := map[int]bool{}
		for i, p := range ps {
			if p.Size <= 0 || p.Start < 0 || p.Start+p.Size > int64(len(b)) {
				t.Fatalf("partition %+v outside the %d-byte disk", p, len(b))
			}
			if i > 0 && ps[i-1].Start+ps[i-1].Size > p.Start {
				t.Fatalf("partitions %+v and %+v overlap", ps[i-1], p)
			}
			if nums[p.Number] || p.Number < 1 {
				t.Fatalf("partition number %d twice or nonsense", p.Number)
			}
			nums[p.Number] = true
		}
	})
}

// TestSeedsRead: the fuzz seeds are read as written.
func TestSeedsRead(t *testing.T) {
	for i, s := range seedDisks(t) {
		tab, err := Read(bytes.NewReader(s), int64(len(s)), 0)
		if err != nil {
			t.Fatalf("seed %d: %v", i, err)
		}
		if x := tab.XFS(); len(tab.Partitions) != 2 && len(tab.Partitions) != 3 || len(x) != 1 {
			t.Errorf("seed %d: %+v", i, tab)
		}
	}
}

// FuzzGPTFields: a GPT whose header and entry array are fuzzed but whose
// CRCs are recomputed (so that the fields, not only the checksums, are
// reached): Read does not panic and what it returns holds together.
func FuzzGPTFields(f *testing.F) {
	for _, s := range seedDisks(f)[:1] {
		f.Add(s[512:512+gptHeaderSize], s[1024:1024+4*gptEntrySize])
	}
	f.Fuzz(func(t *testing.T, hdr, arr []byte) {
		const ss, n = 512, 256
		if len(hdr) < gptHeaderSize {
			return
		}
		d := make(memDisk, n*ss)
		copy(d, EncodeMBR([4]MBREntry{{Type: MBRTypeProtective, StartLBA: 1, Sectors: n - 1}}))
		h, err := DecodeGPTHeader(append([]byte(gptSignature), hdr[8:gptHeaderSize]...))
		if err != nil {
			t.Fatal(err)
		}
		if h.EntriesLBA < n && uint64(h.NumEntries)*uint64(h.EntrySize) <= gptMaxArraySize {
			a := make([]byte, uint64(h.NumEntries)*uint64(h.EntrySize))
			copy(a, arr)
			h.EntriesCRC = crc32.ChecksumIEEE(a)
			copy(d[h.EntriesLBA*ss:], a)
		}
		h.HeaderSize, h.MyLBA = gptHeaderSize, 1
		copy(d[ss:], h.Encode(ss))
		tab, err := Read(bytes.NewReader(d), int64(len(d)), 0)
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Size <= 0 || p.Start < 0 || p.Start+p.Size > int64(len(d)) {
				t.Fatalf("partition %+v outside the disk", p)
			}
		}
	})
}
