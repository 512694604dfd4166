// Package rescue owns saving files out of an XFS filesystem before they are
// lost: one inode's bytes to a file — written under a temporary name in the
// same directory, synced, and renamed into place only when complete;
// removed on any error, so a partial file is never presented as complete —
// or to a stream; and every orphan to a directory with a JSON manifest
// (SaveOrphans), the step `extract --all-orphans` runs and `free
// --save-orphans` runs before it frees (it tells the free which orphans it
// could not save). It only reads the filesystem.
package rescue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/xfsfree/xfsfree/extract"
	"github.com/xfsfree/xfsfree/ondisk"
	"github.com/xfsfree/xfsfree/xfs"
	"golang.org/x/sys/unix"
)

// Options tune the reading of a file's data.
type Options struct {
	// BufferBytes, Readers and Buffers bound the memory of a copy and
	// the reads in flight (extract.Options).
	BufferBytes int
	Readers     int
	Buffers     int
	// Progress, if set, is called as a regular file's data is copied, with
	// the data bytes done and to do.
	Progress func(done, total int64)
}

// Result is what was saved of one inode.
type Result struct {
	Info *xfs.InodeInfo `json:"inode"`
	// Path is the file written ("" for a stream, and for inodes with no
	// bytes: directories, devices, fifos, sockets).
	Path string `json:"path,omitempty"`
	// Data is the bytes of data read (a regular file's written extents
	// below its size, a symlink's target); Size - Data bytes are holes.
	Data      int64 `json:"data_bytes"`
	Size      int64 `json:"size"`
	Segments  int   `json:"segments,omitempty"`
	Unwritten int   `json:"unwritten_extents,omitempty"`
}

// ErrExists is wrapped by SaveInode's error when the output exists and
// overwriting was not asked for.
var ErrExists = errors.New("exists")

// inode is an inode read for saving: its core, where it lives, and its
// description (with attribute values).
type inode struct {
	*ondisk.Dinode
	loc  ondisk.InodeLoc
	info *xfs.InodeInfo
}

// open reads inode ino and describes it.
func open(fs *xfs.FS, ino uint64) (*inode, error) {
	d, loc, err := fs.ReadInode(ino)
	if err != nil {
		return nil, err
	}
	return &inode{Dinode: d, loc: loc, info: fs.DescribeDinode(d, loc, true)}, nil
}

// copyTo writes the inode's bytes to sink and fills r. A corrupt-metadata
// error found in the inode itself (its extent list) is located at the
// inode's cluster buffer.
func copyTo(fs *xfs.FS, in *inode, sink extract.Sink, o Options, r *Result) error {
	err := copyData(fs, in.Dinode, sink, o, r)
	if err != nil {
		err = ondisk.SetLocation(err, in.loc.Agno, in.loc.Daddr)
	}
	return err
}

func copyData(fs *xfs.FS, d *ondisk.Dinode, sink extract.Sink, o Options, r *Result) error {
	if d.IsSymlink() {
		t, err := extract.Symlink(fs.Source(), d)
		if err != nil {
			return err
		}
		if err := sink.WriteData(t, 0); err != nil {
			return err
		}
		r.Data, r.Size = int64(len(t)), int64(len(t))
		return sink.Finish(int64(len(t)))
	}
	p, err := extract.NewPlan(fs.Source(), d)
	if err != nil {
		return err
	}
	r.Size, r.Data, r.Segments, r.Unwritten = p.Size, p.Data, len(p.Segments), p.Unwritten
	return p.Copy(fs.Source(), sink, extract.Options{BufferBytes: o.BufferBytes, Readers: o.Readers, Buffers: o.Buffers, Progress: o.Progress})
}

// HasBytes reports whether an inode of this mode has bytes to save (a
// regular file or a symlink).
func HasBytes(mode uint16) bool {
	t := mode & ondisk.SIFMT
	return t == ondisk.SIFREG || t == ondisk.SIFLNK
}

// SaveInode saves inode ino's bytes — a regular file's data with its
// holes, and unwritten extents, as holes; a symlink's target — to path: to
// a temporary file beside it, synced, renamed to path when complete, with
// the inode's atime and mtime. On any error the temporary file is removed
// and path is untouched. An existing path is an error (ErrExists) unless
// overwrite. Inodes without bytes (directories, devices) are refused with
// extract.ErrNoData.
func SaveInode(fs *xfs.FS, ino uint64, path string, overwrite bool, o Options) (*Result, error) {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s %w: not overwritten (--force overwrites it)", path, ErrExists)
		}
	}
	in, err := open(fs, ino)
	if err != nil {
		return nil, err
	}
	r := &Result{Info: in.info}
	if !HasBytes(in.Mode) {
		return r, fmt.Errorf("inode %d is a %s: %w (regular files and symlinks have bytes to extract)", ino, in.info.Type, extract.ErrNoData)
	}
	if err := saveFile(fs, in, path, overwrite, o, r, true); err != nil {
		return r, err
	}
	r.Path = path
	return r, nil
}

// saveFile writes d's bytes to path through a temporary file, renamed
// into place when complete. With durable, the file and its directory entry
// are synced before it returns; otherwise the caller syncs (SaveOrphans
// syncs the directory's filesystem once for all its files).
func saveFile(fs *xfs.FS, d *inode, path string, overwrite bool, o Options, r *Result, durable bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".xfsfree-partial-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = copyTo(fs, d, extract.ToFile(f), o, r); err != nil {
		return err
	}
	if durable {
		if err = f.Sync(); err != nil {
			return fmt.Errorf("%s: fsync: %w", tmp, err)
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	// Times as the inode has them (a symlink's saved target too).
	if err = os.Chtimes(tmp, d.Atime.Time(), d.Mtime.Time()); err != nil {
		return err
	}
	if err = rename(tmp, path, overwrite); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(dir)
}

// rename moves the complete file tmp to path; without overwrite an
// existing path is ErrExists (RENAME_NOREPLACE: no window between a check
// and the rename; where the filesystem lacks it, a check, then a rename).
func rename(tmp, path string, overwrite bool) error {
	if overwrite {
		return os.Rename(tmp, path)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%s %w: not overwritten", path, ErrExists)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s %w: not overwritten", path, ErrExists)
		}
		return os.Rename(tmp, path)
	}
	return &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
}

// WriteInode writes inode ino's bytes to w as a stream: holes and
// unwritten extents as zeros. On an error w holds a partial copy; the
// caller must say so.
func WriteInode(fs *xfs.FS, ino uint64, w io.Writer, o Options) (*Result, error) {
	in, err := open(fs, ino)
	if err != nil {
		return nil, err
	}
	r := &Result{Info: in.info}
	if !HasBytes(in.Mode) {
		return r, fmt.Errorf("inode %d is a %s: %w (regular files and symlinks have bytes to extract)", ino, in.info.Type, extract.ErrNoData)
	}
	return r, copyTo(fs, in, extract.ToStream(w), o, r)
}

// syncFS makes every file written in dir's filesystem durable (syncfs),
// and reports a writeback error.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("%s: syncfs: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: fsync: %w", dir, err)
	}
	return nil
}

// times for the manifest.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }
