package rescue

// Saving every orphan before it is freed: DIR/<ino> for each regular file
// and symlink, and DIR/manifest.json describing every orphan (saved or
// not, and why).

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/xfsfree/xfsfree/xfs"
)

// ManifestName is the manifest's file name in the save directory.
const ManifestName = "manifest.json"

// Manifest is what SaveOrphans saved, written as DIR/manifest.json.
type Manifest struct {
	Device   string    `json:"device"`
	Dir      string    `json:"dir"`
	Created  time.Time `json:"created"`
	LogClean bool      `json:"log_clean"`
	Note     string    `json:"note,omitempty"`
	Orphans  int       `json:"orphans"`
	Saved    int       `json:"saved"`
	Failed   int       `json:"failed"`
	// Bytes is the data read (holes excluded).
	Bytes int64   `json:"data_bytes"`
	Files []Entry `json:"files"`
	// ScanErrors are AGs whose orphans could not be listed (none of
	// them is saved; a free cannot free them either).
	ScanErrors []xfs.ScanError `json:"scan_errors"`
}

// Entry is one orphan of the manifest.
type Entry struct {
	Ino uint64 `json:"ino"`
	// File is the saved file's name in the directory (the inode number),
	// for regular files and symlinks (whose target is saved as the file's
	// bytes).
	File string `json:"file,omitempty"`
	// Saved: the orphan's bytes (if it has any) and its description,
	// extended attributes and their values included, are all here.
	Saved bool   `json:"saved"`
	Error string `json:"error,omitempty"`
	// Data and Size: bytes of data read, and the file's size (the rest
	// are holes).
	Data int64          `json:"data_bytes"`
	Size int64          `json:"size"`
	Info *xfs.InodeInfo `json:"inode,omitempty"`
}

// SaveOptions say what SaveOrphans saves.
type SaveOptions struct {
	Options
	// Inos limits the save to these orphans (nil: every orphan); numbers
	// that are not orphans are left out (a free refuses them anyway).
	Inos []uint64
	// OrphanProgress, if set, is called after each orphan.
	OrphanProgress func(done, total int)
}

// ErrManifestExists is wrapped by SaveOrphans' error when the directory
// holds a manifest from an earlier run.
var ErrManifestExists = errors.New("holds a manifest from an earlier run")

// SaveOrphans saves every orphan of fs (or those of o.Inos) into dir,
// created if needed: the bytes of each regular file and symlink as
// dir/<ino> (SaveInode's way: complete or absent), and dir/manifest.json
// with each orphan's description (type, mode, owners, size, times, flags,
// extended attributes with values) and whether it was saved. Everything is
// synced before it returns. An orphan that could not be saved completely
// is in the manifest with the reason (Manifest.NotSaved); the error is for
// what stops the whole save (the directory, the manifest). The filesystem
// is only read: call it before the first write of a free, on the same
// handle.
func SaveOrphans(fs *xfs.FS, dir string, o SaveOptions) (*Manifest, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	mpath := filepath.Join(dir, ManifestName)
	if _, err := os.Lstat(mpath); err == nil {
		return nil, fmt.Errorf("%s %w (%s): give an empty or new directory", dir, ErrManifestExists, ManifestName)
	}
	m := &Manifest{Device: fs.Path, Dir: dir, Created: now(), LogClean: true, Files: []Entry{}, ScanErrors: []xfs.ScanError{}}
	if st, err := fs.LogState(); err == nil && st != nil && !st.Clean {
		m.LogClean, m.Note = false, xfs.DirtyLogNote
	}
	scan, err := fs.Scan(nil)
	if err != nil {
		return nil, err
	}
	m.ScanErrors = append(m.ScanErrors, scan.Errors...)
	var want map[uint64]bool
	if o.Inos != nil {
		want = map[uint64]bool{}
		for _, ino := range o.Inos {
			want[ino] = true
		}
	}
	var inos []uint64
	for _, a := range scan.AGs {
		for _, c := range a.Chains {
			for _, orph := range c.Inodes {
				if want == nil || want[orph.Ino] {
					inos = append(inos, orph.Ino)
				}
			}
		}
	}
	slices.Sort(inos)
	m.Orphans = len(inos)
	for i, ino := range inos {
		e := saveOrphan(fs, dir, ino, o.Options)
		m.Files = append(m.Files, e)
		if e.Saved {
			m.Saved++
			m.Bytes += e.Data
		} else {
			m.Failed++
		}
		if o.OrphanProgress != nil {
			o.OrphanProgress(i+1, len(inos))
		}
	}
	// The saved files are durable before the manifest says so.
	if err := syncFS(dir); err != nil {
		return m, err
	}
	if err := writeManifest(dir, m); err != nil {
		return m, err
	}
	return m, nil
}

// saveOrphan saves one orphan and says how it went.
func saveOrphan(fs *xfs.FS, dir string, ino uint64, o Options) Entry {
	e := Entry{Ino: ino}
	d, err := open(fs, ino)
	if err != nil {
		e.Error = err.Error()
		return e
	}
	in := d.info
	e.Info, e.Size = in, int64(d.Size)
	if HasBytes(d.Mode) {
		name := strconv.FormatUint(ino, 10)
		path := filepath.Join(dir, name)
		r := &Result{Info: in}
		if err := saveFile(fs, d, path, false, o, r, false); err != nil {
			e.Error = err.Error()
			return e
		}
		e.File, e.Data, e.Size = name, r.Data, r.Size
	}
	if len(in.Errors) > 0 {
		e.Error = fmt.Sprintf("inode %d: %s", ino, in.Errors[0])
		return e
	}
	e.Saved = true
	return e
}

// writeManifest writes dir/manifest.json through a synced temporary file.
func writeManifest(dir string, m *Manifest) (err error) {
	f, err := os.CreateTemp(dir, "."+ManifestName+".xfsfree-partial-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err = enc.Encode(m); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, ManifestName)); err != nil {
		return err
	}
	return syncDir(dir)
}

// NotSaved lists the orphans that were not saved completely, with the
// reason: what a free must not free (xfs.FreeOptions.Keep).
func (m *Manifest) NotSaved() map[uint64]string {
	out := map[uint64]string{}
	for _, e := range m.Files {
		if !e.Saved {
			out[e.Ino] = fmt.Sprintf("not saved to %s, so not freed: %s", m.Dir, e.Error)
		}
	}
	return out
}
