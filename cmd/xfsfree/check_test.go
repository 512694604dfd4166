package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/xfs"
)

// TestCheckCLI: check exits 0 on a clean fixture and on an orphan
// snapshot (saying the log is dirty), 1 with the problem named on crafted
// corruption and on a bad AGF CRC, as text and --json, writing nothing.
func TestCheckCLI(t *testing.T) {
	testimg.Need(t, "xfs_db")
	for _, name := range []string{"default", "orphans"} {
		img := testimg.Path(t, name)
		before := testimg.Hash(t, img)
		r := runCLI(t, "check", img)
		if r.code != exitOK || !strings.Contains(r.stdout, "; consistent; elapsed ") {
			t.Errorf("%s: exit %d\nstdout %s\nstderr %s", name, r.code, r.stdout, r.stderr)
		}
		if dirty := strings.Contains(r.stdout, "note: the log is dirty"); dirty != (name == "orphans") {
			t.Errorf("%s: dirty-log note %v:\n%s", name, dirty, r.stdout)
		}
		r = runCLI(t, "check", "--json", img)
		var rep xfs.CheckReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != exitOK || !rep.Clean {
			t.Errorf("%s --json: exit %d, %v, %+v", name, r.code, err, rep)
		}
		if testimg.Hash(t, img) != before {
			t.Errorf("%s: check wrote to the image", name)
		}
	}

	// Crafted: agi_freecount off by one (CRC kept valid).
	img := testimg.Path(t, "default")
	n, _ := testimg.ParseUint(testimg.AGI(t, img, 0)["freecount"])
	testimg.DBWrite(t, img, "agi 0", fmt.Sprintf("write -d freecount %d", n+1))
	before := testimg.Hash(t, img)
	r := runCLI(t, "check", img)
	expectFailure(t, r, exitFailed, "AG 0", "AGI", "agi_freecount")
	if !strings.Contains(r.stdout, "problem: AG 0") {
		t.Errorf("stdout does not list the problem:\n%s", r.stdout)
	}
	r = runCLI(t, "check", "--json", img)
	expectFailure(t, r, exitFailed, "agi_freecount")
	var rep xfs.CheckReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Clean || len(rep.Problems) != 1 ||
		rep.Problems[0].Field != "agi_freecount" || rep.Problems[0].AG != 0 {
		t.Errorf("--json: %v, %+v", err, rep.Problems)
	}
	if testimg.Hash(t, img) != before {
		t.Errorf("check of a corrupt image wrote to it")
	}

	// A flipped byte in AG 1's AGF: a bad CRC, named with its daddr.
	img = testimg.Path(t, "default")
	sb := testimg.Superblock(t, img)
	agblocks, _ := testimg.ParseUint(sb["agblocks"])
	bs, _ := testimg.ParseUint(sb["blocksize"])
	ss, _ := testimg.ParseUint(sb["sectsize"])
	off := int64(agblocks*bs+ss) + 100
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0xff
	f.WriteAt(b, off)
	f.Close()
	r = runCLI(t, "check", img)
	expectFailure(t, r, exitFailed, "AG 1", fmt.Sprintf("daddr %d", (off-100)/512), "AGF", "crc")
}
