// Package testimg is the test support for real XFS images: it owns the fixture images (the
// committed ones in testdata/images and the larger ones scripts/mkfs-fixtures.sh builds at test
// time), hands each test a private writable copy, and runs the xfsprogs tools against images
// (xfs_db, xfs_repair, loop mounts) with parsers for what xfs_db 6.1 prints.
//
// Nothing here is mocked: every image is made by mkfs.xfs and every reference value comes from
// xfs_db or the kernel. When root, a loop device or a tool is missing, the calling test is skipped
// with a one-line reason.
//
// Built fixtures are cached under $TMPDIR/xfsfree-fixtures/, keyed by the hash of the script (or
// of the compressed image), and built under a file lock so that the test binaries of
// `go test ./...` share one build.
package testimg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A fixture's properties, as scripts/mkfs-fixtures.sh builds it.
type fixture struct {
	name    string
	v4      bool // crc=0: xfsfree must refuse it
	orphans bool // frozen snapshot: orphans on the unlinked lists, dirty log
	slow    bool // built at test time and slow to build: skipped under -short unless cached
}

// fixtures lists every fixture; keep in step with ALL in scripts/mkfs-fixtures.sh (a test checks).
var fixtures = []fixture{
	{name: "default"},
	{name: "bs1024"},
	{name: "bs4096"},
	{name: "isize1024"},
	{name: "isize2048"},
	{name: "sect4096"},
	{name: "nosparse"},
	{name: "nofinobt"},
	{name: "rmapbt"},
	{name: "nrext64"},
	{name: "crc0", v4: true},
	{name: "agcount1"},
	{name: "agcount32"},
	{name: "inobt3", slow: true},
	{name: "orphans", orphans: true},
	{name: "orphans-rmap", orphans: true},
	{name: "orphans-nosparse", orphans: true},
}

func lookup(name string) (fixture, bool) {
	for _, f := range fixtures {
		if f.name == name {
			return f, true
		}
	}
	return fixture{}, false
}

func filter(keep func(fixture) bool) []string {
	var names []string
	for _, f := range fixtures {
		if keep(f) {
			names = append(names, f.name)
		}
	}
	return names
}

// Names returns every fixture name.
func Names() []string { return filter(func(fixture) bool { return true }) }

// ReadOnlyFixtures returns the fixtures every read-only command must handle: all v5 images,
// including the orphan snapshots with their dirty logs. It leaves out crc0 (see V4Fixtures).
func ReadOnlyFixtures() []string { return filter(func(f fixture) bool { return !f.v4 }) }

// CleanFixtures returns the v5 fixtures with a clean log and no orphans: those a writing command
// may start from as they are and that xfs_repair -n accepts.
func CleanFixtures() []string {
	return filter(func(f fixture) bool { return !f.v4 && !f.orphans })
}

// OrphanFixtures returns the frozen-snapshot fixtures: orphans on the AGI unlinked lists and a
// dirty log.
func OrphanFixtures() []string { return filter(func(f fixture) bool { return f.orphans }) }

// V4Fixtures returns the v4 (crc=0) fixtures, which xfsfree must refuse.
func V4Fixtures() []string { return filter(func(f fixture) bool { return f.v4 }) }

// Committed reports whether the named fixture is stored compressed in testdata/images (and so
// needs only zstd to get), rather than built at test time.
func Committed(name string) bool {
	root, err := RepoRoot()
	if err != nil {
		return false
	}
	_, err = os.Stat(compressedPath(root, name))
	return err == nil
}

// Compressed returns the path of the named fixture's committed zstd image in testdata/images, or
// "" if the fixture is built at test time.
func Compressed(name string) string {
	root, err := RepoRoot()
	if err != nil || !Committed(name) {
		return ""
	}
	return compressedPath(root, name)
}

// Unpack decompresses the committed fixture name into dst, a private writable copy, for code
// that has no testing.TB (the TestMain and runnable examples of a package). It needs zstd; the
// error says what is missing.
func Unpack(name, dst string) error {
	zst := Compressed(name)
	if zst == "" {
		return fmt.Errorf("testimg: fixture %s is not committed in testdata/images", name)
	}
	z := tool("zstd")
	if z == "" {
		return errors.New("testimg: zstd is not installed")
	}
	if out, err := exec.Command(z, "-d", "-q", "-f", "--long=27", zst, "-o", dst).CombinedOutput(); err != nil {
		return fmt.Errorf("testimg: zstd -d %s: %v: %s", zst, err, out)
	}
	return nil
}

func compressedPath(root, name string) string {
	return filepath.Join(root, "testdata", "images", name+".img.zst")
}

// RepoRoot returns the module root: the nearest directory at or above the working directory that
// holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testimg: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Script returns the path of scripts/mkfs-fixtures.sh.
func Script() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "scripts", "mkfs-fixtures.sh"), nil
}

// buildTools are what scripts/mkfs-fixtures.sh runs.
var buildTools = []string{"loop", "mkfs.xfs", "xfs_db", "xfs_repair", "xfs_freeze", "mount", "umount", "python3", "bash"}

// Path returns the path of a fresh, private, writable copy of the named fixture, in t.TempDir().
// A committed fixture is decompressed (needs zstd); another is built by scripts/mkfs-fixtures.sh
// (needs root, a loop device and xfsprogs). Either is cached across tests and test binaries, and
// copied sparsely. The test is skipped if what it needs is missing, and for a slow fixture under
// -short unless it is already cached.
func Path(t testing.TB, name string) string {
	t.Helper()
	src := cached(t, name)
	dst := filepath.Join(t.TempDir(), name+".img")
	if err := CopySparse(dst, src); err != nil {
		t.Fatalf("testimg: copy %s: %v", name, err)
	}
	return dst
}

