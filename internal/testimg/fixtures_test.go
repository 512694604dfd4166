package testimg

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// The script's fixture list (printed by its usage message, before it checks for root) is Names().
func TestNamesMatchScript(t *testing.T) {
	Need(t, "bash")
	script, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("script without arguments succeeded")
	}
	var got []string
	for _, line := range strings.Split(stderr.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "fixtures: "); ok {
			got = strings.Fields(rest)
		}
	}
	if !reflect.DeepEqual(got, Names()) {
		t.Errorf("script fixtures %v\nNames()        %v", got, Names())
	}
}

// want is what each fixture's superblock must say.
type want struct {
	v5                       bool
	blocksize, inodesize, ss uint64
	agcount                  uint64
	features, absent         []string // in `xfs_db -c version` output
}

var wants = map[string]want{
	"default":          {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4, features: []string{"FINOBT", "SPARSE_INODES", "REFLINK"}, absent: []string{"RMAPBT", "NREXT64"}},
	"bs1024":           {v5: true, blocksize: 1024, inodesize: 512, ss: 512, agcount: 4},
	"bs4096":           {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4},
	"isize1024":        {v5: true, blocksize: 4096, inodesize: 1024, ss: 512, agcount: 4},
	"isize2048":        {v5: true, blocksize: 4096, inodesize: 2048, ss: 512, agcount: 4},
	"sect4096":         {v5: true, blocksize: 4096, inodesize: 512, ss: 4096, agcount: 4},
	"nosparse":         {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4, absent: []string{"SPARSE_INODES"}},
	"nofinobt":         {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4, absent: []string{"FINOBT"}},
	"rmapbt":           {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4, features: []string{"RMAPBT"}},
	"nrext64":          {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4, features: []string{"NREXT64"}},
	"crc0":             {v5: false, blocksize: 4096, inodesize: 256, ss: 512, agcount: 4, absent: []string{"CRC", "FINOBT"}},
	"agcount1":         {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 1},
	"agcount32":        {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 32},
	"inobt3":           {v5: true, blocksize: 1024, inodesize: 512, ss: 512, agcount: 1},
	"orphans":          {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4},
	"orphans-rmap":     {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4, features: []string{"RMAPBT"}},
	"orphans-nosparse": {v5: true, blocksize: 4096, inodesize: 512, ss: 512, agcount: 4, absent: []string{"SPARSE_INODES"}},
}

func TestFixtures(t *testing.T) {
	if len(wants) != len(Names()) {
		t.Errorf("wants has %d fixtures, Names() %d", len(wants), len(Names()))
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			img := Path(t, name)
			w := wants[name]
			sb := Superblock(t, img)
			for k, v := range map[string]uint64{"blocksize": w.blocksize, "inodesize": w.inodesize, "sectsize": w.ss, "agcount": w.agcount} {
				if got, err := ParseUint(sb[k]); err != nil || got != v {
					t.Errorf("sb %s = %q, want %d", k, sb[k], v)
				}
			}
			version := DB(t, img, "version")
			vers := "V4,"
			if w.v5 {
				vers = "V5,"
			}
			if !strings.Contains(version, "= "+vers) {
				t.Errorf("version: %s, want %s", version, vers)
			}
			for _, f := range w.features {
				if !strings.Contains(version, ","+f) {
					t.Errorf("version lacks %s: %s", f, version)
				}
			}
			for _, f := range w.absent {
				if strings.Contains(version, ","+f+",") || strings.HasSuffix(strings.TrimSpace(version), ","+f) {
					t.Errorf("version has %s: %s", f, version)
				}
			}
			if !w.v5 {
				return
			}
			checkInobts(t, img, sb)
			if strings.HasPrefix(name, "orphans") {
				checkOrphans(t, img)
			} else {
				Repair(t, img)
			}
		})
	}
}

