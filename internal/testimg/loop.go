package testimg

import (
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// LoopAttach attaches img to a free loop device with losetup's extra
// arguments (`-o OFFSET --sizelimit SIZE`, `--sector-size 4096`, ...) and
// returns the device and a function that detaches it; the test's cleanup
// detaches it unless that function already did (only once: the number may
// have gone to another test's device since). The kernel here has no
// partition support: a loop device over a byte range is how it sees a
// partition.
func LoopAttach(t testing.TB, img string, args ...string) (dev string, detach func()) {
	t.Helper()
	Need(t, "loop", "losetup")
	a := append(append([]string{"-f", "--show"}, args...), img)
	out, err := exec.Command(tool("losetup"), a...).CombinedOutput()
	if err != nil {
		t.Fatalf("testimg: losetup %s: %v\n%s", strings.Join(a, " "), err, out)
	}
	dev = strings.TrimSpace(string(out))
	var once sync.Once
	detach = func() {
		once.Do(func() {
			if out, err := exec.Command(tool("losetup"), "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("testimg: losetup -d %s: %v\n%s", dev, err, out)
			}
		})
	}
	t.Cleanup(detach)
	return dev, detach
}

// LoopAttachRange attaches the byte range [off, off+size) of img, as the
// kernel would see a partition there.
func LoopAttachRange(t testing.TB, img string, off, size int64, args ...string) (dev string, detach func()) {
	t.Helper()
	return LoopAttach(t, img, append([]string{"-o", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(size, 10)}, args...)...)
}
