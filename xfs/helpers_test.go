package xfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"

	"github.com/xfsfree/xfsfree/internal/testimg"
	"golang.org/x/sys/unix"
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

// sha returns a SHA-256 of the file at path: of its size and of every data
// segment with its offset (SEEK_DATA/SEEK_HOLE), so that a sparse 4 GiB image
// hashes in the time its data takes to read. A write anywhere changes it.
func sha(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	h := sha256.New()
	fmt.Fprintf(h, "size %d\n", size)
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			data = off
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		fmt.Fprintf(h, "data %d\n", data)
		if _, err := io.Copy(h, io.NewSectionReader(f, data, hole-data)); err != nil {
			t.Fatal(err)
		}
		off = hole
	}
	return hex.EncodeToString(h.Sum(nil))
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
