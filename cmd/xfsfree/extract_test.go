package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/rescue"
	"github.com/xfsfree/xfsfree/xfs"
)

// The orphans fixture's files, as scripts/mkfs-fixtures.sh (orphans.py)
// writes them with 4 KiB blocks.
const fixBS = 4096

func fixtureOneExtent() []byte { return bytes.Repeat([]byte{0x11}, 8*fixBS) }

func fixtureBtreeFile() []byte {
	b := make([]byte, 2*2000*fixBS)
	for i := 0; i < 2000; i++ {
		copy(b[2*i*fixBS:], bytes.Repeat([]byte{0x22}, fixBS))
	}
	return b
}

func fixtureLongLink() string {
	var parts []string
	for i := 0; i < 36; i++ {
		parts = append(parts, fmt.Sprintf("long-symlink-component-%02d", i))
	}
	return "/" + strings.Join(parts, "/")
}

// fixtureOrphans finds the orphans fixture's files by what scan -v --json
// says of them: by name, their inode numbers.
func fixtureOrphans(t *testing.T, img string) map[string]uint64 {
	t.Helper()
	r := runCLI(t, "scan", "-v", "--json", img)
	if r.code != 0 {
		t.Fatalf("scan -v --json: exit %d: %s", r.code, r.stderr)
	}
	var rep xfs.ScanReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	n := 0
	for _, a := range rep.AGs {
		for _, c := range a.Chains {
			for _, o := range c.Inodes {
				n++
				d := o.Detail
				if d == nil || len(d.Errors) > 0 {
					t.Fatalf("orphan %d: detail %+v, error %q", o.Ino, d, o.DetailErr)
				}
				switch {
				case d.Type == "regular" && d.Size == 8*fixBS:
					m["one-extent"] = o.Ino
				case d.Type == "regular" && d.Size == 2*2000*fixBS && d.Format == "btree":
					m["btree-file"] = o.Ino
				case d.Type == "symlink" && d.Target == fixtureLongLink():
					m["long-link"] = o.Ino
				case d.Type == "symlink" && d.Target == "empty":
					m["short-link"] = o.Ino
				case d.Type == "fifo":
					m["fifo"] = o.Ino
				case d.Type == "regular" && d.XattrCount == 1 && d.Xattrs[0].Name == "user.big" && d.Xattrs[0].ValueLen == 16384:
					m["xattr-remote"] = o.Ino
				}
			}
		}
	}
	if len(m) != 6 || n != 313 {
		t.Fatalf("%d orphans; found %v", n, m)
	}
	return m
}

func TestExtractHelp(t *testing.T) {
	for _, cmd := range []string{"extract", "scan", "free"} {
		r := runCLI(t, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "--json") {
			t.Errorf("%s --help: exit %d, no Examples section or --json:\n%s", cmd, r.code, r.stdout)
		}
	}
	r := runCLI(t, "extract", "--help")
	for _, w := range []string{"--ino", "--all-orphans", "-o, --output", "--force", "read-only"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("extract --help lacks %q", w)
		}
	}
	if r := runCLI(t, "free", "--help"); !strings.Contains(r.stdout, "--save-orphans") {
		t.Errorf("free --help lacks --save-orphans")
	}
	if r := runCLI(t, "--help"); !strings.Contains(r.stdout, "extract") {
		t.Errorf("xfsfree --help does not list extract")
	}
}

func TestExtractUsage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "x.img")
	for _, args := range [][]string{
		{"extract", img},
		{"extract", "--ino", "5", "--all-orphans", "d", img},
		{"extract", "--all-orphans", "d", "-o", "f", img},
		{"extract", "--ino", "5", "-o", "-", "--json", img},
		{"extract", "--ino", "x", img},
		{"extract", "--ino", "5"},
		{"free", "--empty-chunks", "--save-orphans", "d", img},
	} {
		r := runCLI(t, args...)
		expectFailure(t, r, exitUsage)
	}
}

