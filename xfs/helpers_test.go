package xfs

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
)

// openRO opens img read-only; the test's cleanup closes it.
func openRO(t testing.TB, img string) *FS {
	t.Helper()
	fs, err := Open(img, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open %s: %v", img, err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}

// num parses an xfs_db value, failing the test on a bad one.
func num(t testing.TB, f map[string]string, key string) uint64 {
	t.Helper()
	v, ok := f[key]
	if !ok {
		t.Fatalf("xfs_db printed no %s", key)
	}
	n, err := testimg.ParseUint(v)
	if err != nil {
		t.Fatalf("xfs_db %s = %q: %v", key, v, err)
	}
	return n
}

// logprint is what `xfs_logprint -t` says of the log: its tail and head
// (BBs from the start of the log) and whether it is clean.
type logprint struct {
	Tail, Head int64
	Clean      bool
}

var logprintState = regexp.MustCompile(`log tail: (\d+) head: (\d+) state: <(\w+)>`)

func xfsLogprint(t testing.TB, img string) logprint {
	t.Helper()
	testimg.Need(t, "xfs_logprint")
	out, err := exec.Command(lookTool("xfs_logprint"), "-t", img).CombinedOutput()
	if err != nil {
		t.Fatalf("xfs_logprint -t %s: %v\n%s", img, err, out)
	}
	m := logprintState.FindSubmatch(out)
	if m == nil {
		t.Fatalf("xfs_logprint -t %s: no \"log tail: T head: H state: <S>\" line:\n%s", img, out)
	}
	tail, _ := strconv.ParseInt(string(m[1]), 10, 64)
	head, _ := strconv.ParseInt(string(m[2]), 10, 64)
	return logprint{Tail: tail, Head: head, Clean: string(m[3]) == "CLEAN"}
}

func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(d + "/" + name); err == nil {
			return d + "/" + name
		}
	}
	return name
}

// isOrphanFixture reports whether name is one of testimg.OrphanFixtures.
func isOrphanFixture(name string) bool {
	for _, n := range testimg.OrphanFixtures() {
		if n == name {
			return true
		}
	}
	return false
}

func agCmd(kind string, agno uint32) string { return fmt.Sprintf("%s %d", kind, agno) }
