package journal

import (
	"testing"

	"github.com/xfsfree/xfsfree/cache"
	"github.com/xfsfree/xfsfree/internal/testimg"
	"github.com/xfsfree/xfsfree/ondisk"
)

// openWriteDev opens an image read-write and finds its log state.
func openWriteDev(t *testing.T, img string) (*cache.Device, Geometry, *State) {
	t.Helper()
	dev, err := cache.Open(img, cache.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	b, err := dev.ReadAt(0, 8)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := ondisk.DecodeSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ondisk.NewGeometry(sb)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := NewGeometry(g)
	if err != nil {
		t.Fatal(err)
	}
	st, err := New(dev, lg).FindTail()
	if err != nil {
		t.Fatal(err)
	}
	return dev, lg, st
}

// kernelMount mounts and unmounts img and reports whether the kernel ran
// log recovery.
func kernelMount(t *testing.T, img string) (recovered bool) {
	t.Helper()
	_, recovered = testimg.KernelMountCycle(t, img)
	return recovered
}

func TestWriterUnmountRecord(t *testing.T) {
	testimg.Need(t)
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{"default", nil},
		{"sunit32k", []string{"-l", "su=32k"}},
		{"sunit64k", []string{"-l", "su=64k"}},
		{"sect4096", []string{"-s", "size=4096"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := mkImage(t, nil, tc.opts...)
			dev, lg, st := openWriteDev(t, img)
			if !st.Clean {
				t.Fatalf("fresh log not clean: %v", st)
			}
			w, err := NewWriter(dev, lg, st)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				if err := w.WriteUnmount(); err != nil {
					t.Fatal(err)
				}
			}
			head, cycle := w.Head()
			t.Logf("before: %v; head now %d cycle %d", st, head, cycle)
			st2, err := New(dev, lg).FindTail()
			if err != nil {
				t.Fatal(err)
			}
			if !st2.Clean || !st2.Unmounted || st2.Head != head || st2.HeadCycle != cycle {
				t.Fatalf("after 3 unmount records at head %d cycle %d: %v", head, cycle, st2)
			}
			dev.Close()
			ltail, lhead, clean, out := logprintHeadTail(t, img)
			if !clean || lhead != head || ltail != head {
				t.Fatalf("xfs_logprint: tail %d head %d clean %v, want %d\n%s", ltail, lhead, clean, head, out)
			}
			testimg.Repair(t, img)
			if kernelMount(t, img) {
				t.Fatal("kernel ran recovery on a log ending in our unmount record")
			}
		})
	}
}