// cached returns the read-only cached image of the named fixture, making it if needed.
func cached(t testing.TB, name string) string {
	t.Helper()
	f, ok := lookup(name)
	if !ok {
		t.Fatalf("testimg: unknown fixture %q (have %s)", name, strings.Join(Names(), " "))
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var key, how string
	zst := compressedPath(root, name)
	if _, err := os.Stat(zst); err == nil {
		Need(t, "zstd")
		h, err := hashFile(zst)
		if err != nil {
			t.Fatal(err)
		}
		key, how = "zst-"+h, "zst"
	} else {
		Need(t, buildTools...)
		script := filepath.Join(root, "scripts", "mkfs-fixtures.sh")
		h, err := hashFile(script)
		if err != nil {
			t.Fatalf("testimg: fixture %s is not committed and the script is missing: %v", name, err)
		}
		key, how = "sh-"+h, "script"
	}
	dir := filepath.Join(os.TempDir(), "xfsfree-fixtures", key)
	img := filepath.Join(dir, name+".img")
	if _, err := os.Stat(img); err == nil {
		return img
	}
	if f.slow && testing.Short() {
		t.Skipf("testimg: fixture %s is slow to build; not in -short mode", name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(filepath.Join(dir, name+".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(img); err == nil {
		return img // another process built it while we waited
	}
	start := time.Now()
	switch how {
	case "zst":
		tmp := img + ".tmp"
		out, err := exec.Command(tool("zstd"), "-d", "-q", "-f", "--long=27", zst, "-o", tmp).CombinedOutput()
		if err != nil {
			os.Remove(tmp)
			t.Fatalf("testimg: zstd -d %s: %v\n%s", zst, err, out)
		}
		if err := finish(tmp, img); err != nil {
			t.Fatal(err)
		}
	case "script":
		// The script builds in a private directory under OUTDIR and renames into place.
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "mkfs-fixtures.sh"), dir, name)
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("testimg: scripts/mkfs-fixtures.sh %s: %v\n%s", name, err, out)
		}
		if err := os.Chmod(img, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("testimg: made fixture %s in %v", name, time.Since(start).Round(time.Millisecond))
	return img
}

func finish(tmp, img string) error {
	if err := os.Chmod(tmp, 0o444); err != nil {
		return err
	}
	return os.Rename(tmp, img)
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// lockFile takes an exclusive flock on path, blocking; the lock is per open file, so it excludes
// other goroutines of this process as well as other processes.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("testimg: flock %s: %w", path, err)
	}
	return func() {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// CopySparse copies src to a new file dst, leaving holes where src has holes or zero blocks:
// a reflink if the filesystem can, else the data segments found with SEEK_DATA/SEEK_HOLE.
func CopySparse(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return out.Close()
	}
	size := fi.Size()
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	zero := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole is left
		}
		if err != nil {
			data = off // no SEEK_DATA: copy everything
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		for p := data; p < hole; {
			n := min(int64(chunk), hole-p)
			if _, err := in.ReadAt(buf[:n], p); err != nil {
				out.Close()
				return err
			}
			for q := int64(0); q < n; q += int64(len(zero)) {
				e := min(q+int64(len(zero)), n)
				b := buf[q:e]
				if string(b) == string(zero[:len(b)]) {
					continue
				}
				if _, err := out.WriteAt(b, p+q); err != nil {
					out.Close()
					return err
				}
			}
			p += n
		}
		off = hole
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Tool returns the path to run a named program as Need finds it ("" if it is nowhere): for test
// support that runs xfsprogs itself, with its own timeouts.
func Tool(name string) string { return tool(name) }

// tool returns the path to run a named program: from $PATH, else /usr/sbin or /sbin (where
// xfsprogs lives, often not on a non-root user's $PATH); "" if it is nowhere.
func tool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

var loopOnce struct {
	sync.Once
	err error
}

// Need skips the test with a one-line reason unless everything named is available. A name is a
// program looked up in $PATH, /usr/sbin and /sbin (mkfs.xfs, xfs_db, xfs_repair, xfs_io,
// xfs_freeze, zstd, ...), or "root" (effective uid 0), or "loop" (root and a usable loop device).
// With no names it needs root, loop devices, mkfs.xfs, xfs_db and xfs_repair.
func Need(t testing.TB, what ...string) {
	t.Helper()
	if len(what) == 0 {
		what = []string{"loop", "mkfs.xfs", "xfs_db", "xfs_repair"}
	}
	for _, w := range what {
		switch w {
		case "root":
			if os.Geteuid() != 0 {
				t.Skip("testimg: needs root")
			}
		case "loop":
			if os.Geteuid() != 0 {
				t.Skip("testimg: needs root (loop devices)")
			}
			loopOnce.Do(func() {
				if _, err := os.Stat("/dev/loop-control"); err != nil {
					loopOnce.err = errors.New("no /dev/loop-control")
				}
			})
			if loopOnce.err != nil {
				t.Skipf("testimg: needs loop devices: %v", loopOnce.err)
			}
		default:
			if tool(w) == "" {
				t.Skipf("testimg: needs %s, not found", w)
			}
		}
	}
}
