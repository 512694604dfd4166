package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// A partition as sfdisk reports it, in bytes.
type diskPart struct {
	n         int
	off, size int64
}

// sfdiskDisk writes a partition table with sfdisk onto dev (an image file,
// or a loop device to get 4096-byte sectors) and returns its partitions as
// sfdisk then reads them (the judge of where the partitions are).
func sfdiskDisk(t *testing.T, dev, script string) map[int]diskPart {
	t.Helper()
	testimg.Need(t, "sfdisk")
	cmd := exec.Command("sfdisk", "-q", "--no-reread", "--no-tell-kernel", dev)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk %s: %v\n%s", dev, err, out)
	}
	out, err := exec.Command("sfdisk", "--json", dev).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", dev, err)
	}
	var v struct {
		PT struct {
			SectorSize int64 `json:"sectorsize"`
			Partitions []struct {
				Node        string `json:"node"`
				Start, Size int64
			} `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	parts := map[int]diskPart{}
	for _, p := range v.PT.Partitions {
		i := strings.LastIndexFunc(p.Node, func(r rune) bool { return r < '0' || r > '9' })
		n, err := strconv.Atoi(p.Node[i+1:])
		if err != nil {
			t.Fatalf("sfdisk node %q", p.Node)
		}
		parts[n] = diskPart{n, p.Start * v.PT.SectorSize, p.Size * v.PT.SectorSize}
	}
	return parts
}

func sparseFile(t *testing.T, size int64) string {
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

// partLoop attaches partition p of img as the kernel would see it: a loop
// device over its byte range (losetup -o OFFSET --sizelimit SIZE).
func partLoop(t *testing.T, img string, p diskPart, args ...string) string {
	t.Helper()
	return testimg.Losetup(t, img, append([]string{"-o", fmt.Sprint(p.off), "--sizelimit", fmt.Sprint(p.size)}, args...)...)
}

// mkfsPart runs mkfs.xfs on partition p through an offset loop device.
func mkfsPart(t *testing.T, img string, p diskPart, losetupArgs ...string) {
	t.Helper()
	testimg.Need(t, "mkfs.xfs")
	dev := partLoop(t, img, p, losetupArgs...)
	if out, err := exec.Command("mkfs.xfs", "-q", "-f", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs %s: %v\n%s", dev, err, out)
	}
}

// fillRandom fills partition p with random bytes, so that a change to it
// would show.
func fillRandom(t *testing.T, img string, p diskPart) {
	t.Helper()
	b := make([]byte, p.size)
	rand.New(rand.NewSource(p.off)).Read(b)
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, p.off); err != nil {
		t.Fatal(err)
	}
}

// outsideHash hashes every byte of img outside partition p.
func outsideHash(t *testing.T, img string, p diskPart) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, p.off)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(h, io.NewSectionReader(f, p.off+p.size, st.Size()-p.off-p.size)); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func cpSparse(t *testing.T, src, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	return dst
}

// snapshotPart makes, in partition p of img, the field snapshot of a live
// filesystem with deleted-but-open files: the partition is mounted through
// an offset loop device, populated (orphans files held open and unlinked,
// others kept), frozen, the whole disk copied, thawed, the files closed and
// the filesystem unmounted. It returns the copy.
func snapshotPart(t *testing.T, img string, p diskPart, orphans int) string {
	t.Helper()
	testimg.Need(t, "xfs_freeze")
	mnt := testimg.MountDev(t, partLoop(t, img, p))
	var held []*os.File
	for i := 0; i < orphans+100; i++ {
		name := filepath.Join(mnt, fmt.Sprintf("f%03d", i))
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(strings.Repeat("x", 4096*(i%5)+i))); err != nil {
			t.Fatal(err)
		}
		if i < orphans {
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
			held = append(held, f)
		} else {
			f.Close()
		}
	}
	if out, err := exec.Command("sync", "-f", mnt).CombinedOutput(); err != nil {
		t.Fatalf("sync -f: %v\n%s", err, out)
	}
	if out, err := exec.Command("xfs_freeze", "-f", mnt).CombinedOutput(); err != nil {
		t.Fatalf("xfs_freeze -f: %v\n%s", err, out)
	}
	snap := filepath.Join(t.TempDir(), "snapshot.img")
	out, err := exec.Command("cp", "--sparse=always", img, snap).CombinedOutput()
	if out2, err2 := exec.Command("xfs_freeze", "-u", mnt).CombinedOutput(); err2 != nil {
		t.Fatalf("xfs_freeze -u: %v\n%s", err2, out2)
	}
	if err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	for _, f := range held {
		f.Close()
	}
	testimg.Unmount(t, mnt)
	return snap
}

// jsonWithoutDevice runs xfsfree with --json and returns its exit status
// and output with the top-level "device" (the path given) taken out.
func jsonWithoutDevice(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	r := runCLI(t, append([]string{"--json"}, args...)...)
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("xfsfree %v: exit %d, output is not JSON: %v\n%s%s", args, r.code, err, r.stdout, r.stderr)
	}
	delete(v, "device")
	delete(v, "elapsed_seconds")
	return r.code, v, r.stderr
}

// sameAsLoop runs each read-only command with --json on the whole disk (with
// flags) and on the kernel's loop device over the partition, and compares
// exit status and output.
func sameAsLoop(t *testing.T, disk string, flags []string, loop string) {
	t.Helper()
	for _, cmd := range []string{"info", "scan", "check"} {
		c1, a, stderr := jsonWithoutDevice(t, append(append([]string{cmd}, flags...), disk)...)
		c2, b, _ := jsonWithoutDevice(t, cmd, loop)
		if c1 != c2 || !reflect.DeepEqual(a, b) {
			t.Errorf("%s %v %s: exit %d, loop device %s: exit %d; outputs differ:\n%v\n%v", cmd, flags, disk, c1, loop, c2, a, b)
		}
		if stderr != "" && c1 == 0 {
			t.Errorf("%s --json: stderr %q", cmd, stderr)
		}
	}
}

const gptDiskScript = `label: gpt
first-lba: 2048
start=2048, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System"
size=655360, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"
type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name="swap"
`

// TestPartitionGPTSnapshotLikeKernel: a GPT disk image whose SECOND
// partition holds a frozen snapshot with orphans (the first and third hold
// random bytes). On the whole disk, with no flag, xfsfree finds the XFS
// partition and says so; info, scan and check give what they give on the
// kernel's offset loop device over that partition; `recover` then
// `free --orphans` end in the allocation state of the kernel's own mount +
// umount of a copy (through an offset loop device), xfs_repair -n passes on
// the partition, the kernel mounts it without recovery, and not one byte
// outside the partition has changed.
func TestPartitionGPTSnapshotLikeKernel(t *testing.T) {
	testimg.Need(t, "loop", "sfdisk", "mkfs.xfs", "xfs_db", "xfs_repair", "xfs_freeze")
	disk := sparseFile(t, 360<<20)
	parts := sfdiskDisk(t, disk, gptDiskScript)
	p2 := parts[2]
	fillRandom(t, disk, parts[1])
	fillRandom(t, disk, parts[3])
	mkfsPart(t, disk, p2)
	const orphans = 150
	snap := snapshotPart(t, disk, p2, orphans)

	// Read-only: the whole disk against the kernel's view of the partition.
	sameAsLoop(t, snap, nil, partLoop(t, snap, p2, "-r"))
	r := runCLI(t, "scan", snap)
	if r.code != 0 || !strings.Contains(r.stderr, "using partition 2 (a GPT partition table with 512-byte sectors), the only one holding XFS") ||
		!strings.Contains(r.stderr, fmt.Sprintf("bytes %d..%d", p2.off, p2.off+p2.size-1)) || !strings.Contains(r.stderr, `label "root"`) {
		t.Errorf("scan: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(t, "-q", "info", snap); r.stderr != "" {
		t.Errorf("-q: stderr %q", r.stderr)
	}

	// The kernel's reference: mount + umount a copy through an offset loop device.
	ref := cpSparse(t, snap, "ref.img")
	refDev := partLoop(t, ref, p2)
	if _, recovered := testimg.KernelMountCycleDev(t, refDev); !recovered {
		t.Fatal("the kernel did not recover the snapshot's log: not a snapshot of a live filesystem")
	}
	want := testimg.ReadAllocState(t, refDev)

	img := cpSparse(t, snap, "xfsfree.img")
	outside := outsideHash(t, img, p2)
	// clean: the log replayed, the orphans freed, the log left clean.
	if r := runCLI(t, "clean", img); r.code != 0 || !strings.Contains(r.stderr, "using partition 2") {
		t.Fatalf("clean: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "clean", "--json", img) // nothing left to do
	var c struct {
		Recover any      `json:"recover"`
		Free    freeJSON `json:"free"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || r.code != 0 || c.Recover != nil || c.Free.InodesFreed != 0 {
		t.Errorf("second clean: exit %d, %v: %s", r.code, err, r.stdout)
	}
	if outsideHash(t, img, p2) != outside {
		t.Fatal("bytes outside partition 2 changed")
	}
	dev := partLoop(t, img, p2)
	testimg.Repair(t, dev)
	for _, d := range testimg.ReadAllocState(t, dev).Diff(want) {
		t.Error(d)
	}
	if kmsg, recovered := testimg.KernelMountCycleDev(t, dev); recovered {
		t.Errorf("the kernel ran log recovery on xfsfree's result:\n%s", kmsg)
	}
	if outsideHash(t, img, p2) != outside {
		t.Fatal("bytes outside partition 2 changed")
	}
}

const mbrDiskScript = `label: dos
start=2048, size=655360, type=83
start=657408, type=5
start=659456, size=655360, type=83
start=1316864, size=16384, type=82
`

// TestPartitionMBRLogical: an MBR disk with XFS on primary partition 1 and
// logical partition 5 (and random bytes on logical 6). With no flag the
// choice is refused (exit 2) with the list and --partition N; each XFS
// partition, picked by --partition or by --offset/--size, reads as the
// kernel's offset loop device over it reads; partition 6 is not XFS, 9
// does not exist. A partition mounted through an offset loop device is
// refused; the other partition of the same disk image is not.
func TestPartitionMBRLogical(t *testing.T) {
	testimg.Need(t, "loop", "sfdisk", "mkfs.xfs")
	disk := sparseFile(t, 700<<20)
	parts := sfdiskDisk(t, disk, mbrDiskScript)
	mkfsPart(t, disk, parts[1])
	mkfsPart(t, disk, parts[5])
	fillRandom(t, disk, parts[6])

	r := runCLI(t, "info", disk)
	if r.code != exitUsage || !strings.Contains(r.stderr, "has 2 partitions holding XFS (1, 5): pick one with --partition N") {
		t.Errorf("info on two XFS partitions: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	for _, n := range []int{1, 5} {
		p := parts[n]
		loop := partLoop(t, disk, p, "-r")
		sameAsLoop(t, disk, []string{"--partition", fmt.Sprint(n)}, loop)
		sameAsLoop(t, disk, []string{"--offset", fmt.Sprint(p.off), "--size", fmt.Sprint(p.size)}, loop)
	}
	expectFailure(t, runCLI(t, "info", "--partition", "6", disk), exitFailed, "not an XFS filesystem")
	if r := runCLI(t, "info", "--partition", "9", disk); r.code != exitUsage || !strings.Contains(r.stderr, "has no partition 9") {
		t.Errorf("--partition 9: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	expectFailure(t, runCLI(t, "info", "--partition", "1", "--offset", "1M", disk), exitUsage, "give one")

	// The mounted check covers the partition's bytes, and only those.
	mnt := testimg.MountDev(t, partLoop(t, disk, parts[5]))
	expectFailure(t, runCLI(t, "info", "--partition", "5", disk), exitFailed, "mounted")
	expectFailure(t, runCLI(t, "free", "--orphans", "--partition", "5", disk), exitFailed, "mounted")
	if r := runCLI(t, "check", "--partition", "1", disk); r.code != 0 {
		t.Errorf("check of partition 1 while 5 is mounted: exit %d\n%s", r.code, r.stderr)
	}
	testimg.Unmount(t, mnt)
}

// TestPartitionGPT4096: a GPT written with 4096-byte logical sectors (by
// sfdisk through a loop device with --sector-size 4096), XFS made on its
// second partition through a 4096-byte-sector offset loop device. The
// image file (the sector size found by looking), the whole-disk loop
// device (BLKSSZGET 4096) and the kernel's loop device over the partition
// read the same. With the primary GPT header corrupt, the backup is read
// and a note says so.
func TestPartitionGPT4096(t *testing.T) {
	testimg.Need(t, "loop", "sfdisk", "mkfs.xfs")
	disk := sparseFile(t, 400<<20)
	whole := testimg.Losetup(t, disk, "--sector-size", "4096")
	parts := sfdiskDisk(t, whole, "label: gpt\nsize=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"data\"\n")
	p2 := parts[2]
	if p2.off%4096 != 0 || parts[1].size != 4096*4096 {
		t.Fatalf("sfdisk did not use 4096-byte sectors: %+v", parts)
	}
	mkfsPart(t, disk, p2, "--sector-size", "4096")
	loop := partLoop(t, disk, p2, "-r", "--sector-size", "4096")
	if info := testimg.ParseFields(testimg.DB(t, loop, "sb 0", "p sectsize")); info["sectsize"] != "4096" {
		t.Fatalf("mkfs.xfs made sector size %s", info["sectsize"])
	}
	sameAsLoop(t, disk, nil, loop)
	sameAsLoop(t, whole, nil, loop)
	if r := runCLI(t, "info", disk); r.code != 0 || !strings.Contains(r.stderr, "using partition 2 (a GPT partition table with 4096-byte sectors)") {
		t.Errorf("info: exit %d, stderr %q", r.code, r.stderr)
	}

	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 4096+40); err != nil { // the primary header's first_usable_lba
		t.Fatal(err)
	}
	f.Close()
	r := runCLI(t, "info", disk)
	if r.code != 0 || !strings.Contains(r.stderr, "the primary GPT header at LBA 1 is corrupt (header CRC32") ||
		!strings.Contains(r.stderr, "using the backup") || !strings.Contains(r.stderr, "using partition 2") {
		t.Errorf("info with a corrupt primary GPT header: exit %d, stderr %q", r.code, r.stderr)
	}
	sameAsLoop(t, disk, nil, loop)
}

// TestPartitionNoXFS: a partitioned disk with no XFS partition is refused
// with the list; a disk with neither a table nor XFS is not XFS; a table
// that is nonsense is refused naming what is wrong.
func TestPartitionNoXFS(t *testing.T) {
	testimg.Need(t, "sfdisk")
	disk := sparseFile(t, 64<<20)
	sfdiskDisk(t, disk, "label: gpt\ntype=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"empty\"\n")
	r := runCLI(t, "scan", disk)
	if r.code != exitFailed || !strings.Contains(r.stderr, "no partition holds an XFS filesystem") || !strings.Contains(r.stderr, "empty") {
		t.Errorf("scan: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	expectFailure(t, runCLI(t, "scan", sparseFile(t, 64<<20)), exitFailed, "not an XFS filesystem")
	expectFailure(t, runCLI(t, "scan", "--partition", "1", sparseFile(t, 64<<20)), exitUsage, "no GPT or MBR partition table")
	// Both GPT headers corrupt.
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 512+40)
	f.WriteAt([]byte{0xff}, 64<<20-512+40)
	f.Close()
	expectFailure(t, runCLI(t, "info", disk), exitFailed, "corrupt partition table", "backup header at LBA", "--offset")
}