// TestExtractCLI: on the orphans fixture (a frozen snapshot, dirty log),
// extract writes each file's known bytes (a btree-format sparse file with
// its holes as holes, a single extent, local and remote symlink targets),
// to a file or to stdout, says the log is dirty, refuses a fifo, an
// existing output (unless --force) and a bad number with exit 1, and
// --all-orphans saves all 313 orphans with a manifest; the image is never
// written.
func TestExtractCLI(t *testing.T) {
	testimg.Need(t, "zstd")
	img := testimg.Path(t, "orphans")
	sum := testimg.Hash(t, img)
	inos := fixtureOrphans(t, img)
	dir := t.TempDir()
	want := map[string][]byte{"one-extent": fixtureOneExtent(), "btree-file": fixtureBtreeFile(),
		"long-link": []byte(fixtureLongLink()), "short-link": []byte("empty"), "xattr-remote": []byte("b")}
	for name, w := range want {
		ino := strconv.FormatUint(inos[name], 10)
		out := filepath.Join(dir, name)
		r := runCLI(t, "extract", "--ino", ino, "-o", out, img)
		if r.code != 0 || !strings.Contains(r.stdout, "saved to "+out) || !strings.Contains(r.stderr, "the log is dirty") {
			t.Errorf("extract %s: exit %d\n%s%s", name, r.code, r.stdout, r.stderr)
		}
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, w) {
			t.Errorf("extract %s: %d bytes (%v), want %d", name, len(got), err, len(w))
		}
		r = runCLI(t, "extract", "-q", "--ino", ino, "-o", "-", img)
		if r.code != 0 || r.stdout != string(w) || r.stderr != "" {
			t.Errorf("extract %s -o -: exit %d, %d bytes, stderr %q", name, r.code, len(r.stdout), r.stderr)
		}
	}
	// The btree-format file: 2000 blocks of data, 2000 holes.
	if fi, err := os.Stat(filepath.Join(dir, "btree-file")); err != nil || fi.Size() != 2*2000*fixBS {
		t.Fatalf("btree-file: %v", err)
	}
	if st := dataBytes(t, filepath.Join(dir, "btree-file")); st != 2000*fixBS {
		t.Errorf("btree-file: %d bytes of data in the output, want %d (the holes kept)", st, 2000*fixBS)
	}
	// --json.
	out := filepath.Join(dir, "one-extent.json-run")
	r := runCLI(t, "extract", "--json", "--ino", strconv.FormatUint(inos["one-extent"], 10), "-o", out, img)
	var ej struct {
		LogClean bool   `json:"log_clean"`
		Path     string `json:"path"`
		Data     int64  `json:"data_bytes"`
		Size     int64  `json:"size"`
		Inode    struct {
			Ino  uint64 `json:"ino"`
			Type string `json:"type"`
		} `json:"inode"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ej) != nil || ej.LogClean || ej.Path != out || ej.Data != 8*fixBS ||
		ej.Size != 8*fixBS || ej.Inode.Ino != inos["one-extent"] || ej.Inode.Type != "regular" || r.stderr != "" {
		t.Errorf("extract --json: exit %d %+v\n%s%s", r.code, ej, r.stdout, r.stderr)
	}
	// Refusals.
	expectFailure(t, runCLI(t, "extract", "-q", "--ino", strconv.FormatUint(inos["fifo"], 10), "-o", filepath.Join(dir, "fifo"), img),
		exitFailed, "fifo", "no data")
	expectFailure(t, runCLI(t, "extract", "-q", "--ino", strconv.FormatUint(inos["one-extent"], 10), "-o", filepath.Join(dir, "one-extent"), img),
		exitFailed, "exists", "--force")
	if r := runCLI(t, "extract", "-q", "--force", "--ino", strconv.FormatUint(inos["one-extent"], 10), "-o", filepath.Join(dir, "one-extent"), img); r.code != 0 {
		t.Errorf("--force: exit %d %s", r.code, r.stderr)
	}
	expectFailure(t, runCLI(t, "extract", "-q", "--ino", "99999999999", "-o", filepath.Join(dir, "bad"), img), exitFailed, "not an inode number")
	// Any inode, not only orphans: a linked file (populate.py's
	// data/one-extent, 16 blocks of 0xab) and the root directory (no bytes).
	linked, err := testimg.ParseUint(testimg.ParseFields(testimg.DB(t, img, "path /data/one-extent", "p v3.inumber"))["v3.inumber"])
	if err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "extract", "-q", "--ino", strconv.FormatUint(linked, 10), "-o", "-", img)
	if r.code != 0 || r.stdout != strings.Repeat("\xab", 16*fixBS) {
		t.Errorf("extract of linked inode %d: exit %d, %d bytes: %s", linked, r.code, len(r.stdout), r.stderr)
	}
	expectFailure(t, runCLI(t, "extract", "-q", "--ino", testimg.Superblock(t, img)["rootino"], "-o", "-", img), exitFailed, "directory")
	// Every orphan.
	all := filepath.Join(dir, "all")
	r = runCLI(t, "extract", "-q", "--all-orphans", all, img)
	if r.code != 0 || !strings.Contains(r.stdout, "saved 313 of 313 orphan(s)") {
		t.Errorf("--all-orphans: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for name, w := range want {
		if got, _ := os.ReadFile(filepath.Join(all, strconv.FormatUint(inos[name], 10))); !bytes.Equal(got, w) {
			t.Errorf("--all-orphans %s: %d bytes, want %d", name, len(got), len(w))
		}
	}
	var m rescue.Manifest
	if b, err := os.ReadFile(filepath.Join(all, rescue.ManifestName)); err != nil || json.Unmarshal(b, &m) != nil || m.Saved != 313 || m.LogClean {
		t.Errorf("manifest: %v, %d saved", err, m.Saved)
	}
	expectFailure(t, runCLI(t, "extract", "-q", "--all-orphans", all, img), exitFailed, "manifest")
	r = runCLI(t, "extract", "--json", "--all-orphans", filepath.Join(dir, "all2"), img)
	var doc struct {
		Saved rescue.Manifest `json:"saved"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &doc) != nil || doc.Saved.Saved != 313 {
		t.Errorf("--all-orphans --json: exit %d: %s", r.code, r.stderr)
	}
	// scan -v says what each orphan holds.
	r = runCLI(t, "scan", "-v", img)
	for _, w := range []string{"-> \"empty\"", "xattrs 1: \"user.big\"", "symlink 0120777 uid", "(btree)", "fifo 010644 uid"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("scan -v lacks %q", w)
		}
	}
	if testimg.Hash(t, img) != sum {
		t.Error("extract or scan -v wrote to the image")
	}
}