// checkInobts reads every AG's inobt and finobt and checks them against the AGI counters: this
// exercises InobtRecords and the record parsers on every fixture's geometry.
func checkInobts(t *testing.T, img string, sb map[string]string) {
	t.Helper()
	g := Geo(t, img)
	sparse := strings.Contains(DB(t, img, "version"), "SPARSE_INODES")
	finobt := strings.Contains(DB(t, img, "version"), "FINOBT")
	var icount, ifree uint64
	for agno := range g.AGCount {
		agi := AGI(t, img, agno)
		recs := InobtRecords(t, img, agno, false)
		var count, free, prev uint64
		var withFree []Record
		for i, r := range recs {
			if i > 0 && r["startino"] <= prev {
				t.Errorf("AG %d inobt record %d startino %d after %d", agno, i, r["startino"], prev)
			}
			prev = r["startino"]
			n := uint64(64)
			if sparse {
				n = r["count"]
			} else if _, ok := r["count"]; ok {
				t.Errorf("AG %d: non-sparse record has a count field: %v", agno, r)
			}
			count += n
			free += r["freecount"]
			if r["freecount"] > 0 {
				withFree = append(withFree, r)
			}
		}
		if fmt.Sprint(count) != agi["count"] || fmt.Sprint(free) != agi["freecount"] {
			t.Errorf("AG %d: inobt records count %d free %d, AGI count %s freecount %s", agno, count, free, agi["count"], agi["freecount"])
		}
		icount += count
		ifree += free
		if finobt {
			if frecs := InobtRecords(t, img, agno, true); !reflect.DeepEqual(frecs, withFree) && len(frecs)+len(withFree) > 0 {
				t.Errorf("AG %d: finobt %v, inobt records with free inodes %v", agno, frecs, withFree)
			}
		}
	}
	// The superblock counters are lazy (lazy-count=1): exact only in a cleanly unmounted image.
	if !strings.Contains(filepath.Base(img), "orphans") {
		if sb["icount"] != fmt.Sprint(icount) || sb["ifree"] != fmt.Sprint(ifree) {
			t.Errorf("sb icount %s ifree %s, inobts %d %d", sb["icount"], sb["ifree"], icount, ifree)
		}
	}
}

// checkOrphans checks what the orphan fixtures promise: orphans on the unlinked lists of several
// AGs, chains of two or more, a whole chunk of orphans, and a dirty log.
func checkOrphans(t *testing.T, img string) {
	t.Helper()
	g := Geo(t, img)
	total, longest, wholeChunks := 0, 0, 0
	for agno := range g.AGCount {
		orphan := map[uint32]bool{}
		for _, chain := range OrphanChains(t, img, agno) {
			total += len(chain)
			longest = max(longest, len(chain))
			for _, agino := range chain {
				orphan[agino] = true
				f := Inode(t, img, g.Ino(agno, agino))
				if f["core.nlinkv2"] != "0" {
					t.Errorf("orphan %d has nlink %s", g.Ino(agno, agino), f["core.nlinkv2"])
				}
			}
		}
		for _, r := range InobtRecords(t, img, agno, false) {
			all := true
			for i := range uint32(64) {
				if r["holemask"]&(1<<(i/4)) == 0 && !orphan[uint32(r["startino"])+i] {
					all = false
					break
				}
			}
			if all {
				wholeChunks++
			}
		}
	}
	t.Logf("%d orphans, longest chain %d, %d chunks all orphans", total, longest, wholeChunks)
	if total < 300 || longest < 2 || wholeChunks < 1 {
		t.Errorf("%d orphans, longest chain %d, %d chunks all orphans; want >= 300, >= 2, >= 1", total, longest, wholeChunks)
	}
	if out, exit := TryRepair(t, img); exit == 0 || !strings.Contains(out, "valuable metadata changes in a log") {
		t.Errorf("xfs_repair -n: exit %d, no dirty log reported\n%s", exit, out)
	}
}

func TestInobt3Levels(t *testing.T) {
	img := Path(t, "inobt3")
	agi := AGI(t, img, 0)
	if l, err := ParseUint(agi["level"]); err != nil || l < 3 {
		t.Fatalf("inobt3: agi level = %q, want >= 3", agi["level"])
	}
}

func TestCrc0IsV4(t *testing.T) {
	img := Path(t, "crc0")
	sb := Superblock(t, img)
	v, err := ParseUint(sb["versionnum"])
	if err != nil || v&0xf != 4 {
		t.Errorf("crc0 versionnum = %q, want version 4", sb["versionnum"])
	}
}

