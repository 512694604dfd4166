package main

import (
	"fmt"
	"os"

	"github.com/xfsfree/xfsfree/rescue"
	"github.com/xfsfree/xfsfree/xfs"
)

// saveBeforeFree is the rescue step of `free --save-orphans DIR` (and of
// a future `clean --save-orphans`): on the handle the free will use,
// before its first write, it saves the orphans o selects into dir and
// makes o keep (refuse, with the reason) those that could not be saved.
// Its summary is printed before the free's report in text mode; with
// --json it is the "saved" member of the free's document.
func saveBeforeFree(g *globalFlags, fs *xfs.FS, dir string, o *xfs.FreeOptions) (*rescue.Manifest, error) {
	var inos []uint64
	if !o.Orphans {
		inos = o.Inos
	}
	m, err := saveOrphans(g, fs, dir, inos)
	if err != nil {
		return nil, fmt.Errorf("saving the orphans before freeing them (nothing freed): %w", err)
	}
	// Forget the attr and symlink blocks the save read: the free frees
	// them, and its cache must not hand them out as anything else.
	fs.Cache.DropClean()
	keep := m.NotSaved()
	if len(keep) > 0 {
		if o.Keep == nil {
			o.Keep = map[uint64]string{}
		}
		for ino, why := range keep {
			o.Keep[ino] = why
		}
	}
	if !g.json {
		printSaved(os.Stdout, m, "")
	}
	return m, nil
}
