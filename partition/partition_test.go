package partition

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// sfdiskTable is what `sfdisk --json` prints: the judge of every table the
// tests read.
type sfdiskTable struct {
	Label      string `json:"label"`
	ID         string `json:"id"`
	SectorSize int    `json:"sectorsize"`
	Partitions []struct {
		Node     string `json:"node"`
		Start    int64  `json:"start"`
		Size     int64  `json:"size"`
		Type     string `json:"type"`
		UUID     string `json:"uuid"`
		Name     string `json:"name"`
		Bootable bool   `json:"bootable"`
	} `json:"partitions"`
}

func sfdiskJSON(t *testing.T, dev string) sfdiskTable {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", dev).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", dev, err)
	}
	var v struct {
		PT sfdiskTable `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	return v.PT
}

// sfdisk writes a table from a script onto dev.
func sfdisk(t *testing.T, dev, script string) {
	t.Helper()
	cmd := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s\n%s", dev, err, script, out)
	}
}

// newDiskFile makes a sparse file of size bytes.
func newDiskFile(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, path string) (*Table, error) {
	t.Helper()
	d, err := OpenDisk(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return d.Table()
}

// sameAsSfdisk compares a table with sfdisk's (extended containers, which
// sfdisk lists and Table does not, aside).
func sameAsSfdisk(t *testing.T, got *Table, want sfdiskTable) {
	t.Helper()
	scheme := map[string]string{"gpt": GPT, "dos": MBR}[want.Label]
	if got.Scheme != scheme || got.SectorSize != want.SectorSize {
		t.Errorf("table %s with %d-byte sectors, sfdisk says %s with %d", got.Scheme, got.SectorSize, want.Label, want.SectorSize)
	}
	if scheme == GPT && got.DiskGUID != want.ID {
		t.Errorf("disk GUID %s, sfdisk %s", got.DiskGUID, want.ID)
	}
	var n int
	for _, w := range want.Partitions {
		if ty, err := strconv.ParseUint(w.Type, 16, 8); err == nil && scheme == MBR && (ty == 5 || ty == 0xf || ty == 0x85) {
			continue
		}
		num, err := strconv.Atoi(w.Node[strings.LastIndexFunc(w.Node, func(r rune) bool { return r < '0' || r > '9' })+1:])
		if err != nil {
			t.Fatalf("sfdisk node %q", w.Node)
		}
		n++
		p, ok := got.Lookup(num)
		if !ok {
			t.Errorf("partition %d (sfdisk %+v) not found", num, w)
			continue
		}
		ss := int64(want.SectorSize)
		wantType := w.Type
		if scheme == MBR {
			ty, _ := strconv.ParseUint(w.Type, 16, 8)
			wantType = fmt.Sprintf("0x%02x", ty)
		}
		if p.Start != w.Start*ss || p.Size != w.Size*ss || p.Type != wantType || p.Label != w.Name || p.UUID != w.UUID || p.Bootable != w.Bootable {
			t.Errorf("partition %d: %+v\nsfdisk: %+v", num, p, w)
		}
	}
	if len(got.Partitions) != n {
		t.Errorf("%d partitions, sfdisk lists %d: %+v", len(got.Partitions), n, got.Partitions)
	}
}

const gptScript = `label: gpt
first-lba: 2048
start=2048, size=8192, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System Partition"
size=16384, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root ü"
type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"
`

const mbrScript = `label: dos
start=2048, size=20480, type=83, bootable
start=22528, size=20480, type=82
start=43008, type=5
start=45056, size=10240, type=83
start=57344, size=10240, type=8e
start=69632, type=83
`

// TestReadLikeSfdisk: GPT and MBR tables (extended and logical partitions
// included) that sfdisk wrote read as sfdisk reads them.
func TestReadLikeSfdisk(t *testing.T) {
	testimg.Need(t, "sfdisk")
	for _, c := range []struct{ name, script string }{{"gpt", gptScript}, {"mbr", mbrScript}} {
		t.Run(c.name, func(t *testing.T) {
			img := newDiskFile(t, 64<<20)
			sfdisk(t, img, c.script)
			tab, err := readFile(t, img)
			if err != nil {
				t.Fatal(err)
			}
			sameAsSfdisk(t, tab, sfdiskJSON(t, img))
			if len(tab.Notes) != 0 || len(tab.XFS()) != 0 {
				t.Errorf("notes %q, XFS partitions %v", tab.Notes, tab.XFS())
			}
			t.Logf("%+v", tab)
		})
	}
}

// TestReadGPT4096: a GPT that sfdisk wrote through a loop device with
// 4096-byte logical sectors is found in the image file (no sector size
// given) and on the loop device (BLKSSZGET 4096), as sfdisk reads it.
func TestReadGPT4096(t *testing.T) {
	testimg.Need(t, "sfdisk", "loop")
	img := newDiskFile(t, 64<<20)
	dev := testimg.Losetup(t, img, "--sector-size", "4096")
	sfdisk(t, dev, "label: gpt\nsize=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"a\"\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"b\"\n")
	want := sfdiskJSON(t, dev)
	if want.SectorSize != 4096 {
		t.Fatalf("sfdisk on %s: sector size %d", dev, want.SectorSize)
	}
	onDev, err := readFile(t, dev)
	if err != nil {
		t.Fatal(err)
	}
	sameAsSfdisk(t, onDev, want)
	onFile, err := readFile(t, img)
	if err != nil {
		t.Fatal(err)
	}
	sameAsSfdisk(t, onFile, want)
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestGPTBackup: a primary GPT header or entry array that fails its CRC
// is replaced by the backup at the last LBA (a note says so), giving the
// table sfdisk gave before the damage; a backup that is bad too is an
// error naming both.
func TestGPTBackup(t *testing.T) {
	testimg.Need(t, "sfdisk")
	const size = 64 << 20
	for _, c := range []struct {
		name string
		off  []int64
		note string
		err  string
	}{
		{"primary header", []int64{512 + 40}, "primary GPT header at LBA 1 is corrupt (header CRC32", ""},
		{"primary entries", []int64{1024 + 130}, "primary GPT header at LBA 1 is corrupt (partition entry array CRC32", ""},
		{"primary signature", []int64{512}, "no primary GPT header at LBA 1", ""},
		{"both headers", []int64{512 + 40, size - 512 + 40}, "", "primary header at LBA 1: header CRC32"},
		{"backup only", []int64{size - 512 + 40}, "the backup GPT header at LBA 131071 is unusable", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := newDiskFile(t, size)
			sfdisk(t, img, gptScript)
			want := sfdiskJSON(t, img)
			for _, o := range c.off {
				flip(t, img, o)
			}
			tab, err := readFile(t, img)
			if c.err != "" {
				if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "backup header at LBA 131071") {
					t.Fatalf("error %v, want ErrCorrupt with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameAsSfdisk(t, tab, want)
			if len(tab.Notes) != 1 || !strings.Contains(tab.Notes[0], c.note) {
				t.Errorf("notes %q, want one with %q", tab.Notes, c.note)
			}
		})
	}
}

func mustGUID(t testing.TB, s string) GUID {
	t.Helper()
	g, err := ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	if g.String() != strings.ToUpper(s) {
		t.Fatalf("GUID %s round-trips to %s", s, g)
	}
	return g
}

// TestWriteGPTLikeSfdisk: the tables WriteGPT and WriteMBR write (the
// tests' and fuzz seeds' disks) read back the same, and as sfdisk reads
// them.
func TestWriteLikeSfdisk(t *testing.T) {
	testimg.Need(t, "sfdisk")
	linux := mustGUID(t, TypeLinuxFilesystem)
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint("gpt", ss), func(t *testing.T) {
			img := newDiskFile(t, 32<<20)
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			mib := uint64(1 << 20 / ss)
			err = WriteGPT(f, 32<<20, ss, mustGUID(t, "11111111-2222-3333-4444-555555555555"), []GPTEntry{
				{Type: linux, Unique: mustGUID(t, "AAAAAAAA-0000-0000-0000-000000000001"), FirstLBA: mib, LastLBA: 4*mib - 1, Name: "one"},
				{},
				{Type: linux, Unique: mustGUID(t, "AAAAAAAA-0000-0000-0000-000000000003"), FirstLBA: 8 * mib, LastLBA: 16*mib - 1, Name: "three"},
			})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			tab, err := readFile(t, img)
			if err != nil {
				t.Fatal(err)
			}
			if len(tab.Partitions) != 2 || tab.Partitions[1].Number != 3 || tab.Partitions[1].Start != 8<<20 || tab.Partitions[1].Size != 8<<20 || len(tab.Notes) != 0 {
				t.Errorf("%+v", tab)
			}
			if ss == 512 { // sfdisk reads an image file with 512-byte sectors
				sameAsSfdisk(t, tab, sfdiskJSON(t, img))
			}
		})
	}
	t.Run("mbr", func(t *testing.T) {
		img := newDiskFile(t, 32<<20)
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = WriteMBR(f, [4]MBREntry{
			{Type: MBRTypeLinux, StartLBA: 2048, Sectors: 8192},
			{Type: MBRTypeExtended, StartLBA: 16384, Sectors: 40960},
		}, []LogicalPartition{{Type: MBRTypeLinux, StartLBA: 18432, Sectors: 4096}, {Type: 0x82, StartLBA: 24576, Sectors: 8192}})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		tab, err := readFile(t, img)
		if err != nil {
			t.Fatal(err)
		}
		sameAsSfdisk(t, tab, sfdiskJSON(t, img))
		if len(tab.Partitions) != 3 || tab.Partitions[2].Number != 6 {
			t.Errorf("%+v", tab)
		}
	})
}

// TestRefuseNonsense: tables that are there but wrong are refused with an
// error saying what is wrong; a disk with no table, or an XFS filesystem
// on the whole disk, has none.
func TestRefuseNonsense(t *testing.T) {
	linux := mustGUID(t, TypeLinuxFilesystem)
	const size = 16 << 20
	cases := []struct {
		name  string
		write func(t *testing.T, f *os.File)
		want  string // "" for ErrNoTable
	}{
		{"zeros", func(*testing.T, *os.File) {}, ""},
		{"xfs on the whole disk", func(t *testing.T, f *os.File) { f.WriteAt([]byte("XFSB"), 0) }, ""},
		{"gpt overlap", func(t *testing.T, f *os.File) {
			WriteGPT(f, size, 512, GUID{1}, []GPTEntry{{Type: linux, FirstLBA: 2048, LastLBA: 8191}, {Type: linux, FirstLBA: 8000, LastLBA: 9000}})
		}, "partitions 1 (bytes 1048576..4194303) and 2 (bytes 4096000..4608511) overlap"},
		{"gpt outside usable", func(t *testing.T, f *os.File) {
			WriteGPT(f, size, 512, GUID{1}, []GPTEntry{{Type: linux, FirstLBA: 2048, LastLBA: 40000}})
		}, "GPT partition 1: LBAs 2048..40000 are not inside the usable LBAs"},
		{"gpt end before start", func(t *testing.T, f *os.File) {
			WriteGPT(f, size, 512, GUID{1}, []GPTEntry{{Type: linux, FirstLBA: 4096, LastLBA: 2048}})
		}, "GPT partition 1: LBAs 4096..2048"},
		{"protective mbr, no gpt", func(t *testing.T, f *os.File) {
			WriteGPT(f, size, 512, GUID{1}, nil)
			f.WriteAt(make([]byte, 512), 512)
			f.WriteAt(make([]byte, 512), size-512)
		}, "protective one (type 0xee: GPT), but there is no GPT header"},
		{"mbr beyond the disk", func(t *testing.T, f *os.File) {
			WriteMBR(f, [4]MBREntry{{Type: MBRTypeLinux, StartLBA: 2048, Sectors: 1 << 20}}, nil)
		}, "MBR partition 1: sectors 2048..1050623 are not inside the disk (32768 sectors)"},
		{"mbr overlap", func(t *testing.T, f *os.File) {
			WriteMBR(f, [4]MBREntry{{Type: MBRTypeLinux, StartLBA: 2048, Sectors: 4096}, {Type: MBRTypeLinux, StartLBA: 4096, Sectors: 4096}}, nil)
		}, "partitions 1 (bytes 1048576..3145727) and 2 (bytes 2097152..4194303) overlap"},
		{"ebr loop", func(t *testing.T, f *os.File) {
			WriteMBR(f, [4]MBREntry{{Type: MBRTypeExtended, StartLBA: 2048, Sectors: 16384}},
				[]LogicalPartition{{Type: MBRTypeLinux, StartLBA: 4096, Sectors: 1024}, {Type: MBRTypeLinux, StartLBA: 8192, Sectors: 1024}})
			// The second EBR (sector 8191) links back to the first (sector 2048).
			f.WriteAt(EncodeMBR([4]MBREntry{{Type: MBRTypeLinux, StartLBA: 1, Sectors: 1024}, {Type: MBRTypeExtended, StartLBA: 0, Sectors: 10}}), 8191*512)
		}, "the EBR chain loops back to sector 2048"},
		{"logical outside its extended", func(t *testing.T, f *os.File) {
			WriteMBR(f, [4]MBREntry{{Type: MBRTypeExtended, StartLBA: 2048, Sectors: 4096}},
				[]LogicalPartition{{Type: MBRTypeLinux, StartLBA: 4096, Sectors: 8192}})
		}, "MBR logical partition 5: sectors 4096..12287 are not inside its extended partition 1 (sectors 2048..6143)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := newDiskFile(t, size)
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			c.write(t, f)
			f.Close()
			tab, err := readFile(t, img)
			switch {
			case c.want == "" && !errors.Is(err, ErrNoTable):
				t.Errorf("got %+v, %v; want ErrNoTable", tab, err)
			case c.want != "" && (!errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("got %+v, %v; want ErrCorrupt with %q", tab, err, c.want)
			}
		})
	}
}

// TestXFSMark: a partition holds XFS when the superblock magic is at its
// start, whatever its type says.
func TestXFSMark(t *testing.T) {
	testimg.Need(t, "sfdisk")
	img := newDiskFile(t, 64<<20)
	sfdisk(t, img, gptScript)
	want := sfdiskJSON(t, img)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XFSB"), want.Partitions[2].Start*512) // the swap partition
	f.Close()
	tab, err := readFile(t, img)
	if err != nil {
		t.Fatal(err)
	}
	if x := tab.XFS(); len(x) != 1 || x[0].Number != 3 || x[0].TypeName != "Linux swap" {
		t.Errorf("XFS partitions %+v", x)
	}
}
