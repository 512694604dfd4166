// Package testfs is test support that needs the filesystem handle (which
// internal/testimg cannot import: the xfs package's own tests import
// testimg). It owns opening a fixture image read-only for a test.
package testfs

import (
	"testing"

	"github.com/xfsfree/xfsfree/xfs"
)

// OpenRO opens img read-only and closes it when the test ends.
func OpenRO(t testing.TB, img string) *xfs.FS {
	t.Helper()
	fs, err := xfs.Open(img, xfs.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("Open %s: %v", img, err)
	}
	t.Cleanup(func() { fs.Close() })
	return fs
}
