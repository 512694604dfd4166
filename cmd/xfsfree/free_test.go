package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// freeJSON is the part of `free --json` the tests read.
type freeJSON struct {
	InodesFreed int `json:"orphans_freed"`
	ChunksFreed int `json:"chunks_freed"`
	Refused     []struct {
		Ino    uint64 `json:"ino"`
		Reason string `json:"reason"`
	} `json:"refused"`
	Errors []any `json:"errors"`
	Stats  *struct {
		DeviceWrites int64 `json:"device_writes"`
		LogBytes     int64 `json:"log_bytes_written"`
	} `json:"stats"`
}

func decodeFree(t *testing.T, out string) freeJSON {
	t.Helper()
	var f freeJSON
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("free --json output: %v\n%s", err, out)
	}
	return f
}

// sbCounters reads icount, ifree and fdblocks with xfs_db.
func sbCounters(t *testing.T, img string) string {
	t.Helper()
	f := testimg.ParseFields(testimg.DB(t, img, "sb 0", "p icount ifree fdblocks"))
	return fmt.Sprintf("icount %s ifree %s fdblocks %s", f["icount"], f["ifree"], f["fdblocks"])
}

// TestFreeCLI: on a frozen snapshot, free refuses the dirty log (pointing
// at recover) and writes nothing; after `recover`, `free --orphans` frees
// every orphan, xfs_repair -n passes and the counters are the kernel's;
// a dry run writes nothing; no selection is a usage error.
func TestFreeCLI(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair")
	img := testimg.Path(t, "orphans")
	ref := testimg.Path(t, "orphans")
	sum := testimg.Hash(t, img)
	expectFailure(t, runCLI(t, "free", "--orphans", img), exitFailed, "recover")
	if testimg.Hash(t, img) != sum {
		t.Fatal("free on a dirty log wrote to the image")
	}
	expectFailure(t, runCLI(t, "free", img), exitUsage, "--orphans")
	if r := runCLI(t, "recover", img); r.code != 0 {
		t.Fatalf("recover: exit %d: %s", r.code, r.stderr)
	}
	sum = testimg.Hash(t, img)
	r := runCLI(t, "free", "--orphans", "--dry-run", img)
	if r.code != 0 || !strings.Contains(r.stdout, "would free 313 orphan(s)") {
		t.Errorf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if testimg.Hash(t, img) != sum {
		t.Fatal("--dry-run wrote to the image")
	}
	r = runCLI(t, "free", "--orphans", "--json", "--stats", img)
	if r.code != 0 {
		t.Fatalf("free --orphans: exit %d: %s", r.code, r.stderr)
	}
	f := decodeFree(t, r.stdout)
	if f.InodesFreed != 313 || f.ChunksFreed == 0 || len(f.Refused) > 0 || len(f.Errors) > 0 {
		t.Errorf("free --orphans --json: %+v", f)
	}
	if f.Stats == nil || f.Stats.DeviceWrites == 0 || f.Stats.LogBytes == 0 {
		t.Errorf("--stats: %+v", f.Stats)
	}
	testimg.Repair(t, img)
	testimg.Unmount(t, testimg.Mount(t, ref))
	if got, want := sbCounters(t, img), sbCounters(t, ref); got != want {
		t.Errorf("after free: %s; kernel: %s", got, want)
	}
	// Nothing left: a second run frees nothing and succeeds.
	r = runCLI(t, "free", "--orphans", "--empty-chunks", img)
	if r.code != 0 || !strings.Contains(r.stdout, "freed 0 orphan(s)") {
		t.Errorf("second run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// reflinkOrphans builds a frozen snapshot of a reflink=1 filesystem with
// three orphans: a file that shares its extents with a live one (cp
// --reflink=always, then unlinked while open), and two plain files.
func reflinkOrphans(t *testing.T) (img string, plain int) {
	t.Helper()
	testimg.Need(t, "mkfs.xfs", "xfs_db", "xfs_freeze", "loop")
	dir := t.TempDir()
	src := filepath.Join(dir, "src.img")
	if err := os.WriteFile(src, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(src, 300<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.xfs", "-q", "-m", "reflink=1", src).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.xfs: %v\n%s", err, out)
	}
	mnt := testimg.Mount(t, src)
	data := []byte(strings.Repeat("reflink!", 64<<10))
	if err := os.WriteFile(filepath.Join(mnt, "live"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "--reflink=always", filepath.Join(mnt, "live"), filepath.Join(mnt, "shared")).CombinedOutput(); err != nil {
		t.Fatalf("cp --reflink: %v\n%s", err, out)
	}
	for _, n := range []string{"plain1", "plain2"} {
		if err := os.WriteFile(filepath.Join(mnt, n), data[:8192], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var held []*os.File
	for _, n := range []string{"shared", "plain1", "plain2"} {
		f, err := os.Open(filepath.Join(mnt, n))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
		if err := os.Remove(filepath.Join(mnt, n)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("xfs_freeze", "-f", mnt).CombinedOutput(); err != nil {
		t.Fatalf("xfs_freeze -f: %v\n%s", err, out)
	}
	img = filepath.Join(dir, "snap.img")
	out, err := exec.Command("cp", "--sparse=always", src, img).CombinedOutput()
	exec.Command("xfs_freeze", "-u", mnt).Run()
	if err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	for _, f := range held {
		f.Close()
	}
	testimg.Unmount(t, mnt)
	return img, 2
}

// TestFreeReflinked: an orphan that shares its extents with a live file is
// freed with the plain ones (its blocks stay with the live file): exit 0,
// nothing refused, xfs_repair -n passes, the kernel mounts the image
// without recovery and the live file keeps its bytes.
func TestFreeReflinked(t *testing.T) {
	img, plain := reflinkOrphans(t)
	if r := runCLI(t, "recover", img); r.code != 0 {
		t.Fatalf("recover: exit %d: %s", r.code, r.stderr)
	}
	r := runCLI(t, "free", "--orphans", "--json", img)
	if r.code != 0 {
		t.Fatalf("exit %d, want 0: %s", r.code, r.stderr)
	}
	f := decodeFree(t, r.stdout)
	if f.InodesFreed != plain+1 || len(f.Refused) > 0 || len(f.Errors) > 0 {
		t.Fatalf("freed %d (want %d), refused %+v", f.InodesFreed, plain+1, f.Refused)
	}
	testimg.Repair(t, img)
	if _, recovered := testimg.KernelMountCycle(t, img); recovered {
		t.Error("the kernel ran log recovery on the image xfsfree freed")
	}
	mnt := testimg.Mount(t, img)
	got, err := os.ReadFile(filepath.Join(mnt, "live"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("reflink!", 64<<10); string(got) != want {
		t.Errorf("the live file that shared the orphan's blocks changed (%d bytes)", len(got))
	}
	testimg.Unmount(t, mnt)
}