// Fixtures exercise every inode fork format the tests rely on.
func TestDefaultForks(t *testing.T) {
	img := Path(t, "default")
	ino := func(path string) uint64 {
		f := ParseFields(DB(t, img, "path "+path, "p v3.inumber"))
		v, err := ParseUint(f["v3.inumber"])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return v
	}
	for path, want := range map[string][2]string{
		"/data":              {"core.format", "2 (extents)"},
		"/data/sfdir":        {"core.format", "1 (local)"},
		"/data/many":         {"core.format", "2 (extents)"},
		"/data/btree-file":   {"core.format", "3 (btree)"},
		"/data/one-extent":   {"core.nextents", "1"},
		"/data/short-link":   {"core.format", "1 (local)"},
		"/data/long-link":    {"core.format", "2 (extents)"},
		"/data/xattr-local":  {"core.aformat", "1 (local)"},
		"/data/xattr-remote": {"core.aformat", "2 (extents)"},
		"/data/fifo":         {"core.format", "0 (dev)"},
		"/data/chardev":      {"core.format", "0 (dev)"},
	} {
		f := Inode(t, img, ino(path))
		if f[want[0]] != want[1] {
			t.Errorf("%s: %s = %q, want %q", path, want[0], f[want[0]], want[1])
		}
		if f["core.magic"] != "0x494e" || f["next_unlinked"] != "null" {
			t.Errorf("%s: core.magic %q next_unlinked %q", path, f["core.magic"], f["next_unlinked"])
		}
	}
	if f := Inode(t, img, ino("/data/btree-file")); f["core.nextents"] != "400" {
		t.Errorf("btree-file nextents = %q", f["core.nextents"])
	}
}

// Path hands out private sparse copies.
func TestPathPrivate(t *testing.T) {
	a, b := Path(t, "default"), Path(t, "default")
	if a == b {
		t.Fatal("two Path calls gave one file")
	}
	fa, err := os.OpenFile(a, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fa.WriteAt([]byte("XXXX"), 0); err != nil {
		t.Fatal(err)
	}
	fa.Close()
	if f := ParseFields(DB(t, b, "sb 0", "p magicnum")); f["magicnum"] != "0x58465342" {
		t.Errorf("writing one copy changed the other: magicnum %q", f["magicnum"])
	}
	fi, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > fi.Size()/4 {
		t.Errorf("copy is not sparse: %d bytes used of %d", used, fi.Size())
	}
}

func TestMount(t *testing.T) {
	img := Path(t, "default")
	mnt := Mount(t, img)
	if _, err := os.Stat(filepath.Join(mnt, "data", "btree-file")); err != nil {
		t.Fatal(err)
	}
	Unmount(t, mnt)
	Repair(t, img)
}

// The kernel's reference for the orphan fixtures: a mount replays the log and frees the orphans.
func TestKernelFreesOrphans(t *testing.T) {
	for _, name := range OrphanFixtures() {
		t.Run(name, func(t *testing.T) {
			img := Path(t, name)
			Unmount(t, Mount(t, img))
			g := Geo(t, img)
			for agno := range g.AGCount {
				if b := Unlinked(t, img, agno); b != emptyBuckets() {
					t.Errorf("AG %d unlinked after mount: %v", agno, b)
				}
			}
			Repair(t, img)
		})
	}
}

func emptyBuckets() (b [64]uint32) {
	for i := range b {
		b[i] = NullAgino
	}
	return b
}

func TestDBFailsOnError(t *testing.T) {
	img := Path(t, "default")
	out := DBUnchecked(t, img, "agi 99")
	if !dbErrors.MatchString(strings.TrimSpace(out)) {
		t.Errorf("xfs_db error line %q not recognised", out)
	}
	DBWrite(t, img, "sb 0", `write fname "testimg"`)
	if f := ParseFields(DB(t, img, "sb 0", "p fname")); f["fname"] != `"testimg\000\000\000\000\000"` && !strings.Contains(f["fname"], "testimg") {
		t.Errorf("fname after write = %q", f["fname"])
	}
}
