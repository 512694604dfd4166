package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/xfsfree/xfsfree/rescue"
	"github.com/xfsfree/xfsfree/xfs"
)

// extractOutput is the report of `extract --ino` in the --json document.
type extractOutput struct {
	Device   string `json:"device"`
	LogClean bool   `json:"log_clean"`
	Note     string `json:"note,omitempty"`
	*rescue.Result
}

// extractAllOutput is the report of `extract --all-orphans`: what was
// saved is "saved", as in `free --save-orphans`.
type extractAllOutput struct {
	Device   string           `json:"device"`
	LogClean bool             `json:"log_clean"`
	Note     string           `json:"note,omitempty"`
	Saved    *rescue.Manifest `json:"saved"`
}

func newExtractCmd(g *globalFlags) *cobra.Command {
	var ino uint64
	var out, all string
	var force bool
	cmd := &cobra.Command{
		Use:   "extract DEV (--ino N [-o FILE|-] | --all-orphans DIR)",
		Short: "Save an inode's bytes, or every orphan's, without writing to DEV",
		Long: `extract reads the bytes of one inode (--ino N, any inode, not only orphans)
or of every orphan (--all-orphans DIR) and saves them; DEV is opened
read-only and never written.

A regular file's data is read from its written extents (shared, reflinked,
extents like any other) with large O_DIRECT reads; holes and unwritten
(preallocated) extents read as zeros and are left as holes in the output,
a sparse file. A symlink's bytes are its target (the file holds the target,
it is not a link). Directories, devices, fifos and sockets have no bytes to
extract.

The output is written under a temporary name beside FILE, synced, and
renamed to FILE only when complete, with the inode's atime and mtime and
mode 0600; on any error it is removed, so a file that exists is complete.
An existing FILE is not overwritten without --force. -o - writes to stdout
(holes as zeros); an error then leaves a partial stream, and the exit
status says so. Without -o the file is N in the current directory.

--all-orphans DIR saves every orphan (on the AGI unlinked lists) as
DIR/<ino> and writes DIR/manifest.json: each orphan's type, mode, owners,
size, times, flags, extended attributes with their values (base64), and
whether it was saved. DIR is created if needed and must not hold a
manifest already.

On a dirty log (a snapshot of a live filesystem, a crash) the on-disk state
may lag the log: extract reads what is on disk and says so. 'xfsfree
recover' replays the log first without touching the orphans.

Corrupt metadata (a block map, a symlink or attribute block) is an error
naming the inode, the block and the field. Exit status: 0 saved, 1 an
inode (or, with --all-orphans, any orphan) could not be saved, 2 usage.`,
		Example: `  # What the orphans of a snapshot are, then save one of them
  xfsfree scan -v snap.img
  xfsfree extract --ino 133 -o /srv/rescue/orders.db snap.img

  # Check it without saving: stream it to a pipe
  xfsfree extract --ino 133 -o - snap.img | sha256sum

  # Save every orphan, with a manifest, then free them
  xfsfree extract --all-orphans /srv/rescue snap.img
  xfsfree recover snap.img && xfsfree free --orphans snap.img

  # The same in one step: free refuses what it could not save
  xfsfree recover snap.img && xfsfree free --orphans --save-orphans /srv/rescue snap.img`,
		Args: exactlyOneDevice,
		RunE: func(cmd *cobra.Command, args []string) error {
			byIno := cmd.Flags().Changed("ino")
			switch {
			case byIno == (all != ""):
				return usageError{errors.New("give --ino N or --all-orphans DIR (one of them)")}
			case all != "" && cmd.Flags().Changed("output"):
				return usageError{errors.New("-o is for --ino; --all-orphans saves into DIR")}
			case out == "-" && g.json:
				return usageError{errors.New("-o - writes the bytes to stdout: --json cannot go there too")}
			}
			fs, err := xfs.Open(args[0], xfs.Options{ReadOnly: true, Buffered: g.buffered, Offset: g.part.off, Size: g.part.len})
			if err != nil {
				return err
			}
			defer fs.Close()
			clean, note := logNote(fs)
			if note != "" && !g.json && !g.quiet {
				fmt.Fprintf(os.Stderr, "note: %s\n", note)
			}
			if all != "" {
				return extractAll(g, fs, all, clean, note)
			}
			if out == "" {
				out = strconv.FormatUint(ino, 10)
			}
			bp := newByteProgress(g, fmt.Sprintf("extracting inode %d", ino))
			o := rescue.Options{Progress: bp.Update}
			var r *rescue.Result
			if out == "-" {
				r, err = rescue.WriteInode(fs, ino, os.Stdout, o)
				bp.Done()
				if err != nil {
					if r != nil && r.Info != nil {
						return fmt.Errorf("%w (stdout holds an incomplete copy)", err)
					}
					return err
				}
				return nil
			}
			r, err = rescue.SaveInode(fs, ino, out, force, o)
			bp.Done()
			if err != nil {
				return err
			}
			if g.json {
				g.setReport(&extractOutput{Device: fs.Path, LogClean: clean, Note: note, Result: r})
				return nil
			}
			printExtract(os.Stdout, r, g.elapsed())
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&ino, "ino", 0, "the inode to extract (any inode number)")
	f.StringVarP(&out, "output", "o", "", "the file to write (- for stdout; default: the inode number, in the current directory)")
	f.StringVar(&all, "all-orphans", "", "save every orphan into this directory, with a manifest.json")
	f.BoolVar(&force, "force", false, "overwrite an existing output file")
	return cmd
}

func logNote(fs *xfs.FS) (clean bool, note string) {
	if st, err := fs.LogState(); err == nil && st != nil && !st.Clean {
		return false, xfs.DirtyLogNote
	}
	return true, ""
}

func printExtract(w io.Writer, r *rescue.Result, el time.Duration) {
	in := r.Info
	fmt.Fprintf(w, "inode %d (%s %s, %d bytes", in.Ino, in.Type, in.Mode, r.Size)
	if in.Type == "regular" {
		fmt.Fprintf(w, ": %d bytes of data in %d segment(s), %d bytes of holes", r.Data, r.Segments, r.Size-r.Data)
		if r.Unwritten > 0 {
			fmt.Fprintf(w, ", %d unwritten extent(s) left as holes", r.Unwritten)
		}
	}
	fmt.Fprintf(w, ") saved to %s; %s\n", r.Path, fmtElapsed(el))
}

// extractAll is extract --all-orphans.
func extractAll(g *globalFlags, fs *xfs.FS, dir string, clean bool, note string) error {
	m, err := saveOrphans(g, fs, dir, nil)
	if err != nil {
		return err
	}
	if g.json {
		g.setReport(&extractAllOutput{Device: fs.Path, LogClean: clean, Note: note, Saved: m})
	} else {
		printSaved(os.Stdout, m, "; "+fmtElapsed(g.elapsed()))
	}
	if m.Failed > 0 {
		return notSavedError(m)
	}
	return nil
}

// saveOrphans runs rescue.SaveOrphans with progress on a terminal.
func saveOrphans(g *globalFlags, fs *xfs.FS, dir string, inos []uint64) (*rescue.Manifest, error) {
	p := newProgress(g, "saving orphans")
	m, err := rescue.SaveOrphans(fs, dir, rescue.SaveOptions{Inos: inos, OrphanProgress: p.Update})
	p.Done()
	return m, err
}

// printSaved prints what a save of the orphans did; its last line ends
// with end.
func printSaved(w io.Writer, m *rescue.Manifest, end string) {
	for _, e := range m.Files {
		if !e.Saved {
			fmt.Fprintf(w, "not saved: inode %d: %s\n", e.Ino, e.Error)
		}
	}
	for _, s := range m.ScanErrors {
		fmt.Fprintf(w, "not saved: the orphans of AG %d (it could not be scanned: %s)\n", s.AG, s.Message)
	}
	fmt.Fprintf(w, "saved %d of %d orphan(s) to %s (%d bytes of data); manifest %s/%s%s\n",
		m.Saved, m.Orphans, m.Dir, m.Bytes, m.Dir, rescue.ManifestName, end)
}

func notSavedError(m *rescue.Manifest) error {
	for _, e := range m.Files {
		if !e.Saved {
			return fmt.Errorf("%d of %d orphan(s) not saved (first: inode %d: %s)", m.Failed, m.Orphans, e.Ino, e.Error)
		}
	}
	return fmt.Errorf("%d orphan(s) not saved", m.Failed)
}

// byteProgress draws "label: X/Y MiB (P%), rate, elapsed, ETA" on stderr for files of 64 MiB
// and more, when stderr is a terminal and neither --json nor --quiet.
type byteProgress struct {
	mu      sync.Mutex
	on      bool
	label   string
	start   time.Time
	last    time.Time
	printed bool
}

func newByteProgress(g *globalFlags, label string) *byteProgress {
	return &byteProgress{on: !g.json && !g.quiet && isTerminal(os.Stderr), label: label, start: time.Now()}
}

func (p *byteProgress) Update(done, total int64) {
	if !p.on || total < 64<<20 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if done < total && time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start)
	rate := float64(done) / (1 << 20) / max(el.Seconds(), 1e-3)
	fmt.Fprintf(os.Stderr, "\r%s: %d/%d MiB (%d%%), %.0f MiB/s, elapsed %s", p.label, done>>20, total>>20, done*100/total, rate, clock(el))
	if done > 0 && done < total {
		fmt.Fprintf(os.Stderr, ", ETA %s", clock(time.Duration(float64(total-done)/float64(done)*float64(el))))
	}
	fmt.Fprint(os.Stderr, "\033[K")
	p.printed = true
}

func (p *byteProgress) Done() {
	if p.printed {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}
