package testimg

import (
	"os"
	"path/filepath"
	"testing"
)

// Hash depends on the bytes only: writing zeros into a hole keeps it, any
// other byte changes it, in data or in a hole.
func TestHash(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	write := func(off int64, b []byte) {
		t.Helper()
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		f.Sync()
	}
	write(1<<20, []byte("some data"))
	h0 := Hash(t, p)
	if Hash(t, p) != h0 {
		t.Fatal("not stable")
	}
	write(30<<20, make([]byte, 8192))
	if Hash(t, p) != h0 {
		t.Fatal("zeros written into a hole changed the hash")
	}
	write(30<<20+100, []byte{1})
	h1 := Hash(t, p)
	if h1 == h0 {
		t.Fatal("a byte in a hole went unnoticed")
	}
	write(1<<20+3, []byte{'x'})
	if Hash(t, p) == h1 {
		t.Fatal("a byte in data went unnoticed")
	}
}