// dataBytes is the bytes of data SEEK_DATA/SEEK_HOLE find in a file.
func dataBytes(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	var n int64
	for off := int64(0); off < fi.Size(); {
		d, err := f.Seek(off, 3) // SEEK_DATA
		if err != nil {
			break
		}
		h, err := f.Seek(d, 4) // SEEK_HOLE
		if err != nil {
			t.Fatal(err)
		}
		n += h - d
		off = h
	}
	return n
}

// TestFreeSaveOrphansCLI: after recover, `free --orphans --save-orphans
// DIR` saves every orphan (the known bytes, a manifest) and frees them
// all; with a bmbt block of one orphan fuzzed (xfs_db, CRC kept), that
// orphan is refused as not saved, by number, the others are freed, and the
// exit status is 1; --json carries the manifest.
func TestFreeSaveOrphansCLI(t *testing.T) {
	testimg.Need(t, "xfs_db", "xfs_repair", "zstd")
	img := testimg.Path(t, "orphans")
	inos := fixtureOrphans(t, img)
	if r := runCLI(t, "recover", img); r.code != 0 {
		t.Fatalf("recover: %s", r.stderr)
	}
	bad := testimg.Path(t, "orphans")
	if r := runCLI(t, "recover", bad); r.code != 0 {
		t.Fatalf("recover: %s", r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "saved")
	r := runCLI(t, "free", "--orphans", "--save-orphans", dir, img)
	if r.code != 0 || !strings.Contains(r.stdout, "saved 313 of 313 orphan(s)") || !strings.Contains(r.stdout, "freed 313 orphan(s)") {
		t.Fatalf("free --save-orphans: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, strconv.FormatUint(inos["btree-file"], 10))); !bytes.Equal(got, fixtureBtreeFile()) {
		t.Errorf("saved btree-file: %d bytes", len(got))
	}
	testimg.Repair(t, img)

	btree := inos["btree-file"]
	testimg.DBWrite(t, bad, fmt.Sprintf("inode %d", btree), "addr u3.bmbt.ptrs[1]", "fuzz -d recs[5].startoff zeroes")
	dir = filepath.Join(t.TempDir(), "saved")
	r = runCLI(t, "free", "--orphans", "--json", "--save-orphans", dir, bad)
	var f struct {
		freeJSON
		Saved *rescue.Manifest `json:"saved"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("free --json: %v\n%s", err, r.stdout)
	}
	expectFailure(t, r, exitFailed, "1 refused")
	if f.InodesFreed != 312 || len(f.Refused) != 1 || f.Refused[0].Ino != btree || !strings.Contains(f.Refused[0].Reason, "not saved") ||
		!strings.Contains(f.Refused[0].Reason, "bmbt block") || f.Saved == nil || f.Saved.Saved != 312 || f.Saved.Failed != 1 {
		t.Errorf("free --save-orphans on a corrupt bmbt: freed %d, refused %+v, saved %+v", f.InodesFreed, f.Refused, f.Saved)
	}
	if _, err := os.Lstat(filepath.Join(dir, strconv.FormatUint(btree, 10))); err == nil {
		t.Error("a file was saved for the corrupt orphan")
	}
}
